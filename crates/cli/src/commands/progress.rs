//! What `dl4rs train` prints around training, for every kind of data: the progress bar, drawn
//! by [`ProgressListener`], which also counts the heap allocations of each steady-state
//! iteration, and, after training, the workspace memory report and those counts.

use std::time::Instant;

use dl4rs::memory::{CountingAllocator, allocation_report, human_bytes};
use dl4rs::nn::{IterationInfo, Model, NnError, TrainingListener};
use indicatif::{ProgressBar, ProgressStyle};

use super::CliError;

/// The progress bar of `iterations` training iterations.
pub(super) fn progress_bar(iterations: u64) -> Result<ProgressBar, CliError> {
    let bar = ProgressBar::new(iterations);
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} it [{elapsed_precise}] {msg}")
            .map_err(|e| CliError::Usage(e.to_string()))?,
    );
    Ok(bar)
}

/// Prints the workspace memory report and the heap allocations per steady-state iteration
/// (per ParallelWrapper round on all threads, when `rounds`).
pub(super) fn print_memory(counts: &std::sync::Mutex<Vec<u64>>, rounds: bool) {
    println!("== workspace memory report (training thread) ==");
    print!("{}", allocation_report());
    let mut per_iteration = counts.lock().map(|c| c.clone()).unwrap_or_default();
    let max = per_iteration.iter().copied().max();
    match median(&mut per_iteration) {
        Some(m) if rounds => println!(
            "heap allocations per steady-state round, all threads: {m} (median; max {} over {} rounds after the first epoch)",
            max.unwrap_or(0),
            per_iteration.len()
        ),
        Some(m) => println!(
            "heap allocations per steady-state training iteration: {m} (median; max {} over {} iterations after the first epoch)",
            max.unwrap_or(0),
            per_iteration.len()
        ),
        None => println!(
            "heap allocations per steady-state training iteration: n/a (train for at least 2 epochs)"
        ),
    }
}

/// Drives the progress bar and measures heap allocations between iterations (the listener's
/// own drawing is excluded: it counts from the end of its previous call).
pub(super) struct ProgressListener {
    bar: ProgressBar,
    alloc: &'static CountingAllocator,
    after_last: Option<u64>,
    per_iteration: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    iterations_per_epoch: u64,
    started: Instant,
    examples: usize,
    /// Count every thread's allocations (ParallelWrapper rounds), not only this thread's.
    all_threads: bool,
    /// Calls so far: the listener's own count of batches (or rounds), since the network's
    /// iteration counter moves once per segment under truncated BPTT.
    calls: u64,
}

impl TrainingListener<f32> for ProgressListener {
    fn iteration_done(
        &mut self,
        _net: &dyn Model<f32>,
        info: &IterationInfo,
    ) -> Result<(), NnError> {
        let count = |a: &CountingAllocator| {
            if self.all_threads {
                a.allocations()
            } else {
                a.thread_allocations()
            }
        };
        let now = count(self.alloc);
        self.calls += 1;
        // Only steady state: skip the first epoch (learning) and each epoch's first iteration
        // (the iterator reset between epochs is not part of an iteration).
        if let Some(prev) = self.after_last
            && self.calls > self.iterations_per_epoch
            && self.calls % self.iterations_per_epoch != 1
            && let Ok(mut counts) = self.per_iteration.lock()
        {
            counts.push(now - prev);
        }
        self.examples += info.batch_size;
        self.bar.inc(1);
        if self.calls.is_multiple_of(10) {
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            self.bar.set_message(format!(
                "epoch {} loss {:.4} | {:.0} ex/s | workspaces {}",
                info.epoch + 1,
                info.score,
                self.examples as f64 / secs,
                human_bytes(allocation_report().total_block_bytes())
            ));
        }
        self.after_last = Some(count(self.alloc));
        Ok(())
    }
}

fn median(values: &mut [u64]) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

impl ProgressListener {
    /// A listener drawing on `bar` and pushing the calling thread's heap allocations of every
    /// steady-state iteration (after the first epoch, not an epoch's first) into
    /// `per_iteration`.
    pub(super) fn new(
        bar: ProgressBar,
        alloc: &'static CountingAllocator,
        per_iteration: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
        iterations_per_epoch: u64,
    ) -> Self {
        ProgressListener {
            bar,
            alloc,
            after_last: None,
            per_iteration,
            iterations_per_epoch,
            started: Instant::now(),
            examples: 0,
            all_threads: false,
            calls: 0,
        }
    }

    /// Counts every thread's allocations (ParallelWrapper rounds) when `all`.
    pub(super) fn all_threads(mut self, all: bool) -> Self {
        self.all_threads = all;
        self
    }
}
