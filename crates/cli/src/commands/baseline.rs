//! A linear least-squares fit (with intercept) as the yardstick a regression network must beat:
//! solved from the normal equations in f64 by Gaussian elimination with partial pivoting, with a
//! tiny ridge term so collinear columns still give an answer. Features are standardized first
//! (from the training rows), which makes the system well conditioned without changing the fit.

use dl4rs::data::DataSet;

use super::CliError;

/// R² (averaged over target columns) on `test` of the least-squares fit on `train`. Both are
/// in the same feature units; labels in the targets' units.
pub fn least_squares_r2(train: &DataSet, test: &DataSet) -> Result<f64, CliError> {
    let (x, y, n, d, k) = rows(train)?;
    let (xt, yt, nt, _, _) = rows(test)?;
    let (mean, std) = column_stats(&x, n, d);
    let p = d + 1;
    // A = Zᵀ Z + λI, B = Zᵀ Y with Z = [standardized x, 1].
    let mut a = vec![0.0f64; p * p];
    let mut b = vec![0.0f64; p * k];
    let mut z = vec![0.0f64; p];
    for r in 0..n {
        standardize(&x[r * d..(r + 1) * d], &mean, &std, &mut z);
        for i in 0..p {
            for j in 0..p {
                a[i * p + j] += z[i] * z[j];
            }
            for c in 0..k {
                b[i * k + c] += z[i] * y[r * k + c];
            }
        }
    }
    for i in 0..p {
        a[i * p + i] += 1e-9 * n as f64;
    }
    let w = solve(a, b, p, k).ok_or_else(|| {
        CliError::Usage("the least-squares baseline has a singular system".into())
    })?;
    // R² per column on the test rows.
    let mut r2 = 0.0;
    for c in 0..k {
        let mean_y = (0..nt).map(|r| yt[r * k + c]).sum::<f64>() / nt.max(1) as f64;
        let (mut ss_res, mut ss_tot) = (0.0, 0.0);
        for r in 0..nt {
            standardize(&xt[r * d..(r + 1) * d], &mean, &std, &mut z);
            let pred: f64 = (0..p).map(|i| z[i] * w[i * k + c]).sum();
            let t = yt[r * k + c];
            ss_res += (t - pred) * (t - pred);
            ss_tot += (t - mean_y) * (t - mean_y);
        }
        r2 += 1.0 - ss_res / ss_tot.max(f64::MIN_POSITIVE);
    }
    Ok(r2 / k.max(1) as f64)
}

type Rows = (Vec<f64>, Vec<f64>, usize, usize, usize);

fn rows(data: &DataSet) -> Result<Rows, CliError> {
    let x: Vec<f64> = data.features.to_vec()?.into_iter().map(f64::from).collect();
    let y: Vec<f64> = data.labels.to_vec()?.into_iter().map(f64::from).collect();
    let (n, d, k) = (data.num_examples(), data.num_inputs(), data.num_outcomes());
    Ok((x, y, n, d, k))
}

fn column_stats(x: &[f64], n: usize, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; d];
    for r in 0..n {
        for j in 0..d {
            mean[j] += x[r * d + j];
        }
    }
    mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
    let mut std = vec![0.0; d];
    for r in 0..n {
        for j in 0..d {
            std[j] += (x[r * d + j] - mean[j]).powi(2);
        }
    }
    std.iter_mut()
        .for_each(|s| *s = (*s / n.max(1) as f64).sqrt().max(1e-12));
    (mean, std)
}

fn standardize(x: &[f64], mean: &[f64], std: &[f64], z: &mut [f64]) {
    for j in 0..x.len() {
        z[j] = (x[j] - mean[j]) / std[j];
    }
    z[x.len()] = 1.0;
}

/// Solves `A W = B` (`A`: p x p, `B`: p x k) in place; `None` when singular.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, p: usize, k: usize) -> Option<Vec<f64>> {
    for col in 0..p {
        let pivot =
            (col..p).max_by(|&i, &j| a[i * p + col].abs().total_cmp(&a[j * p + col].abs()))?;
        if a[pivot * p + col].abs() < 1e-300 {
            return None;
        }
        for j in 0..p {
            a.swap(col * p + j, pivot * p + j);
        }
        for c in 0..k {
            b.swap(col * k + c, pivot * k + c);
        }
        for row in 0..p {
            if row != col {
                let f = a[row * p + col] / a[col * p + col];
                for j in col..p {
                    a[row * p + j] -= f * a[col * p + j];
                }
                for c in 0..k {
                    b[row * k + c] -= f * b[col * k + c];
                }
            }
        }
    }
    for row in 0..p {
        for c in 0..k {
            b[row * k + c] /= a[row * p + row];
        }
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dl4rs::array::NdArray;

    #[test]
    fn recovers_an_exact_linear_relation() {
        // y = 3 x0 - 2 x1 + 5
        let xs: Vec<f32> = (0..40).map(|i| ((i * 37) % 17) as f32 * 0.5).collect();
        let x = NdArray::from_slice(&[20, 2], &xs).unwrap();
        let y: Vec<f32> = xs
            .chunks(2)
            .map(|r| 3.0 * r[0] - 2.0 * r[1] + 5.0)
            .collect();
        let y = NdArray::from_slice(&[20, 1], &y).unwrap();
        let data = DataSet::new(x, y).unwrap();
        let r2 = least_squares_r2(&data, &data).unwrap();
        assert!((r2 - 1.0).abs() < 1e-6, "{r2}");
    }
}
