//! Updaters (DL4J's `IUpdater`s) and regularization, applied to the network's flat parameter,
//! gradient and state arrays in one pass per parameter segment: no allocation, no per-layer
//! objects. Biases and normalization parameters are not regularized (DL4J's default).

use std::ops::Range;

use dl4rs_array::ops::update::{self, Step};
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

/// One update step (`iteration` 0-based) on the elements `part` of the flat arrays (the
/// updater state's arrays at the same positions; `0..params.len()` for the whole network).
/// L1/L2 go into the gradients of the regularized segments, then the updater runs as one
/// vectorized pass (its arithmetic is per element, so the segments need not be visited one
/// by one), then weight decay shrinks the regularized segments: per element the order DL4J
/// applies them in. Each element's step depends on that element alone, so updating the
/// parts of a partition one by one, or on different replicas, gives the bits of one whole
/// step: ParallelWrapper's trainers each step their own part.
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
    check_part(n, &part)?;
    let (s0, s1) = state_arrays(updater, state, n);
    let r = part.clone();
    step(
        updater,
        reg,
        &mut params[r.clone()],
        &mut grads[r.clone()],
        s0.map(|s| &mut s[r.clone()]),
        s1.map(|s| &mut s[r.clone()]),
        segments,
        part.start,
        iteration,
    )
}

/// The mean of `contributors` updater steps on `part`, each from the same parameters and
/// state with its own gradient, written over the parameters and state there: what averaging
/// the replicas after each stepped on its batch gives, when they started the round equal.
/// The gradients come in order: `grads` (the model's own) at position `own`, the others'
/// parts in `others`, `part.len()` values each, in one pass of the kernels' `averaged_step`
/// (no step is stored). Each step is [`apply_part`]'s arithmetic, and
/// the mean is summed in that order and then scaled by `scale` (`1 / contributors`), as the
/// exchange sums and scales the replicas' parameters: with two contributors, the same bits.
#[allow(clippy::too_many_arguments)] // apply's arguments and the averaging's
pub(crate) fn apply_averaged_part<T: DataType>(
    updater: &Updater,
    reg: &Regularization,
    params: &mut [T],
    grads: &[T],
    state: &mut [T],
    segments: &[Segment],
    iteration: u64,
    part: Range<usize>,
    (contributors, own, others, scale): (usize, Option<usize>, &[T], T),
) -> Result<(), ArrayError> {
    let n = params.len();
    check_part(n, &part)?;
    let len = part.len();
    let expected = (contributors - usize::from(own.is_some())) * len;
    if others.len() != expected || own.is_some_and(|o| o >= contributors) {
        return Err(ArrayError::Invalid {
            op: "apply_averaged_gradients_part",
            message: format!(
                "expected {expected} values of other gradients ({contributors} contributors, \
                 own at {own:?}, a part of {len}), but got {}; pass each other contributor's \
                 gradient on the part, in order",
                others.len()
            ),
        });
    }
    let (mut s0, mut s1) = state_arrays(updater, state, n);
    let t = T::from_f64;
    let kernel_step = kernel_step(updater, iteration);
    let l1_l2 = (reg.l1 != 0.0 || reg.l2 != 0.0).then(|| (t(reg.l1), t(reg.l2)));
    let decay = (reg.weight_decay != 0.0).then(|| t(updater.learning_rate() * reg.weight_decay));
    // Runs of the part with one treatment: a segment's overlap, or a gap between segments
    // (not regularized).
    let mut lo = part.start;
    while lo < part.end {
        let (hi, regularize) = match segments.iter().find(|s| s.range.contains(&lo)) {
            Some(s) => (s.range.end.min(part.end), s.regularize),
            None => {
                let next = segments.iter().map(|s| s.range.start).filter(|&x| x > lo);
                (next.min().unwrap_or(part.end).min(part.end), false)
            }
        };
        let grad = |c: usize| -> &[T] {
            match own {
                Some(o) if o == c => &grads[lo..hi],
                _ => {
                    let k = c - usize::from(own.is_some_and(|o| c > o));
                    let at = k * len + lo - part.start;
                    &others[at..at + hi - lo]
                }
            }
        };
        let (l1_l2, decay) = if regularize {
            (l1_l2, decay)
        } else {
            (None, None)
        };
        update::averaged_step(
            kernel_step,
            l1_l2,
            decay,
            contributors,
            grad,
            scale,
            &mut params[lo..hi],
            s0.as_deref_mut().map_or(&mut [], |s| &mut s[lo..hi]),
            s1.as_deref_mut().map_or(&mut [], |s| &mut s[lo..hi]),
        )?;
        lo = hi;
    }
    Ok(())
}

/// The kernels' arithmetic of `updater`'s step `iteration + 1` (Adam's bias correction
/// folded into its rate).
fn kernel_step<T: DataType>(updater: &Updater, iteration: u64) -> Step<T> {
    let t = T::from_f64;
    match *updater {
        Updater::Sgd { learning_rate } => Step::Sgd {
            lr: t(learning_rate),
        },
        Updater::Nesterovs {
            learning_rate,
            momentum,
        } => Step::Nesterovs {
            lr: t(learning_rate),
            mu: t(momentum),
        },
        Updater::Adam {
            learning_rate,
            beta1,
            beta2,
            epsilon,
        } => Step::Adam {
            alpha: t(adam_alpha(learning_rate, beta1, beta2, iteration)),
            b1: t(beta1),
            b2: t(beta2),
            eps: t(epsilon),
        },
        Updater::RmsProp {
            learning_rate,
            rms_decay,
            epsilon,
        } => Step::RmsProp {
            lr: t(learning_rate),
            decay: t(rms_decay),
            eps: t(epsilon),
        },
        Updater::AdaGrad {
            learning_rate,
            epsilon,
        } => Step::AdaGrad {
            lr: t(learning_rate),
            eps: t(epsilon),
        },
        Updater::NoOp => Step::NoOp,
    }
}

/// Adam's learning rate with the bias correction of step `iteration + 1`.
fn adam_alpha(learning_rate: f64, beta1: f64, beta2: f64, iteration: u64) -> f64 {
    let step = (iteration + 1) as i32;
    learning_rate * (1.0 - beta2.powi(step)).sqrt() / (1.0 - beta1.powi(step))
}

fn check_part(n: usize, part: &Range<usize>) -> Result<(), ArrayError> {
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
    Ok(())
}

/// The updater's state arrays, `n` values each (Adam: `m`, `v`; one for Nesterovs,
/// RmsProp, AdaGrad; none for SGD and NoOp).
fn state_arrays<'a, T>(
    updater: &Updater,
    state: &'a mut [T],
    n: usize,
) -> (Option<&'a mut [T]>, Option<&'a mut [T]>) {
    match updater.state_per_param() {
        0 => (None, None),
        1 => (Some(&mut state[..n]), None),
        _ => {
            let (m, v) = state.split_at_mut(n);
            (Some(m), Some(&mut v[..n]))
        }
    }
}

/// The updater's arithmetic on one run of elements starting at `at` of the flat arrays:
/// `p`, `g` and the state arrays of equal length. L1/L2 into `g` on the regularized
/// segments, the updater, weight decay on the regularized segments.
#[allow(clippy::too_many_arguments)] // one run's arrays and where it lies
fn step<T: DataType>(
    updater: &Updater,
    reg: &Regularization,
    p: &mut [T],
    g: &mut [T],
    s0: Option<&mut [T]>,
    s1: Option<&mut [T]>,
    segments: &[Segment],
    at: usize,
    iteration: u64,
) -> Result<(), ArrayError> {
    let t = T::from_f64;
    let len = p.len();
    // The regularized segments' overlap with the run, relative to it.
    let overlaps = || {
        segments
            .iter()
            .filter(|s| s.regularize)
            .filter_map(move |s| {
                let (lo, hi) = (s.range.start.max(at), s.range.end.min(at + len));
                (lo < hi).then(|| lo - at..hi - at)
            })
    };
    if reg.l1 != 0.0 || reg.l2 != 0.0 {
        for o in overlaps() {
            update::l1_l2(t(reg.l1), t(reg.l2), &p[o.clone()], &mut g[o])?;
        }
    }
    update::step_in_place(
        kernel_step(updater, iteration),
        g,
        s0.unwrap_or_default(),
        s1.unwrap_or_default(),
        p,
    )?;
    if reg.weight_decay != 0.0 {
        let k = t(updater.learning_rate() * reg.weight_decay);
        for o in overlaps() {
            update::weight_decay(k, &mut p[o]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole-array step.
    fn apply(
        u: &Updater,
        reg: &Regularization,
        p: &mut [f64],
        g: &mut [f64],
        state: &mut [f64],
        segments: &[Segment],
        iteration: u64,
    ) -> Result<(), ArrayError> {
        let n = p.len();
        apply_part(u, reg, p, g, state, segments, iteration, 0..n)
    }

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

    #[test]
    fn the_averaged_part_is_the_mean_of_the_replicas_steps_bit_for_bit() {
        // Longer than a tile, cut by the part and by the segments.
        let n = 1300;
        let seg = [
            Segment {
                range: 0..700,
                regularize: true,
            },
            Segment {
                range: 700..n,
                regularize: false,
            },
        ];
        let reg = Regularization {
            l1: 0.001,
            l2: 0.002,
            weight_decay: 0.003,
        };
        let wave = |k: u64| -> Vec<f64> {
            (0..n)
                .map(|i| (((i as u64 * 31 + k * 17) % 23) as f64 - 11.0) * 0.013)
                .collect()
        };
        for u in [
            Updater::sgd(0.1),
            Updater::nesterovs(0.1),
            Updater::adam(0.01),
            Updater::rmsprop(0.01),
            Updater::adagrad(0.01),
        ] {
            for contributors in 1..=3 {
                let p0 = wave(1);
                let s0: Vec<f64> = wave(2)
                    .into_iter()
                    .chain(wave(3))
                    .take(n * u.state_per_param())
                    .map(f64::abs)
                    .collect();
                let grads: Vec<Vec<f64>> = (0..contributors as u64).map(|c| wave(10 + c)).collect();
                // The replicas: each steps the whole arrays with its gradient.
                let stepped: Vec<(Vec<f64>, Vec<f64>)> = grads
                    .iter()
                    .map(|g| {
                        let (mut p, mut s, mut g) = (p0.clone(), s0.clone(), g.clone());
                        apply(&u, &reg, &mut p, &mut g, &mut s, &seg, 4).unwrap();
                        (p, s)
                    })
                    .collect();
                let scale = 1.0 / contributors as f64;
                type Stepped = (Vec<f64>, Vec<f64>);
                let mean = |pick: fn(&Stepped) -> &Vec<f64>, len| {
                    (0..len)
                        .map(|i| {
                            let sum = stepped
                                .iter()
                                .skip(1)
                                .fold(pick(&stepped[0])[i], |a, r| a + pick(r)[i]);
                            scale * sum
                        })
                        .collect::<Vec<f64>>()
                };
                let (want_p, want_s) = (mean(|r| &r.0, n), mean(|r| &r.1, s0.len()));
                // One model, own gradient at position 1 (or 0 alone), the part 100..1250.
                let own = contributors.min(2) - 1;
                let part = 100..1250;
                let others: Vec<f64> = (0..contributors)
                    .filter(|&c| c != own)
                    .flat_map(|c| grads[c][part.clone()].to_vec())
                    .collect();
                let (mut p, mut s) = (p0.clone(), s0.clone());
                let averaged = (contributors, Some(own), &others[..], scale);
                let own_grad = grads[own].clone();
                apply_averaged_part(
                    &u,
                    &reg,
                    &mut p,
                    &own_grad,
                    &mut s,
                    &seg,
                    4,
                    part.clone(),
                    averaged,
                )
                .unwrap();
                for i in 0..n {
                    let (w, h) = if part.contains(&i) {
                        (want_p[i], p[i])
                    } else {
                        (p0[i], p[i])
                    };
                    assert_eq!(w.to_bits(), h.to_bits(), "{u:?} {contributors} param {i}");
                }
                for i in 0..s.len() {
                    let w = if part.contains(&(i % n)) {
                        want_s[i]
                    } else {
                        s0[i]
                    };
                    assert_eq!(
                        w.to_bits(),
                        s[i].to_bits(),
                        "{u:?} {contributors} state {i}"
                    );
                }
            }
        }
        let (mut p, mut st) = (vec![0.0; 4], vec![0.0; 8]);
        let e = apply_averaged_part(
            &Updater::adam(0.1),
            &Regularization::default(),
            &mut p,
            &[0.0; 4],
            &mut st,
            &[],
            0,
            0..4,
            (2, Some(0), &[0.0; 3], 0.5),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("expected 4 values of other gradients"),
            "{e}"
        );
    }
}
