//! The carried hidden state of a recurrent layer with one state (SimpleRnn, GRU): one copy for
//! `rnn_time_step`, one carried between truncated-BPTT segments. Both are detached arrays,
//! allocated once per batch size and overwritten in place (see "Recurrent layers" in
//! `docs/design.md` for why not a workspace).

use dl4rs_array::{ArrayView, ArrayViewMut, AsView, DataType, NdArray};

use super::layer_error;
use crate::error::NnError;
use crate::layers::{RecurrentMode, RnnStateSlot, StepContext};

/// DL4J's key of the carried output (`STATE_KEY_PREV_ACTIVATION`).
pub(crate) const STATE_H: &str = "prevAct";

/// The two carried states of a one-state recurrent layer.
pub(crate) struct HiddenState<T: DataType> {
    step: Option<NdArray<T>>,
    tbptt: Option<NdArray<T>>,
}

impl<T: DataType> HiddenState<T> {
    pub(crate) fn new() -> Self {
        HiddenState {
            step: None,
            tbptt: None,
        }
    }

    /// Where a forward pass in `mode` writes its last state (`None`: a fresh pass keeps none).
    pub(crate) fn slot(&mut self, mode: RecurrentMode) -> Option<&mut Option<NdArray<T>>> {
        match mode {
            RecurrentMode::Fresh => None,
            RecurrentMode::TimeStep => Some(&mut self.step),
            RecurrentMode::Tbptt { .. } => Some(&mut self.tbptt),
        }
    }

    /// `h0` := the state a forward pass in `ctx.recurrent` starts from (zeros when none is
    /// carried); an error naming the layer when the carried batch differs from `input`'s.
    pub(crate) fn start(
        &self,
        h0: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        kind: &'static str,
        name: Option<&str>,
        input: &[usize],
    ) -> Result<(), NnError> {
        let carried = match ctx.recurrent {
            RecurrentMode::Fresh => None,
            RecurrentMode::TimeStep => self.step.as_ref(),
            RecurrentMode::Tbptt { .. } => self.tbptt.as_ref(),
        };
        match carried {
            Some(h) if h.shape() == h0.shape() => h0.assign(h)?,
            Some(h) => {
                return Err(layer_error(
                    ctx,
                    kind,
                    name,
                    format!(
                        "the carried state has batch {} but the input {input:?} has batch {}: \
                         call rnn_clear_previous_state() before a batch of another size",
                        h.shape()[0],
                        h0.shape()[0]
                    ),
                ));
            }
            None => h0.fill(T::ZERO)?,
        }
        Ok(())
    }

    /// `Layer::rnn_state`.
    pub(crate) fn views(&self, slot: RnnStateSlot) -> Vec<(&'static str, ArrayView<'_, T>)> {
        let s = match slot {
            RnnStateSlot::TimeStep => &self.step,
            RnnStateSlot::Tbptt => &self.tbptt,
        };
        s.iter().map(|h| (STATE_H, h.view())).collect()
    }

    /// `Layer::rnn_set_state` for a layer `kind` of `n` units.
    pub(crate) fn set(
        &mut self,
        kind: &str,
        n: usize,
        slot: RnnStateSlot,
        key: &str,
        value: &ArrayView<'_, T>,
    ) -> Result<(), NnError> {
        if key != STATE_H || !matches!(value.shape(), [_, m] if *m == n) {
            return Err(NnError::Input(format!(
                "{kind}: expected state {STATE_H:?} of shape [batch, {n}], found {key:?} of \
                 shape {:?}",
                value.shape()
            )));
        }
        let target = match slot {
            RnnStateSlot::TimeStep => &mut self.step,
            RnnStateSlot::Tbptt => &mut self.tbptt,
        };
        store(target, value)
    }

    /// `Layer::rnn_clear_state`.
    pub(crate) fn clear(&mut self) {
        self.step = None;
        self.tbptt = None;
    }
}

/// Overwrites `slot` with `h`, allocating only when the shape changed.
pub(crate) fn store<T: DataType>(
    slot: &mut Option<NdArray<T>>,
    h: &ArrayView<'_, T>,
) -> Result<(), NnError> {
    if slot.as_ref().is_none_or(|s| s.shape() != h.shape()) {
        *slot = Some(NdArray::zeros_detached(h.shape())?);
    }
    if let Some(s) = slot {
        s.assign(h)?;
    }
    Ok(())
}
