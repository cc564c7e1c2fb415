//! The IDX file format of MNIST and Fashion-MNIST, raw or gzipped (detected by the gzip magic
//! bytes `1f 8b`, whatever the file is called).
//!
//! An IDX file is a big-endian header, magic number `0x0000_08NN` (`08` = unsigned bytes,
//! `NN` = number of dimensions), one `u32` per dimension, then the data in row-major order.
//! Image files are `0x0000_0803` (`count x rows x cols` pixels), label files `0x0000_0801`
//! (`count` labels). Sizes in the header are never trusted: their product is checked for
//! overflow and against the data actually there (the file's length, or for a gzipped file
//! first against what a gzip stream of its size can hold, then against what it decompresses
//! to, keeping at most the claimed length), so a header claiming 2^40 pixels is an error, not
//! an allocation. Every malformed input is an error naming the file, what was expected and
//! what was found:
//!
//! ```
//! use dl4rs_data::idx;
//!
//! let labels = idx::IdxLabels::new("labels", vec![3, 1, 4]);
//! let bytes = labels.to_idx_bytes();
//! assert_eq!(idx::read_labels_from(&bytes, "labels").unwrap(), labels);
//!
//! let err = idx::read_images_from(&bytes, "t10k-images-idx3-ubyte.gz").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "t10k-images-idx3-ubyte.gz: not an IDX image file: magic number 0x00000801, expected \
//!      0x00000803 (this is an IDX label file)"
//! );
//! ```

use std::borrow::Cow;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use dl4rs_array::{DataType, NdArray};

use crate::dataset::DataSet;
use crate::error::{DataError, format_error, invalid};

/// Magic number of an IDX image file (unsigned bytes, 3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX label file (unsigned bytes, 1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The images of an IDX image file: `count` images of `rows x cols` pixels, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// The file (or buffer) name, used in error messages.
    pub name: String,
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count * rows * cols` pixels, image after image, each row-major.
    pub pixels: Vec<u8>,
}

/// The labels of an IDX label file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxLabels {
    /// The file (or buffer) name, used in error messages.
    pub name: String,
    /// One label per example.
    pub labels: Vec<u8>,
}

impl IdxImages {
    /// Images from their pixels; `pixels.len()` must be `count * rows * cols`.
    pub fn new(
        name: impl Into<String>,
        count: usize,
        rows: usize,
        cols: usize,
        pixels: Vec<u8>,
    ) -> Result<Self, DataError> {
        let name = name.into();
        let expected = checked_len(&name, &[count, rows, cols])?;
        if pixels.len() != expected {
            return Err(invalid(
                "IdxImages::new",
                format!(
                    "{name}: {count} images of {rows}x{cols} need {expected} pixels, found {}",
                    pixels.len()
                ),
            ));
        }
        Ok(IdxImages {
            name,
            count,
            rows,
            cols,
            pixels,
        })
    }

    /// Pixels per image (`rows * cols`).
    pub fn pixels_per_image(&self) -> usize {
        self.rows.saturating_mul(self.cols)
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let n = self.pixels_per_image();
        if i >= self.count {
            return None;
        }
        self.pixels
            .get(i.checked_mul(n)?..i.checked_add(1)?.checked_mul(n)?)
    }

    /// The file's bytes in IDX format (uncompressed).
    pub fn to_idx_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.pixels.len());
        out.extend_from_slice(&IMAGES_MAGIC.to_be_bytes());
        for d in [self.count, self.rows, self.cols] {
            out.extend_from_slice(&dim_u32(d).to_be_bytes());
        }
        out.extend_from_slice(&self.pixels);
        out
    }
}

impl IdxLabels {
    /// Labels with a name for error messages.
    pub fn new(name: impl Into<String>, labels: Vec<u8>) -> Self {
        IdxLabels {
            name: name.into(),
            labels,
        }
    }

    /// The file's bytes in IDX format (uncompressed).
    pub fn to_idx_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.labels.len());
        out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
        out.extend_from_slice(&dim_u32(self.labels.len()).to_be_bytes());
        out.extend_from_slice(&self.labels);
        out
    }
}

/// IDX dimensions are `u32`; larger values can't be written, so they saturate (the reader
/// then reports the length mismatch).
fn dim_u32(d: usize) -> u32 {
    u32::try_from(d).unwrap_or(u32::MAX)
}

fn checked_len(name: &str, dims: &[usize]) -> Result<usize, DataError> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format_error(name, format!("dimensions {dims:?} are too large")))
}

/// Reads an IDX image file (raw or gzipped). A missing file is an error naming its path.
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages, DataError> {
    let path = path.as_ref();
    read_images_from(&read_file(path)?, &path.display().to_string())
}

/// Parses an IDX image file's bytes (raw or gzipped); `name` is used in error messages.
pub fn read_images_from(bytes: &[u8], name: &str) -> Result<IdxImages, DataError> {
    let (bytes, extra) = decompress(bytes, name, IMAGES_MAGIC)?;
    let (dims, data) = parse(&bytes, name, IMAGES_MAGIC)?;
    let [count, rows, cols] = [dims[0], dims[1], dims[2]];
    // An image has at least one pixel. Without this a 16-byte header claiming u32::MAX images
    // of 0 x 0 passed the length check (0 bytes expected), and the count, bounded by nothing
    // in the file, sized what came next (to_dataset's labels: 4 bytes x classes per image).
    if count > 0 && (rows == 0 || cols == 0) {
        return Err(format_error(
            name,
            format!(
                "{count} images of {rows}x{cols} pixels: expected at least 1x1 pixel per image"
            ),
        ));
    }
    let expected = checked_len(name, &[count, rows, cols])?;
    check_data_len(
        name,
        expected,
        data.len().saturating_add(extra),
        &format!("pixel data for {count} images of {rows}x{cols}"),
    )?;
    Ok(IdxImages {
        name: name.to_owned(),
        count,
        rows,
        cols,
        pixels: data.to_vec(),
    })
}

/// Reads an IDX label file (raw or gzipped). A missing file is an error naming its path.
pub fn read_labels(path: impl AsRef<Path>) -> Result<IdxLabels, DataError> {
    let path = path.as_ref();
    read_labels_from(&read_file(path)?, &path.display().to_string())
}

/// Parses an IDX label file's bytes (raw or gzipped); `name` is used in error messages.
pub fn read_labels_from(bytes: &[u8], name: &str) -> Result<IdxLabels, DataError> {
    let (bytes, extra) = decompress(bytes, name, LABELS_MAGIC)?;
    let (dims, data) = parse(&bytes, name, LABELS_MAGIC)?;
    check_data_len(
        name,
        dims[0],
        data.len().saturating_add(extra),
        &format!("{} labels", dims[0]),
    )?;
    Ok(IdxLabels::new(name, data.to_vec()))
}

fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Deflate never expands data more than about 1032 times (258-byte matches coded in 2 bits);
/// a gzip stream whose IDX header claims more than this many bytes per compressed byte is lying.
const MAX_GZIP_RATIO: usize = 1032;

/// Decompresses a gzipped IDX file without trusting its header: the header is decompressed
/// first, the data length it claims is checked for overflow and against what a gzip stream of
/// this size can hold, and then at most that many bytes are kept (anything after them is only
/// counted, for the error message). A raw file is returned as is: its length is the data.
/// Returns the bytes kept and the number of bytes found after the claimed data (not kept).
fn decompress<'a>(
    bytes: &'a [u8],
    name: &str,
    magic: u32,
) -> Result<(Cow<'a, [u8]>, usize), DataError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok((Cow::Borrowed(bytes), 0));
    }
    let corrupt =
        |e: std::io::Error| format_error(name, format!("corrupt or truncated gzip data: {e}"));
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
    let header = 4 + 4 * (magic & 0xff) as usize;
    let mut out = Vec::with_capacity(header);
    (&mut decoder)
        .take(header as u64)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if out.len() < header || out[..4] != magic.to_be_bytes() {
        // Truncated or not this kind of file: `parse` reports it from these bytes.
        return Ok((Cow::Owned(out), 0));
    }
    let dims: Vec<usize> = out[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let data = checked_len(name, &dims)?;
    let most = bytes.len().saturating_mul(MAX_GZIP_RATIO);
    if data > most {
        return Err(format_error(
            name,
            format!(
                "the header claims {dims:?} = {data} bytes of data, more than a {}-byte gzip \
                 stream can hold (at most about {most} bytes): a corrupt or hostile header",
                bytes.len()
            ),
        ));
    }
    // Grow with the data actually decompressed; only a modest part of the claim is reserved.
    out.reserve(data.min(bytes.len().saturating_mul(8)));
    (&mut decoder)
        .take(data as u64)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    // Extra data after the claimed length is counted (for the error message), never kept.
    let extra = std::io::copy(&mut decoder, &mut std::io::sink()).map_err(corrupt)?;
    Ok((
        Cow::Owned(out),
        usize::try_from(extra).unwrap_or(usize::MAX),
    ))
}

/// Checks the magic number and returns the dimensions and the data after the header.
fn parse<'a>(bytes: &'a [u8], name: &str, magic: u32) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let kind = |m| match m {
        IMAGES_MAGIC => "IDX image file",
        _ => "IDX label file",
    };
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    let Some(found) = bytes.first_chunk::<4>().map(|b| u32::from_be_bytes(*b)) else {
        return Err(format_error(
            name,
            format!(
                "truncated header: expected {header} bytes for an {}, found {}",
                kind(magic),
                bytes.len()
            ),
        ));
    };
    if found != magic {
        let hint = match found {
            IMAGES_MAGIC | LABELS_MAGIC => format!(" (this is an {})", kind(found)),
            _ => String::new(),
        };
        return Err(format_error(
            name,
            format!(
                "not an {}: magic number 0x{found:08x}, expected 0x{magic:08x}{hint}",
                kind(magic)
            ),
        ));
    }
    if bytes.len() < header {
        return Err(format_error(
            name,
            format!(
                "truncated header: expected {header} bytes, found {}",
                bytes.len()
            ),
        ));
    }
    let dims = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    Ok((dims, &bytes[header..]))
}

fn check_data_len(name: &str, expected: usize, found: usize, what: &str) -> Result<(), DataError> {
    match found.cmp(&expected) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(format_error(
            name,
            format!("truncated data: expected {expected} bytes of {what}, found {found}"),
        )),
        std::cmp::Ordering::Greater => Err(format_error(
            name,
            format!(
                "expected {expected} bytes of {what} after the header, found {found} ({} extra)",
                found - expected
            ),
        )),
    }
}

/// Converts images and labels to a heap [`DataSet`]: features `[count, rows * cols]` holding
/// `pixel / 255` (computed in `T`, so in `[0, 1]`), labels `[count, num_classes]` one-hot.
/// The image and label counts must agree and every label must be below `num_classes`.
pub fn to_dataset<T: DataType>(
    images: &IdxImages,
    labels: &IdxLabels,
    num_classes: usize,
) -> Result<DataSet<T>, DataError> {
    to_dataset_range(images, labels, num_classes, 0..images.count)
}

/// As [`to_dataset`], for the examples `range` only (e.g. a train/test split of one file).
pub fn to_dataset_range<T: DataType>(
    images: &IdxImages,
    labels: &IdxLabels,
    num_classes: usize,
    range: Range<usize>,
) -> Result<DataSet<T>, DataError> {
    if images.count != labels.labels.len() {
        return Err(DataError::Mismatch {
            what: format!("{} and {}", images.name, labels.name),
            message: format!(
                "{} images but {} labels: expected one label per image",
                images.count,
                labels.labels.len()
            ),
        });
    }
    if num_classes == 0 || num_classes > 256 {
        return Err(invalid(
            "idx::to_dataset",
            format!("expected 1 to 256 classes (labels are bytes), found {num_classes}"),
        ));
    }
    if range.start > range.end || range.end > images.count {
        return Err(invalid(
            "idx::to_dataset",
            format!(
                "example range {range:?} is out of bounds for {} examples",
                images.count
            ),
        ));
    }
    if let Some((i, &bad)) = labels
        .labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= num_classes)
    {
        return Err(format_error(
            &labels.name,
            format!(
                "label {bad} at index {i} is out of range for {num_classes} classes (expected 0..={})",
                num_classes - 1
            ),
        ));
    }
    // The fields are public: re-check the pixel count before slicing by it.
    let expected = checked_len(&images.name, &[images.count, images.rows, images.cols])?;
    if images.pixels.len() != expected {
        return Err(invalid(
            "idx::to_dataset",
            format!(
                "{}: {} images of {}x{} need {expected} pixels, found {}",
                images.name,
                images.count,
                images.rows,
                images.cols,
                images.pixels.len()
            ),
        ));
    }
    let n = range.len();
    let px = images.pixels_per_image();
    let mut features = NdArray::<T>::zeros_detached(&[n, px])?;
    {
        let mut w = features.write()?;
        let dst = w.as_slice_mut().ok_or_else(fresh_not_contiguous)?;
        let scale = T::from_f64(255.0);
        let src = &images.pixels[range.start * px..range.end * px];
        for (d, &p) in dst.iter_mut().zip(src) {
            *d = T::from_f64(f64::from(p)) / scale;
        }
    }
    let mut one_hot = NdArray::<T>::zeros_detached(&[n, num_classes])?;
    {
        let mut w = one_hot.write()?;
        let dst = w.as_slice_mut().ok_or_else(fresh_not_contiguous)?;
        for (row, &l) in dst.chunks_exact_mut(num_classes).zip(&labels.labels[range]) {
            row[usize::from(l)] = T::ONE;
        }
    }
    DataSet::new(features, one_hot)
}

fn fresh_not_contiguous() -> DataError {
    invalid(
        "idx::to_dataset",
        "internal: a fresh array is not contiguous",
    )
}

/// Reads an image file and a label file and converts them with [`to_dataset`].
pub fn load<T: DataType>(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
    num_classes: usize,
) -> Result<DataSet<T>, DataError> {
    let images = read_images(images_path)?;
    let labels = read_labels(labels_path)?;
    to_dataset(&images, &labels, num_classes)
}
