//! The three normalizers of DL4J's `DataNormalization` family: [`NormalizerStandardize`],
//! [`NormalizerMinMaxScaler`] (both fitted, through one macro) and
//! [`ImagePreProcessingScaler`] (nothing to fit).

use dl4rs_array::{DataType, NdArray};
use serde::{Deserialize, Serialize};

use crate::dataset::DataSet;
use crate::error::{DataError, format_error, invalid};
use crate::iterator::DataSetIterator;

use super::DataNormalization;
use super::stats::{
    ColumnStats, apply, dims, fit_dataset, fit_iterator, fitted, from_json, to_json,
};
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

            pub(super) fn validate(&self) -> Result<(), DataError> {
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

    pub(super) fn validate(&self) -> Result<(), DataError> {
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
