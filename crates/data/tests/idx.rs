//! IDX reader: round trips (raw and gzipped, from files and from bytes) and every bad-input
//! case, with its message.

mod common;

use common::{TempDir, gzip};
use dl4rs_data::DataError;
use dl4rs_data::idx::{self, IdxImages, IdxLabels};

fn sample() -> (IdxImages, IdxLabels) {
    let (count, rows, cols) = (5, 3, 4);
    let pixels: Vec<u8> = (0..count * rows * cols)
        .map(|i| (i * 37 % 256) as u8)
        .collect();
    let images = IdxImages::new("imgs", count, rows, cols, pixels).unwrap();
    let labels = IdxLabels::new("labs", vec![0, 9, 3, 3, 7]);
    (images, labels)
}

#[test]
fn round_trip_raw_and_gzipped_files() {
    let dir = TempDir::new("idx-roundtrip");
    let (images, labels) = sample();
    for gz in [false, true] {
        let enc = |b: Vec<u8>| if gz { gzip(&b) } else { b };
        // The name doesn't matter: gzip is detected from the content.
        let ip = dir.write(&format!("images-{gz}"), &enc(images.to_idx_bytes()));
        let lp = dir.write(&format!("labels-{gz}"), &enc(labels.to_idx_bytes()));
        let back = idx::read_images(&ip).unwrap();
        assert_eq!(
            (back.count, back.rows, back.cols, &back.pixels),
            (5, 3, 4, &images.pixels)
        );
        assert_eq!(back.name, ip.display().to_string());
        assert_eq!(idx::read_labels(&lp).unwrap().labels, labels.labels);
        assert_eq!(back.image(1).unwrap(), &images.pixels[12..24]);
        assert!(back.image(5).is_none());
    }
}

#[test]
fn round_trip_from_bytes_and_to_dataset() {
    let (images, labels) = sample();
    let i2 = idx::read_images_from(&gzip(&images.to_idx_bytes()), "imgs").unwrap();
    let l2 = idx::read_labels_from(&labels.to_idx_bytes(), "labs").unwrap();
    assert_eq!((&i2, &l2), (&images, &labels));

    let ds = idx::to_dataset::<f32>(&i2, &l2, 10).unwrap();
    assert_eq!(ds.features.shape(), &[5, 12]);
    assert_eq!(ds.labels.shape(), &[5, 10]);
    assert!(!ds.is_attached());
    let f = ds.features.to_vec().unwrap();
    for (v, &p) in f.iter().zip(&images.pixels) {
        assert_eq!(*v, p as f32 / 255.0);
    }
    let l = ds.labels.to_vec().unwrap();
    for (row, &lab) in l.chunks(10).zip(&labels.labels) {
        for (c, &v) in row.iter().enumerate() {
            assert_eq!(v, if c == usize::from(lab) { 1.0 } else { 0.0 });
        }
    }
    let ds64 = idx::to_dataset_range::<f64>(&i2, &l2, 10, 1..3).unwrap();
    assert_eq!(ds64.features.shape(), &[2, 12]);
    assert_eq!(
        ds64.features.get(&[0, 0]).unwrap(),
        images.pixels[12] as f64 / 255.0
    );
}

#[test]
fn empty_files_round_trip() {
    let images = IdxImages::new("e", 0, 28, 28, vec![]).unwrap();
    let back = idx::read_images_from(&images.to_idx_bytes(), "e").unwrap();
    assert_eq!(back.count, 0);
    let ds = idx::to_dataset::<f32>(&back, &IdxLabels::new("l", vec![]), 10).unwrap();
    assert_eq!(ds.num_examples(), 0);
}

fn msg(e: DataError) -> String {
    e.to_string()
}

#[test]
fn missing_file_names_the_path() {
    let dir = TempDir::new("idx-missing");
    let p = dir.0.join("nope-images.gz");
    let e = idx::read_images(&p).unwrap_err();
    assert!(matches!(e, DataError::Io { ref path, .. } if *path == p));
    let m = msg(e);
    assert!(
        m.starts_with(&format!("{}: cannot read: ", p.display())),
        "{m}"
    );
    let e = idx::read_labels(dir.0.join("nope-labels")).unwrap_err();
    assert!(msg(e).contains("nope-labels"));
}

#[test]
fn wrong_magic() {
    let (images, labels) = sample();
    assert_eq!(
        msg(
            idx::read_images_from(&labels.to_idx_bytes(), "t10k-images-idx3-ubyte.gz").unwrap_err()
        ),
        "t10k-images-idx3-ubyte.gz: not an IDX image file: magic number 0x00000801, expected \
         0x00000803 (this is an IDX label file)"
    );
    assert_eq!(
        msg(idx::read_labels_from(&gzip(&images.to_idx_bytes()), "labels.gz").unwrap_err()),
        "labels.gz: not an IDX label file: magic number 0x00000803, expected 0x00000801 \
         (this is an IDX image file)"
    );
    assert_eq!(
        msg(idx::read_images_from(b"PK\x03\x04 zip file", "x.zip").unwrap_err()),
        "x.zip: not an IDX image file: magic number 0x504b0304, expected 0x00000803"
    );
}

#[test]
fn truncated_header_and_data() {
    let (images, labels) = sample();
    let bytes = images.to_idx_bytes();
    assert_eq!(
        msg(idx::read_images_from(&bytes[..10], "img").unwrap_err()),
        "img: truncated header: expected 16 bytes, found 10"
    );
    assert_eq!(
        msg(idx::read_images_from(&[], "img").unwrap_err()),
        "img: truncated header: expected 16 bytes for an IDX image file, found 0"
    );
    assert_eq!(
        msg(idx::read_images_from(&bytes[..bytes.len() - 7], "img").unwrap_err()),
        "img: truncated data: expected 60 bytes of pixel data for 5 images of 3x4, found 53"
    );
    // Truncation inside the gzip stream is also reported, naming the file.
    let gz = gzip(&bytes);
    let m = msg(idx::read_images_from(&gz[..gz.len() / 2], "img.gz").unwrap_err());
    assert!(
        m.starts_with("img.gz: corrupt or truncated gzip data: "),
        "{m}"
    );
    let lb = labels.to_idx_bytes();
    assert_eq!(
        msg(idx::read_labels_from(&lb[..lb.len() - 1], "lab").unwrap_err()),
        "lab: truncated data: expected 5 bytes of 5 labels, found 4"
    );
    let mut long = lb.clone();
    long.extend_from_slice(&[1, 2]);
    assert_eq!(
        msg(idx::read_labels_from(&long, "lab").unwrap_err()),
        "lab: expected 5 bytes of 5 labels after the header, found 7 (2 extra)"
    );
}

#[test]
fn huge_dimensions_are_an_error_not_an_allocation() {
    let mut bytes = idx::IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [u32::MAX, u32::MAX, u32::MAX] {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    let m = msg(idx::read_images_from(&bytes, "big").unwrap_err());
    assert!(m.starts_with("big: "), "{m}");
}

#[test]
fn count_mismatch_between_images_and_labels() {
    let (images, _) = sample();
    let labels = IdxLabels::new("t10k-labels", vec![1, 2, 3, 4]);
    assert_eq!(
        msg(idx::to_dataset::<f32>(&images, &labels, 10).unwrap_err()),
        "imgs and t10k-labels: 5 images but 4 labels: expected one label per image"
    );
}

#[test]
fn label_out_of_range() {
    let (images, _) = sample();
    let labels = IdxLabels::new("labs", vec![0, 1, 2, 12, 3]);
    assert_eq!(
        msg(idx::to_dataset::<f32>(&images, &labels, 10).unwrap_err()),
        "labs: label 12 at index 3 is out of range for 10 classes (expected 0..=9)"
    );
    assert!(
        msg(idx::to_dataset::<f32>(&images, &labels, 0).unwrap_err())
            .contains("expected 1 to 256 classes")
    );
}

#[test]
fn bad_constructor_and_range_arguments() {
    let m = msg(IdxImages::new("x", 2, 2, 2, vec![0; 7]).unwrap_err());
    assert_eq!(
        m,
        "IdxImages::new: x: 2 images of 2x2 need 8 pixels, found 7"
    );
    let (images, labels) = sample();
    let m = msg(idx::to_dataset_range::<f32>(&images, &labels, 10, 3..9).unwrap_err());
    assert_eq!(
        m,
        "idx::to_dataset: example range 3..9 is out of bounds for 5 examples"
    );
}

#[test]
fn load_reads_a_pair_of_files() {
    let dir = TempDir::new("idx-load");
    let (images, labels) = sample();
    let ip = dir.write("i.gz", &gzip(&images.to_idx_bytes()));
    let lp = dir.write("l", &labels.to_idx_bytes());
    let ds = idx::load::<f32>(&ip, &lp, 10).unwrap();
    assert_eq!(ds.num_examples(), 5);
    let e = idx::load::<f32>(&lp, &ip, 10).unwrap_err();
    assert!(msg(e).contains("not an IDX image file"));
}

#[test]
fn replaced_fields_are_rechecked_not_a_panic() {
    let (mut images, labels) = sample();
    images.pixels.truncate(10);
    assert!(images.image(3).is_none());
    assert_eq!(
        msg(idx::to_dataset::<f32>(&images, &labels, 10).unwrap_err()),
        "idx::to_dataset: imgs: 5 images of 3x4 need 60 pixels, found 10"
    );
}
