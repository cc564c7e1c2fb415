//! The `dl4rs` command-line program. Each subcommand lives in `commands/`; this file only
//! parses arguments, installs the counting allocator (so commands can report heap
//! allocations), and turns errors into one line on stderr with exit code 2.

#![forbid(unsafe_code)]

mod commands;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOC: dl4rs::memory::CountingAllocator = dl4rs::memory::CountingAllocator::new();

/// dl4rs: deep learning on workspaces.
#[derive(Parser)]
#[command(name = "dl4rs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the default network on Fashion-MNIST and report accuracy and memory (the main job).
    Train(Box<commands::train::TrainArgs>),
    /// Evaluate a saved model on the test split.
    Evaluate(commands::inspect::EvaluateArgs),
    /// Predict classes for the examples in a CSV file.
    Predict(commands::inspect::PredictArgs),
    /// Print a saved model's layer table.
    Summary(commands::inspect::SummaryArgs),
    /// Draw a stats file (from `train --report` or a StatsListener) as a self-contained HTML report.
    Report(commands::report::ReportArgs),
    /// Benchmarks, comparing workspace modes.
    Bench {
        #[command(subcommand)]
        which: commands::bench::Which,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => commands::train::run(*args, &ALLOC),
        Command::Evaluate(args) => commands::inspect::evaluate(args),
        Command::Predict(args) => commands::inspect::predict(args),
        Command::Summary(args) => commands::inspect::summary(args),
        Command::Report(args) => commands::report::run(args),
        Command::Bench { which } => commands::bench::run(which, &ALLOC),
    };
    if let Err(err) = result {
        eprintln!("dl4rs: {err}");
        std::process::exit(2);
    }
}
