//! The crate's error type: configuration mistakes caught by `build()`, a trainer's failure
//! (an error or a panic, naming the worker and its thread), and the lower crates' errors.

use thiserror::Error;

use dl4rs_data::DataError;
use dl4rs_nn::NnError;

/// What ParallelWrapper and ParallelInference fail with.
#[derive(Debug, Error)]
pub enum ParallelError {
    /// The builder was given settings that cannot work.
    #[error("invalid {what} configuration: {message}")]
    Config {
        /// `"ParallelWrapper"` or `"ParallelInference"`.
        what: &'static str,
        /// What was expected, what was found, what to do.
        message: String,
    },
    /// A worker returned an error: every worker was stopped and joined.
    #[error(
        "worker {worker} (thread \"{thread}\") failed: {source}; every worker thread was \
         stopped and joined (the model keeps the state of the last completed fit)"
    )]
    Worker {
        /// The worker's index.
        worker: usize,
        /// Its thread's name.
        thread: String,
        /// The error.
        #[source]
        source: Box<NnError>,
    },
    /// A worker panicked: every worker was stopped and joined.
    #[error(
        "worker {worker} (thread \"{thread}\") panicked: {message}; every worker thread was \
         stopped and joined (the model keeps the state of the last completed fit)"
    )]
    Panic {
        /// The worker's index.
        worker: usize,
        /// Its thread's name.
        thread: String,
        /// The panic message.
        message: String,
    },
    /// A worker thread could not be started, or stopped without saying why.
    #[error("{0}")]
    Thread(String),
    /// A network operation on the calling thread failed (replicas, listeners).
    #[error(transparent)]
    Nn(Box<NnError>),
    /// The data iterator failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// An inference request failed on its worker (the message is shared by every request of
    /// the batch it was in).
    #[error("inference worker {worker} (thread \"{thread}\"): {message}")]
    Inference {
        /// The worker's index.
        worker: usize,
        /// Its thread's name.
        thread: String,
        /// What went wrong.
        message: String,
    },
}

impl From<NnError> for ParallelError {
    fn from(e: NnError) -> Self {
        ParallelError::Nn(Box::new(e))
    }
}

impl ParallelError {
    pub(crate) fn config(what: &'static str, message: impl Into<String>) -> ParallelError {
        ParallelError::Config {
            what,
            message: message.into(),
        }
    }
}

/// The text of a panic payload (`&str` or `String`; anything else is named as such).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}
