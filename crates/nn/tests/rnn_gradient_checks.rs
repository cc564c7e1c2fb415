//! f64 gradient checks for the recurrent layers: LSTM under a per-step output layer, a loss
//! layer, and the last-time-step wrapper, with and without masks (padding at the end and at
//! the start), central differences of the score against backprop.

use dl4rs_array::NdArray;
use dl4rs_data::DataSet;
use dl4rs_nn::*;

mod common;

/// Features `[b, n_in, t]`, and per-step labels `[b, n_out, t]` (one-hot for `Mcxent`).
fn sequences(b: usize, n_in: usize, n_out: usize, t: usize, seed: u64) -> DataSet<f64> {
    let x = NdArray::<f64>::rand_uniform(&[b, n_in, t], -1.0, 1.0, seed).unwrap();
    let mut y = vec![0.0; b * n_out * t];
    for r in 0..b {
        for s in 0..t {
            let c = (r * 5 + s * 3 + 1) % n_out;
            y[(r * n_out + c) * t + s] = 1.0;
        }
    }
    DataSet::new(x, NdArray::from_slice(&[b, n_out, t], &y).unwrap()).unwrap()
}

/// A `[b, t]` mask with example `r` of length `lengths[r]`, at the start (`align_end` false)
/// or the end of the series.
pub fn mask(lengths: &[usize], t: usize, align_end: bool) -> NdArray<f64> {
    let mut m = vec![0.0; lengths.len() * t];
    for (r, &len) in lengths.iter().enumerate() {
        for s in 0..len {
            let at = if align_end { t - len + s } else { s };
            m[r * t + at] = 1.0;
        }
    }
    NdArray::from_slice(&[lengths.len(), t], &m).unwrap()
}

fn check(conf: MultiLayerConfiguration, data: &DataSet<f64>, label: &str) {
    let mut net = MultiLayerNetwork::<f64>::new(conf).unwrap();
    net.compute_gradient_and_score_data_set(data).unwrap();
    let analytic = net.gradients().to_vec().unwrap();
    let largest = analytic.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(largest > 1e-4, "{label}: the gradient is (near) zero");
    let original = net.params().to_vec().unwrap();
    let n = original.len();
    common::check_gradients(
        &analytic,
        &original,
        |p| {
            net.set_params(&NdArray::from_slice(&[n], p).unwrap())
                .unwrap();
            net.compute_gradient_and_score_data_set(data).unwrap()
        },
        label,
    );
}

fn lstm_rnn_output(n_in: usize, loss: LossFunction, act: Activation) -> MultiLayerConfiguration {
    NeuralNetConfiguration::builder()
        .seed(12)
        .weight_init(WeightInit::XavierUniform)
        .list()
        .layer(LayerConf::lstm(4).build())
        .layer(LayerConf::lstm(3).build())
        .layer(LayerConf::rnn_output(loss, 3).activation(act).build())
        .set_input_type(InputType::recurrent(n_in))
        .build()
        .unwrap()
}

#[test]
fn lstm_and_rnn_output_layer() {
    let data = sequences(3, 2, 3, 5, 1);
    for (loss, act) in [
        (LossFunction::Mcxent, Activation::Softmax),
        (LossFunction::Mse, Activation::Tanh),
        (LossFunction::Xent, Activation::Sigmoid),
    ] {
        check(
            lstm_rnn_output(2, loss, act),
            &data,
            &format!("LSTM, RnnOutputLayer {loss:?}"),
        );
    }
}

#[test]
fn lstm_with_masks() {
    for align_end in [false, true] {
        let m = mask(&[5, 2, 3], 5, align_end);
        let data = sequences(3, 2, 3, 5, 2)
            .with_masks(Some(m.dup().unwrap()), Some(m))
            .unwrap();
        check(
            lstm_rnn_output(2, LossFunction::Mcxent, Activation::Softmax),
            &data,
            &format!("LSTM, masked (align end {align_end})"),
        );
    }
    // Feature mask only: the output layer takes it as the label mask.
    let m = mask(&[1, 4, 5], 5, false);
    let data = sequences(3, 2, 3, 5, 3).with_masks(Some(m), None).unwrap();
    check(
        lstm_rnn_output(2, LossFunction::Mcxent, Activation::Softmax),
        &data,
        "LSTM, feature mask only",
    );
}

#[test]
fn lstm_relu_gates_and_rnn_loss_layer() {
    let conf = NeuralNetConfiguration::builder()
        .seed(5)
        .list()
        .layer(
            LayerConf::lstm(3)
                .activation(Activation::Tanh)
                .gate_activation(Activation::Sigmoid)
                .forget_gate_bias_init(0.5)
                .build(),
        )
        .layer(LayerConf::rnn_loss(LossFunction::Mse, Activation::Identity))
        .set_input_type(InputType::recurrent(2))
        .build()
        .unwrap();
    let m = mask(&[4, 2], 4, true);
    let data = sequences(2, 2, 3, 4, 4).with_masks(Some(m), None).unwrap();
    check(conf, &data, "LSTM, RnnLossLayer");
}

#[test]
fn last_time_step_classifier() {
    let conf = |n_in: usize| {
        NeuralNetConfiguration::builder()
            .seed(9)
            .weight_init(WeightInit::XavierUniform)
            .list()
            .layer(LayerConf::last_time_step(LayerConf::lstm(4).build()))
            .layer(LayerConf::output(LossFunction::Mcxent, 3).activation(Activation::Softmax))
            .set_input_type(InputType::recurrent(n_in))
            .build()
            .unwrap()
    };
    let x = NdArray::<f64>::rand_uniform(&[3, 2, 6], -1.0, 1.0, 7).unwrap();
    let y = NdArray::from_slice(&[3, 3], &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]).unwrap();
    let plain = DataSet::new(x.dup().unwrap(), y.dup().unwrap()).unwrap();
    check(conf(2), &plain, "LastTimeStep(LSTM)");
    for align_end in [false, true] {
        let data = DataSet::new(x.dup().unwrap(), y.dup().unwrap())
            .unwrap()
            .with_masks(Some(mask(&[6, 3, 1], 6, align_end)), None)
            .unwrap();
        check(
            conf(2),
            &data,
            &format!("LastTimeStep(LSTM), masked (align end {align_end})"),
        );
    }
}

#[test]
fn lstm_into_global_pooling() {
    let conf = NeuralNetConfiguration::builder()
        .seed(4)
        .list()
        .layer(LayerConf::lstm(3).build())
        .layer(LayerConf::global_pooling(PoolingType::Avg))
        .layer(LayerConf::output(LossFunction::Mcxent, 2).activation(Activation::Softmax))
        .set_input_type(InputType::recurrent(2))
        .build()
        .unwrap();
    let x = NdArray::<f64>::rand_uniform(&[2, 2, 5], -1.0, 1.0, 8).unwrap();
    let y = NdArray::from_slice(&[2, 2], &[1.0, 0.0, 0.0, 1.0]).unwrap();
    let data = DataSet::new(x, y)
        .unwrap()
        .with_masks(Some(mask(&[5, 3], 5, false)), None)
        .unwrap();
    check(conf, &data, "LSTM, GlobalPooling(avg), masked");
}

#[test]
fn simple_rnn_with_and_without_masks() {
    let conf = |act: Activation| {
        NeuralNetConfiguration::builder()
            .seed(6)
            .weight_init(WeightInit::XavierUniform)
            .list()
            .layer(LayerConf::simple_rnn(4).activation(act).build())
            .layer(LayerConf::lstm(3).build())
            .layer(
                LayerConf::rnn_output(LossFunction::Mcxent, 3)
                    .activation(Activation::Softmax)
                    .build(),
            )
            .set_input_type(InputType::recurrent(2))
            .build()
            .unwrap()
    };
    let plain = sequences(3, 2, 3, 5, 12);
    check(conf(Activation::Tanh), &plain, "SimpleRnn");
    check(conf(Activation::Sigmoid), &plain, "SimpleRnn (sigmoid)");
    for align_end in [false, true] {
        let m = mask(&[5, 1, 3], 5, align_end);
        let data = sequences(3, 2, 3, 5, 13)
            .with_masks(Some(m.dup().unwrap()), Some(m))
            .unwrap();
        check(
            conf(Activation::Tanh),
            &data,
            &format!("SimpleRnn, masked (align end {align_end})"),
        );
    }
    let classifier = NeuralNetConfiguration::builder()
        .seed(8)
        .list()
        .layer(LayerConf::last_time_step(LayerConf::simple_rnn(4).build()))
        .layer(LayerConf::output(LossFunction::Mse, 2))
        .set_input_type(InputType::recurrent(3))
        .build()
        .unwrap();
    let x = NdArray::<f64>::rand_uniform(&[2, 3, 4], -1.0, 1.0, 14).unwrap();
    let y = NdArray::from_slice(&[2, 2], &[0.3, -0.2, 0.5, 0.1]).unwrap();
    let data = DataSet::new(x, y)
        .unwrap()
        .with_masks(Some(mask(&[4, 2], 4, false)), None)
        .unwrap();
    check(classifier, &data, "LastTimeStep(SimpleRnn), masked");
}

#[test]
fn bidirectional_in_every_mode() {
    for mode in [
        BidirectionalMode::Concat,
        BidirectionalMode::Add,
        BidirectionalMode::Mul,
        BidirectionalMode::Average,
    ] {
        let conf = NeuralNetConfiguration::builder()
            .seed(10)
            .weight_init(WeightInit::XavierUniform)
            .list()
            .layer(LayerConf::bidirectional(mode, LayerConf::lstm(3).build()))
            .layer(LayerConf::bidirectional(
                mode,
                LayerConf::simple_rnn(2).build(),
            ))
            .layer(
                LayerConf::rnn_output(LossFunction::Mcxent, 3)
                    .activation(Activation::Softmax)
                    .build(),
            )
            .set_input_type(InputType::recurrent(2))
            .build()
            .unwrap();
        let m = mask(&[5, 2, 4], 5, false);
        let data = sequences(3, 2, 3, 5, 15)
            .with_masks(Some(m.dup().unwrap()), Some(m))
            .unwrap();
        check(
            conf.clone(),
            &sequences(2, 2, 3, 4, 16),
            &format!("Bidirectional {mode:?}"),
        );
        check(conf, &data, &format!("Bidirectional {mode:?}, masked"));
    }
    let classifier = NeuralNetConfiguration::builder()
        .seed(2)
        .list()
        .layer(LayerConf::last_time_step(LayerConf::bidirectional(
            BidirectionalMode::Concat,
            LayerConf::lstm(3).build(),
        )))
        .layer(LayerConf::output(LossFunction::Mse, 2))
        .set_input_type(InputType::recurrent(2))
        .build()
        .unwrap();
    let x = NdArray::<f64>::rand_uniform(&[2, 2, 5], -1.0, 1.0, 17).unwrap();
    let y = NdArray::from_slice(&[2, 2], &[0.3, -0.2, 0.5, 0.1]).unwrap();
    let data = DataSet::new(x, y)
        .unwrap()
        .with_masks(Some(mask(&[5, 3], 5, true)), None)
        .unwrap();
    check(
        classifier,
        &data,
        "LastTimeStep(Bidirectional(LSTM)), masked",
    );
}

#[test]
fn time_distributed_and_mask_zero() {
    let conf = NeuralNetConfiguration::builder()
        .seed(11)
        .weight_init(WeightInit::XavierUniform)
        .list()
        .layer(LayerConf::mask_zero(LayerConf::lstm(4).build(), 0.0))
        .layer(LayerConf::time_distributed(
            LayerConf::dense(3).activation(Activation::Tanh).build(),
        ))
        .layer(
            LayerConf::rnn_output(LossFunction::Mcxent, 3)
                .activation(Activation::Softmax)
                .build(),
        )
        .set_input_type(InputType::recurrent(2))
        .build()
        .unwrap();
    check(
        conf.clone(),
        &sequences(2, 2, 3, 4, 18),
        "MaskZero, TimeDistributed",
    );
    // Zero padding at the end of two examples: masked by the values, no mask given.
    let mut d = sequences(3, 2, 3, 5, 19);
    let (mut x, m) = (d.features.to_vec().unwrap(), mask(&[5, 2, 3], 5, false));
    let mv = m.to_vec().unwrap();
    for r in 0..3 {
        for f in 0..2 {
            for s in 0..5 {
                if mv[r * 5 + s] == 0.0 {
                    x[(r * 2 + f) * 5 + s] = 0.0;
                }
            }
        }
    }
    d.features = NdArray::from_slice(&[3, 2, 5], &x).unwrap();
    let d = d.with_masks(None, Some(m)).unwrap();
    check(conf, &d, "MaskZero over zero padding, TimeDistributed");
}

#[test]
fn gru_with_and_without_masks() {
    let conf = |mode: Option<BidirectionalMode>| {
        let gru = LayerConf::gru(3).build();
        NeuralNetConfiguration::builder()
            .seed(13)
            .weight_init(WeightInit::XavierUniform)
            .list()
            .layer(match mode {
                Some(m) => LayerConf::bidirectional(m, gru),
                None => gru,
            })
            .layer(
                LayerConf::gru(3)
                    .gate_activation(Activation::Sigmoid)
                    .build(),
            )
            .layer(
                LayerConf::rnn_output(LossFunction::Mcxent, 3)
                    .activation(Activation::Softmax)
                    .build(),
            )
            .set_input_type(InputType::recurrent(2))
            .build()
            .unwrap()
    };
    check(conf(None), &sequences(2, 2, 3, 5, 20), "GRU");
    for align_end in [false, true] {
        let m = mask(&[5, 2, 3], 5, align_end);
        let data = sequences(3, 2, 3, 5, 21)
            .with_masks(Some(m.dup().unwrap()), Some(m))
            .unwrap();
        check(
            conf(None),
            &data,
            &format!("GRU, masked (align end {align_end})"),
        );
        check(
            conf(Some(BidirectionalMode::Concat)),
            &data,
            "Bidirectional(GRU), masked",
        );
    }
}
