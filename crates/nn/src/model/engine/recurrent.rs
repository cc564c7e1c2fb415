//! The recurrent passes of the engine: stateful inference (`rnn_time_step`), the carried states
//! (clear, get, set), and truncated backprop through time (a series fitted segment by segment,
//! state carried between segments, one updater step per segment).

use dl4rs_array::{ArrayView, AsView, DataType, NdArray};

use super::{Arrays, Batch, Engine, Masks};
use crate::error::NnError;
use crate::layers::{RecurrentMode, RnnStateSlot};

impl<T: DataType> Engine<T> {
    /// Stateful inference: [`Engine::output_into`] with the recurrent layers starting from the
    /// state the previous call left and keeping the final one.
    pub fn rnn_time_step_into(
        &mut self,
        x: &Arrays<'_, T>,
        x_masks: &Masks<'_, T>,
        into_user: bool,
        out: &mut Vec<NdArray<T>>,
    ) -> Result<(), NnError> {
        self.rnn_mode = RecurrentMode::TimeStep;
        let result = self.output_into(x, x_masks, false, into_user, out);
        self.rnn_mode = RecurrentMode::Fresh;
        result
    }

    /// Forgets every recurrent layer's carried state.
    pub fn rnn_clear_state(&mut self) {
        for v in 0..self.ops.len() {
            if let Some(l) = self.layer_mut(v) {
                l.rnn_clear_state();
            }
        }
    }

    /// Vertex `v`'s carried state, copied (detached).
    pub fn rnn_state(
        &self,
        v: usize,
        slot: RnnStateSlot,
    ) -> Result<Vec<(String, NdArray<T>)>, NnError> {
        let layer = self
            .layer(v)
            .ok_or_else(|| NnError::Input(format!("{} is not a layer", self.label(v))))?;
        layer
            .rnn_state(slot)
            .into_iter()
            .map(|(k, a)| Ok((k.to_string(), a.detach()?)))
            .collect()
    }

    /// Sets vertex `v`'s carried state.
    pub fn rnn_set_state(
        &mut self,
        v: usize,
        slot: RnnStateSlot,
        state: &[(&str, ArrayView<'_, T>)],
    ) -> Result<(), NnError> {
        let label = self.label(v);
        let layer = self
            .layer_mut(v)
            .ok_or_else(|| NnError::Input(format!("{label} is not a layer")))?;
        for (key, value) in state {
            layer.rnn_set_state(slot, key, value)?;
        }
        Ok(())
    }

    /// Truncated BPTT on one batch of one input and one output: the series is cut into
    /// segments of `forward` steps (the last may be shorter); each segment is copied into the
    /// all-layers workspace and fitted (forward from the previous segment's state, backprop at
    /// most `backward` steps back, one updater step). Returns the last segment's score.
    pub fn fit_tbptt(
        &mut self,
        batch: &Batch<'_, T>,
        forward: usize,
        backward: usize,
    ) -> Result<f64, NnError> {
        self.check_labels(batch)?;
        let (x, y) = match (batch.features.get(0), batch.labels.get(0)) {
            (Some(x), Some(y)) if batch.features.len() == 1 && batch.labels.len() == 1 => (x, y),
            _ => {
                return Err(NnError::Input(format!(
                    "truncated BPTT needs one input and one output; the network has {} and {}",
                    self.input_types.len(),
                    self.outputs.len()
                )));
            }
        };
        if x.shape().len() != 3 || y.shape().len() != 3 || x.shape()[2] != y.shape()[2] {
            return Err(NnError::Input(format!(
                "truncated BPTT cuts features [batch, n, time] and labels [batch, k, time] \
                 along time: found features {:?} and labels {:?} (use per-step labels, or \
                 BackpropType::Standard)",
                x.shape(),
                y.shape()
            )));
        }
        let steps = x.shape()[2];
        let (x_mask, y_mask) = (batch.features_masks.get(0), batch.labels_masks.get(0));
        self.rnn_clear_state();
        self.rnn_mode = RecurrentMode::Tbptt { backward };
        let mut result = Ok(f64::NAN);
        let mut start = 0;
        while start < steps && result.is_ok() {
            let end = (start + forward).min(steps);
            result = self.fit_segment(&x, &y, x_mask, y_mask, start, end);
            start = end;
        }
        self.rnn_mode = RecurrentMode::Fresh;
        self.rnn_clear_state();
        result
    }

    /// One segment `start..end` of a truncated-BPTT fit.
    fn fit_segment(
        &mut self,
        x: &ArrayView<'_, T>,
        y: &ArrayView<'_, T>,
        x_mask: Option<ArrayView<'_, T>>,
        y_mask: Option<ArrayView<'_, T>>,
        start: usize,
        end: usize,
    ) -> Result<f64, NnError> {
        use crate::model::workspaces::NetWorkspaces;
        use crate::workspace_mgr::ArrayType;
        let enabled = self.training_enabled();
        let score = {
            let _all = if enabled {
                Some(NetWorkspaces::scope(&self.ws.all_act)?)
            } else {
                None
            };
            // Contiguous copies of the segment (masks and losses read whole rows).
            let (xs, ys, xm, ym) = {
                let mgr = if enabled {
                    &self.ws.train
                } else {
                    &self.ws.none
                };
                let cut = |a: &ArrayView<'_, T>, axis: usize| -> Result<NdArray<T>, NnError> {
                    mgr.dup(ArrayType::Input, &a.slice_axis(axis, start, end, 1)?)
                };
                (
                    cut(x, 2)?,
                    cut(y, 2)?,
                    x_mask.map(|m| cut(&m, 1)).transpose()?,
                    y_mask.map(|m| cut(&m, 1)).transpose()?,
                )
            };
            let segment = Batch {
                features: Arrays::One(xs.view()),
                features_masks: Masks::One(xm.as_ref().map(AsView::view)),
                labels: Arrays::One(ys.view()),
                labels_masks: Masks::One(ym.as_ref().map(AsView::view)),
            };
            self.gradient_and_score(&segment)?
        };
        self.score = score;
        self.apply_update()?;
        Ok(score)
    }
}
