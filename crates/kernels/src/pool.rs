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
//! order) equal to the output, average and sum to every tap inside the plane. Max adds the
//! gradients in output order, as the definition does; average and sum add them a row of
//! outputs per tap (for overlapping windows, another order of the same terms).

use crate::conv::{Conv2dGeometry, valid_run};
use crate::parts::for_each_part;
use crate::reduce::check_len;
use crate::{Float, KernelError, Parallelism};

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

/// Kernel columns whose runs are computed once per call (wider kernels compute them per row).
const CACHED_TAPS: usize = 16;

/// The runs of every kernel column, computed once per call: they do not depend on the output
/// row, and each costs two integer divisions, as much as pooling a short row.
struct TapRuns {
    runs: [(usize, usize, usize); CACHED_TAPS],
    ow: usize,
}

impl TapRuns {
    fn new(g: &Conv2dGeometry, ow: usize) -> Self {
        let mut runs = [(0, 0, 0); CACHED_TAPS];
        for (kj, r) in runs.iter_mut().enumerate().take(g.kernel_w) {
            *r = tap_run(g, ow, kj);
        }
        TapRuns { runs, ow }
    }

    #[inline]
    fn get(&self, g: &Conv2dGeometry, kj: usize) -> (usize, usize, usize) {
        if kj < CACHED_TAPS {
            self.runs[kj]
        } else {
            tap_run(g, self.ow, kj)
        }
    }
}

/// `row[i] = max(row[i], src[i * stride])` (`max`: the larger, keeping `row[i]` on ties and
/// NaN, as `v > m` does) or `row[i] += src[i * stride]`, for the `row.len()` outputs of one
/// tap. Written as selects, not branches (the comparison is unpredictable), and with the
/// common strides as constants so the loop vectorizes.
#[inline]
fn apply_tap<T: Float>(max: bool, row: &mut [T], src: &[T], stride: usize) {
    match (max, stride) {
        (true, 1) => tap::<T, true, 1>(row, src, 1),
        (true, 2) => tap::<T, true, 2>(row, src, 2),
        (true, _) => tap::<T, true, 0>(row, src, stride),
        (false, 1) => tap::<T, false, 1>(row, src, 1),
        (false, 2) => tap::<T, false, 2>(row, src, 2),
        (false, _) => tap::<T, false, 0>(row, src, stride),
    }
}

/// [`apply_tap`] for a stride `S` known at compile time (`S == 0`: `stride`).
#[inline(always)]
fn tap<T: Float, const MAX: bool, const S: usize>(row: &mut [T], src: &[T], stride: usize) {
    let s = if S == 0 { stride } else { S };
    let n = row.len();
    if n == 0 {
        return;
    }
    // One bounds check for the run (the caller's run ends inside the input row).
    let src = &src[..(n - 1) * s + 1];
    for (i, o) in row.iter_mut().enumerate() {
        let v = src[i * s];
        let m = *o;
        *o = if MAX {
            if v > m { v } else { m }
        } else {
            m + v
        };
    }
}

/// Max backward for one tap over a run of outputs: output i's `first` becomes `pos + i *
/// stride` (the tap's position in the plane) when the input there equals the output.
#[inline]
fn match_tap<T: Float>(first: &mut [usize], y: &[T], src: &[T], pos: usize, stride: usize) {
    match stride {
        1 => matches::<T, 1>(first, y, src, pos, 1),
        2 => matches::<T, 2>(first, y, src, pos, 2),
        _ => matches::<T, 0>(first, y, src, pos, stride),
    }
}

#[inline(always)]
fn matches<T: Float, const S: usize>(
    first: &mut [usize],
    y: &[T],
    src: &[T],
    pos: usize,
    stride: usize,
) {
    let s = if S == 0 { stride } else { S };
    let n = first.len();
    if n == 0 {
        return;
    }
    let src = &src[..(n - 1) * s + 1];
    for (i, ((f, &y), c)) in first.iter_mut().zip(y).zip(src.chunks(s)).enumerate() {
        // A mask, not a branch or select (LLVM turned both into a jump here, and the
        // comparison is unpredictable).
        let keep = 0usize.wrapping_sub(usize::from(c[0] == y));
        *f = (*f & !keep) | ((pos + i * s) & keep);
    }
}

/// Whether `g` is the common max-pooling window: 2 x 2, stride 2, no padding, no dilation.
/// Its windows do not overlap and lie inside the plane, so [`max2x2_forward`] computes it in
/// one pass per output row, with the general path's bits, and [`max2x2_backward`] its
/// gradient (which finds the first equal tap through a table, not selects: a backward
/// written with selects compiled to scalar compares and jumps and measured slower than the
/// general path).
fn is_max2x2(g: &Conv2dGeometry) -> bool {
    (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) == (2, 2, 2, 2)
        && (g.pad_h, g.pad_w, g.pad_h_end, g.pad_w_end) == (0, 0, 0, 0)
        && (g.dilation_h, g.dilation_w) == (1, 1)
}

/// `max(m, v)` as the general path takes it: `v` when `v > m` (ties and NaN keep `m`).
#[inline(always)]
fn keep_max<T: Float>(m: T, v: T) -> T {
    if v > m { v } else { m }
}

/// 2 x 2 stride-2 max pooling of the planes in `input` (each `hw` elements, rows of `width`)
/// into `out` (`oh x ow` per plane): the four taps in kernel order from -inf, as the general
/// path folds them, and 0 where all four are NaN or -inf.
fn max2x2_forward<T: Float>(
    input: &[T],
    out: &mut [T],
    width: usize,
    hw: usize,
    oh: usize,
    ow: usize,
) {
    for (plane, o) in input
        .chunks_exact(hw.max(1))
        .zip(out.chunks_exact_mut((oh * ow).max(1)))
    {
        for (oy, orow) in o.chunks_exact_mut(ow.max(1)).enumerate() {
            let r0 = &plane[2 * oy * width..2 * oy * width + 2 * ow];
            let r1 = &plane[(2 * oy + 1) * width..(2 * oy + 1) * width + 2 * ow];
            for ((y, a), b) in orow
                .iter_mut()
                .zip(r0.chunks_exact(2))
                .zip(r1.chunks_exact(2))
            {
                let m = keep_max(
                    keep_max(keep_max(keep_max(T::NEG_INFINITY, a[0]), a[1]), b[0]),
                    b[1],
                );
                *y = if m == T::NEG_INFINITY { T::ZERO } else { m };
            }
        }
    }
}

/// The first of the four taps of a 2 x 2 window that equal the output, by the mask of equal
/// taps (bit t: tap t in kernel order): 4 when none does.
const FIRST_EQUAL: [u8; 16] = [4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0];

/// The gradient of [`max2x2_forward`] for the planes of `input` into `grad` (zeroed by the
/// caller): each output's gradient goes to the first of its window's taps that equals it, as
/// `0 + e` (the general path adds it to a zeroed plane; windows do not overlap, so nothing
/// else is added there), found through [`FIRST_EQUAL`] without a branch on the data.
#[allow(clippy::too_many_arguments)]
fn max2x2_backward<T: Float>(
    input: &[T],
    output: &[T],
    grad_out: &[T],
    grad: &mut [T],
    width: usize,
    hw: usize,
    oh: usize,
    ow: usize,
) {
    let ohw = oh * ow;
    let planes = input
        .chunks_exact(hw.max(1))
        .zip(grad.chunks_exact_mut(hw.max(1)))
        .zip(output.chunks_exact(ohw.max(1)))
        .zip(grad_out.chunks_exact(ohw.max(1)));
    for (((plane, dplane), yplane), eplane) in planes {
        for oy in 0..oh {
            let (r0, r1) = (2 * oy * width, (2 * oy + 1) * width);
            let (top, bottom) = (&plane[r0..r0 + 2 * ow], &plane[r1..r1 + 2 * ow]);
            let rows = &mut dplane[r0..r1 + 2 * ow];
            let offsets = [0, 1, width, width + 1];
            let outs = yplane[oy * ow..(oy + 1) * ow]
                .iter()
                .zip(&eplane[oy * ow..(oy + 1) * ow]);
            for (ox, ((&y, &e), (a, b))) in outs
                .zip(top.chunks_exact(2).zip(bottom.chunks_exact(2)))
                .enumerate()
            {
                let mask = usize::from(a[0] == y)
                    | usize::from(a[1] == y) << 1
                    | usize::from(b[0] == y) << 2
                    | usize::from(b[1] == y) << 3;
                let first = FIRST_EQUAL[mask] as usize;
                if first < 4 {
                    rows[2 * ox + offsets[first]] = T::ZERO + e;
                }
            }
        }
    }
}

/// Pools `g.channels` planes of `input` (`[planes, height, width]`) into `output`
/// (`[planes, out_h, out_w]`); planes are split over `par`'s team (same bits for any thread
/// count).
///
/// ```
/// use dl4rs_kernels::{pool2d, Conv2dGeometry, Parallelism, PoolOp};
/// let g = Conv2dGeometry::square(1, 2, 4, 2, 2, 0, 1); // one 2x4 plane, 2x2 windows
/// let x = [1.0f32, 5.0, 2.0, 0.0, 3.0, 4.0, -1.0, 6.0];
/// let mut y = [0.0f32; 2];
/// pool2d(PoolOp::Max, &x, &g, &mut y, Parallelism::None)?;
/// assert_eq!(y, [5.0, 6.0]);
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
pub fn pool2d<T: Float>(
    op: PoolOp,
    input: &[T],
    g: &Conv2dGeometry,
    output: &mut [T],
    par: Parallelism<'_>,
) -> Result<(), KernelError> {
    pool2d_impl(op, input, g, output, par, true)
}

/// [`pool2d`], with the 2 x 2 max fast path allowed or not (tests compare the two).
fn pool2d_impl<T: Float>(
    op: PoolOp,
    input: &[T],
    g: &Conv2dGeometry,
    output: &mut [T],
    par: Parallelism<'_>,
    fast: bool,
) -> Result<(), KernelError> {
    let (oh, ow) = check("pool2d", g, input.len(), output.len())?;
    let (hw, ohw) = (g.height * g.width, oh * ow);
    let start = if op == PoolOp::Max {
        T::NEG_INFINITY
    } else {
        T::ZERO
    };
    let size = T::from_f64((g.kernel_h * g.kernel_w) as f64);
    if fast && op == PoolOp::Max && is_max2x2(g) {
        for_each_part(par, output, g.channels, ohw, |p0, p1, part| {
            max2x2_forward(&input[p0 * hw..p1 * hw], part, g.width, hw, oh, ow);
        });
        return Ok(());
    }
    let runs = TapRuns::new(g, ow);
    for_each_part(par, output, g.channels, ohw, |p0, p1, part| {
        let planes = input[p0 * hw..p1 * hw]
            .chunks_exact(hw.max(1))
            .zip(part.chunks_exact_mut(ohw.max(1)));
        for (plane, out) in planes {
            for oy in 0..oh {
                let row = &mut out[oy * ow..(oy + 1) * ow];
                row.fill(start);
                for ki in 0..g.kernel_h {
                    let Some(y) = in_row(g, oy, ki) else {
                        continue;
                    };
                    let src = &plane[y * g.width..(y + 1) * g.width];
                    for kj in 0..g.kernel_w {
                        let (lo, hi, x0) = runs.get(g, kj);
                        apply_tap(op == PoolOp::Max, &mut row[lo..hi], &src[x0..], g.stride_w);
                    }
                }
                match op {
                    PoolOp::Max => row.iter_mut().for_each(|o| {
                        if *o == T::NEG_INFINITY {
                            *o = T::ZERO;
                        }
                    }),
                    PoolOp::Avg => row.iter_mut().for_each(|o| *o /= size),
                    PoolOp::Sum => {}
                }
            }
        }
    });
    Ok(())
}

/// The gradient of [`pool2d`] with respect to its input (`grad_in`, overwritten), given the
/// input, the output it gave and the output's gradient; planes are split over `par`'s team.
pub fn pool2d_backward<T: Float>(
    op: PoolOp,
    input: &[T],
    output: &[T],
    grad_out: &[T],
    g: &Conv2dGeometry,
    grad_in: &mut [T],
    par: Parallelism<'_>,
) -> Result<(), KernelError> {
    pool2d_backward_impl(op, input, output, grad_out, g, grad_in, par, true)
}

/// [`pool2d_backward`], with the 2 x 2 max fast path allowed or not (tests compare the two).
#[allow(clippy::too_many_arguments)]
fn pool2d_backward_impl<T: Float>(
    op: PoolOp,
    input: &[T],
    output: &[T],
    grad_out: &[T],
    g: &Conv2dGeometry,
    grad_in: &mut [T],
    par: Parallelism<'_>,
    fast: bool,
) -> Result<(), KernelError> {
    let (oh, ow) = check("pool2d_backward", g, input.len(), output.len())?;
    check_len("pool2d_backward", "grad_out", grad_out.len(), output.len())?;
    check_len("pool2d_backward", "grad_in", grad_in.len(), input.len())?;
    let (hw, ohw) = (g.height * g.width, oh * ow);
    if fast && op == PoolOp::Max && is_max2x2(g) {
        for_each_part(par, grad_in, g.channels, hw, |p0, p1, part| {
            part.fill(T::ZERO);
            max2x2_backward(
                &input[p0 * hw..p1 * hw],
                &output[p0 * ohw..p1 * ohw],
                &grad_out[p0 * ohw..p1 * ohw],
                part,
                g.width,
                hw,
                oh,
                ow,
            );
        });
        return Ok(());
    }
    let size = T::from_f64((g.kernel_h * g.kernel_w) as f64);
    let runs = TapRuns::new(g, ow);
    for_each_part(par, grad_in, g.channels, hw, |p0, p1, part| {
        part.fill(T::ZERO);
        let planes = input[p0 * hw..p1 * hw]
            .chunks_exact(hw.max(1))
            .zip(part.chunks_exact_mut(hw.max(1)))
            .zip(output[p0 * ohw..p1 * ohw].chunks_exact(ohw.max(1)))
            .zip(grad_out[p0 * ohw..p1 * ohw].chunks_exact(ohw.max(1)));
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
                            let (lo, hi, x0) = runs.get(g, kj);
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
                // Max: the first tap equal to the output takes the gradient. Its position is
                // found by visiting the taps last to first and keeping each match (a select,
                // no branch: the comparison is unpredictable), then each output's gradient is
                // added in output order, as the definition does.
                for b0 in (0..ow).step_by(BLOCK) {
                    let b1 = (b0 + BLOCK).min(ow);
                    let mut first = [usize::MAX; BLOCK];
                    for ki in (0..g.kernel_h).rev() {
                        let Some(y) = in_row(g, oy, ki) else {
                            continue;
                        };
                        let src = &plane[y * g.width..(y + 1) * g.width];
                        for kj in (0..g.kernel_w).rev() {
                            let (lo, hi, x0) = runs.get(g, kj);
                            let (lo_b, hi_b) = (lo.max(b0), hi.min(b1));
                            if lo_b >= hi_b {
                                continue;
                            }
                            let x = x0 + (lo_b - lo) * g.stride_w;
                            match_tap(
                                &mut first[lo_b - b0..hi_b - b0],
                                &yrow[lo_b..hi_b],
                                &src[x..],
                                y * g.width + x,
                                g.stride_w,
                            );
                        }
                    }
                    for (&p, &e) in first[..b1 - b0].iter().zip(&erow[b0..b1]) {
                        if p != usize::MAX {
                            dplane[p] += e;
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2 x 2 max fast paths (forward and backward) give the general path's bits on values
    /// that test its rules:
    /// ties (the first tap wins), NaN (never the maximum), an all -inf window (output 0),
    /// signed zeros, odd plane sizes.
    #[test]
    fn max2x2_fast_path_equals_the_general_path_bit_for_bit() {
        let specials = [
            0.5f32,
            f32::NAN,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            0.5,
            -1.0,
            2.0,
        ];
        for (h, w) in [(4, 4), (5, 7), (2, 2), (3, 9)] {
            let g = Conv2dGeometry::square(3, h, w, 2, 2, 0, 1);
            let (oh, ow) = g.output_size().unwrap();
            let mut x: Vec<f32> = (0..g.input_len())
                .map(|i| specials[(i * 7 + i / 5) % specials.len()])
                .collect();
            // One window of -inf only.
            for i in [0, 1, w, w + 1] {
                x[i] = f32::NEG_INFINITY;
            }
            let n = g.channels * oh * ow;
            let (mut fast, mut general) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            pool2d_impl(PoolOp::Max, &x, &g, &mut fast, Parallelism::None, true).unwrap();
            pool2d_impl(PoolOp::Max, &x, &g, &mut general, Parallelism::None, false).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&general), "forward {h}x{w}");
            assert_eq!(fast[0], 0.0);
            // Backward on the forward's output, with gradients that include -0.0 and NaN.
            let e: Vec<f32> = (0..n)
                .map(|i| specials[(i * 3 + 1) % specials.len()] + 0.0 * i as f32)
                .collect();
            let mut e = e;
            e[1 % n] = -0.0;
            let m = g.input_len();
            let (mut dfast, mut dgeneral) = (vec![f32::NAN; m], vec![f32::NAN; m]);
            pool2d_backward_impl(
                PoolOp::Max,
                &x,
                &general,
                &e,
                &g,
                &mut dfast,
                Parallelism::None,
                true,
            )
            .unwrap();
            pool2d_backward_impl(
                PoolOp::Max,
                &x,
                &general,
                &e,
                &g,
                &mut dgeneral,
                Parallelism::None,
                false,
            )
            .unwrap();
            assert_eq!(bits(&dfast), bits(&dgeneral), "backward {h}x{w}");
        }
    }
}
