//! Parameterless layers: an activation layer (any input shape), and a loss layer (activation +
//! loss, rows). Their pre-activation is their input, so they keep nothing between the passes.

use dl4rs_array::{ArrayView, ArrayViewMut, DataType, NdArray};

use super::{ACT, Epsilon, Forward, GRAD, Layer, LayerInfo, LayerInput, Saved, StepContext};
use crate::activation::Activation;
use crate::error::NnError;
use crate::input_type::InputType;
use crate::loss::LossFunction;
use crate::workspace_mgr::LayerWorkspaceMgr;

/// Applies an activation function (element-wise, or softmax along the last axis).
pub struct ActivationLayer {
    info: LayerInfo,
    activation: Activation,
}

impl ActivationLayer {
    /// A layer over inputs of `input_type`.
    pub fn new(name: Option<String>, input_type: InputType, activation: Activation) -> Self {
        ActivationLayer {
            info: LayerInfo::new("ActivationLayer", input_type, input_type).named(name),
            activation,
        }
    }
}

fn forward<T: DataType>(
    activation: Activation,
    input: &LayerInput<'_, T>,
    mgr: &LayerWorkspaceMgr,
) -> Result<Forward<T>, NnError> {
    let x = input.activations;
    let mut out = mgr.create_uninitialized(ACT, x.shape())?;
    activation.apply_into(&x, &mut out)?;
    Ok(Forward::new(out))
}

impl<T: DataType> Layer<T> for ActivationLayer {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, _params: &mut [T], _seed: u64) {}

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        _params: &ArrayView<'_, T>,
        _ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        forward(self.activation, input, mgr)
    }

    fn backward(
        &self,
        saved: &Saved<'_, T>,
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
        let mut out = mgr.create_uninitialized::<T>(GRAD, saved.input.shape())?;
        self.activation
            .backprop(Some(&saved.input), &saved.output, &eps, &mut out)?;
        Ok(Some(out))
    }
}

/// An activation followed by a loss: an output layer without parameters.
pub struct LossLayer {
    info: LayerInfo,
    activation: Activation,
}

impl LossLayer {
    /// A loss layer over rows of width `n`.
    pub fn new(name: Option<String>, n: usize, activation: Activation, loss: LossFunction) -> Self {
        let t = InputType::feed_forward(n);
        LossLayer {
            info: LayerInfo::new("LossLayer", t, t)
                .named(name)
                .with_loss(Some(loss)),
            activation,
        }
    }
}

impl<T: DataType> Layer<T> for LossLayer {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, _params: &mut [T], _seed: u64) {}

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        _params: &ArrayView<'_, T>,
        _ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        forward(self.activation, input, mgr)
    }

    fn backward(
        &self,
        saved: &Saved<'_, T>,
        epsilon: Epsilon<'_, T>,
        _params: &ArrayView<'_, T>,
        _grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError> {
        let (labels, mask) = epsilon.labels(self.info.kind)?;
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        let mut out = mgr.create_uninitialized::<T>(GRAD, saved.input.shape())?;
        let loss = self.info.loss.unwrap_or(LossFunction::Mse);
        loss.gradient(
            self.activation,
            &labels,
            mask.as_ref(),
            Some(&saved.input),
            &saved.output,
            &mut out,
        )?;
        Ok(Some(out))
    }
}
