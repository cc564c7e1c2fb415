//! Parameterless layers: an activation layer, and a loss layer (activation + loss). Their
//! pre-activation is their input, so they keep nothing between forward and backward.

use dl4rs_array::{ArrayView, ArrayViewMut, DataType, NdArray};

use super::{
    ACT, Epsilon, GRAD, Layer, ParamSpec, StepContext, check_input, expect_gradient, expect_labels,
};
use crate::activation::Activation;
use crate::error::NnError;
use crate::loss::LossFunction;
use crate::workspace_mgr::LayerWorkspaceMgr;

/// Applies an activation function.
pub struct ActivationLayer {
    name: Option<String>,
    n: usize,
    activation: Activation,
}

impl ActivationLayer {
    /// A layer of width `n`.
    pub fn new(name: Option<String>, n: usize, activation: Activation) -> Self {
        ActivationLayer {
            name,
            n,
            activation,
        }
    }
}

fn forward<T: DataType>(
    layer: &dyn Layer<T>,
    activation: Activation,
    input: &ArrayView<'_, T>,
    ctx: &StepContext,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    check_input(layer, ctx.index, input, layer.n_in())?;
    let mut out = mgr.dup(ACT, input)?;
    activation.apply_in_place(&mut out)?;
    Ok(out)
}

impl<T: DataType> Layer<T> for ActivationLayer {
    fn kind(&self) -> &'static str {
        "ActivationLayer"
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
        forward(self, self.activation, input, ctx, mgr)
    }

    fn backprop_gradient(
        &mut self,
        input: &ArrayView<'_, T>,
        output: &ArrayView<'_, T>,
        epsilon: Epsilon<'_, T>,
        _params: &ArrayView<'_, T>,
        _grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError> {
        let eps = expect_gradient("ActivationLayer", epsilon)?;
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        let mut out = mgr.create_uninitialized::<T>(GRAD, input.shape())?;
        self.activation
            .backprop(Some(input), output, &eps, &mut out)?;
        Ok(Some(out))
    }
}

/// An activation followed by a loss: an output layer without parameters.
pub struct LossLayer {
    name: Option<String>,
    n: usize,
    activation: Activation,
    loss: LossFunction,
}

impl LossLayer {
    /// A loss layer of width `n`.
    pub fn new(name: Option<String>, n: usize, activation: Activation, loss: LossFunction) -> Self {
        LossLayer {
            name,
            n,
            activation,
            loss,
        }
    }
}

impl<T: DataType> Layer<T> for LossLayer {
    fn kind(&self) -> &'static str {
        "LossLayer"
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
    fn loss(&self) -> Option<LossFunction> {
        Some(self.loss)
    }

    fn activate(
        &mut self,
        input: &ArrayView<'_, T>,
        _params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<NdArray<T>, NnError> {
        forward(self, self.activation, input, ctx, mgr)
    }

    fn backprop_gradient(
        &mut self,
        input: &ArrayView<'_, T>,
        output: &ArrayView<'_, T>,
        epsilon: Epsilon<'_, T>,
        _params: &ArrayView<'_, T>,
        _grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError> {
        let labels = expect_labels("LossLayer", epsilon)?;
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        let mut out = mgr.create_uninitialized::<T>(GRAD, input.shape())?;
        self.loss
            .gradient(self.activation, &labels, Some(input), output, &mut out)?;
        Ok(Some(out))
    }
}
