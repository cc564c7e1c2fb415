//! Stateful inference and truncated BPTT: `rnn_time_step` step by step (and in chunks) equals
//! `output` on the whole sequence; the carried state can be read, cleared and restored;
//! truncated BPTT round-trips through JSON, and with segments as long as the series trains
//! exactly as standard backprop; DL4J behaviour 50 (rnnTimeStep and TBPTT fit in every
//! workspace mode with SCOPE_PANIC on).

use dl4rs_array::{ArrayView, AsView, NdArray};
use dl4rs_data::DataSet;
use dl4rs_memory::{DebugMode, set_debug_mode};
use dl4rs_nn::*;

fn conf(mode: WorkspaceMode) -> MultiLayerConfiguration {
    NeuralNetConfiguration::builder()
        .seed(17)
        .updater(Updater::sgd(0.1))
        .weight_init(WeightInit::XavierUniform)
        .training_workspace_mode(mode)
        .inference_workspace_mode(mode)
        .list()
        .layer(LayerConf::lstm(5).build())
        .layer(LayerConf::lstm(4).build())
        .layer(
            LayerConf::rnn_output(LossFunction::Mcxent, 3)
                .activation(Activation::Softmax)
                .build(),
        )
        .set_input_type(InputType::recurrent(3))
        .build()
        .unwrap()
}

/// Steps `from..to` of `x` (`[b, n, t]`) as a new `[b, n, to - from]` array.
fn steps(x: &NdArray<f64>, from: usize, to: usize) -> NdArray<f64> {
    x.view().slice_axis(2, from, to, 1).unwrap().dup().unwrap()
}

fn assert_close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() < 1e-12, "{what} [{i}]: {x} vs {y}");
    }
}

#[test]
fn time_steps_equal_the_whole_sequence() {
    let mut net = MultiLayerNetwork::<f64>::new(conf(WorkspaceMode::Enabled)).unwrap();
    let (b, t) = (2, 9);
    let x = NdArray::<f64>::rand_uniform(&[b, 3, t], -1.0, 1.0, 5).unwrap();
    let whole = net.output(&x, false).unwrap();
    let w = whole.to_vec().unwrap();
    // One step at a time, as [batch, n] rows: the output is [batch, 3].
    for s in 0..t {
        let step = x.view().index_axis(2, s).unwrap().dup().unwrap();
        let out = net.rnn_time_step(&step).unwrap();
        assert_eq!(out.shape(), &[b, 3]);
        let o = out.to_vec().unwrap();
        for r in 0..b {
            for c in 0..3 {
                let (got, want) = (o[r * 3 + c], w[(r * 3 + c) * t + s]);
                assert!((got - want).abs() < 1e-12, "step {s}: {got} vs {want}");
            }
        }
    }
    // Chunks of 4, 4 and 1 steps after clearing the state.
    net.rnn_clear_previous_state();
    let mut pieces = Vec::new();
    for (from, to) in [(0, 4), (4, 8), (8, 9)] {
        pieces.push(net.rnn_time_step(&steps(&x, from, to)).unwrap());
    }
    for (k, (from, to)) in [(0, 4), (4, 8), (8, 9)].into_iter().enumerate() {
        let want = steps(&whole, from, to).to_vec().unwrap();
        assert_close(&pieces[k].to_vec().unwrap(), &want, "chunk");
    }
    // The plain output is stateless: it ignores the carried state.
    let again = net.output(&x, false).unwrap();
    assert!(again.to_vec().unwrap() == w);
}

#[test]
fn time_steps_equal_the_whole_sequence_for_every_recurrent_layer() {
    let conf = NeuralNetConfiguration::builder()
        .seed(3)
        .list()
        .layer(LayerConf::gru(4).build())
        .layer(LayerConf::mask_zero(LayerConf::simple_rnn(3).build(), 0.0))
        .layer(LayerConf::time_distributed(LayerConf::dense(2).build()))
        .layer(LayerConf::rnn_loss(LossFunction::Mse, Activation::Identity))
        .set_input_type(InputType::recurrent(3))
        .build()
        .unwrap();
    let mut net = MultiLayerNetwork::<f64>::new(conf).unwrap();
    let x = NdArray::<f64>::rand_uniform(&[2, 3, 7], -1.0, 1.0, 8).unwrap();
    let whole = net.output(&x, false).unwrap();
    let mut pieces = Vec::new();
    for (from, to) in [(0, 3), (3, 4), (4, 7)] {
        pieces.push(net.rnn_time_step(&steps(&x, from, to)).unwrap());
    }
    for (k, (from, to)) in [(0, 3), (3, 4), (4, 7)].into_iter().enumerate() {
        let want = steps(&whole, from, to).to_vec().unwrap();
        assert_close(&pieces[k].to_vec().unwrap(), &want, "GRU / SimpleRnn chunk");
    }
    let keys: Vec<String> = net
        .rnn_get_previous_state(0)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["prevAct"]);
}

#[test]
fn the_carried_state_can_be_read_cleared_and_restored() {
    let mut net = MultiLayerNetwork::<f64>::new(conf(WorkspaceMode::Enabled)).unwrap();
    let x = NdArray::<f64>::rand_uniform(&[3, 3, 6], -1.0, 1.0, 6).unwrap();
    assert!(net.rnn_get_previous_state(0).unwrap().is_empty());
    net.rnn_time_step(&steps(&x, 0, 3)).unwrap();
    let saved: Vec<(String, NdArray<f64>)> = net.rnn_get_previous_state(1).unwrap();
    let keys: Vec<&str> = saved.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["prevAct", "prevMemCell"]);
    assert_eq!(saved[0].1.shape(), &[3, 4]);
    let saved0 = net.rnn_get_previous_state(0).unwrap();
    let rest = net
        .rnn_time_step(&steps(&x, 3, 6))
        .unwrap()
        .to_vec()
        .unwrap();
    // Restore both layers' states and replay the rest: same outputs.
    net.rnn_clear_previous_state();
    assert!(net.rnn_get_previous_state(1).unwrap().is_empty());
    for (layer, state) in [(0, &saved0), (1, &saved)] {
        let views: Vec<(&str, ArrayView<'_, f64>)> =
            state.iter().map(|(k, a)| (k.as_str(), a.view())).collect();
        net.rnn_set_previous_state(layer, &views).unwrap();
    }
    let replay = net
        .rnn_time_step(&steps(&x, 3, 6))
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(replay == rest, "restored state gives the same outputs");
    // A batch of another size needs a cleared state; a wrong state is an error.
    let e = net
        .rnn_time_step(&NdArray::<f64>::zeros(&[2, 3, 1]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rnn_clear_previous_state") && e.contains("LSTM"),
        "{e}"
    );
    // A cleared state keeps its arrays but reads as empty; setting one key of it starts the
    // other from zeros, not from the values cleared.
    net.rnn_clear_previous_state();
    assert!(net.rnn_get_previous_state(0).unwrap().is_empty());
    net.rnn_set_previous_state(0, &[("prevAct", saved0[0].1.view())])
        .unwrap();
    let state = net.rnn_get_previous_state(0).unwrap();
    assert_eq!(state[0].1.to_vec().unwrap(), saved0[0].1.to_vec().unwrap());
    assert!(state[1].1.to_vec().unwrap().iter().all(|v| *v == 0.0));
    let bad = NdArray::<f64>::zeros(&[3, 7]).unwrap();
    let e = net
        .rnn_set_previous_state(0, &[("prevAct", bad.view())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("[batch, 5]") && e.contains("[3, 7]"), "{e}");
    assert!(
        net.rnn_set_previous_state(2, &[("prevAct", bad.view())])
            .is_err()
    );
}

fn tbptt_conf(mode: WorkspaceMode, forward: usize, backward: usize) -> MultiLayerConfiguration {
    let mut c = conf(mode);
    c.global.backprop_type = BackpropType::TruncatedBptt;
    c.global.tbptt_forward_length = forward;
    c.global.tbptt_backward_length = backward;
    c
}

fn series(t: usize) -> DataSet<f32> {
    let b = 4;
    let x = NdArray::<f32>::rand_uniform(&[b, 3, t], -1.0, 1.0, 9).unwrap();
    let mut y = vec![0f32; b * 3 * t];
    let mut m = vec![0f32; b * t];
    for r in 0..b {
        for s in 0..t - r {
            m[r * t + s] = 1.0;
            y[(r * 3 + (r + s) % 3) * t + s] = 1.0;
        }
    }
    let m = NdArray::from_slice(&[b, t], &m).unwrap();
    DataSet::new(x, NdArray::from_slice(&[b, 3, t], &y).unwrap())
        .unwrap()
        .with_masks(Some(m.dup().unwrap()), Some(m))
        .unwrap()
}

#[test]
fn truncated_bptt_configuration() {
    let conf = NeuralNetConfiguration::builder()
        .list()
        .layer(LayerConf::lstm(4).build())
        .layer(LayerConf::rnn_output(LossFunction::Mse, 2).build())
        .backprop_type(BackpropType::TruncatedBptt)
        .tbptt_forward_length(5)
        .tbptt_backward_length(3)
        .set_input_type(InputType::recurrent(3))
        .build()
        .unwrap();
    let json = conf.to_json().unwrap();
    assert!(json.contains("\"TruncatedBPTT\""), "{json}");
    let back = MultiLayerConfiguration::from_json(&json).unwrap();
    assert_eq!(back, conf);
    assert_eq!(
        (
            back.global.tbptt_forward_length,
            back.global.tbptt_backward_length
        ),
        (5, 3)
    );
    // Standard configurations keep their JSON.
    assert!(
        !self::conf(WorkspaceMode::Enabled)
            .to_json()
            .unwrap()
            .contains("tbptt")
    );
    let e = NeuralNetConfiguration::builder()
        .list()
        .layer(LayerConf::lstm(4).build())
        .layer(LayerConf::rnn_output(LossFunction::Mse, 2).build())
        .backprop_type(BackpropType::TruncatedBptt)
        .tbptt_forward_length(3)
        .tbptt_backward_length(5)
        .set_input_type(InputType::recurrent(3))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tbptt_backward_length <= tbptt_forward_length"),
        "{e}"
    );
    // Labels per sequence can't be cut along time.
    let mut net = MultiLayerNetwork::<f32>::new(tbptt_conf(WorkspaceMode::Enabled, 4, 4)).unwrap();
    let d = series(6);
    let flat = DataSet::new(d.features.dup().unwrap(), NdArray::zeros(&[4, 3]).unwrap()).unwrap();
    assert!(net.fit(&flat).is_err());
}

#[test]
fn one_segment_as_long_as_the_series_is_standard_backprop() {
    let d = series(7);
    let mut standard = MultiLayerNetwork::<f32>::new(conf(WorkspaceMode::Enabled)).unwrap();
    let mut tbptt =
        MultiLayerNetwork::<f32>::new(tbptt_conf(WorkspaceMode::Enabled, 7, 7)).unwrap();
    for _ in 0..3 {
        standard.fit(&d).unwrap();
        tbptt.fit(&d).unwrap();
        assert_eq!(
            standard.last_score().to_bits(),
            tbptt.last_score().to_bits()
        );
    }
    assert!(standard.params().to_vec().unwrap() == tbptt.params().to_vec().unwrap());
    // Segments shorter than the series: one updater step per segment.
    let mut cut = MultiLayerNetwork::<f32>::new(tbptt_conf(WorkspaceMode::Enabled, 3, 3)).unwrap();
    cut.fit(&d).unwrap();
    assert_eq!(
        cut.iteration_count(),
        3,
        "7 steps in segments of 3: 3 updates"
    );
    assert!(
        cut.rnn_get_tbptt_state(0).unwrap().is_empty(),
        "cleared after the batch"
    );
}

#[test]
fn behaviour_50_time_steps_and_tbptt_in_every_mode() {
    // DL4J's SCOPE_PANIC: arrays are always checked here; a scope dropped while arrays of its
    // cycle are borrowed panics, and reused blocks are poisoned (a read of memory not written
    // this cycle shows NaN).
    for debug in [DebugMode::PanicOnBorrowedDrop, DebugMode::PoisonOnReset] {
        behaviour_50(debug);
    }
}

fn behaviour_50(debug: DebugMode) {
    set_debug_mode(debug);
    let run = |mode| {
        let mut net = MultiLayerNetwork::<f32>::new(tbptt_conf(mode, 4, 3)).unwrap();
        let d = series(10);
        let mut scores = Vec::new();
        for _ in 0..3 {
            net.fit(&d).unwrap();
            scores.push(net.last_score().to_bits());
        }
        let mask = d.features_mask.as_ref().map(AsView::view);
        let whole = net
            .output_masked(&d.features, mask.as_ref(), false)
            .unwrap();
        let mut stepped = Vec::new();
        for s in 0..10 {
            let x = d
                .features
                .view()
                .slice_axis(2, s, s + 1, 1)
                .unwrap()
                .dup()
                .unwrap();
            let out = net.rnn_time_step(&x).unwrap();
            assert!(!out.is_attached());
            stepped.push(out.to_vec().unwrap());
        }
        (
            scores,
            net.params().to_vec().unwrap(),
            whole.to_vec().unwrap(),
            stepped,
        )
    };
    let (a, b) = (run(WorkspaceMode::Enabled), run(WorkspaceMode::None));
    set_debug_mode(DebugMode::Disabled);
    assert_eq!(a.0, b.0, "TBPTT scores ({debug:?})");
    assert!(
        a.1 == b.1 && a.2 == b.2 && a.3 == b.3,
        "Enabled vs None ({debug:?})"
    );
    assert!(a.2.iter().all(|v| v.is_finite()), "no poisoned value read");
}
