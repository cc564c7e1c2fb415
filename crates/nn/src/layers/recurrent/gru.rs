//! A GRU ("reset after", PyTorch's and Keras' default formulation; DL4J has no GRU layer of its
//! own). Gate blocks `r | z | n`:
//!
//! ```text
//! r = σ(x·W_r + h·RW_r + b_r)      z = σ(x·W_z + h·RW_z + b_z)
//! g = act(x·W_n + b_n + r ⊙ (h·RW_n + rb))      h' = (1 - z) ⊙ g + z ⊙ h
//! ```
//!
//! Parameters, in order: `W` `[n_in, 3 n_out]`, `RW` `[n_out, 3 n_out]`, `b` `[3 n_out]`,
//! `rb` `[n_out]` (the candidate's recurrent bias, PyTorch's `b_hn`; PyTorch's `b_hr`, `b_hz`
//! are folded into `b`). Masks, per-step loop workspaces, carried states and truncated BPTT
//! work as for the LSTM (`lstm.rs`); the cache is one flat array ([`GruCacheLayout`]).

use dl4rs_array::ops::{self, GruCacheLayout, Reduction, Unary};
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

/// A GRU layer `n_in → n_out`.
pub struct GruLayer<T: DataType> {
    info: LayerInfo,
    n_in: usize,
    n_out: usize,
    activation: Activation,
    gate_activation: Activation,
    weight_init: WeightInit,
    /// The carried states (`rnn_time_step`, truncated BPTT).
    state: CarriedStates<T, 1>,
}

impl<T: DataType> GruLayer<T> {
    /// A GRU `n_in → n_out`; errors for activations it cannot differentiate from outputs.
    pub fn new(
        name: Option<String>,
        n_in: usize,
        n_out: usize,
        activation: Activation,
        gate_activation: Activation,
        weight_init: WeightInit,
    ) -> Result<Self, NnError> {
        act_of::<T>(activation)?;
        act_of::<T>(gate_activation)?;
        let info = LayerInfo::new(
            "GRU",
            InputType::recurrent(n_in),
            InputType::recurrent(n_out),
        )
        .named(name)
        .with_params(vec![
            ParamSpec::weight("W", &[n_in, 3 * n_out]),
            ParamSpec::weight("RW", &[n_out, 3 * n_out]),
            ParamSpec::bias("b", &[3 * n_out]),
            ParamSpec::bias("rb", &[n_out]),
        ]);
        Ok(GruLayer {
            info,
            n_in,
            n_out,
            activation,
            gate_activation,
            weight_init,
            state: CarriedStates::new([STATE_H]),
        })
    }

    /// Offsets of `W`, `RW`, `b`, `rb` and the end.
    fn offsets(&self) -> [usize; 5] {
        let (ni, n) = (self.n_in, self.n_out);
        let (w, rw) = (ni * 3 * n, n * 3 * n);
        [0, w, w + rw, w + rw + 3 * n, w + rw + 4 * n]
    }

    #[allow(clippy::type_complexity)]
    fn weights<'a>(&self, params: &ArrayView<'a, T>) -> Result<[ArrayView<'a, T>; 4], NnError> {
        let (ni, n) = (self.n_in, self.n_out);
        let o = self.offsets();
        Ok([
            params.slice_axis(0, o[0], o[1], 1)?.reshape(&[ni, 3 * n])?,
            params.slice_axis(0, o[1], o[2], 1)?.reshape(&[n, 3 * n])?,
            params.slice_axis(0, o[2], o[3], 1)?,
            params.slice_axis(0, o[3], o[4], 1)?,
        ])
    }

    fn name(&self) -> Option<&str> {
        self.info.name.as_deref()
    }
}

fn act_of<T: DataType>(a: Activation) -> Result<Unary<T>, NnError> {
    match a.unary::<T>() {
        Some(u) if u.grad_from() == ops::GradFrom::Output => Ok(u),
        _ => Err(NnError::config(format!(
            "GRU: the activation {a:?} is not supported: use one whose derivative follows \
             from its output (Tanh, Sigmoid, Relu, Identity)"
        ))),
    }
}

impl<T: DataType> Layer<T> for GruLayer<T> {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, params: &mut [T], seed: u64) {
        let (ni, n) = (self.n_in, self.n_out);
        let o = self.offsets();
        self.weight_init
            .fill(&mut params[o[0]..o[1]], ni, 3 * n, seed);
        self.weight_init.fill(
            &mut params[o[1]..o[2]],
            n,
            3 * n,
            dl4rs_array::random::splitmix(seed, 1),
        );
        params[o[2]..].fill(T::ZERO);
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
        self.state.set("GRU", self.n_out, slot, key, value)
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
        check_mask(ctx, "GRU", self.name(), input.mask.as_ref(), &x)?;
        let (b, _, t) = dims3(&x);
        let n = self.n_out;
        let (act, gate) = (
            act_of::<T>(self.activation)?,
            act_of::<T>(self.gate_activation)?,
        );
        let [w, rw, bias, rb] = self.weights(params)?;
        let layout = GruCacheLayout {
            steps: t,
            batch: b,
            hidden: n,
        };
        let ty = if ctx.training {
            ArrayType::FfCache
        } else {
            ArrayType::FfWorkingMem
        };
        let mut cache = mgr.create_uninitialized::<T>(ty, &[layout.len()])?;
        {
            let mut h0 = layout.states_mut(cache.view_mut())?.index_axis(0, 0)?;
            self.state
                .start(0, &mut h0, ctx, "GRU", self.name(), x.shape())?;
        }
        {
            let xt = time_major(&x, ArrayType::FfWorkingMem, mgr)?;
            let mut g = layout.gates_mut(cache.view_mut())?;
            ops::gemm_into(
                T::ONE,
                &xt.view().reshape(&[t * b, self.n_in])?,
                &w,
                T::ZERO,
                &mut g,
            )?;
            ops::bias_act_into(&mut g, &bias, Unary::Identity, None)?;
        }
        let mask_t = mask_time_major(input.mask.as_ref(), ArrayType::FfWorkingMem, mgr)?;
        let packed_rw = pack_recurrent(&rw, b, ArrayType::FfWorkingMem, mgr)?;
        for s in 0..t {
            let _step = mgr.notify_scope_entered(ArrayType::RnnFfLoopWorkingMem)?;
            let mut rec =
                mgr.create_uninitialized::<T>(ArrayType::RnnFfLoopWorkingMem, &[b, 3 * n])?;
            {
                let cv = cache.view();
                let h_prev = layout.states(&cv)?.index_axis(0, s)?;
                step_product(&h_prev, &rw, packed_rw.as_ref(), T::ZERO, &mut rec)?;
            }
            let m = match &mask_t {
                Some(mt) => Some(mt.view().index_axis(0, s)?),
                None => None,
            };
            ops::gru_step_forward_into(&mut cache, &layout, s, &rec, &rb, m.as_ref(), act, gate)?;
        }
        if let Some(slot) = self.state.slot(ctx.recurrent) {
            let cv = cache.view();
            slot.store([&layout.states(&cv)?.index_axis(0, t)?])?;
        }
        let mut out = mgr.create_uninitialized::<T>(ACT, &[b, n, t])?;
        {
            let cv = cache.view();
            let h = layout.states(&cv)?.slice_axis(0, 1, t + 1, 1)?;
            out.assign(&h.permute(&[1, 2, 0])?)?;
        }
        mask_steps(&mut out, input.mask.as_ref(), ctx, "GRU", self.name())?;
        let cache = if ctx.training { Some(cache) } else { None };
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
        let (act, gate) = (
            act_of::<T>(self.activation)?,
            act_of::<T>(self.gate_activation)?,
        );
        let [w, rw, _, _] = self.weights(params)?;
        let layout = GruCacheLayout {
            steps: t,
            batch: b,
            hidden: n,
        };
        let cache = forward_cache(saved.cache, ctx, "GRU", self.name())?;
        check_epsilon(&eps, [b, n, t], ctx, "GRU", self.name())?;
        let first = first_step(ctx, t);
        let eps_t = time_major(&eps, ArrayType::BpWorkingMem, mgr)?;
        let mask_t = mask_time_major(saved.mask.as_ref(), ArrayType::BpWorkingMem, mgr)?;
        let mut dx_gates = mgr.create::<T>(ArrayType::BpWorkingMem, &[t * b, 3 * n])?;
        let mut drec = mgr.create::<T>(ArrayType::BpWorkingMem, &[t * b, 3 * n])?;
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
                let mut dxs = dx_gates.view_mut().slice_axis(0, s * b, (s + 1) * b, 1)?;
                let mut drs = drec.view_mut().slice_axis(0, s * b, (s + 1) * b, 1)?;
                ops::gru_step_backward_into(
                    &cache,
                    &layout,
                    s,
                    &eps_t.view().index_axis(0, s)?,
                    &mut dh,
                    &mut dxs,
                    &mut drs,
                    m.as_ref(),
                    act,
                    gate,
                )?;
            }
            let drs = drec.view().slice_axis(0, s * b, (s + 1) * b, 1)?;
            step_product(&drs, &rwt, packed_rwt.as_ref(), T::ONE, &mut dh)?;
        }
        let xt = time_major(&x, ArrayType::BpWorkingMem, mgr)?;
        let xt = xt.view().reshape(&[t * b, ni])?;
        let o = self.offsets();
        {
            let mut gw = grads
                .view_mut()
                .slice_axis(0, o[0], o[1], 1)?
                .reshape(&[ni, 3 * n])?;
            ops::gemm_into(T::ONE, &xt.t(), &dx_gates, T::ZERO, &mut gw)?;
        }
        {
            let h_prev = layout
                .states(&cache)?
                .slice_axis(0, 0, t, 1)?
                .reshape(&[t * b, n])?;
            let mut grw = grads
                .view_mut()
                .slice_axis(0, o[1], o[2], 1)?
                .reshape(&[n, 3 * n])?;
            ops::gemm_into(T::ONE, &h_prev.t(), &drec, T::ZERO, &mut grw)?;
        }
        {
            let mut gb = grads.view_mut().slice_axis(0, o[2], o[3], 1)?;
            ops::reduce_axis_into(Reduction::Sum, &dx_gates, 0, &mut gb)?;
        }
        {
            let candidate = drec.view().slice_axis(1, 2 * n, 3 * n, 1)?;
            let mut grb = grads.view_mut().slice_axis(0, o[3], o[4], 1)?;
            ops::reduce_axis_into(Reduction::Sum, &candidate, 0, &mut grb)?;
        }
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        let mut dxt = mgr.create_uninitialized::<T>(ArrayType::BpWorkingMem, &[t * b, ni])?;
        ops::gemm_into(T::ONE, &dx_gates, &w.t(), T::ZERO, &mut dxt)?;
        let mut dx = mgr.create_uninitialized::<T>(GRAD, &[b, ni, t])?;
        dx.assign(&dxt.view().reshape(&[t, b, ni])?.permute(&[1, 2, 0])?)?;
        Ok(Some(dx))
    }
}
