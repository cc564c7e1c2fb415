//! # dl4rs-eval: evaluation metrics that allocate nothing per batch
//!
//! The evaluation classes of ND4J (`org.nd4j.evaluation`) for dl4rs networks:
//!
//! | type | ND4J | for |
//! |------|------|-----|
//! | [`Evaluation`] | `Evaluation` | multi-class classification (softmax): accuracy, precision, recall, F1, FPR, MCC, top-N accuracy, [`ConfusionMatrix`] |
//! | [`EvaluationBinary`] | `EvaluationBinary` | independent binary outputs (sigmoid, multi-label) with per-output thresholds |
//! | [`RegressionEvaluation`] | `RegressionEvaluation` | per-column MSE, MAE, RMSE, RSE, Pearson correlation, R² |
//! | [`Roc`] | `ROC` | binary ROC: exact or thresholded AUROC, AUPRC, ROC and precision/recall curves |
//! | [`RocMultiClass`] | `ROCMultiClass` | one-vs-all ROC per class |
//!
//! All implement [`IEvaluation`], so a network's evaluation loop can update several in one
//! pass over `&mut [&mut dyn IEvaluation<f32>]`. Each batch is a pair of rank-2 arrays
//! `[batch, n]` (labels, network output) of `f32` or `f64` in any layout, with an optional
//! mask: `[batch]` (or `[batch, 1]`) masks whole examples, `[batch, n]` single outputs; an
//! entry whose mask is 0 is ignored. Time series are reshaped to `[batch·time, n]` by the
//! caller.
//!
//! ## No allocation per batch
//!
//! State is sized when the evaluation is built (or, when built with size 0, on its first
//! batch); later batches only update counters and sums, reading the arrays in place through
//! their strides. So in steady state `eval` makes **no heap allocation** — this is tested with
//! a counting global allocator. The one exception is exact [`Roc`], which stores every score:
//! reserve room with [`Roc::with_capacity`] (then `eval` allocates nothing until the capacity
//! is exceeded), or use [`Roc::with_threshold_steps`] for constant memory. Metrics, `stats()`
//! and errors may allocate; only the per-batch path is allocation-free.
//!
//! ## Errors, not panics
//!
//! Bad input (wrong rank, mismatched shapes, wrong class count, a mask that fits neither
//! masking mode, a NaN ROC score, a stale array) is an [`EvalError`] whose message names the
//! operation and says what was expected and what was found:
//!
//! ```
//! use dl4rs_array::NdArray;
//! use dl4rs_eval::Evaluation;
//!
//! let labels = NdArray::<f32>::zeros(&[64, 10]).unwrap();
//! let out = NdArray::<f32>::zeros(&[64, 9]).unwrap();
//! let err = Evaluation::new(10).eval(&labels, &out, None).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "Evaluation::eval: labels have shape [64, 10] but predictions have shape [64, 9]: \
//!      expected equal shapes"
//! );
//! ```
//!
//! A metric whose denominator is zero (precision of a class never predicted, AUROC without
//! negatives, ...) is `f64::NAN`; macro averages skip undefined classes, as DL4J does.
//!
//! ## Example: several evaluations in one pass
//!
//! ```
//! use dl4rs_array::{AsView, NdArray};
//! use dl4rs_eval::{Evaluation, IEvaluation, Roc, RocMultiClass};
//!
//! let mut acc = Evaluation::new(3).with_top_n(2);
//! let mut roc = RocMultiClass::with_threshold_steps(3, 100);
//! let labels = NdArray::<f32>::from_slice(&[2, 3], &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
//! let out = NdArray::<f32>::from_slice(&[2, 3], &[0.6, 0.3, 0.1, 0.5, 0.2, 0.3]).unwrap();
//! {
//!     let mut evals: [&mut dyn IEvaluation<f32>; 2] = [&mut acc, &mut roc];
//!     for e in evals.iter_mut() {
//!         e.eval(&labels.view(), &out.view(), None).unwrap();
//!     }
//! }
//! assert_eq!(acc.accuracy(), 0.5);
//! assert_eq!(acc.top_n_accuracy(), 1.0);
//! assert_eq!(roc.calculate_auc(0), 1.0);
//! println!("{}", acc.stats());
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod binary;
mod classification;
mod confusion;
mod error;
mod input;
mod regression;
mod roc;

pub use binary::EvaluationBinary;
pub use classification::{Averaging, Evaluation};
pub use confusion::ConfusionMatrix;
pub use error::EvalError;
pub use regression::RegressionEvaluation;
pub use roc::{PrPoint, Roc, RocMultiClass, RocPoint};

use dl4rs_array::{ArrayView, DataType};

/// Implemented by every evaluation, so a network can update several in one pass.
///
/// Object safe for each element type: `&mut [&mut dyn IEvaluation<f32>]` works. The concrete
/// types also have inherent `eval`, `reset` and `stats` methods (taking arrays or views), which
/// is what to call when the type is known.
pub trait IEvaluation<T: DataType> {
    /// One batch: labels and network outputs, both `[batch, n]` (rank 2; for time series the
    /// caller reshapes). `mask` is optional: `[batch]` or `[batch, 1]` (per example) or
    /// `[batch, n]` (per output); entries whose mask is 0 are ignored. In steady state this
    /// makes no heap allocation. On error the evaluation is unchanged.
    fn eval(
        &mut self,
        labels: &ArrayView<'_, T>,
        predictions: &ArrayView<'_, T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<(), EvalError>;

    /// Forgets every example seen, keeping the configuration (and allocated state).
    fn reset(&mut self);

    /// A human-readable summary (like DL4J's `stats()`).
    fn stats(&self) -> String;

    /// The concrete evaluation, for downcasting (e.g. to merge two of the same type).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// `num / den` as f64; NaN when `den` is 0 (an undefined metric).
pub(crate) fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        f64::NAN
    } else {
        num as f64 / den as f64
    }
}

/// A metric with 4 decimals, or "NaN".
pub(crate) fn fmt_metric(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v:.4}")
    }
}

/// Runs the README's example as a doc test so it can't go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
