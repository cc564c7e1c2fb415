//! Two wrappers around a layer over sequences:
//!
//! * `TimeDistributed` (DL4J's): a feed-forward layer applied at every time step, the
//!   sequence seen as rows `[batch * time, n]` (row `example * time + step`) with the mask as
//!   a row mask `[batch * time, 1]`. The wrapped layer's output rows are the wrapper's output
//!   permuted back, so its backward pass gets them from `Saved::output`; its cache is the
//!   wrapper's.
//! * `MaskZeroLayer` (DL4J's): masks every step whose features all equal `masking_value`
//!   (and the steps the input mask already masks), runs the wrapped recurrent layer with that
//!   mask, and passes it on as the output's mask. The backward pass recomputes it from the
//!   input.

use dl4rs_array::{ArrayView, ArrayViewMut, AsView, DataType, NdArray};

use super::{check_mask, dims3, from_rows, to_rows};
use crate::error::NnError;
use crate::input_type::InputType;
use crate::layers::{
    ACT, Epsilon, Forward, GRAD, Layer, LayerInfo, LayerInput, MaskOut, Saved, StepContext,
};
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// A feed-forward layer at every time step.
pub struct TimeDistributedLayer<T: DataType> {
    info: LayerInfo,
    inner: Box<dyn Layer<T>>,
}

impl<T: DataType> TimeDistributedLayer<T> {
    /// Wraps `inner` (rows in, rows out).
    pub fn new(name: Option<String>, inner: Box<dyn Layer<T>>) -> Result<Self, NnError> {
        let i = inner.info();
        let (n_in, n_out) = match (i.input_type, i.output_type) {
            (InputType::FeedForward { size: a }, InputType::FeedForward { size: b }) => (a, b),
            (a, b) => {
                return Err(NnError::config(format!(
                    "TimeDistributed wraps a feed-forward layer, but {} reads {a} and outputs {b}",
                    i.kind
                )));
            }
        };
        let info = LayerInfo::new(
            "TimeDistributed",
            InputType::recurrent(n_in),
            InputType::recurrent(n_out),
        )
        .named(name.or_else(|| i.name.clone()))
        .with_params(i.params.clone());
        Ok(TimeDistributedLayer { info, inner })
    }
}

impl<T: DataType> Layer<T> for TimeDistributedLayer<T> {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, params: &mut [T], seed: u64) {
        self.inner.init_params(params, seed);
    }

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        let x = input.activations;
        let name = self.info.name.clone();
        check_mask(
            ctx,
            "TimeDistributed",
            name.as_deref(),
            input.mask.as_ref(),
            &x,
        )?;
        let (b, _, t) = dims3(&x);
        let rows = to_rows(&x, ArrayType::FfWorkingMem, mgr)?;
        let row_mask = match &input.mask {
            Some(m) => Some(m.reshape(&[b * t, 1])?),
            None => None,
        };
        let inner_ctx = StepContext {
            batch: b * t,
            ..*ctx
        };
        let f = self.inner.forward(
            &LayerInput {
                activations: rows.view(),
                mask: row_mask,
            },
            params,
            &inner_ctx,
            mgr,
        )?;
        let out = from_rows(&f.activations.view(), b, ACT, mgr)?;
        Ok(Forward::new(out).with_cache(f.cache))
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
        let (b, _, t) = dims3(&saved.input);
        let rows = to_rows(&saved.input, ArrayType::BpWorkingMem, mgr)?;
        let out_rows = to_rows(&saved.output, ArrayType::BpWorkingMem, mgr)?;
        let eps_rows = to_rows(&eps, ArrayType::BpWorkingMem, mgr)?;
        let row_mask = match &saved.mask {
            Some(m) => Some(m.reshape(&[b * t, 1])?),
            None => None,
        };
        let inner_ctx = StepContext {
            batch: b * t,
            ..*ctx
        };
        let dx = self.inner.backward(
            &Saved {
                input: rows.view(),
                mask: row_mask,
                output: out_rows.view(),
                cache: saved.cache,
            },
            Epsilon::Gradient(eps_rows.view()),
            params,
            grads,
            &inner_ctx,
            mgr,
        )?;
        match dx {
            Some(d) => Ok(Some(from_rows(&d.view(), b, GRAD, mgr)?)),
            None => Ok(None),
        }
    }
}

/// A recurrent layer that ignores the steps whose features all equal a value.
pub struct MaskZeroLayer<T: DataType> {
    info: LayerInfo,
    inner: Box<dyn Layer<T>>,
    masking_value: f64,
}

impl<T: DataType> MaskZeroLayer<T> {
    /// Wraps the recurrent layer `inner`.
    pub fn new(
        name: Option<String>,
        inner: Box<dyn Layer<T>>,
        masking_value: f64,
    ) -> Result<Self, NnError> {
        let i = inner.info();
        if !matches!(i.output_type, InputType::Recurrent { .. }) {
            return Err(NnError::config(format!(
                "MaskZeroLayer wraps a recurrent layer, but {} outputs {}",
                i.kind, i.output_type
            )));
        }
        let info = LayerInfo::new("MaskZeroLayer", i.input_type, i.output_type)
            .named(name.or_else(|| i.name.clone()))
            .with_params(i.params.clone());
        Ok(MaskZeroLayer {
            info,
            inner,
            masking_value,
        })
    }

    /// The mask `[batch, time]` (created as `ty`): 0 where every feature of the step equals
    /// the masking value or the input mask is 0, else 1.
    fn mask(
        &self,
        x: &ArrayView<'_, T>,
        given: Option<&ArrayView<'_, T>>,
        ty: ArrayType,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<NdArray<T>, NnError> {
        let (b, n, t) = dims3(x);
        let v = T::from_f64(self.masking_value);
        let mut m = mgr.create_uninitialized::<T>(ty, &[b, t])?;
        let xr = x.read()?;
        let gr = match given {
            Some(g) => Some(g.read()?),
            None => None,
        };
        let mut w = m.write()?;
        for r in 0..b {
            for s in 0..t {
                let padded = (0..n).all(|f| xr.get(&[r, f, s]).is_ok_and(|x| x == v));
                let given_off = gr
                    .as_ref()
                    .is_some_and(|g| g.get(&[r, s]).is_ok_and(|x| x == T::ZERO));
                let keep = !(padded || given_off);
                w.set(&[r, s], if keep { T::ONE } else { T::ZERO })?;
            }
        }
        drop(w);
        Ok(m)
    }
}

impl<T: DataType> Layer<T> for MaskZeroLayer<T> {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, params: &mut [T], seed: u64) {
        self.inner.init_params(params, seed);
    }

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        let x = input.activations;
        let name = self.info.name.clone();
        check_mask(
            ctx,
            "MaskZeroLayer",
            name.as_deref(),
            input.mask.as_ref(),
            &x,
        )?;
        // The output's mask: an activation, so it lives as long as the output.
        let mask = self.mask(&x, input.mask.as_ref(), ACT, mgr)?;
        let f = self.inner.forward(
            &LayerInput {
                activations: x,
                mask: Some(mask.view()),
            },
            params,
            ctx,
            mgr,
        )?;
        Ok(Forward {
            activations: f.activations,
            cache: f.cache,
            mask: MaskOut::New(mask),
        })
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
        let mask = self.mask(
            &saved.input,
            saved.mask.as_ref(),
            ArrayType::BpWorkingMem,
            mgr,
        )?;
        self.inner.backward(
            &Saved {
                mask: Some(mask.view()),
                ..*saved
            },
            epsilon,
            params,
            grads,
            ctx,
            mgr,
        )
    }

    fn rnn_state(
        &self,
        slot: crate::layers::RnnStateSlot,
    ) -> Vec<(&'static str, ArrayView<'_, T>)> {
        self.inner.rnn_state(slot)
    }

    fn rnn_set_state(
        &mut self,
        slot: crate::layers::RnnStateSlot,
        key: &str,
        value: &ArrayView<'_, T>,
    ) -> Result<(), NnError> {
        self.inner.rnn_set_state(slot, key, value)
    }

    fn rnn_clear_state(&mut self) {
        self.inner.rnn_clear_state();
    }
}
