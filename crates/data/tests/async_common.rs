//! A numbered test source for the async iterator tests (included with `mod async_common;`).
//!
//! Batch `k` of epoch `e` has `sizes[k]` rows; feature `(r, c)` (3 columns) is
//! `k * 1000 + r * 3 + c` and label row `r` is `[e, k]`, so every value says which batch and
//! epoch it belongs to. The source can fail or panic at a given batch, sleep in `next()`, and
//! holds a probe `Arc` so a test can see when it was dropped.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use dl4rs_array::{ArrayError, NdArray};
use dl4rs_data::{DataError, DataSet, DataSetIterator};

pub struct SeqSource {
    pub sizes: Vec<usize>,
    pub cursor: usize,
    pub epoch: u64,
    pub fail_at: Option<usize>,
    pub panic_at: Option<usize>,
    pub delay: Option<Duration>,
    pub probe: Arc<()>,
    pub resettable: bool,
}

impl SeqSource {
    pub fn new(sizes: Vec<usize>) -> Self {
        SeqSource {
            sizes,
            cursor: 0,
            epoch: 0,
            fail_at: None,
            panic_at: None,
            delay: None,
            probe: Arc::new(()),
            resettable: true,
        }
    }

    pub fn constant(batches: usize, rows: usize) -> Self {
        Self::new(vec![rows; batches])
    }

    pub fn boxed(self) -> Box<dyn DataSetIterator + Send> {
        Box::new(self)
    }
}

/// Builds batch `k` of `epoch` with `rows` rows in the current workspace.
pub fn make_batch(epoch: u64, k: usize, rows: usize) -> Result<DataSet, DataError> {
    let mut f = NdArray::<f32>::zeros(&[rows, 3])?;
    {
        let mut w = f.write()?;
        let s = w.as_slice_mut().expect("fresh arrays are contiguous");
        for (i, v) in s.iter_mut().enumerate() {
            *v = (k * 1000 + i) as f32;
        }
    }
    let mut l = NdArray::<f32>::zeros(&[rows, 2])?;
    {
        let mut w = l.write()?;
        let s = w.as_slice_mut().expect("fresh arrays are contiguous");
        for pair in s.chunks_mut(2) {
            pair[0] = epoch as f32;
            pair[1] = k as f32;
        }
    }
    DataSet::new(f, l)
}

/// Checks every value of batch `k` of `epoch` with `rows` rows. `Err` only when the batch
/// can't be read (a workspace error); wrong values panic.
pub fn check_batch(ds: &DataSet, epoch: u64, k: usize, rows: usize) -> Result<(), ArrayError> {
    assert_eq!(ds.features.shape(), [rows, 3], "batch {k} of epoch {epoch}");
    assert_eq!(ds.labels.shape(), [rows, 2], "batch {k} of epoch {epoch}");
    {
        let r = ds.features.read()?;
        let s = r.as_slice().expect("contiguous");
        for (i, &v) in s.iter().enumerate() {
            assert_eq!(
                v,
                (k * 1000 + i) as f32,
                "feature {i} of batch {k}, epoch {epoch}"
            );
        }
    }
    let r = ds.labels.read()?;
    let s = r.as_slice().expect("contiguous");
    for pair in s.chunks(2) {
        assert_eq!(
            pair,
            [epoch as f32, k as f32],
            "labels of batch {k}, epoch {epoch}"
        );
    }
    Ok(())
}

impl DataSetIterator for SeqSource {
    fn next(&mut self) -> Option<Result<DataSet, DataError>> {
        if self.cursor >= self.sizes.len() {
            return None;
        }
        let k = self.cursor;
        self.cursor += 1;
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        if self.fail_at == Some(k) {
            return Some(Err(DataError::Invalid {
                op: "SeqSource::next",
                message: format!("planned failure at batch {k}"),
            }));
        }
        if self.panic_at == Some(k) {
            panic!("planned panic at batch {k}");
        }
        Some(make_batch(self.epoch, k, self.sizes[k]))
    }

    fn has_next(&self) -> bool {
        self.cursor < self.sizes.len()
    }

    fn reset(&mut self) -> Result<(), DataError> {
        self.cursor = 0;
        self.epoch += 1;
        Ok(())
    }

    fn reset_supported(&self) -> bool {
        self.resettable
    }

    fn async_supported(&self) -> bool {
        true
    }

    fn batch(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0)
    }

    fn total_outcomes(&self) -> usize {
        2
    }

    fn input_columns(&self) -> usize {
        3
    }

    fn total_examples(&self) -> Option<usize> {
        Some(self.sizes.iter().sum())
    }
}

/// A small seeded generator (xorshift64*), so the tests need no extra dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}
