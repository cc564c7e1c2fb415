//! A numbered multi-input/-output test source for the async multi iterator tests (included with
//! `mod async_multi_common;`).
//!
//! Batch `k` of epoch `e` has `sizes[k]` rows and two feature arrays, two label arrays of
//! different widths, and two masks, each value saying which batch, epoch and element it is:
//! - `features[0]` `[r, 3]`: `k * 1000 + i`; its mask `[r, 3]`: `(k + i) % 2`;
//! - `features[1]` `[r, 5]`: `-(k * 1000 + i)`; no mask;
//! - `labels[0]` `[r, 2]`: each row `[e, k]`; no mask;
//! - `labels[1]` `[r, 1]`: `k * 100 + row`; its mask `[r, 1]`: `e + k`.
//!
//! The source can fail or panic at a given batch, sleep in `next()`, and holds a probe `Arc`
//! so a test can see when it was dropped.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use dl4rs_array::{ArrayError, NdArray};
use dl4rs_data::{DataError, MultiDataSet, MultiDataSetIterator};

pub struct MultiSeqSource {
    pub sizes: Vec<usize>,
    pub cursor: usize,
    pub epoch: u64,
    pub fail_at: Option<usize>,
    pub panic_at: Option<usize>,
    pub delay: Option<Duration>,
    pub probe: Arc<()>,
    pub resettable: bool,
}

impl MultiSeqSource {
    pub fn new(sizes: Vec<usize>) -> Self {
        MultiSeqSource {
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

    pub fn boxed(self) -> Box<dyn MultiDataSetIterator + Send> {
        Box::new(self)
    }
}

fn filled(shape: &[usize], f: impl Fn(usize) -> f32) -> Result<NdArray<f32>, ArrayError> {
    let mut a = NdArray::<f32>::zeros(shape)?;
    {
        let mut w = a.write()?;
        let s = w.as_slice_mut().expect("fresh arrays are contiguous");
        for (i, v) in s.iter_mut().enumerate() {
            *v = f(i);
        }
    }
    Ok(a)
}

/// Builds batch `k` of `epoch` with `rows` rows in the current workspace.
pub fn make_batch(epoch: u64, k: usize, rows: usize) -> Result<MultiDataSet, DataError> {
    let e = epoch as f32;
    let f0 = filled(&[rows, 3], |i| (k * 1000 + i) as f32)?;
    let m0 = filled(&[rows, 3], |i| ((k + i) % 2) as f32)?;
    let f1 = filled(&[rows, 5], |i| -((k * 1000 + i) as f32))?;
    let l0 = filled(&[rows, 2], |i| if i % 2 == 0 { e } else { k as f32 })?;
    let l1 = filled(&[rows, 1], |r| (k * 100 + r) as f32)?;
    let lm1 = filled(&[rows, 1], |_| e + k as f32)?;
    MultiDataSet::new(vec![f0, f1], vec![l0, l1])?
        .with_masks(vec![Some(m0), None], vec![None, Some(lm1)])
}

fn check(
    a: &NdArray<f32>,
    shape: &[usize],
    what: &str,
    f: impl Fn(usize) -> f32,
) -> Result<(), ArrayError> {
    assert_eq!(a.shape(), shape, "{what}");
    let r = a.read()?;
    let s = r.as_slice().expect("contiguous");
    for (i, &v) in s.iter().enumerate() {
        assert_eq!(v, f(i), "{what}: element {i}");
    }
    Ok(())
}

/// Checks every value of batch `k` of `epoch` with `rows` rows. `Err` only when the batch
/// can't be read (a workspace error); wrong values panic.
pub fn check_batch(m: &MultiDataSet, epoch: u64, k: usize, rows: usize) -> Result<(), ArrayError> {
    let at = format!("batch {k} of epoch {epoch}");
    assert_eq!(m.features.len(), 2, "{at}");
    assert_eq!(m.labels.len(), 2, "{at}");
    assert!(
        m.features_masks[1].is_none() && m.labels_masks[0].is_none(),
        "{at}"
    );
    let e = epoch as f32;
    check(
        &m.features[0],
        &[rows, 3],
        &format!("features[0], {at}"),
        |i| (k * 1000 + i) as f32,
    )?;
    check(
        &m.features[1],
        &[rows, 5],
        &format!("features[1], {at}"),
        |i| -((k * 1000 + i) as f32),
    )?;
    let m0 = m.features_masks[0].as_ref().expect("features mask 0");
    check(m0, &[rows, 3], &format!("features_masks[0], {at}"), |i| {
        ((k + i) % 2) as f32
    })?;
    check(&m.labels[0], &[rows, 2], &format!("labels[0], {at}"), |i| {
        if i % 2 == 0 { e } else { k as f32 }
    })?;
    check(&m.labels[1], &[rows, 1], &format!("labels[1], {at}"), |r| {
        (k * 100 + r) as f32
    })?;
    let lm1 = m.labels_masks[1].as_ref().expect("labels mask 1");
    check(lm1, &[rows, 1], &format!("labels_masks[1], {at}"), |_| {
        e + k as f32
    })?;
    Ok(())
}

impl MultiDataSetIterator for MultiSeqSource {
    fn next(&mut self) -> Option<Result<MultiDataSet, DataError>> {
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
                op: "MultiSeqSource::next",
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

    fn total_examples(&self) -> Option<usize> {
        Some(self.sizes.iter().sum())
    }
}
