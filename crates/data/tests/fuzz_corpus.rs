//! Replays the committed fuzz corpora of the dl4rs-data readers (`fuzz/corpus/<target>/*`,
//! which includes every input that once crashed a target, named `crash-*`) through the same
//! harness the fuzzers run (`fuzz/harness/data.rs`), so a regression in any reader fails
//! `cargo test`. `cargo test --test fuzz_corpus -- --ignored write_seeds` writes the seed
//! inputs again.

include!("../../../fuzz/harness/data.rs");

use std::io::Write;
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn replay(target: &str, run: fn(&[u8])) {
    let dir = corpus(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(outcome.is_ok(), "{target}: {} panicked", file.display());
    }
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn csv_records_corpus() {
    replay("csv_records", fuzz_csv_records);
}

#[test]
fn csv_sequence_corpus() {
    replay("csv_sequence", fuzz_csv_sequence);
}

#[test]
fn idx_corpus() {
    replay("idx", fuzz_idx);
}

#[test]
fn normalizer_json_corpus() {
    replay("normalizer_json", fuzz_normalizer_json);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus"]
fn write_seeds() {
    use dl4rs_data::DataSet;
    use dl4rs_data::idx::{IdxImages, IdxLabels};
    use dl4rs_data::normalizer::{DataNormalization, Normalizer};
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let with = |head: &[u8], body: &str| [head, body.as_bytes()].concat();
    // Control bytes: delimiter, skip lines, label mode, label column, batch.
    write(
        "csv_records",
        "seed-class",
        &with(&[0, 0, 6, 2, 2], "1,2,0\n3,4,1\n5.5,-6e3,1\n"),
    );
    write(
        "csv_records",
        "seed-header-quoted",
        &with(&[1, 1, 1, 0, 3], "a;b;c\n\"1\";2;3\n4;\"5\";6\n"),
    );
    write(
        "csv_records",
        "seed-tab-crlf",
        &with(&[2, 0, 4, 1, 1], "1\t2\r\n3\t4\r\n"),
    );
    write(
        "csv_records",
        "seed-bad",
        &with(&[0, 0, 0, 0, 1], "1,2\n3\n\"x,4\n"),
    );
    // Files separated by 0x00; control bytes: delimiter, skip, mode, alignment, batch.
    write(
        "csv_sequence",
        "seed-single",
        &with(&[0, 0, 4, 0, 2], "1,0\n2,1\n3,0\n\x004,1\n5,0\n6,1\n"),
    );
    write(
        "csv_sequence",
        "seed-class-align-end",
        &with(&[0, 0, 6, 2, 2], "1\n2\n3\n\x004\n\x001\n\x000\n"),
    );
    write(
        "csv_sequence",
        "seed-regression-align-start",
        &with(
            &[0, 1, 3, 1, 3],
            "h\n1,2\n3,4\n\x00h\n5,6\n\x00h\n0.5\n1.5\n\x00h\n2.5\n",
        ),
    );
    let images = IdxImages::new("i", 2, 2, 3, (0..12).collect()).unwrap();
    let labels = IdxLabels::new("l", vec![1, 0, 2]);
    write("idx", "seed-images", &images.to_idx_bytes());
    write("idx", "seed-images.gz", &gzip(&images.to_idx_bytes()));
    write("idx", "seed-labels", &labels.to_idx_bytes());
    write("idx", "seed-labels.gz", &gzip(&labels.to_idx_bytes()));
    let features = dl4rs_array::NdArray::<f64>::from_slice_detached(
        &[3, 2],
        &[1.0, 10.0, 2.0, 20.0, 4.0, 25.0],
    )
    .unwrap();
    let label_arr =
        dl4rs_array::NdArray::<f64>::from_slice_detached(&[3, 1], &[0.5, 1.5, 3.0]).unwrap();
    let data = DataSet::new(features, label_arr).unwrap();
    for name in Normalizer::NAMES {
        let mut n = Normalizer::from_name(name).unwrap().fit_labels(true);
        write(
            "normalizer_json",
            &format!("seed-{name}-unfitted"),
            n.to_json().unwrap().as_bytes(),
        );
        DataNormalization::<f64>::fit_data(&mut n, &data).unwrap();
        write(
            "normalizer_json",
            &format!("seed-{name}"),
            n.to_json().unwrap().as_bytes(),
        );
    }
}
