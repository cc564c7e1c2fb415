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

#[cfg(test)]
mod tests {
    //! Truncated BPTT inside the engine: the gradient of a segment that starts from a carried
    //! state (a constant: the gradient is cut there) checked against central differences, and
    //! a fit equal to fitting its segments one by one, each from the state the previous
    //! segment's forward pass left.

    use dl4rs_array::{ArrayView, AsView, NdArray};
    use dl4rs_data::DataSet;

    use crate::layers::{RecurrentMode, RnnStateSlot};
    use crate::*;

    fn net(backprop: BackpropType) -> MultiLayerNetwork<f64> {
        let mut conf = NeuralNetConfiguration::builder()
            .seed(3)
            .updater(Updater::sgd(0.2))
            .list()
            .layer(LayerConf::lstm(3).build())
            .layer(LayerConf::lstm(2).build())
            .layer(
                LayerConf::rnn_output(LossFunction::Mcxent, 3)
                    .activation(Activation::Softmax)
                    .build(),
            )
            .set_input_type(InputType::recurrent(2))
            .build()
            .unwrap();
        conf.global.backprop_type = backprop;
        conf.global.tbptt_forward_length = 3;
        conf.global.tbptt_backward_length = 3;
        MultiLayerNetwork::new(conf).unwrap()
    }

    fn series(t: usize) -> DataSet<f64> {
        let b = 2;
        let x = NdArray::<f64>::rand_uniform(&[b, 2, t], -1.0, 1.0, 4).unwrap();
        let mut y = vec![0.0; b * 3 * t];
        let mut m = vec![0.0; b * t];
        for r in 0..b {
            for s in 0..t - 2 * r {
                m[r * t + s] = 1.0;
                y[(r * 3 + (r + 2 * s) % 3) * t + s] = 1.0;
            }
        }
        let m = NdArray::from_slice(&[b, t], &m).unwrap();
        DataSet::new(x, NdArray::from_slice(&[b, 3, t], &y).unwrap())
            .unwrap()
            .with_masks(Some(m.dup().unwrap()), Some(m))
            .unwrap()
    }

    fn cut(d: &DataSet<f64>, from: usize, to: usize) -> DataSet<f64> {
        let c = |a: &NdArray<f64>, axis| a.view().slice_axis(axis, from, to, 1).unwrap().dup();
        DataSet::new(c(&d.features, 2).unwrap(), c(&d.labels, 2).unwrap())
            .unwrap()
            .with_masks(
                d.features_mask.as_ref().map(|m| c(m, 1).unwrap()),
                d.labels_mask.as_ref().map(|m| c(m, 1).unwrap()),
            )
            .unwrap()
    }

    type State = Vec<Vec<(String, NdArray<f64>)>>;

    fn set_tbptt_state(net: &mut MultiLayerNetwork<f64>, state: &State) {
        for (layer, s) in state.iter().enumerate() {
            let v = net.layer_nodes[layer];
            let views: Vec<(&str, ArrayView<'_, f64>)> =
                s.iter().map(|(k, a)| (k.as_str(), a.view())).collect();
            net.core
                .engine
                .rnn_set_state(v, RnnStateSlot::Tbptt, &views)
                .unwrap();
        }
    }

    /// The score and gradient of `seg` as a truncated-BPTT segment starting from `state`.
    fn segment_gradient(
        net: &mut MultiLayerNetwork<f64>,
        seg: &DataSet<f64>,
        state: &State,
    ) -> f64 {
        set_tbptt_state(net, state);
        let engine = &mut net.core.engine;
        engine.rnn_mode = RecurrentMode::Tbptt { backward: 3 };
        let score = engine
            .compute_gradient_and_score(&crate::model::data_set_batch(seg))
            .unwrap();
        engine.rnn_mode = RecurrentMode::Fresh;
        score
    }

    fn random_state(seed: u64) -> State {
        [3usize, 2]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                ["prevAct", "prevMemCell"]
                    .iter()
                    .enumerate()
                    .map(|(k, key)| {
                        let s = seed + 10 * i as u64 + k as u64;
                        let a = NdArray::<f64>::rand_uniform(&[2, n], -0.9, 0.9, s).unwrap();
                        (key.to_string(), a)
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn gradient_check_through_a_segment() {
        let mut net = net(BackpropType::Standard);
        let seg = cut(&series(6), 3, 6);
        let state = random_state(7);
        segment_gradient(&mut net, &seg, &state);
        let analytic = net.gradients().to_vec().unwrap();
        assert!(analytic.iter().any(|g| g.abs() > 1e-4));
        let original = net.params().to_vec().unwrap();
        let n = original.len();
        let mut p = original.clone();
        for i in 0..n {
            let mut at = |v: f64, net: &mut MultiLayerNetwork<f64>| {
                p[i] = v;
                net.set_params(&NdArray::from_slice(&[n], &p).unwrap())
                    .unwrap();
                segment_gradient(net, &seg, &state)
            };
            let plus = at(original[i] + 1e-6, &mut net);
            let minus = at(original[i] - 1e-6, &mut net);
            p[i] = original[i];
            let numeric = (plus - minus) / 2e-6;
            let (a, abs) = (analytic[i], (analytic[i] - numeric).abs());
            assert!(
                abs < 1e-8 || abs / (a.abs() + numeric.abs()) < 1e-5,
                "parameter {i}: analytic {a:e} vs numeric {numeric:e}"
            );
        }
    }

    /// `fit_iter` honours the backprop type: an iterator's batches are fitted in segments,
    /// exactly as `fit` fits each batch (DL4J's `fit(DataSetIterator)` under TBPTT).
    #[test]
    fn fit_iter_fits_each_batch_in_segments() {
        use dl4rs_data::InMemoryDataSetIterator;
        let data = series(8);
        let mut by_batch = net(BackpropType::TruncatedBptt);
        for epoch in 0..2 {
            for r in 0..2 {
                by_batch.fit(&data.select_rows(&[r]).unwrap()).unwrap();
            }
            assert_eq!(by_batch.iteration_count(), 6 * (epoch + 1));
        }
        let mut iterated = net(BackpropType::TruncatedBptt);
        let mut it = InMemoryDataSetIterator::new(data.dup().unwrap(), 1).unwrap();
        iterated.fit_iter(&mut it, 2).unwrap();
        // Two batches of 8 steps, 3 segments each (3 + 3 + 2), two epochs.
        assert_eq!(iterated.iteration_count(), 12);
        assert_eq!(
            iterated.last_score().to_bits(),
            by_batch.last_score().to_bits()
        );
        let (a, b) = (
            iterated.params().to_vec().unwrap(),
            by_batch.params().to_vec().unwrap(),
        );
        assert_eq!(a, b, "fit_iter and fit on the same batches");
        // Standard backprop through the same iterator is a different (whole-series) fit.
        let mut standard = net(BackpropType::Standard);
        standard.fit_iter(&mut it, 2).unwrap();
        assert_eq!(standard.iteration_count(), 4);
        assert_ne!(standard.params().to_vec().unwrap(), a);
    }

    #[test]
    fn a_fit_equals_its_segments_one_by_one() {
        let data = series(8);
        let mut tbptt = net(BackpropType::TruncatedBptt);
        let mut manual = net(BackpropType::Standard);
        let mut replay = net(BackpropType::Standard);
        tbptt.fit(&data).unwrap();
        // Segment by segment: each starts from the state the previous one's forward pass
        // left, computed here independently by stateful inference with the parameters the
        // previous segment was fitted with.
        let mut state: State = vec![Vec::new(), Vec::new()];
        for (from, to) in [(0, 3), (3, 6), (6, 8)] {
            let seg = cut(&data, from, to);
            let before = manual.params().dup().unwrap();
            if from == 0 {
                manual.core.engine.rnn_clear_state();
            } else {
                set_tbptt_state(&mut manual, &state);
            }
            let engine = &mut manual.core.engine;
            engine.rnn_mode = RecurrentMode::Tbptt { backward: 3 };
            engine
                .compute_gradient_and_score(&crate::model::data_set_batch(&seg))
                .unwrap();
            engine.rnn_mode = RecurrentMode::Fresh;
            engine.apply_update().unwrap();
            // The next segment's initial state, by rnn_time_step.
            replay.set_params(&before).unwrap();
            replay.rnn_clear_previous_state();
            for (layer, s) in state.iter().enumerate() {
                let views: Vec<(&str, ArrayView<'_, f64>)> =
                    s.iter().map(|(k, a)| (k.as_str(), a.view())).collect();
                if !views.is_empty() {
                    replay.rnn_set_previous_state(layer, &views).unwrap();
                }
            }
            let mask = seg.features_mask.as_ref().map(AsView::view);
            replay
                .rnn_time_step_masked(&seg.features, mask.as_ref())
                .unwrap();
            state = (0..2)
                .map(|l| replay.rnn_get_previous_state(l).unwrap())
                .collect();
        }
        assert_eq!(tbptt.iteration_count(), 3);
        assert_eq!(
            tbptt.last_score().to_bits(),
            manual.core.engine.score.to_bits()
        );
        let (a, b) = (
            tbptt.params().to_vec().unwrap(),
            manual.params().to_vec().unwrap(),
        );
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() < 1e-12, "parameter {i}: {x} vs {y}");
        }
    }
}
