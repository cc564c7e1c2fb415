//! Train an MLP on the bundled Fashion-MNIST split and evaluate it: the library's main path in
//! thirty lines (the `dl4rs train` command adds a progress bar and reports).
//!
//! `cargo run --release -p dl4rs --example train_mlp`

use dl4rs::data::fashion_mnist;
use dl4rs::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (train, test) = fashion_mnist::bundled()?;
    let conf = NeuralNetConfiguration::builder()
        .seed(12345)
        .updater(Updater::adam(1e-3))
        .weight_init(WeightInit::HeUniform)
        .list()
        .layer(LayerConf::dense(256).n_in(784).activation(Activation::Relu))
        .layer(LayerConf::dense(128).activation(Activation::Relu))
        .layer(LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax))
        .build()?;
    let mut net = MultiLayerNetwork::<f32>::new(conf)?;
    print!("{}", net.summary());
    let mut train_it = InMemoryDataSetIterator::new(train, 64)?.with_shuffle(12345);
    net.fit_iter(&mut train_it, 5)?; // every iteration runs in the network's workspaces
    let mut test_it = InMemoryDataSetIterator::new(test, 500)?;
    let eval = net.evaluate(&mut test_it)?;
    println!("accuracy after 5 epochs: {:.2}%", eval.accuracy() * 100.0);
    ModelSerializer::write_model(
        &net,
        std::env::temp_dir().join("train_mlp.safetensors"),
        true,
    )?;
    Ok(())
}
