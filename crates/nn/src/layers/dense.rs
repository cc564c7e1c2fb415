//! Dense and output layers: `act(x·W + b)`, with a loss for output layers. The forward pass
//! is one product with bias and activation fused into it (`ops::gemm_bias_act_into`: each
//! thread finishes the blocks it computed while they are in its cache), keeping the
//! pre-activation as the layer's cache when the activation's derivative needs it; softmax,
//! which is not element-wise, follows the fused bias. The backward pass computes
//! `dW = xᵀ·dz`, `db = Σ dz`, `dx = dz·Wᵀ` with transposes as views (no copies).

use std::any::Any;

use dl4rs_array::ops::{self, PackedMatrix, Reduction};
use dl4rs_array::{ArrayView, ArrayViewMut, AsViewMut, DataType, NdArray};

use super::{
    ACT, Epsilon, Forward, GRAD, Layer, LayerInfo, LayerInput, ParamSpec, Saved, StepContext, rows,
};
use crate::activation::Activation;
use crate::error::NnError;
use crate::input_type::InputType;
use crate::loss::LossFunction;
use crate::weight_init::WeightInit;
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// A dense layer, or an output layer when it has a loss.
pub struct DenseLayer {
    info: LayerInfo,
    n_in: usize,
    n_out: usize,
    activation: Activation,
    weight_init: WeightInit,
    bias_init: f64,
    /// W packed for inference products, kept while the weights do not change (see
    /// [`InferencePack`]); a `Box<dyn Any>` because the layer serves f32 and f64 networks.
    inference_pack: Option<Box<dyn Any + Send>>,
}

/// W as the microkernel reads it, and which contents it was packed from: the version of the
/// parameter buffer (new at every write of the parameters) and W's offset in it. Inference
/// calls between two updates (evaluation, serving) read it instead of packing W per call.
struct InferencePack<T: DataType> {
    from: (u64, usize),
    packed: PackedMatrix<T>,
}

impl DenseLayer {
    /// A dense layer `n_in → n_out`; `loss` makes it an output layer.
    pub fn new(
        name: Option<String>,
        n_in: usize,
        n_out: usize,
        activation: Activation,
        weight_init: WeightInit,
        bias_init: f64,
        loss: Option<LossFunction>,
    ) -> Self {
        let kind = if loss.is_some() {
            "OutputLayer"
        } else {
            "DenseLayer"
        };
        let info = LayerInfo::new(
            kind,
            InputType::feed_forward(n_in),
            InputType::feed_forward(n_out),
        )
        .named(name)
        .with_params(vec![
            ParamSpec::weight("W", &[n_in, n_out]),
            ParamSpec::bias("b", &[n_out]),
        ])
        .with_loss(loss);
        DenseLayer {
            info,
            n_in,
            n_out,
            activation,
            weight_init,
            bias_init,
            inference_pack: None,
        }
    }

    /// W packed, from the cache when the weights are those it was packed from. The storage
    /// is made (on the heap: it outlives every cycle) by the first inference call, and
    /// packed again in place when the weights change.
    fn packed_weights<T: DataType>(
        &mut self,
        w: &ArrayView<'_, T>,
    ) -> Result<&PackedMatrix<T>, NnError> {
        let from = (w.version(), w.layout().offset());
        let fresh = match self
            .inference_pack
            .as_mut()
            .and_then(|b| b.downcast_mut::<InferencePack<T>>())
        {
            Some(p) if p.from == from => false,
            Some(p) => {
                p.packed.repack(w)?;
                p.from = from;
                false
            }
            None => true,
        };
        if fresh {
            let storage =
                NdArray::zeros_detached(&[PackedMatrix::<T>::len_for(self.n_in, self.n_out)])?;
            let packed = PackedMatrix::pack(w, storage)?;
            self.inference_pack = Some(Box::new(InferencePack { from, packed }));
        }
        self.inference_pack
            .as_ref()
            .and_then(|b| b.downcast_ref::<InferencePack<T>>())
            .map(|p| &p.packed)
            .ok_or_else(|| NnError::config("DenseLayer: the packed weights went missing"))
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
}

impl<T: DataType> Layer<T> for DenseLayer {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, params: &mut [T], seed: u64) {
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
        let (batch, _) = rows(&x);
        let (w, b) = self.weights(params)?;
        let shape = [batch, self.n_out];
        let (activation, keep_pre) = (
            self.activation,
            ctx.training && self.activation.needs_input_for_backprop(),
        );
        // Inference products read W packed once per weight update; training products pack
        // it themselves (the weights change every step).
        let packed = if !ctx.training && PackedMatrix::<T>::used_for(batch, self.n_out) {
            Some(self.packed_weights(&w)?)
        } else {
            None
        };
        if activation == Activation::Softmax {
            // Softmax is not element-wise: z = x·W + b in working memory, then one softmax.
            let mut z = mgr.create_uninitialized::<T>(ArrayType::FfWorkingMem, &shape)?;
            ops::gemm_bias_act_into(&x, &w, packed, &b, ops::Unary::Identity, None, &mut z)?;
            let mut out = mgr.create_uninitialized::<T>(ACT, &shape)?;
            ops::softmax_last_axis_into(&z, &mut out)?;
            return Ok(Forward::new(out));
        }
        let mut out = mgr.create_uninitialized::<T>(ACT, &shape)?;
        let mut pre = if keep_pre {
            Some(mgr.create_uninitialized::<T>(ArrayType::FfCache, &shape)?)
        } else {
            None
        };
        let act = activation.unary::<T>().unwrap_or(ops::Unary::Identity);
        ops::gemm_bias_act_into(&x, &w, packed, &b, act, pre.as_mut(), &mut out)?;
        Ok(Forward::new(out).with_cache(pre))
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
        let (batch, _) = rows(&saved.input);
        let (w, _) = self.weights(params)?;
        let mut dz =
            mgr.create_uninitialized::<T>(ArrayType::BpWorkingMem, &[batch, self.n_out])?;
        match self.info.loss {
            Some(loss) => {
                let (labels, mask) = epsilon.labels(self.info.kind)?;
                loss.gradient(
                    self.activation,
                    &labels,
                    mask.as_ref(),
                    saved.cache.as_ref(),
                    &saved.output,
                    &mut dz,
                )?;
            }
            None => {
                let eps = epsilon.gradient(self.info.kind)?;
                self.activation
                    .backprop(saved.cache.as_ref(), &saved.output, &eps, &mut dz)?;
            }
        }
        let nw = self.n_in * self.n_out;
        {
            let mut gw = grads
                .view_mut()
                .slice_axis(0, 0, nw, 1)?
                .reshape(&[self.n_in, self.n_out])?;
            ops::gemm_into(T::ONE, &saved.input.t(), &dz, T::ZERO, &mut gw)?;
        }
        {
            let mut gb = grads.view_mut().slice_axis(0, nw, nw + self.n_out, 1)?;
            ops::reduce_axis_into(Reduction::Sum, &dz, 0, &mut gb)?;
        }
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        let mut eps_out = mgr.create_uninitialized::<T>(GRAD, &[batch, self.n_in])?;
        ops::gemm_into(T::ONE, &dz, &w.t(), T::ZERO, &mut eps_out)?;
        Ok(Some(eps_out))
    }
}
