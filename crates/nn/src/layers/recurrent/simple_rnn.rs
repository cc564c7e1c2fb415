//! DL4J's `SimpleRnn`: `h_t = act(x_t·W + h_{t-1}·RW + b)`, parameters `W` `[n_in, n_out]`,
//! `RW` `[n_out, n_out]`, `b` `[n_out]` (in that order). Masks, per-step loop workspaces,
//! carried states and truncated BPTT work as for the LSTM (`lstm.rs`); the cache is the states
//! `[time + 1, batch, n_out]` (the initial one first), and backward reads them from there.

use dl4rs_array::ops::{self, Reduction, Unary};
use dl4rs_array::{ArrayView, ArrayViewMut, AsView, AsViewMut, DataType, NdArray};

use super::hidden::{CarriedStates, STATE_H};
use super::{
    check_epsilon, check_mask, dims3, first_step, forward_cache, mask_steps, mask_time_major,
    pack_recurrent, step_product, time_major,
};
use crate::activation::Activation;
use crate::error::NnError;
use crate::input_type::InputType;
use crate::layers::{
    ACT, Epsilon, Forward, GRAD, Layer, LayerInfo, LayerInput, ParamSpec, RnnStateSlot, Saved,
    StepContext,
};
use crate::weight_init::WeightInit;
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// A simple recurrent layer `n_in → n_out`.
pub struct SimpleRnnLayer<T: DataType> {
    info: LayerInfo,
    n_in: usize,
    n_out: usize,
    activation: Activation,
    weight_init: WeightInit,
    /// The carried states (`rnn_time_step`, truncated BPTT).
    state: CarriedStates<T, 1>,
}

impl<T: DataType> SimpleRnnLayer<T> {
    /// A simple RNN `n_in → n_out`; errors for an activation it cannot differentiate from
    /// its output.
    pub fn new(
        name: Option<String>,
        n_in: usize,
        n_out: usize,
        activation: Activation,
        weight_init: WeightInit,
    ) -> Result<Self, NnError> {
        act_of::<T>(activation)?;
        let info = LayerInfo::new(
            "SimpleRnn",
            InputType::recurrent(n_in),
            InputType::recurrent(n_out),
        )
        .named(name)
        .with_params(vec![
            ParamSpec::weight("W", &[n_in, n_out]),
            ParamSpec::weight("RW", &[n_out, n_out]),
            ParamSpec::bias("b", &[n_out]),
        ]);
        Ok(SimpleRnnLayer {
            info,
            n_in,
            n_out,
            activation,
            weight_init,
            state: CarriedStates::new([STATE_H]),
        })
    }

    #[allow(clippy::type_complexity)]
    fn weights<'a>(
        &self,
        params: &ArrayView<'a, T>,
    ) -> Result<(ArrayView<'a, T>, ArrayView<'a, T>, ArrayView<'a, T>), NnError> {
        let (ni, n) = (self.n_in, self.n_out);
        let w = params.slice_axis(0, 0, ni * n, 1)?.reshape(&[ni, n])?;
        let rw = params
            .slice_axis(0, ni * n, ni * n + n * n, 1)?
            .reshape(&[n, n])?;
        let b = params.slice_axis(0, ni * n + n * n, ni * n + n * n + n, 1)?;
        Ok((w, rw, b))
    }

    fn name(&self) -> Option<&str> {
        self.info.name.as_deref()
    }
}

fn act_of<T: DataType>(a: Activation) -> Result<Unary<T>, NnError> {
    match a.unary::<T>() {
        Some(u) if u.grad_from() == ops::GradFrom::Output => Ok(u),
        _ => Err(NnError::config(format!(
            "SimpleRnn: the activation {a:?} is not supported: use one whose derivative follows \
             from its output (Tanh, Sigmoid, Relu, Identity)"
        ))),
    }
}

impl<T: DataType> Layer<T> for SimpleRnnLayer<T> {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, params: &mut [T], seed: u64) {
        let (ni, n) = (self.n_in, self.n_out);
        self.weight_init.fill(&mut params[..ni * n], ni, n, seed);
        self.weight_init.fill(
            &mut params[ni * n..ni * n + n * n],
            n,
            n,
            dl4rs_array::random::splitmix(seed, 1),
        );
        params[ni * n + n * n..].fill(T::ZERO);
    }

    fn rnn_state(&self, slot: RnnStateSlot) -> Vec<(&'static str, ArrayView<'_, T>)> {
        self.state.views(slot)
    }

    fn rnn_set_state(
        &mut self,
        slot: RnnStateSlot,
        key: &str,
        value: &ArrayView<'_, T>,
    ) -> Result<(), NnError> {
        self.state.set("SimpleRnn", self.n_out, slot, key, value)
    }

    fn rnn_clear_state(&mut self) {
        self.state.clear();
    }

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        let x = input.activations;
        check_mask(ctx, "SimpleRnn", self.name(), input.mask.as_ref(), &x)?;
        let (b, _, t) = dims3(&x);
        let n = self.n_out;
        let act = act_of::<T>(self.activation)?;
        let (w, rw, bias) = self.weights(params)?;
        let ty = if ctx.training {
            ArrayType::FfCache
        } else {
            ArrayType::FfWorkingMem
        };
        let mut states = mgr.create_uninitialized::<T>(ty, &[t + 1, b, n])?;
        {
            let mut h0 = states.view_mut().index_axis(0, 0)?;
            self.state
                .start(0, &mut h0, ctx, "SimpleRnn", self.name(), x.shape())?;
        }
        let mut z = mgr.create_uninitialized::<T>(ArrayType::FfWorkingMem, &[t * b, n])?;
        {
            let xt = time_major(&x, ArrayType::FfWorkingMem, mgr)?;
            ops::gemm_into(
                T::ONE,
                &xt.view().reshape(&[t * b, self.n_in])?,
                &w,
                T::ZERO,
                &mut z,
            )?;
            ops::bias_act_into(&mut z, &bias, Unary::Identity, None)?;
        }
        let mask_t = mask_time_major(input.mask.as_ref(), ArrayType::FfWorkingMem, mgr)?;
        let packed_rw = pack_recurrent(&rw, b, ArrayType::FfWorkingMem, mgr)?;
        for s in 0..t {
            let _step = mgr.notify_scope_entered(ArrayType::RnnFfLoopWorkingMem)?;
            let mut zs = z.view_mut().slice_axis(0, s * b, (s + 1) * b, 1)?;
            step_product(
                &states.view().index_axis(0, s)?,
                &rw,
                packed_rw.as_ref(),
                T::ONE,
                &mut zs,
            )?;
            let m = match &mask_t {
                Some(mt) => Some(mt.view().index_axis(0, s)?),
                None => None,
            };
            let zs = z.view().slice_axis(0, s * b, (s + 1) * b, 1)?;
            ops::rnn_step_forward_into(&mut states, s, &zs, m.as_ref(), act)?;
        }
        if let Some(slot) = self.state.slot(ctx.recurrent) {
            slot.store([&states.view().index_axis(0, t)?])?;
        }
        let mut out = mgr.create_uninitialized::<T>(ACT, &[b, n, t])?;
        out.assign(
            &states
                .view()
                .slice_axis(0, 1, t + 1, 1)?
                .permute(&[1, 2, 0])?,
        )?;
        mask_steps(&mut out, input.mask.as_ref(), ctx, "SimpleRnn", self.name())?;
        let cache = if ctx.training { Some(states) } else { None };
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
        let eps = epsilon.gradient(self.info.kind)?;
        let x = saved.input;
        let (b, ni, t) = dims3(&x);
        let n = self.n_out;
        let act = act_of::<T>(self.activation)?;
        let (w, rw, _) = self.weights(params)?;
        let states = forward_cache(saved.cache, ctx, "SimpleRnn", self.name())?;
        // The states, however a wrapper packed them (flat in a Bidirectional's cache).
        let states = states.reshape(&[t + 1, b, n])?;
        check_epsilon(&eps, [b, n, t], ctx, "SimpleRnn", self.name())?;
        let first = first_step(ctx, t);
        let eps_t = time_major(&eps, ArrayType::BpWorkingMem, mgr)?;
        let mask_t = mask_time_major(saved.mask.as_ref(), ArrayType::BpWorkingMem, mgr)?;
        let mut dz = mgr.create::<T>(ArrayType::BpWorkingMem, &[t * b, n])?;
        let mut dh = mgr.create::<T>(ArrayType::BpWorkingMem, &[b, n])?;
        let rwt = rw.t();
        let packed_rwt = pack_recurrent(&rwt, b, ArrayType::BpWorkingMem, mgr)?;
        for s in (first..t).rev() {
            let _step = mgr.notify_scope_entered(ArrayType::RnnBpLoopWorkingMem)?;
            let m = match &mask_t {
                Some(mt) => Some(mt.view().index_axis(0, s)?),
                None => None,
            };
            {
                let mut dzs = dz.view_mut().slice_axis(0, s * b, (s + 1) * b, 1)?;
                ops::rnn_step_backward_into(
                    &states.index_axis(0, s + 1)?,
                    &eps_t.view().index_axis(0, s)?,
                    &mut dh,
                    &mut dzs,
                    m.as_ref(),
                    act,
                )?;
            }
            let dzs = dz.view().slice_axis(0, s * b, (s + 1) * b, 1)?;
            step_product(&dzs, &rwt, packed_rwt.as_ref(), T::ONE, &mut dh)?;
        }
        let xt = time_major(&x, ArrayType::BpWorkingMem, mgr)?;
        let xt = xt.view().reshape(&[t * b, ni])?;
        let (nw, nr) = (ni * n, n * n);
        {
            let mut gw = grads
                .view_mut()
                .slice_axis(0, 0, nw, 1)?
                .reshape(&[ni, n])?;
            ops::gemm_into(T::ONE, &xt.t(), &dz, T::ZERO, &mut gw)?;
        }
        {
            let h_prev = states.slice_axis(0, 0, t, 1)?.reshape(&[t * b, n])?;
            let mut grw = grads
                .view_mut()
                .slice_axis(0, nw, nw + nr, 1)?
                .reshape(&[n, n])?;
            ops::gemm_into(T::ONE, &h_prev.t(), &dz, T::ZERO, &mut grw)?;
        }
        {
            let mut gb = grads.view_mut().slice_axis(0, nw + nr, nw + nr + n, 1)?;
            ops::reduce_axis_into(Reduction::Sum, &dz, 0, &mut gb)?;
        }
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        let mut dxt = mgr.create_uninitialized::<T>(ArrayType::BpWorkingMem, &[t * b, ni])?;
        ops::gemm_into(T::ONE, &dz, &w.t(), T::ZERO, &mut dxt)?;
        let mut dx = mgr.create_uninitialized::<T>(GRAD, &[b, ni, t])?;
        dx.assign(&dxt.view().reshape(&[t, b, ni])?.permute(&[1, 2, 0])?)?;
        Ok(Some(dx))
    }
}
