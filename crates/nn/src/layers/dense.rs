//! Dense and output layers: `act(x·W + b)`, with a loss for output layers. The forward pass
//! fuses bias and activation in one pass over the gemm output; the backward pass computes
//! `dW = xᵀ·dz`, `db = Σ dz`, `dx = dz·Wᵀ` with transposes as views (no copies).

use dl4rs_array::ops::{self, Reduction};
use dl4rs_array::{ArrayView, ArrayViewMut, AsView, AsViewMut, DataType, NdArray};

use super::{
    ACT, Epsilon, GRAD, Layer, ParamSpec, StepContext, check_input, expect_gradient, expect_labels,
};
use crate::activation::Activation;
use crate::conf::DenseConf;
use crate::error::NnError;
use crate::loss::LossFunction;
use crate::weight_init::WeightInit;
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// A dense layer, or an output layer when it has a loss.
pub struct DenseLayer<T: DataType> {
    name: Option<String>,
    n_in: usize,
    n_out: usize,
    activation: Activation,
    weight_init: WeightInit,
    bias_init: f64,
    loss: Option<LossFunction>,
    /// `x·W + b`, kept from the forward pass when the activation's derivative needs it.
    pre: Option<NdArray<T>>,
}

impl<T: DataType> DenseLayer<T> {
    /// From its configuration (`loss` makes it an output layer).
    pub fn new(conf: &DenseConf, loss: Option<LossFunction>) -> Result<Self, NnError> {
        Ok(DenseLayer {
            name: conf.name.clone(),
            n_in: conf
                .n_in
                .ok_or_else(|| NnError::config("DenseLayer: n_in was not inferred"))?,
            n_out: conf.n_out,
            activation: conf.activation.unwrap_or_default(),
            weight_init: conf.weight_init.unwrap_or_default(),
            bias_init: conf.bias_init,
            loss,
            pre: None,
        })
    }

    fn kind_name(&self) -> &'static str {
        if self.loss.is_some() {
            "OutputLayer"
        } else {
            "DenseLayer"
        }
    }

    fn weights<'a>(
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

fn slice_mut<'a, T: DataType>(
    w: &'a mut dl4rs_array::ArrayWrite<'_, T>,
    what: &str,
) -> Result<&'a mut [T], NnError> {
    w.as_slice_mut()
        .ok_or_else(|| NnError::Input(format!("{what} must be contiguous")))
}

impl<T: DataType> Layer<T> for DenseLayer<T> {
    fn kind(&self) -> &'static str {
        self.kind_name()
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn n_in(&self) -> usize {
        self.n_in
    }

    fn n_out(&self) -> usize {
        self.n_out
    }

    fn param_specs(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec {
                key: "W",
                shape: vec![self.n_in, self.n_out],
                regularize: true,
            },
            ParamSpec {
                key: "b",
                shape: vec![self.n_out],
                regularize: false,
            },
        ]
    }

    fn init_params(&self, params: &mut [T], seed: u64) {
        let nw = self.n_in * self.n_out;
        self.weight_init
            .fill(&mut params[..nw], self.n_in, self.n_out, seed);
        params[nw..].fill(T::from_f64(self.bias_init));
    }

    fn loss(&self) -> Option<LossFunction> {
        self.loss
    }

    fn activate(
        &mut self,
        input: &ArrayView<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<NdArray<T>, NnError> {
        let batch = check_input(self, ctx.index, input, self.n_in)?;
        let (w, b) = self.weights(params)?;
        let mut out = mgr.create_uninitialized::<T>(ACT, &[batch, self.n_out])?;
        ops::gemm_into(T::ONE, input, &w, T::ZERO, &mut out)?;
        let keep_pre = ctx.training && self.activation.needs_input_for_backprop();
        let mut pre = if keep_pre {
            Some(mgr.create_uninitialized::<T>(ArrayType::FfCache, &[batch, self.n_out])?)
        } else {
            None
        };
        {
            let br = b.read()?;
            let bias = br
                .as_slice()
                .ok_or_else(|| NnError::Input("bias must be contiguous".into()))?;
            let mut ow = out.write()?;
            let o = slice_mut(&mut ow, "activations")?;
            let mut pw = pre.as_mut().map(|p| p.write()).transpose()?;
            let pre_slice = match pw.as_mut() {
                Some(g) => Some(slice_mut(g, "pre-activations")?),
                None => None,
            };
            match self.activation.unary::<T>() {
                Some(act) => dl4rs_kernels::bias_act(o, batch, self.n_out, bias, act, pre_slice)?,
                None => dl4rs_kernels::binary_row_assign(
                    dl4rs_kernels::BinaryOp::Add,
                    o,
                    batch,
                    self.n_out,
                    bias,
                )?,
            }
        }
        if self.activation == Activation::Softmax {
            self.activation.apply_in_place(&mut out)?;
        }
        self.pre = pre;
        Ok(out)
    }

    fn backprop_gradient(
        &mut self,
        input: &ArrayView<'_, T>,
        output: &ArrayView<'_, T>,
        epsilon: Epsilon<'_, T>,
        params: &ArrayView<'_, T>,
        grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError> {
        let batch = check_input(self, ctx.index, input, self.n_in)?;
        let (w, _) = self.weights(params)?;
        let mut dz =
            mgr.create_uninitialized::<T>(ArrayType::BpWorkingMem, &[batch, self.n_out])?;
        let pre = self.pre.as_ref().map(|p| p.view());
        match self.loss {
            Some(loss) => {
                let labels = expect_labels(self.kind_name(), epsilon)?;
                loss.gradient(self.activation, &labels, pre.as_ref(), output, &mut dz)?;
            }
            None => {
                let eps = expect_gradient(self.kind_name(), epsilon)?;
                self.activation
                    .backprop(pre.as_ref(), output, &eps, &mut dz)?;
            }
        }
        let nw = self.n_in * self.n_out;
        {
            let mut gw = grads
                .view_mut()
                .slice_axis(0, 0, nw, 1)?
                .reshape(&[self.n_in, self.n_out])?;
            ops::gemm_into(T::ONE, &input.t(), &dz, T::ZERO, &mut gw)?;
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

    fn clear(&mut self) {
        self.pre = None;
    }
}
