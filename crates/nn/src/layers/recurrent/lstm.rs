//! DL4J's `LSTM` (no peephole connections), forward over a whole sequence and backprop through
//! time.
//!
//! Parameters, in this order in the layer's slice (DL4J's `LSTMParamInitializer`):
//! `W` `[n_in, 4 * n_out]`, `RW` `[n_out, 4 * n_out]`, `b` `[4 * n_out]`. The four column
//! blocks of each are the gates in DL4J's order: block input `a` (the layer activation, tanh
//! by default), forget gate `f`, output gate `o`, input gate `i` (the gate activation, sigmoid
//! by default); DL4J's comments call the four blocks input, forget, output and input modulation
//! ("IFOG"). A step is
//!
//! ```text
//! z = x_t·W + h_{t-1}·RW + b        a, f, o, i = act(z_a), σ(z_f), σ(z_o), σ(z_i)
//! c_t = f ⊙ c_{t-1} + i ⊙ a         h_t = o ⊙ act(c_t)
//! ```
//!
//! The forget-gate block of `b` starts at `forget_gate_bias_init` (DL4J default 1.0), the rest
//! of `b` at 0.
//!
//! Masks (`[batch, time]`): at a step where an example's mask is 0 its output is 0 and its
//! state `(h, c)` is carried over unchanged (Keras' masking; DL4J instead multiplies the state
//! by the mask, resetting it to 0: the two agree for padding at the start or the end of a
//! sequence with a zero initial state, which is what the sequence readers make). So a padded
//! sequence gives the same outputs at its real steps, and the same gradients, as the sequence
//! alone.
//!
//! `x·W` for all steps is one gemm before the loop, and the weight gradients are one gemm each
//! after it; each step does `h·RW` (forward) or `dz·RWᵀ` (backward) and the fused cell in a
//! fresh cycle of the RNN loop working memory. Everything the backward pass needs (gate
//! activations, states, `act(c)`) is one flat cache ([`LstmCacheLayout`]); the backward pass
//! reads the states from it, never the layer's output (so a wrapper can hand it a different
//! output).

use dl4rs_array::ops::{self, LstmCacheLayout, Reduction, Unary};
use dl4rs_array::{ArrayView, ArrayViewMut, AsView, AsViewMut, DataType, NdArray};

use super::hidden::CarriedStates;
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

/// DL4J's key of the carried output `h` (`LSTM.STATE_KEY_PREV_ACTIVATION`).
pub const STATE_H: &str = "prevAct";
/// DL4J's key of the carried cell state `c` (`LSTM.STATE_KEY_PREV_MEMCELL`).
pub const STATE_C: &str = "prevMemCell";

/// An LSTM layer `n_in → n_out` over sequences.
pub struct LstmLayer<T: DataType> {
    info: LayerInfo,
    n_in: usize,
    n_out: usize,
    activation: Activation,
    gate_activation: Activation,
    weight_init: WeightInit,
    forget_gate_bias_init: f64,
    /// The states `(h, c)` that `rnn_time_step` carries between calls and truncated BPTT
    /// between segments.
    state: CarriedStates<T, 2>,
}

fn unary_of<T: DataType>(a: Activation, what: &str) -> Result<Unary<T>, NnError> {
    match a.unary::<T>() {
        Some(u) if u.grad_from() == ops::GradFrom::Output => Ok(u),
        _ => Err(NnError::config(format!(
            "LSTM: the {what} {a:?} is not supported: use one whose derivative follows from its \
             output (Tanh, Sigmoid, Relu, Identity)"
        ))),
    }
}

impl<T: DataType> LstmLayer<T> {
    /// An LSTM `n_in → n_out`; errors for activations it cannot differentiate from outputs.
    pub fn new(
        name: Option<String>,
        n_in: usize,
        n_out: usize,
        activation: Activation,
        gate_activation: Activation,
        weight_init: WeightInit,
        forget_gate_bias_init: f64,
    ) -> Result<Self, NnError> {
        unary_of::<T>(activation, "activation")?;
        unary_of::<T>(gate_activation, "gate activation")?;
        let info = LayerInfo::new(
            "LSTM",
            InputType::recurrent(n_in),
            InputType::recurrent(n_out),
        )
        .named(name)
        .with_params(vec![
            ParamSpec::weight("W", &[n_in, 4 * n_out]),
            ParamSpec::weight("RW", &[n_out, 4 * n_out]),
            ParamSpec::bias("b", &[4 * n_out]),
        ]);
        Ok(LstmLayer {
            info,
            n_in,
            n_out,
            activation,
            gate_activation,
            weight_init,
            forget_gate_bias_init,
            state: CarriedStates::new([STATE_H, STATE_C]),
        })
    }

    /// `(W, RW, b)` views of the layer's parameter slice.
    #[allow(clippy::type_complexity)]
    fn weights<'a>(
        &self,
        params: &ArrayView<'a, T>,
    ) -> Result<(ArrayView<'a, T>, ArrayView<'a, T>, ArrayView<'a, T>), NnError> {
        let (ni, n) = (self.n_in, self.n_out);
        let (nw, nr) = (ni * 4 * n, n * 4 * n);
        let w = params.slice_axis(0, 0, nw, 1)?.reshape(&[ni, 4 * n])?;
        let rw = params.slice_axis(0, nw, nw + nr, 1)?.reshape(&[n, 4 * n])?;
        let b = params.slice_axis(0, nw + nr, nw + nr + 4 * n, 1)?;
        Ok((w, rw, b))
    }

    fn acts(&self) -> Result<(Unary<T>, Unary<T>), NnError> {
        Ok((
            unary_of(self.activation, "activation")?,
            unary_of(self.gate_activation, "gate activation")?,
        ))
    }

    fn name(&self) -> Option<&str> {
        self.info.name.as_deref()
    }
}

impl<T: DataType> Layer<T> for LstmLayer<T> {
    fn info(&self) -> &LayerInfo {
        &self.info
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
        self.state.set("LSTM", self.n_out, slot, key, value)
    }

    fn rnn_clear_state(&mut self) {
        self.state.clear();
    }

    fn init_params(&self, params: &mut [T], seed: u64) {
        let (ni, n) = (self.n_in, self.n_out);
        let (nw, nr) = (ni * 4 * n, n * 4 * n);
        // DL4J's fan-in / fan-out for both weight matrices: n_out and n_in + n_out.
        let (fan_in, fan_out) = (n, ni + n);
        self.weight_init
            .fill(&mut params[..nw], fan_in, fan_out, seed);
        self.weight_init.fill(
            &mut params[nw..nw + nr],
            fan_in,
            fan_out,
            dl4rs_array::random::splitmix(seed, 1),
        );
        let b = &mut params[nw + nr..];
        b.fill(T::ZERO);
        b[n..2 * n].fill(T::from_f64(self.forget_gate_bias_init));
    }

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        let x = input.activations;
        check_mask(ctx, "LSTM", self.name(), input.mask.as_ref(), &x)?;
        let (b, _, t) = dims3(&x);
        let n = self.n_out;
        let (act, gate) = self.acts()?;
        let (w, rw, bias) = self.weights(params)?;
        let layout = LstmCacheLayout {
            steps: t,
            batch: b,
            hidden: n,
        };
        let cache_type = if ctx.training {
            ArrayType::FfCache
        } else {
            ArrayType::FfWorkingMem
        };
        let mut cache = mgr.create_uninitialized::<T>(cache_type, &[layout.len()])?;
        {
            let xt = time_major(&x, ArrayType::FfWorkingMem, mgr)?;
            let xt = xt.view().reshape(&[t * b, self.n_in])?;
            let mut g = layout.gates_mut(cache.view_mut())?;
            ops::gemm_into(T::ONE, &xt, &w, T::ZERO, &mut g)?;
            ops::bias_act_into(&mut g, &bias, Unary::Identity, None)?;
        }
        // The initial state: zeros, or the one carried from the previous call or segment.
        {
            let mut h0 = layout.hidden_mut(cache.view_mut())?.index_axis(0, 0)?;
            self.state
                .start(0, &mut h0, ctx, "LSTM", self.name(), x.shape())?;
        }
        {
            let mut c0 = layout.cell_mut(cache.view_mut())?.index_axis(0, 0)?;
            self.state
                .start(1, &mut c0, ctx, "LSTM", self.name(), x.shape())?;
        }
        let mask_t = mask_time_major(input.mask.as_ref(), ArrayType::FfWorkingMem, mgr)?;
        let packed_rw = pack_recurrent(&rw, b, ArrayType::FfWorkingMem, mgr)?;
        for s in 0..t {
            let _step = mgr.notify_scope_entered(ArrayType::RnnFfLoopWorkingMem)?;
            let mut rec =
                mgr.create_uninitialized::<T>(ArrayType::RnnFfLoopWorkingMem, &[b, 4 * n])?;
            {
                let cv = cache.view();
                let h_prev = layout.hidden(&cv)?.index_axis(0, s)?;
                step_product(&h_prev, &rw, packed_rw.as_ref(), T::ZERO, &mut rec)?;
            }
            let m = match &mask_t {
                Some(mt) => Some(mt.view().index_axis(0, s)?),
                None => None,
            };
            ops::lstm_step_forward_into(&mut cache, &layout, s, &rec, m.as_ref(), act, gate)?;
        }
        let mut out = mgr.create_uninitialized::<T>(ACT, &[b, n, t])?;
        {
            let cv = cache.view();
            let h = layout.hidden(&cv)?.slice_axis(0, 1, t + 1, 1)?;
            out.assign(&h.permute(&[1, 2, 0])?)?;
        }
        if let Some(slot) = self.state.slot(ctx.recurrent) {
            let cv = cache.view();
            let h = layout.hidden(&cv)?.index_axis(0, t)?;
            let c = layout.cell(&cv)?.index_axis(0, t)?;
            slot.store([&h, &c])?;
        }
        mask_steps(&mut out, input.mask.as_ref(), ctx, "LSTM", self.name())?;
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
        check_epsilon(&eps, [b, n, t], ctx, "LSTM", self.name())?;
        let (act, gate) = self.acts()?;
        let (w, rw, _) = self.weights(params)?;
        let layout = LstmCacheLayout {
            steps: t,
            batch: b,
            hidden: n,
        };
        let cache = forward_cache(saved.cache, ctx, "LSTM", self.name())?;
        let eps_t = time_major(&eps, ArrayType::BpWorkingMem, mgr)?;
        let mask_t = mask_time_major(saved.mask.as_ref(), ArrayType::BpWorkingMem, mgr)?;
        // Truncated BPTT goes back at most `backward` steps: earlier steps get no gradient.
        let first = first_step(ctx, t);
        let mut dz = mgr.create_uninitialized::<T>(ArrayType::BpWorkingMem, &[t * b, 4 * n])?;
        if first > 0 {
            dz.view_mut()
                .slice_axis(0, 0, first * b, 1)?
                .fill(T::ZERO)?;
        }
        let mut dh = mgr.create::<T>(ArrayType::BpWorkingMem, &[b, n])?;
        let mut dc = mgr.create::<T>(ArrayType::BpWorkingMem, &[b, n])?;
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
                ops::lstm_step_backward_into(
                    &cache,
                    &layout,
                    s,
                    &eps_t.view().index_axis(0, s)?,
                    &mut dh,
                    &mut dc,
                    &mut dzs,
                    m.as_ref(),
                    act,
                    gate,
                )?;
            }
            let dzs = dz.view().slice_axis(0, s * b, (s + 1) * b, 1)?;
            step_product(&dzs, &rwt, packed_rwt.as_ref(), T::ONE, &mut dh)?;
        }
        let (nw, nr) = (ni * 4 * n, n * 4 * n);
        let xt = time_major(&x, ArrayType::BpWorkingMem, mgr)?;
        let xt = xt.view().reshape(&[t * b, ni])?;
        {
            let mut gw = grads
                .view_mut()
                .slice_axis(0, 0, nw, 1)?
                .reshape(&[ni, 4 * n])?;
            ops::gemm_into(T::ONE, &xt.t(), &dz, T::ZERO, &mut gw)?;
        }
        {
            let h_prev = layout
                .hidden(&cache)?
                .slice_axis(0, 0, t, 1)?
                .reshape(&[t * b, n])?;
            let mut grw = grads
                .view_mut()
                .slice_axis(0, nw, nw + nr, 1)?
                .reshape(&[n, 4 * n])?;
            ops::gemm_into(T::ONE, &h_prev.t(), &dz, T::ZERO, &mut grw)?;
        }
        {
            let mut gb = grads
                .view_mut()
                .slice_axis(0, nw + nr, nw + nr + 4 * n, 1)?;
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
