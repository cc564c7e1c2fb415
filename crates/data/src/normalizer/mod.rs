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

mod scalers;
mod stats;

pub use scalers::{ImagePreProcessingScaler, NormalizerMinMaxScaler, NormalizerStandardize};
pub use stats::ColumnStats;
use stats::{from_json, to_json};

use dl4rs_array::{DataType, NdArray};
use serde::{Deserialize, Serialize};

use crate::dataset::DataSet;
use crate::error::{DataError, invalid};
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
