//! The network crate's error type. Lower layers' errors pass through; configuration, layer and
//! file problems say what was expected, what was found and what to do.

use thiserror::Error;

/// Everything network code can fail with.
#[derive(Debug, Error)]
pub enum NnError {
    /// An array operation failed (shapes, or workspace misuse).
    #[error(transparent)]
    Array(#[from] dl4rs_array::ArrayError),
    /// Workspace misuse.
    #[error(transparent)]
    Workspace(#[from] dl4rs_memory::WorkspaceError),
    /// Data loading or iteration failed.
    #[error(transparent)]
    Data(#[from] dl4rs_data::DataError),
    /// An evaluation rejected its input.
    #[error(transparent)]
    Eval(#[from] dl4rs_eval::EvalError),
    /// The network configuration is invalid.
    #[error("invalid network configuration: {0}")]
    Config(String),
    /// A layer was used wrongly (bad input shape, missing labels, ...).
    #[error("layer {index} ({kind}{name}): {message}")]
    Layer {
        /// Layer index.
        index: usize,
        /// Layer type.
        kind: &'static str,
        /// `" \"name\""` when the layer has a name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// A layer returned an array in the wrong workspace (DL4J's workspace validation).
    #[error(
        "{op}: array ({array_type:?}) workspace validation failed (layer {index}{name} - type \
         {kind}): expected {expected}, found {found}.\nFix: create the array with \
         LayerWorkspaceMgr::create/create_uninitialized({array_type:?}, ..), or move it there \
         with LayerWorkspaceMgr::leverage_to({array_type:?}, ..)."
    )]
    WorkspaceValidation {
        /// The operation ("Output of layer (inference)", "Backprop", ...).
        op: &'static str,
        /// The array type checked.
        array_type: crate::workspace_mgr::ArrayType,
        /// Layer index.
        index: usize,
        /// `" \"name\""` when named.
        name: String,
        /// Layer type.
        kind: &'static str,
        /// Where the array should be.
        expected: String,
        /// Where it is.
        found: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// The input does not fit the network.
    #[error("{0}")]
    Input(String),
}

impl NnError {
    pub(crate) fn config(message: impl Into<String>) -> NnError {
        NnError::Config(message.into())
    }
}
