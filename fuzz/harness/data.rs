// Fuzz harness bodies for the dl4rs-data readers, shared (via `include!`) by the cargo-fuzz
// targets in `fuzz/fuzz_targets/` and the corpus replay in `crates/data/tests/fuzz_corpus.rs`,
// so `cargo test` runs exactly what the fuzzer ran. Each takes untrusted bytes; any panic,
// abort or unbounded allocation is a bug (an `Err` is the right answer to bad input).

/// Splits off `n` leading control bytes (zeros when the input is shorter).
#[allow(dead_code)]
fn fuzz_split<const N: usize>(data: &[u8]) -> ([u8; N], &[u8]) {
    let mut head = [0u8; N];
    let n = data.len().min(N);
    head[..n].copy_from_slice(&data[..n]);
    (head, &data[n..])
}

#[allow(dead_code)]
const FUZZ_DELIMITERS: [char; 6] = [',', ';', '\t', ' ', '|', 'é'];

#[allow(dead_code)]
fn fuzz_drain<T: dl4rs_array::DataType>(it: &mut dyn dl4rs_data::DataSetIterator<T>) {
    // Two epochs (the second after reset), at most 64 batches each.
    for _ in 0..2 {
        for _ in 0..64 {
            match it.next() {
                Some(Ok(batch)) => {
                    let _ = batch.features.to_vec();
                }
                Some(Err(_)) | None => break,
            }
        }
        if it.reset().is_err() {
            break;
        }
    }
}

/// The CSV record reader (`CsvRecordReader::parse_bytes`) and the iterator over its table.
/// Control bytes: delimiter, header lines to skip, label mode, label column, batch size.
#[allow(dead_code)]
pub fn fuzz_csv_records(data: &[u8]) {
    use dl4rs_data::records::{CsvRecordReader, LabelSpec, RecordReaderDataSetIterator};
    let (h, body) = fuzz_split::<5>(data);
    let delimiter = FUZZ_DELIMITERS[h[0] as usize % FUZZ_DELIMITERS.len()];
    let mut reader = CsvRecordReader::new(h[1] as usize % 4, delimiter);
    if reader.initialize_bytes("fuzz.csv", body).is_err() {
        return;
    }
    let records = reader.records().expect("initialized").clone();
    assert_eq!(
        records.values().len(),
        records.len() * records.num_columns()
    );
    for (i, row) in records.iter().enumerate() {
        assert_eq!(records.get(i), Some(row));
        assert!(records.line(i).is_some());
    }
    let column = h[3] as usize % 8;
    let spec = match h[2] % 3 {
        0 => LabelSpec::Classification {
            column,
            num_classes: 1 + (h[2] as usize / 3) % 10,
        },
        1 => LabelSpec::Regression {
            from: column,
            to: column + (h[2] as usize / 3) % 3,
        },
        _ => LabelSpec::Regression {
            from: column + 1,
            to: column,
        },
    };
    let batch = h[4] as usize % 9;
    if let Ok(it) = RecordReaderDataSetIterator::<f32>::from_records(&records, batch, spec) {
        let mut it = it.with_shuffle(u64::from(h[4]));
        fuzz_drain(&mut it);
        let _ = it.to_dataset();
    }
}

/// The CSV sequence reader (`CsvSequenceRecordReader`, one sequence per file) and its
/// iterator. Files are separated by a 0x00 byte; the first half are features, the rest labels.
/// Control bytes: delimiter, header lines, mode, alignment, batch size.
#[allow(dead_code)]
pub fn fuzz_csv_sequence(data: &[u8]) {
    use dl4rs_data::records::{
        AlignmentMode, CsvSequenceRecordReader, LabelSpec, SequenceRecordReaderDataSetIterator,
    };
    let (h, body) = fuzz_split::<5>(data);
    let delimiter = FUZZ_DELIMITERS[h[0] as usize % FUZZ_DELIMITERS.len()];
    let skip = h[1] as usize % 3;
    let texts: Vec<String> = body
        .split(|&b| b == 0)
        .take(16)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let names: Vec<String> = (0..texts.len()).map(|i| format!("seq{i}.csv")).collect();
    let files: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(texts.iter().map(String::as_str))
        .collect();
    let alignment = match h[3] % 3 {
        0 => AlignmentMode::EqualLength,
        1 => AlignmentMode::AlignStart,
        _ => AlignmentMode::AlignEnd,
    };
    let batch = h[4] as usize % 5;
    let reader = |files: &[(&str, &str)]| {
        let mut r = CsvSequenceRecordReader::new(skip, delimiter);
        r.initialize_strs(files).ok().map(|()| r)
    };
    let it = match h[2] % 4 {
        0 | 1 => {
            let Some(r) = reader(&files) else { return };
            let spec = if h[2] % 4 == 0 {
                LabelSpec::Classification {
                    column: (h[2] as usize / 4) % 4,
                    num_classes: 1 + (h[2] as usize / 16) % 8,
                }
            } else {
                LabelSpec::Regression {
                    from: (h[2] as usize / 4) % 4,
                    to: (h[2] as usize / 16) % 4,
                }
            };
            SequenceRecordReaderDataSetIterator::<f32>::single(r, batch, spec, alignment)
        }
        mode => {
            let half = files.len().div_ceil(2);
            let (Some(f), Some(l)) = (reader(&files[..half]), reader(&files[half..])) else {
                return;
            };
            if mode == 2 {
                let classes = 1 + (h[2] as usize / 4) % 8;
                SequenceRecordReaderDataSetIterator::<f32>::classification(
                    f, l, batch, classes, alignment,
                )
            } else {
                SequenceRecordReaderDataSetIterator::<f32>::regression(f, l, batch, alignment)
            }
        }
    };
    if let Ok(mut it) = it {
        assert_eq!(it.feature_lengths().len(), it.label_lengths().len());
        fuzz_drain(&mut it);
    }
}

/// The IDX reader: the bytes as an image file and as a label file (raw or gzipped), and, when
/// both parse, the conversion to a data set.
#[allow(dead_code)]
pub fn fuzz_idx(data: &[u8]) {
    use dl4rs_data::idx;
    let images = idx::read_images_from(data, "fuzz-images.idx");
    let labels = idx::read_labels_from(data, "fuzz-labels.idx");
    if let Ok(images) = &images {
        for i in 0..images.count.min(4) {
            assert_eq!(
                images.image(i).map(<[u8]>::len),
                Some(images.pixels_per_image())
            );
        }
        assert!(images.image(images.count).is_none());
        let again = idx::read_images_from(&images.to_idx_bytes(), "again").expect("round trip");
        assert_eq!(again.pixels, images.pixels);
        // A label file of the right count, to reach the conversion.
        let made = idx::IdxLabels::new("labels", vec![0; images.count]);
        if images.pixels.len() <= 1 << 16 {
            let _ = idx::to_dataset::<f32>(images, &made, 1);
        }
    }
    if let Ok(labels) = &labels {
        let again = idx::read_labels_from(&labels.to_idx_bytes(), "again").expect("round trip");
        assert_eq!(again.labels, labels.labels);
    }
}

/// `Normalizer::from_json`; a normalizer that parses must round-trip, and a fitted one must
/// transform and revert a small batch of its own width without panicking.
#[allow(dead_code)]
pub fn fuzz_normalizer_json(data: &[u8]) {
    use dl4rs_data::normalizer::{DataNormalization, Normalizer};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(n) = Normalizer::from_json(text) else {
        return;
    };
    let json = n.to_json().expect("a parsed normalizer serializes");
    let back = Normalizer::from_json(&json).expect("round trip");
    assert_eq!(back.name(), n.name());
    let columns = match &n {
        Normalizer::Standardize(s) => s.feature_stats().map(|s| s.columns()),
        Normalizer::MinMax(s) => s.feature_stats().map(|s| s.columns()),
        Normalizer::ImageScaler(_) => Some(3),
    };
    if let Some(c) = columns.filter(|&c| c > 0 && c <= 1 << 12) {
        let values: Vec<f32> = (0..2 * c).map(|i| i as f32 - 1.5).collect();
        let mut features =
            dl4rs_array::NdArray::from_slice_detached(&[2, c], &values).expect("small array");
        if DataNormalization::<f32>::transform_features(&n, &mut features).is_ok() {
            let _ = DataNormalization::<f32>::revert_features(&n, &mut features);
        }
    }
}
