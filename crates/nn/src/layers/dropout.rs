//! Inverted dropout. The keep mask is a pure function of (seed, iteration, layer, element)
//! through the counter generator, so backprop regenerates it instead of storing it: nothing is
//! kept between the passes and nothing is allocated.

use dl4rs_array::random::splitmix;
use dl4rs_array::{ArrayView, ArrayViewMut, DataType, NdArray};

use super::{ACT, Epsilon, GRAD, Layer, ParamSpec, StepContext, check_input, expect_gradient};
use crate::error::NnError;
use crate::workspace_mgr::LayerWorkspaceMgr;

/// Inverted dropout: keeps each input with probability `p` and scales it by `1/p` in
/// training; the identity in inference.
pub struct DropoutLayer {
    name: Option<String>,
    n: usize,
    p: f64,
}

impl DropoutLayer {
    /// Width `n`, retain probability `p` in (0, 1].
    pub fn new(name: Option<String>, n: usize, p: f64) -> Self {
        DropoutLayer { name, n, p }
    }

    fn stream(ctx: &StepContext) -> u64 {
        splitmix(
            ctx.seed ^ 0xD5A6_1E0F,
            (ctx.iteration << 16) ^ ctx.index as u64,
        )
    }

    /// `data[i] *= mask_i / p`.
    fn apply<T: DataType>(&self, data: &mut [T], stream: u64) {
        let threshold = (self.p * (1u64 << 53) as f64) as u64;
        let scale = T::from_f64(1.0 / self.p);
        for (i, v) in data.iter_mut().enumerate() {
            let keep = (splitmix(stream, i as u64) >> 11) < threshold;
            *v = if keep { *v * scale } else { T::ZERO };
        }
    }
}

impl<T: DataType> Layer<T> for DropoutLayer {
    fn kind(&self) -> &'static str {
        "DropoutLayer"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn n_in(&self) -> usize {
        self.n
    }
    fn n_out(&self) -> usize {
        self.n
    }
    fn param_specs(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn init_params(&self, _params: &mut [T], _seed: u64) {}

    fn activate(
        &mut self,
        input: &ArrayView<'_, T>,
        _params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<NdArray<T>, NnError> {
        check_input(self, ctx.index, input, self.n)?;
        let mut out = mgr.dup(ACT, input)?;
        if ctx.training && self.p < 1.0 {
            let mut w = out.write()?;
            let data = w
                .as_slice_mut()
                .ok_or_else(|| NnError::Input("dropout output must be contiguous".into()))?;
            self.apply(data, Self::stream(ctx));
        }
        Ok(out)
    }

    fn backprop_gradient(
        &mut self,
        _input: &ArrayView<'_, T>,
        _output: &ArrayView<'_, T>,
        epsilon: Epsilon<'_, T>,
        _params: &ArrayView<'_, T>,
        _grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError> {
        let eps = expect_gradient("DropoutLayer", epsilon)?;
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        let mut out = mgr.dup(GRAD, &eps)?;
        if self.p < 1.0 {
            let mut w = out.write()?;
            let data = w
                .as_slice_mut()
                .ok_or_else(|| NnError::Input("dropout gradient must be contiguous".into()))?;
            self.apply(data, Self::stream(ctx));
        }
        Ok(Some(out))
    }
}
