//! 2-D pooling over windows (max, average, sum) of NCHW planes, forward and backward.
//!
//! The geometry is a [`Conv2dGeometry`] whose `channels` counts the planes pooled (batch x
//! channels). Outputs are computed a row at a time: for each kernel tap the run of output
//! columns whose input lies inside the plane is found once ([`valid_run`]), and the tap is
//! applied to the whole run in one branch-free loop (a vectorizable max/add), instead of
//! testing bounds per window element. Each output still sees its window's taps in the
//! kernel's row-major order, so the forward results are those of the element-by-element
//! definition, bit for bit: max over the taps inside the plane (0 where none is), the sum,
//! and the average as the sum over `kernel_h * kernel_w` (padding counts, as in DL4J).
//!
//! Backward routes each output gradient to its window: max to the first tap (in kernel
//! order) equal to the output, average and sum to every tap inside the plane. Gradients of
//! overlapping windows are added row of outputs by row, tap by tap.

use crate::conv::{Conv2dGeometry, valid_run};
use crate::reduce::check_len;
use crate::{Float, KernelError};

/// What a pooling window computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolOp {
    /// The largest value inside the plane (0 when the window holds none).
    Max,
    /// The sum divided by `kernel_h * kernel_w`.
    Avg,
    /// The sum.
    Sum,
}

/// Output columns processed together in the max backward (its "already routed" flags live
/// in a stack array of this size).
const BLOCK: usize = 64;

fn check(
    op: &'static str,
    g: &Conv2dGeometry,
    input: usize,
    output: usize,
) -> Result<(usize, usize), KernelError> {
    let (oh, ow) = g.output_size()?;
    check_len(op, "input", input, g.input_len())?;
    check_len(op, "output", output, g.channels * oh * ow)?;
    Ok((oh, ow))
}

/// The input row read by kernel row `ki` for output row `oy`, if inside the plane.
#[inline]
fn in_row(g: &Conv2dGeometry, oy: usize, ki: usize) -> Option<usize> {
    let y = (oy * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
    (y >= 0 && (y as usize) < g.height).then_some(y as usize)
}

/// For kernel column `kj`: the run `lo..hi` of output columns inside the plane and the input
/// column of `lo`.
#[inline]
fn tap_run(g: &Conv2dGeometry, ow: usize, kj: usize) -> (usize, usize, usize) {
    let off = (kj * g.dilation_w) as isize - g.pad_w as isize;
    let (lo, hi) = valid_run(ow, g.width, g.stride_w, off);
    let x0 = if lo < hi {
        ((lo * g.stride_w) as isize + off) as usize
    } else {
        0
    };
    (lo, hi, x0)
}

/// Pools `g.channels` planes of `input` (`[planes, height, width]`) into `output`
/// (`[planes, out_h, out_w]`).
///
/// ```
/// use dl4rs_kernels::{pool2d, Conv2dGeometry, PoolOp};
/// let g = Conv2dGeometry::square(1, 2, 4, 2, 2, 0, 1); // one 2x4 plane, 2x2 windows
/// let x = [1.0f32, 5.0, 2.0, 0.0, 3.0, 4.0, -1.0, 6.0];
/// let mut y = [0.0f32; 2];
/// pool2d(PoolOp::Max, &x, &g, &mut y)?;
/// assert_eq!(y, [5.0, 6.0]);
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
pub fn pool2d<T: Float>(
    op: PoolOp,
    input: &[T],
    g: &Conv2dGeometry,
    output: &mut [T],
) -> Result<(), KernelError> {
    let (oh, ow) = check("pool2d", g, input.len(), output.len())?;
    let (hw, ohw) = (g.height * g.width, oh * ow);
    let start = if op == PoolOp::Max {
        T::NEG_INFINITY
    } else {
        T::ZERO
    };
    let size = T::from_f64((g.kernel_h * g.kernel_w) as f64);
    for (plane, out) in input
        .chunks_exact(hw)
        .zip(output.chunks_exact_mut(ohw.max(1)))
    {
        for oy in 0..oh {
            let row = &mut out[oy * ow..(oy + 1) * ow];
            row.fill(start);
            for ki in 0..g.kernel_h {
                let Some(y) = in_row(g, oy, ki) else {
                    continue;
                };
                let src = &plane[y * g.width..(y + 1) * g.width];
                for kj in 0..g.kernel_w {
                    let (lo, hi, x0) = tap_run(g, ow, kj);
                    let taps = row[lo..hi]
                        .iter_mut()
                        .zip(src[x0..].iter().step_by(g.stride_w));
                    if op == PoolOp::Max {
                        for (o, &v) in taps {
                            if v > *o {
                                *o = v;
                            }
                        }
                    } else {
                        for (o, &v) in taps {
                            *o += v;
                        }
                    }
                }
            }
            match op {
                PoolOp::Max => row.iter_mut().for_each(|o| {
                    if *o == T::NEG_INFINITY {
                        *o = T::ZERO;
                    }
                }),
                PoolOp::Avg => row.iter_mut().for_each(|o| *o = *o / size),
                PoolOp::Sum => {}
            }
        }
    }
    Ok(())
}

/// The gradient of [`pool2d`] with respect to its input (`grad_in`, overwritten), given the
/// input, the output it gave and the output's gradient.
pub fn pool2d_backward<T: Float>(
    op: PoolOp,
    input: &[T],
    output: &[T],
    grad_out: &[T],
    g: &Conv2dGeometry,
    grad_in: &mut [T],
) -> Result<(), KernelError> {
    let (oh, ow) = check("pool2d_backward", g, input.len(), output.len())?;
    check_len("pool2d_backward", "grad_out", grad_out.len(), output.len())?;
    check_len("pool2d_backward", "grad_in", grad_in.len(), input.len())?;
    grad_in.fill(T::ZERO);
    let (hw, ohw) = (g.height * g.width, oh * ow);
    let size = T::from_f64((g.kernel_h * g.kernel_w) as f64);
    let planes = input
        .chunks_exact(hw)
        .zip(grad_in.chunks_exact_mut(hw))
        .zip(output.chunks_exact(ohw.max(1)))
        .zip(grad_out.chunks_exact(ohw.max(1)));
    for (((plane, dplane), yplane), eplane) in planes {
        for oy in 0..oh {
            let (yrow, erow) = (
                &yplane[oy * ow..(oy + 1) * ow],
                &eplane[oy * ow..(oy + 1) * ow],
            );
            if op != PoolOp::Max {
                for ki in 0..g.kernel_h {
                    let Some(y) = in_row(g, oy, ki) else {
                        continue;
                    };
                    let drow = &mut dplane[y * g.width..(y + 1) * g.width];
                    for kj in 0..g.kernel_w {
                        let (lo, hi, x0) = tap_run(g, ow, kj);
                        let taps = drow[x0..].iter_mut().step_by(g.stride_w).zip(&erow[lo..hi]);
                        if op == PoolOp::Avg {
                            taps.for_each(|(d, &e)| *d += e / size);
                        } else {
                            taps.for_each(|(d, &e)| *d += e);
                        }
                    }
                }
                continue;
            }
            // Max: the first tap equal to the output takes the gradient; `routed` marks the
            // outputs of this block of columns that have found theirs.
            for b0 in (0..ow).step_by(BLOCK) {
                let b1 = (b0 + BLOCK).min(ow);
                let mut routed = [false; BLOCK];
                for ki in 0..g.kernel_h {
                    let Some(y) = in_row(g, oy, ki) else {
                        continue;
                    };
                    let (src, drow) = (
                        &plane[y * g.width..(y + 1) * g.width],
                        &mut dplane[y * g.width..(y + 1) * g.width],
                    );
                    for kj in 0..g.kernel_w {
                        let (lo, hi, x0) = tap_run(g, ow, kj);
                        let (lo_b, hi_b) = (lo.max(b0), hi.min(b1));
                        for ox in lo_b..hi_b {
                            let x = x0 + (ox - lo) * g.stride_w;
                            let r = &mut routed[ox - b0];
                            if !*r && src[x] == yrow[ox] {
                                *r = true;
                                drow[x] += erow[ox];
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
