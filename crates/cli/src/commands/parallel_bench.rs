//! `dl4rs bench parallel`: W1-shaped training (MLP 784-256-128-10, Adam 1e-3, batch 64) on
//! the bundled Fashion-MNIST split, the same number of examples each way: one model whose
//! products use 1 thread, one model with 2 product threads, two independent models trained
//! at once on a thread each (what the machine gives two workers that share nothing: the
//! ceiling of the wrapper's ratio at that moment), and ParallelWrapper with 2
//! workers (1 product thread each): Averaging every round (DL4J's default) and every 5th,
//! and SharedGradients. Reports examples/s
//! (median of `--runs`, the configurations' runs interleaved; the speed ratio is the median
//! of each run's ratio to the baseline run of the same pass), test accuracy, heap allocations per steady-state round or iteration
//! (all threads; median after the first epoch) and the peak heap (workspaces included); for
//! the wrapper, how often per round a wait parked its thread (`RoundStats`).
//!
//! The speed ratio is over the whole `fit`, first epoch and (for the wrapper) the start of
//! its trainers included; "after epoch 1" is the ratio of the examples/s from the end of
//! the first epoch on (what a long training sees: the one-time start is left out, each
//! epoch's own start and end are in).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Args;
use dl4rs::data::{DataSet, DataSetIterator, InMemoryDataSetIterator};
use dl4rs::eval::Evaluation;
use dl4rs::memory::{CountingAllocator, human_bytes};
use dl4rs::nn::{
    Activation, IterationInfo, LayerConf, LossFunction, Model, MultiLayerNetwork,
    NeuralNetConfiguration, NnError, TrainingListener, Updater,
};
use dl4rs::parallel::{ParallelWrapper, RoundStats, TrainingMode};

use super::CliError;

/// Options of `dl4rs bench parallel`.
#[derive(Args, Debug)]
pub struct ParallelBench {
    /// Epochs over the 8,000 training examples per configuration.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Runs per configuration (examples/s is their median).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Run only the configurations whose name contains this text (the first, the baseline
    /// of the speed ratios, always runs), e.g. `--only SharedGradients`.
    #[arg(long)]
    pub only: Option<String>,
}

struct Counter {
    alloc: &'static CountingAllocator,
    samples: Arc<Mutex<Vec<Sample>>>,
}

/// After an iteration (a round for the wrapper): its number, the allocations so far, when.
type Sample = (u64, u64, Instant);

impl TrainingListener<f32> for Counter {
    fn iteration_done(&mut self, _: &dyn Model<f32>, info: &IterationInfo) -> Result<(), NnError> {
        if let Ok(mut s) = self.samples.lock() {
            s.push((info.iteration, self.alloc.allocations(), Instant::now()));
        }
        Ok(())
    }
}

fn w1(seed: u64) -> Result<MultiLayerNetwork<f32>, CliError> {
    let conf = NeuralNetConfiguration::builder()
        .seed(seed)
        .updater(Updater::adam(1e-3))
        .list()
        .layer(LayerConf::dense(256).n_in(784).activation(Activation::Relu))
        .layer(LayerConf::dense(128).activation(Activation::Relu))
        .layer(LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax))
        .build()?;
    Ok(MultiLayerNetwork::new(conf)?)
}

#[derive(Clone, Copy)]
enum Config {
    Single(usize),
    /// This many models at once, each on its own thread with 1 product thread, each on the
    /// whole data: what the machine gives two workers with nothing shared between them.
    Independent(usize),
    /// Mode and averaging frequency.
    Wrapper(TrainingMode, u64),
}

struct Outcome {
    examples_per_s: f64,
    /// From the end of the first epoch to the end of the last.
    steady_examples_per_s: f64,
    /// Process CPU seconds (user + system) per 1,000 examples.
    cpu_ms_per_1k: f64,
    accuracy: f64,
    allocations: u64,
    peak: usize,
    /// ParallelWrapper: the waits of its rounds.
    stats: Option<RoundStats>,
}

fn run_once(
    config: Config,
    train: &DataSet,
    test: &DataSet,
    epochs: usize,
    alloc: &'static CountingAllocator,
) -> Result<Outcome, CliError> {
    let threads = match config {
        Config::Single(t) => t,
        Config::Independent(_) => 1,
        Config::Wrapper(..) => 2,
    };
    let pool = super::thread_pool(Some(threads))?;
    pool.install(|| {
        let mut net = w1(12345)?;
        let samples = Arc::new(Mutex::new(Vec::with_capacity(8192)));
        net.add_listener(Box::new(Counter {
            alloc,
            samples: Arc::clone(&samples),
        }));
        let models = match config {
            Config::Independent(n) => n,
            _ => 1,
        };
        let examples = train.num_examples() * epochs * models;
        let it = InMemoryDataSetIterator::new(train.dup()?, 64)?.with_shuffle(7);
        let mut others = Vec::new();
        for _ in 1..models {
            let it = InMemoryDataSetIterator::new(train.dup()?, 64)?.with_shuffle(7);
            others.push((w1(12345)?, it));
        }
        let per_epoch = it.batches_per_epoch();
        alloc.reset_peak();
        let cpu_start = process_cpu_seconds();
        let started = Instant::now();
        let (mut net, per_epoch, stats) = match config {
            Config::Single(_) => {
                let mut it = it;
                net.fit_iter(&mut it, epochs)?;
                (net, per_epoch, None)
            }
            Config::Independent(_) => {
                others.push((net, it));
                let mut nets = fit_at_once(others, epochs)?;
                let net = nets.swap_remove(nets.len() - 1);
                (net, per_epoch, None)
            }
            Config::Wrapper(mode, every) => {
                let mut it: Box<dyn DataSetIterator<f32> + Send> = Box::new(it);
                let mut w = ParallelWrapper::builder(net)
                    .workers(2)
                    .training_mode(mode)
                    .averaging_frequency(every)
                    .build()
                    .map_err(|e| CliError::Usage(e.to_string()))?;
                for _ in 0..epochs {
                    w.fit(&mut it).map_err(|e| CliError::Usage(e.to_string()))?;
                }
                let stats = w.round_stats();
                let net = w.into_model().map_err(|e| CliError::Usage(e.to_string()))?;
                (net, per_epoch.div_ceil(2), Some(stats))
            }
        };
        let secs = started.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds() - cpu_start;
        let peak = alloc.peak_bytes();
        let mut eval = Evaluation::new(10);
        let mut test_it = InMemoryDataSetIterator::new(test.dup()?, 500)?;
        net.do_evaluation(&mut test_it, &mut [&mut eval])?;
        let s = samples.lock().map(|s| s.clone()).unwrap_or_default();
        // From the end of the first epoch (`per_epoch` iterations; a sample lists the model's
        // own iterations) to the end of the last.
        let steady = s
            .iter()
            .find(|x| x.0 as usize == per_epoch)
            .zip(s.last())
            .map(|(a, b)| (b.2 - a.2).as_secs_f64())
            .filter(|&t| t > 0.0)
            .map_or(0.0, |t| (examples - examples / epochs) as f64 / t);
        // Steady state: after the first epoch, without each epoch's first two rounds.
        let mut per_round: Vec<u64> = s
            .windows(2)
            .filter(|w| {
                let k = (w[1].0 - 1) as usize % per_epoch;
                w[1].0 as usize > per_epoch && k >= 2
            })
            .map(|w| w[1].1 - w[0].1)
            .collect();
        per_round.sort_unstable();
        Ok(Outcome {
            examples_per_s: examples as f64 / secs,
            steady_examples_per_s: steady,
            cpu_ms_per_1k: cpu * 1e6 / examples as f64,
            accuracy: eval.accuracy(),
            allocations: per_round.get(per_round.len() / 2).copied().unwrap_or(0),
            peak,
            stats,
        })
    })
}

/// Trains each model on its own thread (1 product thread each), all at once; the models back
/// in order.
fn fit_at_once(
    models: Vec<(MultiLayerNetwork<f32>, InMemoryDataSetIterator<f32>)>,
    epochs: usize,
) -> Result<Vec<MultiLayerNetwork<f32>>, CliError> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = models
            .into_iter()
            .map(|(mut net, mut it)| {
                scope.spawn(move || -> Result<MultiLayerNetwork<f32>, CliError> {
                    super::thread_pool(Some(1))?.install(|| net.fit_iter(&mut it, epochs))?;
                    Ok(net)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(CliError::Usage("a training thread panicked".into())))
            })
            .collect()
    })
}

/// User + system CPU time of the whole process (Linux `/proc/self/stat`, 10 ms ticks); 0
/// elsewhere. CPU time, unlike wall time, does not grow when other tenants take the cores, so
/// it shows what the parallel machinery costs on top of the training itself.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesized command name: state is field 3, utime 14, stime 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Runs `dl4rs bench parallel`.
pub fn run(args: ParallelBench, alloc: &'static CountingAllocator) -> Result<(), CliError> {
    if args.epochs < 2 || args.runs == 0 {
        return Err(CliError::Usage(
            "--epochs must be at least 2 (the first is warm-up) and --runs at least 1".into(),
        ));
    }
    let (train, test, description) = super::train::load_data("bundled")?;
    println!(
        "data: {description}; {} epochs, {} runs each",
        args.epochs, args.runs
    );
    println!(
        "{:<44} {:>11} {:>8} {:>9} {:>12} {:>10}",
        "configuration", "examples/s", "CPU ms/1k", "accuracy", "allocs/round", "peak heap"
    );
    let configs = [
        ("1 model, 1 product thread", Config::Single(1)),
        ("1 model, 2 product threads", Config::Single(2)),
        (
            "2 models at once, 1 thread each (ceiling)",
            Config::Independent(2),
        ),
        (
            "2 workers x 1 thread, Averaging every round",
            Config::Wrapper(TrainingMode::Averaging, 1),
        ),
        (
            "2 workers x 1 thread, Averaging every 5",
            Config::Wrapper(TrainingMode::Averaging, 5),
        ),
        (
            "2 workers x 1 thread, SharedGradients",
            Config::Wrapper(TrainingMode::SharedGradients, 1),
        ),
    ];
    let chosen: Vec<(&str, Config)> = configs
        .into_iter()
        .enumerate()
        .filter(|(k, (name, _))| {
            *k == 0 || args.only.as_ref().is_none_or(|o| name.contains(o.as_str()))
        })
        .map(|(_, c)| c)
        .collect();
    // Interleaved (run 1 of every configuration, then run 2, ...), so that a slow spell of
    // the machine hits every configuration alike; each speed ratio is the median of the
    // runs' own ratios to the baseline of the same pass.
    let mut outcomes: Vec<Vec<Outcome>> = chosen.iter().map(|_| Vec::new()).collect();
    for _ in 0..args.runs {
        for ((_, config), runs) in chosen.iter().zip(&mut outcomes) {
            runs.push(run_once(*config, &train, &test, args.epochs, alloc)?);
        }
    }
    let base: Vec<(f64, f64)> = outcomes[0]
        .iter()
        .map(|o| (o.examples_per_s, o.steady_examples_per_s))
        .collect();
    for ((name, _), mut runs) in chosen.iter().zip(outcomes) {
        let pairs = || runs.iter().zip(&base);
        let ratio = median(pairs().map(|(o, b)| o.examples_per_s / b.0).collect());
        let steady = median(
            pairs()
                .map(|(o, b)| o.steady_examples_per_s / b.1)
                .collect(),
        );
        let cpu = median(runs.iter().map(|o| o.cpu_ms_per_1k).collect());
        runs.sort_by(|a, b| a.examples_per_s.total_cmp(&b.examples_per_s));
        let m = &runs[runs.len() / 2];
        println!(
            "{name:<44} {:>11.0} {:>8.1} {:>8.2}% {:>12} {:>10}  ({:.2}x; after epoch 1 {:.2}x)",
            m.examples_per_s,
            cpu,
            m.accuracy * 100.0,
            m.allocations,
            human_bytes(m.peak),
            ratio,
            steady
        );
        if let Some(st) = m.stats {
            let per = |x: u64| x as f64 / st.rounds.max(1) as f64;
            println!(
                "{:<44} parks per round: coordinator {:.2}, trainers waiting for a job {:.2}, \
                 at the barrier {:.2}",
                "",
                per(st.coordinator_parks),
                per(st.job_parks),
                per(st.barrier_parks)
            );
            println!(
                "{:<44} gradient per batch: fastest trainer {:.0} us, slowest {:.0} us; \
                 batches prepared while waiting at a barrier: {:.2} per round ({:.2} for \
                 the other trainer)",
                "",
                st.gradient_ns_fastest as f64 / 1e3,
                st.gradient_ns_slowest as f64 / 1e3,
                per(st.prepared_ahead),
                per(st.gathered_for_another)
            );
        }
    }
    Ok(())
}

/// The median of `values` (the upper middle one of an even count; `--runs` is at least 1).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
