//! Recurrent graphs: an encoder-decoder (an LSTM over one sequence, its last unmasked step
//! duplicated along a second sequence, merged with it, a second LSTM and a per-step output)
//! through `LastTimeStepVertex` and `DuplicateToTimeSeriesVertex`, with masks on both inputs:
//! f64 gradient check, JSON round trip, workspaces Enabled vs None bit-identical.

use dl4rs_array::NdArray;
use dl4rs_data::MultiDataSet;
use dl4rs_nn::*;

mod common;

fn conf(mode: WorkspaceMode) -> ComputationGraphConfiguration {
    NeuralNetConfiguration::builder()
        .seed(8)
        .updater(Updater::adam(1e-2))
        .weight_init(WeightInit::XavierUniform)
        .training_workspace_mode(mode)
        .inference_workspace_mode(mode)
        .graph_builder()
        .add_inputs(&["seq", "dec"])
        .set_input_types(&[InputType::recurrent(2), InputType::recurrent(3)])
        .add_layer("enc", LayerConf::lstm(4).build(), &["seq"])
        .add_vertex("last", VertexConf::last_time_step(), &["enc"])
        .add_vertex(
            "dup",
            VertexConf::duplicate_to_time_series(),
            &["last", "dec"],
        )
        .add_vertex("merge", VertexConf::merge(), &["dup", "dec"])
        .add_layer("decoder", LayerConf::simple_rnn(3).build(), &["merge"])
        .add_layer(
            "out",
            LayerConf::rnn_output(LossFunction::Mcxent, 3)
                .activation(Activation::Softmax)
                .build(),
            &["decoder"],
        )
        .set_outputs(&["out"])
        .build()
        .unwrap()
}

fn mask(lengths: &[usize], t: usize) -> NdArray<f64> {
    let mut m = vec![0.0; lengths.len() * t];
    for (r, &len) in lengths.iter().enumerate() {
        m[r * t..r * t + len].fill(1.0);
    }
    NdArray::from_slice(&[lengths.len(), t], &m).unwrap()
}

fn data() -> MultiDataSet<f64> {
    let (b, ts, td) = (3, 6, 4);
    let seq = NdArray::<f64>::rand_uniform(&[b, 2, ts], -1.0, 1.0, 1).unwrap();
    let dec = NdArray::<f64>::rand_uniform(&[b, 3, td], -1.0, 1.0, 2).unwrap();
    let mut y = vec![0.0; b * 3 * td];
    for r in 0..b {
        for s in 0..td {
            y[(r * 3 + (r + s) % 3) * td + s] = 1.0;
        }
    }
    let y = NdArray::from_slice(&[b, 3, td], &y).unwrap();
    let dm = mask(&[4, 2, 3], td);
    MultiDataSet::new(vec![seq, dec], vec![y])
        .unwrap()
        .with_masks(
            vec![Some(mask(&[6, 3, 1], ts)), Some(dm.dup().unwrap())],
            vec![Some(dm)],
        )
        .unwrap()
}

#[test]
fn encoder_decoder_gradient_check() {
    let mut net = ComputationGraph::<f64>::new(conf(WorkspaceMode::Enabled)).unwrap();
    let d = data();
    net.compute_gradient_and_score(&d).unwrap();
    let analytic = net.gradients().to_vec().unwrap();
    // The encoder learns through both vertices.
    let enc = net.vertex_params("enc").unwrap().shape()[0];
    assert!(
        analytic[..enc].iter().any(|g| g.abs() > 1e-4),
        "encoder gradient"
    );
    let original = net.params().to_vec().unwrap();
    let n = original.len();
    common::check_gradients(
        &analytic,
        &original,
        |p| {
            net.set_params(&NdArray::from_slice(&[n], p).unwrap())
                .unwrap();
            net.compute_gradient_and_score(&d).unwrap()
        },
        "encoder-decoder",
    );
}

#[test]
fn encoder_decoder_json_and_workspace_modes() {
    let c = conf(WorkspaceMode::Enabled);
    let json = c.to_json().unwrap();
    for ty in [
        "LastTimeStepVertex",
        "DuplicateToTimeSeriesVertex",
        "\"LSTM\"",
    ] {
        assert!(json.contains(ty), "{ty}");
    }
    assert_eq!(ComputationGraphConfiguration::from_json(&json).unwrap(), c);
    let d64 = data();
    let to32 = |a: &NdArray<f64>| {
        let v: Vec<f32> = a.to_vec().unwrap().iter().map(|&x| x as f32).collect();
        NdArray::<f32>::from_slice(a.shape(), &v).unwrap()
    };
    let d = MultiDataSet::new(
        d64.features.iter().map(to32).collect(),
        d64.labels.iter().map(to32).collect(),
    )
    .unwrap()
    .with_masks(
        d64.features_masks
            .iter()
            .map(|m| m.as_ref().map(to32))
            .collect(),
        d64.labels_masks
            .iter()
            .map(|m| m.as_ref().map(to32))
            .collect(),
    )
    .unwrap();
    let run = |mode| {
        let mut g = ComputationGraph::<f32>::new(conf(mode)).unwrap();
        let mut scores = Vec::new();
        for _ in 0..4 {
            g.fit(&d).unwrap();
            scores.push(g.last_score().to_bits());
        }
        let out = g.output_multi(&d, false).unwrap();
        (
            scores,
            g.params().to_vec().unwrap(),
            out[0].to_vec().unwrap(),
        )
    };
    let (a, b) = (run(WorkspaceMode::Enabled), run(WorkspaceMode::None));
    assert_eq!(a.0, b.0);
    assert!(a.1 == b.1 && a.2 == b.2, "Enabled vs None");
}
