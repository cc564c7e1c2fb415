//! Seeded random numbers: the SplitMix64 generator in counter form (element `i` of a stream is
//! a pure function of the seed and `i`), the one the benchmark workloads and the peers use
//! (`shared/reference/workloads.md`). Counter form makes fills reproducible regardless of how
//! they are split, and it needs no state, so no allocation.

use dl4rs_kernels::Float;

/// SplitMix64 output `i` for seed `s`.
pub fn splitmix(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add((i.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform `f32` in `[0, 1)` with 24 random bits: `unit(s, i)` of the workloads spec.
pub fn unit(seed: u64, i: u64) -> f32 {
    (splitmix(seed, i) >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// A uniform `f64` in `[0, 1)` with 53 random bits.
fn unit_f64(seed: u64, i: u64) -> f64 {
    (splitmix(seed, i) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

pub(crate) fn fill_uniform<T: Float>(out: &mut [T], low: T, high: T, seed: u64) {
    let (lo, span) = (low.to_f64(), high.to_f64() - low.to_f64());
    for (i, v) in out.iter_mut().enumerate() {
        // f32 arrays use the 24-bit `unit` so they match the workloads' generator exactly.
        let u = if size_of::<T>() == 4 {
            f64::from(unit(seed, i as u64))
        } else {
            unit_f64(seed, i as u64)
        };
        *v = T::from_f64(lo + u * span);
    }
}

pub(crate) fn fill_normal<T: Float>(out: &mut [T], mean: T, std: T, seed: u64) {
    let (mean, std) = (mean.to_f64(), std.to_f64());
    for (i, v) in out.iter_mut().enumerate() {
        let pair = (i / 2) as u64;
        // 1 - u keeps the logarithm's argument in (0, 1].
        let u1 = 1.0 - unit_f64(seed, 2 * pair);
        let u2 = unit_f64(seed, 2 * pair + 1);
        let r = (-2.0 * u1.ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * u2;
        let z = if i % 2 == 0 {
            r * angle.cos()
        } else {
            r * angle.sin()
        };
        *v = T::from_f64(mean + std * z);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_workload_generator() {
        // unit(s, i) = (sm(s, i) >> 40) * 2^-24 lies in [0, 1) and depends only on (s, i).
        assert_eq!(unit(42, 0), unit(42, 0));
        assert_ne!(unit(42, 0), unit(42, 1));
        let mut buf = [0f32; 1000];
        fill_uniform(&mut buf, 0.0, 1.0, 42);
        assert!(buf.iter().all(|&v| (0.0..1.0).contains(&v)));
        assert_eq!(buf[7], unit(42, 7));
    }

    #[test]
    fn normal_moments() {
        let mut buf = vec![0f64; 20000];
        fill_normal(&mut buf, 1.0, 2.0, 7);
        let mean = buf.iter().sum::<f64>() / buf.len() as f64;
        let var = buf.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / buf.len() as f64;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "{var}");
    }
}
