//! DL4J's threshold encoding with residuals (Strom 2015, `EncodedGradientsAccumulator`), as
//! the optional message format of `SharedGradients`, with its `AdaptiveThresholdAlgorithm`.
//!
//! Each worker keeps a residual `r` (what it has not sent yet). Per round it forms
//! `v = g + r` from its gradient `g`, sends `+τ` for every `v_i ≥ τ` and `−τ` for every
//! `v_i ≤ −τ` (an index with a sign bit), and keeps `r = v − sent`. So nothing is lost, only
//! delayed: small gradient components accumulate in the residual until they cross `τ`. The
//! message has room for DL4J's `maxUpdate = numParams / 16 + 5` entries (preallocated); when
//! more elements cross `τ`, the rest stay in the residual for a later round (DL4J switches to a
//! dense bitmap instead). Decoding adds `±τ` at each index.
//!
//! The adaptive threshold (DL4J's defaults): start at `5e-4` (ParallelWrapper's), and after each
//! round compare the sparsity ratio `entries / numParams` with the target range
//! `[1e-4, 1e-2]`: below it, `τ ×= decay`; above it, `τ /= decay`, with `decay = 0.5^(1/20)`
//! (a factor 2 in 20 rounds). Unlike DL4J, which encodes the updater's output, dl4rs encodes
//! the gradients before the updater step (the "allreduce before the updater"), so
//! every replica applies the same decoded gradient with its own, identical, updater state.

use dl4rs_array::DataType;

use crate::exchange::{INDEX_MASK, SIGN_BIT};

/// Settings of the adaptive threshold (DL4J's `AdaptiveThresholdAlgorithm`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdEncoding {
    /// The first round's threshold (ParallelWrapper's default: 5e-4).
    pub initial_threshold: f64,
    /// Below this sparsity ratio the threshold decreases (default 1e-4).
    pub min_sparsity: f64,
    /// Above this sparsity ratio the threshold increases (default 1e-2).
    pub max_sparsity: f64,
    /// The factor per round, in `[0.5, 1)` (default `0.5^(1/20)`).
    pub decay: f64,
}

impl Default for ThresholdEncoding {
    fn default() -> Self {
        ThresholdEncoding {
            initial_threshold: 5e-4,
            min_sparsity: 1e-4,
            max_sparsity: 1e-2,
            decay: 0.5f64.powf(1.0 / 20.0),
        }
    }
}

impl ThresholdEncoding {
    /// `Err` with the reason when the settings cannot work (DL4J's preconditions).
    pub(crate) fn check(&self) -> Result<(), String> {
        if !(self.initial_threshold > 0.0 && self.initial_threshold.is_finite()) {
            return Err(format!(
                "the initial threshold must be positive, found {}",
                self.initial_threshold
            ));
        }
        if !(self.min_sparsity > 0.0 && self.min_sparsity <= self.max_sparsity) {
            return Err(format!(
                "expected 0 < min_sparsity <= max_sparsity, found {} and {}",
                self.min_sparsity, self.max_sparsity
            ));
        }
        if !(0.5..1.0).contains(&self.decay) {
            return Err(format!(
                "the decay must be in [0.5, 1), found {}",
                self.decay
            ));
        }
        Ok(())
    }
}

/// One worker's encoder: residual, message buffer and threshold.
pub(crate) struct Encoder<T> {
    settings: ThresholdEncoding,
    residual: Vec<T>,
    message: Vec<u32>,
    capacity: usize,
    threshold: f64,
}

impl<T: DataType> Encoder<T> {
    /// An encoder for `len` values (`len < 2^31`).
    pub(crate) fn new(len: usize, settings: ThresholdEncoding) -> Encoder<T> {
        let capacity = len / 16 + 5;
        Encoder {
            settings,
            residual: vec![T::ZERO; len],
            message: Vec::with_capacity(capacity),
            capacity,
            threshold: settings.initial_threshold,
        }
    }

    /// Encodes `gradient + residual`; returns the message and the threshold it used, then
    /// adapts the threshold for the next round.
    pub(crate) fn encode(&mut self, gradient: &[T]) -> (&[u32], T) {
        let tau = T::from_f64(self.threshold);
        self.message.clear();
        for (i, (r, &g)) in self.residual.iter_mut().zip(gradient).enumerate() {
            let v = *r + g;
            if self.message.len() < self.capacity && v >= tau {
                self.message.push(i as u32);
                *r = v - tau;
            } else if self.message.len() < self.capacity && v <= -tau {
                self.message.push(i as u32 | SIGN_BIT);
                *r = v + tau;
            } else {
                *r = v;
            }
        }
        let sparsity = self.message.len() as f64 / self.residual.len().max(1) as f64;
        let s = self.settings;
        if sparsity < s.min_sparsity {
            self.threshold *= s.decay;
        } else if sparsity > s.max_sparsity {
            self.threshold /= s.decay;
        }
        debug_assert!(
            self.message
                .iter()
                .all(|&e| (e & INDEX_MASK) as usize <= gradient.len())
        );
        (&self.message, tau)
    }

    /// The threshold the next round will use.
    #[cfg(test)]
    pub(crate) fn threshold(&self) -> f64 {
        self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_lost_only_delayed() {
        let settings = ThresholdEncoding {
            initial_threshold: 0.1,
            ..ThresholdEncoding::default()
        };
        let mut enc = Encoder::<f64>::new(4, settings);
        let g = [0.25, -0.05, 0.0, -0.3];
        let mut sent = [0.0f64; 4];
        for _ in 0..10 {
            let (msg, tau) = enc.encode(&g);
            for &e in msg {
                let i = (e & INDEX_MASK) as usize;
                sent[i] += if e & SIGN_BIT != 0 { -tau } else { tau };
            }
        }
        // sent + residual == everything the worker produced.
        for i in 0..4 {
            assert!(
                (sent[i] + enc.residual[i] - 10.0 * g[i]).abs() < 1e-12,
                "{i}"
            );
        }
    }

    #[test]
    fn the_threshold_adapts_towards_the_target_sparsity() {
        let mut enc = Encoder::<f32>::new(1000, ThresholdEncoding::default());
        let tiny = vec![1e-7f32; 1000];
        let t0 = enc.threshold();
        enc.encode(&tiny);
        assert!(
            enc.threshold() < t0,
            "too sparse: the threshold must decrease"
        );
        let big = vec![1.0f32; 1000];
        let t1 = enc.threshold();
        enc.encode(&big);
        assert!(
            enc.threshold() > t1,
            "too dense: the threshold must increase"
        );
        // Capacity: at most len / 16 + 5 entries.
        let (msg, _) = enc.encode(&big);
        assert_eq!(msg.len(), 1000 / 16 + 5);
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = ThresholdEncoding {
            decay: 1.0,
            ..ThresholdEncoding::default()
        };
        assert!(bad.check().unwrap_err().contains("decay"));
    }
}
