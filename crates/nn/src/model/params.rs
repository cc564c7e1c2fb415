//! The flat parameter store every network shares: parameters, gradients and updater state are
//! each one contiguous heap array, laid out layer by layer (within a layer in its
//! `ParamSpec` order); layers see their slices as views. One updater pass covers the whole
//! array, with a segment per parameter so weights and biases get their own regularization.

use std::ops::Range;

use dl4rs_array::{ArrayView, DataType, NdArray};

use crate::conf::GlobalConf;
use crate::error::NnError;
use crate::layers::ParamSpec;
use crate::updater::{self, Segment};

/// One named parameter array in the flat store (for model files and summaries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamEntry {
    /// DL4J's key: `"{layer}_{param}"`, e.g. `"0_W"` or `"dense1_b"`.
    pub key: String,
    /// The parameter's natural shape.
    pub shape: Vec<usize>,
    /// Where it lives in the flat array.
    pub range: Range<usize>,
}

pub(crate) struct ParamStore<T: DataType> {
    pub params: NdArray<T>,
    pub grads: NdArray<T>,
    pub updater_state: NdArray<T>,
    segments: Vec<Segment>,
    entries: Vec<ParamEntry>,
}

impl<T: DataType> ParamStore<T> {
    /// A store for `layers` (`(key prefix, specs)` each, in order); returns it and each
    /// layer's range.
    pub fn new(
        layers: &[(String, Vec<ParamSpec>)],
        global: &GlobalConf,
    ) -> Result<(Self, Vec<Range<usize>>), NnError> {
        let mut segments = Vec::new();
        let mut entries = Vec::new();
        let mut ranges = Vec::with_capacity(layers.len());
        let mut at = 0;
        for (prefix, specs) in layers {
            let start = at;
            for spec in specs {
                let len = spec.len();
                segments.push(Segment {
                    range: at..at + len,
                    regularize: spec.regularize,
                });
                entries.push(ParamEntry {
                    key: format!("{prefix}_{}", spec.key),
                    shape: spec.shape.clone(),
                    range: at..at + len,
                });
                at += len;
            }
            ranges.push(start..at);
        }
        let store = ParamStore {
            params: NdArray::zeros_detached(&[at])?,
            grads: NdArray::zeros_detached(&[at])?,
            updater_state: NdArray::zeros_detached(&[at * global.updater.state_per_param()])?,
            segments,
            entries,
        };
        Ok((store, ranges))
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn entries(&self) -> &[ParamEntry] {
        &self.entries
    }

    /// Copies `src` (any shape with the right number of values) into the parameters or the
    /// updater state.
    pub fn copy_flat(&mut self, src: &ArrayView<'_, T>, params: bool) -> Result<(), NnError> {
        let target = if params {
            &mut self.params
        } else {
            &mut self.updater_state
        };
        let n: usize = src.shape().iter().product();
        if n != target.len() {
            return Err(NnError::Input(format!(
                "expected {} {}, found {n} (shape {:?})",
                target.len(),
                if params {
                    "parameters"
                } else {
                    "updater state values"
                },
                src.shape()
            )));
        }
        // A contiguous source is copied as it is: a `dup` first would put a fresh heap array
        // of the network's size (page faults and all) on every call, as ParallelWrapper's
        // copy of replica 0 into the model at the end of every `fit`.
        match src.reshape(&[n]) {
            Ok(flat) => target.assign(&flat)?,
            Err(_) => target.assign(&src.dup()?.reshape(&[n])?)?,
        }
        Ok(())
    }

    /// `l1 Σ|w| + l2/2 Σw²` over the regularized parameters.
    pub fn regularization_score(&self, global: &GlobalConf) -> Result<f64, NnError> {
        let r = global.regularization;
        if r.l1 == 0.0 && r.l2 == 0.0 {
            return Ok(0.0);
        }
        let p = self.params.read()?;
        let p = p.as_slice().unwrap_or_default();
        let (mut l1, mut l2) = (0.0, 0.0);
        for seg in self.segments.iter().filter(|s| s.regularize) {
            for &w in &p[seg.range.clone()] {
                let w = w.to_f64();
                l1 += w.abs();
                l2 += w * w;
            }
        }
        Ok(r.l1 * l1 + 0.5 * r.l2 * l2)
    }

    /// One updater step over the whole array (`iteration` 0-based).
    pub fn apply_updater(&mut self, global: &GlobalConf, iteration: u64) -> Result<(), NnError> {
        let n = self.params.len();
        self.apply_updater_part(global, iteration, 0..n)
    }

    /// The mean of several updater steps on `part`, one per gradient, from the current
    /// parameters and state (`updater::apply_averaged_part`).
    pub fn apply_averaged_updater_part(
        &mut self,
        global: &GlobalConf,
        iteration: u64,
        part: std::ops::Range<usize>,
        averaged: (usize, Option<usize>, &[T], T),
    ) -> Result<(), NnError> {
        let mut pw = self.params.write()?;
        let gr = self.grads.read()?;
        let mut sw = self.updater_state.write()?;
        updater::apply_averaged_part(
            &global.updater,
            &global.regularization,
            pw.as_slice_mut().unwrap_or_default(),
            gr.as_slice().unwrap_or_default(),
            sw.as_slice_mut().unwrap_or_default(),
            &self.segments,
            iteration,
            part,
            averaged,
        )?;
        Ok(())
    }

    /// One updater step over the elements `part` of the flat arrays only.
    pub fn apply_updater_part(
        &mut self,
        global: &GlobalConf,
        iteration: u64,
        part: std::ops::Range<usize>,
    ) -> Result<(), NnError> {
        let mut pw = self.params.write()?;
        let mut gw = self.grads.write()?;
        let mut sw = self.updater_state.write()?;
        updater::apply_part(
            &global.updater,
            &global.regularization,
            pw.as_slice_mut().unwrap_or_default(),
            gw.as_slice_mut().unwrap_or_default(),
            sw.as_slice_mut().unwrap_or_default(),
            &self.segments,
            iteration,
            part,
        )?;
        Ok(())
    }
}
