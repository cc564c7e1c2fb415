//! The `dl4rs` command-line program. Each subcommand lives in `commands/`; this file only
//! parses arguments, installs the counting allocator (so every command can report heap
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
    /// Benchmarks, comparing workspace modes.
    Bench {
        #[command(subcommand)]
        which: commands::bench::Which,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench { which } => commands::bench::run(which, &ALLOC),
    };
    if let Err(err) = result {
        eprintln!("dl4rs: {err}");
        std::process::exit(2);
    }
}
