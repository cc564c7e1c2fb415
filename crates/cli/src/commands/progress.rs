//! What `dl4rs train` prints around training on sequences (train.rs has its own inline copy for
//! the row and image jobs, which other branches edit; to be shared once they are merged): the
//! progress bar (drawn by `train::ProgressListener`) and, after training, the workspace memory
//! report and the heap allocations per steady-state iteration the listener counted.

use dl4rs::memory::allocation_report;
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

fn median(values: &mut [u64]) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}
