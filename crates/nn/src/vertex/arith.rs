//! Vertices that compute: element-wise combinations (add, subtract, product, average, max),
//! scale, shift, and per-example L2 normalization, with their gradients.

use dl4rs_array::ops::{self, BinaryOp};
use dl4rs_array::{ArrayView, DataType, NdArray};

use super::{VertexInputs, slice_mut};
use crate::conf::ElementWiseOp;
use crate::error::NnError;
use crate::layers::{ACT, GRAD};
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

fn check_same<T: DataType>(inputs: &VertexInputs<'_, T>) -> Result<(), NnError> {
    let first = inputs.activations(0)?;
    for i in 1..inputs.len {
        let x = inputs.activations(i)?;
        if x.shape() != first.shape() {
            return Err(NnError::Input(format!(
                "ElementWiseVertex: input {i} has shape {:?} but input 0 has {:?}: expected \
                 equal shapes",
                x.shape(),
                first.shape()
            )));
        }
    }
    Ok(())
}

/// Runs `f` on the contiguous elements of `x` (copied to working memory when strided).
fn with_elements<T: DataType, R>(
    x: &ArrayView<'_, T>,
    mgr: &LayerWorkspaceMgr,
    f: impl FnOnce(&[T]) -> Result<R, NnError>,
) -> Result<R, NnError> {
    let read = x.read()?;
    match read.as_slice() {
        Some(s) => f(s),
        None => {
            drop(read);
            let copy = mgr.dup(ArrayType::FfWorkingMem, x)?;
            let r = copy.read()?;
            f(r.as_slice().unwrap_or_default())
        }
    }
}

pub(super) fn element_wise<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    op: ElementWiseOp,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    check_same(inputs)?;
    let mut out = mgr.dup(ACT, &inputs.activations(0)?)?;
    for i in 1..inputs.len {
        let x = inputs.activations(i)?;
        match op {
            ElementWiseOp::Add | ElementWiseOp::Average => {
                ops::binary_assign(BinaryOp::Add, &mut out, &x)?
            }
            ElementWiseOp::Subtract => ops::binary_assign(BinaryOp::Sub, &mut out, &x)?,
            ElementWiseOp::Product => ops::binary_assign(BinaryOp::Mul, &mut out, &x)?,
            ElementWiseOp::Max => {
                let mut w = out.write()?;
                let o = slice_mut(&mut w)?;
                with_elements(&x, mgr, |xs| {
                    for (a, &b) in o.iter_mut().zip(xs) {
                        if b > *a {
                            *a = b;
                        }
                    }
                    Ok(())
                })?;
            }
        }
    }
    if op == ElementWiseOp::Average && inputs.len > 1 {
        ops::scalar_assign(
            BinaryOp::Mul,
            &mut out,
            T::ONE / T::from_f64(inputs.len as f64),
        )?;
    }
    Ok(out)
}

pub(super) fn element_wise_backward<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    op: ElementWiseOp,
    output: &ArrayView<'_, T>,
    epsilon: &ArrayView<'_, T>,
    grads: &mut [Option<NdArray<T>>],
    mgr: &LayerWorkspaceMgr,
) -> Result<(), NnError> {
    let n = inputs.len;
    for (i, slot) in grads.iter_mut().enumerate().take(n) {
        let mut g = mgr.dup(GRAD, epsilon)?;
        match op {
            ElementWiseOp::Add => {}
            ElementWiseOp::Subtract => {
                if i == 1 {
                    ops::scalar_assign(BinaryOp::Mul, &mut g, -T::ONE)?;
                }
            }
            ElementWiseOp::Average => {
                ops::scalar_assign(BinaryOp::Mul, &mut g, T::ONE / T::from_f64(n as f64))?;
            }
            ElementWiseOp::Product => {
                for j in (0..n).filter(|&j| j != i) {
                    ops::binary_assign(BinaryOp::Mul, &mut g, &inputs.activations(j)?)?;
                }
            }
            ElementWiseOp::Max => {
                // The gradient goes to the first input that holds the maximum.
                let mut w = g.write()?;
                let gs = slice_mut(&mut w)?;
                with_elements(output, mgr, |y| {
                    with_elements(&inputs.activations(i)?, mgr, |xi| {
                        for ((g, &x), &m) in gs.iter_mut().zip(xi).zip(y) {
                            if x != m {
                                *g = T::ZERO;
                            }
                        }
                        Ok(())
                    })?;
                    for j in 0..i {
                        with_elements(&inputs.activations(j)?, mgr, |xj| {
                            for ((g, &x), &m) in gs.iter_mut().zip(xj).zip(y) {
                                if x == m {
                                    *g = T::ZERO;
                                }
                            }
                            Ok(())
                        })?;
                    }
                    Ok(())
                })?;
            }
        }
        *slot = Some(g);
    }
    Ok(())
}

pub(super) fn scale<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    factor: f64,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    let mut out = mgr.dup(ACT, &inputs.activations(0)?)?;
    ops::scalar_assign(BinaryOp::Mul, &mut out, T::from_f64(factor))?;
    Ok(out)
}

pub(super) fn shift<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    shift: f64,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    let mut out = mgr.dup(ACT, &inputs.activations(0)?)?;
    ops::scalar_assign(BinaryOp::Add, &mut out, T::from_f64(shift))?;
    Ok(out)
}

/// The gradient of `x * factor` (a shift is factor 1).
pub(super) fn scale_backward<T: DataType>(
    factor: f64,
    epsilon: &ArrayView<'_, T>,
    grads: &mut [Option<NdArray<T>>],
    mgr: &LayerWorkspaceMgr,
) -> Result<(), NnError> {
    let mut g = mgr.dup(GRAD, epsilon)?;
    if factor != 1.0 {
        ops::scalar_assign(BinaryOp::Mul, &mut g, T::from_f64(factor))?;
    }
    grads[0] = Some(g);
    Ok(())
}

fn example_len(shape: &[usize]) -> usize {
    shape.iter().skip(1).product::<usize>().max(1)
}

pub(super) fn l2_normalize<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    eps: f64,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    let x = inputs.activations(0)?;
    let n = example_len(x.shape());
    let mut out = mgr.create_uninitialized::<T>(ACT, x.shape())?;
    let eps = T::from_f64(eps);
    {
        let mut w = out.write()?;
        let o = slice_mut(&mut w)?;
        with_elements(&x, mgr, |xs| {
            for (orow, xrow) in o.chunks_exact_mut(n).zip(xs.chunks_exact(n)) {
                let norm = xrow.iter().fold(T::ZERO, |s, &v| s + v * v).sqrt();
                let inv = T::ONE / if norm > eps { norm } else { eps };
                for (y, &v) in orow.iter_mut().zip(xrow) {
                    *y = v * inv;
                }
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// `y = x / max(|x|, eps)`: `dx = (g - y <y, g>) / |x|` where `|x| > eps`, else `g / eps`.
pub(super) fn l2_normalize_backward<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    eps: f64,
    output: &ArrayView<'_, T>,
    epsilon: &ArrayView<'_, T>,
    grads: &mut [Option<NdArray<T>>],
    mgr: &LayerWorkspaceMgr,
) -> Result<(), NnError> {
    let x = inputs.activations(0)?;
    let n = example_len(x.shape());
    let eps = T::from_f64(eps);
    let mut g = mgr.create_uninitialized::<T>(GRAD, x.shape())?;
    {
        let mut w = g.write()?;
        let gs = slice_mut(&mut w)?;
        with_elements(&x, mgr, |xs| {
            with_elements(output, mgr, |ys| {
                with_elements(epsilon, mgr, |es| {
                    for (((grow, xrow), yrow), erow) in gs
                        .chunks_exact_mut(n)
                        .zip(xs.chunks_exact(n))
                        .zip(ys.chunks_exact(n))
                        .zip(es.chunks_exact(n))
                    {
                        let norm = xrow.iter().fold(T::ZERO, |s, &v| s + v * v).sqrt();
                        if norm > eps {
                            let dot = yrow.iter().zip(erow).fold(T::ZERO, |s, (&y, &e)| s + y * e);
                            let inv = T::ONE / norm;
                            for ((gv, &y), &e) in grow.iter_mut().zip(yrow).zip(erow) {
                                *gv = (e - y * dot) * inv;
                            }
                        } else {
                            let inv = T::ONE / eps;
                            for (gv, &e) in grow.iter_mut().zip(erow) {
                                *gv = e * inv;
                            }
                        }
                    }
                    Ok(())
                })
            })
        })?;
    }
    grads[0] = Some(g);
    Ok(())
}
