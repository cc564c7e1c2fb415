//! `dl4rs bench stats`: what recording training statistics costs. W1 (MLP 784-256-128-10,
//! SGD 0.1, batch 128, synthetic data) without and with a `StatsListener` attached, side by
//! side, each in its own processes (they alternate; medians of the per-process medians), with
//! heap allocations per timed iteration. The budget: at most 3 % and 0 allocations.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::{Args, ValueEnum};
use dl4rs::array::{AsView, NdArray};
use dl4rs::memory::CountingAllocator;
use dl4rs::nn::{
    Activation, IterationInfo, LayerConf, LossFunction, MultiLayerNetwork, NeuralNetConfiguration,
    StatsConfig, StatsListener, TrainingListener, Updater,
};
use serde::{Deserialize, Serialize};

use super::CliError;
use super::workloads::{BATCH, Data, ROWS, stats, w1_data, w1_params};

/// With or without the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Variant {
    /// No listener.
    Off,
    /// A StatsListener writing a stats file.
    On,
}

/// Options of `dl4rs bench stats`.
#[derive(Args, Debug, Clone)]
pub struct StatsBench {
    /// Timed iterations per process (after 30 warm-up ones).
    #[arg(long, default_value_t = 200)]
    pub iterations: usize,
    /// Processes per variant (they alternate).
    #[arg(long, default_value_t = 3)]
    pub processes: usize,
    /// Threads for the matrix products.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Iterations between parameter statistics (the listener's default: 10).
    #[arg(long, default_value_t = StatsConfig::default().param_stats_every)]
    pub param_stats_every: u64,
    #[arg(long, hide = true)]
    variant: Option<Variant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Result1 {
    variant: Variant,
    median_ms: f64,
    allocations_per_iteration: f64,
    /// `On`: mean microseconds of one `iteration_done` call of the listener, timed alone over
    /// 2,000 calls on the trained network (flushes and parameter statistics included).
    listener_us: Option<f64>,
    /// `On`: mean iteration time with the listener on over the mean with it off, in
    /// alternating blocks in the same process, minus 1, in %.
    interleaved_overhead: Option<f64>,
}

/// Switches a listener on and off (off: returns at once).
struct Toggle {
    inner: StatsListener<f32>,
    enabled: Arc<AtomicBool>,
}

impl TrainingListener<f32> for Toggle {
    fn iteration_done(
        &mut self,
        net: &dyn dl4rs::nn::Model<f32>,
        info: &IterationInfo,
    ) -> Result<(), dl4rs::nn::NnError> {
        if self.enabled.load(Ordering::Relaxed) {
            self.inner.iteration_done(net, info)
        } else {
            Ok(())
        }
    }
}

fn once(
    args: &StatsBench,
    variant: Variant,
    alloc: &CountingAllocator,
) -> Result<Result1, CliError> {
    let (x, y) = w1_data(Data::Synthetic)?;
    let conf = NeuralNetConfiguration::builder()
        .seed(0)
        .updater(Updater::sgd(0.1))
        .list()
        .layer(LayerConf::dense(256).n_in(784).activation(Activation::Relu))
        .layer(LayerConf::dense(128).activation(Activation::Relu))
        .layer(LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax))
        .build()?;
    let mut net = MultiLayerNetwork::<f32>::new(conf)?;
    let params = w1_params();
    net.set_params(&NdArray::from_slice_detached(&[params.len()], &params)?.view())?;
    let path = std::env::temp_dir().join(format!("dl4rs-bench-stats-{}.jsonl", std::process::id()));
    let enabled = Arc::new(AtomicBool::new(true));
    let handle = if variant == Variant::On {
        let listener = StatsListener::<f32>::with_config(
            &path,
            StatsConfig {
                param_stats_every: args.param_stats_every,
                ..StatsConfig::default()
            },
        )?;
        let handle = listener.handle();
        net.add_listener(Box::new(Toggle {
            inner: listener,
            enabled: enabled.clone(),
        }));
        Some(handle)
    } else {
        None
    };
    let batches = ROWS / BATCH;
    let mut times = Vec::with_capacity(args.iterations);
    let (mut on_times, mut off_times) = (Vec::new(), Vec::new());
    let mut allocations = 0;
    // `On`: after the timed iterations, as many again with the listener switched on and off
    // in alternating blocks of 40 (two parameter-statistics iterations each), in this one
    // process: the same machine state for both, so load from elsewhere cancels out.
    let interleaved = if variant == Variant::On {
        args.iterations.div_ceil(80) * 80
    } else {
        0
    };
    for k in 0..30 + args.iterations + interleaved {
        let j = k.saturating_sub(30 + args.iterations);
        let block_on = (j / 40).is_multiple_of(2);
        if j > 0 || k >= 30 + args.iterations {
            enabled.store(block_on, Ordering::Relaxed);
        }
        let start = (k % batches) * BATCH;
        let bx = x.view().slice_axis(0, start, start + BATCH, 1)?;
        let by = y.view().slice_axis(0, start, start + BATCH, 1)?;
        let before = alloc.allocations();
        let t = Instant::now();
        net.fit_arrays(&bx, &by)?;
        let elapsed = t.elapsed().as_secs_f64();
        if k >= 30 + args.iterations {
            if block_on {
                on_times.push(elapsed);
            } else {
                off_times.push(elapsed);
            }
        } else if k >= 30 {
            times.push(elapsed);
            allocations += alloc.allocations() - before;
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let interleaved_overhead =
        (!on_times.is_empty()).then(|| (mean(&on_times) / mean(&off_times) - 1.0) * 100.0);
    let mut listener_us = None;
    if let Some(h) = handle {
        h.finish()?;
        // The listener alone: its calls timed without the training step around them.
        let mut alone = StatsListener::<f32>::with_config(
            &path,
            StatsConfig {
                param_stats_every: args.param_stats_every,
                ..StatsConfig::default()
            },
        )?;
        let calls = 2000u64;
        let mut info = IterationInfo {
            iteration: 0,
            epoch: 0,
            score: net.last_score(),
            batch_size: BATCH,
        };
        for _ in 0..100 {
            info.iteration += 1;
            alone.iteration_done(&net, &info)?;
        }
        let t = Instant::now();
        for _ in 0..calls {
            info.iteration += 1;
            alone.iteration_done(&net, &info)?;
        }
        listener_us = Some(t.elapsed().as_secs_f64() * 1e6 / calls as f64);
        alone.handle().finish()?;
        let _ = std::fs::remove_file(&path);
    }
    let (median_ms, _) = stats(&mut times);
    Ok(Result1 {
        variant,
        median_ms,
        allocations_per_iteration: allocations as f64 / args.iterations.max(1) as f64,
        listener_us,
        interleaved_overhead,
    })
}

fn child(variant: Variant, args: &StatsBench) -> Result<Result1, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Usage(format!("can't find the dl4rs binary: {e}")))?;
    let name = format!("{variant:?}").to_lowercase();
    let out = Command::new(exe)
        .args(["bench", "stats", "--variant", &name])
        .args(["--iterations", &args.iterations.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .args(["--param-stats-every", &args.param_stats_every.to_string()])
        .output()
        .map_err(|e| CliError::Usage(format!("can't run the benchmark process: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Usage(format!(
            "benchmark process ({name}) failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .map_err(|e| CliError::Usage(format!("unreadable benchmark result: {e}")))
}

/// Runs `dl4rs bench stats`.
pub fn run(args: StatsBench, alloc: &'static CountingAllocator) -> Result<(), CliError> {
    if args.iterations == 0 || args.processes == 0 {
        return Err(CliError::Usage(
            "--iterations and --processes must be at least 1".into(),
        ));
    }
    if let Some(variant) = args.variant {
        let result =
            super::thread_pool(Some(args.threads))?.install(|| once(&args, variant, alloc))?;
        println!(
            "{}",
            serde_json::to_string(&result).map_err(|e| CliError::Usage(e.to_string()))?
        );
        return Ok(());
    }
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..args.processes {
        off.push(child(Variant::Off, &args)?);
        on.push(child(Variant::On, &args)?);
    }
    let median = |v: &[Result1]| {
        let mut t: Vec<f64> = v.iter().map(|r| r.median_ms).collect();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let allocs = |v: &[Result1]| {
        v.iter()
            .map(|r| r.allocations_per_iteration)
            .fold(0.0, f64::max)
    };
    let (m_off, m_on) = (median(&off), median(&on));
    println!(
        "dl4rs bench stats: W1 (MLP 784-256-128-10, SGD 0.1, batch 128, synthetic data), {} threads, 30 warm-up + {} timed iterations, {} processes per variant (alternating); parameter statistics every {} iterations",
        args.threads, args.iterations, args.processes, args.param_stats_every
    );
    println!(
        "{:<24} {:>12} {:>28} {:>22}",
        "variant", "median ms", "per-process medians (ms)", "heap allocs / iter"
    );
    for (label, v, m) in [("no listener", &off, m_off), ("StatsListener", &on, m_on)] {
        println!(
            "{:<24} {:>12.3} {:>28} {:>22}",
            label,
            m,
            v.iter()
                .map(|r| format!("{:.3}", r.median_ms))
                .collect::<Vec<_>>()
                .join(" "),
            allocs(v)
        );
    }
    let mut us: Vec<f64> = on.iter().filter_map(|r| r.listener_us).collect();
    us.sort_by(f64::total_cmp);
    let us = us.get(us.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "side by side: {:+.2} % (difference of the medians; noisy on a shared machine)",
        (m_on / m_off - 1.0) * 100.0
    );
    let mut inter: Vec<f64> = on.iter().filter_map(|r| r.interleaved_overhead).collect();
    inter.sort_by(f64::total_cmp);
    println!(
        "interleaved in one process (blocks of 40 iterations on/off, mean times, median of the processes): {:+.2} % (per process: {})",
        inter.get(inter.len() / 2).copied().unwrap_or(f64::NAN),
        inter
            .iter()
            .map(|v| format!("{v:+.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "the listener alone: {us:.1} µs per iteration (mean of 2,000 calls, median of the processes) = {:.2} % of W1's median iteration ({m_off:.3} ms); budget: 3 %",
        us / (m_off * 1e3) * 100.0
    );
    Ok(())
}
