//! `dl4rs bench soak`: the long run of issue 15. 10^6 workspace cycles of a mixed workload and
//! 10^5 training iterations fed by an `AsyncDataSetIterator`, with an evaluation after every
//! round; resident memory (/proc/self/statm) after warm-up must stay within 2 %. The driver is
//! `soak_driver.rs`, shared with the CI-sized test `crates/nn/tests/soak.rs`.

use dl4rs::array as dl_array;
use dl4rs::data as dl_data;
use dl4rs::memory as dl_memory;
use dl4rs::memory::CountingAllocator;
use dl4rs::nn as dl_nn;

include!("soak_driver.rs");

/// Arguments of `dl4rs bench soak`.
#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// Workspace cycles of the mixed workload, in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub cycles: u64,
    /// Training iterations (batches of 32), in all.
    #[arg(long, default_value_t = 100_000)]
    pub iterations: u64,
    /// Rounds the work is split into (an evaluation and an RSS sample after each).
    #[arg(long, default_value_t = 100)]
    pub rounds: u32,
    /// Rounds of warm-up before the baseline RSS sample.
    #[arg(long, default_value_t = 10)]
    pub warmup_rounds: u32,
    /// Allowed RSS change after warm-up, in percent of the baseline.
    #[arg(long, default_value_t = 2.0)]
    pub tolerance_percent: f64,
    /// Threads of the matrix products' pool.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print only the summary, not a line per round.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs the soak; an error (exit code 2) when RSS leaves the tolerance after warm-up.
pub fn run(args: &SoakArgs, alloc: &'static CountingAllocator) -> Result<(), super::CliError> {
    use super::CliError;
    if !(args.tolerance_percent.is_finite() && args.tolerance_percent >= 0.0) {
        return Err(CliError::Usage(format!(
            "--tolerance-percent must be a number >= 0, found {}",
            args.tolerance_percent
        )));
    }
    // The soak itself runs in a child process with the allocator settings that make RSS the
    // heap's high-water mark (SOAK_MALLOC_ENV); this process waits for it.
    if std::env::var_os("DL4RS_SOAK_CHILD").is_none() {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::Usage(format!("can't find the dl4rs binary: {e}")))?;
        let status = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .envs(SOAK_MALLOC_ENV)
            .env("DL4RS_SOAK_CHILD", "1")
            .status()
            .map_err(|e| CliError::Usage(format!("can't start the soak process: {e}")))?;
        return if status.success() {
            Ok(())
        } else {
            Err(CliError::Usage(format!(
                "the soak process failed ({status})"
            )))
        };
    }
    let config = SoakConfig {
        cycles: args.cycles,
        iterations: args.iterations,
        rounds: args.rounds,
        warmup_rounds: args.warmup_rounds,
        tolerance: args.tolerance_percent / 100.0,
    };
    let quiet = args.quiet;
    let mut last_allocations = alloc.allocations();
    let report = super::thread_pool(Some(args.threads))?.install(|| {
        soak(&config, Some(&|| alloc.live_bytes()), &mut |s| {
            let now = alloc.allocations();
            if !quiet {
                println!(
                    "round {:>4}: {:>9} cycles {:>8} iterations  RSS {:>8} KiB  live heap {:>7} KiB  \
                     accuracy {:.3}  heap allocations {:>8}  {:>7.1} s",
                    s.round,
                    s.cycles,
                    s.iterations,
                    s.rss_bytes / 1024,
                    s.live_heap_bytes / 1024,
                    s.accuracy,
                    now - last_allocations,
                    s.seconds
                );
            }
            last_allocations = now;
        })
    })?;
    print!("{}", report.summary());
    if report.within_tolerance() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "resident memory drifted {:+.3} % from the baseline after warm-up (allowed ±{} %)",
            100.0 * report.max_drift(),
            args.tolerance_percent
        )))
    }
}
