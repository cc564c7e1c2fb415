//! DL4J's on-disk CSV sequence layout: numbered files in numeric order (gaps, duplicates and
//! stray names are errors naming the file), `SequenceSplit` over `features/` + `labels/`
//! (channels and classes from the files, AlignEnd masks, one label per sequence), per-epoch
//! shuffling, and the bundled Fashion-MNIST rows set read end to end.

mod common;

use std::path::Path;

use common::TempDir;
use dl4rs_data::DataSetIterator;
use dl4rs_data::records::{SequenceSplit, numbered_files};

fn bundled(split: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/sequences/fashion-rows")
        .join(split)
}

/// `dir/features/i.csv` = `seqs[i]` (a list of time steps), `dir/labels/i.csv` = `labels[i]`.
fn split(tag: &str, seqs: &[&str], labels: &[&str]) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::create_dir_all(dir.0.join("features")).unwrap();
    std::fs::create_dir_all(dir.0.join("labels")).unwrap();
    for (i, s) in seqs.iter().enumerate() {
        dir.write(&format!("features/{i}.csv"), s.as_bytes());
    }
    for (i, l) in labels.iter().enumerate() {
        dir.write(&format!("labels/{i}.csv"), l.as_bytes());
    }
    dir
}

fn error(r: Result<impl std::fmt::Debug, dl4rs_data::DataError>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn numbered_files_come_in_numeric_order() {
    let dir = TempDir::new("numbered");
    for i in [10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9] {
        dir.write(&format!("{i}.csv"), b"1\n");
    }
    dir.write("README.md", b"ignored: not .csv");
    dir.write(".hidden.csv", b"ignored: hidden");
    let names: Vec<String> = numbered_files(&dir.0, "csv")
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expected: Vec<String> = (0..=10).map(|i| format!("{i}.csv")).collect();
    assert_eq!(names, expected);
}

#[test]
fn numbered_file_errors_name_the_file() {
    let dir = TempDir::new("gap");
    for i in [0, 1, 3] {
        dir.write(&format!("{i}.csv"), b"1\n");
    }
    let e = error(numbered_files(&dir.0, "csv"));
    assert!(e.contains("expected 2.csv") && e.contains("3.csv"), "{e}");

    let dir = TempDir::new("dup");
    for name in ["0.csv", "1.csv", "01.csv"] {
        dir.write(name, b"1\n");
    }
    let e = error(numbered_files(&dir.0, "csv"));
    assert!(e.contains("given twice") && e.contains("01.csv"), "{e}");

    let dir = TempDir::new("stray");
    dir.write("0.csv", b"1\n");
    dir.write("first.csv", b"1\n");
    let e = error(numbered_files(&dir.0, "csv"));
    assert!(e.contains("first.csv") && e.contains("numbered"), "{e}");

    let dir = TempDir::new("empty-dir");
    let e = error(numbered_files(&dir.0, "csv"));
    assert!(e.contains("found none"), "{e}");

    let e = error(numbered_files(dir.0.join("missing"), "csv"));
    assert!(e.contains("missing") && e.contains("cannot read"), "{e}");
}

#[test]
fn split_sizes_from_the_files_and_aligns_at_the_end() {
    // Three sequences of 2 channels, 3, 1 and 2 steps; classes 4, 0, 2 (so 5 classes).
    let dir = split(
        "split",
        &["1,10\n2,20\n3,30\n", "4,40\n", "5,50\n6,60\n"],
        &["4\n", "0\n", "2\n"],
    );
    let s = SequenceSplit::read(&dir.0).unwrap();
    assert_eq!((s.len(), s.num_channels()), (3, 2));
    assert_eq!(s.length_range(), (1, 3));
    assert_eq!(s.num_classes().unwrap(), 5);

    // DL4J's shape: labels [batch, classes, time], one label at the last step, masked.
    let mut it = s.classification::<f32>(2, 5).unwrap();
    let b = it.next().unwrap().unwrap();
    assert_eq!(b.features.shape(), [2, 2, 3]);
    assert_eq!(
        b.features.to_vec().unwrap(),
        [1., 2., 3., 10., 20., 30., 0., 0., 4., 0., 0., 40.]
    );
    assert_eq!(
        b.features_mask.unwrap().to_vec().unwrap(),
        [1., 1., 1., 0., 0., 1.]
    );
    assert_eq!(b.labels.shape(), [2, 5, 3]);
    assert_eq!(
        b.labels_mask.unwrap().to_vec().unwrap(),
        [0., 0., 1., 0., 0., 1.]
    );
    let labels = b.labels.to_vec().unwrap();
    // Example 0, class 4 at t = 2; example 1, class 0 at t = 2.
    assert_eq!(labels[(4 * 3) + 2], 1.0);
    assert_eq!(labels[15 + 2], 1.0);
    assert_eq!(labels.iter().sum::<f32>(), 2.0);

    // Many-to-one: labels [batch, classes], no labels mask, features unchanged.
    let mut it = s
        .classification::<f32>(2, 5)
        .unwrap()
        .with_labels_per_sequence();
    let b = it.next().unwrap().unwrap();
    assert_eq!(b.features.shape(), [2, 2, 3]);
    assert!(b.features_mask.is_some() && b.labels_mask.is_none());
    assert_eq!(
        b.labels.to_vec().unwrap(),
        [0., 0., 0., 0., 1., 1., 0., 0., 0., 0.]
    );
    // The last batch is the one sequence left, its own length.
    let b = it.next().unwrap().unwrap();
    assert_eq!(b.features.shape(), [1, 2, 2]);
    assert_eq!(b.labels.to_vec().unwrap(), [0., 0., 1., 0., 0.]);
    assert!(it.next().is_none());
}

#[test]
fn header_lines_and_delimiters_as_configured() {
    let dir = split(
        "header",
        &["a;b\n1;10\n2;20\n", "a;b\n3;30\n"],
        &["class\n1\n", "class\n0\n"],
    );
    let s = SequenceSplit::read_with(&dir.0, 1, ';').unwrap();
    assert_eq!((s.num_channels(), s.length_range()), (2, (1, 2)));
    assert_eq!(s.num_classes().unwrap(), 2);
    // Read as plain CSV, the header is a parse error naming the file and line.
    let e = error(SequenceSplit::read(&dir.0));
    assert!(e.contains("features/0.csv: line 1"), "{e}");
}

#[test]
fn shuffle_visits_every_sequence_once_in_a_new_order_each_epoch() {
    let seqs: Vec<String> = (0..20)
        .map(|i| format!("{i}\n").repeat(1 + i % 4))
        .collect();
    let labels: Vec<String> = (0..20).map(|i| format!("{}\n", i % 3)).collect();
    let dir = split(
        "shuffle",
        &seqs.iter().map(String::as_str).collect::<Vec<_>>(),
        &labels.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let s = SequenceSplit::read(&dir.0).unwrap();
    let epoch = |it: &mut dyn DataSetIterator<f32>| -> Vec<usize> {
        let mut ids = Vec::new();
        while let Some(b) = it.next() {
            let b = b.unwrap();
            let (n, time) = (b.features.shape()[0], b.features.shape()[2]);
            let f = b.features.to_vec().unwrap();
            let m = b.features_mask.unwrap().to_vec().unwrap();
            let l = b.labels.to_vec().unwrap();
            for r in 0..n {
                // Every step of a sequence holds its id; the label is id % 3.
                let id = f[r * time + time - 1] as usize;
                let steps = m[r * time..(r + 1) * time].iter().sum::<f32>() as usize;
                assert_eq!(steps, 1 + id % 4, "length of sequence {id}");
                assert_eq!(l[r * 3 + id % 3], 1.0, "label of sequence {id}");
                ids.push(id);
            }
        }
        it.reset().unwrap();
        ids
    };
    let mut plain = s
        .classification::<f32>(6, 3)
        .unwrap()
        .with_labels_per_sequence();
    assert_eq!(epoch(&mut plain), (0..20).collect::<Vec<_>>());
    let mut it = s
        .classification::<f32>(6, 3)
        .unwrap()
        .with_shuffle(9)
        .with_labels_per_sequence();
    let (e0, e1) = (epoch(&mut it), epoch(&mut it));
    for e in [&e0, &e1] {
        let mut sorted = e.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
    }
    assert_ne!(e0, e1, "each epoch has its own order");
    assert_ne!(e0, (0..20).collect::<Vec<_>>());
    // Deterministic per seed.
    let mut again = s
        .classification::<f32>(6, 3)
        .unwrap()
        .with_shuffle(9)
        .with_labels_per_sequence();
    assert_eq!(epoch(&mut again), e0);
}

#[test]
fn bad_splits_are_errors_naming_the_file_and_line() {
    let e = error(SequenceSplit::read("/nonexistent/dl4rs/sequences"));
    assert!(
        e.contains("/nonexistent/dl4rs/sequences") && e.contains("features/"),
        "{e}"
    );

    let dir = split("count", &["1\n", "2\n"], &["0\n"]);
    let e = error(SequenceSplit::read(&dir.0));
    assert!(
        e.contains("2 in features/") && e.contains("1 in labels/"),
        "{e}"
    );

    let dir = split("nolabels", &["1\n"], &[]);
    std::fs::remove_dir(dir.0.join("labels")).unwrap();
    let e = error(SequenceSplit::read(&dir.0));
    assert!(e.contains("labels") && e.contains("cannot read"), "{e}");

    let dir = split("columns", &["1,2\n3,4\n", "5,6\n7\n"], &["0\n", "1\n"]);
    let e = error(SequenceSplit::read(&dir.0));
    assert!(e.contains("1.csv") && e.contains("line 2"), "{e}");

    let dir = split("text", &["1\n", "2\nx\n"], &["0\n", "1\n"]);
    let e = error(SequenceSplit::read(&dir.0));
    assert!(e.contains("features/1.csv: line 2"), "{e}");

    let dir = split("class", &["1\n", "2\n"], &["0\n", "1.5\n"]);
    let s = SequenceSplit::read(&dir.0).unwrap();
    let e = error(s.num_classes());
    assert!(
        e.contains("labels/1.csv: line 1") && e.contains("1.5"),
        "{e}"
    );

    let dir = split("negative", &["1\n"], &["-1\n"]);
    let e = error(SequenceSplit::read(&dir.0).unwrap().num_classes());
    assert!(e.contains("-1"), "{e}");

    // A class past the count given is caught when the iterator is built.
    let dir = split("range", &["1\n", "2\n"], &["0\n", "7\n"]);
    let s = SequenceSplit::read(&dir.0).unwrap();
    let e = error(s.classification::<f32>(2, 3));
    assert!(
        e.contains("labels/1.csv: line 1") && e.contains("out of range"),
        "{e}"
    );

    let dir = split("empty", &["1\n", ""], &["0\n", "1\n"]);
    let e = error(SequenceSplit::read(&dir.0).and_then(|s| s.classification::<f32>(2, 2)));
    assert!(e.contains("1.csv") && e.contains("empty"), "{e}");
}

#[test]
fn bundled_fashion_rows_read_end_to_end() {
    let train = SequenceSplit::read(bundled("train")).unwrap();
    let test = SequenceSplit::read(bundled("test")).unwrap();
    assert_eq!((train.len(), test.len()), (3000, 1000));
    assert_eq!((train.num_channels(), test.num_channels()), (28, 28));
    assert_eq!(train.length_range(), (8, 28));
    assert_eq!(test.length_range(), (8, 28));
    assert_eq!(train.num_classes().unwrap(), 10);
    assert_eq!(test.num_classes().unwrap(), 10);
    let mut it = train.classification::<f32>(64, 10).unwrap();
    let lengths = it.feature_lengths().to_vec();
    // The README's generator: L = 8 + sm(7, i) % 21.
    for (i, &len) in lengths.iter().enumerate().take(100) {
        assert_eq!(
            len as u64,
            8 + dl4rs_array::random::splitmix(7, i as u64) % 21,
            "length of train/features/{i}.csv"
        );
    }
    let (mut examples, mut times) = (0, Vec::new());
    while let Some(b) = it.next() {
        let b = b.unwrap();
        let (n, time) = (b.features.shape()[0], b.features.shape()[2]);
        let mask = b.features_mask.unwrap().to_vec().unwrap();
        for r in 0..n {
            let steps = mask[r * time..(r + 1) * time].iter().sum::<f32>() as usize;
            assert_eq!(steps, lengths[examples + r]);
        }
        let max = *b
            .features
            .to_vec()
            .unwrap()
            .iter()
            .fold(&0.0f32, |a, b| if b > a { b } else { a });
        assert!(max <= 255.0);
        examples += n;
        times.push(time);
    }
    assert_eq!(examples, 3000);
    // Batches take the longest sequence of the batch: lengths vary, up to 28.
    assert_eq!(times.iter().max(), Some(&28));
}
