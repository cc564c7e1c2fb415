//! Sizes that come from a file are never trusted (issue 15): an IDX header claiming 2^40
//! pixels, a gzipped IDX file whose header claims more than the stream can hold, a gzip stream
//! with far more data than its header says, images of zero pixels, a CSV line without end. Each is an error, and the
//! heap never grows by more than a small bound while reading it (measured with the counting
//! allocator; the tests of this file run one at a time so the peak is theirs).

mod common;

use std::io::Write;
use std::sync::Mutex;

use common::{TempDir, gzip};
use dl4rs_data::DataSetIterator;
use dl4rs_data::idx;
use dl4rs_data::records::{CsvStreamingDataSetIterator, LabelSpec, MAX_LINE_BYTES};
use dl4rs_memory::CountingAllocator;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `f` and returns its result and the peak heap growth (bytes) while it ran.
fn peak_growth<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = ALLOC.live_bytes();
    ALLOC.reset_peak();
    let r = f();
    (r, ALLOC.peak_bytes().saturating_sub(base))
}

fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b
}

const SMALL: usize = 1 << 20;

#[test]
fn idx_header_claiming_2_pow_40_pixels_is_an_error_not_an_allocation() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 2^20 images of 2^10 x 2^10 = 2^40 pixels, and 100 bytes of data.
    let mut raw = header(idx::IMAGES_MAGIC, &[1 << 20, 1 << 10, 1 << 10]);
    raw.extend_from_slice(&[0; 100]);
    let (err, grew) = peak_growth(|| idx::read_images_from(&raw, "huge").unwrap_err());
    assert_eq!(
        err.to_string(),
        "huge: truncated data: expected 1099511627776 bytes of pixel data for 1048576 images of \
         1024x1024, found 100"
    );
    assert!(grew < SMALL, "grew {grew} bytes");

    // Gzipped: rejected from the header, before decompressing the data.
    let gz = gzip(&raw);
    let (err, grew) = peak_growth(|| idx::read_images_from(&gz, "huge.gz").unwrap_err());
    let m = err.to_string();
    assert!(
        m.starts_with("huge.gz: the header claims [1048576, 1024, 1024] = 1099511627776 bytes of data, more than a"),
        "{m}"
    );
    assert!(m.contains("gzip stream can hold"), "{m}");
    assert!(grew < SMALL, "grew {grew} bytes");

    // A product that overflows usize is an error too (before any allocation).
    let raw = header(idx::IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX]);
    for bytes in [raw.clone(), gzip(&raw)] {
        let (err, grew) = peak_growth(|| idx::read_images_from(&bytes, "overflow").unwrap_err());
        assert!(err.to_string().contains("are too large"), "{err}");
        assert!(grew < SMALL);
    }
}

#[test]
fn idx_images_of_zero_pixels_are_an_error() {
    // Found by the idx fuzz target (fuzz/corpus/idx/crash-oom-*): a 16-byte header claiming
    // 0x1f080012 (520 million) images of 0 x 0x8030 pixels needs 0 bytes of data, so it was
    // accepted, and idx::to_dataset then allocated 520 million labels (2 GB for 1 class).
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for dims in [[0x1f08_0012, 0, 0x8030], [u32::MAX, 7, 0], [u32::MAX, 0, 0]] {
        let raw = header(idx::IMAGES_MAGIC, &dims);
        for bytes in [raw.clone(), gzip(&raw)] {
            let (err, grew) = peak_growth(|| idx::read_images_from(&bytes, "empty").unwrap_err());
            assert!(
                err.to_string()
                    .contains("expected at least 1x1 pixel per image"),
                "{err}"
            );
            assert!(grew < SMALL, "grew {grew} bytes");
        }
    }
    // No images of no pixels is an empty file, as before.
    let raw = header(idx::IMAGES_MAGIC, &[0, 0, 0]);
    assert_eq!(idx::read_images_from(&raw, "none").unwrap().count, 0);
}

#[test]
fn gzip_with_more_data_than_claimed_keeps_only_the_claim() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A label file claiming 10 labels followed by 32 MiB of zeros (a few KiB compressed).
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&header(idx::LABELS_MAGIC, &[10])).unwrap();
    enc.write_all(&[1; 10]).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..32 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    drop(zeros);
    assert!(bomb.len() < 200_000, "{}", bomb.len());
    let (err, grew) = peak_growth(|| idx::read_labels_from(&bomb, "bomb.gz").unwrap_err());
    assert_eq!(
        err.to_string(),
        format!(
            "bomb.gz: expected 10 bytes of 10 labels after the header, found {} ({} extra)",
            10 + (32 << 20),
            32 << 20
        )
    );
    assert!(
        grew < 4 * SMALL,
        "decompressed data was kept: grew {grew} bytes"
    );

    // The honest file still reads, gzipped or not.
    let mut ok = header(idx::LABELS_MAGIC, &[3]);
    ok.extend_from_slice(&[4, 5, 6]);
    assert_eq!(
        idx::read_labels_from(&gzip(&ok), "ok").unwrap().labels,
        [4, 5, 6]
    );
    assert_eq!(idx::read_labels_from(&ok, "ok").unwrap().labels, [4, 5, 6]);
    // Truncated gzip data and a truncated header inside gzip are still plain errors.
    let mut short = header(idx::LABELS_MAGIC, &[5]);
    short.extend_from_slice(&[1, 2]);
    assert_eq!(
        idx::read_labels_from(&gzip(&short), "short")
            .unwrap_err()
            .to_string(),
        "short: truncated data: expected 5 bytes of 5 labels, found 2"
    );
    let err = idx::read_labels_from(&gzip(&[0, 0, 8]), "tiny").unwrap_err();
    assert!(
        err.to_string().starts_with("tiny: truncated header"),
        "{err}"
    );
}

#[test]
fn csv_streaming_line_without_end_is_an_error() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("untrusted-line");
    // A valid first line, then one line longer than the limit.
    let path = dir.0.join("long.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        f.write_all(b"1,2,0\n").unwrap();
        let chunk = vec![b'7'; 1 << 20];
        for _ in 0..(MAX_LINE_BYTES >> 20) + 1 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b",1,0\n").unwrap();
    }
    let spec = LabelSpec::Classification {
        column: 2,
        num_classes: 2,
    };
    let mut it = CsvStreamingDataSetIterator::<f32>::new(&path, 0, ',', 1, spec).unwrap();
    // The line is met when the iterator reads ahead (during the first or second batch).
    let (err, grew) = peak_growth(|| {
        loop {
            match it.next() {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e,
                None => panic!("the long line was accepted"),
            }
        }
    });
    assert!(
        err.to_string().contains(
            "line 2, column 1: expected a line of at most 67108864 bytes, found a longer one"
        ),
        "{err}"
    );
    assert!(grew <= MAX_LINE_BYTES * 2 + SMALL, "grew {grew}");

    // A header line of any length is skipped without being kept.
    let path = dir.0.join("header.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let chunk = vec![b'h'; 1 << 20];
        for _ in 0..(MAX_LINE_BYTES >> 20) + 1 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\n1,2,0\n").unwrap();
    }
    let (it, grew) =
        peak_growth(|| CsvStreamingDataSetIterator::<f32>::new(&path, 1, ',', 1, spec));
    let mut it = it.unwrap();
    assert!(grew < 4 * SMALL, "the header line was kept: grew {grew}");
    assert_eq!(
        it.next().unwrap().unwrap().features.to_vec().unwrap(),
        [1.0, 2.0]
    );
}

#[test]
fn csv_streaming_batch_buffers_are_bounded_by_the_data() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("untrusted-batch");
    // 20,000 columns on one line, and a caller asking for batches of a billion rows: the
    // iterator must not reserve 20,000 x 10^9 values up front.
    let path = dir.0.join("wide.csv");
    let mut line = vec!["1"; 20_000].join(",");
    line.push_str(",0\n");
    std::fs::write(&path, &line).unwrap();
    let spec = LabelSpec::Classification {
        column: 20_000,
        num_classes: 2,
    };
    let (it, grew) =
        peak_growth(|| CsvStreamingDataSetIterator::<f32>::new(&path, 0, ',', 1_000_000_000, spec));
    let mut it = it.unwrap();
    assert!(grew < 64 * SMALL, "grew {grew}");
    let batch = it.next().unwrap().unwrap();
    assert_eq!(batch.features.shape(), &[1, 20_000]);
    // Overflowing products are an error, not a panic or an abort.
    let Err(err) = CsvStreamingDataSetIterator::<f32>::new(&path, 0, ',', usize::MAX / 2, spec)
    else {
        panic!("expected an error");
    };
    assert!(
        err.to_string().contains("overflows the address space"),
        "{err}"
    );
}
