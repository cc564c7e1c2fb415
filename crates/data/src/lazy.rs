//! [`Lazy`] batches: a mini-batch that may not be gathered yet, so that the thread which
//! trains on it, not the one which took it from the iterator, pays for the copy.
//!
//! ParallelWrapper's coordinator takes one batch per trainer per round. When every batch is
//! gathered on the coordinator (an [`InMemoryDataSetIterator`](crate::InMemoryDataSetIterator)
//! copies 64 shuffled rows of 784 values in tens of microseconds), the trainers wait for those
//! copies one after the other at the start of every round. With
//! [`DataSetIterator::next_lazy`](crate::DataSetIterator::next_lazy) (and
//! [`MultiDataSetIterator::next_lazy`](crate::MultiDataSetIterator::next_lazy)) the
//! coordinator gets only *which rows* make the batch ([`RowBatch`]: the data set and the
//! epoch's order, shared, and a range of it), and each trainer gathers its own batch, at the
//! same time as the others, into its own workspace.
//!
//! Taking a lazy batch allocates nothing: a [`RowBatch`] holds two reference-counted handles
//! and a range. Gathering it allocates like `next()`: in the current workspace of the thread
//! that calls [`Lazy::gather`], or on the heap when none is open.

use std::ops::Range;
use std::sync::Arc;

use dl4rs_array::ops::gather_rows_into;
use dl4rs_array::{ArrayOps, DataType};

use crate::dataset::DataSet;
use crate::error::{DataError, invalid};
use crate::multi::MultiDataSet;

/// A mini-batch as `next_lazy` returns it: made already, or rows still to gather.
#[allow(clippy::large_enum_variant)] // moved once per batch; boxing would allocate
pub enum Lazy<D> {
    /// A batch `next()` made: its arrays live where that call put them (the caller's current
    /// workspace, the heap, a prefetch ring slot).
    Ready(D),
    /// Rows of a data set held on the heap, not gathered yet.
    Rows(RowBatch<D>),
}

/// A [`DataSetIterator::next_lazy`](crate::DataSetIterator::next_lazy) batch.
pub type LazyDataSet<T = f32> = Lazy<DataSet<T>>;

/// A [`MultiDataSetIterator::next_lazy`](crate::MultiDataSetIterator::next_lazy) batch.
pub type LazyMultiDataSet<T = f32> = Lazy<MultiDataSet<T>>;

/// What a [`RowBatch`] can be cut from: a data set whose examples are rows.
pub trait GatherRows: Sized {
    /// The rows `rows` (indices below the number of examples), in that order, in new arrays
    /// in the current workspace (or on the heap when none is open).
    fn gather_rows(&self, rows: &[usize]) -> Result<Self, DataError>;

    /// The rows `rows` written over `out`, which has the shapes [`GatherRows::gather_rows`]
    /// would give (an earlier gather of as many rows, reused: nothing is allocated). An error
    /// names the first array whose shape differs.
    fn gather_rows_into(&self, rows: &[usize], out: &mut Self) -> Result<(), DataError>;
}

impl<T: DataType> GatherRows for DataSet<T> {
    fn gather_rows(&self, rows: &[usize]) -> Result<Self, DataError> {
        Ok(DataSet {
            features: self.features.gather_rows(rows)?,
            labels: self.labels.gather_rows(rows)?,
            features_mask: self
                .features_mask
                .as_ref()
                .map(|m| m.gather_rows(rows))
                .transpose()?,
            labels_mask: self
                .labels_mask
                .as_ref()
                .map(|m| m.gather_rows(rows))
                .transpose()?,
        })
    }

    fn gather_rows_into(&self, rows: &[usize], out: &mut Self) -> Result<(), DataError> {
        gather_rows_into(&self.features, rows, &mut out.features)?;
        gather_rows_into(&self.labels, rows, &mut out.labels)?;
        for (mask, into) in [
            (&self.features_mask, &mut out.features_mask),
            (&self.labels_mask, &mut out.labels_mask),
        ] {
            match (mask, into) {
                (Some(m), Some(o)) => gather_rows_into(m, rows, o)?,
                (None, None) => {}
                (m, _) => {
                    return Err(invalid(
                        "gather_rows_into",
                        format!(
                            "expected an output with the source's masks, but the source {} \
                             a mask the output {}; gather into an earlier gather of the same \
                             source",
                            if m.is_some() { "has" } else { "lacks" },
                            if m.is_some() { "lacks" } else { "has" },
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl<T: DataType> GatherRows for MultiDataSet<T> {
    fn gather_rows(&self, rows: &[usize]) -> Result<Self, DataError> {
        self.try_map_ref(|a| Ok(a.gather_rows(rows)?))
    }

    fn gather_rows_into(&self, rows: &[usize], out: &mut Self) -> Result<(), DataError> {
        self.try_zip_into(out, |a, o| Ok(gather_rows_into(a, rows, o)?))
    }
}

/// Rows `order[range]` of a data set on the heap: an in-memory iterator's batch before the
/// gather. Valid for as long as it lives, on any thread (the data and the order are shared,
/// read-only; the iterator makes itself a new order if one is still held when it reshuffles).
pub struct RowBatch<D> {
    data: Arc<D>,
    order: Arc<Vec<usize>>,
    range: Range<usize>,
}

impl<D> Clone for RowBatch<D> {
    fn clone(&self) -> Self {
        RowBatch {
            data: Arc::clone(&self.data),
            order: Arc::clone(&self.order),
            range: self.range.clone(),
        }
    }
}

impl<D: GatherRows> RowBatch<D> {
    /// Rows `order[range]` of `data`. `range` must lie within `order`, and every index in it
    /// below the number of examples of `data` (the iterators that make row batches
    /// guarantee both).
    pub(crate) fn new(data: Arc<D>, order: Arc<Vec<usize>>, range: Range<usize>) -> Self {
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
    pub fn gather(&self) -> Result<D, DataError> {
        self.data.gather_rows(self.rows())
    }

    /// Copies the rows over `out`, an earlier gather of as many rows of the same source
    /// (its arrays are reused wherever they live: nothing is allocated).
    pub fn gather_into(&self, out: &mut D) -> Result<(), DataError> {
        self.data.gather_rows_into(self.rows(), out)
    }
}

impl<D: GatherRows> Lazy<D> {
    /// The batch: a ready one as it is, rows gathered into the current workspace (see
    /// [`RowBatch::gather`]).
    pub fn gather(self) -> Result<D, DataError> {
        match self {
            Lazy::Ready(d) => Ok(d),
            Lazy::Rows(r) => r.gather(),
        }
    }
}
