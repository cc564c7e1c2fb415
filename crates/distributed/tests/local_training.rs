//! The trainer over the in-process group (ranks as threads): gradient sharing equals one
//! process training on the union of the ranks' batches; parameter averaging equals replicas
//! averaged by hand; uneven shards, a failing rank and a silent rank end every rank with a
//! clear error, never a hang.

use std::time::{Duration, Instant};

use dl4rs_array::NdArray;
use dl4rs_data::{DataSet, DataSetIterator, InMemoryDataSetIterator};
use dl4rs_distributed::{
    Collective, DistributedError, DistributedTrainer, LocalGroup, TrainingMode,
};
use dl4rs_nn::*;

mod common;

use common::{CLASSES, INPUTS, averaged_by_hand, data, max_rel_diff, net, on_ranks};

const ROWS: usize = 64;

/// Two ranks with batches of 8 train like one process with batches of 16 (the union of the
/// round's two batches), over uneven shards too (7 batches: the last round has one).
#[test]
fn shared_gradients_equal_one_process_on_the_union() {
    for (rows, epochs) in [(ROWS, 3), (56, 2)] {
        let results = on_ranks::<f64, _, _>(2, Duration::from_secs(30), |g| {
            // Different seeds: the broadcast from rank 0 makes the replicas identical.
            let mut model = net::<f64>(Updater::sgd(0.1), 100 + g.rank() as u64);
            let mut trainer = DistributedTrainer::builder(g).build().unwrap();
            trainer.broadcast_model(&mut model).unwrap();
            let mut it = InMemoryDataSetIterator::new(data::<f64>(rows, false), 8).unwrap();
            let stats = trainer.fit(&mut model, &mut it, epochs).unwrap();
            (
                model.params().to_vec().unwrap(),
                stats,
                model.iteration_count(),
            )
        });
        let mut single = net::<f64>(Updater::sgd(0.1), 100);
        let mut it = InMemoryDataSetIterator::new(data::<f64>(rows, false), 16).unwrap();
        single.fit_iter(&mut it, epochs).unwrap();
        let expected = single.params().to_vec().unwrap();
        let rounds = rows.div_ceil(16) * epochs;
        for (params, stats, iterations) in &results {
            assert_eq!(params, &results[0].0, "replicas stay bit-identical");
            assert_eq!(stats.rounds as usize, rounds);
            assert_eq!(stats.examples as usize, rows * epochs);
            assert_eq!(*iterations as usize, rounds);
            // f64: only the order of the sums differs (per-rank sums of 8 rows, then a sum
            // of two, against one sum of 16): a few ulps per step, far below 1e-12.
            let d = max_rel_diff(params, &expected);
            assert!(d < 1e-12, "rows {rows}: relative difference {d:e}");
        }
    }
}

/// f32 and Adam: the same, within f32 rounding.
#[test]
fn shared_gradients_with_adam_in_f32() {
    let results = on_ranks::<f32, _, _>(2, Duration::from_secs(30), |g| {
        let mut model = net::<f32>(Updater::adam(1e-2), 5);
        let mut trainer = DistributedTrainer::builder(g).build().unwrap();
        trainer.broadcast_model(&mut model).unwrap();
        let mut it = InMemoryDataSetIterator::new(data::<f32>(ROWS, false), 8).unwrap();
        trainer.fit(&mut model, &mut it, 2).unwrap();
        model.params().to_vec().unwrap()
    });
    let mut single = net::<f32>(Updater::adam(1e-2), 5);
    let mut it = InMemoryDataSetIterator::new(data::<f32>(ROWS, false), 16).unwrap();
    single.fit_iter(&mut it, 2).unwrap();
    let expected: Vec<f64> = single
        .params()
        .to_vec()
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    let got: Vec<f64> = results[0].iter().map(|&v| v as f64).collect();
    assert_eq!(results[0], results[1]);
    // f32 sums in another order differ by ~1e-7 relative per step; Adam divides by the
    // root of the second moment, which keeps the steps (and the differences) bounded.
    let d = max_rel_diff(&got, &expected);
    assert!(d < 1e-4, "relative difference {d:e}");
}

/// Parameter averaging: each rank fits its batches, parameters and updater state averaged
/// every 2 rounds; the same as two replicas trained and averaged by hand (same operations,
/// so the same bits).
#[test]
fn parameter_averaging_equals_replicas_averaged_by_hand() {
    let freq = 2;
    let results = on_ranks::<f64, _, _>(2, Duration::from_secs(30), |g| {
        let mut model = net::<f64>(Updater::nesterovs(0.05), 9);
        let mut trainer = DistributedTrainer::builder(g)
            .training_mode(TrainingMode::ParameterAveraging)
            .averaging_frequency(freq)
            .build()
            .unwrap();
        let mut it = InMemoryDataSetIterator::new(data::<f64>(ROWS, false), 8).unwrap();
        trainer.fit(&mut model, &mut it, 1).unwrap();
        model.params().to_vec().unwrap()
    });
    assert_eq!(results[0], results[1]);
    assert_eq!(
        results[0],
        averaged_by_hand(Updater::nesterovs(0.05), 9, ROWS, 8, freq)
    );
}

/// A data set whose batch 3 (rank 1's second batch) has the wrong number of features.
struct BadBatch {
    inner: InMemoryDataSetIterator<f32>,
    served: usize,
}

impl DataSetIterator<f32> for BadBatch {
    fn next(&mut self) -> Option<Result<DataSet<f32>, dl4rs_data::DataError>> {
        self.served += 1;
        if self.served == 4 {
            let _ = self.inner.next();
            let bad = NdArray::<f32>::zeros(&[8, INPUTS + 1]).unwrap();
            let y = NdArray::<f32>::zeros(&[8, CLASSES]).unwrap();
            return Some(DataSet::new(bad, y));
        }
        self.inner.next()
    }
    fn has_next(&self) -> bool {
        self.inner.has_next()
    }
    fn reset(&mut self) -> Result<(), dl4rs_data::DataError> {
        self.served = 0;
        self.inner.reset()
    }
    fn reset_supported(&self) -> bool {
        true
    }
    fn async_supported(&self) -> bool {
        false
    }
    fn batch(&self) -> usize {
        8
    }
    fn total_outcomes(&self) -> usize {
        CLASSES
    }
    fn input_columns(&self) -> usize {
        INPUTS
    }
    fn total_examples(&self) -> Option<usize> {
        Some(ROWS)
    }
}

#[test]
fn a_rank_with_bad_data_stops_every_rank() {
    let started = Instant::now();
    let results = on_ranks::<f32, _, _>(2, Duration::from_secs(30), |g| {
        let mut model = net::<f32>(Updater::sgd(0.1), 1);
        let mut trainer = DistributedTrainer::builder(g).build().unwrap();
        let mut it = BadBatch {
            inner: InMemoryDataSetIterator::new(data::<f32>(ROWS, false), 8).unwrap(),
            served: 0,
        };
        trainer.fit(&mut model, &mut it, 1).map(|_| ())
    });
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no waiting for a timeout"
    );
    let e0 = results[0].as_ref().unwrap_err().to_string();
    let e1 = results[1].as_ref().unwrap_err().to_string();
    assert!(
        e0.contains("rank 0") && e0.contains("1 other rank(s) failed in round 1"),
        "{e0}"
    );
    assert!(e1.starts_with("rank 1: "), "{e1}");
    assert!(
        e1.contains(&format!("{INPUTS}")) && e1.contains(&format!("{}", INPUTS + 1)),
        "{e1}"
    );
}

#[test]
fn a_silent_rank_is_a_timeout_on_the_others() {
    let started = Instant::now();
    let results = on_ranks::<f32, _, _>(2, Duration::from_millis(500), |g| {
        let mut model = net::<f32>(Updater::sgd(0.1), 1);
        if g.rank() == 1 {
            // Rank 1 stops answering after construction (a hung or killed process).
            std::thread::sleep(Duration::from_secs(2));
            return None;
        }
        let mut trainer = DistributedTrainer::builder(g).build().unwrap();
        let mut it = InMemoryDataSetIterator::new(data::<f32>(ROWS, false), 8).unwrap();
        Some(trainer.fit(&mut model, &mut it, 1).unwrap_err())
    });
    let err = results[0].as_ref().unwrap();
    assert!(
        matches!(err, DistributedError::Timeout { rank: 0, .. }),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn configuration_errors() {
    let g = LocalGroup::<f32>::new(1, 16, Duration::from_secs(1)).unwrap();
    let err = DistributedTrainer::builder(g.into_iter().next().unwrap())
        .training_mode(TrainingMode::ParameterAveraging)
        .averaging_frequency(0)
        .build()
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("averaging_frequency must be at least 1"),
        "{err}"
    );
    assert!(LocalGroup::<f32>::new(0, 16, Duration::from_secs(1)).is_err());
    // One rank is a valid group: training is then plain training.
    let g = LocalGroup::<f64>::new(1, 4096, Duration::from_secs(1)).unwrap();
    let mut t = DistributedTrainer::builder(g.into_iter().next().unwrap())
        .build()
        .unwrap();
    let mut a = net::<f64>(Updater::sgd(0.1), 3);
    let mut b = net::<f64>(Updater::sgd(0.1), 3);
    t.fit(
        &mut a,
        &mut InMemoryDataSetIterator::new(data(ROWS, false), 8).unwrap(),
        1,
    )
    .unwrap();
    b.fit_iter(
        &mut InMemoryDataSetIterator::new(data(ROWS, false), 8).unwrap(),
        1,
    )
    .unwrap();
    assert_eq!(a.params().to_vec().unwrap(), b.params().to_vec().unwrap());
    assert_eq!(t.size(), 1);
    assert!(t.is_root());
}

/// Parameter averaging across ranks equals ParallelWrapper's averaging across threads on the
/// same data (2 replicas, batches dealt round-robin, averaged every `f` rounds, updaters
/// too), including an epoch with a short last round (7 batches).
#[test]
fn parameter_averaging_equals_parallel_wrapper_averaging() {
    for (rows, freq) in [(ROWS, 1), (ROWS, 2), (56, 2)] {
        let ranks = on_ranks::<f64, _, _>(2, Duration::from_secs(30), |g| {
            let mut model = net::<f64>(Updater::adam(1e-2), 4);
            let mut trainer = DistributedTrainer::builder(g)
                .training_mode(TrainingMode::ParameterAveraging)
                .averaging_frequency(freq)
                .build()
                .unwrap();
            let mut it = InMemoryDataSetIterator::new(data::<f64>(rows, false), 8).unwrap();
            trainer.fit(&mut model, &mut it, 2).unwrap();
            model.params().to_vec().unwrap()
        });
        let mut wrapper =
            dl4rs_parallel::ParallelWrapper::builder(net::<f64>(Updater::adam(1e-2), 4))
                .workers(2)
                .averaging_frequency(freq as u64)
                .training_mode(dl4rs_parallel::TrainingMode::Averaging)
                .build()
                .unwrap();
        let mut source: dl4rs_data::Source<f64> =
            Box::new(InMemoryDataSetIterator::new(data::<f64>(rows, false), 8).unwrap());
        for epoch in 0..2 {
            if epoch > 0 {
                source.reset().unwrap();
            }
            wrapper.fit(&mut source).unwrap();
        }
        let threads = wrapper.into_model().unwrap().params().to_vec().unwrap();
        assert_eq!(ranks[0], ranks[1]);
        // Two replicas: a + b is b + a, and halving is exact, so the bits agree.
        assert_eq!(ranks[0], threads, "rows {rows}, every {freq}");
    }
}
