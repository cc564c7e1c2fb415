//! Recurrent networks: configurations round-trip through JSON; a padded, masked batch gives the
//! same loss, gradients and outputs as each sequence alone; workspaces Enabled and None train
//! bit-identically (MultiLayerNetwork and ComputationGraph); bad input is one clear error.

use dl4rs_array::{AsView, NdArray};
use dl4rs_data::{DataSet, MultiDataSet};
use dl4rs_nn::*;

fn seq(b: usize, n: usize, t: usize, seed: u64) -> NdArray<f64> {
    NdArray::<f64>::rand_uniform(&[b, n, t], -1.0, 1.0, seed).unwrap()
}

/// Per-step one-hot labels `[b, k, t]`.
fn step_labels(b: usize, k: usize, t: usize) -> NdArray<f64> {
    let mut y = vec![0.0; b * k * t];
    for r in 0..b {
        for s in 0..t {
            y[(r * k + (r + 2 * s) % k) * t + s] = 1.0;
        }
    }
    NdArray::from_slice(&[b, k, t], &y).unwrap()
}

fn lstm_conf(mode: WorkspaceMode) -> MultiLayerConfiguration {
    NeuralNetConfiguration::builder()
        .seed(21)
        .updater(Updater::sgd(0.1))
        .weight_init(WeightInit::XavierUniform)
        .training_workspace_mode(mode)
        .inference_workspace_mode(mode)
        .list()
        .layer(LayerConf::lstm(6).build())
        .layer(LayerConf::lstm(5).name("second").build())
        .layer(
            LayerConf::rnn_output(LossFunction::Mcxent, 3)
                .activation(Activation::Softmax)
                .build(),
        )
        .set_input_type(InputType::recurrent(4))
        .build()
        .unwrap()
}

#[test]
fn configurations_round_trip_through_json() {
    let conf = NeuralNetConfiguration::builder()
        .list()
        .layer(LayerConf::lstm(8).forget_gate_bias_init(2.0).build())
        .layer(LayerConf::last_time_step(LayerConf::lstm(4).build()))
        .layer(LayerConf::dense(3).build())
        .layer(LayerConf::loss(LossFunction::Mse, Activation::Identity))
        .set_input_type(InputType::recurrent(5))
        .build()
        .unwrap();
    let json = conf.to_json().unwrap();
    for ty in ["\"LSTM\"", "\"LastTimeStep\""] {
        assert!(json.contains(ty), "{ty} in {json}");
    }
    assert_eq!(MultiLayerConfiguration::from_json(&json).unwrap(), conf);
    assert_eq!(conf.layers[1].n_in(), Some(8));
    // (5 + 8) * 32 + 32, (8 + 4) * 16 + 16, 4 * 3 + 3
    let net = MultiLayerNetwork::<f32>::new(conf).unwrap();
    assert_eq!(net.num_params(), 13 * 32 + 32 + 12 * 16 + 16 + 15);
    let per_step = lstm_conf(WorkspaceMode::Enabled);
    let json = per_step.to_json().unwrap();
    assert!(json.contains("\"RnnOutputLayer\""), "{json}");
    assert_eq!(MultiLayerConfiguration::from_json(&json).unwrap(), per_step);
    let loss_layer = NeuralNetConfiguration::builder()
        .list()
        .layer(LayerConf::lstm(3).n_in(2).build())
        .layer(LayerConf::rnn_loss(LossFunction::Mse, Activation::Tanh))
        .build()
        .unwrap();
    let json = loss_layer.to_json().unwrap();
    assert!(json.contains("\"RnnLossLayer\""), "{json}");
    assert_eq!(
        MultiLayerConfiguration::from_json(&json).unwrap(),
        loss_layer
    );
}

#[test]
fn lstm_parameters_follow_dl4j() {
    let net = MultiLayerNetwork::<f64>::new(lstm_conf(WorkspaceMode::Enabled)).unwrap();
    let p = net.layer_params(0).unwrap().to_vec().unwrap();
    let (n_in, n) = (4, 6);
    assert_eq!(p.len(), (n_in + n) * 4 * n + 4 * n);
    let b = &p[(n_in + n) * 4 * n..];
    // Gate blocks a | f | o | i: only the forget gate's bias starts at 1.
    assert!(b[..n].iter().all(|&v| v == 0.0));
    assert!(b[n..2 * n].iter().all(|&v| v == 1.0));
    assert!(b[2 * n..].iter().all(|&v| v == 0.0));
    let info = net.layer(0).unwrap().info();
    let keys: Vec<_> = info
        .params
        .iter()
        .map(|s| (s.key, s.shape.clone()))
        .collect();
    assert_eq!(
        keys,
        vec![("W", vec![4, 24]), ("RW", vec![6, 24]), ("b", vec![24])]
    );
}

/// A `[b, t]` mask: example `r` has `lengths[r]` steps, at the start or the end.
fn mask(lengths: &[usize], t: usize, align_end: bool) -> NdArray<f64> {
    let mut m = vec![0.0; lengths.len() * t];
    for (r, &len) in lengths.iter().enumerate() {
        for s in 0..len {
            m[r * t + if align_end { t - len + s } else { s }] = 1.0;
        }
    }
    NdArray::from_slice(&[lengths.len(), t], &m).unwrap()
}

/// Example `r`'s steps `from..from + len` of `x` (`[b, n, t]`) as a `[1, n, len]` array.
fn cut(x: &NdArray<f64>, r: usize, from: usize, len: usize) -> NdArray<f64> {
    let (n, t) = (x.shape()[1], x.shape()[2]);
    let v = x.to_vec().unwrap();
    let mut out = Vec::with_capacity(n * len);
    for f in 0..n {
        out.extend_from_slice(&v[(r * n + f) * t + from..(r * n + f) * t + from + len]);
    }
    NdArray::from_slice(&[1, n, len], &out).unwrap()
}

fn close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-12 * (1.0 + x.abs().max(y.abs())),
            "{what} [{i}]: {x} vs {y}"
        );
    }
}

#[test]
fn a_padded_masked_batch_equals_each_sequence_alone() {
    let lengths = [7, 30, 12, 1];
    let t = 30;
    for align_end in [false, true] {
        let mut net = MultiLayerNetwork::<f64>::new(lstm_conf(WorkspaceMode::Enabled)).unwrap();
        let x = seq(4, 4, t, 3);
        let y = step_labels(4, 3, t);
        let m = mask(&lengths, t, align_end);
        let padded = DataSet::new(x.dup().unwrap(), y.dup().unwrap())
            .unwrap()
            .with_masks(Some(m.dup().unwrap()), Some(m.dup().unwrap()))
            .unwrap();
        let score = net.compute_gradient_and_score_data_set(&padded).unwrap();
        let grad = net.gradients().to_vec().unwrap();
        let out = net
            .output_masked(&x, Some(&m.view()), false)
            .unwrap()
            .to_vec()
            .unwrap();
        // DL4J's normalization: summed over every unmasked step, divided by the examples.
        let (mut sum_score, mut sum_grad) = (0.0, vec![0.0; grad.len()]);
        for (r, &len) in lengths.iter().enumerate() {
            let from = if align_end { t - len } else { 0 };
            let alone = DataSet::new(cut(&x, r, from, len), cut(&y, r, from, len)).unwrap();
            sum_score += net.compute_gradient_and_score_data_set(&alone).unwrap();
            for (s, g) in sum_grad.iter_mut().zip(net.gradients().to_vec().unwrap()) {
                *s += g;
            }
            let o = net
                .output(&alone.features, false)
                .unwrap()
                .to_vec()
                .unwrap();
            let k = 3;
            for c in 0..k {
                for s in 0..len {
                    let padded_at = out[(r * k + c) * t + from + s];
                    let alone_at = o[c * len + s];
                    assert!(
                        (padded_at - alone_at).abs() < 1e-12,
                        "output example {r} class {c} step {s}: {padded_at} vs {alone_at}"
                    );
                }
            }
            for s in (0..t).filter(|s| *s < from || *s >= from + len) {
                // Masked steps of the LSTM output 0; the softmax of the output layer makes
                // them uniform, and they count nowhere.
                let v = out[(r * k) * t + s];
                assert!((v - 1.0 / 3.0).abs() < 1e-12, "masked step {s}: {v}");
            }
        }
        let b = lengths.len() as f64;
        assert!(
            (score - sum_score / b).abs() < 1e-12,
            "score {score} vs {}",
            sum_score / b
        );
        let mean: Vec<f64> = sum_grad.iter().map(|g| g / b).collect();
        close(&grad, &mean, &format!("gradients (align end {align_end})"));
    }
}

#[test]
fn a_padded_classifier_batch_equals_each_sequence_alone() {
    let conf = NeuralNetConfiguration::builder()
        .seed(2)
        .list()
        .layer(LayerConf::last_time_step(LayerConf::lstm(5).build()))
        .layer(LayerConf::output(LossFunction::Mcxent, 2).activation(Activation::Softmax))
        .set_input_type(InputType::recurrent(3))
        .build()
        .unwrap();
    let mut net = MultiLayerNetwork::<f64>::new(conf).unwrap();
    let (lengths, t) = ([30, 4, 17], 30);
    let x = seq(3, 3, t, 8);
    let y = NdArray::from_slice(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 0.0, 1.0]).unwrap();
    for align_end in [false, true] {
        let padded = DataSet::new(x.dup().unwrap(), y.dup().unwrap())
            .unwrap()
            .with_masks(Some(mask(&lengths, t, align_end)), None)
            .unwrap();
        let score = net.compute_gradient_and_score_data_set(&padded).unwrap();
        let grad = net.gradients().to_vec().unwrap();
        let (mut sum_score, mut sum_grad) = (0.0, vec![0.0; grad.len()]);
        let yv = y.to_vec().unwrap();
        for (r, &len) in lengths.iter().enumerate() {
            let from = if align_end { t - len } else { 0 };
            let label = NdArray::from_slice(&[1, 2], &yv[r * 2..r * 2 + 2]).unwrap();
            let alone = DataSet::new(cut(&x, r, from, len), label).unwrap();
            sum_score += net.compute_gradient_and_score_data_set(&alone).unwrap();
            for (s, g) in sum_grad.iter_mut().zip(net.gradients().to_vec().unwrap()) {
                *s += g;
            }
        }
        assert!(
            (score - sum_score / 3.0).abs() < 1e-12,
            "{score} vs {sum_score}"
        );
        let mean: Vec<f64> = sum_grad.iter().map(|g| g / 3.0).collect();
        close(&grad, &mean, "LastTimeStep gradients");
    }
}

/// Variable-length f32 batches with masks (lengths cycling as in the W3 workload).
pub fn batches() -> Vec<DataSet<f32>> {
    [10usize, 50, 20, 35]
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let b = 8;
            let x = NdArray::<f32>::rand_uniform(&[b, 4, t], -1.0, 1.0, i as u64).unwrap();
            let mut y = vec![0f32; b * 3 * t];
            let mut m = vec![0f32; b * t];
            for r in 0..b {
                let len = t - (r * 3) % t.min(9);
                for s in 0..len {
                    m[r * t + s] = 1.0;
                    y[(r * 3 + (r + s) % 3) * t + s] = 1.0;
                }
            }
            let m = NdArray::from_slice(&[b, t], &m).unwrap();
            DataSet::new(x, NdArray::from_slice(&[b, 3, t], &y).unwrap())
                .unwrap()
                .with_masks(Some(m.dup().unwrap()), Some(m))
                .unwrap()
        })
        .collect()
}

fn conf_f32(mode: WorkspaceMode) -> MultiLayerConfiguration {
    let mut conf = lstm_conf(mode);
    conf.global.updater = Updater::adam(1e-2);
    conf
}

/// Every recurrent layer and wrapper in one stack.
fn every_layer(mode: WorkspaceMode) -> MultiLayerConfiguration {
    NeuralNetConfiguration::builder()
        .seed(4)
        .updater(Updater::adam(1e-2))
        .training_workspace_mode(mode)
        .inference_workspace_mode(mode)
        .list()
        .layer(LayerConf::mask_zero(LayerConf::simple_rnn(6).build(), 0.0))
        .layer(LayerConf::time_distributed(
            LayerConf::dense(6).activation(Activation::Relu).build(),
        ))
        .layer(LayerConf::bidirectional(
            BidirectionalMode::Mul,
            LayerConf::lstm(5).build(),
        ))
        .layer(LayerConf::bidirectional(
            BidirectionalMode::Concat,
            LayerConf::lstm(3).build(),
        ))
        .layer(LayerConf::gru(4).build())
        .layer(
            LayerConf::rnn_output(LossFunction::Mcxent, 3)
                .activation(Activation::Softmax)
                .build(),
        )
        .set_input_type(InputType::recurrent(4))
        .build()
        .unwrap()
}

#[test]
fn workspaces_enabled_and_none_train_bit_identically() {
    let data = batches();
    let train = |mode| {
        let mut net = MultiLayerNetwork::<f32>::new(conf_f32(mode)).unwrap();
        let mut scores = Vec::new();
        for _ in 0..3 {
            for d in &data {
                net.fit(d).unwrap();
                scores.push(net.last_score().to_bits());
            }
        }
        let out = net
            .output_masked(
                &data[1].features,
                data[1].features_mask.as_ref().map(AsView::view).as_ref(),
                false,
            )
            .unwrap();
        (
            scores,
            net.params().to_vec().unwrap(),
            out.to_vec().unwrap(),
        )
    };
    let (a, b) = (train(WorkspaceMode::Enabled), train(WorkspaceMode::None));
    assert_eq!(a.0, b.0, "scores");
    assert!(a.1 == b.1, "parameters differ");
    let train_every = |mode| {
        let mut net = MultiLayerNetwork::<f32>::new(every_layer(mode)).unwrap();
        for d in &data {
            net.fit(d).unwrap();
        }
        (net.last_score().to_bits(), net.params().to_vec().unwrap())
    };
    assert!(
        train_every(WorkspaceMode::Enabled) == train_every(WorkspaceMode::None),
        "every layer: Enabled vs None"
    );
    assert!(a.1 == b.1, "parameters differ");
    assert!(a.2 == b.2, "outputs differ");
    assert!(a.0.first() != a.0.last(), "training changed nothing");
}

fn graph_conf(mode: WorkspaceMode) -> ComputationGraphConfiguration {
    NeuralNetConfiguration::builder()
        .seed(21)
        .updater(Updater::adam(1e-2))
        .weight_init(WeightInit::XavierUniform)
        .training_workspace_mode(mode)
        .inference_workspace_mode(mode)
        .graph_builder()
        .add_inputs(&["in"])
        .set_input_types(&[InputType::recurrent(4)])
        .add_layer("l0", LayerConf::lstm(6).build(), &["in"])
        .add_layer("l1", LayerConf::lstm(5).name("second").build(), &["l0"])
        .add_layer(
            "out",
            LayerConf::rnn_output(LossFunction::Mcxent, 3)
                .activation(Activation::Softmax)
                .build(),
            &["l1"],
        )
        .set_outputs(&["out"])
        .build()
        .unwrap()
}

#[test]
fn a_graph_trains_like_the_stack_in_both_workspace_modes() {
    let data = batches();
    let mut runs = Vec::new();
    for mode in [WorkspaceMode::Enabled, WorkspaceMode::None] {
        let mut g = ComputationGraph::<f32>::new(graph_conf(mode)).unwrap();
        let mut scores = Vec::new();
        for d in &data {
            g.fit_data_set(d).unwrap();
            scores.push(g.last_score().to_bits());
        }
        runs.push((scores, g.params().to_vec().unwrap()));
    }
    let mut mln = MultiLayerNetwork::<f32>::new(conf_f32(WorkspaceMode::Enabled)).unwrap();
    let mut scores = Vec::new();
    for d in &data {
        mln.fit(d).unwrap();
        scores.push(mln.last_score().to_bits());
    }
    assert_eq!(runs[0].0, runs[1].0, "graph scores, Enabled vs None");
    assert!(runs[0].1 == runs[1].1, "graph parameters, Enabled vs None");
    assert_eq!(runs[0].0, scores, "graph vs stack");
    assert!(
        runs[0].1 == mln.params().to_vec().unwrap(),
        "graph vs stack"
    );
    // A MultiDataSet with the masks trains the same.
    let mut g = ComputationGraph::<f32>::new(graph_conf(WorkspaceMode::Enabled)).unwrap();
    let d = &data[0];
    let multi = MultiDataSet::new(
        vec![d.features.dup().unwrap()],
        vec![d.labels.dup().unwrap()],
    )
    .unwrap()
    .with_masks(
        vec![d.features_mask.as_ref().map(|m| m.dup().unwrap())],
        vec![d.labels_mask.as_ref().map(|m| m.dup().unwrap())],
    )
    .unwrap();
    g.fit(&multi).unwrap();
    assert_eq!(g.last_score().to_bits(), runs[0].0[0]);
}

#[test]
fn bad_input_is_one_clear_error() {
    let mut net = MultiLayerNetwork::<f32>::new(conf_f32(WorkspaceMode::Enabled)).unwrap();
    // A 2-D array into the LSTM.
    let flat = NdArray::<f32>::zeros(&[2, 4]).unwrap();
    let e = net.output(&flat, false).unwrap_err().to_string();
    assert!(
        e.contains("LSTM") && e.contains("[2, 4]") && e.contains("[batch, 4, time]"),
        "2-D input: {e}"
    );
    // A mask whose shape disagrees with the features.
    let x = NdArray::<f32>::zeros(&[2, 4, 5]).unwrap();
    let m = NdArray::<f32>::ones(&[2, 6]).unwrap();
    let e = net
        .output_masked(&x, Some(&m.view()), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("LSTM")
            && e.contains("[2, 6]")
            && e.contains("[2, 4, 5]")
            && e.contains("[2, 5]"),
        "mask: {e}"
    );
    // Labels longer than the series.
    let long = DataSet::new(x.dup().unwrap(), NdArray::<f32>::zeros(&[2, 3, 7]).unwrap()).unwrap();
    let e = net.fit(&long).unwrap_err().to_string();
    assert!(
        e.contains("RnnOutputLayer") && e.contains("[2, 3, 7]") && e.contains("[2, 3, 5]"),
        "labels: {e}"
    );
    // Nothing was half-applied: the network still trains.
    net.fit(&batches()[0]).unwrap();
}

#[test]
fn evaluation_counts_each_unmasked_time_step() {
    let mut net = MultiLayerNetwork::<f32>::new(conf_f32(WorkspaceMode::Enabled)).unwrap();
    let data = batches();
    for d in &data {
        net.fit(d).unwrap();
    }
    for d in &data {
        let mut it = dl4rs_data::InMemoryDataSetIterator::new(d.dup().unwrap(), 8).unwrap();
        let e = net.evaluate(&mut it).unwrap();
        // By hand: argmax per unmasked step.
        let mask = d.labels_mask.as_ref().unwrap();
        let out = net
            .output_masked(
                &d.features,
                d.features_mask.as_ref().map(AsView::view).as_ref(),
                false,
            )
            .unwrap()
            .to_vec()
            .unwrap();
        let (y, m) = (d.labels.to_vec().unwrap(), mask.to_vec().unwrap());
        let (b, t) = (mask.shape()[0], mask.shape()[1]);
        let (mut steps, mut right) = (0u64, 0u64);
        for r in 0..b {
            for s in (0..t).filter(|&s| m[r * t + s] != 0.0) {
                let arg = |v: &[f32]| {
                    (0..3)
                        .max_by(|&i, &j| v[(r * 3 + i) * t + s].total_cmp(&v[(r * 3 + j) * t + s]))
                        .unwrap()
                };
                steps += 1;
                right += u64::from(arg(&out) == arg(&y));
            }
        }
        assert_eq!(e.num_examples(), steps, "one decision per unmasked step");
        assert!((e.accuracy() - right as f64 / steps as f64).abs() < 1e-12);
    }
}

#[test]
fn mask_zero_equals_an_explicit_mask_and_time_distributed_equals_dense_rows() {
    let conf = |mask_zero: bool| {
        let lstm = LayerConf::lstm(5).build();
        NeuralNetConfiguration::builder()
            .seed(3)
            .list()
            .layer(if mask_zero {
                LayerConf::mask_zero(lstm, 0.0)
            } else {
                lstm
            })
            .layer(LayerConf::time_distributed(LayerConf::dense(4).build()))
            .layer(LayerConf::rnn_loss(LossFunction::Mse, Activation::Identity))
            .set_input_type(InputType::recurrent(3))
            .build()
            .unwrap()
    };
    let t = 6;
    let lengths = [6, 2, 4];
    let m = mask(&lengths, t, false);
    let mut x = seq(3, 3, t, 4).to_vec().unwrap();
    for (r, &len) in lengths.iter().enumerate() {
        for f in 0..3 {
            for s in len..t {
                x[(r * 3 + f) * t + s] = 0.0;
            }
        }
    }
    let x = NdArray::from_slice(&[3, 3, t], &x).unwrap();
    let y = seq(3, 4, t, 5);
    let mut zero = MultiLayerNetwork::<f64>::new(conf(true)).unwrap();
    let mut explicit = MultiLayerNetwork::<f64>::new(conf(false)).unwrap();
    let a = DataSet::new(x.dup().unwrap(), y.dup().unwrap())
        .unwrap()
        .with_masks(None, Some(m.dup().unwrap()))
        .unwrap();
    let b = DataSet::new(x.dup().unwrap(), y.dup().unwrap())
        .unwrap()
        .with_masks(Some(m.dup().unwrap()), Some(m.dup().unwrap()))
        .unwrap();
    let sa = zero.compute_gradient_and_score_data_set(&a).unwrap();
    let sb = explicit.compute_gradient_and_score_data_set(&b).unwrap();
    assert!((sa - sb).abs() < 1e-12, "{sa} vs {sb}");
    close(
        &zero.gradients().to_vec().unwrap(),
        &explicit.gradients().to_vec().unwrap(),
        "MaskZero vs explicit mask",
    );
    // The dense layer of TimeDistributed sees rows: its output at (example, step) is the
    // dense map of the LSTM's output there.
    let ff = explicit.feed_forward(&x, false).unwrap();
    let (h, o) = (ff[1].to_vec().unwrap(), ff[2].to_vec().unwrap());
    let p = explicit.layer_params(1).unwrap().to_vec().unwrap();
    for r in 0..3 {
        for s in 0..t {
            for j in 0..4 {
                let mut v = p[5 * 4 + j];
                for i in 0..5 {
                    v += h[(r * 5 + i) * t + s] * p[i * 4 + j];
                }
                assert!((v - o[(r * 4 + j) * t + s]).abs() < 1e-12);
            }
        }
    }
}
