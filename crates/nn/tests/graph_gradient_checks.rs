//! f64 gradient checks for every graph vertex and every preprocessor: each sits between layers
//! with parameters, so a wrong backward pass shows up as a mismatch between the analytic
//! gradient of those parameters and central differences of the score.

use dl4rs_array::{AsView, NdArray};
use dl4rs_data::MultiDataSet;
use dl4rs_nn::*;

mod common;

/// Checks every parameter of `graph` on `data`; returns how many were checked.
fn check(conf: ComputationGraphConfiguration, data: &MultiDataSet<f64>, label: &str) -> usize {
    let mut net = ComputationGraph::<f64>::new(conf).unwrap();
    net.compute_gradient_and_score(data).unwrap();
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
            net.compute_gradient_and_score(data).unwrap()
        },
        label,
    );
    n
}

fn rand(shape: &[usize], seed: u64) -> NdArray<f64> {
    NdArray::<f64>::rand_uniform(shape, -1.0, 1.0, seed).unwrap()
}

fn builder() -> GraphBuilder {
    NeuralNetConfiguration::builder()
        .seed(5)
        .updater(Updater::sgd(0.1))
        .graph_builder()
}

fn dense(n: usize) -> LayerConf {
    LayerConf::dense(n)
        .activation(Activation::Tanh)
        .bias_init(0.1)
        .build()
}

fn mse(n: usize) -> LayerConf {
    LayerConf::output(LossFunction::Mse, n)
        .activation(Activation::Identity)
        .build()
}

/// in(4) -> a(5), b(5) -> vertex -> out(3); the vertex reads a and b, or just a.
fn around(vertex: VertexConf, two: bool) -> ComputationGraphConfiguration {
    let b = builder()
        .add_inputs(&["in"])
        .set_input_types(&[InputType::feed_forward(4)])
        .add_layer("a", dense(5), &["in"])
        .add_layer("b", dense(5), &["in"]);
    let ins: &[&str] = if two { &["a", "b"] } else { &["a"] };
    let b = b.add_vertex("v", vertex, ins);
    let b = if two {
        b.add_layer("out", mse(3), &["v"])
    } else {
        // "b" joins through a merge so every vertex feeds the output.
        b.add_vertex("join", VertexConf::merge(), &["v", "b"])
            .add_layer("out", mse(3), &["join"])
    };
    b.set_outputs(&["out"]).build().unwrap()
}

fn one(batch: usize, n_in: usize, n_out: usize, seed: u64) -> MultiDataSet<f64> {
    MultiDataSet::new(
        vec![rand(&[batch, n_in], seed)],
        vec![rand(&[batch, n_out], seed + 1)],
    )
    .unwrap()
}

#[test]
fn element_wise_vertices() {
    for op in [
        ElementWiseOp::Add,
        ElementWiseOp::Subtract,
        ElementWiseOp::Product,
        ElementWiseOp::Average,
        ElementWiseOp::Max,
    ] {
        check(
            around(VertexConf::element_wise(op), true),
            &one(6, 4, 3, 1),
            &format!("{op:?}"),
        );
    }
}

#[test]
fn merge_subset_scale_shift_l2() {
    let data = one(6, 4, 3, 3);
    check(around(VertexConf::merge(), true), &data, "merge");
    check(around(VertexConf::subset(1, 3), false), &data, "subset");
    check(around(VertexConf::scale(-1.7), false), &data, "scale");
    check(around(VertexConf::shift(0.4), false), &data, "shift");
    check(
        around(VertexConf::l2_normalize(), false),
        &data,
        "l2 normalize",
    );
}

#[test]
fn stack_and_unstack() {
    // Two branches stacked along the batch axis, then split apart again and merged.
    let conf = builder()
        .add_inputs(&["in"])
        .set_input_types(&[InputType::feed_forward(4)])
        .add_layer("a", dense(5), &["in"])
        .add_layer("b", dense(5), &["in"])
        .add_vertex("stack", VertexConf::stack(), &["a", "b"])
        .add_layer("shared", dense(5), &["stack"])
        .add_vertex("u0", VertexConf::unstack(0, 2), &["shared"])
        .add_vertex("u1", VertexConf::unstack(1, 2), &["shared"])
        .add_vertex("m", VertexConf::merge(), &["u0", "u1"])
        .add_layer("out", mse(3), &["m"])
        .set_outputs(&["out"])
        .build()
        .unwrap();
    check(conf, &one(4, 4, 3, 5), "stack/unstack");
}

#[test]
fn two_inputs_two_outputs_and_a_skip() {
    let conf = builder()
        .add_inputs(&["x1", "x2"])
        .set_input_types(&[InputType::feed_forward(3), InputType::feed_forward(4)])
        .add_layer("a", dense(5), &["x1"])
        .add_layer("b", dense(5), &["x2"])
        .add_vertex(
            "sum",
            VertexConf::element_wise(ElementWiseOp::Add),
            &["a", "b"],
        )
        .add_layer("c", dense(5), &["sum"])
        .add_vertex(
            "skip",
            VertexConf::element_wise(ElementWiseOp::Add),
            &["c", "a"],
        )
        .add_layer(
            "class",
            LayerConf::output(LossFunction::Mcxent, 3).activation(Activation::Softmax),
            &["skip"],
        )
        .add_layer("reg", mse(2), &["c"])
        .set_outputs(&["class", "reg"])
        .build()
        .unwrap();
    let mut onehot = vec![0.0; 5 * 3];
    for r in 0..5 {
        onehot[r * 3 + r % 3] = 1.0;
    }
    let data = MultiDataSet::new(
        vec![rand(&[5, 3], 7), rand(&[5, 4], 8)],
        vec![
            NdArray::from_slice(&[5, 3], &onehot).unwrap(),
            rand(&[5, 2], 9),
        ],
    )
    .unwrap();
    check(conf, &data, "two inputs, two outputs");
}

#[test]
fn every_preprocessor() {
    // CNN input -> CnnToFeedForward (inserted) -> dense -> FeedForwardToCnn -> CnnToRnn ->
    // RnnToFeedForward -> dense -> FeedForwardToRnn -> RnnToCnn -> CnnToFeedForward -> output.
    let (c, h, w) = (2, 2, 3);
    let chw = c * h * w;
    let conf = builder()
        .add_inputs(&["img"])
        .set_input_types(&[InputType::convolutional(h, w, c)])
        .add_layer("d1", dense(chw), &["img"])
        .add_vertex(
            "to_cnn",
            VertexConf::preprocessor(InputPreProcessor::FeedForwardToCnn {
                height: h,
                width: w,
                channels: c,
            }),
            &["d1"],
        )
        .add_vertex(
            "to_rnn",
            VertexConf::preprocessor(InputPreProcessor::CnnToRnn {
                height: h,
                width: w,
                channels: c,
            }),
            &["to_cnn"],
        )
        .add_layer("d2", dense(chw), &["to_rnn"])
        .add_vertex(
            "back_rnn",
            VertexConf::preprocessor(InputPreProcessor::FeedForwardToRnn),
            &["d2"],
        )
        .add_vertex(
            "back_cnn",
            VertexConf::preprocessor(InputPreProcessor::RnnToCnn {
                height: h,
                width: w,
                channels: c,
            }),
            &["back_rnn"],
        )
        .add_layer("out", mse(3), &["back_cnn"])
        .set_outputs(&["out"])
        .build()
        .unwrap();
    // The auto-inserted preprocessors are in the configuration.
    let json = conf.to_json().unwrap();
    assert!(
        json.contains("CnnToFeedForward") && json.contains("RnnToFeedForward"),
        "{json}"
    );
    let data = MultiDataSet::new(vec![rand(&[4, c, h, w], 11)], vec![rand(&[4, 3], 12)]).unwrap();
    check(conf, &data, "preprocessors");
}

#[test]
fn multi_layer_network_with_preprocessors() {
    // Sequences through RnnToFeedForward: every time step is a row for the dense layers.
    let conf = NeuralNetConfiguration::builder()
        .seed(2)
        .list()
        .layer(dense(5))
        .layer(mse(2))
        .input_preprocessor(1, InputPreProcessor::FeedForwardToRnn)
        .set_input_type(InputType::recurrent(3))
        .build();
    // FeedForwardToRnn before a feed-forward output layer needs its RnnToFeedForward back:
    // the configuration says so.
    assert!(conf.is_err(), "{conf:?}");
    let conf = NeuralNetConfiguration::builder()
        .seed(2)
        .list()
        .layer(dense(5))
        .layer(mse(2))
        .set_input_type(InputType::recurrent(3))
        .build()
        .unwrap();
    assert_eq!(
        conf.input_preprocessors.get(&0),
        Some(&InputPreProcessor::RnnToFeedForward)
    );
    let mut net = MultiLayerNetwork::<f64>::new(conf).unwrap();
    let x = rand(&[2, 3, 4], 21); // 2 sequences of 4 steps
    let y = rand(&[8, 2], 22); // one row per (example, step)
    net.compute_gradient_and_score(&x, &y).unwrap();
    let analytic = net.gradients().to_vec().unwrap();
    let original = net.params().to_vec().unwrap();
    common::check_gradients(
        &analytic,
        &original,
        |p| {
            net.set_params(&NdArray::from_slice(&[p.len()], p).unwrap())
                .unwrap();
            net.compute_gradient_and_score(&x, &y).unwrap()
        },
        "MultiLayerNetwork with preprocessors",
    );
    let _ = x.view();
}
