//! The fused passes network layers need, on arrays: bias + activation over a gemm output
//! (optionally keeping the pre-activation), the derivative of a unary map, and softmax's
//! backward. They live here so layers never reach past arrays into the kernels, and so there is
//! one softmax: the same kernel whether a layer, a loss or a user calls it.

use dl4rs_kernels as k;
use dl4rs_kernels::{Conv2dGeometry, PoolOp, Unary};

use super::{with_contiguous, with_output};
use crate::array::{ArrayView, AsView, AsViewMut, DataType, NdArray};
use crate::error::{ArrayError, invalid};

fn rows_cols(op: &'static str, shape: &[usize]) -> Result<(usize, usize), ArrayError> {
    match shape {
        [rows, cols] => Ok((*rows, *cols)),
        other => Err(invalid(
            op,
            format!("expected a 2-D [rows, cols] array, found shape {other:?}"),
        )),
    }
}

/// `out = act(out + bias)` row by row (`out`: contiguous `[rows, cols]`, `bias`: `[cols]`),
/// writing `out + bias` into `pre` first when given (what an activation's backward pass
/// needs). `Unary::Identity` adds the bias only.
pub fn bias_act_into<T: DataType>(
    out: &mut impl AsViewMut<T>,
    bias: &impl AsView<T>,
    act: Unary<T>,
    pre: Option<&mut NdArray<T>>,
) -> Result<(), ArrayError> {
    const OP: &str = "bias_act";
    let bias = bias.view();
    let shape = *out.view_mut().layout.shape();
    let (rows, cols) = rows_cols(OP, shape.dims())?;
    if bias.shape() != [cols] && bias.shape() != [1, cols] {
        return Err(invalid(
            OP,
            format!(
                "expected a bias of shape [{cols}], found {:?}",
                bias.shape()
            ),
        ));
    }
    with_contiguous(&bias, |b| {
        with_output(OP, out, &shape, |o| match pre {
            Some(p) => with_output(OP, p, &shape, |pre| {
                Ok(k::bias_act(o, rows, cols, b, act, Some(pre))?)
            }),
            None => Ok(k::bias_act(o, rows, cols, b, act, None)?),
        })
    })
}

/// `grad_in = grad_out * op'(saved)`, where `saved` is the map's input or output as
/// [`Unary::grad_from`] says. All three have one shape.
pub fn unary_grad_into<T: DataType>(
    op: Unary<T>,
    saved: &impl AsView<T>,
    grad_out: &impl AsView<T>,
    grad_in: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "unary_grad";
    let (saved, grad_out) = (saved.view(), grad_out.view());
    let shape = *saved.layout.shape();
    if grad_out.layout.shape() != &shape {
        return Err(ArrayError::ShapeMismatch {
            op: OP,
            lhs: Box::new(shape),
            rhs: Box::new(*grad_out.layout.shape()),
            expected: "the gradient must have the saved array's shape",
        });
    }
    with_contiguous(&saved, |s| {
        with_contiguous(&grad_out, |g| {
            with_output(OP, grad_in, &shape, |o| Ok(k::unary_grad(op, s, g, o)?))
        })
    })
}

/// Softmax along the last axis of `x` into `out` (same shape, contiguous).
pub fn softmax_last_axis_into<T: DataType>(
    x: &impl AsView<T>,
    out: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    let x = x.view();
    let shape = *x.layout.shape();
    let cols = shape.dims().last().copied().unwrap_or(1);
    let rows = shape.len().checked_div(cols).unwrap_or(0);
    with_contiguous(&x, |xs| {
        with_output("softmax", out, &shape, |o| {
            Ok(k::softmax_rows(xs, rows, cols, o)?)
        })
    })
}

/// Backward of softmax along the last axis given its output `y`:
/// `grad_in = y * (grad_out - Σ grad_out·y)` per row.
pub fn softmax_backward_into<T: DataType>(
    y: &impl AsView<T>,
    grad_out: &impl AsView<T>,
    grad_in: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "softmax_backward";
    let (y, grad_out) = (y.view(), grad_out.view());
    let shape = *y.layout.shape();
    if grad_out.layout.shape() != &shape {
        return Err(ArrayError::ShapeMismatch {
            op: OP,
            lhs: Box::new(shape),
            rhs: Box::new(*grad_out.layout.shape()),
            expected: "the gradient must have the softmax output's shape",
        });
    }
    let cols = shape.dims().last().copied().unwrap_or(1);
    let rows = shape.len().checked_div(cols).unwrap_or(0);
    with_contiguous(&y, |ys| {
        with_contiguous(&grad_out, |g| {
            with_output(OP, grad_in, &shape, |o| {
                Ok(k::softmax_rows_backward(ys, g, rows, cols, o)?)
            })
        })
    })
}

/// Unfolds one NCHW image (`[channels, height, width]`, or any shape with that many values)
/// into the `[channels * kernel_h * kernel_w, out_h * out_w]` column matrix of a convolution
/// (padding reads as 0), so the convolution is one gemm.
pub fn im2col_into<T: DataType>(
    image: &impl AsView<T>,
    geometry: &Conv2dGeometry,
    cols: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    let image = image.view();
    let (oh, ow) = geometry.output_size()?;
    let rows = geometry.channels * geometry.kernel_h * geometry.kernel_w;
    let shape = crate::shape::Shape::new(&[rows, oh * ow])?;
    with_contiguous(&image, |x| {
        with_output("im2col", cols, &shape, |c| Ok(k::im2col(x, geometry, c)?))
    })
}

/// The adjoint of [`im2col_into`]: sums each column entry back into the image position it was
/// read from; `image_grad` (`[channels, height, width]`, contiguous) is overwritten.
pub fn col2im_into<T: DataType>(
    cols: &impl AsView<T>,
    geometry: &Conv2dGeometry,
    image_grad: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    let cols = cols.view();
    let shape = crate::shape::Shape::new(&[geometry.channels, geometry.height, geometry.width])?;
    with_contiguous(&cols, |c| {
        with_output("col2im", image_grad, &shape, |g| {
            Ok(k::col2im(c, geometry, g)?)
        })
    })
}

/// Unfolds a run of NCHW images (`[n, channels, height, width]`, contiguous) into one
/// `[channels * kernel_h * kernel_w, n * out_h * out_w]` column matrix, image j in columns
/// `j * out_h * out_w..`: the operand of one gemm convolving all `n` (no per-image copies).
pub fn im2col_batch_into<T: DataType>(
    images: &impl AsView<T>,
    geometry: &Conv2dGeometry,
    cols: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    let images = images.view();
    let n = images.shape().first().copied().unwrap_or(0);
    let (oh, ow) = geometry.output_size()?;
    let rows = geometry.channels * geometry.kernel_h * geometry.kernel_w;
    let shape = crate::shape::Shape::new(&[rows, n * oh * ow])?;
    with_contiguous(&images, |x| {
        with_output("im2col", cols, &shape, |c| {
            super::threads::with_parallelism(|par| Ok(k::im2col_batch(x, n, geometry, c, par)?))
        })
    })
}

/// `(c_out, taps)` of convolution weights given as `[c_out, channels * kernel_h * kernel_w]`
/// rows, or an error naming `op` and the shape found.
fn filter_rows(
    op: &'static str,
    geometry: &Conv2dGeometry,
    weights: &[usize],
) -> Result<(usize, usize), ArrayError> {
    let taps = geometry.channels * geometry.kernel_h * geometry.kernel_w;
    match weights {
        &[c_out, t] if t == taps => Ok((c_out, taps)),
        other => Err(invalid(
            op,
            format!("expected weights of shape [c_out, {taps}], found {other:?}"),
        )),
    }
}

/// The convolution of a batch of NCHW images (`[n, channels, height, width]`, contiguous)
/// with `weights` (`[c_out, channels * kernel_h * kernel_w]`, contiguous) plus `bias`
/// (`[c_out]`) on each output channel, into `out` (`[n, c_out, out_h, out_w]`, contiguous,
/// overwritten): one product per image straight into its NCHW output, the image's columns
/// packed for the product without a column matrix, images split over the product threads
/// (same bits for any thread count: those of `gemm(weights, im2col(image)) + bias`). The
/// packing scratch comes from the current workspace.
pub fn conv2d_forward_into<T: DataType>(
    images: &impl AsView<T>,
    geometry: &Conv2dGeometry,
    weights: &impl AsView<T>,
    bias: Option<&ArrayView<'_, T>>,
    out: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "conv2d_forward";
    let (images, weights) = (images.view(), weights.view());
    let n = images.shape().first().copied().unwrap_or(0);
    let (oh, ow) = geometry.output_size()?;
    let (c_out, taps) = filter_rows(OP, geometry, weights.shape())?;
    if let Some(b) = bias
        && b.shape() != [c_out]
    {
        return Err(invalid(
            OP,
            format!("expected a bias of shape [{c_out}], found {:?}", b.shape()),
        ));
    }
    let shape = crate::shape::Shape::new(&[n, c_out, oh, ow])?;
    with_contiguous(&images, |x| {
        with_contiguous(&weights, |w| {
            let mut run = |b: Option<&[T]>| {
                with_output(OP, out, &shape, |o| {
                    super::threads::with_parallelism(|par| {
                        let len = k::conv2d_forward_scratch_len::<T>(geometry, c_out, par)?;
                        let mut scratch = dl4rs_memory::Buffer::<T>::uninitialized(len)?;
                        let wm = k::MatRef::row_major(w, c_out, taps)?;
                        Ok(k::conv2d_forward(
                            x,
                            n,
                            geometry,
                            wm,
                            b,
                            o,
                            &mut scratch.write()?,
                            par,
                        )?)
                    })
                })
            };
            match bias {
                Some(b) => with_contiguous(b, |b| run(Some(b))),
                None => run(None),
            }
        })
    })
}

/// The weight gradient of a convolution over a run of NCHW images (`[n, channels, height,
/// width]`, contiguous): `grad = beta * grad + dz · colsᵀ` with `dz` `[c_out, n * out_h *
/// out_w]` (see [`to_channel_major_into`]) and `grad` `[c_out, channels * kernel_h *
/// kernel_w]` (may be a strided view). The images' transposed columns are packed straight
/// for the product (no column matrix), in scratch from the current workspace; the bits of
/// `gemm_into(dz, im2col(images)ᵀ)` for any thread count.
pub fn conv2d_weight_grad_into<T: DataType>(
    images: &impl AsView<T>,
    geometry: &Conv2dGeometry,
    dz: &impl AsView<T>,
    beta: T,
    grad: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "conv2d_weight_grad";
    let (images, dz) = (images.view(), dz.view());
    let n = images.shape().first().copied().unwrap_or(0);
    let (oh, ow) = geometry.output_size()?;
    let taps = geometry.channels * geometry.kernel_h * geometry.kernel_w;
    let c_out = match dz.shape() {
        &[c_out, cols] if cols == n * oh * ow => c_out,
        other => {
            return Err(invalid(
                OP,
                format!(
                    "expected dz of shape [c_out, {}], found {other:?}",
                    n * oh * ow
                ),
            ));
        }
    };
    let grad = grad.view_mut();
    if grad.layout.shape().dims() != [c_out, taps] {
        return Err(invalid(
            OP,
            format!(
                "expected a gradient of shape [{c_out}, {taps}], found {:?}",
                grad.layout.shape().dims()
            ),
        ));
    }
    with_contiguous(&images, |x| {
        with_contiguous(&dz, |d| {
            super::threads::with_parallelism(|par| {
                let len = k::conv2d_weight_grad_scratch_len::<T>(geometry, n, c_out, par)?;
                let mut scratch = dl4rs_memory::Buffer::<T>::uninitialized(len)?;
                let lg = grad.layout;
                let mut wg = grad.buf.write()?;
                let out = k::MatMut::new(
                    &mut wg[lg.offset()..],
                    c_out,
                    taps,
                    lg.strides()[0],
                    lg.strides()[1],
                )?;
                let dzm = k::MatRef::row_major(d, c_out, n * oh * ow)?;
                Ok(k::conv2d_weight_grad(
                    x,
                    n,
                    geometry,
                    dzm,
                    beta,
                    out,
                    &mut scratch.write()?,
                    par,
                )?)
            })
        })
    })
}

/// The input gradient of a convolution over a batch: `dz` `[n, c_out, out_h, out_w]` (the
/// outputs' gradient, contiguous), `weights` `[c_out, channels * kernel_h * kernel_w]`,
/// into `out` `[n, channels, height, width]` (contiguous, overwritten): per image
/// `col2im(weightsᵀ · dz_j)`, images split over the product threads (same bits for any
/// thread count). The scratch comes from the current workspace.
pub fn conv2d_input_grad_into<T: DataType>(
    dz: &impl AsView<T>,
    geometry: &Conv2dGeometry,
    weights: &impl AsView<T>,
    out: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "conv2d_input_grad";
    let (dz, weights) = (dz.view(), weights.view());
    let n = dz.shape().first().copied().unwrap_or(0);
    let (oh, ow) = geometry.output_size()?;
    let (c_out, taps) = filter_rows(OP, geometry, weights.shape())?;
    if dz.shape() != [n, c_out, oh, ow] {
        return Err(invalid(
            OP,
            format!(
                "expected dz of shape [{n}, {c_out}, {oh}, {ow}], found {:?}",
                dz.shape()
            ),
        ));
    }
    let shape = crate::shape::Shape::new(&[n, geometry.channels, geometry.height, geometry.width])?;
    with_contiguous(&dz, |d| {
        with_contiguous(&weights, |w| {
            with_output(OP, out, &shape, |o| {
                super::threads::with_parallelism(|par| {
                    let len = k::conv2d_input_grad_scratch_len::<T>(geometry, c_out, par)?;
                    let mut scratch = dl4rs_memory::Buffer::<T>::uninitialized(len)?;
                    let wm = k::MatRef::row_major(w, c_out, taps)?;
                    Ok(k::conv2d_input_grad(
                        d,
                        n,
                        geometry,
                        wm,
                        o,
                        &mut scratch.write()?,
                        par,
                    )?)
                })
            })
        })
    })
}

/// `out[c, j * plane + p] = x[j, c, p]`: a run of NCHW arrays (`[n, c, ...]`, contiguous) as
/// the `[c, n * plane]` rows of one product (`out` contiguous, overwritten), split over the
/// product threads.
pub fn to_channel_major_into<T: DataType>(
    x: &impl AsView<T>,
    out: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "to_channel_major";
    let x = x.view();
    let (n, c, plane) = match x.shape() {
        [n, c, rest @ ..] => (*n, *c, rest.iter().product::<usize>()),
        other => {
            return Err(invalid(
                OP,
                format!("expected an array of shape [n, c, ...], found {other:?}"),
            ));
        }
    };
    let shape = crate::shape::Shape::new(&[c, n * plane])?;
    with_contiguous(&x, |src| {
        with_output(OP, out, &shape, |dst| {
            super::threads::with_parallelism(|par| {
                Ok(k::to_channel_major(src, n, c, plane, dst, par)?)
            })
        })
    })
}

/// The adjoint of [`im2col_batch_into`]: the gradients of the `n` images (`image_grads`,
/// `[n, channels, height, width]`, contiguous, overwritten) from one column matrix.
pub fn col2im_batch_into<T: DataType>(
    cols: &impl AsView<T>,
    geometry: &Conv2dGeometry,
    image_grads: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    let cols = cols.view();
    let n = image_grads
        .view_mut()
        .layout
        .shape()
        .dims()
        .first()
        .copied()
        .unwrap_or(0);
    let shape = crate::shape::Shape::new(&[n, geometry.channels, geometry.height, geometry.width])?;
    with_contiguous(&cols, |c| {
        with_output("col2im", image_grads, &shape, |g| {
            super::threads::with_parallelism(|par| Ok(k::col2im_batch(c, n, geometry, g, par)?))
        })
    })
}

/// The geometry over every plane of a `[n, channels, height, width]` batch.
fn planes_of(
    op: &'static str,
    dims: &[usize],
    g: &Conv2dGeometry,
) -> Result<Conv2dGeometry, ArrayError> {
    match dims {
        &[n, c, h, w] if c == g.channels && h == g.height && w == g.width => Ok(Conv2dGeometry {
            channels: n * c,
            ..*g
        }),
        other => Err(invalid(
            op,
            format!(
                "expected input of shape [batch, {}, {}, {}], found {other:?}",
                g.channels, g.height, g.width
            ),
        )),
    }
}

/// Pools windows of a `[n, channels, height, width]` batch (`geometry` describes one image)
/// into `out` (`[n, channels, out_h, out_w]`, contiguous).
pub fn pool2d_into<T: DataType>(
    op: PoolOp,
    input: &impl AsView<T>,
    geometry: &Conv2dGeometry,
    out: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "pool2d";
    let input = input.view();
    let g = planes_of(OP, input.shape(), geometry)?;
    let (oh, ow) = g.output_size()?;
    let shape = crate::shape::Shape::new(&[input.shape()[0], geometry.channels, oh, ow])?;
    with_contiguous(&input, |x| {
        with_output(OP, out, &shape, |o| {
            super::threads::with_parallelism(|par| Ok(k::pool2d(op, x, &g, o, par)?))
        })
    })
}

/// The gradient of [`pool2d_into`] with respect to its input (`grad_in`, overwritten), from
/// the input, the output it gave and the output's gradient.
pub fn pool2d_backward_into<T: DataType>(
    op: PoolOp,
    input: &impl AsView<T>,
    output: &impl AsView<T>,
    grad_out: &impl AsView<T>,
    geometry: &Conv2dGeometry,
    grad_in: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "pool2d_backward";
    let (input, output, grad_out) = (input.view(), output.view(), grad_out.view());
    let g = planes_of(OP, input.shape(), geometry)?;
    let shape = *input.layout.shape();
    with_contiguous(&input, |x| {
        with_contiguous(&output, |y| {
            with_contiguous(&grad_out, |e| {
                with_output(OP, grad_in, &shape, |d| {
                    super::threads::with_parallelism(|par| {
                        Ok(k::pool2d_backward(op, x, y, e, &g, d, par)?)
                    })
                })
            })
        })
    })
}
