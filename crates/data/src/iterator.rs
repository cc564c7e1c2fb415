//! [`DataSetIterator`], DL4J's mini-batch iterator contract, and [`InMemoryDataSetIterator`],
//! the iterator over a data set held in memory (DL4J's `ListDataSetIterator` /
//! `ExistingDataSetIterator`).
//!
//! ## Where batches live
//! `next()` allocates the batch's arrays in the **current workspace** of the calling thread
//! (or on the heap when none is open). A training loop opens its workspace, calls `next()`,
//! uses the batch and drops it before the cycle ends; in steady state that makes no heap
//! allocation at all. A batch kept past its cycle reads as a workspace error, never as stale
//! data: `detach()` what you keep.

use std::sync::Arc;

use dl4rs_array::DataType;

use crate::dataset::{DataSet, shuffle_indices};
use crate::error::{DataError, invalid};
use crate::lazy::{Lazy, LazyDataSet, RowBatch};

/// A source of mini-batches, DL4J's `DataSetIterator`.
///
/// Object safe: training code takes `&mut dyn DataSetIterator` or
/// `Box<dyn DataSetIterator<f32>>`. Each [`next`](DataSetIterator::next) returns a
/// [`DataSet`] whose arrays are allocated in the caller's current workspace (see
/// [the crate docs](crate#memory)).
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::{DataSet, DataSetIterator, InMemoryDataSetIterator};
/// use dl4rs_memory::{WorkspaceConfig, get_and_activate_workspace};
///
/// let x = NdArray::<f32>::from_slice(&[5, 1], &[0., 1., 2., 3., 4.]).unwrap();
/// let y = NdArray::<f32>::from_slice(&[5, 1], &[0., 1., 0., 1., 0.]).unwrap();
/// let data = DataSet::new(x, y).unwrap();
/// let mut it: Box<dyn DataSetIterator> = Box::new(InMemoryDataSetIterator::new(data, 2).unwrap());
///
/// let cfg = WorkspaceConfig::default();
/// let mut sizes = Vec::new();
/// for _epoch in 0..2 {
///     while it.has_next() {
///         let _cycle = get_and_activate_workspace(&cfg, "FIT").unwrap();
///         let batch = it.next().unwrap().unwrap(); // lives in "FIT"
///         assert!(batch.features.is_attached());
///         sizes.push(batch.num_examples());
///     } // batch dropped, then the cycle ends
///     it.reset().unwrap();
/// }
/// assert_eq!(sizes, [2, 2, 1, 2, 2, 1]);
/// ```
pub trait DataSetIterator<T: DataType = f32> {
    /// The next mini-batch, allocated in the current workspace (or on the heap when none is
    /// open); `None` at the end of the epoch. An `Err` reports a failure to produce this
    /// batch (a read error, workspace misuse); the iterator stays usable and `reset` works.
    fn next(&mut self) -> Option<Result<DataSet<T>, DataError>>;

    /// The next mini-batch, possibly not gathered yet (see [`Lazy`]): for a consumer
    /// that hands batches to other threads, each gathering its own (ParallelWrapper's
    /// trainers). The batch and the epoch's order are the same as `next()`'s. The default is
    /// `next()`, [`Lazy::Ready`]; an iterator over data held in memory returns
    /// [`Lazy::Rows`] without copying anything.
    fn next_lazy(&mut self) -> Option<Result<LazyDataSet<T>, DataError>> {
        self.next().map(|b| b.map(Lazy::Ready))
    }

    /// Whether [`next`](DataSetIterator::next) has another batch this epoch.
    fn has_next(&self) -> bool;

    /// Starts the next epoch from the beginning (also mid-epoch). Fails when
    /// [`reset_supported`](DataSetIterator::reset_supported) is false.
    fn reset(&mut self) -> Result<(), DataError>;

    /// Whether [`reset`](DataSetIterator::reset) works (DL4J `resetSupported()`).
    fn reset_supported(&self) -> bool;

    /// Whether wrapping this iterator in an asynchronous prefetcher (which runs `next()` on
    /// another thread, ahead of time, into a ring workspace) is useful and safe (DL4J
    /// `asyncSupported()`). By DL4J's contract this is **false** for iterators that already
    /// hold all their data in memory (prefetching only adds a copy), that reuse their
    /// feature/label arrays between calls, that already prefetch, or whose output depends on
    /// when `next()` is called. A prefetcher must be `Send`; iterators meant for it should be.
    fn async_supported(&self) -> bool;

    /// The (maximum) number of examples per batch.
    fn batch(&self) -> usize;

    /// Number of label columns (classes) per example.
    fn total_outcomes(&self) -> usize;

    /// Number of feature columns per example.
    fn input_columns(&self) -> usize;

    /// Number of examples per epoch, when known.
    fn total_examples(&self) -> Option<usize>;
}

impl<T: DataType, I: DataSetIterator<T> + ?Sized> DataSetIterator<T> for Box<I> {
    fn next(&mut self) -> Option<Result<DataSet<T>, DataError>> {
        (**self).next()
    }
    fn next_lazy(&mut self) -> Option<Result<LazyDataSet<T>, DataError>> {
        (**self).next_lazy()
    }
    fn has_next(&self) -> bool {
        (**self).has_next()
    }
    fn reset(&mut self) -> Result<(), DataError> {
        (**self).reset()
    }
    fn reset_supported(&self) -> bool {
        (**self).reset_supported()
    }
    fn async_supported(&self) -> bool {
        (**self).async_supported()
    }
    fn batch(&self) -> usize {
        (**self).batch()
    }
    fn total_outcomes(&self) -> usize {
        (**self).total_outcomes()
    }
    fn input_columns(&self) -> usize {
        (**self).input_columns()
    }
    fn total_examples(&self) -> Option<usize> {
        (**self).total_examples()
    }
}

/// Mini-batches over a [`DataSet`] held on the heap, optionally reshuffled every epoch.
///
/// - Epoch `e` (0 for the first; each [`reset`](DataSetIterator::reset) starts the next) visits
///   every example exactly once, in file order, or with [`with_shuffle`](Self::with_shuffle)
///   in the order `shuffle_indices(0..n, seed + e)`: deterministic per seed, different
///   across epochs.
/// - The last batch of an epoch holds the remaining `n % batch` examples, or is skipped with
///   [`drop_last`](Self::drop_last).
/// - `next()` gathers the batch's rows into new arrays in the current workspace; inside a
///   warmed-up workspace it makes no heap allocation.
/// - [`async_supported`](DataSetIterator::async_supported) is false (all data is in memory).
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::{DataSet, DataSetIterator, InMemoryDataSetIterator};
///
/// let x = NdArray::<f32>::from_slice(&[10, 1], &[0., 1., 2., 3., 4., 5., 6., 7., 8., 9.]).unwrap();
/// let y = NdArray::<f32>::zeros(&[10, 1]).unwrap();
/// let mut it = InMemoryDataSetIterator::new(DataSet::new(x, y).unwrap(), 4)
///     .unwrap()
///     .with_shuffle(123)
///     .drop_last(true);
/// let mut seen = Vec::new();
/// while let Some(batch) = it.next() {
///     seen.extend(batch.unwrap().features.to_vec().unwrap()); // heap batches: no workspace open
/// }
/// assert_eq!(seen.len(), 8); // two full batches; the 2 left over are dropped
/// ```
#[derive(Debug)]
pub struct InMemoryDataSetIterator<T: DataType = f32> {
    /// Shared with the [`RowBatch`]es of `next_lazy` (read-only).
    data: Arc<DataSet<T>>,
    batch: usize,
    /// The epoch's order, shared like `data`: a reshuffle writes it in place when no row
    /// batch holds it any more (the steady state: no allocation), else makes a new one.
    order: Arc<Vec<usize>>,
    cursor: usize,
    epoch: u64,
    shuffle_seed: Option<u64>,
    drop_last: bool,
}

impl<T: DataType> InMemoryDataSetIterator<T> {
    /// An iterator over `data` in batches of `batch` examples, in order, keeping the last
    /// partial batch. Arrays of `data` that live in a workspace are detached (copied to the
    /// heap) first, so the iterator outlives every cycle.
    pub fn new(data: DataSet<T>, batch: usize) -> Result<Self, DataError> {
        if batch == 0 {
            return Err(invalid(
                "InMemoryDataSetIterator::new",
                "expected a batch size of at least 1, found 0",
            ));
        }
        data.validate("InMemoryDataSetIterator::new")?;
        let data = Arc::new(data.detach()?);
        let order = Arc::new((0..data.num_examples()).collect());
        Ok(InMemoryDataSetIterator {
            data,
            batch,
            order,
            cursor: 0,
            epoch: 0,
            shuffle_seed: None,
            drop_last: false,
        })
    }

    /// Shuffles the examples every epoch: epoch `e` uses seed `seed + e` (wrapping). Applies
    /// from the current epoch, which restarts from its beginning.
    pub fn with_shuffle(mut self, seed: u64) -> Self {
        self.shuffle_seed = Some(seed);
        self.start_epoch();
        self
    }

    /// Whether to skip the last batch of an epoch when it has fewer than `batch` examples.
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// The current epoch: 0 until the first `reset()`, then one more per `reset()`.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of batches one epoch delivers.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.order.len();
        if self.drop_last {
            n / self.batch
        } else {
            n.div_ceil(self.batch)
        }
    }

    /// The underlying data set (on the heap).
    pub fn data(&self) -> &DataSet<T> {
        &self.data
    }

    /// Gives the data set back (a copy when a [`RowBatch`] of it is still alive).
    pub fn into_data(self) -> Result<DataSet<T>, DataError> {
        Arc::try_unwrap(self.data).or_else(|shared| shared.dup())
    }

    /// The example order of the current epoch (indices into [`data`](Self::data)).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    fn start_epoch(&mut self) {
        self.cursor = 0;
        let order = Arc::make_mut(&mut self.order);
        for (i, v) in order.iter_mut().enumerate() {
            *v = i;
        }
        if let Some(seed) = self.shuffle_seed {
            shuffle_indices(order, seed.wrapping_add(self.epoch));
        }
    }

    /// The next batch's rows (and advances past them); `None` at the end of the epoch.
    fn next_rows(&mut self) -> Option<RowBatch<DataSet<T>>> {
        if !self.has_next() {
            return None;
        }
        let end = (self.cursor + self.batch).min(self.order.len());
        let rows = RowBatch::new(
            Arc::clone(&self.data),
            Arc::clone(&self.order),
            self.cursor..end,
        );
        self.cursor = end;
        Some(rows)
    }
}

impl<T: DataType> DataSetIterator<T> for InMemoryDataSetIterator<T> {
    fn next(&mut self) -> Option<Result<DataSet<T>, DataError>> {
        // The cursor advances even when the gather fails, so a persistent failure can't loop
        // forever on one batch.
        self.next_rows().map(|rows| rows.gather())
    }

    fn next_lazy(&mut self) -> Option<Result<LazyDataSet<T>, DataError>> {
        self.next_rows().map(|rows| Ok(Lazy::Rows(rows)))
    }

    fn has_next(&self) -> bool {
        let left = self.order.len() - self.cursor;
        if self.drop_last {
            left >= self.batch
        } else {
            left > 0
        }
    }

    fn reset(&mut self) -> Result<(), DataError> {
        self.epoch = self.epoch.wrapping_add(1);
        self.start_epoch();
        Ok(())
    }

    fn reset_supported(&self) -> bool {
        true
    }

    fn async_supported(&self) -> bool {
        false
    }

    fn batch(&self) -> usize {
        self.batch
    }

    fn total_outcomes(&self) -> usize {
        self.data.num_outcomes()
    }

    fn input_columns(&self) -> usize {
        self.data.num_inputs()
    }

    fn total_examples(&self) -> Option<usize> {
        Some(self.order.len())
    }
}
