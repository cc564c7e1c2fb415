//! The training progress of `dl4rs train`: the progress bar (loss, examples/s, workspace
//! bytes) and the count of heap allocations per steady-state iteration, drawn by a listener,
//! and the memory report printed after training. Shared by the row/image and sequence jobs.

use std::time::Instant;

use dl4rs::memory::{CountingAllocator, allocation_report, human_bytes};
use dl4rs::nn::{IterationInfo, Model, NnError, TrainingListener};
use indicatif::{ProgressBar, ProgressStyle};

use super::CliError;

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
}

impl TrainingListener<f32> for ProgressListener {
    fn iteration_done(
        &mut self,
        _net: &dyn Model<f32>,
        info: &IterationInfo,
    ) -> Result<(), NnError> {
        let now = self.alloc.thread_allocations();
        // Only steady state: skip the first epoch (learning) and each epoch's first iteration
        // (the iterator reset between epochs is not part of an iteration).
        if let Some(prev) = self.after_last
            && info.iteration > self.iterations_per_epoch
            && info.iteration % self.iterations_per_epoch != 1
            && let Ok(mut counts) = self.per_iteration.lock()
        {
            counts.push(now - prev);
        }
        self.examples += info.batch_size;
        self.bar.inc(1);
        if info.iteration.is_multiple_of(10) {
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            self.bar.set_message(format!(
                "epoch {} loss {:.4} | {:.0} ex/s | workspaces {}",
                info.epoch + 1,
                info.score,
                self.examples as f64 / secs,
                human_bytes(allocation_report().total_block_bytes())
            ));
        }
        self.after_last = Some(self.alloc.thread_allocations());
        Ok(())
    }
}

impl ProgressListener {
    /// A listener drawing on `bar` and pushing the heap allocations of every steady-state
    /// iteration (after the first epoch, not an epoch's first) into `per_iteration`.
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
        }
    }
}

/// The progress bar of `iterations` training iterations.
pub(super) fn progress_bar(iterations: u64) -> Result<ProgressBar, CliError> {
    let bar = ProgressBar::new(iterations);
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} it [{elapsed_precise}] {msg}")
            .map_err(|e| CliError::Usage(e.to_string()))?,
    );
    Ok(bar)
}

/// Prints the workspace memory report and the heap allocations per steady-state iteration.
pub(super) fn print_memory(counts: &std::sync::Mutex<Vec<u64>>) {
    println!("== workspace memory report (training thread) ==");
    print!("{}", allocation_report());
    let mut per_iteration = counts.lock().map(|c| c.clone()).unwrap_or_default();
    let max = per_iteration.iter().copied().max();
    match median(&mut per_iteration) {
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

fn median(values: &mut [u64]) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}
