//! [`Evaluation`]: multi-class classification metrics (ND4J `Evaluation`) from a confusion
//! matrix that is sized once, so evaluating a batch only increments counters.
//!
//! ## Undefined metrics
//!
//! A per-class metric whose denominator is zero (precision of a class that was never
//! predicted, recall of a class that never occurred, ...) is `f64::NAN`, never a made-up 0.
//! Macro averages follow DL4J and skip classes whose metric is undefined (they average over the
//! classes where it is defined; NaN when there are none). Micro averages pool the counts of all
//! classes first. A class index out of range gives NaN as well.

use std::any::Any;
use std::fmt::Write as _;

use dl4rs_array::{ArrayView, AsView, DataType};
use serde::{Deserialize, Serialize};

use crate::confusion::ConfusionMatrix;
use crate::error::EvalError;
use crate::input::{Mask, Reads, column_error};
use crate::{IEvaluation, fmt_metric, ratio};

/// How per-class metrics are combined into one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Averaging {
    /// The unweighted mean of the per-class values (each class counts the same; classes where
    /// the metric is undefined are skipped, as DL4J does).
    Macro,
    /// The metric computed from the true/false positive/negative counts summed over classes
    /// (each example counts the same).
    Micro,
}

/// Multi-class classification metrics: accuracy, precision, recall, F1, false positive rate,
/// Matthews correlation, top-N accuracy and the confusion matrix.
///
/// The true class of an example is the argmax of its label row (one-hot or probabilities), the
/// predicted class the argmax of its prediction row (first index on ties; NaN entries never
/// win unless every entry is NaN, then class 0).
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_eval::{Averaging, Evaluation};
///
/// // 3 examples, 3 classes: true classes 0, 1, 2; predicted 0, 2, 2.
/// let labels = NdArray::<f32>::from_slice(&[3, 3], &[
///     1.0, 0.0, 0.0,
///     0.0, 1.0, 0.0,
///     0.0, 0.0, 1.0,
/// ]).unwrap();
/// let out = NdArray::<f32>::from_slice(&[3, 3], &[
///     0.7, 0.2, 0.1,
///     0.1, 0.3, 0.6,
///     0.2, 0.2, 0.6,
/// ]).unwrap();
/// let mut ev = Evaluation::with_labels(["cat", "dog", "bird"]);
/// ev.eval(&labels, &out, None).unwrap();
/// assert!((ev.accuracy() - 2.0 / 3.0).abs() < 1e-12);
/// assert!(ev.precision(1).is_nan());          // "dog" was never predicted
/// assert_eq!(ev.recall(2), 1.0);
/// assert_eq!(ev.precision(2), 0.5);
/// // Macro precision averages classes 0 and 2 only: (1 + 0.5) / 2.
/// assert_eq!(ev.precision_averaged(Averaging::Macro), 0.75);
/// assert!(ev.stats().contains("Accuracy:"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    num_classes: usize,
    labels: Vec<String>,
    top_n: usize,
    top_n_correct: u64,
    top_n_total: u64,
    confusion: ConfusionMatrix,
}

const OP_EVAL: &str = "Evaluation::eval";

impl Evaluation {
    /// An evaluation for `num_classes` classes; `0` means "take the class count from the first
    /// batch" (that batch then allocates the confusion matrix).
    pub fn new(num_classes: usize) -> Self {
        Evaluation {
            num_classes,
            labels: Vec::new(),
            top_n: 1,
            top_n_correct: 0,
            top_n_total: 0,
            confusion: ConfusionMatrix::new(num_classes),
        }
    }

    /// An evaluation whose classes have names (class `i` is `names[i]`); the class count is
    /// the number of names.
    pub fn with_labels<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        let labels: Vec<String> = names.into_iter().map(Into::into).collect();
        let mut ev = Evaluation::new(labels.len());
        ev.labels = labels;
        ev
    }

    /// Also track top-N accuracy: an example counts as correct when fewer than `n` classes
    /// have a strictly higher predicted probability than its true class (DL4J's rule). `n` of
    /// 0 is taken as 1.
    pub fn with_top_n(mut self, n: usize) -> Self {
        self.top_n = n.max(1);
        self
    }

    /// Evaluates one batch (see [`IEvaluation::eval`]); accepts arrays or views.
    ///
    /// A `[batch, n]` mask must be constant along each row, because a row is one decision:
    /// an example is either evaluated or not.
    pub fn eval<T: DataType>(
        &mut self,
        labels: &impl AsView<T>,
        predictions: &impl AsView<T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<(), EvalError> {
        let reads = Reads::new(OP_EVAL, &labels.view(), &predictions.view(), mask)?;
        let b = reads.batch(OP_EVAL, "classes")?;
        let cols = b.cols();
        if self.num_classes == 0 {
            if cols == 0 {
                return Err(column_error(OP_EVAL, "classes", 1, &b));
            }
            // First batch of an unsized evaluation: the one allocation of its life.
            self.num_classes = cols;
            self.confusion = ConfusionMatrix::new(cols);
        } else if cols != self.num_classes {
            return Err(column_error(OP_EVAL, "classes", self.num_classes, &b));
        }
        if let Mask::PerOutput(m) = &b.mask {
            for i in 0..m.rows {
                let first = m.at(i, 0) != 0.0;
                if let Some(j) = (1..m.cols).find(|&j| (m.at(i, j) != 0.0) != first) {
                    return Err(EvalError::Invalid {
                        op: OP_EVAL,
                        message: format!(
                            "mask row {i} keeps output {} but not output {}: expected a per-output \
                             mask to be constant along each row (an example is one decision), or \
                             a [batch] mask",
                            if first { 0 } else { j },
                            if first { j } else { 0 },
                        ),
                    });
                }
            }
        }
        for i in 0..b.rows() {
            if !b.mask.keep(i, 0) {
                continue;
            }
            let actual = b.labels.argmax_row(i);
            let predicted = b.predictions.argmax_row(i);
            self.confusion.add(actual, predicted);
            if self.top_n > 1 {
                let p_true = b.predictions.at(i, actual);
                let higher = (0..cols)
                    .filter(|&j| b.predictions.at(i, j) > p_true)
                    .count();
                if higher < self.top_n {
                    self.top_n_correct += 1;
                }
                self.top_n_total += 1;
            }
        }
        Ok(())
    }

    /// Forgets all examples (keeps the class count, names and top-N setting).
    pub fn reset(&mut self) {
        self.confusion.clear();
        self.top_n_correct = 0;
        self.top_n_total = 0;
    }

    /// Adds `other`'s counts to this evaluation, as if this one had also seen its batches.
    /// An unsized evaluation takes `other`'s size. Class counts and top-N settings must match.
    pub fn merge(&mut self, other: &Evaluation) -> Result<(), EvalError> {
        const OP: &str = "Evaluation::merge";
        if self.num_classes == 0 {
            self.num_classes = other.num_classes;
            self.confusion = ConfusionMatrix::new(other.num_classes);
        }
        if other.num_classes != 0 && other.num_classes != self.num_classes {
            return Err(EvalError::Merge {
                op: OP,
                message: format!(
                    "this evaluation has {} classes but the other has {}: expected equal class counts",
                    self.num_classes, other.num_classes
                ),
            });
        }
        if other.top_n != self.top_n {
            return Err(EvalError::Merge {
                op: OP,
                message: format!(
                    "this evaluation has top_n {} but the other has {}: expected equal top_n",
                    self.top_n, other.top_n
                ),
            });
        }
        if other.num_classes == 0 {
            return Ok(());
        }
        self.confusion.add_all(&other.confusion);
        self.top_n_correct += other.top_n_correct;
        self.top_n_total += other.top_n_total;
        if self.labels.is_empty() {
            self.labels.clone_from(&other.labels);
        }
        Ok(())
    }

    /// Number of classes (0 while an unsized evaluation has seen no batch).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The class names given to [`Evaluation::with_labels`] (empty when none).
    pub fn class_names(&self) -> &[String] {
        &self.labels
    }

    /// The name of class `class`: its label when names were given, else its index.
    pub fn class_name(&self, class: usize) -> String {
        self.labels
            .get(class)
            .cloned()
            .unwrap_or_else(|| class.to_string())
    }

    /// Examples evaluated (masked-out examples excluded).
    pub fn num_examples(&self) -> u64 {
        self.confusion.total()
    }

    /// The confusion matrix (rows actual, columns predicted).
    pub fn confusion_matrix(&self) -> &ConfusionMatrix {
        &self.confusion
    }

    /// Examples of class `class` predicted as `class`.
    pub fn true_positives(&self, class: usize) -> u64 {
        self.confusion.count(class, class)
    }

    /// Examples of another class predicted as `class`.
    pub fn false_positives(&self, class: usize) -> u64 {
        self.confusion.predicted_total(class) - self.true_positives(class)
    }

    /// Examples of class `class` predicted as another class.
    pub fn false_negatives(&self, class: usize) -> u64 {
        self.confusion.actual_total(class) - self.true_positives(class)
    }

    /// Examples of another class predicted as another class.
    pub fn true_negatives(&self, class: usize) -> u64 {
        self.num_examples()
            - self.true_positives(class)
            - self.false_positives(class)
            - self.false_negatives(class)
    }

    fn in_range(&self, class: usize) -> bool {
        class < self.num_classes
    }

    /// Fraction of examples whose predicted class is the true class (NaN before any example).
    pub fn accuracy(&self) -> f64 {
        ratio(self.confusion.correct(), self.num_examples())
    }

    /// Top-N accuracy (see [`Evaluation::with_top_n`]); equals [`Evaluation::accuracy`] when
    /// N is 1.
    pub fn top_n_accuracy(&self) -> f64 {
        if self.top_n <= 1 {
            self.accuracy()
        } else {
            ratio(self.top_n_correct, self.top_n_total)
        }
    }

    /// The N of top-N accuracy.
    pub fn top_n(&self) -> usize {
        self.top_n
    }

    /// TP / (TP + FP) for `class`; NaN when the class was never predicted.
    pub fn precision(&self, class: usize) -> f64 {
        if !self.in_range(class) {
            return f64::NAN;
        }
        ratio(
            self.true_positives(class),
            self.true_positives(class) + self.false_positives(class),
        )
    }

    /// TP / (TP + FN) for `class`; NaN when the class never occurred.
    pub fn recall(&self, class: usize) -> f64 {
        if !self.in_range(class) {
            return f64::NAN;
        }
        ratio(
            self.true_positives(class),
            self.true_positives(class) + self.false_negatives(class),
        )
    }

    /// F1 = 2·TP / (2·TP + FP + FN) for `class` (the harmonic mean of precision and recall
    /// where both are defined, 0 when the class occurred but was never predicted); NaN when
    /// the class neither occurred nor was predicted.
    pub fn f1(&self, class: usize) -> f64 {
        if !self.in_range(class) {
            return f64::NAN;
        }
        let tp = self.true_positives(class);
        ratio(
            2 * tp,
            2 * tp + self.false_positives(class) + self.false_negatives(class),
        )
    }

    /// FP / (FP + TN) for `class`; NaN when every example is of this class.
    pub fn false_positive_rate(&self, class: usize) -> f64 {
        if !self.in_range(class) {
            return f64::NAN;
        }
        ratio(
            self.false_positives(class),
            self.false_positives(class) + self.true_negatives(class),
        )
    }

    /// FN / (FN + TP) for `class`; NaN when the class never occurred.
    pub fn false_negative_rate(&self, class: usize) -> f64 {
        if !self.in_range(class) {
            return f64::NAN;
        }
        ratio(
            self.false_negatives(class),
            self.false_negatives(class) + self.true_positives(class),
        )
    }

    /// Sums of (TP, FP, FN, TN) over all classes.
    fn pooled(&self) -> (u64, u64, u64, u64) {
        (0..self.num_classes).fold((0, 0, 0, 0), |acc, c| {
            (
                acc.0 + self.true_positives(c),
                acc.1 + self.false_positives(c),
                acc.2 + self.false_negatives(c),
                acc.3 + self.true_negatives(c),
            )
        })
    }

    fn macro_avg(&self, per_class: impl Fn(usize) -> f64) -> f64 {
        let (sum, n) = (0..self.num_classes)
            .map(per_class)
            .filter(|v| !v.is_nan())
            .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
        if n == 0 { f64::NAN } else { sum / n as f64 }
    }

    /// Precision averaged over classes. Micro precision of single-label classification equals
    /// accuracy.
    pub fn precision_averaged(&self, averaging: Averaging) -> f64 {
        match averaging {
            Averaging::Macro => self.macro_avg(|c| self.precision(c)),
            Averaging::Micro => {
                let (tp, fp, _, _) = self.pooled();
                ratio(tp, tp + fp)
            }
        }
    }

    /// Recall averaged over classes.
    pub fn recall_averaged(&self, averaging: Averaging) -> f64 {
        match averaging {
            Averaging::Macro => self.macro_avg(|c| self.recall(c)),
            Averaging::Micro => {
                let (tp, _, fn_, _) = self.pooled();
                ratio(tp, tp + fn_)
            }
        }
    }

    /// F1 averaged over classes: macro is the mean of per-class F1 (DL4J), micro is the
    /// harmonic mean of micro precision and micro recall.
    pub fn f1_averaged(&self, averaging: Averaging) -> f64 {
        match averaging {
            Averaging::Macro => self.macro_avg(|c| self.f1(c)),
            Averaging::Micro => {
                let (tp, fp, fn_, _) = self.pooled();
                ratio(2 * tp, 2 * tp + fp + fn_)
            }
        }
    }

    /// False positive rate averaged over classes.
    pub fn false_positive_rate_averaged(&self, averaging: Averaging) -> f64 {
        match averaging {
            Averaging::Macro => self.macro_avg(|c| self.false_positive_rate(c)),
            Averaging::Micro => {
                let (_, fp, _, tn) = self.pooled();
                ratio(fp, fp + tn)
            }
        }
    }

    /// Matthews correlation of `class` against all others:
    /// (TP·TN − FP·FN) / √((TP+FP)(TP+FN)(TN+FP)(TN+FN)); NaN when a factor is 0.
    pub fn matthews_correlation(&self, class: usize) -> f64 {
        if !self.in_range(class) {
            return f64::NAN;
        }
        mcc(
            self.true_positives(class),
            self.false_positives(class),
            self.false_negatives(class),
            self.true_negatives(class),
        )
    }

    /// The binary Matthews correlation averaged over classes (DL4J's
    /// `matthewsCorrelation(EvaluationAveraging)`; micro pools the counts). This is not the
    /// multi-class MCC: see [`Evaluation::matthews_correlation_multiclass`].
    pub fn matthews_correlation_averaged(&self, averaging: Averaging) -> f64 {
        match averaging {
            Averaging::Macro => self.macro_avg(|c| self.matthews_correlation(c)),
            Averaging::Micro => {
                let (tp, fp, fn_, tn) = self.pooled();
                mcc(tp, fp, fn_, tn)
            }
        }
    }

    /// The multi-class Matthews correlation (Gorodkin's R_K) of the whole confusion matrix:
    /// (c·s − Σ pₖtₖ) / √((s² − Σ pₖ²)(s² − Σ tₖ²)) with c correct, s total, pₖ predicted and
    /// tₖ actual counts of class k. Equals the binary MCC for 2 classes; NaN when undefined.
    pub fn matthews_correlation_multiclass(&self) -> f64 {
        let s = self.num_examples() as f64;
        let c = self.confusion.correct() as f64;
        let (mut pt, mut pp, mut tt) = (0.0, 0.0, 0.0);
        for k in 0..self.num_classes {
            let p = self.confusion.predicted_total(k) as f64;
            let t = self.confusion.actual_total(k) as f64;
            pt += p * t;
            pp += p * p;
            tt += t * t;
        }
        (c * s - pt) / ((s * s - pp) * (s * s - tt)).sqrt()
    }

    /// A DL4J-style text report: examples, accuracy, macro precision/recall/F1, micro F1,
    /// MCC, top-N accuracy, a per-class table, warnings about undefined metrics and the
    /// confusion matrix.
    pub fn stats(&self) -> String {
        let mut s = String::new();
        let _ = self.write_stats(&mut s);
        s
    }

    fn write_stats(&self, s: &mut String) -> std::fmt::Result {
        let n = self.num_classes;
        writeln!(
            s,
            "========================Evaluation Metrics========================"
        )?;
        writeln!(s, " # of classes:    {n}")?;
        writeln!(s, " # of examples:   {}", self.num_examples())?;
        writeln!(s, " Accuracy:        {}", fmt_metric(self.accuracy()))?;
        if self.top_n > 1 {
            writeln!(
                s,
                " Top {} Accuracy:  {}",
                self.top_n,
                fmt_metric(self.top_n_accuracy())
            )?;
        }
        writeln!(
            s,
            " Precision:       {}",
            fmt_metric(self.precision_averaged(Averaging::Macro))
        )?;
        writeln!(
            s,
            " Recall:          {}",
            fmt_metric(self.recall_averaged(Averaging::Macro))
        )?;
        writeln!(
            s,
            " F1 Score:        {}",
            fmt_metric(self.f1_averaged(Averaging::Macro))
        )?;
        writeln!(
            s,
            " Micro F1:        {}",
            fmt_metric(self.f1_averaged(Averaging::Micro))
        )?;
        writeln!(
            s,
            " MCC:             {}",
            fmt_metric(self.matthews_correlation_multiclass())
        )?;
        writeln!(
            s,
            "Precision, recall & F1: macro-averaged (equally weighted avg. of {n} classes, \
             undefined classes excluded)"
        )?;
        let never_predicted = (0..n)
            .filter(|&c| self.confusion.predicted_total(c) == 0)
            .count();
        let never_seen = (0..n)
            .filter(|&c| self.confusion.actual_total(c) == 0)
            .count();
        if never_predicted > 0 {
            writeln!(
                s,
                "Warning: {never_predicted} class(es) were never predicted; their precision is \
                 undefined (NaN) and excluded from the macro average"
            )?;
        }
        if never_seen > 0 {
            writeln!(
                s,
                "Warning: {never_seen} class(es) never occurred in the labels; their recall is \
                 undefined (NaN) and excluded from the macro average"
            )?;
        }
        writeln!(s)?;
        let name_w = (0..n)
            .map(|c| self.class_name(c).len())
            .max()
            .unwrap_or(0)
            .max(5);
        writeln!(
            s,
            "{:<name_w$}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}",
            "Class", "Precision", "Recall", "F1", "MCC", "# actual", "# predicted"
        )?;
        for c in 0..n {
            writeln!(
                s,
                "{:<name_w$}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}",
                self.class_name(c),
                fmt_metric(self.precision(c)),
                fmt_metric(self.recall(c)),
                fmt_metric(self.f1(c)),
                fmt_metric(self.matthews_correlation(c)),
                self.confusion.actual_total(c),
                self.confusion.predicted_total(c),
            )?;
        }
        writeln!(s)?;
        writeln!(
            s,
            "=========================Confusion Matrix========================="
        )?;
        writeln!(s, "{}", self.confusion.display_with(&self.labels))?;
        write!(
            s,
            "=================================================================="
        )
    }
}

pub(crate) fn mcc(tp: u64, fp: u64, fn_: u64, tn: u64) -> f64 {
    let (tp, fp, fn_, tn) = (tp as f64, fp as f64, fn_ as f64, tn as f64);
    (tp * tn - fp * fn_) / ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt()
}

impl<T: DataType> IEvaluation<T> for Evaluation {
    fn eval(
        &mut self,
        labels: &ArrayView<'_, T>,
        predictions: &ArrayView<'_, T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<(), EvalError> {
        Evaluation::eval(self, labels, predictions, mask)
    }

    fn reset(&mut self) {
        Evaluation::reset(self)
    }

    fn stats(&self) -> String {
        Evaluation::stats(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
