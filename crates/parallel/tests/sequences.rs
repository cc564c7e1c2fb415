//! ParallelWrapper on variable-length sequences: every batch padded to its own longest
//! sequence (so the time length changes from batch to batch and from worker to worker within
//! a round), aligned at the end with a features mask, and for a per-step head a labels mask.
//! With 2 workers, SharedGradients (SGD and Adam) and Averaging (SGD, equal batch sizes) give
//! the parameters of a single model trained on the union of each round's batches, padded to the
//! longer of the two. Tolerance 1e-10 in f64: the masked steps contribute exact zeros (the
//! padded-batch equivalence of the nn tests), so only the order in which the examples'
//! gradients are summed differs (the union sums 2b rows in one product, the workers b rows
//! each and the exchange adds the two), a few ulps per parameter per round; a batch lost, a
//! mask dropped in the copy into `PW_BATCH` or padding counted as data moves the parameters by
//! ~1e-3.

mod common;

use common::{max_diff, sequence_batches};
use dl4rs_data::DataSetIterator;
use dl4rs_data::records::SequenceRecordReaderDataSetIterator;
use dl4rs_nn::*;
use dl4rs_parallel::{ParallelWrapper, TrainingMode};

const TOL: f64 = 1e-10;
const CHANNELS: usize = 3;
const CLASSES: usize = 3;

/// Time lengths of the batches of 4, in turn (the union batches of 8: 9, 12).
const LENGTHS: [usize; 4] = [3, 9, 6, 12];

/// 40 sequences in batches of `batch`, each padded to its longest (AlignEnd, masks); labels
/// `[batch, classes]` when `per_sequence`, else per step with the labels mask.
fn batches(n: usize, batch: usize, per_sequence: bool) -> SequenceRecordReaderDataSetIterator<f64> {
    sequence_batches(n, batch, 4, &LENGTHS, CHANNELS, CLASSES, per_sequence)
}

/// LSTM 5 (tanh) read at its last unmasked step + softmax output, or (per step) GRU 4 +
/// RnnOutputLayer.
fn network(per_sequence: bool, updater: Updater) -> MultiLayerNetwork<f64> {
    let list = NeuralNetConfiguration::builder()
        .seed(11)
        .updater(updater)
        .list();
    let list = if per_sequence {
        list.layer(LayerConf::last_time_step(LayerConf::lstm(5)))
            .layer(LayerConf::output(LossFunction::Mcxent, CLASSES).activation(Activation::Softmax))
    } else {
        list.layer(LayerConf::gru(4)).layer(
            LayerConf::rnn_output(LossFunction::Mcxent, CLASSES).activation(Activation::Softmax),
        )
    };
    let conf = list
        .set_input_type(InputType::recurrent(CHANNELS))
        .build()
        .unwrap();
    MultiLayerNetwork::new(conf).unwrap()
}

/// 2 workers on batches of 4 against one model on batches of 8, over `epochs` epochs; returns
/// the parameter difference.
fn compare(mode: TrainingMode, updater: Updater, per_sequence: bool, prefetch: usize) -> f64 {
    let (rows, epochs) = (40, 3);
    let mut single = network(per_sequence, updater);
    let mut union = batches(rows, 8, per_sequence);
    single.fit_iter(&mut union, epochs).unwrap();

    let mut w = ParallelWrapper::builder(network(per_sequence, updater))
        .workers(2)
        .training_mode(mode)
        .prefetch_buffer(prefetch)
        .build()
        .unwrap();
    let mut src: Box<dyn DataSetIterator<f64> + Send> = Box::new(batches(rows, 4, per_sequence));
    for _ in 0..epochs {
        w.fit(&mut src).unwrap();
    }
    let net = w.into_model().unwrap();
    assert_eq!(net.iteration_count(), single.iteration_count());
    max_diff(net.params(), single.params())
}

#[test]
fn the_batches_vary_in_length_and_carry_masks() {
    let mut it = batches(40, 4, false);
    let mut lengths = std::collections::BTreeSet::new();
    while it.has_next() {
        let d = it.next().unwrap().unwrap();
        let t = d.features.shape()[2];
        lengths.insert(t);
        assert_eq!(d.features_mask.as_ref().unwrap().shape(), [4, t]);
        assert_eq!(d.labels_mask.as_ref().unwrap().shape(), [4, t]);
    }
    assert!(lengths.len() >= 3, "batch lengths {lengths:?}");
}

#[test]
fn shared_gradients_on_masked_sequences_equal_a_single_model_on_the_union() {
    for per_sequence in [true, false] {
        for updater in [Updater::sgd(0.3), Updater::adam(1e-2)] {
            for prefetch in [0, 4] {
                let diff = compare(
                    TrainingMode::SharedGradients,
                    updater,
                    per_sequence,
                    prefetch,
                );
                assert!(
                    diff < TOL,
                    "per_sequence {per_sequence}, {updater:?}, prefetch {prefetch}: {diff:e}"
                );
            }
        }
    }
}

#[test]
fn averaging_on_masked_sequences_equals_a_single_model_on_the_union() {
    for per_sequence in [true, false] {
        let diff = compare(TrainingMode::Averaging, Updater::sgd(0.3), per_sequence, 4);
        assert!(diff < TOL, "per_sequence {per_sequence}: {diff:e}");
    }
}

/// The control: one model stepping on each batch of 4 (not the union) is far from the union
/// model, so the tolerance above separates right from wrong.
#[test]
fn the_tolerance_separates_the_union_from_other_fits() {
    let mut union = network(true, Updater::sgd(0.3));
    union.fit_iter(&mut batches(40, 8, true), 3).unwrap();
    let mut halves = network(true, Updater::sgd(0.3));
    halves.fit_iter(&mut batches(40, 4, true), 3).unwrap();
    let diff = max_diff(union.params(), halves.params());
    assert!(diff > 1e-4, "{diff:e}");
}
