//! Reductions along an axis (sum, mean, max, argmax), whole-array sums, and softmax /
//! log-softmax along an axis. An axis reduction is seen as `outer x n x inner` blocks so the
//! kernels' row and column reductions serve every axis.

use dl4rs_kernels as k;

use super::{with_contiguous, with_output};
use crate::array::{AsView, AsViewMut, DataType, NdArray, Place};
use crate::error::ArrayError;
use crate::shape::Shape;

/// What an axis reduction computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum (NaN propagates).
    Max,
}

fn split(shape: &Shape, axis: usize) -> (usize, usize, usize) {
    let dims = shape.dims();
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

/// Reduces `a` along `axis` into `out` (contiguous, `a`'s shape without `axis`).
pub fn reduce_axis_into<T: DataType>(
    how: Reduction,
    a: &impl AsView<T>,
    axis: usize,
    out: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    let a = a.view();
    a.layout.check_axis("reduce", axis)?;
    let shape = a.layout.shape().without_axis(axis);
    let (outer, n, inner) = split(a.layout.shape(), axis);
    with_contiguous(&a, |x| {
        with_output("reduce", out, &shape, |o| {
            if inner == 1 {
                match how {
                    Reduction::Max => k::max_rows(x, outer, n, o)?,
                    _ => k::sum_rows(x, outer, n, o)?,
                }
            } else {
                for (block, dst) in x.chunks_exact(n * inner).zip(o.chunks_exact_mut(inner)) {
                    match how {
                        Reduction::Max => k::max_cols(block, n, inner, dst)?,
                        _ => k::sum_cols(block, n, inner, dst)?,
                    }
                }
            }
            if how == Reduction::Mean {
                k::scale(T::ONE / T::from_f64(n as f64), o);
            }
            Ok(())
        })
    })
}

/// Reduces `a` along `axis` (the axis is removed), in the current workspace (or heap).
pub fn reduce_axis<T: DataType>(
    how: Reduction,
    a: &impl AsView<T>,
    axis: usize,
) -> Result<NdArray<T>, ArrayError> {
    let v = a.view();
    v.layout.check_axis("reduce", axis)?;
    let mut out = NdArray::alloc(v.layout.shape().without_axis(axis), false, Place::Current)?;
    reduce_axis_into(how, a, axis, &mut out)?;
    Ok(out)
}

/// The index of the first maximum along `axis`, stored as `T` (as ND4J does). A NaN counts as
/// the maximum.
pub fn argmax_axis<T: DataType>(a: &impl AsView<T>, axis: usize) -> Result<NdArray<T>, ArrayError> {
    let a = a.view();
    a.layout.check_axis("argmax", axis)?;
    let shape = a.layout.shape().without_axis(axis);
    let (outer, n, inner) = split(a.layout.shape(), axis);
    let mut out = NdArray::alloc(shape, false, Place::Current)?;
    with_contiguous(&a, |x| {
        with_output("argmax", &mut out, &shape, |o| {
            for b in 0..outer {
                for i in 0..inner {
                    let mut best = 0;
                    for j in 0..n {
                        let v = x[(b * n + j) * inner + i];
                        let m = x[(b * n + best) * inner + i];
                        if v.is_nan() && !m.is_nan() || v > m {
                            best = j;
                        }
                    }
                    o[b * inner + i] = T::from_f64(best as f64);
                }
            }
            Ok(())
        })
    })?;
    Ok(out)
}

/// The sum of all elements.
pub fn sum_all<T: DataType>(a: &impl AsView<T>) -> Result<T, ArrayError> {
    with_contiguous(&a.view(), |x| Ok(k::sum(x)))
}

fn softmax_impl<T: DataType>(
    log: bool,
    a: &impl AsView<T>,
    axis: usize,
    out: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    let a = a.view();
    a.layout.check_axis("softmax", axis)?;
    let shape = *a.layout.shape();
    let last = shape.ndim() - 1;
    let rows_of = |x: &[T], o: &mut [T], n: usize| -> Result<(), ArrayError> {
        let rows = x.len().checked_div(n).unwrap_or(0);
        if log {
            k::log_softmax_rows(x, rows, n, o)?;
        } else {
            k::softmax_rows(x, rows, n, o)?;
        }
        Ok(())
    };
    if axis == last {
        let n = shape.dims()[last];
        return with_contiguous(&a, |x| {
            with_output("softmax", out, &shape, |o| rows_of(x, o, n))
        });
    }
    // Move the axis last, work on a contiguous copy, and move it back.
    let mut axes = [0usize; crate::shape::MAX_DIMS];
    for (i, slot) in axes[..shape.ndim()].iter_mut().enumerate() {
        *slot = i;
    }
    axes[axis] = last;
    axes[last] = axis;
    let moved = a.permute(&axes[..shape.ndim()])?.dup()?;
    let n = shape.dims()[axis];
    let mut result = NdArray::alloc(*moved.layout.shape(), false, Place::Current)?;
    let moved_shape = *moved.layout.shape();
    with_contiguous(&moved.view(), |x| {
        with_output("softmax", &mut result, &moved_shape, |o| rows_of(x, o, n))
    })?;
    let back = result.permute(&axes[..shape.ndim()])?;
    with_output("softmax", out, &shape, |o| {
        let r = back.read()?;
        let mut i = 0;
        r.for_each(|v| {
            o[i] = v;
            i += 1;
        });
        Ok(())
    })
}

/// Softmax along `axis` into `out` (contiguous, same shape).
pub fn softmax_into<T: DataType>(
    a: &impl AsView<T>,
    axis: usize,
    out: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    softmax_impl(false, a, axis, out)
}

/// Softmax along `axis` (numerically stable), in the current workspace (or heap).
pub fn softmax<T: DataType>(a: &impl AsView<T>, axis: usize) -> Result<NdArray<T>, ArrayError> {
    let mut out = NdArray::alloc(*a.view().layout.shape(), false, Place::Current)?;
    softmax_impl(false, a, axis, &mut out)?;
    Ok(out)
}

/// Log-softmax along `axis`, in the current workspace (or heap).
pub fn log_softmax<T: DataType>(a: &impl AsView<T>, axis: usize) -> Result<NdArray<T>, ArrayError> {
    let mut out = NdArray::alloc(*a.view().layout.shape(), false, Place::Current)?;
    softmax_impl(true, a, axis, &mut out)?;
    Ok(out)
}
