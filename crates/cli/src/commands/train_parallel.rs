//! `dl4rs train --workers N`: the training loop through ParallelWrapper (N trainer threads,
//! each with a replica on its own workspaces and `cores / N` product threads), and the
//! per-thread workspace report printed while the trainers still exist.

use dl4rs::data::DataSetIterator;
use dl4rs::memory::human_bytes;
use dl4rs::nn::Model;
use dl4rs::parallel::ParallelWrapper;

use super::CliError;

/// Trains `net` for `epochs` passes over `iterator` with `workers` trainers; returns the
/// trained model.
pub fn fit(
    net: Box<dyn Model<f32>>,
    iterator: &mut Box<dyn DataSetIterator<f32> + Send>,
    workers: usize,
    epochs: usize,
) -> Result<Box<dyn Model<f32>>, CliError> {
    let mut wrapper = ParallelWrapper::builder(net)
        .workers(workers)
        .build()
        .map_err(|e| CliError::Usage(format!("--workers {workers}: {e}")))?;
    println!(
        "ParallelWrapper: {workers} trainer threads, {} product thread(s) each, averaging every round",
        (rayon::current_num_threads() / workers).max(1)
    );
    for _ in 0..epochs {
        wrapper
            .fit(iterator)
            .map_err(|e| CliError::Usage(e.to_string()))?;
    }
    print_thread_workspaces();
    wrapper
        .into_model()
        .map_err(|e| CliError::Usage(e.to_string()))
}

/// Every thread's workspaces (the trainers' included), one line per thread.
fn print_thread_workspaces() {
    let mut threads: Vec<(String, usize, u64, u64)> = Vec::new();
    for w in dl4rs::memory::process_workspaces() {
        let name = w.thread.to_string();
        let at = match threads.iter().position(|t| t.0 == name) {
            Some(i) => i,
            None => {
                threads.push((name, 0, 0, 0));
                threads.len() - 1
            }
        };
        threads[at].1 += 1;
        threads[at].2 += w.snapshot.block_bytes;
        threads[at].3 += w.snapshot.spilled_bytes;
    }
    threads.sort();
    println!("== workspaces per thread (all threads, at the end of training) ==");
    for (name, count, block, spilled) in threads {
        println!(
            "{name:<24} {count:>3} workspaces, blocks {:>11}, spilled {:>11}",
            human_bytes(block as usize),
            human_bytes(spilled as usize)
        );
    }
}
