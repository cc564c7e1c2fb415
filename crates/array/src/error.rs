//! The array crate's error type: workspace misuse and kernel errors pass through unchanged;
//! shape problems print both shapes and what the operation needed.

use thiserror::Error;

use crate::shape::Shape;

/// Everything an array operation can fail with.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ArrayError {
    /// Workspace misuse (stale array, closed workspace, ...), see docs/workspace-errors.md.
    #[error(transparent)]
    Workspace(#[from] dl4rs_memory::WorkspaceError),
    /// A kernel rejected its arguments.
    #[error(transparent)]
    Kernel(#[from] dl4rs_kernels::KernelError),
    /// Two shapes that must agree don't.
    #[error("{op}: shapes {lhs} and {rhs} don't fit: {expected}")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// First operand's shape.
        lhs: Box<Shape>,
        /// Second operand's shape.
        rhs: Box<Shape>,
        /// What the operation expects.
        expected: &'static str,
    },
    /// A bad argument (axis, index, rank, size).
    #[error("{op}: {message}")]
    Invalid {
        /// The operation.
        op: &'static str,
        /// What was expected and what was found.
        message: String,
    },
}

pub(crate) fn invalid(op: &'static str, message: impl Into<String>) -> ArrayError {
    ArrayError::Invalid {
        op,
        message: message.into(),
    }
}
