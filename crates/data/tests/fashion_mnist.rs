//! Fashion-MNIST: the bundled split and, when installed, the full set.

mod common;

use dl4rs_data::{DataError, DataSet, DataSetIterator, InMemoryDataSetIterator, fashion_mnist};

/// Checks the invariants of a loaded split and returns its class counts.
fn check(ds: &DataSet, n: usize) -> [usize; 10] {
    assert_eq!(ds.features.shape(), &[n, 784]);
    assert_eq!(ds.labels.shape(), &[n, 10]);
    assert!(!ds.is_attached());
    let f = ds.features.read().unwrap();
    let f = f.as_slice().unwrap();
    assert!(
        f.iter().all(|v| (0.0..=1.0).contains(v)),
        "pixels in [0, 1]"
    );
    assert!(
        f.contains(&1.0) && f.contains(&0.0),
        "the full pixel range is used"
    );
    let l = ds.labels.to_vec().unwrap();
    let mut counts = [0; 10];
    for row in l.chunks(10) {
        assert_eq!(row.iter().sum::<f32>(), 1.0, "one-hot");
        assert!(row.iter().all(|&v| v == 0.0 || v == 1.0), "one-hot");
        counts[row.iter().position(|&v| v == 1.0).unwrap()] += 1;
    }
    counts
}

#[test]
fn bundled_split() {
    let (train, test) = fashion_mnist::bundled().unwrap();
    let train_counts = check(&train, 8000);
    let test_counts = check(&test, 2000);
    // t10k is balanced (1000 per class); file-order splits stay close to 800 / 200.
    for c in 0..10 {
        assert_eq!(train_counts[c] + test_counts[c], 1000, "class {c}");
        assert!((700..=900).contains(&train_counts[c]), "{train_counts:?}");
    }
    assert_eq!(fashion_mnist::CLASS_NAMES[0], "T-shirt/top");
    assert_eq!(fashion_mnist::CLASS_NAMES[9], "Ankle boot");
    // The first t10k example is an ankle boot (upstream's well-known first test image).
    assert_eq!(train.labels.get(&[0, 9]).unwrap(), 1.0);
}

#[test]
fn bundled_train_iterates_in_batches() {
    let (train, _) = fashion_mnist::bundled().unwrap();
    let mut it = InMemoryDataSetIterator::new(train, 128)
        .unwrap()
        .drop_last(true);
    assert_eq!(it.batches_per_epoch(), 62);
    assert_eq!((it.input_columns(), it.total_outcomes()), (784, 10));
    let mut n = 0;
    while let Some(b) = it.next() {
        n += b.unwrap().num_examples();
    }
    assert_eq!(n, 62 * 128);
}

#[test]
fn load_dir_full_set_when_installed() {
    let Some(dir) = fashion_mnist::default_location() else {
        println!(
            "note: {} not installed (apt-get install dataset-fashion-mnist); skipping the full-set test",
            fashion_mnist::DEBIAN_LOCATION
        );
        return;
    };
    let (train, test) = fashion_mnist::load_dir(&dir).unwrap();
    let train_counts = check(&train, 60000);
    assert_eq!(train_counts, [6000; 10], "the train split is balanced");
    assert_eq!(check(&test, 10000), [1000; 10]);
    // The bundled data is the installed t10k split.
    let (btrain, btest) = fashion_mnist::bundled().unwrap();
    let merged = DataSet::merge(&[btrain, btest]).unwrap();
    assert_eq!(
        merged.features.to_vec().unwrap(),
        test.features.to_vec().unwrap()
    );
    assert_eq!(
        merged.labels.to_vec().unwrap(),
        test.labels.to_vec().unwrap()
    );
    let (t2, _) = fashion_mnist::load().unwrap();
    assert_eq!(t2.num_examples(), 60000);
}

#[test]
fn load_dir_uncompressed_files_and_missing_files() {
    let dir = common::TempDir::new("fm-dir");
    assert!(!fashion_mnist::has_all_files(&dir.0));
    let e = fashion_mnist::load_dir(&dir.0).unwrap_err();
    let want = dir.0.join("train-images-idx3-ubyte.gz");
    assert!(
        matches!(e, DataError::Io { ref path, .. } if *path == want),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cannot read: no such file (nor an uncompressed train-images-idx3-ubyte)",
            want.display()
        )
    );

    // A tiny stand-in set: uncompressed train files, gzipped t10k files.
    use dl4rs_data::idx::{IdxImages, IdxLabels};
    let imgs = |n: usize| {
        IdxImages::new("i", n, 28, 28, vec![255; n * 784])
            .unwrap()
            .to_idx_bytes()
    };
    let labs =
        |n: usize| IdxLabels::new("l", (0..n).map(|i| (i % 10) as u8).collect()).to_idx_bytes();
    dir.write("train-images-idx3-ubyte", &imgs(6));
    dir.write("train-labels-idx1-ubyte", &labs(6));
    dir.write("t10k-images-idx3-ubyte.gz", &common::gzip(&imgs(3)));
    assert!(!fashion_mnist::has_all_files(&dir.0));
    dir.write("t10k-labels-idx1-ubyte.gz", &common::gzip(&labs(4)));
    assert!(fashion_mnist::has_all_files(&dir.0));
    let e = fashion_mnist::load_dir(&dir.0).unwrap_err().to_string();
    assert!(e.contains("3 images but 4 labels"), "{e}");
    dir.write("t10k-labels-idx1-ubyte.gz", &common::gzip(&labs(3)));
    let (train, test) = fashion_mnist::load_dir(&dir.0).unwrap();
    assert_eq!((train.num_examples(), test.num_examples()), (6, 3));
    assert_eq!(train.features.get(&[5, 783]).unwrap(), 1.0);
    assert_eq!(train.labels.get(&[5, 5]).unwrap(), 1.0);
}
