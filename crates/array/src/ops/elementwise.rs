//! Elementwise arithmetic with NumPy broadcasting (fast paths for equal shapes, a row vector
//! and a column vector over a matrix, and scalars), and unary maps.

use dl4rs_kernels as k;
use dl4rs_kernels::{BinaryOp, Unary};

use super::{with_contiguous, with_output};
use crate::array::{AsView, AsViewMut, DataType, DstCursor, NdArray};
use crate::error::ArrayError;
use crate::shape::{Layout, Shape};

fn apply<T: DataType>(op: BinaryOp, x: T, y: T) -> T {
    match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
    }
}

fn result_shape(op: BinaryOp, a: &Shape, b: &Shape) -> Result<Shape, ArrayError> {
    a.broadcast_with(b)
        .ok_or_else(|| ArrayError::ShapeMismatch {
            op: match op {
                BinaryOp::Add => "add",
                BinaryOp::Sub => "sub",
                BinaryOp::Mul => "mul",
                BinaryOp::Div => "div",
            },
            lhs: Box::new(*a),
            rhs: Box::new(*b),
            expected: "equal axes, or 1 on one side (NumPy broadcasting)",
        })
}

/// How `b` lines up with a row-major `rows x cols` output, when a kernel fast path applies.
enum Fast {
    Same,
    Row { rows: usize, cols: usize },
    Col { rows: usize, cols: usize },
    Scalar,
}

fn fast_path(out: &Shape, a: &Shape, b: &Shape) -> Option<Fast> {
    if a != out {
        return None;
    }
    if b == out {
        return Some(Fast::Same);
    }
    if b.len() == 1 {
        return Some(Fast::Scalar);
    }
    let dims = out.dims();
    if dims.len() == 2 {
        let (rows, cols) = (dims[0], dims[1]);
        if b.dims() == [cols] || b.dims() == [1, cols] {
            return Some(Fast::Row { rows, cols });
        }
        if b.dims() == [rows, 1] {
            return Some(Fast::Col { rows, cols });
        }
    }
    None
}

/// `out = a op b` with broadcasting; `out` must be contiguous with the broadcast shape.
pub fn binary_into<T: DataType>(
    op: BinaryOp,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
    out: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    let (a, b) = (a.view(), b.view());
    let shape = result_shape(op, a.layout.shape(), b.layout.shape())?;
    match fast_path(&shape, a.layout.shape(), b.layout.shape()) {
        Some(fast) => with_contiguous(&a, |sa| {
            with_contiguous(&b, |sb| {
                with_output("binary", out, &shape, |o| {
                    match fast {
                        Fast::Same => k::binary(op, sa, sb, o)?,
                        Fast::Scalar => k::binary_scalar(op, sa, sb[0], o)?,
                        Fast::Row { rows, cols } => k::binary_row(op, sa, rows, cols, sb, o)?,
                        Fast::Col { rows, cols } => k::binary_col(op, sa, rows, cols, sb, o)?,
                    }
                    Ok(())
                })
            })
        }),
        None => {
            let la = broadcast(&a.layout, &shape);
            let lb = broadcast(&b.layout, &shape);
            let (ra, rb) = (a.read()?, b.read()?);
            let ((da, _), (db, _)) = (ra.raw(), rb.raw());
            with_output("binary", out, &shape, |o| {
                let mut cb = DstCursor::new(&lb);
                let mut n = 0;
                la.for_each_index(|ia| {
                    o[n] = apply(op, da[ia], db[cb.next()]);
                    n += 1;
                });
                Ok(())
            })
        }
    }
}

fn broadcast(layout: &Layout, shape: &Shape) -> Layout {
    // Callers computed `shape` with `broadcast_with`, so this cannot fail.
    layout.broadcast_to(shape).unwrap_or(*layout)
}

/// `a op b` with broadcasting, in the current workspace (or heap).
pub fn binary<T: DataType>(
    op: BinaryOp,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
) -> Result<NdArray<T>, ArrayError> {
    let shape = result_shape(op, a.view().layout.shape(), b.view().layout.shape())?;
    let mut out = NdArray::alloc(shape, false, crate::array::Place::Current)?;
    binary_into(op, a, b, &mut out)?;
    Ok(out)
}

/// `a op= b`, `b` broadcast to `a`'s shape (`a` may be strided).
pub fn binary_assign<T: DataType>(
    op: BinaryOp,
    a: &mut impl AsViewMut<T>,
    b: &impl AsView<T>,
) -> Result<(), ArrayError> {
    let a = a.view_mut();
    let b = b.view();
    let shape = *a.layout.shape();
    let lb = b
        .layout
        .broadcast_to(&shape)
        .ok_or_else(|| ArrayError::ShapeMismatch {
            op: "binary_assign",
            lhs: Box::new(shape),
            rhs: Box::new(*b.layout.shape()),
            expected: "the right side must broadcast to the left side's shape",
        })?;
    if a.layout.is_c_contiguous()
        && let Some(fast) = fast_path(&shape, &shape, b.layout.shape())
    {
        return with_contiguous(&b, |sb| {
            let offset = a.layout.offset();
            let mut w = a.buf.write()?;
            let sa = &mut w[offset..offset + shape.len()];
            match fast {
                Fast::Same => k::binary_assign(op, sa, sb)?,
                Fast::Scalar => k::binary_scalar_assign(op, sa, sb[0]),
                Fast::Row { rows, cols } => k::binary_row_assign(op, sa, rows, cols, sb)?,
                Fast::Col { rows, cols } => k::binary_col_assign(op, sa, rows, cols, sb)?,
            }
            Ok(())
        });
    }
    let rb = b.read()?;
    let (db, _) = rb.raw();
    let la = a.layout;
    let mut w = a.buf.write()?;
    let mut cb = DstCursor::new(&lb);
    la.for_each_index(|ia| w[ia] = apply(op, w[ia], db[cb.next()]));
    Ok(())
}

/// `a op s` for a scalar `s`.
pub fn scalar<T: DataType>(
    op: BinaryOp,
    a: &impl AsView<T>,
    s: T,
) -> Result<NdArray<T>, ArrayError> {
    let a = a.view();
    let shape = *a.layout.shape();
    let mut out = NdArray::alloc(shape, false, crate::array::Place::Current)?;
    with_contiguous(&a, |sa| {
        with_output("scalar", &mut out, &shape, |o| {
            Ok(k::binary_scalar(op, sa, s, o)?)
        })
    })?;
    Ok(out)
}

/// `a op= s` for a scalar `s`.
pub fn scalar_assign<T: DataType>(
    op: BinaryOp,
    a: &mut NdArray<T>,
    s: T,
) -> Result<(), ArrayError> {
    let layout = a.layout;
    let mut w = a.buf.write()?;
    if layout.is_c_contiguous() {
        let n = layout.shape().len();
        k::binary_scalar_assign(op, &mut w[layout.offset()..layout.offset() + n], s);
    } else {
        layout.for_each_index(|i| w[i] = apply(op, w[i], s));
    }
    Ok(())
}

/// `out = f(a)`.
pub fn unary_into<T: DataType>(
    op: Unary<T>,
    a: &impl AsView<T>,
    out: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    let a = a.view();
    let shape = *a.layout.shape();
    with_contiguous(&a, |sa| {
        with_output("unary", out, &shape, |o| Ok(k::unary(op, sa, o)?))
    })
}

/// `f(a)` in the current workspace (or heap).
pub fn unary<T: DataType>(op: Unary<T>, a: &impl AsView<T>) -> Result<NdArray<T>, ArrayError> {
    let shape = *a.view().layout.shape();
    let mut out = NdArray::alloc(shape, false, crate::array::Place::Current)?;
    unary_into(op, a, &mut out)?;
    Ok(out)
}

/// `a = f(a)`.
pub fn unary_assign<T: DataType>(
    op: Unary<T>,
    a: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    let a = a.view_mut();
    let layout = a.layout;
    let mut w = a.buf.write()?;
    if layout.is_c_contiguous() {
        let n = layout.shape().len();
        k::unary_assign(op, &mut w[layout.offset()..layout.offset() + n]);
    } else {
        layout.for_each_index(|i| w[i] = op.apply(w[i]));
    }
    Ok(())
}
