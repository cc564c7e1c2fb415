//! Array operations. Each has an allocating form (the result goes to the current workspace, or
//! the heap when none is active) and an `_into` form that writes into an existing contiguous
//! array, for hot paths that must not allocate. The arithmetic is `dl4rs-kernels`; this module
//! checks shapes (errors print both), borrows the data through checked guards, and hands
//! slices (and gemm scratch taken from the current workspace) to the kernels. Results never
//! depend on where the data lives: heap and workspace give bit-identical output.
//!
//! Methods on any array or view come from the [`ArrayOps`] trait.

mod elementwise;
mod layer;
mod linalg;
mod recurrent;
mod reduce;
mod structure;
mod threads;

/// The updaters' arithmetic on a network's flat parameter, gradient and state slices (one
/// vectorized pass each; see `dl4rs_kernels::update`).
pub use dl4rs_kernels::update;
pub use dl4rs_kernels::{BinaryOp, Conv2dGeometry, GradFrom, PoolOp, Unary};
pub use elementwise::{
    binary, binary_assign, binary_into, scalar, scalar_assign, unary, unary_assign, unary_into,
};
pub use layer::{
    bias_act_into, col2im_batch_into, col2im_into, conv2d_forward_into, conv2d_input_grad_into,
    conv2d_weight_grad_into, im2col_batch_into, im2col_into, pool2d_backward_into, pool2d_into,
    softmax_backward_into, softmax_last_axis_into, to_channel_major_into, unary_grad_into,
};
pub use linalg::{PackedMatrix, gemm_bias_act_into, gemm_into, gemm_packed_into, matmul};
pub use recurrent::{
    GruCacheLayout, LstmCacheLayout, gru_step_backward_into, gru_step_forward_into,
    lstm_step_backward_into, lstm_step_forward_into, rnn_step_backward_into, rnn_step_forward_into,
};
pub use reduce::{
    Reduction, argmax_axis, log_softmax, reduce_axis, reduce_axis_into, softmax, softmax_into,
    sum_all,
};
pub use structure::{concat, gather_rows, gather_rows_into, stack};
pub use threads::{ProductThreads, product_thread_count, product_threads, set_product_threads};

use crate::array::{ArrayView, AsView, AsViewMut, DataType, NdArray};
use crate::error::{ArrayError, invalid};
use crate::shape::Shape;

/// Runs `f` on the view's elements as one contiguous row-major slice: borrowed when the view
/// is contiguous, else copied into a temporary in the current workspace (or heap).
pub(crate) fn with_contiguous<T: DataType, R>(
    view: &ArrayView<'_, T>,
    f: impl FnOnce(&[T]) -> Result<R, ArrayError>,
) -> Result<R, ArrayError> {
    let n = view.layout.shape().len();
    if view.layout.is_c_contiguous() {
        let read = view.read()?;
        let (data, layout) = read.raw();
        f(&data[layout.offset()..layout.offset() + n])
    } else {
        let tmp = view.dup()?;
        let read = tmp.read()?;
        let (data, _) = read.raw();
        f(&data[..n])
    }
}

/// Checks that `out` is contiguous with `shape`, then runs `f` on its elements.
pub(crate) fn with_output<T: DataType, R>(
    op: &'static str,
    out: &mut impl AsViewMut<T>,
    shape: &Shape,
    f: impl FnOnce(&mut [T]) -> Result<R, ArrayError>,
) -> Result<R, ArrayError> {
    let out = out.view_mut();
    if out.layout.shape() != shape {
        return Err(ArrayError::ShapeMismatch {
            op,
            lhs: Box::new(*shape),
            rhs: Box::new(*out.layout.shape()),
            expected: "the output must have the result's shape",
        });
    }
    if !out.layout.is_c_contiguous() {
        return Err(invalid(
            op,
            "the output array must be contiguous (row-major); pass a fresh array or a dup()",
        ));
    }
    let offset = out.layout.offset();
    let n = shape.len();
    let mut w = out.buf.write()?;
    f(&mut w[offset..offset + n])
}

/// Array operations as methods, for arrays and views alike.
///
/// ```
/// use dl4rs_array::{NdArray, ArrayOps, Reduction};
///
/// let x = NdArray::<f64>::from_slice(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
/// let b = NdArray::<f64>::from_slice(&[3], &[10.0, 20.0, 30.0]).unwrap();
/// let y = x.add(&b).unwrap().relu().unwrap();          // row broadcast
/// assert_eq!(y.reduce(Reduction::Sum, 1).unwrap().to_vec().unwrap(), vec![66.0, 75.0]);
/// let p = x.softmax(1).unwrap();
/// assert!((p.to_vec().unwrap()[..3].iter().sum::<f64>() - 1.0).abs() < 1e-12);
/// ```
pub trait ArrayOps<T: DataType>: AsView<T> + Sized {
    /// Matrix product of two 2-D arrays.
    fn matmul(&self, rhs: &impl AsView<T>) -> Result<NdArray<T>, ArrayError> {
        matmul(self, rhs)
    }
    /// `self + rhs` with broadcasting.
    fn add(&self, rhs: &impl AsView<T>) -> Result<NdArray<T>, ArrayError> {
        binary(BinaryOp::Add, self, rhs)
    }
    /// `self - rhs` with broadcasting.
    fn sub(&self, rhs: &impl AsView<T>) -> Result<NdArray<T>, ArrayError> {
        binary(BinaryOp::Sub, self, rhs)
    }
    /// `self * rhs` (elementwise) with broadcasting.
    fn mul(&self, rhs: &impl AsView<T>) -> Result<NdArray<T>, ArrayError> {
        binary(BinaryOp::Mul, self, rhs)
    }
    /// `self / rhs` (elementwise) with broadcasting.
    fn div(&self, rhs: &impl AsView<T>) -> Result<NdArray<T>, ArrayError> {
        binary(BinaryOp::Div, self, rhs)
    }
    /// `self op s` for a scalar.
    fn scalar_op(&self, op: BinaryOp, s: T) -> Result<NdArray<T>, ArrayError> {
        scalar(op, self, s)
    }
    /// A unary map.
    fn map(&self, op: Unary<T>) -> Result<NdArray<T>, ArrayError> {
        unary(op, self)
    }
    /// `e^x`.
    fn exp(&self) -> Result<NdArray<T>, ArrayError> {
        unary(Unary::Exp, self)
    }
    /// `ln x`.
    fn ln(&self) -> Result<NdArray<T>, ArrayError> {
        unary(Unary::Ln, self)
    }
    /// `tanh x`.
    fn tanh(&self) -> Result<NdArray<T>, ArrayError> {
        unary(Unary::Tanh, self)
    }
    /// Logistic sigmoid.
    fn sigmoid(&self) -> Result<NdArray<T>, ArrayError> {
        unary(Unary::Sigmoid, self)
    }
    /// `max(x, 0)`.
    fn relu(&self) -> Result<NdArray<T>, ArrayError> {
        unary(Unary::Relu, self)
    }
    /// Sum (or mean, max) along `axis`, removing it.
    fn reduce(&self, how: Reduction, axis: usize) -> Result<NdArray<T>, ArrayError> {
        reduce_axis(how, self, axis)
    }
    /// Index of the maximum along `axis` (as values of `T`, as ND4J).
    fn argmax(&self, axis: usize) -> Result<NdArray<T>, ArrayError> {
        argmax_axis(self, axis)
    }
    /// Softmax along `axis`.
    fn softmax(&self, axis: usize) -> Result<NdArray<T>, ArrayError> {
        softmax(self, axis)
    }
    /// Log-softmax along `axis`.
    fn log_softmax(&self, axis: usize) -> Result<NdArray<T>, ArrayError> {
        log_softmax(self, axis)
    }
    /// The sum of all elements.
    fn sum(&self) -> Result<T, ArrayError> {
        sum_all(self)
    }
    /// The rows `indices` of a 2-D (or higher) array, stacked (a mini-batch).
    fn gather_rows(&self, indices: &[usize]) -> Result<NdArray<T>, ArrayError> {
        gather_rows(self, indices)
    }
}

impl<T: DataType, A: AsView<T>> ArrayOps<T> for A {}
