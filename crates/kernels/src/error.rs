//! The one error type of the crate. Every variant carries what was expected and what was
//! found, as plain numbers and static strings, so that building an error never allocates and
//! the message can be shown to a user as is.

use thiserror::Error;

/// Why a kernel refused its arguments. Kernels check everything up front and either do the
/// whole job or nothing: on `Err` no output element has been written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KernelError {
    /// The inner dimensions of a product disagree.
    #[error("{op}: A is {a_rows}x{a_cols} but B is {b_rows}x{b_cols}: inner dimensions must match")]
    InnerDimension {
        /// The kernel that refused.
        op: &'static str,
        /// Rows of A (as viewed, after any transpose).
        a_rows: usize,
        /// Columns of A.
        a_cols: usize,
        /// Rows of B.
        b_rows: usize,
        /// Columns of B.
        b_cols: usize,
    },
    /// The output matrix has the wrong shape for the product.
    #[error("{op}: C is {c_rows}x{c_cols} but the product is {rows}x{cols}")]
    OutputShape {
        /// The kernel that refused.
        op: &'static str,
        /// Rows of the product.
        rows: usize,
        /// Columns of the product.
        cols: usize,
        /// Rows of the C given.
        c_rows: usize,
        /// Columns of the C given.
        c_cols: usize,
    },
    /// The caller-provided scratch is shorter than the matching `*_scratch_len` query says.
    #[error("{op}: scratch has {found} elements but {needed} are needed (ask {op}_scratch_len)")]
    ScratchTooSmall {
        /// The kernel that refused.
        op: &'static str,
        /// Elements needed.
        needed: usize,
        /// Elements given.
        found: usize,
    },
    /// A slice argument has the wrong length.
    #[error("{op}: {what} has length {found} but {expected} was expected")]
    Length {
        /// The kernel that refused.
        op: &'static str,
        /// Which argument.
        what: &'static str,
        /// The length the other arguments imply.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// A matrix view would reach past the end of its slice.
    #[error(
        "matrix view: {rows}x{cols} with strides ({row_stride}, {col_stride}) needs {needed} elements but the slice has {found}"
    )]
    ViewOutOfBounds {
        /// Rows of the view.
        rows: usize,
        /// Columns of the view.
        cols: usize,
        /// Element stride between rows.
        row_stride: usize,
        /// Element stride between columns.
        col_stride: usize,
        /// Elements the view spans (largest index + 1).
        needed: usize,
        /// Length of the slice.
        found: usize,
    },
    /// A mutable matrix view whose strides make two elements share one memory location.
    #[error(
        "matrix view: {rows}x{cols} with strides ({row_stride}, {col_stride}) makes elements overlap, which a mutable view must not"
    )]
    OverlappingView {
        /// Rows of the view.
        rows: usize,
        /// Columns of the view.
        cols: usize,
        /// Element stride between rows.
        row_stride: usize,
        /// Element stride between columns.
        col_stride: usize,
    },
    /// A size computation overflowed `usize`.
    #[error("{op}: size overflows usize")]
    Overflow {
        /// The kernel that refused.
        op: &'static str,
    },
    /// An argument is outside its domain (an empty slice for `max`, a zero stride, ...).
    #[error("{op}: {what}")]
    InvalidArgument {
        /// The kernel that refused.
        op: &'static str,
        /// What is wrong, phrased as expectation.
        what: &'static str,
    },
    /// [`set_dispatch`](crate::set_dispatch) asked for an instruction set this CPU lacks.
    #[error("dispatch: {requested} requested but this CPU lacks {missing}")]
    UnsupportedDispatch {
        /// The path asked for.
        requested: &'static str,
        /// The missing CPU feature.
        missing: &'static str,
    },
}
