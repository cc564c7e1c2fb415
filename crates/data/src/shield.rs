//! [`AsyncShieldDataSetIterator`] and [`AsyncShieldMultiDataSetIterator`], DL4J's way to turn
//! asynchronous prefetch off for one iterator: pass-through wrappers whose `async_supported()`
//! is always false, so `fit` and evaluation never wrap them in an
//! [`AsyncDataSetIterator`](crate::AsyncDataSetIterator) (resp.
//! [`AsyncMultiDataSetIterator`](crate::AsyncMultiDataSetIterator)).

use dl4rs_array::DataType;

use crate::dataset::DataSet;
use crate::error::DataError;
use crate::iterator::DataSetIterator;
use crate::lazy::{LazyDataSet, LazyMultiDataSet};
use crate::multi::{MultiDataSet, MultiDataSetIterator};

/// Wraps an iterator and reports [`async_supported`](DataSetIterator::async_supported) = false;
/// everything else is passed through unchanged. Use it for debugging (batches are produced on
/// the consumer's thread, in its workspace), or for a source that reuses its arrays between
/// calls or depends on when `next()` is called.
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::{AsyncDataSetIterator, AsyncShieldDataSetIterator, DataSet, DataSetIterator,
///     InMemoryDataSetIterator};
///
/// let x = NdArray::<f32>::from_slice(&[3, 1], &[0., 1., 2.]).unwrap();
/// let y = NdArray::<f32>::zeros(&[3, 1]).unwrap();
/// let inner = InMemoryDataSetIterator::new(DataSet::new(x, y).unwrap(), 2).unwrap();
/// let shielded = AsyncShieldDataSetIterator::new(inner);
/// assert!(!shielded.async_supported());
/// // What fit does: wrap only when the iterator supports it, so this stays synchronous.
/// let mut it = AsyncDataSetIterator::wrap_if_supported(Box::new(shielded), 2).unwrap();
/// assert_eq!(it.next().unwrap().unwrap().num_examples(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct AsyncShieldDataSetIterator<I> {
    inner: I,
}

impl<I> AsyncShieldDataSetIterator<I> {
    /// Shields `inner` from asynchronous prefetch.
    pub fn new(inner: I) -> Self {
        AsyncShieldDataSetIterator { inner }
    }

    /// The wrapped iterator.
    pub fn inner(&self) -> &I {
        &self.inner
    }

    /// The wrapped iterator, mutably.
    pub fn inner_mut(&mut self) -> &mut I {
        &mut self.inner
    }

    /// Gives the wrapped iterator back.
    pub fn into_inner(self) -> I {
        self.inner
    }
}

impl<T: DataType, I: DataSetIterator<T>> DataSetIterator<T> for AsyncShieldDataSetIterator<I> {
    fn next(&mut self) -> Option<Result<DataSet<T>, DataError>> {
        self.inner.next()
    }

    fn next_lazy(&mut self) -> Option<Result<LazyDataSet<T>, DataError>> {
        self.inner.next_lazy()
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

    /// Always false: the point of the shield.
    fn async_supported(&self) -> bool {
        false
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

/// [`AsyncShieldDataSetIterator`] for [`MultiDataSetIterator`]s (DL4J's
/// `AsyncShieldMultiDataSetIterator`): passes everything through and reports
/// [`async_supported`](MultiDataSetIterator::async_supported) = false, so `fit` never wraps it
/// in an [`AsyncMultiDataSetIterator`](crate::AsyncMultiDataSetIterator).
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::{AsyncMultiDataSetIterator, AsyncShieldMultiDataSetIterator,
///     InMemoryMultiDataSetIterator, MultiDataSet, MultiDataSetIterator};
///
/// let x = NdArray::<f32>::from_slice(&[3, 1], &[0., 1., 2.]).unwrap();
/// let y = NdArray::<f32>::zeros(&[3, 1]).unwrap();
/// let data = MultiDataSet::new(vec![x], vec![y]).unwrap();
/// let inner = InMemoryMultiDataSetIterator::new(data, 2).unwrap();
/// let shielded = AsyncShieldMultiDataSetIterator::new(inner);
/// assert!(!shielded.async_supported());
/// let mut it = AsyncMultiDataSetIterator::wrap_if_supported(Box::new(shielded), 2).unwrap();
/// let batch = it.next().unwrap().unwrap();
/// assert!(!batch.is_attached()); // made on this thread: not prefetched
/// ```
#[derive(Debug, Clone)]
pub struct AsyncShieldMultiDataSetIterator<I> {
    inner: I,
}

impl<I> AsyncShieldMultiDataSetIterator<I> {
    /// Shields `inner` from asynchronous prefetch.
    pub fn new(inner: I) -> Self {
        AsyncShieldMultiDataSetIterator { inner }
    }

    /// The wrapped iterator.
    pub fn inner(&self) -> &I {
        &self.inner
    }

    /// The wrapped iterator, mutably.
    pub fn inner_mut(&mut self) -> &mut I {
        &mut self.inner
    }

    /// Gives the wrapped iterator back.
    pub fn into_inner(self) -> I {
        self.inner
    }
}

impl<T: DataType, I: MultiDataSetIterator<T>> MultiDataSetIterator<T>
    for AsyncShieldMultiDataSetIterator<I>
{
    fn next(&mut self) -> Option<Result<MultiDataSet<T>, DataError>> {
        self.inner.next()
    }

    fn next_lazy(&mut self) -> Option<Result<LazyMultiDataSet<T>, DataError>> {
        self.inner.next_lazy()
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

    /// Always false: the point of the shield.
    fn async_supported(&self) -> bool {
        false
    }

    fn batch(&self) -> usize {
        self.inner.batch()
    }

    fn total_examples(&self) -> Option<usize> {
        self.inner.total_examples()
    }
}
