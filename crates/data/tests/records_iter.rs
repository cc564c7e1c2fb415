//! RecordReaderDataSetIterator: every row once per epoch for several batch sizes, exact
//! features and labels (one-hot classification, regression column ranges), reset, shuffle,
//! workspace placement, and label errors with their full messages.

mod common;

use common::TempDir;
use dl4rs_data::records::{CsvRecordReader, LabelSpec, RecordReaderDataSetIterator};
use dl4rs_data::{DataError, DataSetIterator};
use dl4rs_memory::{WorkspaceConfig, get_and_activate_workspace};

/// `n` rows `i*10, i*10+1, i % 3, i*10+2` with a header line.
fn csv(n: usize) -> String {
    let mut s = String::from("a,b,class,c\n");
    for i in 0..n {
        s.push_str(&format!(
            "{},{},{},{}\n",
            i * 10,
            i * 10 + 1,
            i % 3,
            i * 10 + 2
        ));
    }
    s
}

fn reader(text: &str) -> CsvRecordReader {
    let mut r = CsvRecordReader::new(1, ',');
    r.initialize_str("d.csv", text).unwrap();
    r
}

fn classification_err(text: &str, col: usize, k: usize) -> String {
    RecordReaderDataSetIterator::<f32>::classification(reader(text), 2, col, k)
        .unwrap_err()
        .to_string()
}

#[test]
fn classification_every_row_once_per_epoch_for_several_batch_sizes() {
    let n = 11;
    for batch in [1, 2, 3, 4, 5, 11, 12, 100] {
        let mut it =
            RecordReaderDataSetIterator::<f32>::classification(reader(&csv(n)), batch, 2, 3)
                .unwrap();
        assert_eq!(
            (it.input_columns(), it.total_outcomes(), it.batch()),
            (3, 3, batch)
        );
        assert_eq!(it.total_examples(), Some(n));
        assert!(it.async_supported() && it.reset_supported());
        for _epoch in 0..2 {
            let mut features = Vec::new();
            let mut labels = Vec::new();
            let mut sizes = Vec::new();
            while let Some(b) = it.next() {
                let b = b.unwrap();
                assert_eq!(b.features.shape(), [b.num_examples(), 3]);
                assert_eq!(b.labels.shape(), [b.num_examples(), 3]);
                assert!(b.features_mask.is_none() && b.labels_mask.is_none());
                sizes.push(b.num_examples());
                features.extend(b.features.to_vec().unwrap());
                labels.extend(b.labels.to_vec().unwrap());
            }
            let want_f: Vec<f32> = (0..n)
                .flat_map(|i| [i * 10, i * 10 + 1, i * 10 + 2].map(|v| v as f32))
                .collect();
            let want_l: Vec<f32> = (0..n)
                .flat_map(|i| (0..3).map(move |k| if k == i % 3 { 1.0 } else { 0.0 }))
                .collect();
            assert_eq!(features, want_f, "batch {batch}");
            assert_eq!(labels, want_l, "batch {batch}");
            let mut want_sizes = vec![batch.min(n); n / batch.min(n)];
            if n % batch.min(n) != 0 {
                want_sizes.push(n % batch);
            }
            assert_eq!(sizes, want_sizes);
            assert!(!it.has_next());
            assert!(it.next().is_none());
            it.reset().unwrap();
        }
        assert_eq!(it.epoch(), 2);
    }
}

#[test]
fn regression_label_ranges() {
    let text = "1,2,3,4,5\n6,7,8,9,10\n11,12,13,14,15\n";
    let mut r = CsvRecordReader::new(0, ',');
    r.initialize_str("r.csv", text).unwrap();
    let cases: [(usize, usize, &[f64], &[f64]); 4] = [
        (
            4,
            4,
            &[1., 2., 3., 4., 6., 7., 8., 9., 11., 12., 13., 14.],
            &[5., 10., 15.],
        ),
        (
            0,
            1,
            &[3., 4., 5., 8., 9., 10., 13., 14., 15.],
            &[1., 2., 6., 7., 11., 12.],
        ),
        (
            1,
            3,
            &[1., 5., 6., 10., 11., 15.],
            &[2., 3., 4., 7., 8., 9., 12., 13., 14.],
        ),
        (
            0,
            3,
            &[5., 10., 15.],
            &[1., 2., 3., 4., 6., 7., 8., 9., 11., 12., 13., 14.],
        ),
    ];
    for (from, to, want_f, want_l) in cases {
        let mut it =
            RecordReaderDataSetIterator::<f64>::regression(r.clone(), 2, from, to).unwrap();
        assert_eq!(it.total_outcomes(), to - from + 1);
        assert_eq!(it.input_columns(), 5 - (to - from + 1));
        assert_eq!(
            it.label_spec(),
            LabelSpec::Regression { from, to },
            "{from}..={to}"
        );
        let all = it.to_dataset().unwrap();
        assert_eq!(all.features.to_vec().unwrap(), want_f);
        assert_eq!(all.labels.to_vec().unwrap(), want_l);
        let mut f = Vec::new();
        let mut l = Vec::new();
        while let Some(b) = it.next() {
            let b = b.unwrap();
            f.extend(b.features.to_vec().unwrap());
            l.extend(b.labels.to_vec().unwrap());
        }
        assert_eq!((f.as_slice(), l.as_slice()), (want_f, want_l));
    }
}

#[test]
fn shuffled_epochs_visit_every_row_once_and_differ() {
    let n = 20;
    let mut it = RecordReaderDataSetIterator::<f32>::classification(reader(&csv(n)), 3, 2, 3)
        .unwrap()
        .with_shuffle(9);
    let mut orders = Vec::new();
    for _ in 0..2 {
        let mut firsts = Vec::new();
        while let Some(b) = it.next() {
            let b = b.unwrap();
            let f = b.features.to_vec().unwrap();
            let l = b.labels.to_vec().unwrap();
            for (row, lab) in f.chunks(3).zip(l.chunks(3)) {
                let i = row[0] as usize / 10;
                assert_eq!(
                    row,
                    [(i * 10) as f32, (i * 10 + 1) as f32, (i * 10 + 2) as f32]
                );
                assert_eq!(lab[i % 3], 1.0, "labels stay with their rows");
                firsts.push(i);
            }
        }
        let mut sorted = firsts.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        orders.push(firsts);
        it.reset().unwrap();
    }
    assert_ne!(orders[0], orders[1]);
    assert_ne!(orders[0], (0..n).collect::<Vec<_>>());
}

#[test]
fn batches_live_in_the_current_workspace() {
    let mut it =
        RecordReaderDataSetIterator::<f32>::classification(reader(&csv(5)), 2, 2, 3).unwrap();
    let cfg = WorkspaceConfig::default();
    let _cycle = get_and_activate_workspace(&cfg, "RECORDS_WS").unwrap();
    let b = it.next().unwrap().unwrap();
    assert!(b.features.is_attached() && b.labels.is_attached());
    assert_eq!(b.features.workspace_id(), Some("RECORDS_WS"));
}

#[test]
fn from_a_file() {
    let dir = TempDir::new("records-iter");
    let path = dir.write("iris.csv", csv(4).as_bytes());
    let mut r = CsvRecordReader::new(1, ',');
    r.initialize(&path).unwrap();
    let mut it = RecordReaderDataSetIterator::<f32>::classification(r, 10, 2, 3).unwrap();
    assert_eq!(it.name(), path.display().to_string());
    assert_eq!(it.next().unwrap().unwrap().num_examples(), 4);
}

#[test]
fn label_errors_name_file_line_column_value_and_range() {
    assert_eq!(
        classification_err("h\n1,2,0\n3,4,3\n", 2, 3),
        "d.csv: line 3, column 3: class label 3 is out of range: expected an integer in 0..3 \
         (label column 2, 0-based)"
    );
    assert_eq!(
        classification_err("h\n1,-1,0\n", 1, 2),
        "d.csv: line 2, column 2: class label -1 is out of range: expected an integer in 0..2 \
         (label column 1, 0-based)"
    );
    assert_eq!(
        classification_err("h\n1,2,0\n\n3,4,1.5\n", 2, 3),
        "d.csv: line 4, column 3: expected an integer class label in 0..3 (label column 2, \
         0-based), found 1.5"
    );
}

#[test]
fn bad_arguments() {
    let text = "h\n1,2,0\n";
    assert_eq!(
        classification_err(text, 3, 2),
        "RecordReaderDataSetIterator::new: expected a label column in 0..3 (0-based; the data \
         has 3 columns), found 3"
    );
    assert_eq!(
        classification_err(text, 2, 0),
        "RecordReaderDataSetIterator::new: expected at least 1 class, found num_classes = 0"
    );
    assert_eq!(
        RecordReaderDataSetIterator::<f32>::classification(reader(text), 0, 2, 2)
            .unwrap_err()
            .to_string(),
        "RecordReaderDataSetIterator::new: expected a batch size of at least 1, found 0"
    );
    for (from, to) in [(2, 1), (1, 3)] {
        assert_eq!(
            RecordReaderDataSetIterator::<f32>::regression(reader(text), 1, from, to)
                .unwrap_err()
                .to_string(),
            format!(
                "RecordReaderDataSetIterator::new: expected label columns from..=to with from \
                 <= to < 3 (0-based; the data has 3 columns), found {from}..={to}"
            )
        );
    }
    assert_eq!(
        RecordReaderDataSetIterator::<f32>::regression(reader(text), 1, 0, 2)
            .unwrap_err()
            .to_string(),
        "RecordReaderDataSetIterator::new: expected at least one feature column besides the \
         labels, found all 3 columns used as labels"
    );
    let e = RecordReaderDataSetIterator::<f32>::classification(CsvRecordReader::default(), 1, 0, 2)
        .unwrap_err();
    assert!(matches!(e, DataError::Invalid { .. }));
    assert_eq!(
        e.to_string(),
        "RecordReaderDataSetIterator::new: expected an initialized reader (call initialize \
         first), found one with no data"
    );
}
