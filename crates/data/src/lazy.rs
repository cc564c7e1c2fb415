//! [`LazyDataSet`]: a mini-batch that may not be gathered yet, so that the thread which
//! trains on it, not the one which took it from the iterator, pays for the copy.
//!
//! ParallelWrapper's coordinator takes one batch per trainer per round. When every batch is
//! gathered on the coordinator (an [`InMemoryDataSetIterator`](crate::InMemoryDataSetIterator)
//! copies 64 shuffled rows of 784 values in tens of microseconds), the trainers wait for those
//! copies one after the other at the start of every round. With
//! [`DataSetIterator::next_lazy`](crate::DataSetIterator::next_lazy) the coordinator gets
//! only *which rows* make the batch ([`RowBatch`]: the data set and the epoch's order, shared,
//! and a range of it), and each trainer gathers its own batch, at the same time as the others,
//! into its own workspace.
//!
//! Taking a lazy batch allocates nothing: a [`RowBatch`] holds two reference-counted handles
//! and a range. Gathering it allocates like `next()`: in the current workspace of the thread
//! that calls [`LazyDataSet::gather`], or on the heap when none is open.

use std::ops::Range;
use std::sync::Arc;

use dl4rs_array::{ArrayOps, DataType};

use crate::dataset::DataSet;
use crate::error::DataError;

/// A mini-batch as [`DataSetIterator::next_lazy`](crate::DataSetIterator::next_lazy) returns
/// it: made already, or rows still to gather.
#[allow(clippy::large_enum_variant)] // moved once per batch; boxing would allocate
pub enum LazyDataSet<T: DataType = f32> {
    /// A batch `next()` made: its arrays live where that call put them (the caller's current
    /// workspace, the heap, a prefetch ring slot).
    Ready(DataSet<T>),
    /// Rows of a data set held on the heap, not gathered yet.
    Rows(RowBatch<T>),
}

/// Rows `order[range]` of a data set on the heap: an in-memory iterator's batch before the
/// gather. Valid for as long as it lives, on any thread (the data and the order are shared,
/// read-only; the iterator makes itself a new order if one is still held when it reshuffles).
#[derive(Clone)]
pub struct RowBatch<T: DataType = f32> {
    data: Arc<DataSet<T>>,
    order: Arc<Vec<usize>>,
    range: Range<usize>,
}

impl<T: DataType> RowBatch<T> {
    /// Rows `order[range]` of `data`. `range` must lie within `order`, and every index in it
    /// below `data.num_examples()` (the iterator that makes row batches guarantees both).
    pub(crate) fn new(data: Arc<DataSet<T>>, order: Arc<Vec<usize>>, range: Range<usize>) -> Self {
        RowBatch { data, order, range }
    }

    /// The number of examples (rows) in the batch.
    pub fn num_examples(&self) -> usize {
        self.range.len()
    }

    /// The indices of the batch's rows in the data set, in batch order.
    pub fn rows(&self) -> &[usize] {
        &self.order[self.range.clone()]
    }

    /// Copies the rows into new arrays in the current workspace (or on the heap when none is
    /// open): the batch `next()` would have returned.
    pub fn gather(&self) -> Result<DataSet<T>, DataError> {
        let rows = self.rows();
        let d = &*self.data;
        Ok(DataSet {
            features: d.features.gather_rows(rows)?,
            labels: d.labels.gather_rows(rows)?,
            features_mask: d
                .features_mask
                .as_ref()
                .map(|m| m.gather_rows(rows))
                .transpose()?,
            labels_mask: d
                .labels_mask
                .as_ref()
                .map(|m| m.gather_rows(rows))
                .transpose()?,
        })
    }
}

impl<T: DataType> LazyDataSet<T> {
    /// The number of examples in the batch.
    pub fn num_examples(&self) -> usize {
        match self {
            LazyDataSet::Ready(d) => d.num_examples(),
            LazyDataSet::Rows(r) => r.num_examples(),
        }
    }

    /// The batch as a [`DataSet`]: a ready one as it is, rows gathered into the current
    /// workspace (see [`RowBatch::gather`]).
    pub fn gather(self) -> Result<DataSet<T>, DataError> {
        match self {
            LazyDataSet::Ready(d) => Ok(d),
            LazyDataSet::Rows(r) => r.gather(),
        }
    }
}
