//! Exactness: with plain SGD and averaging every round, `n` workers give the parameters of a
//! single model trained on the union of each round's batches; SharedGradients too (and with
//! Adam, since every replica applies the same combined gradient). Tolerance 1e-12 in f64: the
//! union model computes one product over `n·b` rows where the workers compute `n` products
//! over `b` rows and the exchange sums them, so only the summation order differs (a few ulps
//! per round). Every batch is trained exactly once per epoch (a missing or repeated batch
//! would move the parameters by ~1e-3, not 1e-12), over several epochs with `reset` between.
//! Also the stress tests: thousands of rounds through the hand-off and the averaging barrier,
//! and every round reported to the listeners once, with its own examples, while trainers drift.

mod common;

use common::*;
use dl4rs_array::AsView;
use dl4rs_data::{AsyncDataSetIterator, DataSetIterator, InMemoryDataSetIterator};
use dl4rs_memory::process_workspaces;
use dl4rs_nn::*;
use dl4rs_parallel::{ParallelWrapper, ThresholdEncoding, TrainingMode};

const TOL: f64 = 1e-12;

/// Trains `net` on `epochs` passes of `rows`×`inputs` data, `workers` batches of `batch`
/// per round, and the single model on batches of `workers·batch`; returns the difference.
fn compare(
    mode: TrainingMode,
    updater: Updater,
    workers: usize,
    batch: usize,
    rows: usize,
    epochs: usize,
    prefetch: usize,
) -> f64 {
    let d = data::<f64>(rows, 6, 3, 11);
    let mut single = mlp::<f64>(6, 5, 3, updater);
    let parallel = mlp::<f64>(6, 5, 3, updater);
    let mut it = InMemoryDataSetIterator::new(d.dup().unwrap(), workers * batch).unwrap();
    single.fit_iter(&mut it, epochs).unwrap();

    let mut w = ParallelWrapper::builder(parallel)
        .workers(workers)
        .training_mode(mode)
        .prefetch_buffer(prefetch)
        .build()
        .unwrap();
    let mut src = source(&d, batch);
    for _ in 0..epochs {
        w.fit(&mut src).unwrap();
    }
    let net = w.into_model().unwrap();
    assert_eq!(net.iteration_count(), single.iteration_count());
    assert_eq!(net.epoch_count(), epochs as u64);
    max_diff(net.params(), single.params())
}

#[test]
fn averaging_equals_a_single_model_on_the_union_batches() {
    for workers in [2, 3] {
        // 12 batches of 4 per epoch: 6 or 4 rounds; 3 epochs with reset between.
        let diff = compare(
            TrainingMode::Averaging,
            Updater::sgd(0.5),
            workers,
            4,
            48,
            3,
            16,
        );
        assert!(diff < TOL, "{workers} workers: {diff:e}");
    }
    // A short last round (7 batches, 2 workers): the lone batch is trained once, averaged over
    // the one replica that had it. Without prefetch too.
    let diff = compare(TrainingMode::Averaging, Updater::sgd(0.5), 2, 4, 28, 2, 0);
    assert!(diff < TOL, "short round: {diff:e}");
}

#[test]
fn shared_gradients_equal_a_single_model_even_with_adam_and_uneven_batches() {
    for updater in [Updater::sgd(0.5), Updater::adam(1e-2)] {
        let diff = compare(TrainingMode::SharedGradients, updater, 2, 4, 48, 2, 16);
        assert!(diff < TOL, "{updater:?}: {diff:e}");
        // 30 rows in batches of 4: the last batch has 2 rows; the gradients are weighted by
        // their examples, so the union batch of 6 rows is matched exactly.
        let diff = compare(TrainingMode::SharedGradients, updater, 2, 4, 30, 2, 4);
        assert!(diff < TOL, "{updater:?}, uneven: {diff:e}");
    }
}

/// A network of several exchange chunks (13,203 parameters): each SharedGradients trainer
/// reduces and steps only its part and the parts' parameters are exchanged every round, the
/// updater state gathered at the end of every `fit`. Parameters *and* Adam's state equal the
/// single model's, after each of two fits (the second starts from the gathered state), with
/// 2 and 3 workers (3: parts of unequal chunks), dense and with a short last round.
#[test]
fn shared_gradients_parts_give_the_whole_step_and_the_whole_updater_state() {
    let d = data::<f64>(60, 40, 3, 17);
    for workers in [2, 3] {
        let mut single = mlp::<f64>(40, 300, 3, Updater::adam(1e-2));
        assert_eq!(single.num_params(), 13_203);
        let mut w = ParallelWrapper::builder(mlp::<f64>(40, 300, 3, Updater::adam(1e-2)))
            .workers(workers)
            .training_mode(TrainingMode::SharedGradients)
            .build()
            .unwrap();
        // Batches of 4, 15 per epoch: with 2 workers the last round is short (one batch, the
        // other trainer still steps its part), with 3 every round is full.
        let mut it = InMemoryDataSetIterator::new(d.dup().unwrap(), workers * 4).unwrap();
        let mut src = source(&d, 4);
        for fit in 0..2 {
            single.fit_iter(&mut it, 1).unwrap();
            w.fit(&mut src).unwrap();
            let net = w.model().unwrap();
            let diff = max_diff(net.params(), single.params());
            assert!(diff < TOL, "{workers} workers, fit {fit}: params {diff:e}");
            let diff = max_diff(net.updater_state(), single.updater_state());
            assert!(diff < TOL, "{workers} workers, fit {fit}: state {diff:e}");
        }
    }
}

/// Averaging every round with Adam, on a network of several exchange chunks: each trainer
/// computes the mean of the replicas' steps on its part. The parameters and the updater
/// state equal a sequential emulation of DL4J's scheme (each replica steps on its batch,
/// then parameters and state are averaged) bit for bit with 2 workers (a short last round
/// included: its one replica's step is the mean), and to 1e-12 with 3, after each of two
/// fits.
#[test]
fn averaging_every_round_in_parts_equals_stepping_and_averaging_the_replicas() {
    let d = data::<f64>(60, 40, 3, 19);
    let adam = Updater::adam(1e-2);
    for workers in [2usize, 3] {
        let mut replicas: Vec<_> = (0..workers).map(|_| mlp::<f64>(40, 300, 3, adam)).collect();
        let mut w = ParallelWrapper::builder(mlp::<f64>(40, 300, 3, adam))
            .workers(workers)
            .build()
            .unwrap();
        let mut it = InMemoryDataSetIterator::new(d.dup().unwrap(), 4).unwrap();
        let mut src = source(&d, 4);
        for fit in 0..2 {
            it.reset().unwrap();
            while it.has_next() {
                let mut trained = 0;
                while trained < workers && it.has_next() {
                    replicas[trained].fit(&it.next().unwrap().unwrap()).unwrap();
                    trained += 1;
                }
                let scale = 1.0 / trained as f64;
                let mean = |get: &dyn Fn(&MultiLayerNetwork<f64>) -> Vec<f64>| {
                    let all: Vec<Vec<f64>> = replicas[..trained].iter().map(get).collect();
                    let v: Vec<f64> = (0..all[0].len())
                        .map(|i| scale * all[1..].iter().fold(all[0][i], |a, r| a + r[i]))
                        .collect();
                    dl4rs_array::NdArray::from_slice_detached(&[v.len()], &v).unwrap()
                };
                let p = mean(&|r| r.params().to_vec().unwrap());
                let st = mean(&|r| r.updater_state().to_vec().unwrap());
                let iteration = replicas[0].iteration_count();
                for r in &mut replicas {
                    r.set_params(&p.view()).unwrap();
                    r.set_updater_state(&st.view()).unwrap();
                    let epoch = r.epoch_count();
                    r.set_counters(iteration, epoch);
                }
            }
            w.fit(&mut src).unwrap();
            let net = w.model().unwrap();
            let want = &replicas[0];
            let (dp, ds) = (
                max_diff(net.params(), want.params()),
                max_diff(net.updater_state(), want.updater_state()),
            );
            let tol = if workers == 2 { 0.0 } else { TOL };
            assert!(
                dp <= tol && ds <= tol,
                "{workers} workers, fit {fit}: {dp:e} {ds:e}"
            );
        }
    }
}

#[test]
fn trainers_are_named_threads_with_their_own_workspaces() {
    let d = data::<f32>(64, 6, 3, 5);
    let net = mlp::<f32>(6, 5, 3, Updater::sgd(0.1));
    let mut w = ParallelWrapper::builder(net).workers(2).build().unwrap();
    let trainers = ["dl4rs trainer 0", "dl4rs trainer 1"];
    let has_batch_copy = |t: &str| {
        process_workspaces()
            .iter()
            .any(|p| &*p.thread == t && &*p.id == dl4rs_parallel::BATCH_WORKSPACE)
    };
    // An in-memory source hands out rows: each trainer gathers its own batch into PW_BATCH.
    let mut src = source(&d, 8);
    w.fit(&mut src).unwrap();
    assert_eq!(w.thread_names(), trainers);
    let ws = process_workspaces();
    for t in trainers {
        let mine: Vec<_> = ws.iter().filter(|p| &*p.thread == t).collect();
        assert!(
            mine.len() >= 3,
            "{t}: the replica's workspaces live on its thread: {mine:?}"
        );
        assert!(has_batch_copy(t), "{t}: gathers its rows into PW_BATCH");
    }
    // A prefetch ring keeps a batch only until the next `next()`: each trainer copies its
    // batch into its own PW_BATCH first.
    let mut ring: Box<dyn DataSetIterator<f32> + Send> =
        Box::new(AsyncDataSetIterator::new(source(&d, 8), 2).unwrap());
    w.fit(&mut ring).unwrap();
    for t in trainers {
        assert!(has_batch_copy(t), "{t}: a ring's batch must be copied");
    }
}

#[test]
fn threshold_encoding_trains() {
    let d = data::<f32>(256, 6, 3, 9);
    let net = mlp::<f32>(6, 32, 3, Updater::sgd(0.2));
    let before = {
        let mut n = net.clone_for_test();
        n.score_data_set(&d).unwrap()
    };
    let mut w = ParallelWrapper::builder(net)
        .workers(2)
        .training_mode(TrainingMode::SharedGradients)
        .threshold_encoding(ThresholdEncoding {
            initial_threshold: 1e-2,
            min_sparsity: 1e-2,
            max_sparsity: 0.05,
            ..ThresholdEncoding::default()
        })
        .build()
        .unwrap();
    let mut src = source(&d, 16);
    for _ in 0..20 {
        w.fit(&mut src).unwrap();
    }
    let mut net = w.into_model().unwrap();
    let after = net.score_data_set(&d).unwrap();
    assert!(after < before * 0.9, "loss {before} -> {after}");
}

trait CloneForTest {
    fn clone_for_test(&self) -> Self;
}

impl CloneForTest for MultiLayerNetwork<f32> {
    fn clone_for_test(&self) -> Self {
        let conf = MultiLayerConfiguration::from_json(&Model::conf_json(self).unwrap()).unwrap();
        let mut n = MultiLayerNetwork::new(conf).unwrap();
        n.set_params(&self.params().view()).unwrap();
        n
    }
}

/// A graph through `fit_multi`: SharedGradients equals the single graph on the union.
#[test]
fn a_computation_graph_trains_through_fit_multi() {
    use dl4rs_data::{InMemoryMultiDataSetIterator, MultiDataSet, MultiDataSetIterator};
    let graph = || {
        let conf = NeuralNetConfiguration::builder()
            .seed(3)
            .updater(Updater::sgd(0.3))
            .graph_builder()
            .add_inputs(&["in"])
            .set_input_types(&[InputType::feed_forward(6)])
            .add_layer(
                "h",
                LayerConf::dense(5).activation(Activation::Tanh),
                &["in"],
            )
            .add_layer(
                "out",
                LayerConf::output(LossFunction::Mcxent, 3).activation(Activation::Softmax),
                &["h"],
            )
            .set_outputs(&["out"])
            .build()
            .unwrap();
        ComputationGraph::<f64>::new(conf).unwrap()
    };
    let d = data::<f64>(40, 6, 3, 4);
    let md = MultiDataSet::new(
        vec![d.features.dup().unwrap()],
        vec![d.labels.dup().unwrap()],
    )
    .unwrap();
    let mut single = graph();
    let mut it = InMemoryMultiDataSetIterator::new(md.dup().unwrap(), 10).unwrap();
    single.fit_multi_iter(&mut it, 2).unwrap();
    let mut w = ParallelWrapper::builder(graph())
        .workers(2)
        .training_mode(TrainingMode::SharedGradients)
        .build()
        .unwrap();
    let mut src: Box<dyn MultiDataSetIterator<f64> + Send> =
        Box::new(InMemoryMultiDataSetIterator::new(md, 5).unwrap());
    w.fit_multi(&mut src).unwrap();
    w.fit_multi(&mut src).unwrap();
    let g = w.into_model().unwrap();
    let diff = max_diff(g.params(), single.params());
    assert!(diff < TOL, "{diff:e}");
}

/// Stress: 3,000 rounds of tiny batches through the hand-off and the barrier (Averaging every
/// round and every 3rd, SharedGradients), each checked against the single model at the end
/// (a lost, repeated or torn batch, a batch prepared ahead for the wrong round, or a replica
/// averaged at the wrong time, shows as a difference far above the tolerance).
#[test]
fn stress_thousands_of_rounds() {
    let d = data::<f64>(3000 * 2, 3, 2, 21);
    for (mode, f) in [
        (TrainingMode::Averaging, 1),
        (TrainingMode::SharedGradients, 1),
    ] {
        let mut single = mlp::<f64>(3, 2, 2, Updater::sgd(0.05));
        let mut it = InMemoryDataSetIterator::new(d.dup().unwrap(), 2).unwrap();
        single.fit_iter(&mut it, 1).unwrap();
        let mut w = ParallelWrapper::builder(mlp::<f64>(3, 2, 2, Updater::sgd(0.05)))
            .workers(2)
            .averaging_frequency(f)
            .training_mode(mode)
            .prefetch_buffer(2)
            .build()
            .unwrap();
        let mut src = source(&d, 1);
        w.fit(&mut src).unwrap();
        // The trainer that reaches a barrier first gathers its next batch's rows while it
        // waits (with two, one of them at nearly every barrier): the path those batches took.
        // Some of them for the other trainer, still on its round (its next round then
        // starts with them gathered, in the inbox it hands back after the gradient).
        let stats = w.round_stats();
        let (ahead, for_other) = (stats.prepared_ahead, stats.gathered_for_another);
        assert!(
            ahead > 0 && ahead <= 6000,
            "{mode:?}: {ahead} batches prepared ahead"
        );
        assert!(
            for_other > 0 && for_other <= ahead,
            "{mode:?}: {for_other} of {ahead} batches gathered for the other trainer"
        );
        let net = w.into_model().unwrap();
        assert_eq!(net.iteration_count(), 3000);
        let diff = max_diff(net.params(), single.params());
        assert!(diff < 1e-9, "{mode:?}: {diff:e}");
    }
    // Averaging every 3rd round: replicas diverge in between; compare with a sequential
    // emulation of the same schedule (two models, averaged every 3 rounds).
    let mut a = mlp::<f64>(3, 2, 2, Updater::sgd(0.05));
    let mut b = mlp::<f64>(3, 2, 2, Updater::sgd(0.05));
    let mut it = InMemoryDataSetIterator::new(d.dup().unwrap(), 1).unwrap();
    let mut round = 0;
    while it.has_next() {
        a.fit(&it.next().unwrap().unwrap()).unwrap();
        b.fit(&it.next().unwrap().unwrap()).unwrap();
        round += 1;
        if round % 3 == 0 {
            let avg: Vec<f64> = a
                .params()
                .to_vec()
                .unwrap()
                .iter()
                .zip(b.params().to_vec().unwrap())
                .map(|(x, y)| (x + y) * 0.5)
                .collect();
            let avg = dl4rs_array::NdArray::from_slice_detached(&[avg.len()], &avg).unwrap();
            a.set_params(&avg).unwrap();
            b.set_params(&avg).unwrap();
        }
    }
    let mut w = ParallelWrapper::builder(mlp::<f64>(3, 2, 2, Updater::sgd(0.05)))
        .workers(2)
        .averaging_frequency(3)
        .build()
        .unwrap();
    let mut src = source(&d, 1);
    w.fit(&mut src).unwrap();
    let net = w.into_model().unwrap();
    let diff = max_diff(net.params(), a.params());
    assert!(diff < 1e-9, "every 3rd round: {diff:e}");
}

/// With 2 workers the exchange's sums are exact (`a + b == b + a`), so two runs agree bit for
/// bit whatever the threads' timing.
#[test]
fn two_worker_runs_repeat_bit_for_bit() {
    let d = data::<f32>(96, 6, 3, 8);
    let run = |mode| {
        let mut w = ParallelWrapper::builder(mlp::<f32>(6, 8, 3, Updater::adam(1e-2)))
            .workers(2)
            .training_mode(mode)
            .build()
            .unwrap();
        let mut src = source(&d, 8);
        for _ in 0..3 {
            w.fit(&mut src).unwrap();
        }
        w.into_model().unwrap().params().to_vec().unwrap()
    };
    for mode in [TrainingMode::Averaging, TrainingMode::SharedGradients] {
        let first = run(mode);
        for _ in 0..3 {
            assert_eq!(run(mode), first, "{mode:?}");
        }
    }
}

/// Batches of 1, 2, 3, 1, 2, 3, ... examples of a data set held on the heap (read in place).
struct Cycling(dl4rs_data::DataSet<f64>, usize, usize);

impl DataSetIterator<f64> for Cycling {
    fn next(&mut self) -> Option<Result<dl4rs_data::DataSet<f64>, dl4rs_data::DataError>> {
        let n = self.0.num_examples();
        if self.1 >= n {
            return None;
        }
        let size = 1 + self.2 % 3;
        let rows: Vec<usize> = (self.1..(self.1 + size).min(n)).collect();
        self.1 += rows.len();
        self.2 += 1;
        Some(self.0.select_rows(&rows))
    }
    fn has_next(&self) -> bool {
        self.1 < self.0.num_examples()
    }
    fn reset(&mut self) -> Result<(), dl4rs_data::DataError> {
        (self.1, self.2) = (0, 0);
        Ok(())
    }
    fn reset_supported(&self) -> bool {
        true
    }
    fn async_supported(&self) -> bool {
        false
    }
    fn batch(&self) -> usize {
        3
    }
    fn total_outcomes(&self) -> usize {
        2
    }
    fn input_columns(&self) -> usize {
        3
    }
    fn total_examples(&self) -> Option<usize> {
        Some(self.0.num_examples())
    }
}

struct Rounds(std::sync::Arc<std::sync::Mutex<Vec<(u64, usize)>>>);

impl TrainingListener<f64> for Rounds {
    fn iteration_done(&mut self, _: &dyn Model<f64>, info: &IterationInfo) -> Result<(), NnError> {
        self.0
            .lock()
            .unwrap()
            .push((info.iteration, info.batch_size));
        if info.iteration.is_multiple_of(5) {
            // Trainer 0 falls behind now and then: the others run ahead as far as the
            // posted rounds let them.
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        Ok(())
    }
}

/// Stress for what trainer 0 reports while the others may be rounds ahead (rounds are posted
/// ahead; without a barrier the trainers drift, and the listener here holds trainer 0 back
/// now and then): every round reaches the listeners once,
/// in order, with the examples of its own batches (they differ from round to round, so a
/// score or count read from another round's slot shows).
#[test]
fn listeners_see_every_round_once_with_its_own_examples() {
    let d = data::<f64>(6000, 3, 2, 5);
    // Batch k has 1 + k % 3 examples; round r holds batches 2r and 2r + 1 (the last round
    // may be short).
    let sizes: Vec<usize> = {
        let (mut left, mut k, mut v) = (6000usize, 0usize, Vec::new());
        while left > 0 {
            let s = (1 + k % 3).min(left);
            v.push(s);
            left -= s;
            k += 1;
        }
        v
    };
    let want: Vec<(u64, usize)> = sizes
        .chunks(2)
        .enumerate()
        .map(|(r, c)| (r as u64 + 1, c.iter().sum()))
        .collect();
    for (mode, f) in [
        (TrainingMode::Averaging, 7),
        (TrainingMode::Averaging, 1),
        (TrainingMode::SharedGradients, 1),
    ] {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut w = ParallelWrapper::builder(mlp::<f64>(3, 2, 2, Updater::sgd(0.05)))
            .workers(2)
            .averaging_frequency(f)
            .training_mode(mode)
            .build()
            .unwrap();
        w.add_listener(Box::new(Rounds(std::sync::Arc::clone(&seen))));
        let mut src: Box<dyn DataSetIterator<f64> + Send> =
            Box::new(Cycling(d.dup().unwrap(), 0, 0));
        w.fit(&mut src).unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), want.len(), "{mode:?} every {f}");
        assert_eq!(seen, want, "{mode:?} every {f}");
        // Every round ran (the final averaging counts too), and both trainers timed their
        // gradients.
        let stats = w.round_stats();
        assert!(
            stats.rounds >= want.len() as u64,
            "{mode:?} every {f}: {stats:?}"
        );
        assert!(
            stats.gradient_ns_fastest > 0,
            "{mode:?} every {f}: {stats:?}"
        );
        assert!(stats.gradient_ns_fastest <= stats.gradient_ns_slowest);
    }
}
