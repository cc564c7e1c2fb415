//! A ComputationGraph with two inputs and two outputs, built in code: an image branch and a
//! tabular branch are merged, a skip connection adds the image features back, and the graph
//! predicts a class and a value at once. It trains on a multi data set (the two losses are
//! summed), evaluates each output, saves the model and loads it back.
//!
//! `cargo run --release -p dl4rs --example two_inputs`

use dl4rs::array::random::unit;
use dl4rs::data::{InMemoryMultiDataSetIterator, MultiDataSet};
use dl4rs::nn::{ComputationGraph, ElementWiseOp, InputType, RestoredModel, VertexConf};
use dl4rs::prelude::*;

/// Synthetic data with a learnable rule: the class is which image quadrant is brightest, the
/// value is a weighted sum of the tabular columns.
fn data(n: usize, seed: u64) -> Result<MultiDataSet, Box<dyn std::error::Error>> {
    let (mut img, mut tab) = (vec![0f32; n * 64], vec![0f32; n * 4]);
    let (mut class, mut value) = (vec![0f32; n * 4], vec![0f32; n]);
    for e in 0..n {
        let bright = (unit(seed, e as u64) * 4.0) as usize % 4;
        for p in 0..64 {
            let (r, c) = (p / 8, p % 8);
            let quadrant = (r / 4) * 2 + c / 4;
            let noise = unit(seed + 1, (e * 64 + p) as u64);
            img[e * 64 + p] = noise * 0.5 + if quadrant == bright { 0.5 } else { 0.0 };
        }
        class[e * 4 + bright] = 1.0;
        let mut v = 0.0;
        for j in 0..4 {
            let x = unit(seed + 2, (e * 4 + j) as u64) * 2.0 - 1.0;
            tab[e * 4 + j] = x;
            v += x * [0.5, -1.0, 2.0, 0.25][j];
        }
        value[e] = v;
    }
    Ok(MultiDataSet::new(
        vec![
            NdArray::from_slice(&[n, 1, 8, 8], &img)?,
            NdArray::from_slice(&[n, 4], &tab)?,
        ],
        vec![
            NdArray::from_slice(&[n, 4], &class)?,
            NdArray::from_slice(&[n, 1], &value)?,
        ],
    )?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let conf = NeuralNetConfiguration::builder()
        .seed(7)
        .updater(Updater::adam(3e-3))
        .graph_builder()
        .add_inputs(&["image", "table"])
        .set_input_types(&[
            InputType::convolutional(8, 8, 1),
            InputType::feed_forward(4),
        ])
        // A CnnToFeedForward preprocessor is inserted in front of this dense layer.
        .add_layer(
            "img",
            LayerConf::dense(32).activation(Activation::Relu),
            &["image"],
        )
        .add_layer(
            "tab",
            LayerConf::dense(16).activation(Activation::Tanh),
            &["table"],
        )
        .add_vertex("merge", VertexConf::merge(), &["img", "tab"])
        .add_layer(
            "mix",
            LayerConf::dense(32).activation(Activation::Relu),
            &["merge"],
        )
        .add_vertex(
            "skip",
            VertexConf::element_wise(ElementWiseOp::Add),
            &["mix", "img"],
        )
        .add_layer(
            "class",
            LayerConf::output(LossFunction::Mcxent, 4).activation(Activation::Softmax),
            &["skip"],
        )
        .add_layer(
            "value",
            LayerConf::output(LossFunction::Mse, 1).activation(Activation::Identity),
            &["merge"],
        )
        .set_outputs(&["class", "value"])
        .build()?;
    let mut graph = ComputationGraph::<f32>::new(conf)?;
    print!("{}", graph.summary());

    let mut train = InMemoryMultiDataSetIterator::new(data(2000, 1)?, 50)?.with_shuffle(3);
    let test = data(500, 2)?;
    println!("score before: {:.4}", graph.score(&test)?);
    graph.fit_multi_iter(&mut train, 15)?;
    println!("score after:  {:.4}", graph.score(&test)?);

    let mut test_it = InMemoryMultiDataSetIterator::new(test, 100)?;
    let mut class = Evaluation::new(4);
    let mut value = RegressionEvaluation::new(1);
    graph.do_evaluation_multi(&mut test_it, &mut [(0, &mut class), (1, &mut value)])?;
    println!(
        "class accuracy {:.1}%, value R² {:.3}",
        class.accuracy() * 100.0,
        value.r_squared(0)
    );

    let path = std::env::temp_dir().join("dl4rs-two-inputs.safetensors");
    ModelSerializer::write_model(&graph, &path, true)?;
    match ModelSerializer::restore::<f32>(&path, true)? {
        RestoredModel::Graph(back) => println!(
            "restored a graph with {} parameters from {}",
            back.num_params(),
            path.display()
        ),
        RestoredModel::MultiLayer(_) => unreachable!("the file holds a graph"),
    }
    std::fs::remove_file(&path).ok();
    Ok(())
}
