//! Inverted dropout. The keep mask is a pure function of (seed, iteration, layer, element)
//! through the counter generator, so backprop regenerates it instead of storing it: nothing is
//! kept between the passes and nothing is allocated.

use dl4rs_array::random::splitmix;
use dl4rs_array::{ArrayView, ArrayViewMut, DataType, NdArray};

use super::{ACT, Epsilon, Forward, GRAD, Layer, LayerInfo, LayerInput, Saved, StepContext};
use crate::error::NnError;
use crate::input_type::InputType;
use crate::workspace_mgr::LayerWorkspaceMgr;

/// Inverted dropout: keeps each input with probability `p` and scales it by `1/p` in
/// training; the identity in inference. Any input shape.
pub struct DropoutLayer {
    info: LayerInfo,
    p: f64,
}

impl DropoutLayer {
    /// Over inputs of `input_type`, retain probability `p` in (0, 1].
    pub fn new(name: Option<String>, input_type: InputType, p: f64) -> Self {
        DropoutLayer {
            info: LayerInfo::new("DropoutLayer", input_type, input_type).named(name),
            p,
        }
    }

    fn stream(ctx: &StepContext) -> u64 {
        splitmix(
            ctx.seed ^ 0xD5A6_1E0F,
            (ctx.iteration << 16) ^ ctx.index as u64,
        )
    }

    /// `data[i] *= mask_i / p`.
    fn apply<T: DataType>(&self, out: &mut NdArray<T>, stream: u64) -> Result<(), NnError> {
        let mut w = out.write()?;
        let data = w
            .as_slice_mut()
            .ok_or_else(|| NnError::Input("dropout arrays must be contiguous".into()))?;
        let threshold = (self.p * (1u64 << 53) as f64) as u64;
        let scale = T::from_f64(1.0 / self.p);
        for (i, v) in data.iter_mut().enumerate() {
            let keep = (splitmix(stream, i as u64) >> 11) < threshold;
            *v = if keep { *v * scale } else { T::ZERO };
        }
        Ok(())
    }
}

impl<T: DataType> Layer<T> for DropoutLayer {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, _params: &mut [T], _seed: u64) {}

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        _params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        let mut out = mgr.dup(ACT, &input.activations)?;
        if ctx.training && self.p < 1.0 {
            self.apply(&mut out, Self::stream(ctx))?;
        }
        Ok(Forward::new(out))
    }

    fn backward(
        &self,
        _saved: &Saved<'_, T>,
        epsilon: Epsilon<'_, T>,
        _params: &ArrayView<'_, T>,
        _grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError> {
        let eps = epsilon.gradient(self.info.kind)?;
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        let mut out = mgr.dup(GRAD, &eps)?;
        if self.p < 1.0 {
            self.apply(&mut out, Self::stream(ctx))?;
        }
        Ok(Some(out))
    }
}
