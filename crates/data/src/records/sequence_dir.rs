//! DL4J's CSV sequence layout on disk: numbered files (DataVec's `NumberedFileInputSplit`,
//! `0.csv, 1.csv, …`) and the directory pair of one split, `SPLIT/features/i.csv` (one line
//! per time step, one column per channel) with `SPLIT/labels/i.csv` (the label of example
//! `i`), read into a [`SequenceSplit`] that makes a classification
//! [`SequenceRecordReaderDataSetIterator`] sized from the files.
//!
//! Numbered names are ordered by their number (`2.csv` before `10.csv`), unlike
//! [`CsvSequenceRecordReader::initialize_dir`]'s byte order, and a gap (a missing `17.csv`) is
//! an error naming the file, because it would silently pair features with the wrong labels.

use std::path::{Path, PathBuf};

use super::csv::Records;
use super::sequence::{
    AlignmentMode, CsvSequenceRecordReader, SequenceRecordReaderDataSetIterator,
};
use crate::error::{DataError, format_error};
use dl4rs_array::DataType;

/// The largest number of classes [`SequenceSplit::num_classes`] infers (labels are stored
/// one-hot, so a stray huge index would otherwise ask for gigabytes).
pub const MAX_CLASSES: usize = 100_000;

/// The files `dir/0.EXT, dir/1.EXT, …, dir/(n-1).EXT` in numeric order (DataVec's
/// `NumberedFileInputSplit("dir/%d.EXT", 0, n - 1)` with `n` found from the directory).
///
/// Files whose name does not end in `.EXT` and hidden files are ignored; every `.EXT` file
/// must be named by a plain decimal number. Errors: `dir` unreadable or not a directory, no
/// numbered file, a name that is not a number, a number given twice (`7.csv` and `07.csv`),
/// or a gap — each naming the directory and the file.
pub fn numbered_files(dir: impl AsRef<Path>, extension: &str) -> Result<Vec<PathBuf>, DataError> {
    let dir = dir.as_ref();
    let io = |source| DataError::Io {
        path: dir.to_owned(),
        source,
    };
    let suffix = format!(".{extension}");
    let mut numbered: Vec<(usize, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let Some(stem) = name.strip_suffix(&suffix) else {
            continue;
        };
        let number = stem
            .parse::<usize>()
            .ok()
            .filter(|_| stem.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                format_error(
                    &path.display().to_string(),
                    format!(
                        "expected a numbered file name (0{suffix}, 1{suffix}, …: DL4J's \
                         NumberedFileInputSplit), found {name:?}: rename or remove it"
                    ),
                )
            })?;
        numbered.push((number, path));
    }
    numbered.sort();
    if numbered.is_empty() {
        return Err(format_error(
            &dir.display().to_string(),
            format!("expected numbered files 0{suffix}, 1{suffix}, …, found none"),
        ));
    }
    for (expected, (number, path)) in numbered.iter().enumerate() {
        if *number != expected {
            let message = if *number < expected {
                format!(
                    "number {number} is given twice ({} and {})",
                    numbered[expected - 1].1.display(),
                    path.display()
                )
            } else {
                format!(
                    "expected {expected}{suffix} (numbered files must run 0{suffix} to \
                     {}{suffix} without gaps), found it missing; the next file is {}",
                    numbered.len() - 1,
                    path.display()
                )
            };
            return Err(format_error(&dir.display().to_string(), message));
        }
    }
    Ok(numbered.into_iter().map(|(_, p)| p).collect())
}

impl CsvSequenceRecordReader {
    /// Reads `dir/0.csv, dir/1.csv, …` in numeric order, one sequence each (see
    /// [`numbered_files`]).
    pub fn initialize_numbered(&mut self, dir: impl AsRef<Path>) -> Result<(), DataError> {
        let paths = numbered_files(dir, "csv")?;
        self.initialize_paths(&paths)
    }
}

/// One split of a sequence data set in DL4J's CSV layout: `DIR/features/i.csv` and
/// `DIR/labels/i.csv`, read and checked (same number of files, every features file with the
/// same number of columns, labels files of one column).
///
/// ```no_run
/// use dl4rs_data::records::SequenceSplit;
///
/// let train = SequenceSplit::read("data/sequences/fashion-rows/train").unwrap();
/// let classes = train.num_classes().unwrap();
/// let batches = train.classification::<f32>(32, classes).unwrap().with_shuffle(1);
/// ```
#[derive(Debug, Clone)]
pub struct SequenceSplit {
    dir: PathBuf,
    features: CsvSequenceRecordReader,
    labels: CsvSequenceRecordReader,
}

impl SequenceSplit {
    /// Reads `dir/features/*.csv` and `dir/labels/*.csv` (numbered files, comma-separated, no
    /// header lines).
    pub fn read(dir: impl AsRef<Path>) -> Result<Self, DataError> {
        Self::read_with(dir, 0, ',')
    }

    /// [`read`](Self::read) with DataVec's `CSVSequenceRecordReader(skipNumLines, delimiter)`
    /// settings, applied to every features and labels file.
    pub fn read_with(
        dir: impl AsRef<Path>,
        skip_lines: usize,
        delimiter: char,
    ) -> Result<Self, DataError> {
        let dir = dir.as_ref().to_owned();
        if !dir.is_dir() {
            return Err(format_error(
                &dir.display().to_string(),
                "expected a directory holding features/ and labels/ (DL4J's CSV sequence \
                 layout: features/0.csv, … one line per time step; labels/0.csv, … the class \
                 index), found no such directory",
            ));
        }
        let mut features = CsvSequenceRecordReader::new(skip_lines, delimiter);
        features.initialize_numbered(dir.join("features"))?;
        let mut labels = CsvSequenceRecordReader::new(skip_lines, delimiter);
        labels.initialize_numbered(dir.join("labels"))?;
        let (nf, nl) = (features.sequences().len(), labels.sequences().len());
        if nf != nl {
            return Err(DataError::Mismatch {
                what: dir.display().to_string(),
                message: format!(
                    "expected as many labels files as features files, found {nf} in features/ \
                     and {nl} in labels/"
                ),
            });
        }
        Ok(SequenceSplit {
            dir,
            features,
            labels,
        })
    }

    /// The split's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.features.sequences().len()
    }

    /// Whether the split has no sequence (never true for a split [`read`](Self::read) gives).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Channels (columns) per time step.
    pub fn num_channels(&self) -> usize {
        self.features
            .sequences()
            .first()
            .map_or(0, Records::num_columns)
    }

    /// The shortest and longest features sequence, in time steps.
    pub fn length_range(&self) -> (usize, usize) {
        let lengths = self.features.sequences().iter().map(Records::len);
        (
            lengths.clone().min().unwrap_or(0),
            lengths.max().unwrap_or(0),
        )
    }

    /// The number of classes the labels files imply: 1 + the largest class index. Every label
    /// must be a non-negative integer in a file of one column; else an error naming the file,
    /// line and value.
    pub fn num_classes(&self) -> Result<usize, DataError> {
        let mut max = 0usize;
        for s in self.labels.sequences() {
            if s.num_columns() != 1 {
                return Err(DataError::Parse {
                    name: s.name().to_owned(),
                    line: s.line(0).unwrap_or(1),
                    column: 2,
                    message: format!(
                        "expected 1 column (the class index) in a labels file, found {}",
                        s.num_columns()
                    ),
                });
            }
            for (t, row) in s.iter().enumerate() {
                let v = row[0];
                if v.fract() != 0.0 || !(0.0..MAX_CLASSES as f64).contains(&v) {
                    return Err(DataError::Parse {
                        name: s.name().to_owned(),
                        line: s.line(t).unwrap_or(0),
                        column: 1,
                        message: format!(
                            "expected a class index (an integer 0, 1, 2, … below {MAX_CLASSES}), \
                             found {v}"
                        ),
                    });
                }
                max = max.max(v as usize);
            }
        }
        Ok(max + 1)
    }

    /// A classification iterator over the split, `batch` sequences a batch, labels one-hot in
    /// `0..num_classes`, aligned at the end ([`AlignmentMode::AlignEnd`]: one label per
    /// sequence sits at its last step, sequences padded at the start, with masks). Chain
    /// [`with_labels_per_sequence`](SequenceRecordReaderDataSetIterator::with_labels_per_sequence)
    /// for `[batch, classes]` labels, [`with_shuffle`](SequenceRecordReaderDataSetIterator::with_shuffle)
    /// for a new order every epoch.
    pub fn classification<T: DataType>(
        &self,
        batch: usize,
        num_classes: usize,
    ) -> Result<SequenceRecordReaderDataSetIterator<T>, DataError> {
        SequenceRecordReaderDataSetIterator::classification(
            self.features.clone(),
            self.labels.clone(),
            batch,
            num_classes,
            AlignmentMode::AlignEnd,
        )
    }
}
