//! # dl4rs-array: NdArray on workspaces
//!
//! ND4J's INDArray for Rust: [`NdArray<T>`] (f32, f64) with shape, strides and views, whose
//! storage lives in the thread's current workspace (or on the heap when none is active), the
//! copy-out operations of ND4J (`detach`, `leverage`, `leverage_to`, `leverage_or_detach`,
//! `migrate`, `dup`), and the operations a network needs ([`ArrayOps`], [`ops`]), each in an
//! allocating form and an `_into` form that writes into an existing array.
//!
//! Every element access is checked: an array used after its workspace cycle ended gives the
//! catalogued `WorkspaceError` (wrapped in [`ArrayError::Workspace`]) instead of data. Bad
//! shapes are errors that print both shapes; nothing here panics on user input. The math is
//! done by `dl4rs-kernels` on slices, so the same op gives bit-identical results on heap and
//! workspace storage, and in a warmed-up workspace an op makes no heap allocation (gemm's
//! packing scratch comes from the workspace too).
//!
//! Views interoperate with the `ndarray` crate: [`ArrayRead::as_ndarray`],
//! [`NdArray::from_ndarray`], `TryFrom<ndarray::Array>`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod array;
mod copy;
mod error;
pub mod ops;
pub mod random;
mod shape;
mod view_layout;

pub use array::{
    ArrayRead, ArrayView, ArrayViewMut, ArrayWrite, AsView, AsViewMut, DataType, NdArray,
};
pub use error::ArrayError;
pub use ops::{ArrayOps, BinaryOp, Reduction, Unary};
pub use shape::{Layout, MAX_DIMS, Shape};
