//! What the coordinator reads batches from: a data set or multi data set iterator behind one
//! small trait, the end of an epoch (`reset`), and the empty iterator that stands in for the
//! caller's while the prefetch thread owns it.

use dl4rs_array::DataType;
use dl4rs_data::{DataError, DataSet, DataSetIterator, Lazy, MultiDataSet, MultiDataSetIterator};

use crate::batch::Batch;
use crate::error::ParallelError;

/// A source of batches for rounds (data set or multi data set iterator).
pub(crate) trait Rounds<T: DataType> {
    fn has_next(&self) -> bool;
    fn next_batch(&mut self) -> Option<Result<Batch<T>, DataError>>;
}

impl<T: DataType> Rounds<T> for &mut dyn DataSetIterator<T> {
    fn has_next(&self) -> bool {
        DataSetIterator::has_next(&**self)
    }
    fn next_batch(&mut self) -> Option<Result<Batch<T>, DataError>> {
        self.next_lazy().map(|b| {
            b.map(|b| match b {
                Lazy::Ready(d) => Batch::Single(d),
                Lazy::Rows(r) => Batch::Rows(r),
            })
        })
    }
}

impl<T: DataType> Rounds<T> for &mut dyn MultiDataSetIterator<T> {
    fn has_next(&self) -> bool {
        MultiDataSetIterator::has_next(&**self)
    }
    fn next_batch(&mut self) -> Option<Result<Batch<T>, DataError>> {
        self.next_lazy().map(|b| {
            b.map(|b| match b {
                Lazy::Ready(d) => Batch::Multi(d),
                Lazy::Rows(r) => Batch::MultiRows(r),
            })
        })
    }
}

pub(crate) fn finish_epoch<T: DataType>(
    result: Result<(), ParallelError>,
    iterator: &mut dyn DataSetIterator<T>,
) -> Result<(), ParallelError> {
    result?;
    if iterator.reset_supported() {
        iterator.reset()?;
    }
    Ok(())
}

pub(crate) fn finish_multi_epoch<T: DataType>(
    result: Result<(), ParallelError>,
    iterator: &mut dyn MultiDataSetIterator<T>,
) -> Result<(), ParallelError> {
    result?;
    if iterator.reset_supported() {
        iterator.reset()?;
    }
    Ok(())
}

/// What stands in for the caller's iterator while the prefetch thread owns it.
pub(crate) struct Exhausted;

impl<T: DataType> DataSetIterator<T> for Exhausted {
    fn next(&mut self) -> Option<Result<DataSet<T>, DataError>> {
        None
    }
    fn has_next(&self) -> bool {
        false
    }
    fn reset(&mut self) -> Result<(), DataError> {
        Ok(())
    }
    fn reset_supported(&self) -> bool {
        false
    }
    fn async_supported(&self) -> bool {
        false
    }
    fn batch(&self) -> usize {
        0
    }
    fn total_outcomes(&self) -> usize {
        0
    }
    fn input_columns(&self) -> usize {
        0
    }
    fn total_examples(&self) -> Option<usize> {
        None
    }
}

impl<T: DataType> MultiDataSetIterator<T> for Exhausted {
    fn next(&mut self) -> Option<Result<MultiDataSet<T>, DataError>> {
        None
    }
    fn has_next(&self) -> bool {
        false
    }
    fn reset(&mut self) -> Result<(), DataError> {
        Ok(())
    }
    fn reset_supported(&self) -> bool {
        false
    }
    fn async_supported(&self) -> bool {
        false
    }
    fn batch(&self) -> usize {
        0
    }
    fn total_examples(&self) -> Option<usize> {
        None
    }
}
