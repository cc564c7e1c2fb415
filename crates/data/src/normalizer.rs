//! Data normalization, DL4J's `DataNormalization`: [`NormalizerStandardize`] (zero mean, unit
//! variance per column), [`NormalizerMinMaxScaler`] (each column to a target range) and
//! [`ImagePreProcessingScaler`] (pixel values `0..=255` to a target range, nothing to fit),
//! the [`Normalizer`] enum that stores any of them (in a model file, as JSON), and
//! [`PreProcessedIterator`], which applies one to every batch of an iterator.
//!
//! ## Columns
//! Statistics are per index of axis 1 of the arrays, over every other axis: per input column
//! of `[n, columns]` features, per feature of `[n, features, time]` sequences (over examples
//! and time steps), per channel of `[n, channels, h, w]` images. Where a data set has a mask
//! matching the array (`[n, time]` for sequences, or `[n]` per example), masked-out values
//! (mask 0) are ignored by `fit` and left untouched by `transform` and `revert`, so padding
//! stays zero.
//!
//! ## Fitting
//! `fit` makes one pass over an iterator, resetting it before and after, and merges the
//! per-batch statistics in `f64` (Chan et al.'s parallel mean/variance update), so fitting
//! batch by batch gives the same statistics as [`fit_data`](DataNormalization::fit_data) on
//! the whole set up to rounding. The standard deviation is the population one (divide by
//! `n`). Labels are fitted and transformed too only when configured with `fit_labels(true)`
//! (regression targets).
//!
//! ## Memory
//! `transform` and `revert` work in place over the array's elements (computing in `f64`) and
//! make no heap allocation, so they can run inside a training loop's workspace on every
//! batch. (A strided array, which only hand-assembled data sets can hold, is first copied to
//! a contiguous one.)
//!
//! ```
//! use dl4rs_array::NdArray;
//! use dl4rs_data::{DataSet, InMemoryDataSetIterator};
//! use dl4rs_data::normalizer::{DataNormalization, Normalizer, NormalizerStandardize};
//!
//! let x = NdArray::<f32>::from_slice(&[4, 2], &[1., 10., 2., 10., 3., 10., 4., 10.]).unwrap();
//! let y = NdArray::<f32>::zeros(&[4, 1]).unwrap();
//! let data = DataSet::new(x, y).unwrap();
//!
//! let mut norm = NormalizerStandardize::new();
//! let mut it = InMemoryDataSetIterator::new(data.dup().unwrap(), 3).unwrap();
//! norm.fit(&mut it).unwrap();
//! assert_eq!(norm.mean().unwrap(), [2.5, 10.0]);
//! assert_eq!(norm.std().unwrap()[1], 0.0); // a constant column: transform uses 1
//!
//! let mut batch = data;
//! norm.transform(&mut batch).unwrap();
//! assert_eq!(batch.features.get(&[0, 1]).unwrap(), 0.0);
//!
//! // Stored in a model file as JSON, restored as the enum.
//! let json = Normalizer::from(norm).to_json().unwrap();
//! let back = Normalizer::from_json(&json).unwrap();
//! back.revert(&mut batch).unwrap();
//! assert!((batch.features.get(&[3, 0]).unwrap() - 4.0).abs() < 1e-6);
//! ```

use dl4rs_array::{DataType, NdArray};
use dl4rs_memory::scope_out_of_workspaces;
use serde::{Deserialize, Serialize};

use crate::dataset::DataSet;
use crate::error::{DataError, format_error, invalid};
use crate::iterator::DataSetIterator;

/// DL4J's `DataNormalization`: statistics fitted on training data, applied in place to
/// batches (and undone by `revert`). Implemented for `f32` and `f64` data by every normalizer
/// here (the fitted statistics are `f64`).
pub trait DataNormalization<T: DataType> {
    /// Fits on one full pass over `iterator`, which is reset before and after (so it must
    /// support `reset`). Replaces any previous fit.
    fn fit(&mut self, iterator: &mut dyn DataSetIterator<T>) -> Result<(), DataError>;

    /// Fits on a whole data set. Replaces any previous fit.
    fn fit_data(&mut self, data: &DataSet<T>) -> Result<(), DataError>;

    /// Normalizes the features in place (and the labels, when configured to), honouring the
    /// data set's masks. No heap allocation.
    fn transform(&self, data: &mut DataSet<T>) -> Result<(), DataError>;

    /// Undoes [`transform`](Self::transform) in place.
    fn revert(&self, data: &mut DataSet<T>) -> Result<(), DataError>;

    /// Normalizes a features array in place (no mask). No heap allocation.
    fn transform_features(&self, features: &mut NdArray<T>) -> Result<(), DataError>;

    /// Undoes [`transform_features`](Self::transform_features) in place.
    fn revert_features(&self, features: &mut NdArray<T>) -> Result<(), DataError>;

    /// Normalizes a labels array in place when the normalizer fits labels; else does nothing.
    fn transform_labels(&self, labels: &mut NdArray<T>) -> Result<(), DataError>;

    /// Undoes [`transform_labels`](Self::transform_labels) in place (model outputs back to
    /// target units, for regression).
    fn revert_labels(&self, labels: &mut NdArray<T>) -> Result<(), DataError>;

    /// Whether the normalizer can transform (fitted, or needing no fit).
    fn is_fitted(&self) -> bool;
}

/// Per-column statistics (axis 1 of the arrays fitted on; see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// Number of values per column the statistics were computed over.
    pub count: u64,
    /// Mean of each column.
    pub mean: Vec<f64>,
    /// Population standard deviation of each column (0 for a constant column).
    pub std: Vec<f64>,
    /// Minimum of each column.
    pub min: Vec<f64>,
    /// Maximum of each column.
    pub max: Vec<f64>,
}

impl ColumnStats {
    /// Number of columns.
    pub fn columns(&self) -> usize {
        self.mean.len()
    }

    fn validate(&self, what: &str) -> Result<(), DataError> {
        let c = self.mean.len();
        let lens = [self.std.len(), self.min.len(), self.max.len()];
        if c == 0 || lens.iter().any(|&l| l != c) {
            return Err(format_error(
                what,
                format!(
                    "expected mean, std, min and max of one equal, non-zero length, found \
                     lengths {c}, {}, {}, {}",
                    lens[0], lens[1], lens[2]
                ),
            ));
        }
        for j in 0..c {
            let (mean, std, min, max) = (self.mean[j], self.std[j], self.min[j], self.max[j]);
            let finite = [mean, std, min, max].iter().all(|v| v.is_finite());
            if !(finite && std >= 0.0 && min <= max) {
                return Err(format_error(
                    what,
                    format!(
                        "column {j}: expected finite statistics with std >= 0 and min <= max, \
                         found mean {mean}, std {std}, min {min}, max {max}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Streaming per-column statistics in `f64`.
#[derive(Debug, Default)]
struct Accumulator {
    count: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
}

/// `(n, columns, inner)` of an array `[n, columns, ...]`.
fn dims<T: DataType>(what: &str, a: &NdArray<T>) -> Result<(usize, usize, usize), DataError> {
    let shape = a.shape();
    if shape.len() < 2 {
        return Err(DataError::Mismatch {
            what: what.to_owned(),
            message: format!(
                "expected an array with at least 2 axes ([examples, columns, ...]), found shape \
                 {shape:?}"
            ),
        });
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

/// How a mask of `len` elements applies to an array `[n, _, inner...]`: `Some(true)` per
/// (example, inner position), `Some(false)` per example.
fn mask_kind(what: &str, len: usize, n: usize, inner: usize) -> Result<bool, DataError> {
    if len == n * inner {
        Ok(true)
    } else if len == n {
        Ok(false)
    } else {
        Err(DataError::Mismatch {
            what: what.to_owned(),
            message: format!(
                "expected a mask of {} ([examples, time]) or {n} ([examples]) elements, found {len}",
                n * inner
            ),
        })
    }
}

impl Accumulator {
    fn add<T: DataType>(
        &mut self,
        what: &str,
        a: &NdArray<T>,
        mask: Option<&NdArray<T>>,
    ) -> Result<(), DataError> {
        let (n, c, inner) = dims(what, a)?;
        if self.mean.is_empty() {
            self.mean = vec![0.0; c];
            self.m2 = vec![0.0; c];
            self.min = vec![f64::INFINITY; c];
            self.max = vec![f64::NEG_INFINITY; c];
        } else if self.mean.len() != c {
            return Err(DataError::Mismatch {
                what: what.to_owned(),
                message: format!(
                    "a batch has {c} columns (shape {:?}), expected {} like the first batch",
                    a.shape(),
                    self.mean.len()
                ),
            });
        }
        let values = a.to_vec()?;
        let mask = match mask {
            Some(m) => {
                let per_step = mask_kind(what, m.len(), n, inner)?;
                Some((m.to_vec()?, per_step))
            }
            None => None,
        };
        let keep = |i: usize, r: usize| match &mask {
            None => true,
            Some((m, true)) => m[i * inner + r] != T::ZERO,
            Some((m, false)) => m[i] != T::ZERO,
        };
        // Two passes over the batch, then Chan's merge into the running statistics.
        let mut count = 0u64;
        let mut sum = vec![0.0; c];
        for i in 0..n {
            for r in 0..inner {
                if keep(i, r) {
                    count += 1;
                }
            }
        }
        if count == 0 {
            return Ok(());
        }
        for i in 0..n {
            for (j, s) in sum.iter_mut().enumerate() {
                for r in 0..inner {
                    if keep(i, r) {
                        let x = values[(i * c + j) * inner + r].to_f64();
                        *s += x;
                        self.min[j] = self.min[j].min(x);
                        self.max[j] = self.max[j].max(x);
                    }
                }
            }
        }
        let nb = count as f64;
        let bmean: Vec<f64> = sum.iter().map(|s| s / nb).collect();
        let mut bm2 = vec![0.0; c];
        for i in 0..n {
            for (j, m2) in bm2.iter_mut().enumerate() {
                for r in 0..inner {
                    if keep(i, r) {
                        let d = values[(i * c + j) * inner + r].to_f64() - bmean[j];
                        *m2 += d * d;
                    }
                }
            }
        }
        let na = self.count as f64;
        let total = na + nb;
        for j in 0..c {
            let delta = bmean[j] - self.mean[j];
            self.mean[j] += delta * nb / total;
            self.m2[j] += bm2[j] + delta * delta * na * nb / total;
        }
        self.count += count;
        Ok(())
    }

    fn finish(self, what: &str) -> Result<ColumnStats, DataError> {
        if self.count == 0 {
            return Err(invalid(
                "DataNormalization::fit",
                format!("{what}: expected at least one (unmasked) example to fit on, found none"),
            ));
        }
        let n = self.count as f64;
        let std = self.m2.iter().map(|m2| (m2 / n).sqrt()).collect();
        Ok(ColumnStats {
            count: self.count,
            mean: self.mean,
            std,
            min: self.min,
            max: self.max,
        })
    }
}

/// Fits feature (and optionally label) statistics over one pass of `it`.
fn fit_iterator<T: DataType>(
    it: &mut dyn DataSetIterator<T>,
    fit_labels: bool,
) -> Result<(ColumnStats, Option<ColumnStats>), DataError> {
    if !it.reset_supported() {
        return Err(invalid(
            "DataNormalization::fit",
            "expected an iterator that supports reset (fit reads one full epoch and rewinds it), \
             found one that does not",
        ));
    }
    it.reset()?;
    let mut features = Accumulator::default();
    let mut labels = Accumulator::default();
    let mut pass = || -> Result<(), DataError> {
        while let Some(batch) = it.next() {
            let b = batch?;
            features.add("features", &b.features, b.features_mask.as_ref())?;
            if fit_labels {
                labels.add("labels", &b.labels, b.labels_mask.as_ref())?;
            }
        }
        Ok(())
    };
    let result = pass();
    let rewound = it.reset();
    result?;
    rewound?;
    let f = features.finish("features")?;
    let l = fit_labels.then(|| labels.finish("labels")).transpose()?;
    Ok((f, l))
}

fn fit_dataset<T: DataType>(
    data: &DataSet<T>,
    fit_labels: bool,
) -> Result<(ColumnStats, Option<ColumnStats>), DataError> {
    data.validate("DataNormalization::fit_data")?;
    let mut features = Accumulator::default();
    features.add("features", &data.features, data.features_mask.as_ref())?;
    let f = features.finish("features")?;
    let l = if fit_labels {
        let mut labels = Accumulator::default();
        labels.add("labels", &data.labels, data.labels_mask.as_ref())?;
        Some(labels.finish("labels")?)
    } else {
        None
    };
    Ok((f, l))
}

/// Applies `f(column, x)` in place to every (unmasked) element of `a` `[n, columns, ...]`,
/// in `f64`. No heap allocation for contiguous arrays.
fn apply<T: DataType>(
    what: &'static str,
    a: &mut NdArray<T>,
    mask: Option<&NdArray<T>>,
    columns: usize,
    f: impl Fn(usize, f64) -> f64,
) -> Result<(), DataError> {
    let (n, c, inner) = dims(what, a)?;
    if c != columns {
        return Err(DataError::Mismatch {
            what: what.to_owned(),
            message: format!(
                "expected {columns} columns (axis 1) like the data the normalizer was fitted on, \
                 found shape {:?}",
                a.shape()
            ),
        });
    }
    if !a.is_contiguous() {
        let _heap = (!a.is_attached()).then(scope_out_of_workspaces);
        *a = a.dup()?;
    }
    let mask_guard = match mask {
        Some(m) => Some((m.read()?, mask_kind(what, m.len(), n, inner)?)),
        None => None,
    };
    let mask = match &mask_guard {
        Some((g, per_step)) => match g.as_slice() {
            Some(s) => Some((s, *per_step)),
            None => {
                return Err(invalid(
                    "DataNormalization::transform",
                    "expected a contiguous mask, found a strided one",
                ));
            }
        },
        None => None,
    };
    let mut w = a.write()?;
    let Some(data) = w.as_slice_mut() else {
        return Err(invalid(
            "DataNormalization::transform",
            "expected a contiguous array, found a strided one",
        ));
    };
    for i in 0..n {
        for j in 0..c {
            let row = &mut data[(i * c + j) * inner..(i * c + j + 1) * inner];
            for (r, x) in row.iter_mut().enumerate() {
                let keep = match mask {
                    None => true,
                    Some((m, true)) => m[i * inner + r] != T::ZERO,
                    Some((m, false)) => m[i] != T::ZERO,
                };
                if keep {
                    *x = T::from_f64(f(j, x.to_f64()));
                }
            }
        }
    }
    Ok(())
}

fn fitted<'a>(
    op: &'static str,
    stats: &'a Option<ColumnStats>,
) -> Result<&'a ColumnStats, DataError> {
    stats.as_ref().ok_or_else(|| {
        invalid(
            op,
            "expected a fitted normalizer (call fit or fit_data first), found an unfitted one",
        )
    })
}

fn to_json<S: Serialize>(what: &str, value: &S) -> Result<String, DataError> {
    serde_json::to_string_pretty(value).map_err(|e| format_error(what, e.to_string()))
}

fn from_json<S: for<'de> Deserialize<'de>>(what: &str, json: &str) -> Result<S, DataError> {
    serde_json::from_str(json).map_err(|e| format_error(what, format!("invalid JSON: {e}")))
}

/// Implements the parts of [`DataNormalization`] shared by the fitted normalizers, given
/// `forward(stats, column, x)` and `backward(stats, column, x)` methods.
macro_rules! fitted_normalizer {
    ($ty:ident, $name:literal) => {
        impl<T: DataType> DataNormalization<T> for $ty {
            fn fit(&mut self, iterator: &mut dyn DataSetIterator<T>) -> Result<(), DataError> {
                let (f, l) = fit_iterator(iterator, self.fit_labels)?;
                self.features = Some(f);
                self.labels = l;
                Ok(())
            }

            fn fit_data(&mut self, data: &DataSet<T>) -> Result<(), DataError> {
                let (f, l) = fit_dataset(data, self.fit_labels)?;
                self.features = Some(f);
                self.labels = l;
                Ok(())
            }

            fn transform(&self, data: &mut DataSet<T>) -> Result<(), DataError> {
                let s = fitted(concat!($name, "::transform"), &self.features)?;
                apply(
                    "features",
                    &mut data.features,
                    data.features_mask.as_ref(),
                    s.columns(),
                    |j, x| self.forward(s, j, x),
                )?;
                if let Some(s) = &self.labels {
                    apply(
                        "labels",
                        &mut data.labels,
                        data.labels_mask.as_ref(),
                        s.columns(),
                        |j, x| self.forward(s, j, x),
                    )?;
                }
                Ok(())
            }

            fn revert(&self, data: &mut DataSet<T>) -> Result<(), DataError> {
                let s = fitted(concat!($name, "::revert"), &self.features)?;
                apply(
                    "features",
                    &mut data.features,
                    data.features_mask.as_ref(),
                    s.columns(),
                    |j, x| self.backward(s, j, x),
                )?;
                if let Some(s) = &self.labels {
                    apply(
                        "labels",
                        &mut data.labels,
                        data.labels_mask.as_ref(),
                        s.columns(),
                        |j, x| self.backward(s, j, x),
                    )?;
                }
                Ok(())
            }

            fn transform_features(&self, features: &mut NdArray<T>) -> Result<(), DataError> {
                let s = fitted(concat!($name, "::transform_features"), &self.features)?;
                apply("features", features, None, s.columns(), |j, x| {
                    self.forward(s, j, x)
                })
            }

            fn revert_features(&self, features: &mut NdArray<T>) -> Result<(), DataError> {
                let s = fitted(concat!($name, "::revert_features"), &self.features)?;
                apply("features", features, None, s.columns(), |j, x| {
                    self.backward(s, j, x)
                })
            }

            fn transform_labels(&self, labels: &mut NdArray<T>) -> Result<(), DataError> {
                match &self.labels {
                    Some(s) => apply("labels", labels, None, s.columns(), |j, x| {
                        self.forward(s, j, x)
                    }),
                    None => Ok(()),
                }
            }

            fn revert_labels(&self, labels: &mut NdArray<T>) -> Result<(), DataError> {
                match &self.labels {
                    Some(s) => apply("labels", labels, None, s.columns(), |j, x| {
                        self.backward(s, j, x)
                    }),
                    None => Ok(()),
                }
            }

            fn is_fitted(&self) -> bool {
                self.features.is_some()
            }
        }

        impl $ty {
            /// Whether labels are fitted and transformed too (regression targets).
            pub fn fit_labels(mut self, fit_labels: bool) -> Self {
                self.fit_labels = fit_labels;
                self
            }

            /// Whether labels are fitted and transformed too.
            pub fn fits_labels(&self) -> bool {
                self.fit_labels
            }

            /// The fitted feature statistics.
            pub fn feature_stats(&self) -> Option<&ColumnStats> {
                self.features.as_ref()
            }

            /// The fitted label statistics (when fitting labels).
            pub fn label_stats(&self) -> Option<&ColumnStats> {
                self.labels.as_ref()
            }

            /// The normalizer as JSON.
            pub fn to_json(&self) -> Result<String, DataError> {
                to_json($name, self)
            }

            /// A normalizer from [`to_json`](Self::to_json)'s output (checked: statistics of
            /// equal lengths, finite, `std >= 0`, `min <= max`).
            pub fn from_json(json: &str) -> Result<Self, DataError> {
                let n: Self = from_json($name, json)?;
                n.validate()?;
                Ok(n)
            }

            fn validate(&self) -> Result<(), DataError> {
                for s in [&self.features, &self.labels].into_iter().flatten() {
                    s.validate($name)?;
                }
                if self.labels.is_some() && self.features.is_none() {
                    return Err(format_error(
                        $name,
                        "expected feature statistics alongside the label statistics, found none",
                    ));
                }
                self.validate_extra()
            }
        }
    };
}

/// DL4J's `NormalizerStandardize`: each column to zero mean and unit variance,
/// `x' = (x - mean) / std`, with the population std of the fitted data (a constant column,
/// std 0, uses 1: it is only centred).
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::normalizer::{DataNormalization, NormalizerStandardize};
///
/// let mut x = NdArray::<f64>::from_slice(&[2, 1], &[1.0, 3.0]).unwrap();
/// let data = dl4rs_data::DataSet::new(x.dup().unwrap(), NdArray::zeros(&[2, 1]).unwrap()).unwrap();
/// let mut norm = NormalizerStandardize::new();
/// norm.fit_data(&data).unwrap();
/// norm.transform_features(&mut x).unwrap();
/// assert_eq!(x.to_vec().unwrap(), [-1.0, 1.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NormalizerStandardize {
    fit_labels: bool,
    features: Option<ColumnStats>,
    labels: Option<ColumnStats>,
}

impl NormalizerStandardize {
    /// An unfitted normalizer for features only.
    pub fn new() -> Self {
        Self::default()
    }

    /// The fitted feature means.
    pub fn mean(&self) -> Option<&[f64]> {
        self.features.as_ref().map(|s| s.mean.as_slice())
    }

    /// The fitted feature standard deviations (0 for constant columns; 1 is used then).
    pub fn std(&self) -> Option<&[f64]> {
        self.features.as_ref().map(|s| s.std.as_slice())
    }

    fn scale(s: &ColumnStats, j: usize) -> f64 {
        // Constant columns (min == max) have std 0 exactly, or rounding noise: use 1.
        if s.std[j] == 0.0 || s.min[j] == s.max[j] {
            1.0
        } else {
            s.std[j]
        }
    }

    fn forward(&self, s: &ColumnStats, j: usize, x: f64) -> f64 {
        (x - s.mean[j]) / Self::scale(s, j)
    }

    fn backward(&self, s: &ColumnStats, j: usize, x: f64) -> f64 {
        x * Self::scale(s, j) + s.mean[j]
    }

    fn validate_extra(&self) -> Result<(), DataError> {
        Ok(())
    }
}

fitted_normalizer!(NormalizerStandardize, "NormalizerStandardize");

/// DL4J's `NormalizerMinMaxScaler`: each column from its fitted `[min, max]` to the target
/// range `[low, high]` (default `[0, 1]`): `x' = (x - min) / (max - min) * (high - low) + low`.
/// A constant column (`max == min`) maps to `low`.
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::DataSet;
/// use dl4rs_data::normalizer::{DataNormalization, NormalizerMinMaxScaler};
///
/// let x = NdArray::<f32>::from_slice(&[3, 1], &[10., 15., 20.]).unwrap();
/// let mut data = DataSet::new(x, NdArray::zeros(&[3, 1]).unwrap()).unwrap();
/// let mut norm = NormalizerMinMaxScaler::with_range(-1.0, 1.0).unwrap();
/// norm.fit_data(&data).unwrap();
/// norm.transform(&mut data).unwrap();
/// assert_eq!(data.features.to_vec().unwrap(), [-1.0, 0.0, 1.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizerMinMaxScaler {
    low: f64,
    high: f64,
    fit_labels: bool,
    features: Option<ColumnStats>,
    labels: Option<ColumnStats>,
}

impl Default for NormalizerMinMaxScaler {
    fn default() -> Self {
        NormalizerMinMaxScaler {
            low: 0.0,
            high: 1.0,
            fit_labels: false,
            features: None,
            labels: None,
        }
    }
}

fn check_range(op: &'static str, low: f64, high: f64) -> Result<(), DataError> {
    if low.is_finite() && high.is_finite() && low < high {
        Ok(())
    } else {
        Err(invalid(
            op,
            format!("expected a finite target range with low < high, found [{low}, {high}]"),
        ))
    }
}

impl NormalizerMinMaxScaler {
    /// An unfitted scaler to `[0, 1]`, features only.
    pub fn new() -> Self {
        Self::default()
    }

    /// An unfitted scaler to `[low, high]` (finite, `low < high`).
    pub fn with_range(low: f64, high: f64) -> Result<Self, DataError> {
        check_range("NormalizerMinMaxScaler::with_range", low, high)?;
        Ok(NormalizerMinMaxScaler {
            low,
            high,
            ..Self::default()
        })
    }

    /// The target range `(low, high)`.
    pub fn target_range(&self) -> (f64, f64) {
        (self.low, self.high)
    }

    /// The fitted feature minima.
    pub fn min(&self) -> Option<&[f64]> {
        self.features.as_ref().map(|s| s.min.as_slice())
    }

    /// The fitted feature maxima.
    pub fn max(&self) -> Option<&[f64]> {
        self.features.as_ref().map(|s| s.max.as_slice())
    }

    fn range(s: &ColumnStats, j: usize) -> f64 {
        let r = s.max[j] - s.min[j];
        if r == 0.0 { 1.0 } else { r }
    }

    fn forward(&self, s: &ColumnStats, j: usize, x: f64) -> f64 {
        (x - s.min[j]) / Self::range(s, j) * (self.high - self.low) + self.low
    }

    fn backward(&self, s: &ColumnStats, j: usize, x: f64) -> f64 {
        (x - self.low) / (self.high - self.low) * Self::range(s, j) + s.min[j]
    }

    fn validate_extra(&self) -> Result<(), DataError> {
        check_range("NormalizerMinMaxScaler::from_json", self.low, self.high)
    }
}

fitted_normalizer!(NormalizerMinMaxScaler, "NormalizerMinMaxScaler");

/// DL4J's `ImagePreProcessingScaler`: pixel values `0..=max_value` (default 255) to
/// `[low, high]` (default `[0, 1]`): `x' = x / max_value * (high - low) + low`, for every
/// feature value. Needs no fit (`fit` does nothing and leaves the iterator alone); labels
/// are never changed.
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::normalizer::{DataNormalization, ImagePreProcessingScaler};
///
/// let mut pixels = NdArray::<f32>::from_slice(&[1, 3], &[0., 127.5, 255.]).unwrap();
/// ImagePreProcessingScaler::new().transform_features(&mut pixels).unwrap();
/// assert_eq!(pixels.to_vec().unwrap(), [0.0, 0.5, 1.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePreProcessingScaler {
    low: f64,
    high: f64,
    max_value: f64,
}

impl Default for ImagePreProcessingScaler {
    fn default() -> Self {
        ImagePreProcessingScaler {
            low: 0.0,
            high: 1.0,
            max_value: 255.0,
        }
    }
}

impl ImagePreProcessingScaler {
    /// Pixels `0..=255` to `[0, 1]`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pixels `0..=255` to `[low, high]` (finite, `low < high`).
    pub fn with_range(low: f64, high: f64) -> Result<Self, DataError> {
        check_range("ImagePreProcessingScaler::with_range", low, high)?;
        Ok(ImagePreProcessingScaler {
            low,
            high,
            ..Self::default()
        })
    }

    /// The largest pixel value (255 for 8-bit images; finite and positive).
    pub fn with_max_value(mut self, max_value: f64) -> Result<Self, DataError> {
        if !(max_value.is_finite() && max_value > 0.0) {
            return Err(invalid(
                "ImagePreProcessingScaler::with_max_value",
                format!("expected a finite, positive maximum pixel value, found {max_value}"),
            ));
        }
        self.max_value = max_value;
        Ok(self)
    }

    /// The target range `(low, high)`.
    pub fn target_range(&self) -> (f64, f64) {
        (self.low, self.high)
    }

    /// The largest pixel value.
    pub fn max_value(&self) -> f64 {
        self.max_value
    }

    /// The scaler as JSON.
    pub fn to_json(&self) -> Result<String, DataError> {
        to_json("ImagePreProcessingScaler", self)
    }

    /// A scaler from [`to_json`](Self::to_json)'s output (checked).
    pub fn from_json(json: &str) -> Result<Self, DataError> {
        let s: Self = from_json("ImagePreProcessingScaler", json)?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), DataError> {
        check_range("ImagePreProcessingScaler::from_json", self.low, self.high)?;
        ImagePreProcessingScaler::new().with_max_value(self.max_value)?;
        Ok(())
    }

    fn map<T: DataType>(
        &self,
        a: &mut NdArray<T>,
        f: impl Fn(f64) -> f64,
    ) -> Result<(), DataError> {
        let columns = dims("features", a)?.1;
        apply("features", a, None, columns, |_, x| f(x))
    }

    fn forward(&self, x: f64) -> f64 {
        x / self.max_value * (self.high - self.low) + self.low
    }

    fn backward(&self, x: f64) -> f64 {
        (x - self.low) / (self.high - self.low) * self.max_value
    }
}

impl<T: DataType> DataNormalization<T> for ImagePreProcessingScaler {
    fn fit(&mut self, _iterator: &mut dyn DataSetIterator<T>) -> Result<(), DataError> {
        Ok(())
    }

    fn fit_data(&mut self, _data: &DataSet<T>) -> Result<(), DataError> {
        Ok(())
    }

    fn transform(&self, data: &mut DataSet<T>) -> Result<(), DataError> {
        self.transform_features(&mut data.features)
    }

    fn revert(&self, data: &mut DataSet<T>) -> Result<(), DataError> {
        self.revert_features(&mut data.features)
    }

    fn transform_features(&self, features: &mut NdArray<T>) -> Result<(), DataError> {
        self.map(features, |x| self.forward(x))
    }

    fn revert_features(&self, features: &mut NdArray<T>) -> Result<(), DataError> {
        self.map(features, |x| self.backward(x))
    }

    fn transform_labels(&self, _labels: &mut NdArray<T>) -> Result<(), DataError> {
        Ok(())
    }

    fn revert_labels(&self, _labels: &mut NdArray<T>) -> Result<(), DataError> {
        Ok(())
    }

    fn is_fitted(&self) -> bool {
        true
    }
}

/// Any normalizer, for storage (a model file keeps the fitted one as JSON, tagged by
/// `"type"`: `"standardize"`, `"min_max"` or `"image_scaler"`) and for choosing one by name
/// ([`from_name`](Self::from_name), for a command line's `--normalizer`).
///
/// ```
/// use dl4rs_data::normalizer::Normalizer;
///
/// let n = Normalizer::from_name("minmax").unwrap();
/// assert_eq!(n.name(), "minmax");
/// let json = n.to_json().unwrap();
/// assert!(json.contains("\"type\": \"min_max\""));
/// assert_eq!(Normalizer::from_json(&json).unwrap(), n);
/// assert!(Normalizer::from_name("zscore").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Normalizer {
    /// A [`NormalizerStandardize`].
    Standardize(NormalizerStandardize),
    /// A [`NormalizerMinMaxScaler`].
    MinMax(NormalizerMinMaxScaler),
    /// An [`ImagePreProcessingScaler`].
    ImageScaler(ImagePreProcessingScaler),
}

impl Normalizer {
    /// The names [`from_name`](Self::from_name) accepts.
    pub const NAMES: [&'static str; 3] = ["standardize", "minmax", "image"];

    /// An unfitted normalizer with default settings by name: `"standardize"`, `"minmax"`
    /// (to `[0, 1]`) or `"image"` (pixels `0..=255` to `[0, 1]`).
    pub fn from_name(name: &str) -> Result<Self, DataError> {
        match name {
            "standardize" => Ok(Normalizer::Standardize(NormalizerStandardize::new())),
            "minmax" => Ok(Normalizer::MinMax(NormalizerMinMaxScaler::new())),
            "image" => Ok(Normalizer::ImageScaler(ImagePreProcessingScaler::new())),
            other => Err(invalid(
                "Normalizer::from_name",
                format!("expected one of standardize, minmax, image, found {other:?}"),
            )),
        }
    }

    /// The name [`from_name`](Self::from_name) takes for this kind.
    pub fn name(&self) -> &'static str {
        match self {
            Normalizer::Standardize(_) => "standardize",
            Normalizer::MinMax(_) => "minmax",
            Normalizer::ImageScaler(_) => "image",
        }
    }

    /// Whether labels are fitted and transformed too (regression targets).
    pub fn fits_labels(&self) -> bool {
        match self {
            Normalizer::Standardize(n) => n.fits_labels(),
            Normalizer::MinMax(n) => n.fits_labels(),
            Normalizer::ImageScaler(_) => false,
        }
    }

    /// Sets whether labels are fitted and transformed too (regression targets); the image
    /// scaler never changes labels.
    pub fn fit_labels(self, fit_labels: bool) -> Self {
        match self {
            Normalizer::Standardize(n) => Normalizer::Standardize(n.fit_labels(fit_labels)),
            Normalizer::MinMax(n) => Normalizer::MinMax(n.fit_labels(fit_labels)),
            other => other,
        }
    }

    /// The normalizer as JSON.
    pub fn to_json(&self) -> Result<String, DataError> {
        to_json("Normalizer", self)
    }

    /// A normalizer from [`to_json`](Self::to_json)'s output (checked like the variants'
    /// own `from_json`).
    pub fn from_json(json: &str) -> Result<Self, DataError> {
        let n: Self = from_json("Normalizer", json)?;
        match &n {
            Normalizer::Standardize(s) => s.validate()?,
            Normalizer::MinMax(s) => s.validate()?,
            Normalizer::ImageScaler(s) => s.validate()?,
        }
        Ok(n)
    }

    fn inner<T: DataType>(&self) -> &dyn DataNormalization<T> {
        match self {
            Normalizer::Standardize(n) => n,
            Normalizer::MinMax(n) => n,
            Normalizer::ImageScaler(n) => n,
        }
    }

    fn inner_mut<T: DataType>(&mut self) -> &mut dyn DataNormalization<T> {
        match self {
            Normalizer::Standardize(n) => n,
            Normalizer::MinMax(n) => n,
            Normalizer::ImageScaler(n) => n,
        }
    }
}

impl From<NormalizerStandardize> for Normalizer {
    fn from(n: NormalizerStandardize) -> Self {
        Normalizer::Standardize(n)
    }
}

impl From<NormalizerMinMaxScaler> for Normalizer {
    fn from(n: NormalizerMinMaxScaler) -> Self {
        Normalizer::MinMax(n)
    }
}

impl From<ImagePreProcessingScaler> for Normalizer {
    fn from(n: ImagePreProcessingScaler) -> Self {
        Normalizer::ImageScaler(n)
    }
}

impl<T: DataType> DataNormalization<T> for Normalizer {
    fn fit(&mut self, iterator: &mut dyn DataSetIterator<T>) -> Result<(), DataError> {
        self.inner_mut().fit(iterator)
    }
    fn fit_data(&mut self, data: &DataSet<T>) -> Result<(), DataError> {
        self.inner_mut().fit_data(data)
    }
    fn transform(&self, data: &mut DataSet<T>) -> Result<(), DataError> {
        self.inner().transform(data)
    }
    fn revert(&self, data: &mut DataSet<T>) -> Result<(), DataError> {
        self.inner().revert(data)
    }
    fn transform_features(&self, features: &mut NdArray<T>) -> Result<(), DataError> {
        self.inner().transform_features(features)
    }
    fn revert_features(&self, features: &mut NdArray<T>) -> Result<(), DataError> {
        self.inner().revert_features(features)
    }
    fn transform_labels(&self, labels: &mut NdArray<T>) -> Result<(), DataError> {
        self.inner().transform_labels(labels)
    }
    fn revert_labels(&self, labels: &mut NdArray<T>) -> Result<(), DataError> {
        self.inner().revert_labels(labels)
    }
    fn is_fitted(&self) -> bool {
        DataNormalization::<T>::is_fitted(self.inner::<T>())
    }
}

/// An iterator whose batches are normalized: DL4J's `setPreProcessor` as a wrapper. Each
/// `next()` takes the inner iterator's batch and applies the normalizer's
/// [`transform`](DataNormalization::transform) in place (no allocation beyond the batch).
///
/// A wrapper rather than a setter on every iterator: the iterator contract stays small, any
/// iterator can be normalized, and the normalizer (already fitted; fit it on the raw
/// iterator first) is owned here. Everything but `next` is the inner iterator's. To prefetch,
/// put this wrapper inside the prefetcher, so normalization also runs ahead on the prefetch
/// thread (both parts must be `Send`).
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::{DataSet, DataSetIterator, InMemoryDataSetIterator};
/// use dl4rs_data::normalizer::{DataNormalization, NormalizerMinMaxScaler, PreProcessedIterator};
///
/// let x = NdArray::<f32>::from_slice(&[3, 1], &[2., 4., 6.]).unwrap();
/// let data = DataSet::new(x, NdArray::zeros(&[3, 1]).unwrap()).unwrap();
/// let mut raw = InMemoryDataSetIterator::new(data, 2).unwrap();
/// let mut norm = NormalizerMinMaxScaler::new();
/// norm.fit(&mut raw).unwrap();
/// let mut it = PreProcessedIterator::new(raw, norm);
/// let first = it.next().unwrap().unwrap();
/// assert_eq!(first.features.to_vec().unwrap(), [0.0, 0.5]);
/// ```
#[derive(Debug)]
pub struct PreProcessedIterator<I, N> {
    inner: I,
    normalizer: N,
}

impl<I, N> PreProcessedIterator<I, N> {
    /// Wraps `inner`, normalizing its batches with `normalizer`.
    pub fn new(inner: I, normalizer: N) -> Self {
        PreProcessedIterator { inner, normalizer }
    }

    /// The normalizer.
    pub fn normalizer(&self) -> &N {
        &self.normalizer
    }

    /// The wrapped iterator.
    pub fn inner(&self) -> &I {
        &self.inner
    }

    /// The wrapped iterator and the normalizer.
    pub fn into_parts(self) -> (I, N) {
        (self.inner, self.normalizer)
    }
}

impl<T: DataType, I: DataSetIterator<T>, N: DataNormalization<T>> DataSetIterator<T>
    for PreProcessedIterator<I, N>
{
    fn next(&mut self) -> Option<Result<DataSet<T>, DataError>> {
        let batch = self.inner.next()?;
        Some(batch.and_then(|mut b| {
            self.normalizer.transform(&mut b)?;
            Ok(b)
        }))
    }
    fn has_next(&self) -> bool {
        self.inner.has_next()
    }
    fn reset(&mut self) -> Result<(), DataError> {
        self.inner.reset()
    }
    fn reset_supported(&self) -> bool {
        self.inner.reset_supported()
    }
    fn async_supported(&self) -> bool {
        self.inner.async_supported()
    }
    fn batch(&self) -> usize {
        self.inner.batch()
    }
    fn total_outcomes(&self) -> usize {
        self.inner.total_outcomes()
    }
    fn input_columns(&self) -> usize {
        self.inner.input_columns()
    }
    fn total_examples(&self) -> Option<usize> {
        self.inner.total_examples()
    }
}
