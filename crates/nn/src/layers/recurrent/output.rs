//! Output layers for sequences: a loss at every time step. `RnnOutputLayer` is a dense layer
//! (`W` `[n_in, n_out]`, `b` `[n_out]`) applied to each step, an activation and a loss;
//! `RnnLossLayer` is the activation and the loss alone. Both work on rows
//! (`[batch * time, n]`, so softmax is over the outputs of one step) and give the network
//! `[batch, n_out, time]`.
//!
//! Normalization, as DL4J's `RnnOutputLayer`: the loss is summed over every unmasked step of
//! every example and divided by the number of examples (not of steps), so a longer sequence
//! weighs more. The mask is the label mask (`[batch, time]`) when the data set has one, else
//! the feature mask that reached the layer.

use dl4rs_array::ops::{self, Reduction};
use dl4rs_array::{ArrayView, ArrayViewMut, AsView, AsViewMut, DataType, NdArray};

use super::{check_mask, dims3, from_rows, layer_error, to_rows};
use crate::activation::Activation;
use crate::error::NnError;
use crate::input_type::InputType;
use crate::layers::{
    ACT, Epsilon, Forward, GRAD, Layer, LayerInfo, LayerInput, ParamSpec, Saved, StepContext,
};
use crate::loss::LossFunction;
use crate::weight_init::WeightInit;
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// A loss at every time step, with a dense layer before it (`RnnOutputLayer`) or without
/// (`RnnLossLayer`).
pub struct RnnOutputLayer {
    info: LayerInfo,
    n_in: usize,
    n_out: usize,
    /// Whether there is a dense part (else `n_in == n_out`, no parameters).
    dense: bool,
    activation: Activation,
    weight_init: WeightInit,
    bias_init: f64,
    loss: LossFunction,
}

impl RnnOutputLayer {
    /// A dense layer `n_in → n_out` and `loss` at every step.
    pub fn new(
        name: Option<String>,
        n_in: usize,
        n_out: usize,
        activation: Activation,
        weight_init: WeightInit,
        bias_init: f64,
        loss: LossFunction,
    ) -> Self {
        let info = LayerInfo::new(
            "RnnOutputLayer",
            InputType::recurrent(n_in),
            InputType::recurrent(n_out),
        )
        .named(name)
        .with_params(vec![
            ParamSpec::weight("W", &[n_in, n_out]),
            ParamSpec::bias("b", &[n_out]),
        ])
        .with_loss(Some(loss));
        RnnOutputLayer {
            info,
            n_in,
            n_out,
            dense: true,
            activation,
            weight_init,
            bias_init,
            loss,
        }
    }

    /// An activation and `loss` at every step of `n` features (no parameters).
    pub fn loss_only(
        name: Option<String>,
        n: usize,
        activation: Activation,
        loss: LossFunction,
    ) -> Self {
        let t = InputType::recurrent(n);
        RnnOutputLayer {
            info: LayerInfo::new("RnnLossLayer", t, t)
                .named(name)
                .with_loss(Some(loss)),
            n_in: n,
            n_out: n,
            dense: false,
            activation,
            weight_init: WeightInit::default(),
            bias_init: 0.0,
            loss,
        }
    }

    #[allow(clippy::type_complexity)]
    fn weights<'a, T: DataType>(
        &self,
        params: &ArrayView<'a, T>,
    ) -> Result<(ArrayView<'a, T>, ArrayView<'a, T>), NnError> {
        let nw = self.n_in * self.n_out;
        let w = params
            .slice_axis(0, 0, nw, 1)?
            .reshape(&[self.n_in, self.n_out])?;
        let b = params.slice_axis(0, nw, nw + self.n_out, 1)?;
        Ok((w, b))
    }

    fn name(&self) -> Option<&str> {
        self.info.name.as_deref()
    }
}

impl<T: DataType> Layer<T> for RnnOutputLayer {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, params: &mut [T], seed: u64) {
        if !self.dense {
            return;
        }
        let nw = self.n_in * self.n_out;
        self.weight_init
            .fill(&mut params[..nw], self.n_in, self.n_out, seed);
        params[nw..].fill(T::from_f64(self.bias_init));
    }

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        let x = input.activations;
        let kind = self.info.kind;
        check_mask(ctx, kind, self.name(), input.mask.as_ref(), &x)?;
        let (b, _, t) = dims3(&x);
        let rows = to_rows(&x, ArrayType::FfWorkingMem, mgr)?;
        let z = if self.dense {
            let (w, bias) = self.weights(params)?;
            let mut z =
                mgr.create_uninitialized::<T>(ArrayType::FfWorkingMem, &[b * t, self.n_out])?;
            ops::gemm_into(T::ONE, &rows, &w, T::ZERO, &mut z)?;
            ops::bias_act_into(&mut z, &bias, ops::Unary::Identity, None)?;
            z
        } else {
            rows
        };
        let cache = if ctx.training && self.activation.needs_input_for_backprop() {
            Some(mgr.dup(ArrayType::FfCache, &z)?)
        } else {
            None
        };
        let mut a = mgr.create_uninitialized::<T>(ArrayType::FfWorkingMem, z.shape())?;
        self.activation.apply_into(&z.view(), &mut a)?;
        let out = from_rows(&a.view(), b, ACT, mgr)?;
        Ok(Forward::new(out).with_cache(cache))
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
        let kind = self.info.kind;
        let (labels, label_mask) = epsilon.labels(kind)?;
        let x = saved.input;
        let (b, _, t) = dims3(&x);
        let n = self.n_out;
        if labels.shape() != [b, n, t] {
            return Err(layer_error(
                ctx,
                kind,
                self.name(),
                format!(
                    "labels have shape {:?} but the layer's output has shape [{b}, {n}, {t}] \
                     (input {:?}): expected one label vector per time step, as long as the \
                     series",
                    labels.shape(),
                    x.shape()
                ),
            ));
        }
        let mask = label_mask.or(saved.mask);
        if let Some(m) = &mask
            && m.shape() != [b, t]
        {
            return Err(layer_error(
                ctx,
                kind,
                self.name(),
                format!(
                    "the label mask has shape {:?}; expected [{b}, {t}] (one entry per example \
                     and time step of the labels {:?})",
                    m.shape(),
                    labels.shape()
                ),
            ));
        }
        let mask_rows = match &mask {
            Some(m) => Some(m.reshape(&[b * t]).map_err(|_| {
                layer_error(
                    ctx,
                    kind,
                    self.name(),
                    "the label mask must be a contiguous [batch, time] array".into(),
                )
            })?),
            None => None,
        };
        let label_rows = to_rows(&labels, ArrayType::BpWorkingMem, mgr)?;
        let out_rows = to_rows(&saved.output, ArrayType::BpWorkingMem, mgr)?;
        let mut dz = mgr.create_uninitialized::<T>(ArrayType::BpWorkingMem, &[b * t, n])?;
        self.loss.gradient_over(
            b,
            self.activation,
            &label_rows.view(),
            mask_rows.as_ref(),
            saved.cache.as_ref(),
            &out_rows.view(),
            &mut dz,
        )?;
        if !self.dense {
            if !ctx.need_input_gradient {
                return Ok(None);
            }
            return Ok(Some(from_rows(&dz.view(), b, GRAD, mgr)?));
        }
        let (w, _) = self.weights(params)?;
        let rows = to_rows(&x, ArrayType::BpWorkingMem, mgr)?;
        let nw = self.n_in * n;
        {
            let mut gw = grads
                .view_mut()
                .slice_axis(0, 0, nw, 1)?
                .reshape(&[self.n_in, n])?;
            ops::gemm_into(T::ONE, &rows.view().t(), &dz, T::ZERO, &mut gw)?;
        }
        {
            let mut gb = grads.view_mut().slice_axis(0, nw, nw + n, 1)?;
            ops::reduce_axis_into(Reduction::Sum, &dz, 0, &mut gb)?;
        }
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        let mut dx_rows =
            mgr.create_uninitialized::<T>(ArrayType::BpWorkingMem, &[b * t, self.n_in])?;
        ops::gemm_into(T::ONE, &dz, &w.t(), T::ZERO, &mut dx_rows)?;
        Ok(Some(from_rows(&dx_rows.view(), b, GRAD, mgr)?))
    }
}
