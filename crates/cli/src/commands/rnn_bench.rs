//! `dl4rs bench rnn`: workload W3 of `shared/reference/workloads.md` — one LSTM (in 32, hidden
//! 64) and a dense 64 -> 5 softmax head on the last hidden state, mean cross-entropy, batch 32,
//! plain SGD 0.1, lengths cycling 10/50/100/25 — with the spec's data and initial weights, so
//! the loss of the last (108th) iteration cross-checks against PyTorch's 1.585973. 8 warm-up +
//! 100 timed iterations in child processes per thread count (medians of several): the mean ms
//! per iteration (the lengths differ, so the mean is the figure), per-length medians, heap
//! allocations per timed iteration (all timed iterations come after the longest length has been
//! seen) and peak memory.
//!
//! The spec's weights are PyTorch's: `W_ih [4H][in]`, `W_hh [4H][H]`, gate blocks in the order
//! i, f, g, o, and two biases. `rnn_model::w3_params` maps them onto our LSTM's flat layout
//! (the two biases summed into its one bias), and `rnn_model::W3Trainer` trains it as PyTorch
//! does (each of the two biases gets the gradient: see there).

use std::process::Command;
use std::time::Instant;

use clap::Args;
use dl4rs::array::NdArray;
use dl4rs::array::random::{splitmix, unit};
use dl4rs::data::DataSet;
use dl4rs::memory::{CountingAllocator, human_bytes};
use serde::{Deserialize, Serialize};

use super::CliError;
use super::process::{peak_rss_bytes, thread_cpu_ns};
use super::workloads::stats;

/// PyTorch's (and candle's, ndarray_ref's) loss of W3's last iteration.
pub const PEER_LOSS: f64 = 1.585973;
/// Batch size.
pub const BATCH: usize = 32;
/// Input channels per step.
pub const INPUTS: usize = 32;
/// LSTM hidden size.
pub const HIDDEN: usize = 64;
/// Classes of the head.
pub const CLASSES: usize = 5;
/// Iteration `k` has sequences of `LENGTHS[k % 4]` steps.
pub const LENGTHS: [usize; 4] = [10, 50, 100, 25];
/// Warm-up iterations before the timed ones.
pub const WARMUP: usize = 8;

/// Options of `dl4rs bench rnn`.
#[derive(Args, Debug, Clone)]
pub struct RnnBench {
    /// Timed iterations (after 8 warm-up ones; the spec: 100).
    #[arg(long, default_value_t = 100)]
    pub iterations: usize,
    /// Processes per thread count.
    #[arg(long, default_value_t = 3)]
    pub processes: usize,
    #[arg(long, hide = true)]
    threads: Option<usize>,
}

/// What one child process measures.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RnnResult {
    threads: usize,
    mean_ms: f64,
    /// Mean ms per iteration the calling thread spent on a CPU (NaN where unknown).
    cpu_mean_ms: f64,
    /// Median ms per iteration of each length, in `LENGTHS` order.
    length_median_ms: Vec<f64>,
    allocations_per_iteration: f64,
    peak_rss: usize,
    last_loss: f64,
}

/// `sym(seed, i, a)` for `i < n`: the spec's symmetric uniform numbers.
fn sym(seed: u64, n: usize, a: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (2.0 * unit(seed, i as u64) - 1.0) * a)
        .collect()
}

/// W3's initial weights as the spec (and PyTorch) lays them out.
#[derive(Debug, Clone)]
pub struct W3Init {
    /// `W_ih`, `[4H][in]` row-major, gate blocks i, f, g, o.
    pub w_ih: Vec<f32>,
    /// `W_hh`, `[4H][H]` row-major, gate blocks i, f, g, o.
    pub w_hh: Vec<f32>,
    /// `b_ih + b_hh`, `[4H]`, gate blocks i, f, g, o (PyTorch adds both to every gate).
    pub bias: Vec<f32>,
    /// The head's weights `[H][classes]` row-major.
    pub head_w: Vec<f32>,
    /// The head's bias (zeros).
    pub head_b: Vec<f32>,
}

impl W3Init {
    /// The spec's values.
    pub fn new() -> Self {
        let g = 4 * HIDDEN;
        let b_ih = sym(403, g, 0.125);
        let b_hh = sym(404, g, 0.125);
        W3Init {
            w_ih: sym(401, g * INPUTS, 0.125),
            w_hh: sym(402, g * HIDDEN, 0.125),
            bias: b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect(),
            head_w: sym(405, HIDDEN * CLASSES, (6.0f32 / 69.0).sqrt()),
            head_b: vec![0.0; CLASSES],
        }
    }
}

impl Default for W3Init {
    fn default() -> Self {
        Self::new()
    }
}

/// W3's fixed batch for length `len`: features `[32, 32, len]` (our `[batch, size, time]`
/// layout; the spec's batch-first `x[b][t][f] = unit(200 + L, (b*L + t)*32 + f) - 0.5`) and
/// one-hot labels `[32, 5]` of class `sm(300 + L, b) % 5`, on the heap.
pub fn w3_batch(len: usize) -> Result<(NdArray<f32>, NdArray<f32>), CliError> {
    let seed = 200 + len as u64;
    let mut x = vec![0f32; BATCH * INPUTS * len];
    for b in 0..BATCH {
        for t in 0..len {
            for f in 0..INPUTS {
                let i = ((b * len + t) * INPUTS + f) as u64;
                x[(b * INPUTS + f) * len + t] = unit(seed, i) - 0.5;
            }
        }
    }
    let mut y = vec![0f32; BATCH * CLASSES];
    for b in 0..BATCH {
        y[b * CLASSES + (splitmix(300 + len as u64, b as u64) % CLASSES as u64) as usize] = 1.0;
    }
    Ok((
        NdArray::from_slice_detached(&[BATCH, INPUTS, len], &x)?,
        NdArray::from_slice_detached(&[BATCH, CLASSES], &y)?,
    ))
}

/// The four fixed batches as data sets, in `LENGTHS` order.
pub fn w3_data_sets() -> Result<Vec<DataSet>, CliError> {
    LENGTHS
        .iter()
        .map(|&l| {
            let (x, y) = w3_batch(l)?;
            Ok(DataSet::new(x, y)?)
        })
        .collect()
}

fn once(
    iterations: usize,
    threads: usize,
    alloc: &CountingAllocator,
) -> Result<RnnResult, CliError> {
    let batches = w3_data_sets()?;
    let mut trainer = super::rnn_model::W3Trainer::new()?;
    // Preallocated: a push that grows a Vec would count as the network's allocation.
    let mut per_length: [Vec<f64>; 4] =
        std::array::from_fn(|_| Vec::with_capacity(iterations / 4 + 1));
    let (mut total, mut allocations, mut last_loss) = (0.0, 0u64, f64::NAN);
    let mut cpu_start = None;
    for k in 0..WARMUP + iterations {
        let data = &batches[k % 4];
        let before = alloc.allocations();
        let t = Instant::now();
        trainer.step(data)?;
        let elapsed = t.elapsed().as_secs_f64();
        if k + 1 == WARMUP {
            cpu_start = thread_cpu_ns();
        }
        if k >= WARMUP {
            total += elapsed;
            per_length[k % 4].push(elapsed);
            allocations += alloc.allocations() - before;
        }
        last_loss = trainer.last_loss();
    }
    let cpu_mean_ms = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e6 / iterations.max(1) as f64,
        _ => f64::NAN,
    };
    Ok(RnnResult {
        threads,
        mean_ms: total * 1e3 / iterations.max(1) as f64,
        cpu_mean_ms,
        length_median_ms: per_length.iter_mut().map(|t| stats(t).0).collect(),
        allocations_per_iteration: allocations as f64 / iterations.max(1) as f64,
        peak_rss: peak_rss_bytes(),
        last_loss,
    })
}

fn child(threads: usize, args: &RnnBench) -> Result<RnnResult, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Usage(format!("can't find the dl4rs binary: {e}")))?;
    let out = Command::new(exe)
        .args(["bench", "rnn", "--threads", &threads.to_string()])
        .args(["--iterations", &args.iterations.to_string()])
        .output()
        .map_err(|e| CliError::Usage(format!("can't run the benchmark process: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Usage(format!(
            "benchmark process ({threads} threads) failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .map_err(|e| CliError::Usage(format!("unreadable benchmark result: {e}")))
}

fn median(v: Vec<f64>) -> f64 {
    let mut v = v;
    stats(&mut v).0 / 1e3
}

/// Runs `dl4rs bench rnn`.
pub fn run(args: RnnBench, alloc: &'static CountingAllocator) -> Result<(), CliError> {
    if args.iterations == 0 {
        return Err(CliError::Usage("--iterations must be at least 1".into()));
    }
    if let Some(threads) = args.threads {
        let pool = super::thread_pool(Some(threads))?;
        let result = pool.install(|| once(args.iterations, threads, alloc))?;
        println!(
            "{}",
            serde_json::to_string(&result).map_err(|e| CliError::Usage(e.to_string()))?
        );
        return Ok(());
    }
    println!(
        "dl4rs bench rnn: W3 LSTM 32->64 + dense 64->5 on the last step (batch 32, SGD 0.1, \
         lengths 10/50/100/25, spec data and weights), {WARMUP} warm-up + {} timed iterations, \
         {} processes per thread count (median of their figures)",
        args.iterations, args.processes
    );
    println!(
        "{:<8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>12} {:>10} {:>20}",
        "threads",
        "mean ms",
        "cpu ms",
        "L=10",
        "L=50",
        "L=100",
        "L=25",
        "heap allocs",
        "peak RSS",
        "last loss"
    );
    for threads in [1, 2] {
        let runs: Vec<RnnResult> = (0..args.processes.max(1))
            .map(|_| child(threads, &args))
            .collect::<Result<_, _>>()?;
        let pick = |f: &dyn Fn(&RnnResult) -> f64| median(runs.iter().map(f).collect());
        let loss = runs[0].last_loss;
        println!(
            "{:<8} {:>9.3} {:>9.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>12.2} {:>10} {:>20}",
            threads,
            pick(&|r| r.mean_ms),
            pick(&|r| r.cpu_mean_ms),
            pick(&|r| r.length_median_ms[0]),
            pick(&|r| r.length_median_ms[1]),
            pick(&|r| r.length_median_ms[2]),
            pick(&|r| r.length_median_ms[3]),
            runs.iter()
                .map(|r| r.allocations_per_iteration)
                .fold(0.0, f64::max),
            human_bytes(runs.iter().map(|r| r.peak_rss).max().unwrap_or(0)),
            format!(
                "{loss:.6} {}",
                if (loss - PEER_LOSS).abs() <= 1e-3 {
                    "(match)"
                } else {
                    "(MISMATCH)"
                }
            )
        );
    }
    println!(
        "mean ms: wall time per timed iteration; cpu ms: the time the calling thread ran on a \
         CPU (steadier on a shared machine; with 2 threads the other worker's share is not in \
         it); L=...: median wall ms of each length; PyTorch's last loss: {PEER_LOSS} (match: \
         within 1e-3)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_the_spec_layout() {
        let (x, y) = w3_batch(10).unwrap();
        assert_eq!(x.shape(), [32, 32, 10]);
        // x[b=1][t=2][f=3] of the spec sits at [1, 3, 2] in ours.
        let expected = unit(210, ((10 + 2) * 32 + 3) as u64) - 0.5;
        assert_eq!(x.get(&[1, 3, 2]).unwrap(), expected);
        let y = y.to_vec().unwrap();
        for b in 0..BATCH {
            let class = (splitmix(310, b as u64) % 5) as usize;
            assert_eq!(y[b * 5 + class], 1.0);
            assert_eq!(y[b * 5..b * 5 + 5].iter().sum::<f32>(), 1.0);
        }
    }

    #[test]
    fn init_sums_the_two_biases() {
        let w = W3Init::new();
        assert_eq!(
            (w.w_ih.len(), w.w_hh.len(), w.bias.len()),
            (256 * 32, 256 * 64, 256)
        );
        let b0 = (2.0 * unit(403, 0) - 1.0) * 0.125 + (2.0 * unit(404, 0) - 1.0) * 0.125;
        assert_eq!(w.bias[0], b0);
        assert!(w.w_ih.iter().all(|v| v.abs() <= 0.125));
    }
}
