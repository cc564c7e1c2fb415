//! Receiver operating characteristic: [`Roc`] (binary) and [`RocMultiClass`] (one-vs-all).
//!
//! Two modes, as in DL4J:
//!
//! * **exact** ([`Roc::new`], [`Roc::with_capacity`]): every (score, label) pair is stored and
//!   sorted when a metric is asked for, giving the exact AUROC (the Mann–Whitney statistic,
//!   ties counting ½) and AUPRC. Storage is a `Vec` with amortized growth: `eval` allocates
//!   only when the stored count exceeds the capacity, so reserve enough with
//!   [`Roc::with_capacity`] or [`Roc::reserve`] and evaluation allocates nothing.
//! * **thresholded** ([`Roc::with_threshold_steps`]): a fixed histogram over the thresholds
//!   `0, 1/steps, ..., 1` (DL4J's `thresholdSteps`); evaluation never allocates and memory is
//!   constant, at the price of treating scores within one bucket as tied.
//!
//! AUPRC is the step-wise area Σ (Rₖ − Rₖ₋₁)·Pₖ over the distinct thresholds (what scikit-learn
//! calls average precision), not the trapezoid, which overestimates the area of a
//! precision/recall curve.

use std::any::Any;
use std::fmt::Write as _;

use dl4rs_array::{ArrayView, AsView, DataType};
use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::input::{Batch, Reads, column_error};
use crate::{IEvaluation, fmt_metric};

/// One stored example of an exact [`Roc`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Scored {
    score: f64,
    positive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Store {
    Exact(Vec<Scored>),
    Thresholded {
        steps: usize,
        /// Per bucket k (scores in [k/steps, (k+1)/steps), the last bucket holding 1 and
        /// above, the first everything below 1/steps): positive and negative counts.
        pos: Vec<u64>,
        neg: Vec<u64>,
    },
}

/// A point of the ROC curve: predicting positive when the score is at least `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// The decision threshold (`+∞` for the starting point where nothing is positive).
    pub threshold: f64,
    /// FP / (FP + TN) at this threshold.
    pub false_positive_rate: f64,
    /// TP / (TP + FN) at this threshold.
    pub true_positive_rate: f64,
}

/// A point of the precision/recall curve: predicting positive when the score is at least
/// `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrPoint {
    /// The decision threshold.
    pub threshold: f64,
    /// TP / (TP + FP) at this threshold (NaN when nothing is predicted positive).
    pub precision: f64,
    /// TP / (TP + FN) at this threshold.
    pub recall: f64,
}

/// Scores sharing one threshold, in descending threshold order.
struct Group {
    threshold: f64,
    tp: u64,
    fp: u64,
}

/// Binary ROC: AUROC, AUPRC and the curves, for predictions that are the probability of the
/// positive class: `[batch, 1]`, or `[batch, 2]` where column 1 is the positive class (DL4J).
/// Labels have the same shape; an example is positive when its label (column 1 for two
/// columns) is at least 0.5.
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_eval::Roc;
///
/// let labels = NdArray::<f32>::from_slice(&[4, 1], &[0.0, 0.0, 1.0, 1.0]).unwrap();
/// let scores = NdArray::<f32>::from_slice(&[4, 1], &[0.1, 0.4, 0.35, 0.8]).unwrap();
/// let mut roc = Roc::with_capacity(1024); // eval allocates nothing until 1024 examples
/// roc.eval(&labels, &scores, None).unwrap();
/// assert_eq!(roc.calculate_auc(), 0.75); // 3 of 4 (positive, negative) pairs ordered right
///
/// let mut coarse = Roc::with_threshold_steps(10); // fixed memory, never allocates
/// coarse.eval(&labels, &scores, None).unwrap();
/// assert!(coarse.calculate_auc() > 0.5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roc {
    store: Store,
    positives: u64,
    negatives: u64,
}

const OP_EVAL: &str = "Roc::eval";

impl Default for Roc {
    fn default() -> Self {
        Roc::new()
    }
}

impl Roc {
    /// An exact ROC with no reserved storage (the first batches allocate as it grows).
    pub fn new() -> Self {
        Roc::with_capacity(0)
    }

    /// An exact ROC with room for `examples` examples: `eval` allocates nothing until more
    /// than that many have been stored.
    pub fn with_capacity(examples: usize) -> Self {
        Roc {
            store: Store::Exact(Vec::with_capacity(examples)),
            positives: 0,
            negatives: 0,
        }
    }

    /// A thresholded ROC with thresholds `0, 1/steps, ..., 1` (`steps` of 0 is taken as 1):
    /// constant memory, `eval` never allocates. Scores are bucketed, so AUROC treats scores
    /// within one bucket as tied; predictions outside [0, 1] land in the end buckets.
    pub fn with_threshold_steps(steps: usize) -> Self {
        let steps = steps.max(1);
        Roc {
            store: Store::Thresholded {
                steps,
                pos: vec![0; steps + 1],
                neg: vec![0; steps + 1],
            },
            positives: 0,
            negatives: 0,
        }
    }

    /// Makes room for `additional` more examples in exact mode (no-op when thresholded).
    pub fn reserve(&mut self, additional: usize) {
        if let Store::Exact(v) = &mut self.store {
            v.reserve(additional);
        }
    }

    /// Whether this ROC stores every example (exact) rather than a histogram.
    pub fn is_exact(&self) -> bool {
        matches!(self.store, Store::Exact(_))
    }

    /// The number of threshold steps (None in exact mode).
    pub fn threshold_steps(&self) -> Option<usize> {
        match self.store {
            Store::Exact(_) => None,
            Store::Thresholded { steps, .. } => Some(steps),
        }
    }

    /// Evaluates one batch (see [`IEvaluation::eval`]); accepts arrays or views. A NaN score
    /// is an error and leaves the ROC unchanged.
    pub fn eval<T: DataType>(
        &mut self,
        labels: &impl AsView<T>,
        predictions: &impl AsView<T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<(), EvalError> {
        let reads = Reads::new(OP_EVAL, &labels.view(), &predictions.view(), mask)?;
        let b = reads.batch(OP_EVAL, "columns")?;
        let col = match b.cols() {
            1 => 0,
            2 => 1,
            _ => {
                return Err(EvalError::ColumnCount {
                    op: OP_EVAL,
                    n: "columns",
                    expected: 2,
                    found: b.cols(),
                    shape: vec![b.rows(), b.cols()],
                });
            }
        };
        check_scores(OP_EVAL, &b, col)?;
        for i in 0..b.rows() {
            if b.mask.keep(i, col) {
                self.add(b.predictions.raw_at(i, col), b.labels.at(i, col) >= 0.5);
            }
        }
        Ok(())
    }

    /// Adds one example; the score is not NaN (callers check).
    #[inline]
    fn add<T: DataType>(&mut self, score: T, positive: bool) {
        match &mut self.store {
            Store::Exact(v) => v.push(Scored {
                score: score.to_f64(),
                positive,
            }),
            Store::Thresholded { steps, pos, neg } => {
                let k = bucket(score, *steps);
                if positive {
                    pos[k] += 1;
                } else {
                    neg[k] += 1;
                }
            }
        }
        if positive {
            self.positives += 1;
        } else {
            self.negatives += 1;
        }
    }

    /// Forgets all examples (keeps the mode, and in exact mode the reserved capacity).
    pub fn reset(&mut self) {
        match &mut self.store {
            Store::Exact(v) => v.clear(),
            Store::Thresholded { pos, neg, .. } => {
                pos.fill(0);
                neg.fill(0);
            }
        }
        self.positives = 0;
        self.negatives = 0;
    }

    /// Adds `other`'s examples. Both must be exact, or both thresholded with the same steps.
    pub fn merge(&mut self, other: &Roc) -> Result<(), EvalError> {
        match (&mut self.store, &other.store) {
            (Store::Exact(a), Store::Exact(b)) => a.extend_from_slice(b),
            (
                Store::Thresholded { steps, pos, neg },
                Store::Thresholded {
                    steps: s2,
                    pos: p2,
                    neg: n2,
                },
            ) if steps == s2 => {
                for (a, b) in pos.iter_mut().zip(p2) {
                    *a += b;
                }
                for (a, b) in neg.iter_mut().zip(n2) {
                    *a += b;
                }
            }
            _ => {
                return Err(EvalError::Merge {
                    op: "Roc::merge",
                    message: format!(
                        "this ROC is {} but the other is {}: expected the same mode (both exact, \
                         or both with the same threshold steps)",
                        self.mode(),
                        other.mode()
                    ),
                });
            }
        }
        self.positives += other.positives;
        self.negatives += other.negatives;
        Ok(())
    }

    /// Whether `merge(other)` would succeed.
    fn same_mode(&self, other: &Roc) -> bool {
        match (&self.store, &other.store) {
            (Store::Exact(_), Store::Exact(_)) => true,
            (Store::Thresholded { steps: a, .. }, Store::Thresholded { steps: b, .. }) => a == b,
            _ => false,
        }
    }

    fn mode(&self) -> String {
        match self.store {
            Store::Exact(_) => "exact".into(),
            Store::Thresholded { steps, .. } => format!("thresholded with {steps} steps"),
        }
    }

    /// Positive examples seen.
    pub fn count_actual_positive(&self) -> u64 {
        self.positives
    }

    /// Negative examples seen.
    pub fn count_actual_negative(&self) -> u64 {
        self.negatives
    }

    /// Examples seen.
    pub fn num_examples(&self) -> u64 {
        self.positives + self.negatives
    }

    /// Tie groups in descending score order (exact mode sorts a copy: queries may allocate,
    /// evaluation doesn't).
    fn groups(&self, include_empty: bool) -> Vec<Group> {
        match &self.store {
            Store::Exact(v) => {
                let mut sorted = v.clone();
                sorted.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
                let mut out: Vec<Group> = Vec::new();
                for s in &sorted {
                    let (tp, fp) = if s.positive { (1, 0) } else { (0, 1) };
                    match out.last_mut() {
                        // `==` so that -0.0 and 0.0 tie, as they do as decision thresholds.
                        Some(g) if g.threshold == s.score => {
                            g.tp += tp;
                            g.fp += fp;
                        }
                        _ => out.push(Group {
                            threshold: s.score,
                            tp,
                            fp,
                        }),
                    }
                }
                out
            }
            Store::Thresholded { steps, pos, neg } => (0..=*steps)
                .rev()
                .filter(|&k| include_empty || pos[k] + neg[k] > 0)
                .map(|k| Group {
                    threshold: k as f64 / *steps as f64,
                    tp: pos[k],
                    fp: neg[k],
                })
                .collect(),
        }
    }

    /// Area under the ROC curve: the probability that a random positive scores higher than a
    /// random negative, ties counting ½. NaN without both positives and negatives.
    pub fn calculate_auc(&self) -> f64 {
        let (p, n) = (self.positives as f64, self.negatives as f64);
        if self.positives == 0 || self.negatives == 0 {
            return f64::NAN;
        }
        let mut tp_before = 0.0;
        let mut area = 0.0;
        for g in self.groups(false) {
            area += g.fp as f64 * (tp_before + g.tp as f64 / 2.0);
            tp_before += g.tp as f64;
        }
        area / (p * n)
    }

    /// Area under the precision/recall curve, step-wise: Σ (Rₖ − Rₖ₋₁)·Pₖ over the distinct
    /// thresholds in descending order. NaN without positives.
    pub fn calculate_auprc(&self) -> f64 {
        if self.positives == 0 {
            return f64::NAN;
        }
        let p = self.positives as f64;
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut area = 0.0;
        for g in self.groups(false) {
            tp += g.tp;
            fp += g.fp;
            if g.tp > 0 {
                area += (g.tp as f64 / p) * (tp as f64 / (tp + fp) as f64);
            }
        }
        area
    }

    /// The ROC curve from (0, 0) at threshold +∞ to (1, 1): one point per distinct score in
    /// exact mode, one per threshold step in thresholded mode.
    pub fn roc_curve(&self) -> Vec<RocPoint> {
        let (p, n) = (self.positives as f64, self.negatives as f64);
        let mut out = vec![RocPoint {
            threshold: f64::INFINITY,
            false_positive_rate: 0.0,
            true_positive_rate: 0.0,
        }];
        let (mut tp, mut fp) = (0u64, 0u64);
        for g in self.groups(true) {
            tp += g.tp;
            fp += g.fp;
            out.push(RocPoint {
                threshold: g.threshold,
                false_positive_rate: fp as f64 / n,
                true_positive_rate: tp as f64 / p,
            });
        }
        out
    }

    /// The precision/recall curve, one point per distinct score (exact) or threshold step
    /// (thresholded), in descending threshold order.
    pub fn precision_recall_curve(&self) -> Vec<PrPoint> {
        let p = self.positives as f64;
        let (mut tp, mut fp) = (0u64, 0u64);
        self.groups(true)
            .into_iter()
            .map(|g| {
                tp += g.tp;
                fp += g.fp;
                PrPoint {
                    threshold: g.threshold,
                    precision: tp as f64 / (tp + fp) as f64,
                    recall: tp as f64 / p,
                }
            })
            .collect()
    }

    /// A short report: mode, counts, AUROC and AUPRC.
    pub fn stats(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "===========================ROC Metrics============================"
        );
        let _ = writeln!(s, " Mode:            {}", self.mode());
        let _ = writeln!(
            s,
            " # of examples:   {} ({} positive, {} negative)",
            self.num_examples(),
            self.positives,
            self.negatives
        );
        let _ = writeln!(
            s,
            " AUC (Area under ROC Curve):                {}",
            fmt_metric(self.calculate_auc())
        );
        let _ = write!(
            s,
            " AUPRC (Area under Precision/Recall Curve): {}",
            fmt_metric(self.calculate_auprc())
        );
        s
    }
}

/// The largest k with `score >= k/steps`, the threshold rounded to the input's precision (so
/// an f32 score of 0.7 meets the threshold 0.7 although 0.7f32 < 0.7f64); clamped to
/// `0..=steps`.
fn bucket<T: DataType>(score: T, steps: usize) -> usize {
    let threshold = |k: usize| T::from_f64(k as f64 / steps as f64);
    let mut k = (score.to_f64() * steps as f64)
        .floor()
        .clamp(0.0, steps as f64) as usize;
    while k < steps && threshold(k + 1) <= score {
        k += 1;
    }
    while k > 0 && threshold(k) > score {
        k -= 1;
    }
    k
}

/// Rejects NaN scores among the entries that count, before anything is stored, so a failed
/// batch leaves the state unchanged.
fn check_scores<T: DataType>(
    op: &'static str,
    b: &Batch<'_, T>,
    col: usize,
) -> Result<(), EvalError> {
    for i in 0..b.rows() {
        if b.mask.keep(i, col) && b.predictions.at(i, col).is_nan() {
            return Err(EvalError::Invalid {
                op,
                message: format!(
                    "prediction [{i}, {col}] is NaN: expected a probability (the batch was not counted)"
                ),
            });
        }
    }
    Ok(())
}

impl<T: DataType> IEvaluation<T> for Roc {
    fn eval(
        &mut self,
        labels: &ArrayView<'_, T>,
        predictions: &ArrayView<'_, T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<(), EvalError> {
        Roc::eval(self, labels, predictions, mask)
    }

    fn reset(&mut self) {
        Roc::reset(self)
    }

    fn stats(&self) -> String {
        Roc::stats(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One-vs-all ROC for multi-class outputs: a [`Roc`] per class, where class `c`'s score is
/// column `c` of the predictions and an example is positive for `c` when its label in column
/// `c` is at least 0.5. Per-output masks mask single (example, class) entries.
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_eval::RocMultiClass;
///
/// let labels = NdArray::<f64>::from_slice(&[3, 3], &[
///     1.0, 0.0, 0.0,
///     0.0, 1.0, 0.0,
///     0.0, 0.0, 1.0,
/// ]).unwrap();
/// let out = NdArray::<f64>::from_slice(&[3, 3], &[
///     0.8, 0.1, 0.1,
///     0.2, 0.5, 0.3,
///     0.1, 0.6, 0.3,
/// ]).unwrap();
/// let mut roc = RocMultiClass::new(3);
/// roc.eval(&labels, &out, None).unwrap();
/// assert_eq!(roc.calculate_auc(0), 1.0);
/// assert_eq!(roc.calculate_auc(2), 0.75);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocMultiClass {
    rocs: Vec<Roc>,
    template: Template,
    labels: Vec<String>,
}

/// How each class's [`Roc`] is built. Fresh ROCs are built rather than cloned because a
/// cloned `Vec` does not keep its reserved capacity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Template {
    Exact { capacity: usize },
    Thresholded { steps: usize },
}

impl Template {
    fn build(self) -> Roc {
        match self {
            Template::Exact { capacity } => Roc::with_capacity(capacity),
            Template::Thresholded { steps } => Roc::with_threshold_steps(steps),
        }
    }
}

const OP_MULTI: &str = "RocMultiClass::eval";

impl RocMultiClass {
    fn from_template(num_classes: usize, template: Template) -> Self {
        RocMultiClass {
            rocs: (0..num_classes).map(|_| template.build()).collect(),
            template,
            labels: Vec::new(),
        }
    }

    /// Exact one-vs-all ROC for `num_classes` classes (`0`: from the first batch).
    pub fn new(num_classes: usize) -> Self {
        Self::from_template(num_classes, Template::Exact { capacity: 0 })
    }

    /// Exact, with room for `examples` examples per class (no allocation in `eval` until then).
    pub fn with_capacity(num_classes: usize, examples: usize) -> Self {
        Self::from_template(num_classes, Template::Exact { capacity: examples })
    }

    /// Thresholded with `steps` steps per class (`eval` never allocates once sized).
    pub fn with_threshold_steps(num_classes: usize, steps: usize) -> Self {
        Self::from_template(num_classes, Template::Thresholded { steps })
    }

    /// Names the classes (used by [`RocMultiClass::stats`]).
    pub fn with_labels<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.labels = names.into_iter().map(Into::into).collect();
        self
    }

    /// Evaluates one batch (see [`IEvaluation::eval`]); accepts arrays or views.
    pub fn eval<T: DataType>(
        &mut self,
        labels: &impl AsView<T>,
        predictions: &impl AsView<T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<(), EvalError> {
        let reads = Reads::new(OP_MULTI, &labels.view(), &predictions.view(), mask)?;
        let b = reads.batch(OP_MULTI, "classes")?;
        if self.rocs.is_empty() {
            if b.cols() == 0 {
                return Err(column_error(OP_MULTI, "classes", 1, &b));
            }
            self.rocs = (0..b.cols()).map(|_| self.template.build()).collect();
        } else if b.cols() != self.rocs.len() {
            return Err(column_error(OP_MULTI, "classes", self.rocs.len(), &b));
        }
        for c in 0..b.cols() {
            check_scores(OP_MULTI, &b, c)?;
        }
        for i in 0..b.rows() {
            for (c, roc) in self.rocs.iter_mut().enumerate() {
                if b.mask.keep(i, c) {
                    roc.add(b.predictions.raw_at(i, c), b.labels.at(i, c) >= 0.5);
                }
            }
        }
        Ok(())
    }

    /// Forgets all examples.
    pub fn reset(&mut self) {
        self.rocs.iter_mut().for_each(Roc::reset);
    }

    /// Adds `other`'s examples class by class (class counts and modes must match).
    pub fn merge(&mut self, other: &RocMultiClass) -> Result<(), EvalError> {
        if self.rocs.is_empty() {
            self.rocs = (0..other.rocs.len())
                .map(|_| self.template.build())
                .collect();
        }
        if !other.rocs.is_empty() && other.rocs.len() != self.rocs.len() {
            return Err(EvalError::Merge {
                op: "RocMultiClass::merge",
                message: format!(
                    "this ROC has {} classes but the other has {}: expected equal class counts",
                    self.rocs.len(),
                    other.rocs.len()
                ),
            });
        }
        if let Some((a, b)) = self
            .rocs
            .iter()
            .zip(&other.rocs)
            .find(|(a, b)| !a.same_mode(b))
        {
            return Err(EvalError::Merge {
                op: "RocMultiClass::merge",
                message: format!(
                    "this ROC is {} but the other is {}: expected the same mode (both exact, or \
                     both with the same threshold steps)",
                    a.mode(),
                    b.mode()
                ),
            });
        }
        for (a, b) in self.rocs.iter_mut().zip(&other.rocs) {
            a.merge(b)?;
        }
        Ok(())
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.rocs.len()
    }

    /// The one-vs-all ROC of `class`.
    pub fn roc(&self, class: usize) -> Option<&Roc> {
        self.rocs.get(class)
    }

    /// AUROC of `class` against the rest (NaN out of range).
    pub fn calculate_auc(&self, class: usize) -> f64 {
        self.rocs.get(class).map_or(f64::NAN, Roc::calculate_auc)
    }

    /// AUPRC of `class` against the rest (NaN out of range).
    pub fn calculate_auprc(&self, class: usize) -> f64 {
        self.rocs.get(class).map_or(f64::NAN, Roc::calculate_auprc)
    }

    /// The mean AUROC over classes (NaN if any class's AUROC is undefined, as in DL4J).
    pub fn calculate_average_auc(&self) -> f64 {
        self.rocs.iter().map(Roc::calculate_auc).sum::<f64>() / self.rocs.len() as f64
    }

    /// The mean AUPRC over classes.
    pub fn calculate_average_auprc(&self) -> f64 {
        self.rocs.iter().map(Roc::calculate_auprc).sum::<f64>() / self.rocs.len() as f64
    }

    /// A table of AUROC and AUPRC per class, and their averages.
    pub fn stats(&self) -> String {
        let mut s = String::new();
        let name = |c: usize| self.labels.get(c).cloned().unwrap_or_else(|| c.to_string());
        let w = (0..self.rocs.len())
            .map(|c| name(c).len())
            .max()
            .unwrap_or(0)
            .max(7);
        let _ = writeln!(
            s,
            "{:<w$}  {:>8}  {:>8}  {:>10}  {:>10}",
            "Class", "AUC", "AUPRC", "# pos", "# neg"
        );
        for (c, roc) in self.rocs.iter().enumerate() {
            let _ = writeln!(
                s,
                "{:<w$}  {:>8}  {:>8}  {:>10}  {:>10}",
                name(c),
                fmt_metric(roc.calculate_auc()),
                fmt_metric(roc.calculate_auprc()),
                roc.positives,
                roc.negatives
            );
        }
        let _ = write!(
            s,
            "{:<w$}  {:>8}  {:>8}",
            "Average",
            fmt_metric(self.calculate_average_auc()),
            fmt_metric(self.calculate_average_auprc())
        );
        s
    }
}

impl<T: DataType> IEvaluation<T> for RocMultiClass {
    fn eval(
        &mut self,
        labels: &ArrayView<'_, T>,
        predictions: &ArrayView<'_, T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<(), EvalError> {
        RocMultiClass::eval(self, labels, predictions, mask)
    }

    fn reset(&mut self) {
        RocMultiClass::reset(self)
    }

    fn stats(&self) -> String {
        RocMultiClass::stats(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
