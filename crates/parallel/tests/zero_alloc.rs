//! Zero heap allocations per steady-state round on every thread: the coordinator, every
//! trainer and the prefetch thread. A listener on the wrapper samples the process-wide count
//! at the end of each round; at that point every trainer is idle (the round's barrier has
//! passed), so the difference between two samples is everything every thread allocated for
//! one round. Steady state: from the second epoch on, after the first rounds of each epoch
//! (each epoch starts a new prefetch thread whose ring learns on its first batch). One test in
//! this binary, so nothing else allocates meanwhile. Averaging (with updaters), SharedGradients
//! dense and threshold-encoded; a W1-shaped MLP (784-256-128-10, Adam).

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use dl4rs_memory::CountingAllocator;
use dl4rs_nn::*;
use dl4rs_parallel::{ParallelWrapper, ThresholdEncoding, TrainingMode};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

/// Process-wide and coordinator-thread counts at the end of each round.
struct Sampler(Arc<Mutex<Vec<(u64, u64, u64)>>>);

impl TrainingListener<f32> for Sampler {
    fn iteration_done(&mut self, _: &dyn Model<f32>, info: &IterationInfo) -> Result<(), NnError> {
        let sample = (
            info.iteration,
            ALLOC.allocations(),
            ALLOC.thread_allocations(),
        );
        if let Ok(mut v) = self.0.lock() {
            v.push(sample);
        }
        Ok(())
    }
}

fn w1() -> MultiLayerNetwork<f32> {
    let conf = NeuralNetConfiguration::builder()
        .seed(1)
        .updater(Updater::adam(1e-3))
        .list()
        .layer(LayerConf::dense(256).n_in(784).activation(Activation::Relu))
        .layer(LayerConf::dense(128).activation(Activation::Relu))
        .layer(LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax))
        .build()
        .unwrap();
    MultiLayerNetwork::new(conf).unwrap()
}

#[test]
fn steady_state_rounds_allocate_nothing_on_any_thread() {
    let d = data::<f32>(32 * 24, 784, 10, 3);
    let per_epoch = 12; // 24 batches of 32, 2 workers
    for (name, mode, threshold) in [
        ("Averaging", TrainingMode::Averaging, None),
        ("SharedGradients", TrainingMode::SharedGradients, None),
        (
            "SharedGradients+threshold",
            TrainingMode::SharedGradients,
            Some(ThresholdEncoding::default()),
        ),
    ] {
        let mut b = ParallelWrapper::builder(w1())
            .workers(2)
            .training_mode(mode)
            .prefetch_buffer(4);
        if let Some(t) = threshold {
            b = b.threshold_encoding(t);
        }
        let mut w = b.build().unwrap();
        let samples = Arc::new(Mutex::new(Vec::with_capacity(64)));
        w.add_listener(Box::new(Sampler(Arc::clone(&samples))));
        let mut src = source(&d, 32);
        for _ in 0..3 {
            w.fit(&mut src).unwrap();
        }
        let s = samples.lock().unwrap().clone();
        assert_eq!(s.len(), 3 * per_epoch);
        let deltas: Vec<(u64, u64, u64)> = s
            .windows(2)
            .map(|p| (p[1].0, p[1].1 - p[0].1, p[1].2 - p[0].2))
            .collect();
        eprintln!("{name}: {deltas:?}");
        let mut checked = 0;
        for pair in s.windows(2) {
            let (prev, cur) = (pair[0], pair[1]);
            let round_in_epoch = (cur.0 - 1) % per_epoch as u64;
            // Epochs 2 and 3, from the 4th round on (the window starts at the previous round's
            // end, inside the same epoch).
            if cur.0 as usize <= per_epoch || round_in_epoch < 3 {
                continue;
            }
            assert_eq!(
                cur.1 - prev.1,
                0,
                "{name}: heap allocations (all threads) in round {}",
                cur.0
            );
            assert_eq!(
                cur.2 - prev.2,
                0,
                "{name}: on the coordinator in round {}",
                cur.0
            );
            checked += 1;
        }
        assert_eq!(checked, 2 * (per_epoch - 3), "{name}");
        drop(w);
    }
}
