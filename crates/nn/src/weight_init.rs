//! Weight initialization schemes (DL4J's `WeightInit`), drawn from the seeded counter generator
//! so a network's initial parameters depend only on its seed.

use dl4rs_array::DataType;
use dl4rs_array::random::splitmix;
use serde::{Deserialize, Serialize};

/// How a layer's weights start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum WeightInit {
    /// Xavier/Glorot normal: N(0, sqrt(2 / (fan_in + fan_out))) (DL4J `XAVIER`).
    #[default]
    XavierNormal,
    /// Xavier/Glorot uniform: U(±sqrt(6 / (fan_in + fan_out))).
    XavierUniform,
    /// He normal: N(0, sqrt(2 / fan_in)) (DL4J `RELU`).
    HeNormal,
    /// He uniform: U(±sqrt(6 / fan_in)) (DL4J `RELU_UNIFORM`).
    HeUniform,
    /// N(0, 1 / sqrt(fan_in)) (DL4J `NORMAL`).
    Normal,
    /// U(±1 / sqrt(fan_in)) (DL4J `UNIFORM`).
    Uniform,
    /// All zeros.
    Zero,
    /// All equal to the value.
    Constant(f64),
}

fn unit(seed: u64, i: u64) -> f64 {
    (splitmix(seed, i) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

impl WeightInit {
    /// Fills `out` (a `fan_in x fan_out` matrix) from `seed`.
    pub fn fill<T: DataType>(self, out: &mut [T], fan_in: usize, fan_out: usize, seed: u64) {
        let (fi, fo) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        let uniform = |out: &mut [T], a: f64| {
            for (i, v) in out.iter_mut().enumerate() {
                *v = T::from_f64((2.0 * unit(seed, i as u64) - 1.0) * a);
            }
        };
        let normal = |out: &mut [T], std: f64| {
            for (i, v) in out.iter_mut().enumerate() {
                let pair = (i / 2) as u64;
                let u1 = 1.0 - unit(seed, 2 * pair);
                let u2 = unit(seed, 2 * pair + 1);
                let r = (-2.0 * u1.ln()).sqrt();
                let t = 2.0 * std::f64::consts::PI * u2;
                let z = if i % 2 == 0 { r * t.cos() } else { r * t.sin() };
                *v = T::from_f64(z * std);
            }
        };
        match self {
            WeightInit::XavierNormal => normal(out, (2.0 / (fi + fo)).sqrt()),
            WeightInit::XavierUniform => uniform(out, (6.0 / (fi + fo)).sqrt()),
            WeightInit::HeNormal => normal(out, (2.0 / fi).sqrt()),
            WeightInit::HeUniform => uniform(out, (6.0 / fi).sqrt()),
            WeightInit::Normal => normal(out, 1.0 / fi.sqrt()),
            WeightInit::Uniform => uniform(out, 1.0 / fi.sqrt()),
            WeightInit::Zero => out.fill(T::ZERO),
            WeightInit::Constant(c) => out.fill(T::from_f64(c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_spread() {
        let mut w = vec![0f64; 10_000];
        WeightInit::HeUniform.fill(&mut w, 100, 10, 1);
        let a = (6.0f64 / 100.0).sqrt();
        assert!(w.iter().all(|v| v.abs() <= a));
        WeightInit::XavierNormal.fill(&mut w, 50, 50, 2);
        let var = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        assert!((var - 0.02).abs() < 0.002, "{var}");
        WeightInit::Constant(0.5).fill(&mut w, 1, 1, 0);
        assert!(w.iter().all(|&v| v == 0.5));
    }
}
