//! [`RecordReaderDataSetIterator`]: mini-batches of classification or regression examples
//! from the records of a [`CsvRecordReader`].

use dl4rs_array::{DataType, NdArray};

use super::csv::{CsvRecordReader, Records};
use super::{check_class, initialized};
use crate::dataset::{DataSet, shuffle_indices};
use crate::error::{DataError, invalid};
use crate::iterator::DataSetIterator;

/// What the label columns of a record mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSpec {
    /// One column holding an integer class in `0..num_classes`, turned into a one-hot row.
    Classification {
        /// The label column (0-based).
        column: usize,
        /// Number of classes.
        num_classes: usize,
    },
    /// The columns `from..=to` (0-based, inclusive) are the regression targets.
    Regression {
        /// First label column.
        from: usize,
        /// Last label column (inclusive).
        to: usize,
    },
}

impl LabelSpec {
    /// Number of label columns a record is turned into.
    pub fn num_outcomes(&self) -> usize {
        match *self {
            LabelSpec::Classification { num_classes, .. } => num_classes,
            LabelSpec::Regression { from, to } => to - from + 1,
        }
    }

    pub(crate) fn is_label(&self, column: usize) -> bool {
        match *self {
            LabelSpec::Classification { column: c, .. } => column == c,
            LabelSpec::Regression { from, to } => (from..=to).contains(&column),
        }
    }

    /// Checks the spec against a table of `columns` columns (`op` names the caller).
    pub(crate) fn check(&self, op: &'static str, columns: usize) -> Result<(), DataError> {
        match *self {
            LabelSpec::Classification {
                column,
                num_classes,
            } => {
                if num_classes == 0 {
                    return Err(invalid(
                        op,
                        "expected at least 1 class, found num_classes = 0",
                    ));
                }
                if column >= columns {
                    return Err(invalid(
                        op,
                        format!(
                            "expected a label column in 0..{columns} (0-based; the data has \
                             {columns} columns), found {column}"
                        ),
                    ));
                }
            }
            LabelSpec::Regression { from, to } => {
                if from > to || to >= columns {
                    return Err(invalid(
                        op,
                        format!(
                            "expected label columns from..=to with from <= to < {columns} \
                             (0-based; the data has {columns} columns), found {from}..={to}"
                        ),
                    ));
                }
            }
        }
        if (0..columns).all(|c| self.is_label(c)) {
            return Err(invalid(
                op,
                format!(
                    "expected at least one feature column besides the labels, found all \
                     {columns} columns used as labels"
                ),
            ));
        }
        Ok(())
    }

    /// Appends the features of `row` (the non-label columns, in order) to `features` and its
    /// label row to `labels`; `records`/`index` locate the row for error messages.
    pub(crate) fn split_row<T: DataType>(
        &self,
        records: &Records,
        index: usize,
        features: &mut Vec<T>,
        labels: &mut Vec<T>,
    ) -> Result<(), DataError> {
        let Some(row) = records.get(index) else {
            return Err(invalid(
                "LabelSpec::split_row",
                format!(
                    "expected a record index below {}, found {index}",
                    records.len()
                ),
            ));
        };
        for (c, &v) in row.iter().enumerate() {
            if !self.is_label(c) {
                features.push(T::from_f64(v));
            }
        }
        match *self {
            LabelSpec::Classification {
                column,
                num_classes,
            } => {
                let class = check_class(records, index, column, num_classes)?;
                labels.extend((0..num_classes).map(|k| if k == class { T::ONE } else { T::ZERO }));
            }
            LabelSpec::Regression { from, to } => {
                let targets = row.get(from..=to).unwrap_or(&[]);
                labels.extend(targets.iter().map(|&v| T::from_f64(v)));
            }
        }
        Ok(())
    }
}

/// DataVec's `RecordReaderDataSetIterator`: mini-batches of `[batch, features]` /
/// `[batch, outcomes]` from the records of a [`CsvRecordReader`].
///
/// - [`classification`](Self::classification): one column holds an integer class in
///   `0..num_classes`, delivered one-hot; [`regression`](Self::regression): the inclusive
///   column range `label_from..=label_to` holds the targets. The features are the other
///   columns, in file order.
/// - Every record is converted and checked at construction (a bad label is an error naming
///   the file, line, column, value and valid range), into two heap buffers. `next()` then only
///   copies rows into new arrays in the caller's **current workspace**: in a warmed-up
///   workspace it makes no heap allocation.
/// - Each epoch visits every record once, in file order or, with
///   [`with_shuffle`](Self::with_shuffle), in the order `shuffle_indices(0..n, seed + epoch)`.
///   The last batch holds the remaining records.
/// - [`async_supported`](DataSetIterator::async_supported) is **true**: this is the iterator a
///   CSV training run reads from, the natural thing to put behind a prefetcher. The parsed
///   data is in memory (like [`InMemoryDataSetIterator`](crate::InMemoryDataSetIterator), which
///   says false), so prefetching buys only the row copies and costs one more copy into the
///   prefetch ring; it is still safe (batches are fresh arrays, the output does not depend on
///   timing, the iterator is `Send`), and keeping DL4J's answer for record readers means the
///   source stays prefetchable if it later streams from disk.
///
/// ```
/// use dl4rs_data::DataSetIterator;
/// use dl4rs_data::records::{CsvRecordReader, RecordReaderDataSetIterator};
///
/// let mut reader = CsvRecordReader::new(1, ',');
/// reader
///     .initialize_str("iris.csv", "a,b,class\n5.1,3.5,0\n4.9,3.0,2\n6.2,2.9,1\n")
///     .unwrap();
/// let mut it = RecordReaderDataSetIterator::<f32>::classification(reader, 2, 2, 3).unwrap();
/// let batch = it.next().unwrap().unwrap();
/// assert_eq!(batch.features.to_vec().unwrap(), [5.1, 3.5, 4.9, 3.0]);
/// assert_eq!(batch.labels.to_vec().unwrap(), [1., 0., 0., 0., 0., 1.]);
/// assert_eq!(it.next().unwrap().unwrap().num_examples(), 1);
/// assert!(!it.has_next());
/// it.reset().unwrap();
/// assert!(it.has_next());
/// ```
#[derive(Debug)]
pub struct RecordReaderDataSetIterator<T: DataType = f32> {
    name: String,
    spec: LabelSpec,
    features: Vec<T>,
    labels: Vec<T>,
    inputs: usize,
    outcomes: usize,
    batch: usize,
    order: Vec<usize>,
    cursor: usize,
    epoch: u64,
    shuffle_seed: Option<u64>,
}

impl<T: DataType> RecordReaderDataSetIterator<T> {
    /// Classification: column `label_column` (0-based) holds an integer class in
    /// `0..num_classes`; the other columns are the features. `reader` must be initialized.
    pub fn classification(
        reader: CsvRecordReader,
        batch: usize,
        label_column: usize,
        num_classes: usize,
    ) -> Result<Self, DataError> {
        Self::new(
            reader,
            batch,
            LabelSpec::Classification {
                column: label_column,
                num_classes,
            },
        )
    }

    /// Regression: columns `label_from..=label_to` (0-based, inclusive) are the targets; the
    /// other columns are the features. `reader` must be initialized.
    pub fn regression(
        reader: CsvRecordReader,
        batch: usize,
        label_from: usize,
        label_to: usize,
    ) -> Result<Self, DataError> {
        Self::new(
            reader,
            batch,
            LabelSpec::Regression {
                from: label_from,
                to: label_to,
            },
        )
    }

    /// The iterator for any [`LabelSpec`].
    pub fn new(reader: CsvRecordReader, batch: usize, spec: LabelSpec) -> Result<Self, DataError> {
        const OP: &str = "RecordReaderDataSetIterator::new";
        let records = initialized(OP, reader.into_records())?;
        Self::from_records(&records, batch, spec)
    }

    /// The iterator over an already parsed table.
    pub fn from_records(
        records: &Records,
        batch: usize,
        spec: LabelSpec,
    ) -> Result<Self, DataError> {
        const OP: &str = "RecordReaderDataSetIterator::new";
        if batch == 0 {
            return Err(invalid(OP, "expected a batch size of at least 1, found 0"));
        }
        let columns = records.num_columns();
        spec.check(OP, columns)?;
        let outcomes = spec.num_outcomes();
        let inputs = (0..columns).filter(|&c| !spec.is_label(c)).count();
        let n = records.len();
        let mut features = Vec::with_capacity(n * inputs);
        let mut labels = Vec::with_capacity(n * outcomes);
        for i in 0..n {
            spec.split_row(records, i, &mut features, &mut labels)?;
        }
        Ok(RecordReaderDataSetIterator {
            name: records.name().to_owned(),
            spec,
            features,
            labels,
            inputs,
            outcomes,
            batch,
            order: (0..n).collect(),
            cursor: 0,
            epoch: 0,
            shuffle_seed: None,
        })
    }

    /// Shuffles the records every epoch: epoch `e` uses seed `seed + e` (wrapping). Applies
    /// from the current epoch, which restarts from its beginning.
    pub fn with_shuffle(mut self, seed: u64) -> Self {
        self.shuffle_seed = Some(seed);
        self.start_epoch();
        self
    }

    /// The name of the file the records came from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The label columns' meaning.
    pub fn label_spec(&self) -> LabelSpec {
        self.spec
    }

    /// The current epoch: 0 until the first `reset()`, then one more per `reset()`.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// All examples as one heap data set (features `[n, inputs]`, labels `[n, outcomes]`).
    pub fn to_dataset(&self) -> Result<DataSet<T>, DataError> {
        let n = self.order.len();
        DataSet::new(
            NdArray::from_slice_detached(&[n, self.inputs], &self.features)?,
            NdArray::from_slice_detached(&[n, self.outcomes], &self.labels)?,
        )
    }

    fn start_epoch(&mut self) {
        self.cursor = 0;
        for (i, v) in self.order.iter_mut().enumerate() {
            *v = i;
        }
        if let Some(seed) = self.shuffle_seed {
            shuffle_indices(&mut self.order, seed.wrapping_add(self.epoch));
        }
    }

    fn gather(&self, rows: &[usize]) -> Result<DataSet<T>, DataError> {
        let features = gather(&self.features, self.inputs, rows)?;
        let labels = gather(&self.labels, self.outcomes, rows)?;
        Ok(DataSet {
            features,
            labels,
            features_mask: None,
            labels_mask: None,
        })
    }
}

/// Rows `rows` of the row-major `[_, width]` table `data`, in a new array in the current
/// workspace.
fn gather<T: DataType>(data: &[T], width: usize, rows: &[usize]) -> Result<NdArray<T>, DataError> {
    let mut out = NdArray::create_uninitialized(&[rows.len(), width])?;
    {
        let mut w = out.write()?;
        let Some(dst) = w.as_slice_mut() else {
            return Err(invalid(
                "RecordReaderDataSetIterator::next",
                "expected a contiguous new array, found a strided one",
            ));
        };
        for (d, &r) in dst.chunks_exact_mut(width.max(1)).zip(rows) {
            d.copy_from_slice(&data[r * width..(r + 1) * width]);
        }
    }
    Ok(out)
}

impl<T: DataType> DataSetIterator<T> for RecordReaderDataSetIterator<T> {
    fn next(&mut self) -> Option<Result<DataSet<T>, DataError>> {
        if !self.has_next() {
            return None;
        }
        let end = (self.cursor + self.batch).min(self.order.len());
        let batch = self.gather(&self.order[self.cursor..end]);
        self.cursor = end;
        Some(batch)
    }

    fn has_next(&self) -> bool {
        self.cursor < self.order.len()
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
        true
    }

    fn batch(&self) -> usize {
        self.batch
    }

    fn total_outcomes(&self) -> usize {
        self.outcomes
    }

    fn input_columns(&self) -> usize {
        self.inputs
    }

    fn total_examples(&self) -> Option<usize> {
        Some(self.order.len())
    }
}
