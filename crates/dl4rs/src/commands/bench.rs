//! `dl4rs bench ...`: benchmarks that compare workspace modes side by side and report what the
//! workspace system is for: time per allocation and per cycle, heap allocations per
//! steady-state cycle, and peak memory. Each mode runs in its own child process so its peak
//! RSS is its own.

use std::process::Command;
use std::time::Instant;

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
    Ok(MemoryResult {
        mode,
        cycles,
        allocations_per_cycle: STEP_BUFFERS.len(),
        ns_per_allocation: alloc_time * 1e9 / (cycles * STEP_BUFFERS.len()) as f64,
        cycles_per_second: cycles as f64 / total,
        median_ms_per_cycle: times[cycles / 2] * 1e3,
        heap_allocations_per_cycle: heap_allocations as f64 / cycles as f64,
        peak_rss_bytes: peak_rss_bytes(),
        workspace_bytes: allocation_report().total_block_bytes(),
    })
}

/// VmHWM from /proc/self/status (0 where unavailable).
pub fn peak_rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
