//! `dl4rs bench distributed`: W1 (`shared/reference/workloads.md`: MLP 784-256-128-10, SGD
//! 0.1, batch 128 per rank, the spec's data and initial weights) trained by the
//! DistributedTrainer over MPI. Run plainly, it launches `mpiexec -n 1` (one thread, then two)
//! and `mpiexec -n 2` (one thread per rank) several times each and prints them side by side:
//! examples/s, ms per iteration, the allreduce's share, its bare cost, bytes per iteration and
//! heap allocations per iteration. With one rank the run is exactly W1, so its loss at
//! iteration 219 is the peers' 2.305956.
//!
//! Rank `r` of `n` trains batches `k n + r` of the rows in file order: the union of a round's
//! batches is `n` consecutive W1 batches.

use std::process::Command;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::CliError;

/// Options of `dl4rs bench distributed`.
#[derive(Args, Debug)]
pub struct DistBench {
    /// Timed iterations (after 20 warm-up iterations).
    #[arg(long, default_value_t = 200)]
    pub iterations: usize,
    /// Processes per configuration (the table shows medians).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Print the results as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Run as a rank (used internally: the launcher starts the ranks under mpiexec).
    #[arg(long, hide = true)]
    pub rank_run: bool,
    /// Product threads per rank (with `--rank-run`).
    #[arg(long, default_value_t = 1, hide = true)]
    pub threads: usize,
}

/// One configuration's figures (rank 0's view).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DistResult {
    /// MPI ranks.
    pub ranks: usize,
    /// Product threads per rank.
    pub threads: usize,
    /// Median ms per timed iteration (one round: a batch on every rank).
    pub median_ms: f64,
    /// Examples per second over the timed iterations, all ranks together.
    pub examples_per_s: f64,
    /// Mean ms per iteration inside the allreduce on rank 0 (waiting for the slowest rank
    /// included).
    pub allreduce_ms: f64,
    /// Median ms of a bare allreduce of the fused buffer after a barrier (transfer only).
    pub bare_allreduce_ms: f64,
    /// Bytes rank 0 contributes per iteration.
    pub bytes_per_iteration: u64,
    /// Heap allocations per timed iteration on rank 0's training thread.
    pub allocations_per_iteration: f64,
    /// Loss of the last iteration (the mean over every rank's batch).
    pub last_loss: f64,
}

/// Runs `dl4rs bench distributed`.
pub fn run(
    args: DistBench,
    alloc: &'static dl4rs::memory::CountingAllocator,
) -> Result<(), CliError> {
    if args.iterations == 0 || args.repeats == 0 {
        return Err(CliError::Usage(
            "--iterations and --repeats must be at least 1".into(),
        ));
    }
    // Started by mpiexec (by the launcher below, or by hand: `mpiexec -n 2 dl4rs bench
    // distributed`): this process is a rank. MPICH sets PMI_SIZE, Open MPI OMPI_COMM_WORLD_SIZE.
    let under_mpi = std::env::var_os("PMI_SIZE").is_some()
        || std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some();
    if args.rank_run || under_mpi {
        return rank_run(&args, alloc);
    }
    let mut rows = Vec::new();
    for (ranks, threads) in [(1, 1), (1, 2), (2, 1)] {
        let mut runs = (0..args.repeats)
            .map(|_| launch(ranks, threads, args.iterations))
            .collect::<Result<Vec<_>, _>>()?;
        runs.sort_by(|a, b| a.median_ms.total_cmp(&b.median_ms));
        rows.push(runs.swap_remove(runs.len() / 2));
    }
    if args.json {
        for r in &rows {
            println!(
                "{}",
                serde_json::to_string(r).map_err(|e| CliError::Usage(e.to_string()))?
            );
        }
        return Ok(());
    }
    println!(
        "dl4rs bench distributed: W1 per rank (batch 128, SGD 0.1), shared gradients over MPI, \
         20 warm-up + {} timed iterations, median of {} processes",
        args.iterations, args.repeats
    );
    print_rows(&rows);
    let base = rows[0].examples_per_s;
    for r in &rows[1..] {
        println!(
            "{} rank(s) x {} thread(s): {:.2}x the examples/s of 1 rank x 1 thread",
            r.ranks,
            r.threads,
            r.examples_per_s / base
        );
    }
    if args.iterations == 200 {
        println!(
            "loss cross-check (1 rank = W1): {:.6} vs peers 2.305956",
            rows[0].last_loss
        );
    }
    Ok(())
}

fn print_rows(rows: &[DistResult]) {
    println!(
        "{:>5} {:>7} {:>10} {:>12} {:>13} {:>12} {:>11} {:>11} {:>10}",
        "ranks",
        "threads",
        "median ms",
        "examples/s",
        "allreduce ms",
        "bare ms",
        "bytes/iter",
        "allocs/iter",
        "last loss"
    );
    for r in rows {
        println!(
            "{:>5} {:>7} {:>10.3} {:>12.0} {:>13.3} {:>12.3} {:>11} {:>11.2} {:>10.6}",
            r.ranks,
            r.threads,
            r.median_ms,
            r.examples_per_s,
            r.allreduce_ms,
            r.bare_allreduce_ms,
            dl4rs::memory::human_bytes(r.bytes_per_iteration as usize),
            r.allocations_per_iteration,
            r.last_loss
        );
    }
}

fn launch(ranks: usize, threads: usize, iterations: usize) -> Result<DistResult, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Usage(format!("can't find the dl4rs binary: {e}")))?;
    let out = Command::new("mpiexec")
        .args(["-n", &ranks.to_string()])
        .arg(exe)
        .args(["bench", "distributed", "--rank-run", "--json"])
        .args(["--threads", &threads.to_string()])
        .args(["--iterations", &iterations.to_string()])
        .output()
        .map_err(|e| {
            CliError::Usage(format!(
                "can't run mpiexec ({e}): install MPICH (`apt-get install mpich libmpich-dev`)"
            ))
        })?;
    if !out.status.success() {
        return Err(CliError::Usage(format!(
            "mpiexec -n {ranks} (threads {threads}) failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| CliError::Usage(format!("no result from the ranks: {text}")))?;
    serde_json::from_str(line).map_err(|e| CliError::Usage(format!("unreadable result: {e}")))
}

#[cfg(not(feature = "distributed"))]
fn rank_run(
    _args: &DistBench,
    _alloc: &'static dl4rs::memory::CountingAllocator,
) -> Result<(), CliError> {
    Err(CliError::Usage(format!(
        "bench distributed: {}",
        super::distributed::NOT_BUILT
    )))
}

#[cfg(feature = "distributed")]
fn rank_run(
    args: &DistBench,
    alloc: &'static dl4rs::memory::CountingAllocator,
) -> Result<(), CliError> {
    super::thread_pool(Some(args.threads))?.install(|| rank_inner(args, alloc))
}

#[cfg(feature = "distributed")]
fn rank_inner(
    args: &DistBench,
    alloc: &'static dl4rs::memory::CountingAllocator,
) -> Result<(), CliError> {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use dl4rs::data::{DataSet, InMemoryDataSetIterator};
    use dl4rs::distributed::{Collective, DistributedTrainer, MpiCollective};
    use dl4rs::nn::{IterationInfo, Model, NnError, TrainingListener};

    use super::workloads::{BATCH, Mode, w1_network};

    const WARMUP: usize = 20;
    let err = |e: dl4rs::distributed::DistributedError| CliError::Usage(e.to_string());
    let world = MpiCollective::init(Duration::from_secs(120)).map_err(err)?;
    let (rank, ranks) = (
        Collective::<f32>::rank(&world),
        Collective::<f32>::size(&world),
    );
    let iterations = WARMUP + args.iterations;
    // Only the rows the ranks train: the first `iterations * ranks` W1 batches.
    let rows = iterations * ranks * BATCH;
    let (x, y) = super::workloads::w1_synthetic(rows)?;
    let mut it = InMemoryDataSetIterator::new(DataSet::new(x, y)?, BATCH)?;
    let mut net = w1_network(Mode::Enabled)?;

    /// Per-iteration end times and this thread's allocation count.
    struct Clock {
        times: Arc<Mutex<Vec<(Instant, u64)>>>,
        alloc: &'static dl4rs::memory::CountingAllocator,
    }
    impl TrainingListener<f32> for Clock {
        fn iteration_done(
            &mut self,
            _m: &dyn Model<f32>,
            _i: &IterationInfo,
        ) -> Result<(), NnError> {
            if let Ok(mut t) = self.times.lock()
                && t.len() < t.capacity()
            {
                t.push((Instant::now(), self.alloc.thread_allocations()));
            }
            Ok(())
        }
    }
    let times = Arc::new(Mutex::new(Vec::with_capacity(iterations)));
    net.add_listener(Box::new(Clock {
        times: times.clone(),
        alloc,
    }));
    let mut trainer = DistributedTrainer::builder(world).build().map_err(err)?;
    let stats = trainer.fit(&mut net, &mut it, 1).map_err(err)?;

    // The bare allreduce of the fused buffer, each after a barrier (a one-value allreduce).
    let fused = net.num_params() + 3;
    let send = vec![1f32; fused];
    let mut recv = vec![0f32; fused];
    let mut bare = Vec::with_capacity(50);
    for _ in 0..50 {
        trainer
            .collective_mut()
            .all_reduce_sum(&[0.0], &mut [0.0])
            .map_err(err)?;
        let t0 = Instant::now();
        trainer
            .collective_mut()
            .all_reduce_sum(&send, &mut recv)
            .map_err(err)?;
        bare.push(t0.elapsed().as_secs_f64());
    }
    if rank != 0 {
        return Ok(());
    }
    let times = times.lock().map(|t| t.clone()).unwrap_or_default();
    if times.len() < iterations {
        return Err(CliError::Usage(format!(
            "expected {iterations} iterations, trained {}",
            times.len()
        )));
    }
    let mut per_iter: Vec<f64> = times[WARMUP..]
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).as_secs_f64())
        .collect();
    let timed = (times[iterations - 1].0 - times[WARMUP - 1].0).as_secs_f64();
    let allocs = times[iterations - 1].1 - times[WARMUP - 1].1;
    let (median_ms, _) = super::workloads::stats(&mut per_iter);
    let (bare_ms, _) = super::workloads::stats(&mut bare);
    let result = DistResult {
        ranks,
        threads: args.threads,
        median_ms,
        examples_per_s: (args.iterations * ranks * BATCH) as f64 / timed,
        allreduce_ms: 1e3 * stats.allreduce_seconds / stats.allreduces.max(1) as f64,
        bare_allreduce_ms: bare_ms,
        bytes_per_iteration: stats.allreduce_bytes / stats.allreduces.max(1),
        allocations_per_iteration: allocs as f64 / args.iterations as f64,
        last_loss: stats.last_score,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&result).map_err(|e| CliError::Usage(e.to_string()))?
        );
    } else {
        print_rows(&[result]);
    }
    Ok(())
}
