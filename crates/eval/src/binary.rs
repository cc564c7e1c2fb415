//! [`EvaluationBinary`]: metrics for independent binary outputs (sigmoid units, multi-label
//! classification), ND4J `EvaluationBinary`: one set of TP/FP/TN/FN counts per output.

use std::any::Any;
use std::fmt::Write as _;

use dl4rs_array::{ArrayView, AsView, DataType};
use serde::{Deserialize, Serialize};

use crate::classification::mcc;
use crate::error::EvalError;
use crate::input::{Reads, column_error};
use crate::{IEvaluation, fmt_metric, ratio};

/// TP, FP, TN, FN of one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
struct Counts {
    tp: u64,
    fp: u64,
    tn: u64,
    fn_: u64,
}

/// Per-output binary classification metrics. Output `j` of an example is predicted positive
/// when its prediction is strictly greater than the output's threshold (0.5 unless
/// configured, DL4J's rule) and is actually positive when its label is at least 0.5. Masks
/// may be per example or per output. Undefined metrics are NaN (as in [`crate::Evaluation`]).
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_eval::EvaluationBinary;
///
/// // 2 outputs, 3 examples.
/// let labels = NdArray::<f32>::from_slice(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]).unwrap();
/// let out = NdArray::<f32>::from_slice(&[3, 2], &[0.9, 0.2, 0.6, 0.7, 0.4, 0.8]).unwrap();
/// let mut ev = EvaluationBinary::new(2);
/// ev.eval(&labels, &out, None).unwrap();
/// assert_eq!(ev.true_positives(0), 1);
/// assert_eq!(ev.false_positives(0), 1);
/// assert_eq!(ev.false_negatives(0), 1);
/// assert_eq!(ev.precision(0), 0.5);
/// assert_eq!(ev.accuracy(1), 1.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationBinary {
    counts: Vec<Counts>,
    thresholds: Vec<f64>,
    default_threshold: f64,
    names: Vec<String>,
}

const OP_EVAL: &str = "EvaluationBinary::eval";

impl EvaluationBinary {
    /// An evaluation of `num_outputs` outputs with threshold 0.5; `0` means "take the count from
    /// the first batch".
    pub fn new(num_outputs: usize) -> Self {
        EvaluationBinary {
            counts: vec![Counts::default(); num_outputs],
            thresholds: vec![0.5; num_outputs],
            default_threshold: 0.5,
            names: Vec::new(),
        }
    }

    /// One decision threshold per output (the output count is the number of thresholds).
    pub fn with_thresholds(thresholds: impl IntoIterator<Item = f64>) -> Self {
        let thresholds: Vec<f64> = thresholds.into_iter().collect();
        EvaluationBinary {
            counts: vec![Counts::default(); thresholds.len()],
            thresholds,
            default_threshold: 0.5,
            names: Vec::new(),
        }
    }

    /// Uses `threshold` for every output (also for outputs sized by the first batch).
    pub fn with_threshold(mut self, threshold: f64) -> Self {
        self.default_threshold = threshold;
        self.thresholds.fill(threshold);
        self
    }

    /// Names the outputs (used by [`EvaluationBinary::stats`]).
    pub fn with_labels<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Evaluates one batch (see [`IEvaluation::eval`]); accepts arrays or views.
    pub fn eval<T: DataType>(
        &mut self,
        labels: &impl AsView<T>,
        predictions: &impl AsView<T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<(), EvalError> {
        let reads = Reads::new(OP_EVAL, &labels.view(), &predictions.view(), mask)?;
        let b = reads.batch(OP_EVAL, "outputs")?;
        if self.counts.is_empty() {
            if b.cols() == 0 {
                return Err(column_error(OP_EVAL, "outputs", 1, &b));
            }
            self.counts = vec![Counts::default(); b.cols()];
            self.thresholds = vec![self.default_threshold; b.cols()];
        } else if b.cols() != self.counts.len() {
            return Err(column_error(OP_EVAL, "outputs", self.counts.len(), &b));
        }
        for i in 0..b.rows() {
            if !b.mask.keep_row(i) {
                continue;
            }
            for (j, (c, &t)) in self.counts.iter_mut().zip(&self.thresholds).enumerate() {
                if !b.mask.keep(i, j) {
                    continue;
                }
                let actual = b.labels.at(i, j) >= 0.5;
                let predicted = b.predictions.at(i, j) > t;
                match (actual, predicted) {
                    (true, true) => c.tp += 1,
                    (false, true) => c.fp += 1,
                    (false, false) => c.tn += 1,
                    (true, false) => c.fn_ += 1,
                }
            }
        }
        Ok(())
    }

    /// Forgets all counts (keeps outputs, thresholds and names).
    pub fn reset(&mut self) {
        self.counts.fill(Counts::default());
    }

    /// Adds `other`'s counts. Output counts and thresholds must match.
    pub fn merge(&mut self, other: &EvaluationBinary) -> Result<(), EvalError> {
        const OP: &str = "EvaluationBinary::merge";
        if self.counts.is_empty() {
            self.counts = vec![Counts::default(); other.counts.len()];
            self.thresholds.clone_from(&other.thresholds);
        }
        if other.counts.is_empty() {
            return Ok(());
        }
        if other.counts.len() != self.counts.len() {
            return Err(EvalError::Merge {
                op: OP,
                message: format!(
                    "this evaluation has {} outputs but the other has {}: expected equal output counts",
                    self.counts.len(),
                    other.counts.len()
                ),
            });
        }
        if other.thresholds != self.thresholds {
            return Err(EvalError::Merge {
                op: OP,
                message: format!(
                    "this evaluation has thresholds {:?} but the other has {:?}: expected equal thresholds",
                    self.thresholds, other.thresholds
                ),
            });
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            a.tp += b.tp;
            a.fp += b.fp;
            a.tn += b.tn;
            a.fn_ += b.fn_;
        }
        if self.names.is_empty() {
            self.names.clone_from(&other.names);
        }
        Ok(())
    }

    /// Number of outputs.
    pub fn num_outputs(&self) -> usize {
        self.counts.len()
    }

    /// The decision threshold of `output` (NaN out of range).
    pub fn threshold(&self, output: usize) -> f64 {
        self.thresholds.get(output).copied().unwrap_or(f64::NAN)
    }

    fn c(&self, output: usize) -> Counts {
        self.counts.get(output).copied().unwrap_or_default()
    }

    /// True positives of `output`.
    pub fn true_positives(&self, output: usize) -> u64 {
        self.c(output).tp
    }

    /// False positives of `output`.
    pub fn false_positives(&self, output: usize) -> u64 {
        self.c(output).fp
    }

    /// True negatives of `output`.
    pub fn true_negatives(&self, output: usize) -> u64 {
        self.c(output).tn
    }

    /// False negatives of `output`.
    pub fn false_negatives(&self, output: usize) -> u64 {
        self.c(output).fn_
    }

    /// Values counted for `output` (masked-out entries excluded).
    pub fn total_count(&self, output: usize) -> u64 {
        let c = self.c(output);
        c.tp + c.fp + c.tn + c.fn_
    }

    /// (TP + TN) / total of `output`.
    pub fn accuracy(&self, output: usize) -> f64 {
        let c = self.c(output);
        ratio(c.tp + c.tn, self.total_count(output))
    }

    /// TP / (TP + FP) of `output`.
    pub fn precision(&self, output: usize) -> f64 {
        let c = self.c(output);
        ratio(c.tp, c.tp + c.fp)
    }

    /// TP / (TP + FN) of `output`.
    pub fn recall(&self, output: usize) -> f64 {
        let c = self.c(output);
        ratio(c.tp, c.tp + c.fn_)
    }

    /// 2·TP / (2·TP + FP + FN) of `output`.
    pub fn f1(&self, output: usize) -> f64 {
        let c = self.c(output);
        ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn_)
    }

    /// FP / (FP + TN) of `output`.
    pub fn false_positive_rate(&self, output: usize) -> f64 {
        let c = self.c(output);
        ratio(c.fp, c.fp + c.tn)
    }

    /// Matthews correlation of `output`.
    pub fn matthews_correlation(&self, output: usize) -> f64 {
        let c = self.c(output);
        mcc(c.tp, c.fp, c.fn_, c.tn)
    }

    fn average(&self, f: impl Fn(usize) -> f64) -> f64 {
        let (sum, n) = (0..self.counts.len())
            .map(f)
            .filter(|v| !v.is_nan())
            .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
        if n == 0 { f64::NAN } else { sum / n as f64 }
    }

    /// Accuracy averaged over outputs (outputs where it is undefined skipped).
    pub fn average_accuracy(&self) -> f64 {
        self.average(|o| self.accuracy(o))
    }

    /// Precision averaged over outputs (outputs where it is undefined skipped).
    pub fn average_precision(&self) -> f64 {
        self.average(|o| self.precision(o))
    }

    /// Recall averaged over outputs (outputs where it is undefined skipped).
    pub fn average_recall(&self) -> f64 {
        self.average(|o| self.recall(o))
    }

    /// F1 averaged over outputs (outputs where it is undefined skipped).
    pub fn average_f1(&self) -> f64 {
        self.average(|o| self.f1(o))
    }

    /// A table with one row per output: accuracy, precision, recall, F1, counts, threshold.
    pub fn stats(&self) -> String {
        let mut s = String::new();
        let name = |o: usize| self.names.get(o).cloned().unwrap_or_else(|| o.to_string());
        let w = (0..self.counts.len())
            .map(|o| name(o).len())
            .max()
            .unwrap_or(0)
            .max(7);
        let _ = writeln!(
            s,
            "{:<w$}  {:>8}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>9}",
            "Output", "Accuracy", "Precision", "Recall", "F1", "TP", "FP", "TN", "FN", "Threshold"
        );
        for o in 0..self.counts.len() {
            let c = self.c(o);
            let _ = writeln!(
                s,
                "{:<w$}  {:>8}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>9}",
                name(o),
                fmt_metric(self.accuracy(o)),
                fmt_metric(self.precision(o)),
                fmt_metric(self.recall(o)),
                fmt_metric(self.f1(o)),
                c.tp,
                c.fp,
                c.tn,
                c.fn_,
                self.threshold(o),
            );
        }
        let _ = write!(
            s,
            "{:<w$}  {:>8}  {:>9}  {:>8}  {:>8}",
            "Average",
            fmt_metric(self.average_accuracy()),
            fmt_metric(self.average_precision()),
            fmt_metric(self.average_recall()),
            fmt_metric(self.average_f1()),
        );
        s
    }
}

impl<T: DataType> IEvaluation<T> for EvaluationBinary {
    fn eval(
        &mut self,
        labels: &ArrayView<'_, T>,
        predictions: &ArrayView<'_, T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<(), EvalError> {
        EvaluationBinary::eval(self, labels, predictions, mask)
    }

    fn reset(&mut self) {
        EvaluationBinary::reset(self)
    }

    fn stats(&self) -> String {
        EvaluationBinary::stats(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
