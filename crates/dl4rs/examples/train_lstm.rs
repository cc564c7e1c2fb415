//! Train an LSTM on variable-length sequences read from DL4J's CSV sequence layout (the
//! bundled Fashion-MNIST rows: 8..28 steps of 28 pixels), with masks, per-channel
//! standardization and the async prefetch thread; then evaluate it (`dl4rs train --model
//! lstm` adds a progress bar and reports).
//!
//! `cargo run --release -p dl4rs --example train_lstm`

use dl4rs::data::AsyncDataSetIterator;
use dl4rs::data::normalizer::{DataNormalization, NormalizerStandardize, PreProcessedIterator};
use dl4rs::data::records::SequenceSplit;
use dl4rs::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/sequences/fashion-rows"
    );
    let train = SequenceSplit::read(format!("{dir}/train"))?;
    let test = SequenceSplit::read(format!("{dir}/test"))?;
    let (channels, classes) = (train.num_channels(), train.num_classes()?);

    // Standardize each channel over the real (unmasked) steps of the training sequences.
    let mut norm = NormalizerStandardize::new();
    norm.fit(&mut train.classification::<f32>(500, classes)?)?;

    let conf = NeuralNetConfiguration::builder()
        .seed(12345)
        .updater(Updater::adam(5e-3))
        .weight_init(WeightInit::XavierUniform)
        .list()
        .layer(LayerConf::last_time_step(LayerConf::lstm(64))) // the last unmasked step
        .layer(LayerConf::output(LossFunction::Mcxent, classes).activation(Activation::Softmax))
        .set_input_type(InputType::recurrent(channels))
        .build()?;
    let mut net = MultiLayerNetwork::<f32>::new(conf)?;
    print!("{}", net.summary());

    // Labels one per sequence ([batch, classes]), features [batch, 28, time] with masks,
    // sequences aligned at the end, a new order every epoch, prefetched on another thread.
    let batches = train
        .classification::<f32>(32, classes)?
        .with_shuffle(12345)
        .with_labels_per_sequence();
    let source = PreProcessedIterator::new(batches, norm.clone());
    let mut train_it = AsyncDataSetIterator::new(Box::new(source), 2)?;
    net.fit_iter(&mut train_it, 3)?;

    let test_batches = test
        .classification::<f32>(500, classes)?
        .with_labels_per_sequence();
    let mut test_it = PreProcessedIterator::new(test_batches, norm);
    let eval = net.evaluate(&mut test_it)?;
    println!("accuracy after 3 epochs: {:.2}%", eval.accuracy() * 100.0);
    Ok(())
}
