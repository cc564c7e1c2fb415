//! The fitted statistics and the passes every normalizer shares: per-column mean, variance,
//! minimum and maximum merged over batches in `f64` ([`ColumnStats`]), the fitting pass over
//! an iterator or a data set, the in-place per-column map that `transform` and `revert` run
//! (masks honoured), and the JSON helpers of the stored forms.

use dl4rs_array::{DataType, NdArray};
use dl4rs_memory::scope_out_of_workspaces;
use serde::{Deserialize, Serialize};

use crate::dataset::DataSet;
use crate::error::{DataError, format_error, invalid};
use crate::iterator::DataSetIterator;

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

    pub(super) fn validate(&self, what: &str) -> Result<(), DataError> {
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
pub(super) fn dims<T: DataType>(
    what: &str,
    a: &NdArray<T>,
) -> Result<(usize, usize, usize), DataError> {
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
pub(super) fn fit_iterator<T: DataType>(
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

pub(super) fn fit_dataset<T: DataType>(
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
pub(super) fn apply<T: DataType>(
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

pub(super) fn fitted<'a>(
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

pub(super) fn to_json<S: Serialize>(what: &str, value: &S) -> Result<String, DataError> {
    serde_json::to_string_pretty(value).map_err(|e| format_error(what, e.to_string()))
}

pub(super) fn from_json<S: for<'de> Deserialize<'de>>(
    what: &str,
    json: &str,
) -> Result<S, DataError> {
    serde_json::from_str(json).map_err(|e| format_error(what, format!("invalid JSON: {e}")))
}
