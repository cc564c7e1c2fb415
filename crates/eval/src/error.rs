//! The crate's error type. Every message names the operation, what it expected and what it
//! found, so a bad call site can be fixed from the message alone. Errors are only built on the
//! failure path: the checks themselves allocate nothing.

use dl4rs_array::ArrayError;
use thiserror::Error;

/// Everything an evaluation can fail with.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EvalError {
    /// Labels and predictions have different shapes.
    #[error(
        "{op}: labels have shape {labels:?} but predictions have shape {predictions:?}: expected equal shapes"
    )]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// Shape of the labels.
        labels: Vec<usize>,
        /// Shape of the predictions.
        predictions: Vec<usize>,
    },
    /// An input is not a matrix.
    #[error("{op}: {what} have shape {shape:?} (rank {rank}): expected rank 2, [batch, {n}]")]
    Rank {
        /// The operation.
        op: &'static str,
        /// Which input ("labels", "predictions").
        what: &'static str,
        /// Its shape.
        shape: Vec<usize>,
        /// Its rank.
        rank: usize,
        /// What the column axis is called for this evaluation ("classes", "outputs", ...).
        n: &'static str,
    },
    /// The inputs have a different number of columns than the evaluation was sized for.
    #[error(
        "{op}: inputs have shape {shape:?} ({found} {n}) but this evaluation has {expected} {n}: expected [batch, {expected}]"
    )]
    ColumnCount {
        /// The operation.
        op: &'static str,
        /// What a column is ("classes", "columns", "outputs").
        n: &'static str,
        /// The evaluation's column count.
        expected: usize,
        /// The inputs' column count.
        found: usize,
        /// The inputs' shape.
        shape: Vec<usize>,
    },
    /// The mask fits neither per-example nor per-output masking.
    #[error(
        "{op}: mask has shape {mask:?} but labels have shape {labels:?}: expected [{batch}] or [{batch}, 1] (per example) or [{batch}, {n}] (per output)"
    )]
    MaskShape {
        /// The operation.
        op: &'static str,
        /// The mask's shape.
        mask: Vec<usize>,
        /// The labels' shape.
        labels: Vec<usize>,
        /// Batch size.
        batch: usize,
        /// Column count.
        n: usize,
    },
    /// Two evaluations that cannot be merged.
    #[error("{op}: {message}")]
    Merge {
        /// The operation.
        op: &'static str,
        /// What differs, on both sides.
        message: String,
    },
    /// A bad value or argument (NaN score, class index out of range, bad configuration).
    #[error("{op}: {message}")]
    Invalid {
        /// The operation.
        op: &'static str,
        /// What was expected and what was found.
        message: String,
    },
    /// Reading an input array failed (for example its workspace cycle has ended).
    #[error("{op}: cannot read {what}: {source}")]
    Array {
        /// The operation.
        op: &'static str,
        /// Which input.
        what: &'static str,
        /// The array error.
        #[source]
        source: Box<ArrayError>,
    },
}
