//! DL4J's `LastTimeStep` wrapper: runs a recurrent layer and keeps, for each example, its
//! output at the last time step whose feature mask is nonzero (the last step when there is no
//! mask; step 0 when every step is masked), `[batch, size, time]` → `[batch, size]`. The
//! output has no mask. Backward puts the gradient at those steps (0 elsewhere) and runs the
//! wrapped layer's backward pass.
//!
//! The wrapped layer's cache is the wrapper's cache. Its own output is not kept: the recurrent
//! layers read their states from the cache in backward, never `Saved::output`, so the wrapper
//! hands them its own (`[batch, size]`) output there.

use dl4rs_array::{ArrayView, ArrayViewMut, AsView, AsViewMut, DataType, NdArray};

use super::{check_mask, dims3};
use crate::error::NnError;
use crate::input_type::InputType;
use crate::layers::{
    ACT, Epsilon, Forward, Layer, LayerInfo, LayerInput, MaskOut, RnnStateSlot, Saved, StepContext,
};
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// The last unmasked step of a recurrent layer's output.
pub struct LastTimeStepLayer<T: DataType> {
    info: LayerInfo,
    inner: Box<dyn Layer<T>>,
}

impl<T: DataType> LastTimeStepLayer<T> {
    /// Wraps `inner` (a recurrent layer: sequences in and out).
    pub fn new(name: Option<String>, inner: Box<dyn Layer<T>>) -> Result<Self, NnError> {
        let i = inner.info();
        let size = match i.output_type {
            InputType::Recurrent { size, .. } => size,
            other => {
                return Err(NnError::config(format!(
                    "LastTimeStep wraps a recurrent layer, but {} outputs {other}",
                    i.kind
                )));
            }
        };
        let info = LayerInfo::new("LastTimeStep", i.input_type, InputType::feed_forward(size))
            .named(name.or_else(|| i.name.clone()))
            .with_params(i.params.clone());
        Ok(LastTimeStepLayer { info, inner })
    }
}

/// The step each example's output is taken from.
pub(crate) fn last_steps<T: DataType>(
    mask: Option<&ArrayView<'_, T>>,
    b: usize,
    t: usize,
    mut f: impl FnMut(usize, usize) -> Result<(), NnError>,
) -> Result<(), NnError> {
    let read = match mask {
        Some(m) => Some(m.read()?),
        None => None,
    };
    for r in 0..b {
        let s = match &read {
            Some(m) => (0..t)
                .rev()
                .find(|&s| m.get(&[r, s]).is_ok_and(|v| v != T::ZERO))
                .unwrap_or(0),
            None => t.saturating_sub(1),
        };
        f(r, s)?;
    }
    Ok(())
}

impl<T: DataType> Layer<T> for LastTimeStepLayer<T> {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, params: &mut [T], seed: u64) {
        self.inner.init_params(params, seed);
    }

    fn rnn_state(&self, slot: RnnStateSlot) -> Vec<(&'static str, ArrayView<'_, T>)> {
        self.inner.rnn_state(slot)
    }

    fn rnn_set_state(
        &mut self,
        slot: RnnStateSlot,
        key: &str,
        value: &ArrayView<'_, T>,
    ) -> Result<(), NnError> {
        self.inner.rnn_set_state(slot, key, value)
    }

    fn rnn_clear_state(&mut self) {
        self.inner.rnn_clear_state();
    }

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        let x = input.activations;
        check_mask(
            ctx,
            "LastTimeStep",
            self.info.name.as_deref(),
            input.mask.as_ref(),
            &x,
        )?;
        let f = self.inner.forward(input, params, ctx, mgr)?;
        let seq = f.activations.view();
        let (b, n, t) = dims3(&seq);
        let mut out = mgr.create_uninitialized::<T>(ACT, &[b, n])?;
        last_steps(input.mask.as_ref(), b, t, |r, s| {
            let src = seq.index_axis(0, r)?.index_axis(1, s)?;
            out.view_mut().index_axis(0, r)?.assign(&src)?;
            Ok(())
        })?;
        Ok(Forward {
            activations: out,
            cache: f.cache,
            mask: MaskOut::Cleared,
        })
    }

    fn backward(
        &self,
        saved: &Saved<'_, T>,
        epsilon: Epsilon<'_, T>,
        params: &ArrayView<'_, T>,
        grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError> {
        let eps = epsilon.gradient(self.info.kind)?;
        let (b, _, t) = dims3(&saved.input);
        let n = eps.shape().get(1).copied().unwrap_or(0);
        let mut eps_seq = mgr.create::<T>(ArrayType::BpWorkingMem, &[b, n, t])?;
        last_steps(saved.mask.as_ref(), b, t, |r, s| {
            let src = eps.index_axis(0, r)?;
            eps_seq
                .view_mut()
                .index_axis(0, r)?
                .index_axis(1, s)?
                .assign(&src)?;
            Ok(())
        })?;
        self.inner.backward(
            saved,
            Epsilon::Gradient(eps_seq.view()),
            params,
            grads,
            ctx,
            mgr,
        )
    }
}
