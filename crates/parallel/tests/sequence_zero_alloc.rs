//! Zero heap allocations per steady-state round on every thread when the batches are
//! variable-length masked sequences: the time length of the batches cycles 10 / 50 / 100 / 25
//! steps (W3's lengths), so every round copies batches of a new shape into the trainers'
//! `PW_BATCH` workspaces and runs the replicas' recurrent loops over a new number of steps.
//! Once the longest length has been seen (the first epoch) a round allocates nothing on any
//! thread: the workspaces learned the longest batch and serve the shorter ones from the same
//! block. Sampled as in `zero_alloc.rs` (a listener at the end of each round, when every
//! trainer is idle); one test in this binary, so nothing else allocates meanwhile.
//!
//! Without the wrapper's prefetch thread (`prefetch_buffer(0)`: the coordinator reads the
//! source): an `AsyncDataSetIterator` starts a new ring every epoch, which learns the epoch's
//! first batch and serves longer ones from the heap until it is rebuilt a few laps later, so
//! with prefetch the first rounds of every epoch allocate on the prefetch thread (measured:
//! about 18 allocations in each of rounds 2..6 of 8). That is the ring's documented
//! behaviour (crates/data/src/async_iter.rs), not the wrapper's.

mod common;

use std::sync::{Arc, Mutex};

use common::sequence_batches;
use dl4rs_data::DataSetIterator;
use dl4rs_memory::CountingAllocator;
use dl4rs_nn::*;
use dl4rs_parallel::{ParallelWrapper, TrainingMode};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

const LENGTHS: [usize; 4] = [10, 50, 100, 25];
const BATCH: usize = 8;
const BATCHES: usize = 16;
const CHANNELS: usize = 4;

struct Sampler(Arc<Mutex<Vec<(u64, u64)>>>);

impl TrainingListener<f32> for Sampler {
    fn iteration_done(&mut self, _: &dyn Model<f32>, info: &IterationInfo) -> Result<(), NnError> {
        if let Ok(mut v) = self.0.lock() {
            v.push((info.iteration, ALLOC.allocations()));
        }
        Ok(())
    }
}

/// Batch `k`'s longest sequence has `LENGTHS[k % 4]` steps, the others fewer (so every batch
/// has a features mask and padding).
fn source() -> Box<dyn DataSetIterator<f32> + Send> {
    Box::new(sequence_batches(
        BATCH * BATCHES,
        BATCH,
        BATCH,
        &LENGTHS,
        CHANNELS,
        3,
        true,
    ))
}

fn network() -> MultiLayerNetwork<f32> {
    let conf = NeuralNetConfiguration::builder()
        .seed(2)
        .updater(Updater::adam(1e-3))
        .list()
        .layer(LayerConf::last_time_step(LayerConf::lstm(16)))
        .layer(LayerConf::output(LossFunction::Mcxent, 3).activation(Activation::Softmax))
        .set_input_type(InputType::recurrent(CHANNELS))
        .build()
        .unwrap();
    MultiLayerNetwork::new(conf).unwrap()
}

#[test]
fn variable_length_rounds_allocate_nothing_once_the_longest_is_seen() {
    let per_epoch = BATCHES / 2;
    for mode in [TrainingMode::SharedGradients, TrainingMode::Averaging] {
        let mut w = ParallelWrapper::builder(network())
            .workers(2)
            .training_mode(mode)
            .prefetch_buffer(0)
            .build()
            .unwrap();
        let samples = Arc::new(Mutex::new(Vec::with_capacity(64)));
        w.add_listener(Box::new(Sampler(Arc::clone(&samples))));
        let mut src = source();
        for _ in 0..3 {
            w.fit(&mut src).unwrap();
        }
        let s = samples.lock().unwrap().clone();
        assert_eq!(s.len(), 3 * per_epoch, "{mode:?}");
        let deltas: Vec<(u64, u64)> = s.windows(2).map(|p| (p[1].0, p[1].1 - p[0].1)).collect();
        eprintln!("{mode:?}: {deltas:?}");
        let mut checked = 0;
        for pair in s.windows(2) {
            let (prev, cur) = (pair[0], pair[1]);
            let round_in_epoch = (cur.0 - 1) % per_epoch as u64;
            // Epochs 2 and 3, from the 4th round on (each epoch's prefetch thread is new).
            if cur.0 as usize <= per_epoch || round_in_epoch < 3 {
                continue;
            }
            assert_eq!(
                cur.1 - prev.1,
                0,
                "{mode:?}: heap allocations (all threads) in round {}",
                cur.0
            );
            checked += 1;
        }
        assert_eq!(checked, 2 * (per_epoch - 3), "{mode:?}");
    }
}
