//! `dl4rs bench ...`: benchmarks that compare workspace modes side by side and report what the
//! workspace system is for: time per allocation and per cycle, heap allocations per
//! steady-state cycle, and peak memory. Each mode runs in its own child process so its peak
//! RSS is its own.

use std::process::Command;
use std::time::Instant;

use super::process::peak_rss_bytes;
use clap::{Subcommand, ValueEnum};
use dl4rs::memory::{
    Buffer, CountingAllocator, WorkspaceConfig, allocation_report, get_and_activate_workspace,
    human_bytes,
};
use serde::{Deserialize, Serialize};

/// Which benchmark to run.
#[derive(Subcommand)]
pub enum Which {
    /// A cyclic workload of mixed-size allocations (the buffers of one MLP training step),
    /// in a workspace and on the heap.
    Memory {
        /// Timed cycles per mode (after 20 warm-up cycles).
        #[arg(long, default_value_t = 2000)]
        cycles: usize,
        /// Print the results as JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Run one mode in this process (used internally: each mode runs in a child process).
        #[arg(long, hide = true)]
        mode: Option<Mode>,
    },
    /// W1: MLP 784-256-128-10 training step (SGD 0.1, batch 128) as specified in
    /// shared/reference/workloads.md, workspaces Enabled vs None, 1 and 2 threads.
    Train(super::workloads::TrainBench),
    /// W2: the same MLP, inference at batch 1 and 256, workspaces Enabled vs None.
    Infer(super::workloads::InferBench),
    /// An epoch of W1 from a CSV file (parsed per batch) with and without async prefetch,
    /// and from memory.
    Pipeline(super::workloads::PipelineBench),
    /// W1 as a MultiLayerNetwork and as a chain ComputationGraph side by side, and a residual
    /// graph's inference memory against its liveness minimum.
    Graph(super::graph_bench::GraphBench),
    /// W4: LeNet-5 training and inference (loss cross-check with PyTorch), and the
    /// convolutions' GFLOP/s against the gemm's.
    Conv(super::conv_bench::ConvBench),
    /// W3: an LSTM (32 -> 64) + dense head on variable-length sequences (SGD 0.1, batch 32,
    /// lengths 10/50/100/25; loss cross-check with PyTorch).
    Rnn(super::rnn_bench::RnnBench),
    /// W1 without and with a StatsListener attached: the cost of recording statistics.
    Stats(super::stats_bench::StatsBench),
    /// W1 on the bundled data with ParallelWrapper (2 workers) against one model with 1 and
    /// 2 product threads: examples/s, accuracy, allocations per round, peak heap.
    Parallel(super::parallel_bench::ParallelBench),
    /// Issue 15's soak: 10^6 workspace cycles of a mixed workload and 10^5 training
    /// iterations with the async iterator and evaluation; RSS within 2 % after warm-up.
    Soak(super::soak::SoakArgs),
    /// W1 per rank trained over MPI (shared gradients), 1 and 2 ranks side by side: examples/s,
    /// the allreduce's time and bytes (needs `--features distributed` and mpiexec).
    Distributed(super::dist_bench::DistBench),
    /// dl4rs beside PyTorch on W1-W4 and the W1 products, alternating in one run (the peer
    /// from `bash benches/peers/pytorch.sh`; dl4rs alone without it).
    Compare(super::compare_bench::CompareBench),
}

/// Where the workload's buffers live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Mode {
    /// In a workspace (the dl4rs default).
    Workspace,
    /// On the heap (workspaces off).
    Heap,
}

/// Element counts of the f32 buffers one W1 training step (MLP 784-256-128-10, batch 128)
/// allocates: input, forward activations, loss gradient, backward gradients, biases.
const STEP_BUFFERS: [usize; 22] = [
    128 * 784, // input batch
    128 * 256, // z1
    128 * 256, // a1
    128 * 128, // z2
    128 * 128, // a2
    128 * 10,  // z3
    128 * 10,  // softmax
    128,       // per-example loss
    1,         // score
    128 * 10,  // dL/dz3
    128 * 10,  // dW3 (128 x 10)
    10,        // db3
    128 * 128, // dL/da2
    128 * 128, // dL/dz2
    256 * 128, // dW2
    128,       // db2
    128 * 256, // dL/da1
    128 * 256, // dL/dz1
    784 * 256, // dW1
    256,       // db1
    32,        // row-wise max scratch
    128,       // row sums scratch
];

/// One mode's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryResult {
    /// The mode.
    pub mode: Mode,
    /// Timed cycles.
    pub cycles: usize,
    /// Allocations per cycle in the workload.
    pub allocations_per_cycle: usize,
    /// Mean nanoseconds per allocation + release, data untouched.
    pub ns_per_allocation: f64,
    /// Cycles per second with every buffer written and read.
    pub cycles_per_second: f64,
    /// Median milliseconds per cycle with every buffer written and read.
    pub median_ms_per_cycle: f64,
    /// Heap allocations per steady-state cycle (counting allocator).
    pub heap_allocations_per_cycle: f64,
    /// Peak resident set size of the process, bytes.
    pub peak_rss_bytes: usize,
    /// Total workspace block bytes at the end.
    pub workspace_bytes: usize,
    /// MLP-shaped forward cycle (784-256-128-10, batch 128): median ms per cycle (median of 5
    /// runs of 200 cycles).
    pub mlp_ms_batch128: f64,
    /// The same at batch 1.
    pub mlp_ms_batch1: f64,
    /// Heap allocations per MLP cycle (all threads).
    pub mlp_allocations_per_cycle: f64,
    /// Block bytes of the MLP cycle's workspace.
    pub mlp_workspace_bytes: usize,
}

/// Runs a benchmark.
pub fn run(which: Which, alloc: &'static CountingAllocator) -> Result<(), super::CliError> {
    match which {
        Which::Memory { cycles, json, mode } => match mode {
            Some(mode) => {
                let result = memory_mode(mode, cycles, alloc)?;
                println!(
                    "{}",
                    serde_json::to_string(&result).map_err(|e| e.to_string())?
                );
                Ok(())
            }
            None => {
                let results = [Mode::Workspace, Mode::Heap]
                    .into_iter()
                    .map(|mode| memory_child(mode, cycles))
                    .collect::<Result<Vec<_>, _>>()?;
                if json {
                    for r in &results {
                        println!("{}", serde_json::to_string(r).map_err(|e| e.to_string())?);
                    }
                } else {
                    print_memory_table(&results);
                }
                Ok(())
            }
        },
        Which::Train(args) => super::workloads::run_train(args, alloc),
        Which::Infer(args) => super::workloads::run_infer(args, alloc),
        Which::Pipeline(args) => super::workloads::run_pipeline(args, alloc),
        Which::Graph(args) => super::graph_bench::run(args, alloc),
        Which::Conv(args) => super::conv_bench::run(args, alloc),
        Which::Stats(args) => super::stats_bench::run(args, alloc),
        Which::Rnn(args) => super::rnn_bench::run(args, alloc),
        Which::Soak(args) => super::soak::run(&args, alloc),
        Which::Distributed(args) => super::dist_bench::run(args, alloc),
        Which::Parallel(args) => super::parallel_bench::run(args, alloc),
        Which::Compare(args) => super::compare_bench::run(args),
    }
}

fn memory_child(mode: Mode, cycles: usize) -> Result<MemoryResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("can't find the dl4rs binary: {e}"))?;
    let mode_name = format!("{mode:?}").to_lowercase();
    let output = Command::new(exe)
        .args([
            "bench",
            "memory",
            "--cycles",
            &cycles.to_string(),
            "--mode",
            &mode_name,
        ])
        .output()
        .map_err(|e| format!("can't run the {mode_name} benchmark process: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the {mode_name} benchmark process failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim())
        .map_err(|e| format!("unreadable result from the {mode_name} benchmark: {e}: {stdout}"))
}

fn print_memory_table(results: &[MemoryResult]) {
    let bytes: usize = STEP_BUFFERS.iter().sum::<usize>() * 4;
    println!(
        "dl4rs bench memory: {} allocations per cycle, {} in all (the f32 buffers of one MLP \
         784-256-128-10 training step at batch 128), {} timed cycles per mode, 1 thread",
        STEP_BUFFERS.len(),
        human_bytes(bytes),
        results.first().map_or(0, |r| r.cycles)
    );
    println!(
        "{:<10} {:>10} {:>11} {:>10} {:>13} {:>10} {:>12}",
        "mode", "ns/alloc", "cycles/s", "ms/cycle", "heap allocs/c", "peak RSS", "workspace"
    );
    for r in results {
        println!(
            "{:<10} {:>10.1} {:>11.0} {:>10.4} {:>13.2} {:>10} {:>12}",
            format!("{:?}", r.mode).to_lowercase(),
            r.ns_per_allocation,
            r.cycles_per_second,
            r.median_ms_per_cycle,
            r.heap_allocations_per_cycle,
            human_bytes(r.peak_rss_bytes),
            human_bytes(r.workspace_bytes)
        );
    }
    println!("ms/cycle is the median; ns/alloc is allocate + release without touching the data.");
    println!();
    println!(
        "MLP-shaped cycle: forward 784-256-128-10 (gemm + bias + ReLU, softmax; 10 array ops) \
         with every intermediate array in the mode's placement; median of 5 runs x 200 cycles"
    );
    println!(
        "{:<10} {:>14} {:>12} {:>14} {:>12}",
        "mode", "ms (batch 128)", "ms (batch 1)", "heap allocs/c", "workspace"
    );
    for r in results {
        println!(
            "{:<10} {:>14.4} {:>12.4} {:>14.2} {:>12}",
            format!("{:?}", r.mode).to_lowercase(),
            r.mlp_ms_batch128,
            r.mlp_ms_batch1,
            r.mlp_allocations_per_cycle,
            human_bytes(r.mlp_workspace_bytes)
        );
    }
}

/// The MLP-shaped cycle: returns (median ms at batch 128, at batch 1, allocations per cycle,
/// workspace bytes).
fn mlp_cycles(mode: Mode, alloc: &CountingAllocator) -> Result<(f64, f64, f64, usize), String> {
    use dl4rs::array::{ArrayOps, AsView, NdArray};
    let e = |e: dl4rs::array::ArrayError| e.to_string();
    let dims = [784usize, 256, 128, 10];
    let (w, b): (Vec<_>, Vec<_>) = (0..3)
        .map(|i| {
            (
                NdArray::<f32>::rand_uniform(&[dims[i], dims[i + 1]], -0.1, 0.1, i as u64),
                NdArray::<f32>::zeros(&[dims[i + 1]]),
            )
        })
        .unzip();
    let w = w.into_iter().collect::<Result<Vec<_>, _>>().map_err(e)?;
    let b = b.into_iter().collect::<Result<Vec<_>, _>>().map_err(e)?;
    let data = NdArray::<f32>::rand_uniform(&[128, 784], 0.0, 1.0, 9).map_err(e)?;
    let config = WorkspaceConfig::default();
    let cycle = |x: &dl4rs::array::ArrayView<'_, f32>| -> Result<f32, String> {
        let _scope = match mode {
            Mode::Workspace => Some(get_and_activate_workspace(&config, "BENCH_MLP").map_err(err)?),
            Mode::Heap => None,
        };
        let a1 = x
            .matmul(&w[0])
            .and_then(|z| z.add(&b[0]))
            .and_then(|z| z.relu())
            .map_err(e)?;
        let a2 = a1
            .matmul(&w[1])
            .and_then(|z| z.add(&b[1]))
            .and_then(|z| z.relu())
            .map_err(e)?;
        let p = a2
            .matmul(&w[2])
            .and_then(|z| z.add(&b[2]))
            .and_then(|z| z.softmax(1))
            .map_err(e)?;
        p.get(&[0, 0]).map_err(e)
    };
    let mut medians = [0f64; 2];
    let mut allocations = 0u64;
    let mut counted = 0u64;
    for (slot, batch) in [128usize, 1].into_iter().enumerate() {
        let x = data.view().slice_axis(0, 0, batch, 1).map_err(e)?;
        let mut run_medians = Vec::with_capacity(5);
        let mut times = vec![0f64; 200];
        for _ in 0..5 {
            for _ in 0..20 {
                std::hint::black_box(cycle(&x)?);
            }
            let before = alloc.allocations();
            for t in times.iter_mut() {
                let start = Instant::now();
                std::hint::black_box(cycle(&x)?);
                *t = start.elapsed().as_secs_f64();
            }
            allocations += alloc.allocations() - before;
            counted += times.len() as u64;
            times.sort_by(f64::total_cmp);
            run_medians.push(times[times.len() / 2] * 1e3);
        }
        run_medians.sort_by(f64::total_cmp);
        medians[slot] = run_medians[run_medians.len() / 2];
    }
    let ws_bytes = allocation_report()
        .get("BENCH_MLP")
        .map_or(0, |s| s.block_bytes);
    Ok((
        medians[0],
        medians[1],
        allocations as f64 / counted as f64,
        ws_bytes,
    ))
}

/// One cycle: every buffer allocated, written and read back; returns a checksum so the work
/// can't be optimized away.
fn touch_cycle(config: &WorkspaceConfig, mode: Mode) -> Result<f32, String> {
    let _scope = match mode {
        Mode::Workspace => Some(get_and_activate_workspace(config, "BENCH_CYCLE").map_err(err)?),
        Mode::Heap => None,
    };
    let mut sum = 0.0f32;
    let mut live: [Option<Buffer<f32>>; STEP_BUFFERS.len()] = Default::default();
    for (slot, (i, &len)) in live.iter_mut().zip(STEP_BUFFERS.iter().enumerate()) {
        let mut buf = Buffer::<f32>::uninitialized(len).map_err(err)?;
        buf.write().map_err(err)?.fill(i as f32);
        sum += buf.read().map_err(err)?.iter().step_by(61).sum::<f32>();
        *slot = Some(buf);
    }
    Ok(sum)
}

/// One cycle of allocations only.
fn alloc_cycle(config: &WorkspaceConfig, mode: Mode) -> Result<usize, String> {
    let _scope = match mode {
        Mode::Workspace => Some(get_and_activate_workspace(config, "BENCH_CYCLE").map_err(err)?),
        Mode::Heap => None,
    };
    let mut live: [Option<Buffer<f32>>; STEP_BUFFERS.len()] = Default::default();
    let mut n = 0;
    for (slot, &len) in live.iter_mut().zip(STEP_BUFFERS.iter()) {
        let buf = Buffer::<f32>::uninitialized(len).map_err(err)?;
        n += buf.len();
        *slot = Some(std::hint::black_box(buf));
    }
    Ok(n)
}

fn err(e: dl4rs::memory::WorkspaceError) -> String {
    e.to_string()
}

fn memory_mode(
    mode: Mode,
    cycles: usize,
    alloc: &CountingAllocator,
) -> Result<MemoryResult, String> {
    if cycles == 0 {
        return Err("--cycles must be at least 1".into());
    }
    let config = WorkspaceConfig::default();
    let mut times = vec![0f64; cycles];
    let mut checksum = 0.0f32;
    for _ in 0..20 {
        checksum += touch_cycle(&config, mode)?;
        alloc_cycle(&config, mode)?;
    }

    let before = alloc.thread_allocations();
    let start = Instant::now();
    for t in times.iter_mut() {
        let cycle_start = Instant::now();
        checksum += touch_cycle(&config, mode)?;
        *t = cycle_start.elapsed().as_secs_f64();
    }
    let total = start.elapsed().as_secs_f64();
    let heap_allocations = alloc.thread_allocations() - before;

    let alloc_start = Instant::now();
    let mut elements = 0;
    for _ in 0..cycles {
        elements += alloc_cycle(&config, mode)?;
    }
    let alloc_time = alloc_start.elapsed().as_secs_f64();
    std::hint::black_box((checksum, elements));

    times.sort_by(f64::total_cmp);
    let workspace_bytes = allocation_report()
        .get("BENCH_CYCLE")
        .map_or(0, |s| s.block_bytes);
    let (mlp_ms_batch128, mlp_ms_batch1, mlp_allocations_per_cycle, mlp_workspace_bytes) =
        super::thread_pool(None)
            .map_err(|e| e.to_string())?
            .install(|| mlp_cycles(mode, alloc))?;
    Ok(MemoryResult {
        mode,
        cycles,
        allocations_per_cycle: STEP_BUFFERS.len(),
        ns_per_allocation: alloc_time * 1e9 / (cycles * STEP_BUFFERS.len()) as f64,
        cycles_per_second: cycles as f64 / total,
        median_ms_per_cycle: times[cycles / 2] * 1e3,
        heap_allocations_per_cycle: heap_allocations as f64 / cycles as f64,
        peak_rss_bytes: peak_rss_bytes(),
        workspace_bytes,
        mlp_ms_batch128,
        mlp_ms_batch1,
        mlp_allocations_per_cycle,
        mlp_workspace_bytes,
    })
}
