//! DataVec-style record readers: numeric CSV files turned into training batches.
//!
//! - [`CsvRecordReader`] parses one CSV file (RFC 4180 quoting, header lines skipped, any
//!   delimiter) into a [`Records`] table of `f64` rows, checking every field.
//! - [`RecordReaderDataSetIterator`] makes classification (one label column holding a class
//!   index, delivered one-hot) or regression (a range of label columns) mini-batches from it.
//! - [`CsvSequenceRecordReader`] reads one sequence per file (one line per time step), and
//!   [`SequenceRecordReaderDataSetIterator`] makes `[batch, features, time]` batches (DL4J's
//!   NCW layout) from a features reader plus a labels reader, or from one reader with label
//!   columns, padding unequal lengths according to an [`AlignmentMode`] with
//!   `[batch, time]` masks.
//! - [`SequenceSplit`] reads DL4J's on-disk sequence layout, `SPLIT/features/0.csv, …` with
//!   `SPLIT/labels/0.csv, …` ([`numbered_files`], numeric order, gaps are errors), and sizes a
//!   classification iterator from it (channels and classes read from the files).
//!
//! Files are read and checked **once**, when the reader is initialized and the iterator is
//! built; the iterators keep the converted values in heap buffers and `next()` only copies
//! rows into new arrays in the caller's current workspace (no heap allocation in a warmed-up
//! workspace). Nothing here panics on bad input: every problem is a [`DataError`] naming the
//! file, the 1-based line and column, what was expected and what was found.
//!
//! ```
//! use dl4rs_data::DataSetIterator;
//! use dl4rs_data::records::{CsvRecordReader, RecordReaderDataSetIterator};
//!
//! let mut reader = CsvRecordReader::new(0, ',');
//! reader.initialize_str("houses.csv", "120,3,250000\n80,2,\"180000\"\n").unwrap();
//! // Regression on the last column (columns 2..=2).
//! let mut it = RecordReaderDataSetIterator::<f64>::regression(reader, 10, 2, 2).unwrap();
//! let batch = it.next().unwrap().unwrap();
//! assert_eq!(batch.features.shape(), [2, 2]);
//! assert_eq!(batch.labels.to_vec().unwrap(), [250000.0, 180000.0]);
//! ```

mod csv;
mod iterator;
mod sequence;
mod sequence_dir;
mod streaming;

pub use csv::{CsvRecordReader, Records};
pub use iterator::{LabelSpec, RecordReaderDataSetIterator};
pub use sequence::{AlignmentMode, CsvSequenceRecordReader, SequenceRecordReaderDataSetIterator};
pub use sequence_dir::{MAX_CLASSES, SequenceSplit, numbered_files};
pub use streaming::{CsvStreamingDataSetIterator, MAX_LINE_BYTES};

use crate::error::{DataError, invalid};

/// The parsed table of a reader, or an error saying it was never initialized.
fn initialized<R>(op: &'static str, records: Option<R>) -> Result<R, DataError> {
    records.ok_or_else(|| {
        invalid(
            op,
            "expected an initialized reader (call initialize first), found one with no data",
        )
    })
}

/// The class index in record `index`, column `column` (0-based) of `records`: an integer in
/// `0..num_classes`, else an error naming the file, line, column, value and range.
fn check_class(
    records: &Records,
    index: usize,
    column: usize,
    num_classes: usize,
) -> Result<usize, DataError> {
    let value = records
        .get(index)
        .and_then(|r| r.get(column))
        .copied()
        .unwrap_or(f64::NAN);
    let error = |message: String| DataError::Parse {
        name: records.name().to_owned(),
        line: records.line(index).unwrap_or(0),
        column: column + 1,
        message,
    };
    if value.fract() != 0.0 || value.is_nan() {
        return Err(error(format!(
            "expected an integer class label in 0..{num_classes} (label column {column}, \
             0-based), found {value}"
        )));
    }
    if value < 0.0 || value >= num_classes as f64 {
        return Err(error(format!(
            "class label {value} is out of range: expected an integer in 0..{num_classes} \
             (label column {column}, 0-based)"
        )));
    }
    Ok(value as usize)
}
