//! The trainer on variable-length masked sequences over the in-process group: every batch
//! padded to its own longest sequence (AlignEnd, features mask; a per-step head gets the
//! labels mask too), so the two ranks of a round train batches of different time lengths.
//! Gradient sharing equals one process training on the union of each round's two batches
//! (padded to the longer), in f64 to 1e-10 relative: masked steps contribute exact zeros, so
//! only the order of the sums differs. Then, in f32, zero heap allocations per round on each
//! rank once the longest batch has been seen: the round's batches live in the trainer's
//! `WS_DISTRIBUTED_INPUT` workspace, which learns the longest and serves the shorter ones.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dl4rs_array::DataType;
use dl4rs_data::records::{
    AlignmentMode, CsvSequenceRecordReader, SequenceRecordReaderDataSetIterator,
};
use dl4rs_distributed::{Collective, DistributedTrainer, TrainingMode};
use dl4rs_memory::CountingAllocator;
use dl4rs_nn::*;

mod common;

use common::{AllocationsPerIteration, max_rel_diff, on_ranks};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

const CHANNELS: usize = 3;
const CLASSES: usize = 3;

/// `n` sequences; sequence `i`'s length cycles with `i / batch` through `lengths` for the
/// first of each batch (the batch's longest) and is shorter for the others.
fn batches<T: DataType>(
    n: usize,
    batch: usize,
    group: usize,
    lengths: &[usize],
    per_sequence: bool,
) -> SequenceRecordReaderDataSetIterator<T> {
    let (mut f, mut l) = (Vec::new(), Vec::new());
    for i in 0..n {
        let longest = lengths[(i / group) % lengths.len()];
        let len = if i % group == 0 {
            longest
        } else {
            1 + (i * 7) % longest
        };
        let text: String = (0..len)
            .map(|t| {
                let row: Vec<String> = (0..CHANNELS)
                    .map(|c| format!("{:.4}", ((i * 5 + 3 * t + 7 * c) % 13) as f64 / 13.0 - 0.5))
                    .collect();
                row.join(",") + "\n"
            })
            .collect();
        f.push((format!("{i}.csv"), text));
        l.push((format!("{i}.csv"), format!("{}\n", (i + len) % CLASSES)));
    }
    let read = |files: &[(String, String)]| {
        let pairs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let mut r = CsvSequenceRecordReader::new(0, ',');
        r.initialize_strs(&pairs).unwrap();
        r
    };
    let it = SequenceRecordReaderDataSetIterator::classification(
        read(&f),
        read(&l),
        batch,
        CLASSES,
        AlignmentMode::AlignEnd,
    )
    .unwrap();
    if per_sequence {
        it.with_labels_per_sequence()
    } else {
        it
    }
}

fn network<T: DataType>(per_sequence: bool, updater: Updater, seed: u64) -> MultiLayerNetwork<T> {
    let list = NeuralNetConfiguration::builder()
        .seed(seed)
        .updater(updater)
        .list();
    let list = if per_sequence {
        list.layer(LayerConf::last_time_step(LayerConf::lstm(5)))
            .layer(LayerConf::output(LossFunction::Mcxent, CLASSES).activation(Activation::Softmax))
    } else {
        list.layer(LayerConf::lstm(4)).layer(
            LayerConf::rnn_output(LossFunction::Mcxent, CLASSES).activation(Activation::Softmax),
        )
    };
    let conf = list
        .set_input_type(InputType::recurrent(CHANNELS))
        .build()
        .unwrap();
    MultiLayerNetwork::new(conf).unwrap()
}

#[test]
fn shared_gradients_on_masked_sequences_equal_one_process_on_the_union() {
    // Batches of 4 (ranks) against 8 (the union); the union's first half is rank 0's batch.
    let lengths = [3, 9, 6, 12];
    for per_sequence in [true, false] {
        for updater in [Updater::sgd(0.3), Updater::adam(1e-2)] {
            let results = on_ranks::<f64, _, _>(2, Duration::from_secs(60), |g| {
                let mut model = network::<f64>(per_sequence, updater, 100 + g.rank() as u64);
                let mut trainer = DistributedTrainer::builder(g).build().unwrap();
                trainer.broadcast_model(&mut model).unwrap();
                let mut it = batches::<f64>(48, 4, 4, &lengths, per_sequence);
                trainer.fit(&mut model, &mut it, 3).unwrap();
                model.params().to_vec().unwrap()
            });
            let mut single = network::<f64>(per_sequence, updater, 100);
            let mut it = batches::<f64>(48, 8, 4, &lengths, per_sequence);
            single.fit_iter(&mut it, 3).unwrap();
            let expected = single.params().to_vec().unwrap();
            for params in &results {
                assert_eq!(params, &results[0], "replicas stay bit-identical");
                let d = max_rel_diff(params, &expected);
                assert!(
                    d < 1e-10,
                    "per_sequence {per_sequence}, {updater:?}: relative difference {d:e}"
                );
            }
        }
    }
}

#[test]
fn variable_length_rounds_allocate_nothing_once_the_longest_is_seen() {
    // Time lengths cycling 10 / 50 / 100 / 25 (W3's), batches of 8: 16 batches, 8 rounds.
    for mode in [
        TrainingMode::SharedGradients,
        TrainingMode::ParameterAveraging,
    ] {
        let per_rank = on_ranks::<f32, _, _>(2, Duration::from_secs(60), |g| {
            let mut model = network::<f32>(true, Updater::adam(1e-3), 1);
            let mut trainer = DistributedTrainer::builder(g)
                .training_mode(mode)
                .averaging_frequency(2)
                .build()
                .unwrap();
            let mut it = batches::<f32>(128, 8, 8, &[10, 50, 100, 25], true);
            // Warm-up: the workspaces learn the longest batch.
            trainer.fit(&mut model, &mut it, 2).unwrap();
            let counts = Arc::new(Mutex::new(Vec::with_capacity(64)));
            model.add_listener(Box::new(AllocationsPerIteration {
                alloc: &ALLOC,
                last: None,
                counts: counts.clone(),
            }));
            trainer.fit(&mut model, &mut it, 1).unwrap();
            counts.lock().unwrap().clone()
        });
        for (rank, counts) in per_rank.iter().enumerate() {
            assert_eq!(counts.len(), 7, "{mode:?} rank {rank}: {counts:?}");
            assert!(
                counts.iter().all(|&c| c == 0),
                "{mode:?} rank {rank}: heap allocations per round {counts:?}"
            );
        }
    }
}
