//! Updaters (DL4J's `IUpdater`s) and regularization, applied to the network's flat parameter,
//! gradient and state arrays in one pass per parameter segment: no allocation, no per-layer
//! objects. Biases and normalization parameters are not regularized (DL4J's default).

use std::ops::Range;

use dl4rs_array::ops::update;
use dl4rs_array::{ArrayError, DataType};
use serde::{Deserialize, Serialize};

/// An updater: how a gradient becomes a parameter change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Updater {
    /// `p -= lr * g`.
    Sgd {
        /// Learning rate.
        learning_rate: f64,
    },
    /// Nesterov momentum (DL4J form).
    Nesterovs {
        /// Learning rate.
        learning_rate: f64,
        /// Momentum.
        momentum: f64,
    },
    /// Adam (DL4J form, bias-corrected step size).
    Adam {
        /// Learning rate.
        learning_rate: f64,
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Denominator offset.
        epsilon: f64,
    },
    /// RMSProp.
    RmsProp {
        /// Learning rate.
        learning_rate: f64,
        /// Decay of the squared-gradient average.
        rms_decay: f64,
        /// Denominator offset.
        epsilon: f64,
    },
    /// AdaGrad.
    AdaGrad {
        /// Learning rate.
        learning_rate: f64,
        /// Denominator offset.
        epsilon: f64,
    },
    /// No update (parameters frozen).
    NoOp,
}

impl Default for Updater {
    fn default() -> Self {
        Updater::sgd(0.1)
    }
}

impl Updater {
    /// Plain SGD.
    pub fn sgd(learning_rate: f64) -> Updater {
        Updater::Sgd { learning_rate }
    }
    /// Nesterov momentum with DL4J's default momentum 0.9.
    pub fn nesterovs(learning_rate: f64) -> Updater {
        Updater::Nesterovs {
            learning_rate,
            momentum: 0.9,
        }
    }
    /// Adam with DL4J's defaults (0.9, 0.999, 1e-8).
    pub fn adam(learning_rate: f64) -> Updater {
        Updater::Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
    /// RMSProp with DL4J's defaults (decay 0.95, epsilon 1e-8).
    pub fn rmsprop(learning_rate: f64) -> Updater {
        Updater::RmsProp {
            learning_rate,
            rms_decay: 0.95,
            epsilon: 1e-8,
        }
    }
    /// AdaGrad with DL4J's default epsilon 1e-6.
    pub fn adagrad(learning_rate: f64) -> Updater {
        Updater::AdaGrad {
            learning_rate,
            epsilon: 1e-6,
        }
    }

    /// The learning rate (0 for `NoOp`).
    pub fn learning_rate(&self) -> f64 {
        match *self {
            Updater::Sgd { learning_rate }
            | Updater::Nesterovs { learning_rate, .. }
            | Updater::Adam { learning_rate, .. }
            | Updater::RmsProp { learning_rate, .. }
            | Updater::AdaGrad { learning_rate, .. } => learning_rate,
            Updater::NoOp => 0.0,
        }
    }

    /// State values per parameter.
    pub fn state_per_param(&self) -> usize {
        match self {
            Updater::Sgd { .. } | Updater::NoOp => 0,
            Updater::Nesterovs { .. } | Updater::RmsProp { .. } | Updater::AdaGrad { .. } => 1,
            Updater::Adam { .. } => 2,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let lr = self.learning_rate();
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(format!(
                "updater {self:?}: the learning rate must be finite and >= 0"
            ));
        }
        let ok = match *self {
            Updater::Nesterovs { momentum, .. } => (0.0..1.0).contains(&momentum),
            Updater::Adam {
                beta1,
                beta2,
                epsilon,
                ..
            } => (0.0..1.0).contains(&beta1) && (0.0..1.0).contains(&beta2) && epsilon > 0.0,
            Updater::RmsProp {
                rms_decay, epsilon, ..
            } => (0.0..1.0).contains(&rms_decay) && epsilon > 0.0,
            Updater::AdaGrad { epsilon, .. } => epsilon > 0.0,
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "updater {self:?}: momentum and decays must lie in [0, 1) and epsilon must be > 0"
            ))
        }
    }
}

/// L1, L2 and weight decay coefficients (applied to weights only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Regularization {
    /// L1 coefficient: adds `l1 * sign(w)` to the gradient.
    pub l1: f64,
    /// L2 coefficient: adds `l2 * w` to the gradient.
    pub l2: f64,
    /// Weight decay: after the update, `w -= lr * weight_decay * w`.
    pub weight_decay: f64,
}

/// A run of the flat parameter array with one treatment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub range: Range<usize>,
    /// Weights get L1/L2/weight decay; biases and normalization parameters don't.
    pub regularize: bool,
}

/// One update step. `iteration` is 0-based. L1/L2 go into the gradients of the regularized
/// segments, then the updater runs as one vectorized pass over the whole flat arrays (its
/// arithmetic is per element, so the segments need not be visited one by one), then weight
/// decay shrinks the regularized segments. Per element that is the order DL4J applies them in.
pub(crate) fn apply<T: DataType>(
    updater: &Updater,
    reg: &Regularization,
    params: &mut [T],
    grads: &mut [T],
    state: &mut [T],
    segments: &[Segment],
    iteration: u64,
) -> Result<(), ArrayError> {
    let n = params.len();
    apply_part(
        updater,
        reg,
        params,
        grads,
        state,
        segments,
        iteration,
        0..n,
    )
}

/// [`apply`] on the elements `part` of the flat arrays only (the updater state's arrays at
/// the same positions): each element's step depends on that element alone, so updating the
/// parts of a partition one by one, or on different replicas, gives the bits of one whole
/// step. ParallelWrapper's SharedGradients trainers each step their own part.
#[allow(clippy::too_many_arguments)] // apply's arguments and the part
pub(crate) fn apply_part<T: DataType>(
    updater: &Updater,
    reg: &Regularization,
    params: &mut [T],
    grads: &mut [T],
    state: &mut [T],
    segments: &[Segment],
    iteration: u64,
    part: Range<usize>,
) -> Result<(), ArrayError> {
    let n = params.len();
    if part.start > part.end || part.end > n {
        return Err(ArrayError::Invalid {
            op: "apply_gradients_part",
            message: format!(
                "expected a part of the {n} parameters to update, but got {}..{}; \
                 pass a range within 0..{n}",
                part.start, part.end
            ),
        });
    }
    let t = T::from_f64;
    let r = part.clone();
    // The regularized segments' overlap with the part.
    let overlaps = || {
        segments.iter().filter(|s| s.regularize).filter_map(|s| {
            let (lo, hi) = (s.range.start.max(r.start), s.range.end.min(r.end));
            (lo < hi).then_some(lo..hi)
        })
    };
    if reg.l1 != 0.0 || reg.l2 != 0.0 {
        for o in overlaps() {
            update::l1_l2(t(reg.l1), t(reg.l2), &params[o.clone()], &mut grads[o])?;
        }
    }
    let (p, g) = (&mut params[r.clone()], &grads[r.clone()]);
    match *updater {
        Updater::Sgd { learning_rate } => update::sgd(t(learning_rate), g, p)?,
        Updater::Nesterovs {
            learning_rate,
            momentum,
        } => update::nesterovs(t(learning_rate), t(momentum), g, &mut state[r.clone()], p)?,
        Updater::Adam {
            learning_rate,
            beta1,
            beta2,
            epsilon,
        } => {
            let step = (iteration + 1) as i32;
            let alpha = learning_rate * (1.0 - beta2.powi(step)).sqrt() / (1.0 - beta1.powi(step));
            let (m, v) = state.split_at_mut(n);
            update::adam(
                t(alpha),
                t(beta1),
                t(beta2),
                t(epsilon),
                g,
                &mut m[r.clone()],
                &mut v[r.clone()],
                p,
            )?
        }
        Updater::RmsProp {
            learning_rate,
            rms_decay,
            epsilon,
        } => update::rmsprop(
            t(learning_rate),
            t(rms_decay),
            t(epsilon),
            g,
            &mut state[r.clone()],
            p,
        )?,
        Updater::AdaGrad {
            learning_rate,
            epsilon,
        } => update::adagrad(t(learning_rate), t(epsilon), g, &mut state[r.clone()], p)?,
        Updater::NoOp => {}
    }
    if reg.weight_decay != 0.0 {
        let k = t(updater.learning_rate() * reg.weight_decay);
        for o in overlaps() {
            update::weight_decay(k, &mut params[o]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(u: Updater, reg: Regularization, iterations: u64) -> Vec<f64> {
        let mut p = vec![1.0, -2.0, 0.5];
        let mut state = vec![0.0; 3 * u.state_per_param()];
        let seg = [Segment {
            range: 0..3,
            regularize: true,
        }];
        for it in 0..iterations {
            let mut g = vec![0.1, -0.2, 0.3];
            apply(&u, &reg, &mut p, &mut g, &mut state, &seg, it).unwrap();
        }
        p
    }

    #[test]
    fn sgd_and_l2() {
        let p = step(Updater::sgd(0.5), Regularization::default(), 1);
        assert_eq!(p, vec![0.95, -1.9, 0.35]);
        let reg = Regularization {
            l2: 0.1,
            ..Default::default()
        };
        let p = step(Updater::sgd(1.0), reg, 1);
        assert!((p[0] - (1.0 - (0.1 + 0.1))).abs() < 1e-15);
    }

    #[test]
    fn adam_first_step_is_lr_times_sign() {
        // With bias correction the first Adam step is lr * g / (|g| + eps') ~ lr * sign(g).
        let p = step(Updater::adam(0.01), Regularization::default(), 1);
        assert!((p[0] - 0.99).abs() < 1e-6, "{p:?}");
        assert!((p[1] + 1.99).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn momentum_accumulates() {
        let one = step(Updater::nesterovs(0.1), Regularization::default(), 1);
        let two = step(Updater::nesterovs(0.1), Regularization::default(), 2);
        assert!((1.0 - two[0]) > 2.0 * (1.0 - one[0]) * 0.9);
        let rms = step(Updater::rmsprop(0.01), Regularization::default(), 3);
        let ada = step(Updater::adagrad(0.01), Regularization::default(), 3);
        assert!(rms[0] < 1.0 && ada[0] < 1.0);
        assert_eq!(
            step(Updater::NoOp, Regularization::default(), 3),
            vec![1.0, -2.0, 0.5]
        );
    }

    #[test]
    fn weight_decay_shrinks() {
        let reg = Regularization {
            weight_decay: 0.5,
            ..Default::default()
        };
        let p = step(Updater::sgd(0.1), reg, 1);
        assert!((p[0] - (1.0 - 0.01) * (1.0 - 0.05)).abs() < 1e-12);
    }

    #[test]
    fn stepping_the_parts_of_a_partition_gives_the_bits_of_one_whole_step() {
        let n = 11;
        // Two regularized segments around an unregularized one, cut across by the parts.
        let seg = [
            Segment {
                range: 0..4,
                regularize: true,
            },
            Segment {
                range: 4..6,
                regularize: false,
            },
            Segment {
                range: 6..n,
                regularize: true,
            },
        ];
        let reg = Regularization {
            l1: 0.01,
            l2: 0.02,
            weight_decay: 0.03,
        };
        let updaters = [
            Updater::sgd(0.1),
            Updater::nesterovs(0.1),
            Updater::adam(0.01),
            Updater::rmsprop(0.01),
            Updater::adagrad(0.01),
            Updater::NoOp,
        ];
        for u in updaters {
            let init: Vec<f64> = (0..n).map(|i| (i as f64 - 5.0) * 0.37).collect();
            let grad = |it: u64| -> Vec<f64> {
                (0..n)
                    .map(|i| ((i as u64 * 7 + it) % 5) as f64 * 0.1 - 0.2)
                    .collect()
            };
            let (mut whole, mut parted) = (init.clone(), init);
            let mut s_whole = vec![0.0; n * u.state_per_param()];
            let mut s_parted = s_whole.clone();
            for it in 0..4 {
                let mut g = grad(it);
                apply(&u, &reg, &mut whole, &mut g, &mut s_whole, &seg, it).unwrap();
                let mut g = grad(it);
                for part in [5..n, 0..3, 3..5] {
                    apply_part(&u, &reg, &mut parted, &mut g, &mut s_parted, &seg, it, part)
                        .unwrap();
                }
            }
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&whole), bits(&parted), "{u:?}");
            assert_eq!(bits(&s_whole), bits(&s_parted), "{u:?}");
        }
        let (mut p, mut g, mut st) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; 6]);
        let e = apply_part(
            &Updater::adam(0.1),
            &reg,
            &mut p,
            &mut g,
            &mut st,
            &[],
            0,
            2..4,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "apply_gradients_part: expected a part of the 3 parameters to update, but got \
             2..4; pass a range within 0..3"
        );
    }
}
