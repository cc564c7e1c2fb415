//! `dl4rs bench train` and `dl4rs bench infer`: the peers' workloads W1 and W2
//! (`shared/reference/workloads.md`) reproduced exactly (data generator, initial weights, batch
//! order), so the loss of iteration 219 is a correctness cross-check of the whole training
//! step. Each (mode, threads) configuration runs in its own child process so its peak RSS is
//! its own; the table compares them side by side.

use std::process::Command;
use std::time::Instant;

use clap::{Args, ValueEnum};
use dl4rs::array::random::{splitmix, unit};
use dl4rs::array::{AsView, NdArray};
use dl4rs::data::fashion_mnist;
use dl4rs::memory::{
    CountingAllocator, WorkspaceConfig, get_workspace_for_current_thread, human_bytes,
};
use dl4rs::nn::{
    Activation, LayerConf, LossFunction, MultiLayerNetwork, NeuralNetConfiguration, Updater,
    WorkspaceMode,
};
use serde::{Deserialize, Serialize};

use super::CliError;
use super::process::peak_rss_bytes;

pub(crate) const ROWS: usize = 60_000;
pub(crate) const BATCH: usize = 128;
/// The peers' loss at iteration 219 on synthetic data and on Fashion-MNIST train.
const PEER_LOSS_SYNTHETIC: f64 = 2.305956;
const PEER_LOSS_FASHION: f64 = 0.6209;

/// Which training data W1 uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Data {
    /// The SplitMix64 generator of the spec (60,000 x 784).
    Synthetic,
    /// Fashion-MNIST train (needs the full set: /usr/share/datasets/fashion-mnist).
    Fashion,
}

/// Workspace mode of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Mode {
    /// Workspaces on.
    Enabled,
    /// Workspaces off.
    None,
}

/// Options of `dl4rs bench train`.
#[derive(Args, Debug, Clone)]
pub struct TrainBench {
    /// Training data.
    #[arg(long, value_enum, default_value_t = Data::Synthetic)]
    pub data: Data,
    /// Timed iterations (after 20 warm-up ones).
    #[arg(long, default_value_t = 200)]
    pub iterations: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, hide = true)]
    mode: Option<Mode>,
    #[arg(long, hide = true)]
    threads: Option<usize>,
}

/// Options of `dl4rs bench infer`.
#[derive(Args, Debug, Clone)]
pub struct InferBench {
    /// Timed calls per batch size (after 20 warm-up ones).
    #[arg(long, default_value_t = 1000)]
    pub iterations: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, hide = true)]
    mode: Option<Mode>,
    #[arg(long, hide = true)]
    threads: Option<usize>,
}

/// One configuration's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Workload label ("W1 train", "W2 batch 1", ...).
    pub workload: String,
    /// Workspace mode.
    pub mode: Mode,
    /// Threads.
    pub threads: usize,
    /// Median milliseconds per iteration.
    pub median_ms: f64,
    /// Mean milliseconds per iteration.
    pub mean_ms: f64,
    /// Heap allocations per timed iteration (all threads).
    pub allocations_per_iteration: f64,
    /// Peak RSS of the process, bytes.
    pub peak_rss_bytes: usize,
    /// Loss of iteration 219 (training only).
    pub loss_219: Option<f64>,
}

pub(crate) fn w1_network(mode: Mode) -> Result<MultiLayerNetwork<f32>, CliError> {
    let mode = match mode {
        Mode::Enabled => WorkspaceMode::Enabled,
        Mode::None => WorkspaceMode::None,
    };
    let conf = NeuralNetConfiguration::builder()
        .seed(0)
        .updater(Updater::sgd(0.1))
        .training_workspace_mode(mode)
        .inference_workspace_mode(mode)
        .list()
        .layer(LayerConf::dense(256).n_in(784).activation(Activation::Relu))
        .layer(LayerConf::dense(128).activation(Activation::Relu))
        .layer(LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax))
        .build()?;
    let mut net = MultiLayerNetwork::<f32>::new(conf)?;
    let params = w1_params();
    net.set_params(&NdArray::from_slice_detached(&[params.len()], &params)?)?;
    Ok(net)
}

/// W1's initial parameters from the spec, in the flat layout (weights `[in][out]` row-major,
/// then biases, layer by layer; biases 0).
pub(crate) fn w1_params() -> Vec<f32> {
    let sym = |seed: u64, n: usize, a: f32| -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * unit(seed, i as u64) - 1.0) * a)
            .collect()
    };
    let mut params = Vec::with_capacity(784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
    params.extend(sym(101, 784 * 256, (6.0f32 / 784.0).sqrt()));
    params.extend(std::iter::repeat_n(0.0, 256));
    params.extend(sym(102, 256 * 128, (6.0f32 / 256.0).sqrt()));
    params.extend(std::iter::repeat_n(0.0, 128));
    params.extend(sym(103, 128 * 10, (6.0f32 / 138.0).sqrt()));
    params.extend(std::iter::repeat_n(0.0, 10));
    params
}

/// The first `rows` rows of W1's synthetic data: (features [rows, 784], one-hot labels
/// [rows, 10]) on the heap, generated in place (one copy of the 188 MB of 60,000 rows, not two).
pub(crate) fn w1_synthetic(rows: usize) -> Result<(NdArray<f32>, NdArray<f32>), CliError> {
    let mut x = NdArray::<f32>::zeros_detached(&[rows, 784])?;
    for (i, v) in x
        .write()?
        .as_slice_mut()
        .unwrap_or_default()
        .iter_mut()
        .enumerate()
    {
        *v = unit(42, i as u64);
    }
    let mut y = NdArray::<f32>::zeros_detached(&[rows, 10])?;
    {
        let mut w = y.write()?;
        let labels = w.as_slice_mut().unwrap_or_default();
        for r in 0..rows {
            labels[r * 10 + (splitmix(43, r as u64) % 10) as usize] = 1.0;
        }
    }
    Ok((x, y))
}

/// (features [60000, 784], one-hot labels [60000, 10]) on the heap.
pub(crate) fn w1_data(data: Data) -> Result<(NdArray<f32>, NdArray<f32>), CliError> {
    match data {
        Data::Synthetic => w1_synthetic(ROWS),
        Data::Fashion => {
            let dir = fashion_mnist::default_location().ok_or_else(|| {
                CliError::Usage(format!(
                    "--data fashion needs the full Fashion-MNIST train set in {} (Debian \
                     package dataset-fashion-mnist)",
                    fashion_mnist::DEBIAN_LOCATION
                ))
            })?;
            let (train, _) = fashion_mnist::load_dir(&dir)?;
            let train = train.detach()?;
            Ok((train.features, train.labels))
        }
    }
}

fn child(kind: &str, extra: &[String], mode: Mode, threads: usize) -> Result<RunResult, CliError> {
    child_all(kind, extra, mode, threads)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Usage("empty benchmark result".into()))
}

pub(crate) fn stats(times: &mut [f64]) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    (
        times.get(times.len() / 2).copied().unwrap_or(f64::NAN) * 1e3,
        mean * 1e3,
    )
}

fn print_table(title: &str, results: &[RunResult]) {
    println!("{title}");
    println!(
        "{:<14} {:<8} {:>7} {:>10} {:>10} {:>12} {:>10} {:>12}",
        "workload",
        "mode",
        "threads",
        "median ms",
        "mean ms",
        "allocs/iter",
        "peak RSS",
        "loss it.219"
    );
    for r in results {
        println!(
            "{:<14} {:<8} {:>7} {:>10.3} {:>10.3} {:>12.2} {:>10} {:>12}",
            r.workload,
            format!("{:?}", r.mode).to_lowercase(),
            r.threads,
            r.median_ms,
            r.mean_ms,
            r.allocations_per_iteration,
            human_bytes(r.peak_rss_bytes),
            r.loss_219.map_or("-".into(), |l| format!("{l:.6}"))
        );
    }
}

fn pool(threads: usize) -> Result<rayon::ThreadPool, CliError> {
    super::thread_pool(Some(threads))
}

/// Runs `dl4rs bench train`.
pub fn run_train(args: TrainBench, alloc: &'static CountingAllocator) -> Result<(), CliError> {
    if args.iterations == 0 {
        return Err(CliError::Usage("--iterations must be at least 1".into()));
    }
    if let (Some(mode), Some(threads)) = (args.mode, args.threads) {
        let result = pool(threads)?.install(|| train_once(&args, mode, threads, alloc))?;
        println!(
            "{}",
            serde_json::to_string(&result).map_err(|e| CliError::Usage(e.to_string()))?
        );
        return Ok(());
    }
    let data = format!("{:?}", args.data).to_lowercase();
    let extra = vec![
        "--data".to_string(),
        data,
        "--iterations".into(),
        args.iterations.to_string(),
    ];
    let mut results = Vec::new();
    for threads in [1, 2] {
        for mode in [Mode::Enabled, Mode::None] {
            results.push(child("train", &extra, mode, threads)?);
        }
    }
    if args.json {
        for r in &results {
            println!(
                "{}",
                serde_json::to_string(r).map_err(|e| CliError::Usage(e.to_string()))?
            );
        }
        return Ok(());
    }
    print_table(
        &format!(
            "dl4rs bench train: W1 (MLP 784-256-128-10, SGD 0.1, batch 128, {:?} data), 20 warm-up + {} timed iterations",
            args.data, args.iterations
        ),
        &results,
    );
    let peer = match args.data {
        Data::Synthetic => PEER_LOSS_SYNTHETIC,
        Data::Fashion => PEER_LOSS_FASHION,
    };
    if args.iterations == 200 {
        for r in &results {
            if let Some(loss) = r.loss_219 {
                let ok = (loss - peer).abs() <= 5e-4 * peer.max(1.0);
                println!(
                    "loss cross-check ({:?}, {} thread(s)): {loss:.6} vs peers {peer} -> {}",
                    r.mode,
                    r.threads,
                    if ok { "match" } else { "MISMATCH" }
                );
            }
        }
    }
    Ok(())
}

fn train_once(
    args: &TrainBench,
    mode: Mode,
    threads: usize,
    alloc: &CountingAllocator,
) -> Result<RunResult, CliError> {
    let (x, y) = w1_data(args.data)?;
    let mut net = w1_network(mode)?;
    let batches = ROWS / BATCH;
    let total = 20 + args.iterations;
    let mut times = Vec::with_capacity(args.iterations);
    let mut allocations = 0;
    let mut loss_219 = None;
    for k in 0..total {
        let start = (k % batches) * BATCH;
        let bx = x.view().slice_axis(0, start, start + BATCH, 1)?;
        let by = y.view().slice_axis(0, start, start + BATCH, 1)?;
        let before = alloc.allocations();
        let t = Instant::now();
        net.fit_arrays(&bx, &by)?;
        let elapsed = t.elapsed().as_secs_f64();
        if k >= 20 {
            times.push(elapsed);
            allocations += alloc.allocations() - before;
        }
        if k == 219 {
            loss_219 = Some(net.last_score());
        }
    }
    let (median_ms, mean_ms) = stats(&mut times);
    Ok(RunResult {
        workload: "W1 train".into(),
        mode,
        threads,
        median_ms,
        mean_ms,
        allocations_per_iteration: allocations as f64 / args.iterations as f64,
        peak_rss_bytes: peak_rss_bytes(),
        loss_219,
    })
}

/// Runs `dl4rs bench infer`.
pub fn run_infer(args: InferBench, alloc: &'static CountingAllocator) -> Result<(), CliError> {
    if args.iterations == 0 {
        return Err(CliError::Usage("--iterations must be at least 1".into()));
    }
    if let (Some(mode), Some(threads)) = (args.mode, args.threads) {
        let results = pool(threads)?.install(|| infer_once(&args, mode, threads, alloc))?;
        for r in results {
            println!(
                "{}",
                serde_json::to_string(&r).map_err(|e| CliError::Usage(e.to_string()))?
            );
        }
        return Ok(());
    }
    let extra = vec!["--iterations".to_string(), args.iterations.to_string()];
    let mut results = Vec::new();
    for threads in [1, 2] {
        for mode in [Mode::Enabled, Mode::None] {
            results.extend(child_all("infer", &extra, mode, threads)?);
        }
    }
    results.sort_by(|a, b| a.workload.cmp(&b.workload).then(a.threads.cmp(&b.threads)));
    if args.json {
        for r in &results {
            println!(
                "{}",
                serde_json::to_string(r).map_err(|e| CliError::Usage(e.to_string()))?
            );
        }
        return Ok(());
    }
    print_table(
        &format!(
            "dl4rs bench infer: W2 (the W1 network, forward + softmax), 20 warm-up + {} timed calls; \
             Enabled writes into a caller's workspace, None returns heap arrays",
            args.iterations
        ),
        &results,
    );
    Ok(())
}

fn child_all(
    kind: &str,
    extra: &[String],
    mode: Mode,
    threads: usize,
) -> Result<Vec<RunResult>, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Usage(format!("can't find the dl4rs binary: {e}")))?;
    let mode_name = format!("{mode:?}").to_lowercase();
    let out = Command::new(exe)
        .args([
            "bench",
            kind,
            "--mode",
            &mode_name,
            "--threads",
            &threads.to_string(),
            "--json",
        ])
        .args(extra)
        .output()
        .map_err(|e| CliError::Usage(format!("can't run the benchmark process: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Usage(format!(
            "benchmark process ({kind}, {mode_name}, {threads} threads) failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| CliError::Usage(format!("unreadable benchmark result: {e}")))
        })
        .collect()
}

fn infer_once(
    args: &InferBench,
    mode: Mode,
    threads: usize,
    alloc: &CountingAllocator,
) -> Result<Vec<RunResult>, CliError> {
    let mut net = w1_network(mode)?;
    let x: Vec<f32> = (0..256 * 784).map(|i| unit(42, i as u64)).collect();
    let x = NdArray::from_slice_detached(&[256, 784], &x)?;
    // The caller's output workspace grows with the batch (Reallocate), as a server's would.
    let output_config = WorkspaceConfig::builder()
        .policy_spill(dl4rs::memory::SpillPolicy::Reallocate)
        .build()?;
    let user = get_workspace_for_current_thread(&output_config, "BENCH_OUTPUT")?;
    let mut results = Vec::new();
    for batch in [1usize, 256] {
        let input = x.view().slice_axis(0, 0, batch, 1)?;
        let mut times = Vec::with_capacity(args.iterations);
        let mut allocations = 0;
        let mut checksum = 0.0f32;
        for k in 0..20 + args.iterations {
            let before = alloc.allocations();
            let t = Instant::now();
            match mode {
                Mode::Enabled => {
                    let _scope = user.notify_scope_entered()?;
                    let out = net.output_in(&input, false, &user)?;
                    checksum += out.get(&[0, 0])?;
                }
                Mode::None => {
                    let out = net.output(&input, false)?;
                    checksum += out.get(&[0, 0])?;
                }
            }
            let elapsed = t.elapsed().as_secs_f64();
            if k >= 20 {
                times.push(elapsed);
                allocations += alloc.allocations() - before;
            }
        }
        std::hint::black_box(checksum);
        let (median_ms, mean_ms) = stats(&mut times);
        results.push(RunResult {
            workload: format!("W2 batch {batch}"),
            mode,
            threads,
            median_ms,
            mean_ms,
            allocations_per_iteration: allocations as f64 / args.iterations as f64,
            peak_rss_bytes: peak_rss_bytes(),
            loss_219: None,
        });
    }
    Ok(results)
}

/// Options of `dl4rs bench pipeline`.
#[derive(Args, Debug, Clone)]
pub struct PipelineBench {
    /// Rows of the generated CSV file (W1's synthetic data, 784 features + label).
    #[arg(long, default_value_t = 20_000)]
    pub rows: usize,
    /// Timed epochs per source (after one warm-up epoch).
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// Writes W1's synthetic rows as CSV (4 decimals) to `path`.
fn write_w1_csv(path: &std::path::Path, rows: usize) -> Result<(), CliError> {
    use std::io::Write;
    let io = |e: std::io::Error| CliError::Usage(format!("{}: {e}", path.display()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for r in 0..rows {
        for c in 0..784 {
            write!(out, "{:.4},", unit(42, (r * 784 + c) as u64)).map_err(io)?;
        }
        writeln!(out, "{}", splitmix(43, r as u64) % 10).map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Runs `dl4rs bench pipeline`.
pub fn run_pipeline(
    args: PipelineBench,
    alloc: &'static CountingAllocator,
) -> Result<(), CliError> {
    use dl4rs::data::records::{
        CsvRecordReader, CsvStreamingDataSetIterator, LabelSpec, RecordReaderDataSetIterator,
    };
    use dl4rs::data::{AsyncDataSetIterator, DataSetIterator, InMemoryDataSetIterator};
    if args.rows < BATCH || args.epochs == 0 {
        return Err(CliError::Usage(format!(
            "--rows must be at least {BATCH} and --epochs at least 1"
        )));
    }
    let path = std::env::temp_dir().join(format!("dl4rs-pipeline-{}.csv", std::process::id()));
    write_w1_csv(&path, args.rows)?;
    let size = std::fs::metadata(&path)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let spec = LabelSpec::Classification {
        column: 784,
        num_classes: 10,
    };
    let result = pool(args.threads)?.install(|| -> Result<Vec<(String, f64, f64)>, CliError> {
        let parse_start = Instant::now();
        let mut reader = CsvRecordReader::new(0, ',');
        reader.initialize(&path)?;
        let data = RecordReaderDataSetIterator::<f32>::new(reader, BATCH, spec)?.to_dataset()?;
        let parse_secs = parse_start.elapsed().as_secs_f64();
        let mut rows = Vec::new();
        rows.push((
            "parse the whole file once (CsvRecordReader)".to_string(),
            parse_secs,
            f64::NAN,
        ));
        let mut epoch = |name: &str, it: &mut dyn DataSetIterator<f32>| -> Result<(), CliError> {
            let mut net = w1_network(Mode::Enabled)?;
            net.fit_iter(it, 1)?; // warm-up epoch: workspaces and the ring learn
            let before = alloc.allocations();
            let batches_before = net.iteration_count();
            let mut times = Vec::with_capacity(args.epochs);
            for _ in 0..args.epochs {
                let t = Instant::now();
                net.fit_iter(it, 1)?;
                times.push(t.elapsed().as_secs_f64());
            }
            let batches = (net.iteration_count() - batches_before).max(1);
            times.sort_by(f64::total_cmp);
            rows.push((
                name.to_string(),
                times[times.len() / 2],
                (alloc.allocations() - before) as f64 / batches as f64,
            ));
            Ok(())
        };
        let mut memory = InMemoryDataSetIterator::new(data, BATCH)?;
        epoch("in-memory data set", &mut memory)?;
        let mut sync = CsvStreamingDataSetIterator::<f32>::new(&path, 0, ',', BATCH, spec)?;
        epoch("CSV, parsed per batch, no prefetch", &mut sync)?;
        let streaming = CsvStreamingDataSetIterator::<f32>::new(&path, 0, ',', BATCH, spec)?;
        let mut prefetched = AsyncDataSetIterator::new(Box::new(streaming), 2)?;
        epoch("CSV, parsed per batch, async prefetch 2", &mut prefetched)?;
        Ok(rows)
    });
    std::fs::remove_file(&path).ok();
    let rows = result?;
    println!(
        "dl4rs bench pipeline: one epoch of W1 (MLP 784-256-128-10, SGD 0.1, batch 128, workspaces on) \
         over {} rows ({}), {} thread(s); median of {} epochs after a warm-up epoch",
        args.rows,
        human_bytes(size),
        args.threads,
        args.epochs
    );
    println!("{:<44} {:>10} {:>16}", "source", "s/epoch", "allocs/batch");
    for (name, secs, allocs) in rows {
        let allocs = if allocs.is_nan() {
            "-".to_string()
        } else {
            format!("{allocs:.2}")
        };
        println!("{name:<44} {secs:>10.3} {allocs:>16}");
    }
    println!("allocs/batch counts every thread of the process (the prefetch thread included).");
    Ok(())
}
