//! Array operations against naive references (random shapes, strided and transposed views,
//! f32 and f64), and their errors for bad shapes.

use dl4rs_array::ops::{self, BinaryOp, Unary};
use dl4rs_array::*;

fn seq(shape: &[usize]) -> NdArray<f64> {
    let n: usize = shape.iter().product();
    NdArray::from_slice(
        shape,
        &(0..n).map(|i| (i as f64 * 0.37).sin()).collect::<Vec<_>>(),
    )
    .unwrap()
}

fn naive_matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    c
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "element {i}: {x} vs {y}"
        );
    }
}

#[test]
fn matmul_with_transposed_and_strided_views() {
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 9),
        (64, 128, 10),
        (1, 784, 256),
    ] {
        let a = seq(&[m, k]);
        let b = seq(&[k, n]);
        let expected = naive_matmul(&a.to_vec().unwrap(), &b.to_vec().unwrap(), m, k, n);
        close(&a.matmul(&b).unwrap().to_vec().unwrap(), &expected, 1e-12);
        // Aᵀ stored as k x m, viewed transposed; B likewise.
        let at = a.view().t().dup().unwrap();
        let bt = b.view().t().dup().unwrap();
        let c = ops::matmul(&at.view().t(), &bt.view().t()).unwrap();
        close(&c.to_vec().unwrap(), &expected, 1e-12);
    }
    // A strided view: every other column.
    let wide = seq(&[4, 10]);
    let a = wide.view().slice_axis(1, 0, 10, 2).unwrap();
    let b = seq(&[5, 3]);
    let expected = naive_matmul(&a.to_vec().unwrap(), &b.to_vec().unwrap(), 4, 5, 3);
    close(&a.matmul(&b).unwrap().to_vec().unwrap(), &expected, 1e-12);
}

#[test]
fn gemm_into_alpha_beta() {
    let a = seq(&[3, 4]);
    let b = seq(&[4, 2]);
    let mut c = NdArray::<f64>::full(&[3, 2], 1.0).unwrap();
    ops::gemm_into(2.0, &a, &b, 0.5, &mut c).unwrap();
    let ab = naive_matmul(&a.to_vec().unwrap(), &b.to_vec().unwrap(), 3, 4, 2);
    let expected: Vec<f64> = ab.iter().map(|v| 2.0 * v + 0.5).collect();
    close(&c.to_vec().unwrap(), &expected, 1e-12);
}

#[test]
fn broadcasting_binary_ops() {
    let a = seq(&[3, 4]);
    let row = seq(&[4]);
    let col = seq(&[3, 1]);
    let av = a.to_vec().unwrap();
    let (rv, cv) = (row.to_vec().unwrap(), col.to_vec().unwrap());
    let sum = a.add(&row).unwrap().to_vec().unwrap();
    let prod = a.mul(&col).unwrap().to_vec().unwrap();
    for i in 0..3 {
        for j in 0..4 {
            assert_eq!(sum[i * 4 + j], av[i * 4 + j] + rv[j]);
            assert_eq!(prod[i * 4 + j], av[i * 4 + j] * cv[i]);
        }
    }
    // General N-d broadcasting: [2, 1, 4] - [3, 1] -> [2, 3, 4].
    let x = seq(&[2, 1, 4]);
    let y = seq(&[3, 1]);
    let z = x.sub(&y).unwrap();
    assert_eq!(z.shape(), &[2, 3, 4]);
    let (xv, yv, zv) = (
        x.to_vec().unwrap(),
        y.to_vec().unwrap(),
        z.to_vec().unwrap(),
    );
    for i in 0..2 {
        for j in 0..3 {
            for l in 0..4 {
                assert_eq!(zv[(i * 3 + j) * 4 + l], xv[i * 4 + l] - yv[j]);
            }
        }
    }
    // Scalars and in-place forms.
    let s = NdArray::<f64>::scalar(2.0).unwrap();
    assert_eq!(
        a.div(&s).unwrap().to_vec().unwrap(),
        av.iter().map(|v| v / 2.0).collect::<Vec<_>>()
    );
    let mut m = a.dup().unwrap();
    ops::binary_assign(BinaryOp::Add, &mut m, &row).unwrap();
    assert_eq!(m.to_vec().unwrap(), sum);
    ops::scalar_assign(BinaryOp::Mul, &mut m, 0.0).unwrap();
    assert!(m.to_vec().unwrap().iter().all(|&v| v == 0.0));
    // A transposed (strided) left side takes the general path and agrees.
    let t = a.view().t();
    let tt = t.add(&seq(&[3])).unwrap();
    let td = t.dup().unwrap().add(&seq(&[3])).unwrap();
    assert_eq!(tt.to_vec().unwrap(), td.to_vec().unwrap());
}

#[test]
fn unary_maps() {
    let a = NdArray::<f32>::from_slice(&[4], &[-2.0, -0.5, 0.0, 3.0]).unwrap();
    assert_eq!(
        a.relu().unwrap().to_vec().unwrap(),
        vec![0.0, 0.0, 0.0, 3.0]
    );
    let e = a.exp().unwrap().to_vec().unwrap();
    for (x, y) in [-2.0f32, -0.5, 0.0, 3.0].iter().zip(&e) {
        assert!((x.exp() - y).abs() <= 2.0 * f32::EPSILON * x.exp());
    }
    let lr = a.map(Unary::LeakyRelu(0.1)).unwrap().to_vec().unwrap();
    assert_eq!(lr, vec![-0.2, -0.05, 0.0, 3.0]);
    let mut b = a.dup().unwrap();
    ops::unary_assign(Unary::Square, &mut b).unwrap();
    assert_eq!(b.to_vec().unwrap(), vec![4.0, 0.25, 0.0, 9.0]);
}

#[test]
fn reductions_along_every_axis() {
    let a = seq(&[2, 3, 4]);
    let v = a.to_vec().unwrap();
    let at = |i: usize, j: usize, l: usize| v[(i * 3 + j) * 4 + l];
    let s0 = a.reduce(Reduction::Sum, 0).unwrap().to_vec().unwrap();
    let s1 = a.reduce(Reduction::Mean, 1).unwrap().to_vec().unwrap();
    let m2 = a.reduce(Reduction::Max, 2).unwrap().to_vec().unwrap();
    let am1 = a.argmax(1).unwrap().to_vec().unwrap();
    for j in 0..3 {
        for l in 0..4 {
            assert!((s0[j * 4 + l] - (at(0, j, l) + at(1, j, l))).abs() < 1e-12);
        }
    }
    for i in 0..2 {
        for l in 0..4 {
            let mean = (0..3).map(|j| at(i, j, l)).sum::<f64>() / 3.0;
            assert!((s1[i * 4 + l] - mean).abs() < 1e-12);
            let best = (0..3).fold(0, |b, j| if at(i, j, l) > at(i, b, l) { j } else { b });
            assert_eq!(am1[i * 4 + l], best as f64);
        }
        for j in 0..3 {
            let max = (0..4)
                .map(|l| at(i, j, l))
                .fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(m2[i * 3 + j], max);
        }
    }
    assert!((a.sum().unwrap() - v.iter().sum::<f64>()).abs() < 1e-12);
}

#[test]
fn softmax_along_axes() {
    let a = seq(&[3, 5]);
    for axis in 0..2 {
        let p = a.softmax(axis).unwrap();
        let sums = p.reduce(Reduction::Sum, axis).unwrap().to_vec().unwrap();
        assert!(
            sums.iter().all(|s| (s - 1.0).abs() < 1e-12),
            "axis {axis}: {sums:?}"
        );
        let lp = a.log_softmax(axis).unwrap().to_vec().unwrap();
        let p = p.to_vec().unwrap();
        for (x, y) in lp.iter().zip(&p) {
            assert!((x.exp() - y).abs() < 1e-12);
        }
    }
}

#[test]
fn concat_stack_gather() {
    let a = seq(&[2, 3]);
    let b = seq(&[1, 3]);
    let c = ops::concat(&[a.view(), b.view()], 0).unwrap();
    assert_eq!(c.shape(), &[3, 3]);
    let mut expected = a.to_vec().unwrap();
    expected.extend(b.to_vec().unwrap());
    assert_eq!(c.to_vec().unwrap(), expected);
    let wide = ops::concat(&[a.view(), a.view()], 1).unwrap();
    assert_eq!(wide.shape(), &[2, 6]);
    assert_eq!(wide.get(&[1, 4]).unwrap(), a.get(&[1, 1]).unwrap());
    let s = ops::stack(&[a.view(), a.view()], 1).unwrap();
    assert_eq!(s.shape(), &[2, 2, 3]);
    assert_eq!(s.get(&[1, 1, 2]).unwrap(), a.get(&[1, 2]).unwrap());
    let g = c.gather_rows(&[2, 0, 2]).unwrap();
    assert_eq!(g.shape(), &[3, 3]);
    assert_eq!(
        g.view().index_axis(0, 0).unwrap().to_vec().unwrap(),
        b.to_vec().unwrap()
    );
    // Gathering from a transposed (strided) view.
    let gt = c.view().t().gather_rows(&[1]).unwrap();
    assert_eq!(
        gt.to_vec().unwrap(),
        c.view().t().index_axis(0, 1).unwrap().to_vec().unwrap()
    );
}

#[test]
fn assign_and_views() {
    let mut a = NdArray::<f32>::zeros(&[2, 3]).unwrap();
    let row = NdArray::<f32>::from_slice(&[3], &[1.0, 2.0, 3.0]).unwrap();
    a.assign(&row).unwrap(); // broadcast
    assert_eq!(a.to_vec().unwrap(), vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    let t = a.dup().unwrap().t();
    assert!(!t.is_contiguous());
    assert_eq!(t.shape(), &[3, 2]);
    assert_eq!(t.get(&[2, 1]).unwrap(), 3.0);
    let r = a.dup().unwrap().reshape(&[3, 2]).unwrap();
    assert_eq!(r.get(&[2, 1]).unwrap(), 3.0);
    let p = NdArray::<f32>::zeros(&[2, 3, 4])
        .unwrap()
        .permute(&[2, 0, 1])
        .unwrap();
    assert_eq!(p.shape(), &[4, 2, 3]);
    let b = row.view().broadcast(&[4, 3]).unwrap();
    assert_eq!(b.to_vec().unwrap().len(), 12);
}

#[test]
fn ndarray_interop() {
    let nd = ndarray::array![[1.0f64, 2.0], [3.0, 4.0]];
    let a = NdArray::try_from(nd.clone()).unwrap();
    assert_eq!(a.shape(), &[2, 2]);
    let back = a.to_ndarray().unwrap();
    assert_eq!(back.into_dimensionality::<ndarray::Ix2>().unwrap(), nd);
    let t = a.view().t();
    let r = t.read().unwrap();
    let view = r.as_ndarray().unwrap();
    assert_eq!(view[[0, 1]], 3.0);
}

#[test]
fn random_creation_is_seeded() {
    let a = NdArray::<f32>::rand_uniform(&[100], -1.0, 1.0, 7)
        .unwrap()
        .to_vec()
        .unwrap();
    let b = NdArray::<f32>::rand_uniform(&[100], -1.0, 1.0, 7)
        .unwrap()
        .to_vec()
        .unwrap();
    let c = NdArray::<f32>::rand_uniform(&[100], -1.0, 1.0, 8)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
    let n = NdArray::<f64>::rand_normal(&[4000], 0.0, 1.0, 1).unwrap();
    let mean = n.sum().unwrap() / 4000.0;
    assert!(mean.abs() < 0.1);
}

#[test]
fn bad_shapes_are_errors_naming_both_shapes() {
    let a = seq(&[2, 3]);
    let b = seq(&[4, 5]);
    let err = a.matmul(&b).unwrap_err().to_string();
    assert!(
        err.contains("matmul: shapes [2, 3] and [4, 5] don't fit"),
        "{err}"
    );
    let err = a.add(&b).unwrap_err().to_string();
    assert!(err.contains("add: shapes [2, 3] and [4, 5]"), "{err}");
    let err = a.reduce(Reduction::Sum, 2).unwrap_err().to_string();
    assert!(
        err.contains("axis 2 is out of range for an array of shape [2, 3]"),
        "{err}"
    );
    let err = a.gather_rows(&[0, 2]).unwrap_err().to_string();
    assert!(
        err.contains("row index 2 is out of bounds for 2 rows"),
        "{err}"
    );
    let err = a.dup().unwrap().t().reshape(&[6]).unwrap_err().to_string();
    assert!(err.contains("not contiguous"), "{err}");
    let err = NdArray::<f32>::from_slice(&[2, 2], &[1.0])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shape [2, 2] needs 4 elements, found 1"),
        "{err}"
    );
    let err = seq(&[3]).matmul(&a).unwrap_err().to_string();
    assert!(
        err.contains("expected a 2-D matrix, found shape [3]"),
        "{err}"
    );
    let mut out = NdArray::<f64>::zeros(&[2, 2]).unwrap();
    let err = ops::unary_into(Unary::Exp, &a, &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unary: shapes [2, 3] and [2, 2]"), "{err}");
    let err = a.view().slice_axis(1, 2, 5, 1).unwrap_err().to_string();
    assert!(err.contains("found 2..5"), "{err}");
    assert!(NdArray::<f32>::zeros(&[1, 1, 1, 1, 1, 1, 1]).is_err());
    assert!(ops::concat::<f64, NdArray<f64>>(&[], 0).is_err());
}
