//! A CSV data set iterator that reads and parses its file lazily, one batch per `next()`
//! (DataVec's line record reader feeding a `RecordReaderDataSetIterator`). Parsing is the
//! expensive part of such a pipeline, which is why it is worth prefetching: wrap it in an
//! [`crate::AsyncDataSetIterator`] (or let `MultiLayerNetwork::fit_prefetched` do it) and the
//! parsing of the next batches overlaps training on the current one.
//!
//! Fields are plain numbers separated by the delimiter (no quoting: use
//! [`super::CsvRecordReader`] for quoted files). The line buffer and the parse buffers are
//! reused, so in steady state `next()` allocates nothing on the heap; the batch's arrays go to
//! the thread's current workspace. Sizes that come from the file are bounded: a data line may
//! be at most [`MAX_LINE_BYTES`] long, and the column count only sizes the batch buffers up to
//! a fixed reservation (they grow with the data actually read).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use dl4rs_array::{DataType, NdArray};

use super::LabelSpec;
use crate::dataset::DataSet;
use crate::error::DataError;
use crate::iterator::DataSetIterator;

/// The longest data line accepted (64 MiB): the file decides line lengths, so the line buffer
/// is bounded rather than grown without limit.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Values reserved up front per batch buffer at most; beyond it the buffers grow with the data.
const PREALLOCATE_MAX: usize = 1 << 20;

/// Streams batches from a CSV file.
///
/// ```
/// use dl4rs_data::DataSetIterator;
/// use dl4rs_data::records::{CsvStreamingDataSetIterator, LabelSpec};
///
/// let path = std::env::temp_dir().join("dl4rs-streaming-doc.csv");
/// std::fs::write(&path, "x,y,label\n0.1,0.2,0\n0.3,0.4,1\n0.5,0.6,1\n").unwrap();
/// let spec = LabelSpec::Classification { column: 2, num_classes: 2 };
/// let mut it = CsvStreamingDataSetIterator::<f32>::new(&path, 1, ',', 2, spec).unwrap();
/// let first = it.next().unwrap().unwrap();
/// assert_eq!(first.num_examples(), 2);
/// assert_eq!(it.next().unwrap().unwrap().num_examples(), 1);
/// assert!(it.next().is_none());
/// # std::fs::remove_file(&path).ok();
/// ```
pub struct CsvStreamingDataSetIterator<T: DataType = f32> {
    path: PathBuf,
    name: String,
    reader: BufReader<File>,
    skip_lines: usize,
    delimiter: char,
    batch: usize,
    spec: LabelSpec,
    columns: usize,
    /// The next data line, read ahead (empty at the end of the file).
    line: String,
    line_number: usize,
    features: Vec<T>,
    labels: Vec<T>,
    /// Set when a line failed to parse: the iterator ends until `reset()`.
    failed: bool,
}

impl<T: DataType> CsvStreamingDataSetIterator<T> {
    /// Opens `path`, skips `skip_lines` header lines and learns the column count from the first
    /// data line. Batches have `batch` rows (the last one may be smaller).
    pub fn new(
        path: impl AsRef<Path>,
        skip_lines: usize,
        delimiter: char,
        batch: usize,
        spec: LabelSpec,
    ) -> Result<Self, DataError> {
        let path = path.as_ref().to_path_buf();
        if batch == 0 {
            return Err(crate::error::invalid(
                "CsvStreamingDataSetIterator::new",
                "expected a batch size of at least 1, found 0",
            ));
        }
        let file = File::open(&path).map_err(|source| DataError::Io {
            path: path.clone(),
            source,
        })?;
        let mut it = CsvStreamingDataSetIterator {
            name: path.display().to_string(),
            reader: BufReader::with_capacity(1 << 20, file),
            path,
            skip_lines,
            delimiter,
            batch,
            spec,
            columns: 0,
            line: String::new(),
            line_number: 0,
            features: Vec::new(),
            labels: Vec::new(),
            failed: false,
        };
        it.rewind()?;
        if it.line.is_empty() {
            return Err(DataError::Parse {
                name: it.name.clone(),
                line: it.line_number.max(1),
                column: 1,
                message: "expected at least one data line, found none".into(),
            });
        }
        it.columns = it.line.trim_end().split(it.delimiter).count();
        let label_columns = match spec {
            LabelSpec::Classification {
                column,
                num_classes,
            } => {
                if num_classes == 0 {
                    return Err(crate::error::invalid(
                        "CsvStreamingDataSetIterator::new",
                        "expected at least one class, found 0",
                    ));
                }
                column..column + 1
            }
            LabelSpec::Regression { from, to } => from..to + 1,
        };
        if label_columns.is_empty()
            || label_columns.end > it.columns
            || label_columns.len() >= it.columns
        {
            return Err(DataError::Parse {
                name: it.name.clone(),
                line: it.line_number,
                column: it.columns,
                message: format!(
                    "expected label columns {}..={} (0-based) and at least one feature column, \
                     found {} columns",
                    label_columns.start,
                    label_columns.end.saturating_sub(1),
                    it.columns
                ),
            });
        }
        let n_out = spec.num_outcomes();
        // The column count comes from the file: reserve what a batch needs only up to a bound
        // (the buffers grow with the data actually read, and keep their capacity afterwards).
        let width = it.columns - label_columns.len();
        let too_big = |what: &str| {
            crate::error::invalid(
                "CsvStreamingDataSetIterator::new",
                format!("a batch of {batch} rows x {what} values overflows the address space"),
            )
        };
        let features = batch
            .checked_mul(width)
            .ok_or_else(|| too_big(&format!("{width} feature")))?;
        let labels = batch
            .checked_mul(n_out)
            .ok_or_else(|| too_big(&format!("{n_out} label")))?;
        it.features = Vec::with_capacity(features.min(PREALLOCATE_MAX));
        it.labels = Vec::with_capacity(labels.min(PREALLOCATE_MAX));
        Ok(it)
    }

    /// Seeks to the start, skips the header lines and reads the first data line ahead.
    fn rewind(&mut self) -> Result<(), DataError> {
        let io = |source| DataError::Io {
            path: self.path.clone(),
            source,
        };
        self.reader.seek(SeekFrom::Start(0)).map_err(io)?;
        self.line_number = 0;
        self.failed = false;
        for _ in 0..self.skip_lines {
            // Header lines are skipped without being kept, whatever their length.
            let n = self
                .reader
                .skip_until(b'\n')
                .map_err(|source| DataError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            self.line_number += 1;
        }
        self.read_ahead()
    }

    /// Reads the next non-blank line into `self.line` (empty at the end of the file). A line
    /// longer than [`MAX_LINE_BYTES`] is an error, not an ever-growing buffer.
    fn read_ahead(&mut self) -> Result<(), DataError> {
        loop {
            self.line.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_line(&mut self.line)
                .map_err(|source| DataError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(());
            }
            self.line_number += 1;
            if n > MAX_LINE_BYTES {
                self.line.clear();
                return Err(DataError::Parse {
                    name: self.name.clone(),
                    line: self.line_number,
                    column: 1,
                    message: format!(
                        "expected a line of at most {MAX_LINE_BYTES} bytes, found a longer one"
                    ),
                });
            }
            if !self.line.trim().is_empty() {
                return Ok(());
            }
        }
    }

    /// Parses `self.line` into the batch buffers.
    fn parse_line(&mut self) -> Result<(), DataError> {
        let n_out = self.spec.num_outcomes();
        let label_start = self.labels.len();
        self.labels.resize(label_start + n_out, T::ZERO);
        let mut count = 0;
        for (c, field) in self.line.trim_end().split(self.delimiter).enumerate() {
            count += 1;
            let error = |message: String| DataError::Parse {
                name: self.name.clone(),
                line: self.line_number,
                column: c + 1,
                message,
            };
            if c >= self.columns {
                continue;
            }
            let value: f64 = field
                .trim()
                .parse()
                .map_err(|_| error(format!("expected a number, found {:?}", field.trim())))?;
            match self.spec {
                LabelSpec::Classification {
                    column,
                    num_classes,
                } if c == column => {
                    if value.fract() != 0.0 || value < 0.0 || value >= num_classes as f64 {
                        return Err(error(format!(
                            "class label {value} is out of range: expected an integer in \
                             0..{num_classes} (label column {column}, 0-based)"
                        )));
                    }
                    self.labels[label_start + value as usize] = T::ONE;
                }
                LabelSpec::Regression { from, to } if (from..=to).contains(&c) => {
                    self.labels[label_start + c - from] = T::from_f64(value);
                }
                _ => self.features.push(T::from_f64(value)),
            }
        }
        if count != self.columns {
            return Err(DataError::Parse {
                name: self.name.clone(),
                line: self.line_number,
                column: count.min(self.columns) + 1,
                message: format!("expected {} columns, found {count}", self.columns),
            });
        }
        Ok(())
    }

    fn next_batch(&mut self) -> Result<DataSet<T>, DataError> {
        self.features.clear();
        self.labels.clear();
        let mut rows = 0;
        while rows < self.batch && !self.line.is_empty() {
            self.parse_line()?;
            rows += 1;
            self.read_ahead()?;
        }
        let n_out = self.spec.num_outcomes();
        let n_in = self.features.len() / rows.max(1);
        let features = NdArray::from_slice(&[rows, n_in], &self.features)?;
        let labels = NdArray::from_slice(&[rows, n_out], &self.labels)?;
        DataSet::new(features, labels)
    }
}

impl<T: DataType> DataSetIterator<T> for CsvStreamingDataSetIterator<T> {
    fn next(&mut self) -> Option<Result<DataSet<T>, DataError>> {
        if self.failed || self.line.is_empty() {
            return None;
        }
        let result = self.next_batch();
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }

    fn has_next(&self) -> bool {
        !self.failed && !self.line.is_empty()
    }

    fn reset(&mut self) -> Result<(), DataError> {
        self.rewind()
    }

    fn reset_supported(&self) -> bool {
        true
    }

    /// True: parsing is the costly part of this iterator, so prefetching it pays.
    fn async_supported(&self) -> bool {
        true
    }

    fn batch(&self) -> usize {
        self.batch
    }

    fn total_outcomes(&self) -> usize {
        self.spec.num_outcomes()
    }

    fn input_columns(&self) -> usize {
        self.columns
            - match self.spec {
                LabelSpec::Classification { .. } => 1,
                LabelSpec::Regression { from, to } => to + 1 - from,
            }
    }

    fn total_examples(&self) -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("dl4rs-stream-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn batches_values_and_reset() {
        let path = write("ok.csv", "1,2,0\n3,4,1\n\n5,6,2\n");
        let spec = LabelSpec::Classification {
            column: 2,
            num_classes: 3,
        };
        let mut it = CsvStreamingDataSetIterator::<f64>::new(&path, 0, ',', 2, spec).unwrap();
        for _ in 0..2 {
            let a = it.next().unwrap().unwrap();
            assert_eq!(a.features.to_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
            assert_eq!(
                a.labels.to_vec().unwrap(),
                vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            );
            let b = it.next().unwrap().unwrap();
            assert_eq!(b.features.to_vec().unwrap(), vec![5.0, 6.0]);
            assert!(!it.has_next() && it.next().is_none());
            it.reset().unwrap();
        }
        let reg = LabelSpec::Regression { from: 0, to: 1 };
        let mut r = CsvStreamingDataSetIterator::<f32>::new(&path, 0, ',', 8, reg).unwrap();
        let all = r.next().unwrap().unwrap();
        assert_eq!(all.labels.shape(), &[3, 2]);
        assert_eq!(all.features.to_vec().unwrap(), vec![0.0, 1.0, 2.0]);
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn bad_lines_name_file_line_and_column() {
        let path = write("bad.csv", "h1,h2,h3\n1,2,0\n3,x,1\n");
        let spec = LabelSpec::Classification {
            column: 2,
            num_classes: 2,
        };
        let mut it = CsvStreamingDataSetIterator::<f32>::new(&path, 1, ',', 8, spec).unwrap();
        let err = it.next().unwrap().unwrap_err().to_string();
        assert!(
            err.contains("bad.csv: line 3, column 2: expected a number, found \"x\""),
            "{err}"
        );
        assert!(it.next().is_none(), "the iterator ends after an error");
        let short = write("short.csv", "1,2,0\n3,1\n");
        let mut it = CsvStreamingDataSetIterator::<f32>::new(&short, 0, ',', 8, spec).unwrap();
        let err = it.next().unwrap().unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("expected 3 columns, found 2"),
            "{err}"
        );
        let label = write("label.csv", "1,2,5\n");
        let mut it = CsvStreamingDataSetIterator::<f32>::new(&label, 0, ',', 8, spec).unwrap();
        let err = it.next().unwrap().unwrap_err().to_string();
        assert!(
            err.contains("line 1, column 3: class label 5 is out of range"),
            "{err}"
        );
        let err = CsvStreamingDataSetIterator::<f32>::new(
            std::env::temp_dir().join("nope.csv"),
            0,
            ',',
            8,
            spec,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("nope.csv"), "{err}");
        for p in [path, short, label] {
            std::fs::remove_file(p).ok();
        }
    }
}
