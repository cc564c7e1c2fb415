//! [`RegressionEvaluation`]: per-column regression metrics (ND4J `RegressionEvaluation`).
//!
//! Every column keeps a count, the sums of squared and absolute errors, and the running means
//! and centred second moments of labels and predictions (Welford's update; merged with Chan's
//! formula). Centred moments instead of raw sums of y² avoid the cancellation that ruins
//! R² and Pearson correlation when labels have a large mean and a small spread; all
//! accumulators are f64 whatever the element type.

use std::any::Any;
use std::fmt::Write as _;

use dl4rs_array::{ArrayView, AsView, DataType};
use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::input::{Reads, column_error};
use crate::{IEvaluation, fmt_metric};

/// Running statistics of one column.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct Column {
    n: u64,
    sse: f64,
    sae: f64,
    mean_y: f64,
    mean_p: f64,
    m2_y: f64,
    m2_p: f64,
    c_yp: f64,
}

impl Column {
    #[inline]
    fn add(&mut self, y: f64, p: f64) {
        self.n += 1;
        let n = self.n as f64;
        let e = p - y;
        self.sse += e * e;
        self.sae += e.abs();
        let dy = y - self.mean_y;
        let dp = p - self.mean_p;
        self.mean_y += dy / n;
        self.mean_p += dp / n;
        self.m2_y += dy * (y - self.mean_y);
        self.m2_p += dp * (p - self.mean_p);
        self.c_yp += dy * (p - self.mean_p);
    }

    fn merge(&mut self, o: &Column) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        let (na, nb) = (self.n as f64, o.n as f64);
        let n = na + nb;
        let dy = o.mean_y - self.mean_y;
        let dp = o.mean_p - self.mean_p;
        let w = na * nb / n;
        self.m2_y += o.m2_y + dy * dy * w;
        self.m2_p += o.m2_p + dp * dp * w;
        self.c_yp += o.c_yp + dy * dp * w;
        self.mean_y += dy * nb / n;
        self.mean_p += dp * nb / n;
        self.sse += o.sse;
        self.sae += o.sae;
        self.n += o.n;
    }
}

/// Regression metrics per output column: MSE, MAE, RMSE, relative squared error, Pearson
/// correlation and R², plus their averages over columns. A metric of a column with no
/// (unmasked) values is NaN; so are RSE and R² of a constant label column and the correlation
/// of a constant column.
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_eval::RegressionEvaluation;
///
/// let labels = NdArray::<f64>::from_slice(&[4, 1], &[1.0, 2.0, 3.0, 4.0]).unwrap();
/// let out = NdArray::<f64>::from_slice(&[4, 1], &[1.0, 2.0, 3.0, 5.0]).unwrap();
/// let mut ev = RegressionEvaluation::new(1);
/// ev.eval(&labels, &out, None).unwrap();
/// assert_eq!(ev.mean_squared_error(0), 0.25);
/// assert_eq!(ev.mean_absolute_error(0), 0.25);
/// // SST = 5, SSE = 1
/// assert!((ev.r_squared(0) - 0.8).abs() < 1e-12);
/// assert!(ev.stats().contains("R^2"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionEvaluation {
    columns: Vec<Column>,
    names: Vec<String>,
}

const OP_EVAL: &str = "RegressionEvaluation::eval";

impl RegressionEvaluation {
    /// An evaluation of `num_columns` outputs; `0` means "take the count from the first batch".
    pub fn new(num_columns: usize) -> Self {
        RegressionEvaluation {
            columns: vec![Column::default(); num_columns],
            names: Vec::new(),
        }
    }

    /// An evaluation whose columns have names (column count = number of names).
    pub fn with_column_names<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        let mut ev = RegressionEvaluation::new(names.len());
        ev.names = names;
        ev
    }

    /// Evaluates one batch (see [`IEvaluation::eval`]); accepts arrays or views. Masks may be
    /// per example or per output.
    pub fn eval<T: DataType>(
        &mut self,
        labels: &impl AsView<T>,
        predictions: &impl AsView<T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<(), EvalError> {
        let reads = Reads::new(OP_EVAL, &labels.view(), &predictions.view(), mask)?;
        let b = reads.batch(OP_EVAL, "columns")?;
        if self.columns.is_empty() {
            if b.cols() == 0 {
                return Err(column_error(OP_EVAL, "columns", 1, &b));
            }
            self.columns = vec![Column::default(); b.cols()];
        } else if b.cols() != self.columns.len() {
            return Err(column_error(OP_EVAL, "columns", self.columns.len(), &b));
        }
        for i in 0..b.rows() {
            if !b.mask.keep_row(i) {
                continue;
            }
            for (j, col) in self.columns.iter_mut().enumerate() {
                if b.mask.keep(i, j) {
                    col.add(b.labels.at(i, j), b.predictions.at(i, j));
                }
            }
        }
        Ok(())
    }

    /// Forgets all values (keeps the column count and names).
    pub fn reset(&mut self) {
        self.columns.fill(Column::default());
    }

    /// Adds `other`'s statistics, as if this evaluation had also seen its batches (exact up to
    /// rounding). Column counts must match; an unsized evaluation takes `other`'s size.
    pub fn merge(&mut self, other: &RegressionEvaluation) -> Result<(), EvalError> {
        if self.columns.is_empty() {
            self.columns = vec![Column::default(); other.columns.len()];
        }
        if !other.columns.is_empty() && other.columns.len() != self.columns.len() {
            return Err(EvalError::Merge {
                op: "RegressionEvaluation::merge",
                message: format!(
                    "this evaluation has {} columns but the other has {}: expected equal column counts",
                    self.columns.len(),
                    other.columns.len()
                ),
            });
        }
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            a.merge(b);
        }
        if self.names.is_empty() {
            self.names.clone_from(&other.names);
        }
        Ok(())
    }

    /// Number of columns (0 while an unsized evaluation has seen no batch).
    pub fn num_columns(&self) -> usize {
        self.columns.len()
    }

    /// Number of values counted in column `c` (masked-out values excluded).
    pub fn count(&self, c: usize) -> u64 {
        self.columns.get(c).map_or(0, |col| col.n)
    }

    fn col(&self, c: usize) -> Column {
        self.columns.get(c).copied().unwrap_or_default()
    }

    /// Mean of (prediction − label)² in column `c`.
    pub fn mean_squared_error(&self, c: usize) -> f64 {
        let col = self.col(c);
        col.sse / col.n as f64
    }

    /// Mean of |prediction − label| in column `c`.
    pub fn mean_absolute_error(&self, c: usize) -> f64 {
        let col = self.col(c);
        col.sae / col.n as f64
    }

    /// √MSE of column `c`.
    pub fn root_mean_squared_error(&self, c: usize) -> f64 {
        self.mean_squared_error(c).sqrt()
    }

    /// Σ(p − y)² / Σ(y − ȳ)² of column `c`.
    pub fn relative_squared_error(&self, c: usize) -> f64 {
        let col = self.col(c);
        if col.n == 0 {
            return f64::NAN;
        }
        col.sse / col.m2_y
    }

    /// Pearson correlation of labels and predictions in column `c`.
    pub fn pearson_correlation(&self, c: usize) -> f64 {
        let col = self.col(c);
        if col.n == 0 {
            return f64::NAN;
        }
        col.c_yp / (col.m2_y * col.m2_p).sqrt()
    }

    /// Coefficient of determination R² = 1 − Σ(p − y)² / Σ(y − ȳ)² of column `c` (may be
    /// negative for a model worse than predicting the mean).
    pub fn r_squared(&self, c: usize) -> f64 {
        1.0 - self.relative_squared_error(c)
    }

    fn average(&self, f: impl Fn(usize) -> f64) -> f64 {
        let n = self.columns.len();
        (0..n).map(f).sum::<f64>() / n as f64
    }

    /// MSE averaged over columns.
    pub fn average_mean_squared_error(&self) -> f64 {
        self.average(|c| self.mean_squared_error(c))
    }

    /// MAE averaged over columns.
    pub fn average_mean_absolute_error(&self) -> f64 {
        self.average(|c| self.mean_absolute_error(c))
    }

    /// RMSE averaged over columns.
    pub fn average_root_mean_squared_error(&self) -> f64 {
        self.average(|c| self.root_mean_squared_error(c))
    }

    /// RSE averaged over columns.
    pub fn average_relative_squared_error(&self) -> f64 {
        self.average(|c| self.relative_squared_error(c))
    }

    /// Pearson correlation averaged over columns.
    pub fn average_pearson_correlation(&self) -> f64 {
        self.average(|c| self.pearson_correlation(c))
    }

    /// R² averaged over columns.
    pub fn average_r_squared(&self) -> f64 {
        self.average(|c| self.r_squared(c))
    }

    /// A table with one row per column: MSE, MAE, RMSE, RSE, PC, R^2, then the averages.
    pub fn stats(&self) -> String {
        let mut s = String::new();
        let name = |c: usize| {
            self.names
                .get(c)
                .cloned()
                .unwrap_or_else(|| format!("col_{c}"))
        };
        let w = (0..self.columns.len())
            .map(|c| name(c).len())
            .max()
            .unwrap_or(0)
            .max(7);
        let _ = writeln!(
            s,
            "{:<w$}  {:>11}  {:>11}  {:>11}  {:>11}  {:>11}  {:>11}  {:>9}",
            "Column", "MSE", "MAE", "RMSE", "RSE", "PC", "R^2", "# values"
        );
        let row = |s: &mut String, label: &str, v: [f64; 6], n: String| {
            let _ = writeln!(
                s,
                "{label:<w$}  {:>11}  {:>11}  {:>11}  {:>11}  {:>11}  {:>11}  {n:>9}",
                sci(v[0]),
                sci(v[1]),
                sci(v[2]),
                sci(v[3]),
                fmt_metric(v[4]),
                fmt_metric(v[5]),
            );
        };
        for c in 0..self.columns.len() {
            row(
                &mut s,
                &name(c),
                [
                    self.mean_squared_error(c),
                    self.mean_absolute_error(c),
                    self.root_mean_squared_error(c),
                    self.relative_squared_error(c),
                    self.pearson_correlation(c),
                    self.r_squared(c),
                ],
                self.count(c).to_string(),
            );
        }
        row(
            &mut s,
            "Average",
            [
                self.average_mean_squared_error(),
                self.average_mean_absolute_error(),
                self.average_root_mean_squared_error(),
                self.average_relative_squared_error(),
                self.average_pearson_correlation(),
                self.average_r_squared(),
            ],
            String::new(),
        );
        s
    }
}

fn sci(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v:.5e}")
    }
}

impl<T: DataType> IEvaluation<T> for RegressionEvaluation {
    fn eval(
        &mut self,
        labels: &ArrayView<'_, T>,
        predictions: &ArrayView<'_, T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<(), EvalError> {
        RegressionEvaluation::eval(self, labels, predictions, mask)
    }

    fn reset(&mut self) {
        RegressionEvaluation::reset(self)
    }

    fn stats(&self) -> String {
        RegressionEvaluation::stats(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
