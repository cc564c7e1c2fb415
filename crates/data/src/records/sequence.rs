//! [`CsvSequenceRecordReader`] (one sequence per file) and
//! [`SequenceRecordReaderDataSetIterator`] (`[batch, features, time]` batches with alignment
//! and masks), DataVec's `CSVSequenceRecordReader` and DL4J's
//! `SequenceRecordReaderDataSetIterator`.

use std::path::{Path, PathBuf};

use dl4rs_array::{DataType, NdArray};

use super::csv::{CsvRecordReader, Records};
use super::iterator::LabelSpec;
use super::{check_class, initialized};
use crate::dataset::DataSet;
use crate::error::{DataError, invalid};
use crate::iterator::DataSetIterator;

/// Reads sequences from CSV files, one sequence per file and one time step per line (every
/// line of every file with the same number of columns), with the same parsing rules and
/// errors as [`CsvRecordReader`].
///
/// ```
/// use dl4rs_data::records::CsvSequenceRecordReader;
///
/// let mut reader = CsvSequenceRecordReader::new(0, ',');
/// reader.initialize_strs(&[("s0.csv", "1,2\n3,4\n5,6\n"), ("s1.csv", "7,8\n")]).unwrap();
/// let lengths: Vec<usize> = reader.sequences().iter().map(|s| s.len()).collect();
/// assert_eq!(lengths, [3, 1]);
/// ```
#[derive(Debug, Clone)]
pub struct CsvSequenceRecordReader {
    csv: CsvRecordReader,
    sequences: Vec<Records>,
}

impl CsvSequenceRecordReader {
    /// A reader that skips the first `skip_lines` lines of every file and splits fields on
    /// `delimiter`.
    pub fn new(skip_lines: usize, delimiter: char) -> Self {
        CsvSequenceRecordReader {
            csv: CsvRecordReader::new(skip_lines, delimiter),
            sequences: Vec::new(),
        }
    }

    /// Reads the files `paths`, one sequence each, in the order given.
    pub fn initialize_paths<P: AsRef<Path>>(&mut self, paths: &[P]) -> Result<(), DataError> {
        let sequences = paths
            .iter()
            .map(|p| self.csv.parse_file(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        self.set(sequences)
    }

    /// Reads every regular file in `dir`, sorted by file name (byte order, so `10.csv` comes
    /// before `2.csv`: zero-pad numbered names).
    pub fn initialize_dir(&mut self, dir: impl AsRef<Path>) -> Result<(), DataError> {
        let dir = dir.as_ref();
        let io = |source| DataError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_file() {
                paths.push(path);
            }
        }
        paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        if paths.is_empty() {
            return Err(crate::error::format_error(
                &dir.display().to_string(),
                "expected a directory with at least one sequence file, found none",
            ));
        }
        self.initialize_paths(&paths)
    }

    /// Parses in-memory files given as `(name, text)` pairs, one sequence each.
    pub fn initialize_strs(&mut self, files: &[(&str, &str)]) -> Result<(), DataError> {
        let sequences = files
            .iter()
            .map(|(name, text)| self.csv.parse_str(name, text))
            .collect::<Result<Vec<_>, _>>()?;
        self.set(sequences)
    }

    fn set(&mut self, sequences: Vec<Records>) -> Result<(), DataError> {
        let Some(first) = sequences.first() else {
            return Err(invalid(
                "CsvSequenceRecordReader::initialize",
                "expected at least one sequence file, found none",
            ));
        };
        let columns = first.num_columns();
        for s in &sequences[1..] {
            if s.num_columns() != columns {
                return Err(DataError::Parse {
                    name: s.name().to_owned(),
                    line: s.line(0).unwrap_or(1),
                    column: columns.min(s.num_columns()) + 1,
                    message: format!(
                        "expected {columns} columns like the first sequence file {}, found {}",
                        first.name(),
                        s.num_columns()
                    ),
                });
            }
        }
        self.sequences = sequences;
        Ok(())
    }

    /// The sequences read, one table per file (each record a time step).
    pub fn sequences(&self) -> &[Records] {
        &self.sequences
    }

    /// Gives the sequences back.
    pub fn into_sequences(self) -> Vec<Records> {
        self.sequences
    }
}

/// How sequences of different lengths are put into one `[batch, _, time]` batch (DL4J's
/// `SequenceRecordReaderDataSetIterator.AlignmentMode`). The batch's time axis is the longest
/// sequence (features or labels) of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlignmentMode {
    /// Every sequence (features and labels, every example) must have the same length;
    /// checked at construction. Batches carry no masks.
    #[default]
    EqualLength,
    /// Sequences start at time step 0 and are padded with zeros at the end. Batches always
    /// carry features and labels masks `[batch, time]`: 1 where real data is, 0 on padding.
    AlignStart,
    /// Sequences end at the last time step and are padded with zeros at the start (e.g. one
    /// label at the end of a long input: many-to-one). Masks as for `AlignStart`.
    AlignEnd,
}

/// DL4J's `SequenceRecordReaderDataSetIterator`: batches of sequences, features
/// `[batch, inputs, time]` and labels `[batch, outcomes, time]` (NCW), from
///
/// - a features reader and a labels reader with the same number of files, example `i` being
///   file `i` of each: [`classification`](Self::classification) (labels files hold one column,
///   an integer class per time step, delivered one-hot) or [`regression`](Self::regression)
///   (every labels column is a target); or
/// - one reader whose files hold label columns too: [`single`](Self::single) with a
///   [`LabelSpec`].
///
/// Unequal lengths are handled by the [`AlignmentMode`]; errors name the files. All files are
/// converted and checked at construction into heap buffers (stored feature-major, so `next()`
/// copies whole time rows); `next()` allocates the batch in the caller's current workspace.
/// [`async_supported`](DataSetIterator::async_supported) is true, as for
/// [`RecordReaderDataSetIterator`](super::RecordReaderDataSetIterator).
///
/// ```
/// use dl4rs_data::DataSetIterator;
/// use dl4rs_data::records::{AlignmentMode, CsvSequenceRecordReader, SequenceRecordReaderDataSetIterator};
///
/// let mut features = CsvSequenceRecordReader::new(0, ',');
/// features.initialize_strs(&[("f0.csv", "1\n2\n3\n"), ("f1.csv", "4\n")]).unwrap();
/// let mut labels = CsvSequenceRecordReader::new(0, ',');
/// labels.initialize_strs(&[("l0.csv", "1\n"), ("l1.csv", "0\n")]).unwrap();
/// let mut it = SequenceRecordReaderDataSetIterator::<f32>::classification(
///     features, labels, 2, 2, AlignmentMode::AlignEnd,
/// )
/// .unwrap();
/// let batch = it.next().unwrap().unwrap();
/// assert_eq!(batch.features.shape(), [2, 1, 3]);
/// assert_eq!(batch.features.to_vec().unwrap(), [1., 2., 3., 0., 0., 4.]);
/// // One label per sequence, at its last step.
/// assert_eq!(batch.labels_mask.unwrap().to_vec().unwrap(), [0., 0., 1., 0., 0., 1.]);
/// assert_eq!(batch.features_mask.unwrap().to_vec().unwrap(), [1., 1., 1., 0., 0., 1.]);
/// ```
#[derive(Debug)]
pub struct SequenceRecordReaderDataSetIterator<T: DataType = f32> {
    features: Series<T>,
    labels: Series<T>,
    alignment: AlignmentMode,
    batch: usize,
    cursor: usize,
    /// Example order of the current epoch (file order unless shuffled).
    order: Vec<usize>,
    shuffle_seed: Option<u64>,
    epoch: u64,
    /// Labels `[batch, outcomes]` from each sequence's last labels step (many-to-one).
    labels_per_sequence: bool,
}

/// Sequences stored one after another, each feature-major (`[width, len]`).
#[derive(Debug, Default)]
struct Series<T> {
    width: usize,
    data: Vec<T>,
    offsets: Vec<usize>,
    lengths: Vec<usize>,
    names: Vec<String>,
}

impl<T: DataType> Series<T> {
    fn new(width: usize) -> Self {
        Series {
            width,
            data: Vec::new(),
            offsets: Vec::new(),
            lengths: Vec::new(),
            names: Vec::new(),
        }
    }

    /// Appends one sequence given time-major (`[len, width]`).
    fn push(&mut self, name: &str, time_major: &[T]) {
        let len = time_major.len() / self.width.max(1);
        self.offsets.push(self.data.len());
        self.lengths.push(len);
        self.names.push(name.to_owned());
        for f in 0..self.width {
            self.data
                .extend((0..len).map(|t| time_major[t * self.width + f]));
        }
    }

    /// Copies the last time step of sequence `i` into row `row` of the `[_, width]` slice
    /// `dst`.
    fn copy_last_into(&self, i: usize, dst: &mut [T], row: usize) {
        let (off, len) = (self.offsets[i], self.lengths[i]);
        for f in 0..self.width {
            dst[row * self.width + f] = self.data[off + f * len + len - 1];
        }
    }

    /// Copies sequence `i` into example `row` of the `[_, width, time]` slice `dst`, starting
    /// at time step `start`.
    fn copy_into(&self, i: usize, dst: &mut [T], row: usize, time: usize, start: usize) {
        let (off, len) = (self.offsets[i], self.lengths[i]);
        for f in 0..self.width {
            let d = (row * self.width + f) * time + start;
            dst[d..d + len].copy_from_slice(&self.data[off + f * len..off + (f + 1) * len]);
        }
    }
}

fn time_major<T: DataType>(
    records: &Records,
    spec: &LabelSpec,
    features: &mut Vec<T>,
    labels: &mut Vec<T>,
) -> Result<(), DataError> {
    features.clear();
    labels.clear();
    for t in 0..records.len() {
        spec.split_row(records, t, features, labels)?;
    }
    Ok(())
}

impl<T: DataType> SequenceRecordReaderDataSetIterator<T> {
    /// Features from `features` (every column), class labels from `labels` (one column, an
    /// integer in `0..num_classes` per time step, delivered one-hot).
    pub fn classification(
        features: CsvSequenceRecordReader,
        labels: CsvSequenceRecordReader,
        batch: usize,
        num_classes: usize,
        alignment: AlignmentMode,
    ) -> Result<Self, DataError> {
        Self::two_readers(features, labels, batch, Some(num_classes), alignment)
    }

    /// Features from `features` (every column), regression targets from `labels` (every
    /// column).
    pub fn regression(
        features: CsvSequenceRecordReader,
        labels: CsvSequenceRecordReader,
        batch: usize,
        alignment: AlignmentMode,
    ) -> Result<Self, DataError> {
        Self::two_readers(features, labels, batch, None, alignment)
    }

    /// Features and labels from the same files: `spec` picks the label columns, the other
    /// columns are the features. Features and labels of an example have the same length, so
    /// the alignment only matters between examples.
    pub fn single(
        reader: CsvSequenceRecordReader,
        batch: usize,
        spec: LabelSpec,
        alignment: AlignmentMode,
    ) -> Result<Self, DataError> {
        const OP: &str = "SequenceRecordReaderDataSetIterator::single";
        let sequences = nonempty(OP, reader.into_sequences())?;
        let columns = sequences[0].num_columns();
        spec.check(OP, columns)?;
        let inputs = columns - (0..columns).filter(|&c| spec.is_label(c)).count();
        let mut features = Series::new(inputs);
        let mut labels = Series::new(spec.num_outcomes());
        let (mut f, mut l) = (Vec::new(), Vec::new());
        for s in &sequences {
            time_major(s, &spec, &mut f, &mut l)?;
            features.push(s.name(), &f);
            labels.push(s.name(), &l);
        }
        Self::build(features, labels, batch, alignment)
    }

    fn two_readers(
        features: CsvSequenceRecordReader,
        labels: CsvSequenceRecordReader,
        batch: usize,
        num_classes: Option<usize>,
        alignment: AlignmentMode,
    ) -> Result<Self, DataError> {
        const OP: &str = "SequenceRecordReaderDataSetIterator::new";
        let fseq = nonempty(OP, features.into_sequences())?;
        let lseq = nonempty(OP, labels.into_sequences())?;
        if fseq.len() != lseq.len() {
            return Err(DataError::Mismatch {
                what: OP.into(),
                message: format!(
                    "expected as many labels files as features files ({}), found {}",
                    fseq.len(),
                    lseq.len()
                ),
            });
        }
        let label_columns = lseq[0].num_columns();
        let lspec = match num_classes {
            Some(num_classes) => {
                if num_classes == 0 {
                    return Err(invalid(
                        OP,
                        "expected at least 1 class, found num_classes = 0",
                    ));
                }
                if label_columns != 1 {
                    return Err(DataError::Parse {
                        name: lseq[0].name().to_owned(),
                        line: lseq[0].line(0).unwrap_or(1),
                        column: 2,
                        message: format!(
                            "expected 1 column (the class index) in a classification labels \
                             file, found {label_columns}"
                        ),
                    });
                }
                LabelSpec::Classification {
                    column: 0,
                    num_classes,
                }
            }
            None => LabelSpec::Regression {
                from: 0,
                to: label_columns - 1,
            },
        };
        let mut features = Series::new(fseq[0].num_columns());
        let mut labels = Series::new(lspec.num_outcomes());
        let mut buf = Vec::new();
        for (fs, ls) in fseq.iter().zip(&lseq) {
            buf.clear();
            buf.extend(fs.values().iter().map(|&v| T::from_f64(v)));
            features.push(fs.name(), &buf);
            buf.clear();
            for t in 0..ls.len() {
                match lspec {
                    LabelSpec::Classification { num_classes, .. } => {
                        let class = check_class(ls, t, 0, num_classes)?;
                        buf.extend(
                            (0..num_classes).map(|k| if k == class { T::ONE } else { T::ZERO }),
                        );
                    }
                    LabelSpec::Regression { .. } => {
                        let row = ls.get(t).unwrap_or(&[]);
                        buf.extend(row.iter().map(|&v| T::from_f64(v)));
                    }
                }
            }
            labels.push(ls.name(), &buf);
        }
        Self::build(features, labels, batch, alignment)
    }

    fn build(
        features: Series<T>,
        labels: Series<T>,
        batch: usize,
        alignment: AlignmentMode,
    ) -> Result<Self, DataError> {
        const OP: &str = "SequenceRecordReaderDataSetIterator::new";
        if batch == 0 {
            return Err(invalid(OP, "expected a batch size of at least 1, found 0"));
        }
        if alignment == AlignmentMode::EqualLength {
            let what = || "SequenceRecordReaderDataSetIterator (AlignmentMode::EqualLength)".into();
            for i in 0..features.lengths.len() {
                let (fl, ll) = (features.lengths[i], labels.lengths[i]);
                if fl != ll {
                    return Err(DataError::Mismatch {
                        what: what(),
                        message: format!(
                            "features file {} has {fl} time steps but labels file {} has {ll}: \
                             expected equal lengths (use AlignStart or AlignEnd to pad)",
                            features.names[i], labels.names[i]
                        ),
                    });
                }
                if fl != features.lengths[0] {
                    return Err(DataError::Mismatch {
                        what: what(),
                        message: format!(
                            "sequence file {} has {fl} time steps but {} has {}: expected every \
                             sequence to have the same length (use AlignStart or AlignEnd to pad)",
                            features.names[i], features.names[0], features.lengths[0]
                        ),
                    });
                }
            }
        }
        for series in [&features, &labels] {
            if let Some(i) = series.lengths.iter().position(|&len| len == 0) {
                return Err(crate::error::format_error(
                    &series.names[i],
                    "expected a sequence of at least one time step (one line), found an empty \
                     file",
                ));
            }
        }
        let order = (0..features.lengths.len()).collect();
        Ok(SequenceRecordReaderDataSetIterator {
            features,
            labels,
            alignment,
            batch,
            cursor: 0,
            order,
            shuffle_seed: None,
            epoch: 0,
            labels_per_sequence: false,
        })
    }

    /// Reshuffles the examples every epoch: epoch `e` (counted by `reset()`) visits them in
    /// the order [`shuffle_indices`](crate::shuffle_indices)`(0..n, seed + e)`, as
    /// [`InMemoryDataSetIterator::with_shuffle`](crate::InMemoryDataSetIterator::with_shuffle)
    /// does (DL4J's iterator has no shuffle; training on file order sorted by class would
    /// need one). The order is a preallocated index: shuffling allocates nothing.
    pub fn with_shuffle(mut self, seed: u64) -> Self {
        self.shuffle_seed = Some(seed);
        self.epoch = 0;
        self.cursor = 0;
        self.reorder();
        self
    }

    fn reorder(&mut self) {
        for (i, o) in self.order.iter_mut().enumerate() {
            *o = i;
        }
        if let Some(seed) = self.shuffle_seed {
            crate::dataset::shuffle_indices(&mut self.order, seed.wrapping_add(self.epoch));
        }
    }

    /// Many-to-one labels: each batch's labels are `[batch, outcomes]`, the label at each
    /// example's **last** labels time step (the one a labels file of one line holds), with no
    /// labels mask; the features keep their `[batch, inputs, time]` layout and masks. This is
    /// what a network whose recurrent part ends in `LastTimeStep` (an output of one vector per
    /// sequence) trains on; DL4J's iterator always gives `[batch, outcomes, time]` labels,
    /// which suit a per-step `RnnOutputLayer` instead.
    pub fn with_labels_per_sequence(mut self) -> Self {
        self.labels_per_sequence = true;
        self
    }

    /// Whether labels come one per sequence ([`with_labels_per_sequence`](Self::with_labels_per_sequence)).
    pub fn labels_per_sequence(&self) -> bool {
        self.labels_per_sequence
    }

    /// The alignment mode.
    pub fn alignment(&self) -> AlignmentMode {
        self.alignment
    }

    /// The lengths (time steps) of the features sequences, in example order.
    pub fn feature_lengths(&self) -> &[usize] {
        &self.features.lengths
    }

    /// The lengths (time steps) of the labels sequences, in example order.
    pub fn label_lengths(&self) -> &[usize] {
        &self.labels.lengths
    }

    fn make_batch(&self, start: usize, end: usize) -> Result<DataSet<T>, DataError> {
        let n = end - start;
        let examples = &self.order[start..end];
        let per_sequence = self.labels_per_sequence;
        let time = examples
            .iter()
            .map(|&i| {
                let l = if per_sequence {
                    0
                } else {
                    self.labels.lengths[i]
                };
                self.features.lengths[i].max(l)
            })
            .max()
            .unwrap_or(0);
        let masked = self.alignment != AlignmentMode::EqualLength;
        let fill = |series: &Series<T>| -> Result<(NdArray<T>, Option<NdArray<T>>), DataError> {
            let mut values = NdArray::zeros(&[n, series.width, time])?;
            let mut mask = if masked {
                Some(NdArray::zeros(&[n, time])?)
            } else {
                None
            };
            {
                let mut w = values.write()?;
                let mut mw = match &mut mask {
                    Some(m) => Some(m.write()?),
                    None => None,
                };
                let dst = w.as_slice_mut().ok_or_else(not_contiguous)?;
                let mut mdst = match &mut mw {
                    Some(g) => Some(g.as_slice_mut().ok_or_else(not_contiguous)?),
                    None => None,
                };
                for (row, &i) in examples.iter().enumerate() {
                    let len = series.lengths[i];
                    let at = match self.alignment {
                        AlignmentMode::AlignEnd => time - len,
                        _ => 0,
                    };
                    series.copy_into(i, dst, row, time, at);
                    if let Some(m) = &mut mdst {
                        m[row * time + at..row * time + at + len].fill(T::ONE);
                    }
                }
            }
            Ok((values, mask))
        };
        let (features, features_mask) = fill(&self.features)?;
        let (labels, labels_mask) = if per_sequence {
            let mut labels = NdArray::zeros(&[n, self.labels.width])?;
            {
                let mut w = labels.write()?;
                let dst = w.as_slice_mut().ok_or_else(not_contiguous)?;
                for (row, &i) in examples.iter().enumerate() {
                    self.labels.copy_last_into(i, dst, row);
                }
            }
            (labels, None)
        } else {
            fill(&self.labels)?
        };
        Ok(DataSet {
            features,
            labels,
            features_mask,
            labels_mask,
        })
    }
}

fn not_contiguous() -> DataError {
    invalid(
        "SequenceRecordReaderDataSetIterator::next",
        "expected a contiguous new array, found a strided one",
    )
}

fn nonempty(op: &'static str, sequences: Vec<Records>) -> Result<Vec<Records>, DataError> {
    let sequences = initialized(op, Some(sequences).filter(|s| !s.is_empty()))?;
    Ok(sequences)
}

impl<T: DataType> DataSetIterator<T> for SequenceRecordReaderDataSetIterator<T> {
    fn next(&mut self) -> Option<Result<DataSet<T>, DataError>> {
        if !self.has_next() {
            return None;
        }
        let end = (self.cursor + self.batch).min(self.features.lengths.len());
        let batch = self.make_batch(self.cursor, end);
        self.cursor = end;
        Some(batch)
    }

    fn has_next(&self) -> bool {
        self.cursor < self.features.lengths.len()
    }

    fn reset(&mut self) -> Result<(), DataError> {
        self.cursor = 0;
        if self.shuffle_seed.is_some() {
            self.epoch += 1;
            self.reorder();
        }
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
        self.labels.width
    }

    fn input_columns(&self) -> usize {
        self.features.width
    }

    fn total_examples(&self) -> Option<usize> {
        Some(self.features.lengths.len())
    }
}
