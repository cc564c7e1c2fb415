//! [`AsyncMultiDataSetIterator`], DL4J's prefetching iterator for [`MultiDataSetIterator`]
//! sources: the same prefetch thread, ring workspace (`"AMDSI_ITER-<n>"`, `prefetch + 3`
//! slots), bounded queue, peek, reset and shutdown as
//! [`AsyncDataSetIterator`](crate::AsyncDataSetIterator), shared through the private
//! `Prefetcher` of `async_iter`.

use std::fmt;

use dl4rs_array::DataType;
use dl4rs_memory::WorkspaceConfig;

use crate::async_iter::{BatchSource, DEFAULT_MIN_RING_BYTES, Names, Prefetcher, ring_config};
use crate::error::DataError;
use crate::multi::{MultiDataSet, MultiDataSetIterator};

/// The source iterator the prefetch thread drives.
/// A multi data set iterator the prefetch thread can own.
pub type MultiSource<T> = Box<dyn MultiDataSetIterator<T> + Send>;

const AMDSI: Names = Names {
    ty: "AsyncMultiDataSetIterator",
    new_op: "AsyncMultiDataSetIterator::new",
    next_op: "AsyncMultiDataSetIterator::next",
    reset_op: "AsyncMultiDataSetIterator::reset",
    id_prefix: "AMDSI_ITER-",
    thread: "AMDSI prefetch thread",
};

/// What the consumer may ask of the source while the thread owns it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MultiSourceInfo {
    batch: usize,
    total_examples: Option<usize>,
}

impl<T: DataType> BatchSource for MultiSource<T> {
    type Batch = MultiDataSet<T>;
    type Info = MultiSourceInfo;

    fn next_batch(&mut self) -> Option<Result<MultiDataSet<T>, DataError>> {
        MultiDataSetIterator::next(&mut **self)
    }
    fn reset_source(&mut self) -> Result<(), DataError> {
        MultiDataSetIterator::reset(&mut **self)
    }
    fn can_reset(&self) -> bool {
        MultiDataSetIterator::reset_supported(&**self)
    }
    fn info(&self) -> MultiSourceInfo {
        MultiSourceInfo {
            batch: self.batch(),
            total_examples: self.total_examples(),
        }
    }
}

/// DL4J's `AsyncMultiDataSetIterator`: prefetches batches of a [`MultiDataSetIterator`] on a
/// background thread into a ring workspace, safely, exactly like
/// [`AsyncDataSetIterator`](crate::AsyncDataSetIterator) does for data sets. The ring holds
/// `prefetch + 3` batches, as for data sets (whose bound `tests/async_model.rs` checks over
/// every interleaving); DL4J's `AsyncMultiDataSetIterator` uses an overallocation of
/// `prefetch + 1` instead.
///
/// # The contract
/// A [`MultiDataSet`] returned by [`next`](MultiDataSetIterator::next) lives in the prefetch
/// thread's ring and **stays valid at least until the next call to `next()`** (`has_next()`
/// calls in between are fine). Use it before asking for the next one, or
/// [`detach`](MultiDataSet::detach) what you keep. One kept longer is never silently
/// overwritten: once the ring has reused its slot, reading any of its arrays fails with
/// [`WorkspaceError::StaleRingSlot`](dl4rs_memory::WorkspaceError::StaleRingSlot) (wrapped in
/// [`ArrayError::Workspace`](dl4rs_array::ArrayError::Workspace)).
///
/// - Every batch of an epoch exactly once, in the source's order.
/// - A source error comes out of `next()` after every batch produced before it; a source panic
///   comes out as [`DataError::Prefetch`]. The epoch ends there until
///   [`reset`](MultiDataSetIterator::reset).
/// - `reset()` works at any point of an epoch; dropping the iterator stops and joins the
///   thread.
/// - [`async_supported`](MultiDataSetIterator::async_supported) is false: never wrapped twice.
/// - Steady state: handing a batch over allocates nothing on either thread. A [`MultiDataSet`]
///   keeps its arrays in `Vec`s, so the *source* allocates those small `Vec`s (on the prefetch
///   thread) for each batch it makes; the arrays' data live in the ring, and the consumer's
///   `next()` allocates nothing.
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::{AsyncMultiDataSetIterator, InMemoryMultiDataSetIterator, MultiDataSet,
///     MultiDataSetIterator};
///
/// let a = NdArray::<f32>::from_slice(&[4, 1], &[0., 1., 2., 3.]).unwrap();
/// let b = NdArray::<f32>::from_slice(&[4, 2], &[0., 0., 1., 1., 2., 2., 3., 3.]).unwrap();
/// let y = NdArray::<f32>::from_slice(&[4, 1], &[0., 10., 20., 30.]).unwrap();
/// let data = MultiDataSet::new(vec![a, b], vec![y]).unwrap();
/// let source = InMemoryMultiDataSetIterator::new(data, 3).unwrap();
/// let mut it = AsyncMultiDataSetIterator::new(Box::new(source), 2).unwrap();
///
/// let mut seen = Vec::new();
/// while let Some(batch) = it.next() {
///     let batch = batch.unwrap();
///     assert_eq!(batch.num_features_arrays(), 2);
///     seen.extend(batch.labels[0].to_vec().unwrap()); // use it before the next `next()`
/// }
/// assert_eq!(seen, [0., 10., 20., 30.]);
/// it.reset().unwrap(); // next epoch
/// assert!(it.has_next());
/// ```
pub struct AsyncMultiDataSetIterator<T: DataType = f32> {
    inner: Prefetcher<MultiSource<T>>,
}

impl<T: DataType> fmt::Debug for AsyncMultiDataSetIterator<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug(f)
    }
}

impl<T: DataType> AsyncMultiDataSetIterator<T> {
    /// Prefetches `source` with a queue of `prefetch` batches (at least
    /// [`MIN_PREFETCH`](crate::MIN_PREFETCH), at most [`MAX_PREFETCH`](crate::MAX_PREFETCH);
    /// DL4J's default is [`DEFAULT_PREFETCH`](crate::DEFAULT_PREFETCH), `fit` uses 2) and a
    /// ring of at least [`DEFAULT_MIN_RING_BYTES`]. Starts the prefetch thread.
    pub fn new(source: MultiSource<T>, prefetch: usize) -> Result<Self, DataError> {
        Self::with_min_ring_bytes(source, prefetch, DEFAULT_MIN_RING_BYTES)
    }

    /// As [`new`](Self::new), with the ring's minimum size in bytes (0: exactly
    /// `prefetch + 3` slots of the learned batch size).
    pub fn with_min_ring_bytes(
        source: MultiSource<T>,
        prefetch: usize,
        min_ring_bytes: usize,
    ) -> Result<Self, DataError> {
        Ok(AsyncMultiDataSetIterator {
            inner: Prefetcher::new(source, prefetch, min_ring_bytes, &AMDSI)?,
        })
    }

    /// The configuration of the prefetch thread's ring: the same as
    /// [`AsyncDataSetIterator::ring_config`](crate::AsyncDataSetIterator::ring_config)
    /// (`prefetch + 3` slots, `min_size = min_ring_bytes`). Fails when `prefetch` is outside
    /// `MIN_PREFETCH..=MAX_PREFETCH`.
    pub fn ring_config(
        prefetch: usize,
        min_ring_bytes: usize,
    ) -> Result<WorkspaceConfig, DataError> {
        ring_config(prefetch, min_ring_bytes, &AMDSI)
    }

    /// Wraps `source` in an `AsyncMultiDataSetIterator` with a queue of `prefetch` batches when
    /// its [`async_supported`](MultiDataSetIterator::async_supported) is true, and returns it
    /// unchanged otherwise: what DL4J's `fit` does (with `prefetch = 2`).
    pub fn wrap_if_supported(
        source: MultiSource<T>,
        prefetch: usize,
    ) -> Result<MultiSource<T>, DataError> {
        if source.async_supported() {
            Ok(Box::new(Self::new(source, prefetch)?))
        } else {
            Ok(source)
        }
    }

    /// The prefetch queue length.
    pub fn prefetch(&self) -> usize {
        self.inner.prefetch()
    }

    /// The id of the ring workspace on the prefetch thread (`"AMDSI_ITER-<n>"`); the batches'
    /// arrays report it as their workspace.
    pub fn workspace_id(&self) -> &str {
        self.inner.workspace_id()
    }

    /// Stops and joins the prefetch thread and gives the source back (where it stopped: call
    /// its `reset()` for a new epoch). Batches still held stay valid. Fails only when the
    /// source was lost (it panicked on the prefetch thread).
    pub fn into_source(mut self) -> Result<MultiSource<T>, DataError> {
        self.inner.stop()
    }
}

impl<T: DataType> MultiDataSetIterator<T> for AsyncMultiDataSetIterator<T> {
    /// The next prefetched batch (blocking until the thread has one), valid at least until the
    /// next call to `next()`: see [the contract](AsyncMultiDataSetIterator#the-contract).
    fn next(&mut self) -> Option<Result<MultiDataSet<T>, DataError>> {
        self.inner.next()
    }

    /// Whether `next()` has another batch (or an error) this epoch. Blocks until the thread has
    /// produced the next batch or ended; the batch is kept for `next()`, never lost or repeated.
    fn has_next(&self) -> bool {
        self.inner.has_next()
    }

    /// Stops and joins the prefetch thread (mid-epoch too), resets the source and starts a new
    /// thread (with a new ring). Batches still held from before stay valid.
    fn reset(&mut self) -> Result<(), DataError> {
        self.inner.reset()
    }

    fn reset_supported(&self) -> bool {
        self.inner.reset_supported()
    }

    /// Always false: this iterator already prefetches.
    fn async_supported(&self) -> bool {
        false
    }

    fn batch(&self) -> usize {
        self.inner.info().batch
    }

    fn total_examples(&self) -> Option<usize> {
        self.inner.info().total_examples
    }
}

impl<T: DataType> Drop for AsyncMultiDataSetIterator<T> {
    /// Stops the prefetch thread and joins it: no thread outlives the iterator.
    fn drop(&mut self) {
        self.inner.shutdown();
    }
}
