//! A network's recurrent API (DL4J's): `rnn_time_step` (stateful inference, one or more steps
//! at a time, the state kept between calls), `rnn_clear_previous_state`, and the carried state
//! of one layer (`rnn_get_previous_state` / `rnn_set_previous_state`).

use dl4rs_array::{ArrayView, AsView, DataType, NdArray};
use dl4rs_memory::Workspace;

use super::MultiLayerNetwork;
use crate::error::NnError;
use crate::input_type::InputType;
use crate::layers::RnnStateSlot;
use crate::model::engine::{Arrays, Masks};

impl<T: DataType> MultiLayerNetwork<T> {
    /// The input as a sequence: a `[batch, n]` array is one time step (`[batch, n, 1]`) when
    /// the network reads sequences; whether it was.
    fn as_steps<'a>(&self, x: ArrayView<'a, T>) -> Result<(ArrayView<'a, T>, bool), NnError> {
        let recurrent = matches!(self.conf.network_input_type(), InputType::Recurrent { .. });
        match x.shape() {
            &[b, n] if recurrent => Ok((x.reshape(&[b, n, 1])?, true)),
            _ => Ok((x, false)),
        }
    }

    fn time_step(
        &mut self,
        input: &impl AsView<T>,
        mask: Option<&ArrayView<'_, T>>,
        workspace: Option<&Workspace>,
    ) -> Result<NdArray<T>, NnError> {
        let (x, one_step) = self.as_steps(input.view())?;
        if let Some(ws) = workspace {
            self.engine_mut().set_user_workspace(ws)?;
        }
        let mut outs = std::mem::take(&mut self.core.out_buf);
        outs.clear();
        let result = self.core.engine.rnn_time_step_into(
            &Arrays::One(x),
            &Masks::One(mask.copied()),
            workspace.is_some(),
            &mut outs,
        );
        let out = outs.pop();
        self.core.out_buf = outs;
        result?;
        let out = out.ok_or_else(|| NnError::config("the network has no layers"))?;
        match out.shape() {
            &[b, n, 1] if one_step => Ok(out.reshape(&[b, n])?),
            _ => Ok(out),
        }
    }

    /// Stateful inference (DL4J `rnnTimeStep`): the output for `input` (`[batch, n, time]`,
    /// or `[batch, n]` for one step, giving `[batch, n_out]`), the recurrent layers starting
    /// from the state the previous call left and keeping the final one, so feeding a series
    /// in pieces gives the same outputs as feeding it whole. Detached.
    pub fn rnn_time_step(&mut self, input: &impl AsView<T>) -> Result<NdArray<T>, NnError> {
        self.time_step(input, None, None)
    }

    /// [`MultiLayerNetwork::rnn_time_step`] with a feature mask (masked steps keep the state).
    pub fn rnn_time_step_masked(
        &mut self,
        input: &impl AsView<T>,
        mask: Option<&ArrayView<'_, T>>,
    ) -> Result<NdArray<T>, NnError> {
        self.time_step(input, mask, None)
    }

    /// [`MultiLayerNetwork::rnn_time_step`] with the output placed in the caller's open
    /// workspace: no heap allocation in steady state.
    pub fn rnn_time_step_in(
        &mut self,
        input: &impl AsView<T>,
        workspace: &Workspace,
    ) -> Result<NdArray<T>, NnError> {
        self.time_step(input, None, Some(workspace))
    }

    /// Forgets the state of every recurrent layer (DL4J `rnnClearPreviousState`).
    pub fn rnn_clear_previous_state(&mut self) {
        self.engine_mut().rnn_clear_state();
    }

    fn layer_vertex(&self, layer: usize) -> Result<usize, NnError> {
        self.layer_nodes.get(layer).copied().ok_or_else(|| {
            NnError::Input(format!(
                "no layer {layer} (the network has {})",
                self.layer_nodes.len()
            ))
        })
    }

    /// Layer `layer`'s carried state (DL4J `rnnGetPreviousState`), copied: for an LSTM
    /// `"prevAct"` and `"prevMemCell"`, each `[batch, n_out]`; empty before a call.
    pub fn rnn_get_previous_state(
        &self,
        layer: usize,
    ) -> Result<Vec<(String, NdArray<T>)>, NnError> {
        self.engine()
            .rnn_state(self.layer_vertex(layer)?, RnnStateSlot::TimeStep)
    }

    /// Sets layer `layer`'s carried state (DL4J `rnnSetPreviousState`).
    pub fn rnn_set_previous_state(
        &mut self,
        layer: usize,
        state: &[(&str, ArrayView<'_, T>)],
    ) -> Result<(), NnError> {
        let v = self.layer_vertex(layer)?;
        self.engine_mut()
            .rnn_set_state(v, RnnStateSlot::TimeStep, state)
    }

    /// Layer `layer`'s truncated-BPTT state (DL4J `rnnGetTBPTTState`): what the last segment
    /// left, copied; empty outside a truncated-BPTT fit (it is cleared after each batch).
    pub fn rnn_get_tbptt_state(&self, layer: usize) -> Result<Vec<(String, NdArray<T>)>, NnError> {
        self.engine()
            .rnn_state(self.layer_vertex(layer)?, RnnStateSlot::Tbptt)
    }
}
