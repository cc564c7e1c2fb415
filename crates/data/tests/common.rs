//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

use dl4rs_array::NdArray;
use dl4rs_data::DataSet;

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("dl4rs-data-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// `n` examples: features row i = [i*10, i*10+1, i*10+2], labels row i = [i, -i] (heap).
pub fn numbered(n: usize) -> DataSet {
    let f: Vec<f32> = (0..n * 3).map(|k| ((k / 3) * 10 + k % 3) as f32).collect();
    let l: Vec<f32> = (0..n).flat_map(|i| [i as f32, -(i as f32)]).collect();
    DataSet::new(
        NdArray::from_slice_detached(&[n, 3], &f).unwrap(),
        NdArray::from_slice_detached(&[n, 2], &l).unwrap(),
    )
    .unwrap()
}

/// The example ids of a `numbered` data set (or batch), checking features and labels agree.
pub fn ids(ds: &DataSet) -> Vec<usize> {
    let f = ds.features.to_vec().unwrap();
    let l = ds.labels.to_vec().unwrap();
    f.chunks(3)
        .zip(l.chunks(2))
        .map(|(row, lab)| {
            let id = row[0] as usize / 10;
            assert_eq!(
                row,
                [
                    id as f32 * 10.0,
                    id as f32 * 10.0 + 1.0,
                    id as f32 * 10.0 + 2.0
                ]
            );
            assert_eq!(lab, [id as f32, -(id as f32)], "labels follow features");
            id
        })
        .collect()
}
