//! CsvSequenceRecordReader + SequenceRecordReaderDataSetIterator: NCW layout, equal length,
//! align start and align end with exact padding and masks, single-reader mode, length and
//! label errors.

mod common;

use common::TempDir;
use dl4rs_data::DataSetIterator;
use dl4rs_data::records::{
    AlignmentMode, CsvSequenceRecordReader, LabelSpec, SequenceRecordReaderDataSetIterator,
};

fn seqs(files: &[(&str, &str)]) -> CsvSequenceRecordReader {
    let mut r = CsvSequenceRecordReader::new(0, ',');
    r.initialize_strs(files).unwrap();
    r
}

/// Features: f0 3 steps of 2 features, f1 1 step, f2 2 steps. Labels: classes per step.
fn features() -> CsvSequenceRecordReader {
    seqs(&[
        ("f0.csv", "1,10\n2,20\n3,30\n"),
        ("f1.csv", "4,40\n"),
        ("f2.csv", "5,50\n6,60\n"),
    ])
}

fn labels() -> CsvSequenceRecordReader {
    seqs(&[
        ("l0.csv", "0\n1\n2\n"),
        ("l1.csv", "2\n"),
        ("l2.csv", "1\n0\n"),
    ])
}

fn vec(a: &Option<dl4rs_array::NdArray<f32>>) -> Vec<f32> {
    a.as_ref().unwrap().to_vec().unwrap()
}

#[test]
fn equal_length_ncw_layout_without_masks() {
    let f = seqs(&[
        ("a.csv", "1,2\n3,4\n5,6\n"),
        ("b.csv", "7,8\n9,10\n11,12\n"),
    ]);
    let l = seqs(&[("la.csv", "0\n1\n0\n"), ("lb.csv", "1\n1\n0\n")]);
    let mut it = SequenceRecordReaderDataSetIterator::<f32>::classification(
        f,
        l,
        5,
        2,
        AlignmentMode::EqualLength,
    )
    .unwrap();
    assert_eq!(
        (it.input_columns(), it.total_outcomes(), it.total_examples()),
        (2, 2, Some(2))
    );
    let b = it.next().unwrap().unwrap();
    assert_eq!(b.features.shape(), [2, 2, 3]);
    // [batch, feature, time]
    assert_eq!(
        b.features.to_vec().unwrap(),
        [1., 3., 5., 2., 4., 6., 7., 9., 11., 8., 10., 12.]
    );
    assert_eq!(b.labels.shape(), [2, 2, 3]);
    assert_eq!(
        b.labels.to_vec().unwrap(),
        [1., 0., 1., 0., 1., 0., 0., 0., 1., 1., 1., 0.]
    );
    assert!(b.features_mask.is_none() && b.labels_mask.is_none());
    assert!(it.next().is_none());
    it.reset().unwrap();
    assert!(it.has_next());
}

#[test]
fn align_start_pads_at_the_end_with_exact_masks() {
    let mut it = SequenceRecordReaderDataSetIterator::<f32>::classification(
        features(),
        labels(),
        3,
        3,
        AlignmentMode::AlignStart,
    )
    .unwrap();
    let b = it.next().unwrap().unwrap();
    assert_eq!(b.features.shape(), [3, 2, 3]);
    #[rustfmt::skip]
    assert_eq!(b.features.to_vec().unwrap(), [
        1., 2., 3.,   10., 20., 30.,
        4., 0., 0.,   40., 0., 0.,
        5., 6., 0.,   50., 60., 0.,
    ]);
    #[rustfmt::skip]
    assert_eq!(b.labels.to_vec().unwrap(), [
        1., 0., 0.,   0., 1., 0.,   0., 0., 1.,
        0., 0., 0.,   0., 0., 0.,   1., 0., 0.,
        0., 1., 0.,   1., 0., 0.,   0., 0., 0.,
    ]);
    assert_eq!(b.features_mask.as_ref().unwrap().shape(), [3, 3]);
    assert_eq!(vec(&b.features_mask), [1., 1., 1., 1., 0., 0., 1., 1., 0.]);
    assert_eq!(vec(&b.labels_mask), [1., 1., 1., 1., 0., 0., 1., 1., 0.]);
}

#[test]
fn align_end_pads_at_the_start_with_exact_masks_per_batch_length() {
    // Labels: one per sequence (many-to-one), aligned with the last step.
    let l = seqs(&[("l0.csv", "2\n"), ("l1.csv", "0\n"), ("l2.csv", "1\n")]);
    let mut it = SequenceRecordReaderDataSetIterator::<f32>::classification(
        features(),
        l,
        2,
        3,
        AlignmentMode::AlignEnd,
    )
    .unwrap();
    let b = it.next().unwrap().unwrap();
    assert_eq!(b.features.shape(), [2, 2, 3]);
    #[rustfmt::skip]
    assert_eq!(b.features.to_vec().unwrap(), [
        1., 2., 3.,   10., 20., 30.,
        0., 0., 4.,   0., 0., 40.,
    ]);
    #[rustfmt::skip]
    assert_eq!(b.labels.to_vec().unwrap(), [
        0., 0., 0.,   0., 0., 0.,   0., 0., 1.,
        0., 0., 1.,   0., 0., 0.,   0., 0., 0.,
    ]);
    assert_eq!(vec(&b.features_mask), [1., 1., 1., 0., 0., 1.]);
    assert_eq!(vec(&b.labels_mask), [0., 0., 1., 0., 0., 1.]);
    // The last batch is one example of 2 steps: time axis 2, nothing padded in features.
    let b = it.next().unwrap().unwrap();
    assert_eq!(b.features.shape(), [1, 2, 2]);
    assert_eq!(b.features.to_vec().unwrap(), [5., 6., 50., 60.]);
    assert_eq!(b.labels.to_vec().unwrap(), [0., 0., 0., 1., 0., 0.]);
    assert_eq!(vec(&b.features_mask), [1., 1.]);
    assert_eq!(vec(&b.labels_mask), [0., 1.]);
    assert!(it.next().is_none());
}

#[test]
fn regression_two_readers_align_start() {
    let f = seqs(&[("a.csv", "1\n2\n"), ("b.csv", "3\n")]);
    let l = seqs(&[("la.csv", "0.5,5\n"), ("lb.csv", "1.5,15\n2.5,25\n")]);
    let mut it =
        SequenceRecordReaderDataSetIterator::<f64>::regression(f, l, 2, AlignmentMode::AlignStart)
            .unwrap();
    assert_eq!(it.feature_lengths(), [2, 1]);
    assert_eq!(it.label_lengths(), [1, 2]);
    let b = it.next().unwrap().unwrap();
    assert_eq!(b.features.to_vec().unwrap(), [1., 2., 3., 0.]);
    assert_eq!(
        b.labels.to_vec().unwrap(),
        [0.5, 0., 5., 0., 1.5, 2.5, 15., 25.]
    );
    assert_eq!(b.features_mask.unwrap().to_vec().unwrap(), [1., 1., 1., 0.]);
    assert_eq!(b.labels_mask.unwrap().to_vec().unwrap(), [1., 0., 1., 1.]);
}

#[test]
fn single_reader_with_label_column() {
    let r = seqs(&[("s0.csv", "1,0,10\n2,1,20\n"), ("s1.csv", "3,1,30\n")]);
    let mut it = SequenceRecordReaderDataSetIterator::<f32>::single(
        r,
        2,
        LabelSpec::Classification {
            column: 1,
            num_classes: 2,
        },
        AlignmentMode::AlignStart,
    )
    .unwrap();
    let b = it.next().unwrap().unwrap();
    assert_eq!(b.features.shape(), [2, 2, 2]);
    assert_eq!(
        b.features.to_vec().unwrap(),
        [1., 2., 10., 20., 3., 0., 30., 0.]
    );
    assert_eq!(b.labels.to_vec().unwrap(), [1., 0., 0., 1., 0., 0., 1., 0.]);
    assert_eq!(vec(&b.features_mask), [1., 1., 1., 0.]);
    assert_eq!(vec(&b.labels_mask), [1., 1., 1., 0.]);

    let r = seqs(&[
        ("s0.csv", "1,0,10\n2,1,20\n"),
        ("s1.csv", "3,1,30\n4,0,40\n"),
    ]);
    let mut it = SequenceRecordReaderDataSetIterator::<f32>::single(
        r,
        1,
        LabelSpec::Regression { from: 2, to: 2 },
        AlignmentMode::EqualLength,
    )
    .unwrap();
    let b = it.next().unwrap().unwrap();
    assert_eq!(b.features.to_vec().unwrap(), [1., 2., 0., 1.]);
    assert_eq!(b.labels.to_vec().unwrap(), [10., 20.]);
}

#[test]
fn equal_length_errors_name_both_files_and_lengths() {
    let e = SequenceRecordReaderDataSetIterator::<f32>::classification(
        features(),
        labels(),
        2,
        3,
        AlignmentMode::EqualLength,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "SequenceRecordReaderDataSetIterator (AlignmentMode::EqualLength): sequence file f1.csv \
         has 1 time steps but f0.csv has 3: expected every sequence to have the same length \
         (use AlignStart or AlignEnd to pad)"
    );
    let f = seqs(&[("a.csv", "1\n2\n")]);
    let l = seqs(&[("la.csv", "1\n")]);
    let e = SequenceRecordReaderDataSetIterator::<f32>::classification(
        f,
        l,
        2,
        2,
        AlignmentMode::EqualLength,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "SequenceRecordReaderDataSetIterator (AlignmentMode::EqualLength): features file a.csv \
         has 2 time steps but labels file la.csv has 1: expected equal lengths (use AlignStart \
         or AlignEnd to pad)"
    );
}

#[test]
fn reader_and_label_errors() {
    let e = SequenceRecordReaderDataSetIterator::<f32>::classification(
        features(),
        seqs(&[("l0.csv", "0\n"), ("l1.csv", "5\n"), ("l2.csv", "1\n")]),
        2,
        3,
        AlignmentMode::AlignEnd,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "l1.csv: line 1, column 1: class label 5 is out of range: expected an integer in 0..3 \
         (label column 0, 0-based)"
    );
    let e = SequenceRecordReaderDataSetIterator::<f32>::classification(
        features(),
        seqs(&[("l0.csv", "0\n")]),
        2,
        3,
        AlignmentMode::AlignEnd,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "SequenceRecordReaderDataSetIterator::new: expected as many labels files as features \
         files (3), found 1"
    );
    let e = SequenceRecordReaderDataSetIterator::<f32>::classification(
        seqs(&[("a.csv", "1\n")]),
        seqs(&[("la.csv", "0,1\n")]),
        2,
        3,
        AlignmentMode::AlignEnd,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "la.csv: line 1, column 2: expected 1 column (the class index) in a classification \
         labels file, found 2"
    );
    let mut r = CsvSequenceRecordReader::new(0, ',');
    let e = r
        .initialize_strs(&[("a.csv", "1,2\n"), ("b.csv", "1\n")])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.csv: line 1, column 2: expected 2 columns like the first sequence file a.csv, found 1"
    );
    let e = r
        .initialize_strs(&[("a.csv", "1,2\n"), ("b.csv", "")])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.csv: expected at least one record, found an empty file"
    );
    let e = r.initialize_strs(&[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "CsvSequenceRecordReader::initialize: expected at least one sequence file, found none"
    );
}

#[test]
fn directory_listing_is_sorted_by_name() {
    let dir = TempDir::new("records-seq");
    dir.write("s2.csv", b"h\n5\n");
    dir.write("s0.csv", b"h\n1\n2\n");
    dir.write("s1.csv", b"h\n3\n4\n");
    let mut r = CsvSequenceRecordReader::new(1, ',');
    r.initialize_dir(&dir.0).unwrap();
    let names: Vec<String> = r
        .sequences()
        .iter()
        .map(|s| {
            std::path::Path::new(s.name())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, ["s0.csv", "s1.csv", "s2.csv"]);
    let it = SequenceRecordReaderDataSetIterator::<f32>::single(
        r,
        3,
        LabelSpec::Regression { from: 0, to: 0 },
        AlignmentMode::AlignStart,
    );
    // One column used as the label leaves no features.
    assert!(it.is_err());
    let empty = TempDir::new("records-seq-empty");
    let e = CsvSequenceRecordReader::new(0, ',')
        .initialize_dir(&empty.0)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: expected a directory with at least one sequence file, found none",
            empty.0.display()
        )
    );
    let e = CsvSequenceRecordReader::new(0, ',')
        .initialize_dir(empty.0.join("missing"))
        .unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
}
