//! The crate's error type. Every message names the file (or the operation), what was
//! expected and what was found, so a bad data file can be fixed from the message alone.

use std::path::PathBuf;

use dl4rs_array::ArrayError;
use thiserror::Error;

/// Everything loading data or iterating over it can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file could not be opened or read (missing, unreadable, a directory, ...).
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A file (or byte buffer) whose content is not what its reader expects: wrong magic
    /// number, truncated or oversized data, corrupt gzip stream.
    #[error("{name}: {message}")]
    Format {
        /// The file name, or the name given to an in-memory buffer.
        name: String,
        /// What was expected and what was found.
        message: String,
    },
    /// Two inputs that must agree don't (an image file and its label file, the features and
    /// labels of a data set, the data sets being merged).
    #[error("{what}: {message}")]
    Mismatch {
        /// What was being combined.
        what: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A bad argument (batch size 0, split point past the end, ...).
    #[error("{op}: {message}")]
    Invalid {
        /// The operation.
        op: &'static str,
        /// What was expected and what was found.
        message: String,
    },
    /// An array operation failed (including workspace misuse, e.g. using a batch after its
    /// workspace cycle ended).
    #[error(transparent)]
    Array(#[from] ArrayError),
    /// A value in a text record file (CSV) that cannot be used: a malformed quote, a wrong
    /// number of columns, a non-numeric field, a label that is not a valid class. `line` and
    /// `column` are 1-based (`column` counts fields, not characters).
    #[error("{name}: line {line}, column {column}: {message}")]
    Parse {
        /// The file name, or the name given to an in-memory buffer.
        name: String,
        /// The 1-based line number.
        line: usize,
        /// The 1-based column (field) number.
        column: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// The prefetch thread of an asynchronous iterator failed: the source iterator panicked,
    /// or the thread could not be started or ended abnormally.
    #[error("{op}: {message}")]
    Prefetch {
        /// The operation.
        op: &'static str,
        /// What happened and what to do.
        message: String,
    },
}

pub(crate) fn invalid(op: &'static str, message: impl Into<String>) -> DataError {
    DataError::Invalid {
        op,
        message: message.into(),
    }
}

pub(crate) fn format_error(name: &str, message: impl Into<String>) -> DataError {
    DataError::Format {
        name: name.to_owned(),
        message: message.into(),
    }
}
