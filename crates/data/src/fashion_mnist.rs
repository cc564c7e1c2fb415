//! Fashion-MNIST (Zalando Research, MIT licence): 28x28 grayscale images of 10 kinds of
//! clothing, a drop-in replacement for MNIST.
//!
//! - [`bundled`]: the 10,000-example t10k split embedded in the crate (`data/fashion-mnist/`
//!   at the repository root, gzipped, about 4.4 MB), split in file order into 8,000 training
//!   and 2,000 test examples. Always available, no download.
//! - [`load_dir`]: the full 60,000 + 10,000 from a directory holding the four upstream
//!   files (`.gz` or uncompressed), e.g. the Debian package `dataset-fashion-mnist`'s
//!   [`default_location`].
//!
//! Features are `[n, 784]` with `pixel / 255` in `[0, 1]`, labels `[n, 10]` one-hot, both on
//! the heap, examples in file order.
//!
//! ```
//! use dl4rs_data::fashion_mnist;
//!
//! let (train, test) = fashion_mnist::bundled().unwrap();
//! assert_eq!((train.num_examples(), test.num_examples()), (8000, 2000));
//! assert_eq!((train.num_inputs(), train.num_outcomes()), (784, 10));
//! ```

use std::path::{Path, PathBuf};

use crate::dataset::DataSet;
use crate::error::DataError;
use crate::idx;

/// The label names, indexed by class.
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Number of classes.
pub const NUM_CLASSES: usize = 10;
/// Image height and width in pixels.
pub const IMAGE_SIZE: usize = 28;
/// Feature columns per example (`28 * 28`).
pub const NUM_INPUTS: usize = IMAGE_SIZE * IMAGE_SIZE;
/// Examples of the bundled split used for training (the rest are the test set).
pub const BUNDLED_TRAIN: usize = 8000;

/// The bundled `t10k-images-idx3-ubyte.gz` (gzipped IDX).
pub const BUNDLED_IMAGES_GZ: &[u8] =
    include_bytes!("../../../data/fashion-mnist/t10k-images-idx3-ubyte.gz");
/// The bundled `t10k-labels-idx1-ubyte.gz` (gzipped IDX).
pub const BUNDLED_LABELS_GZ: &[u8] =
    include_bytes!("../../../data/fashion-mnist/t10k-labels-idx1-ubyte.gz");

/// Where Debian's `dataset-fashion-mnist` installs the files.
pub const DEBIAN_LOCATION: &str = "/usr/share/datasets/fashion-mnist";

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// The bundled data: `(train, test)` = the first 8,000 and the last 2,000 examples of the
/// t10k split, in file order.
pub fn bundled() -> Result<(DataSet, DataSet), DataError> {
    let images = idx::read_images_from(BUNDLED_IMAGES_GZ, "t10k-images-idx3-ubyte.gz")?;
    let labels = idx::read_labels_from(BUNDLED_LABELS_GZ, "t10k-labels-idx1-ubyte.gz")?;
    let n = images.count;
    let train_end = BUNDLED_TRAIN.min(n);
    Ok((
        idx::to_dataset_range(&images, &labels, NUM_CLASSES, 0..train_end)?,
        idx::to_dataset_range(&images, &labels, NUM_CLASSES, train_end..n)?,
    ))
}

/// The full set, `(train, test)` = 60,000 and 10,000 examples, from `dir` holding
/// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
/// `t10k-labels-idx1-ubyte`, each gzipped (`.gz`, preferred) or not.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<(DataSet, DataSet), DataError> {
    let dir = dir.as_ref();
    let train = idx::load(
        locate(dir, TRAIN_IMAGES)?,
        locate(dir, TRAIN_LABELS)?,
        NUM_CLASSES,
    )?;
    let test = idx::load(
        locate(dir, TEST_IMAGES)?,
        locate(dir, TEST_LABELS)?,
        NUM_CLASSES,
    )?;
    Ok((train, test))
}

/// [`DEBIAN_LOCATION`], when all four files exist there.
pub fn default_location() -> Option<PathBuf> {
    let dir = PathBuf::from(DEBIAN_LOCATION);
    has_all_files(&dir).then_some(dir)
}

/// Whether `dir` holds all four files (each `.gz` or uncompressed).
pub fn has_all_files(dir: impl AsRef<Path>) -> bool {
    let dir = dir.as_ref();
    [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]
        .iter()
        .all(|f| find(dir, f).is_ok())
}

/// The full set from [`default_location`] when installed, else the [`bundled`] split.
pub fn load() -> Result<(DataSet, DataSet), DataError> {
    match default_location() {
        Some(dir) => load_dir(dir),
        None => bundled(),
    }
}

fn locate(dir: &Path, base: &str) -> Result<PathBuf, DataError> {
    find(dir, base).map_err(|path| DataError::Io {
        path,
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no such file (nor an uncompressed {base})"),
        ),
    })
}

/// `dir/base.gz`, else `dir/base`; else the `.gz` path, for the error message.
fn find(dir: &Path, base: &str) -> Result<PathBuf, PathBuf> {
    let gz = dir.join(format!("{base}.gz"));
    let raw = dir.join(base);
    if gz.is_file() {
        Ok(gz)
    } else if raw.is_file() {
        Ok(raw)
    } else {
        Err(gz)
    }
}
