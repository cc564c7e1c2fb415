//! One module per subcommand of the `dl4rs` program, and the error type they share: every
//! failure becomes one line on stderr and exit code 2.

pub mod baseline;
pub mod bench;
pub mod compare_bench;
pub mod config;
pub mod conv_bench;
pub mod dist_bench;
pub mod distributed;
pub mod graph_bench;
pub mod inspect;
pub mod parallel_bench;
pub mod process;
pub mod progress;
pub mod report;
pub mod rnn_bench;
pub mod rnn_model;
pub mod sequence;
pub mod sequence_predict;
pub mod soak;
pub mod stats_bench;
pub mod train;
pub mod train_parallel;
pub mod workloads;

use thiserror::Error;

/// What a command can fail with.
#[derive(Debug, Error)]
pub enum CliError {
    /// Bad arguments or inputs, already phrased for the user.
    #[error("{0}")]
    Usage(String),
    /// From the network crate.
    #[error(transparent)]
    Nn(#[from] dl4rs::nn::NnError),
    /// From the data crate.
    #[error(transparent)]
    Data(#[from] dl4rs::data::DataError),
    /// From the array crate.
    #[error(transparent)]
    Array(#[from] dl4rs::array::ArrayError),
    /// From the memory crate.
    #[error(transparent)]
    Workspace(#[from] dl4rs::memory::WorkspaceError),
    /// From the evaluation crate.
    #[error(transparent)]
    Eval(#[from] dl4rs::eval::EvalError),
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError::Usage(s)
    }
}

/// A rayon pool with `threads` threads (all cores by default). Commands run inside it, so the
/// matrix products' tasks are pool-local and allocation-free.
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, CliError> {
    let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("dl4rs-pool-{i}"));
    if let Some(n) = threads {
        if n == 0 {
            return Err(CliError::Usage("--threads must be at least 1".into()));
        }
        builder = builder.num_threads(n);
    }
    builder
        .build()
        .map_err(|e| CliError::Usage(format!("can't start the thread pool: {e}")))
}
