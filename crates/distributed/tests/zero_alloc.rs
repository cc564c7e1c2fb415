//! Zero heap allocations per steady-state round on every rank, in both modes: the fused
//! buffers are preallocated, the round's batches live in the trainer's input workspace, the
//! collective copies into preallocated slots. Each rank counts its own thread's allocations
//! between consecutive rounds (a listener runs at the end of every updater step). One test in
//! this binary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dl4rs_array::NdArray;
use dl4rs_data::{DataSet, InMemoryDataSetIterator};
use dl4rs_distributed::{Collective, DistributedTrainer, LocalGroup, TrainingMode};
use dl4rs_memory::CountingAllocator;
use dl4rs_nn::*;

mod common;

use common::AllocationsPerIteration;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

fn data() -> DataSet<f32> {
    let x = NdArray::<f32>::rand_uniform(&[256, 20], -1.0, 1.0, 3).unwrap();
    let mut y = vec![0f32; 256 * 4];
    for r in 0..256 {
        y[r * 4 + r % 4] = 1.0;
    }
    DataSet::new(x, NdArray::from_slice_detached(&[256, 4], &y).unwrap()).unwrap()
}

#[test]
fn steady_state_rounds_allocate_nothing_on_any_rank() {
    for mode in [
        TrainingMode::SharedGradients,
        TrainingMode::ParameterAveraging,
    ] {
        let group = LocalGroup::<f32>::new(2, 1 << 16, Duration::from_secs(60)).unwrap();
        let per_rank: Vec<Vec<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = group
                .into_iter()
                .map(|g| {
                    s.spawn(move || {
                        let conf = NeuralNetConfiguration::builder()
                            .seed(1)
                            .updater(Updater::adam(1e-3))
                            .list()
                            .layer(LayerConf::dense(32).n_in(20).activation(Activation::Relu))
                            .layer(
                                LayerConf::output(LossFunction::Mcxent, 4)
                                    .activation(Activation::Softmax),
                            )
                            .build()
                            .unwrap();
                        let mut model = MultiLayerNetwork::<f32>::new(conf).unwrap();
                        let rank = g.rank();
                        let mut trainer = DistributedTrainer::builder(g)
                            .training_mode(mode)
                            .averaging_frequency(2)
                            .build()
                            .unwrap();
                        let mut it = InMemoryDataSetIterator::new(data(), 16)
                            .unwrap()
                            .with_shuffle(9);
                        // Warm-up: the workspaces learn their sizes.
                        trainer.fit(&mut model, &mut it, 2).unwrap();
                        let counts = Arc::new(Mutex::new(Vec::with_capacity(64)));
                        model.add_listener(Box::new(AllocationsPerIteration {
                            alloc: &ALLOC,
                            last: None,
                            counts: counts.clone(),
                        }));
                        trainer.fit(&mut model, &mut it, 1).unwrap();
                        let c = counts.lock().unwrap().clone();
                        (rank, c)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap().1).collect()
        });
        for (rank, counts) in per_rank.iter().enumerate() {
            // 256 rows / 16 = 16 batches = 8 rounds; the listener sees 7 gaps in the epoch.
            assert_eq!(counts.len(), 7, "{mode:?} rank {rank}: {counts:?}");
            assert!(
                counts.iter().all(|&c| c == 0),
                "{mode:?} rank {rank}: heap allocations per round {counts:?}"
            );
        }
    }
}
