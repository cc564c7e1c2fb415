//! Convolution products without a column matrix: im2col written straight into the layout in
//! which gemm's microkernel reads its right operand ([`PackedB`]), and the forward
//! convolution of a batch built on it ([`conv2d_forward`]).
//!
//! A convolution as `W · cols` packs `cols` once more after im2col wrote it: a second full
//! write and read of the largest operand, about a tenth of a LeNet step. [`im2col_packed`]
//! writes the kernel's slivers at once (the column matrix, `[taps, images * oh * ow]`, as B of
//! `W · cols`), [`im2col_packed_t`] its transpose (`[images * oh * ow, taps]`, as B of the
//! weight gradient `dz · colsᵀ`, one row of `taps` lanes per output position). Both give
//! exactly the elements im2col + [`pack_b`](crate::pack_b) give, so a product with them has
//! the bits of [`gemm`](crate::gemm) on the column matrix.
//!
//! [`conv2d_forward`] runs one product per image, `out_j = W · cols_j (+ b)`, with the
//! image's NCHW output as C: no scatter of a batched product into NCHW, and images (not the
//! small per-image products) split over the team, each task with its own packing region.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::conv::{Conv2dGeometry, copy_short};
use crate::dispatch::Isa;
use crate::gemm::{
    PackedB, gemm_prepacked, gemm_prepacked_scratch_len, packed_b_len, packed_layout,
};
use crate::parts::for_each_block;
use crate::reduce::check_len;
use crate::{Float, KernelError, MatMut, MatRef, Parallelism};

/// Where a packed matrix's element `(row, col)` lies, for the rows of one KC block: the row's
/// first lane is `base`, sliver `s` starts `s * stride` later (`stride = nr * kcb`).
#[derive(Clone, Copy)]
struct Lanes {
    base: usize,
    stride: usize,
    /// `log2(nr)`: every path's tile width is a power of two.
    shift: u32,
}

impl Lanes {
    #[inline]
    fn new(lay: Layout, row: usize) -> Self {
        let pc = row / lay.kc * lay.kc;
        let kcb = lay.kc.min(lay.k - pc);
        Lanes {
            base: pc * lay.n_pad + (row - pc) * lay.nr,
            stride: lay.nr * kcb,
            shift: lay.nr.trailing_zeros(),
        }
    }

    /// The contiguous pieces of columns `col..col + len` of this row: `f(offset, start, len)`
    /// with `start` the piece's position within `0..len`.
    #[inline]
    fn pieces(self, mut col: usize, len: usize, mut f: impl FnMut(usize, usize, usize)) {
        let nr = 1usize << self.shift;
        let lane = col & (nr - 1);
        if len == 0 {
            return;
        }
        if lane + len <= nr {
            // The usual case: the run lies in one sliver.
            f(self.base + (col >> self.shift) * self.stride + lane, 0, len);
            return;
        }
        let mut done = 0;
        while done < len {
            let lane = col & (nr - 1);
            let take = (nr - lane).min(len - done);
            f(self.base + (col >> self.shift) * self.stride + lane, done, take);
            col += take;
            done += take;
        }
    }

    #[inline]
    fn zero<T: Float>(self, out: &mut [T], col: usize, len: usize) {
        self.pieces(col, len, |d, _, n| out[d..d + n].fill(T::ZERO));
    }

    #[inline]
    fn copy<T: Float>(self, out: &mut [T], col: usize, src: &[T]) {
        self.pieces(col, src.len(), |d, s, n| {
            copy_run(&mut out[d..d + n], &src[s..s + n]);
        });
    }

    #[inline]
    fn set<T: Float>(self, out: &mut [T], col: usize, v: T) {
        out[self.base + (col >> self.shift) * self.stride + (col & ((1 << self.shift) - 1))] = v;
    }
}

/// `dst.copy_from_slice(src)` for a run of at most a sliver (LeNet: 5 - 32 elements) as
/// straight-line 8-element moves, the last one overlapping: no loop for LLVM to turn into a
/// `memmove` call (see `copy_short`, which longer runs use).
#[inline(always)]
fn copy_run<T: Float>(dst: &mut [T], src: &[T]) {
    let n = dst.len().min(src.len());
    if !(8..=32).contains(&n) {
        return copy_short(&mut dst[..n], &src[..n]);
    }
    let block = |d: &mut [T], s: &[T]| {
        let s: &[T; 8] = s.try_into().expect("8 elements");
        let d: &mut [T; 8] = d.try_into().expect("8 elements");
        *d = *s;
    };
    block(&mut dst[..8], &src[..8]);
    if n > 16 {
        block(&mut dst[8..16], &src[8..16]);
    }
    if n > 24 {
        block(&mut dst[16..24], &src[16..24]);
    }
    block(&mut dst[n - 8..n], &src[n - 8..n]);
}

/// The widest tile [`im2col_packed`] handles (every path's f32 and f64 tiles are at most this).
const MAX_NR: usize = 32;

/// One kernel tap: where its reads start relative to a run's first input position.
#[derive(Clone, Copy)]
struct Tap {
    /// The channel plane's offset in an image.
    plane: usize,
    /// `ki * dilation_h`.
    dy: isize,
    /// `kj * dilation_w`.
    dx: isize,
}

/// A run of consecutive output columns of one output row of one image, within a sliver.
#[derive(Clone, Copy, Default)]
struct Seg {
    /// First lane in the sliver.
    lane: usize,
    len: usize,
    /// The image's offset in the input.
    image: usize,
    /// Input row and column of tap (0, 0) at the run's first position (padding included).
    y0: isize,
    x0: isize,
}

impl Seg {
    /// The run's values of one tap into `dst` (`len` lanes); padding reads as 0.
    #[inline(always)]
    fn gather<T: Float>(&self, input: &[T], g: &Conv2dGeometry, tap: Tap, sw: usize, dst: &mut [T]) {
        let y = self.y0 + tap.dy;
        let x = self.x0 + tap.dx;
        if y < 0 || y as usize >= g.height {
            dst.fill(T::ZERO);
            return;
        }
        let row = &input[self.image + tap.plane + y as usize * g.width..][..g.width];
        let last = x + ((self.len - 1) * sw) as isize;
        if x >= 0 && (last as usize) < g.width {
            // The whole run reads inside the row (always, without padding).
            let x = x as usize;
            if sw == 1 {
                copy_run(dst, &row[x..x + self.len]);
            } else {
                for (d, &v) in dst.iter_mut().zip(row[x..].iter().step_by(sw)) {
                    *d = v;
                }
            }
            return;
        }
        for (i, d) in dst.iter_mut().enumerate() {
            let xi = x + (i * sw) as isize;
            *d = if xi >= 0 && (xi as usize) < g.width {
                row[xi as usize]
            } else {
                T::ZERO
            };
        }
    }
}

/// A `k x n` packed layout on the current path.
#[derive(Clone, Copy)]
struct Layout {
    isa: Isa,
    k: usize,
    nr: usize,
    kc: usize,
    n_pad: usize,
}

impl Layout {
    fn of<T: Float>(k: usize, n: usize) -> Self {
        let (isa, nr, kc, n_pad) = packed_layout::<T>(k, n);
        debug_assert!(nr.is_power_of_two());
        Layout {
            isa,
            k,
            nr,
            kc,
            n_pad,
        }
    }

    fn len(self) -> usize {
        self.k * self.n_pad
    }
}

fn taps(g: &Conv2dGeometry) -> usize {
    g.channels * g.kernel_h * g.kernel_w
}

/// Elements [`im2col_packed`] needs for `images` images (on any dispatch path).
pub fn im2col_packed_len<T: Float>(g: &Conv2dGeometry, images: usize) -> Result<usize, KernelError> {
    let (oh, ow) = g.output_size()?;
    Ok(packed_b_len::<T>(taps(g), images * oh * ow))
}

/// Elements [`im2col_packed_t`] needs for `images` images (on any dispatch path).
pub fn im2col_packed_t_len<T: Float>(
    g: &Conv2dGeometry,
    images: usize,
) -> Result<usize, KernelError> {
    let (oh, ow) = g.output_size()?;
    Ok(packed_b_len::<T>(images * oh * ow, taps(g)))
}

/// The column matrix of `images` consecutive NCHW images ([`im2col_batch`](crate::im2col_batch)'s
/// `[taps, images * oh * ow]`) written straight into `out` (at least [`im2col_packed_len`]
/// elements) as the packed B of `W · cols` for [`gemm_prepacked`]: the elements
/// [`pack_b`](crate::pack_b) would make of that matrix, without the matrix.
pub fn im2col_packed<'a, T: Float>(
    input: &[T],
    images: usize,
    g: &Conv2dGeometry,
    out: &'a mut [T],
) -> Result<PackedB<'a, T>, KernelError> {
    let (oh, ow) = g.output_size()?;
    check_len("im2col_packed", "input", input.len(), images * g.input_len())?;
    let (k, n) = (taps(g), images * oh * ow);
    let lay = Layout::of::<T>(k, n);
    check_len("im2col_packed", "out", out.len(), lay.len().max(packed_b_len::<T>(k, n)))?;
    if lay.nr > MAX_NR {
        return Err(KernelError::InvalidArgument {
            op: "im2col_packed",
            what: "a tile wider than 32 columns: im2col_packed supports up to 32",
        });
    }
    let ohw = oh * ow;
    let mut pc = 0;
    while pc < k {
        let kcb = lay.kc.min(k - pc);
        for s0 in (0..n).step_by(lay.nr) {
            // The sliver's columns s0.. as runs of one output row each.
            let mut segs = [Seg::default(); MAX_NR];
            let mut count = 0;
            let mut col = s0;
            let end = (s0 + lay.nr).min(n);
            while col < end {
                let (j, p) = (col / ohw, col % ohw);
                let (oy, ox) = (p / ow, p % ow);
                let len = (ow - ox).min(end - col);
                segs[count] = Seg {
                    lane: col - s0,
                    len,
                    image: j * g.input_len(),
                    y0: (oy * g.stride_h) as isize - g.pad_h as isize,
                    x0: (ox * g.stride_w) as isize - g.pad_w as isize,
                };
                count += 1;
                col += len;
            }
            let used = end - s0;
            let block = &mut out[pc * lay.n_pad + s0 * kcb..][..kcb * lay.nr];
            let kk = g.kernel_h * g.kernel_w;
            let (mut c, mut ki, mut kj) = (pc / kk, (pc % kk) / g.kernel_w, pc % g.kernel_w);
            for dst in block.chunks_exact_mut(lay.nr) {
                let tap = Tap {
                    plane: c * g.height * g.width,
                    dy: (ki * g.dilation_h) as isize,
                    dx: (kj * g.dilation_w) as isize,
                };
                for seg in &segs[..count] {
                    seg.gather(input, g, tap, g.stride_w, &mut dst[seg.lane..seg.lane + seg.len]);
                }
                dst[used..].fill(T::ZERO);
                kj += 1;
                if kj == g.kernel_w {
                    kj = 0;
                    ki += 1;
                    if ki == g.kernel_h {
                        ki = 0;
                        c += 1;
                    }
                }
            }
        }
        pc += kcb;
    }
    Ok(PackedB::written(&out[..lay.len()], k, n, lay.isa))
}

/// The transposed column matrix of `images` consecutive NCHW images
/// (`[images * oh * ow, taps]`: row `j * oh * ow + p` holds the taps of output position `p` of
/// image `j`) written straight into `out` (at least [`im2col_packed_t_len`] elements) as the
/// packed B of the weight gradient `dz · colsᵀ` for [`gemm_prepacked`]. The KC blocks of
/// positions are split over `par`'s team (same elements for any thread count).
pub fn im2col_packed_t<'a, T: Float>(
    input: &[T],
    images: usize,
    g: &Conv2dGeometry,
    out: &'a mut [T],
    par: Parallelism<'_>,
) -> Result<PackedB<'a, T>, KernelError> {
    let (oh, ow) = g.output_size()?;
    check_len("im2col_packed_t", "input", input.len(), images * g.input_len())?;
    let (k, n) = (images * oh * ow, taps(g));
    let lay = Layout::of::<T>(k, n);
    check_len("im2col_packed_t", "out", out.len(), lay.len().max(packed_b_len::<T>(k, n)))?;
    let blocks = k.div_ceil(lay.kc.max(1));
    let start = |b: usize| (b * lay.kc).min(k) * lay.n_pad;
    for_each_block(par, &mut out[..lay.len()], blocks, start, |b, part| {
        let p0 = b * lay.kc;
        for p in p0..(p0 + lay.kc).min(k) {
            let mut row = Lanes::new(lay, p);
            row.base -= start(b);
            patch_row(input, g, (oh, ow), p, row, part);
            row.zero(part, n, lay.n_pad - n);
        }
    });
    Ok(PackedB::written(&out[..lay.len()], k, n, lay.isa))
}

/// The `taps` values of output position `pos` (image `pos / ohw`) into a row of lanes.
fn patch_row<T: Float>(
    input: &[T],
    g: &Conv2dGeometry,
    (oh, ow): (usize, usize),
    pos: usize,
    row: Lanes,
    out: &mut [T],
) {
    let (j, p) = (pos / (oh * ow), pos % (oh * ow));
    let (oy, ox) = (p / ow, p % ow);
    let (hw, kw) = (g.height * g.width, g.kernel_w);
    let image = &input[j * g.input_len()..(j + 1) * g.input_len()];
    // Input column of tap kj: x0 + kj * dilation_w.
    let x0 = (ox * g.stride_w) as isize - g.pad_w as isize;
    let dw = g.dilation_w as isize;
    // Taps kj in lo..hi read inside the row: x0 + kj * dw in 0..width.
    let lo = if x0 < 0 {
        (x0.unsigned_abs().div_ceil(g.dilation_w)).min(kw)
    } else {
        0
    };
    let hi = if (g.width as isize) > x0 {
        ((g.width as isize - x0) as usize)
            .div_ceil(g.dilation_w)
            .min(kw)
    } else {
        0
    }
    .max(lo);
    let mut t = 0;
    for c in 0..g.channels {
        let plane = &image[c * hw..(c + 1) * hw];
        for ki in 0..g.kernel_h {
            let y = (oy * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
            if y < 0 || y as usize >= g.height || lo == hi {
                row.zero(out, t, kw);
            } else {
                let src = &plane[y as usize * g.width..(y as usize + 1) * g.width];
                row.zero(out, t, lo);
                row.zero(out, t + hi, kw - hi);
                let xa = (x0 + lo as isize * dw) as usize;
                if g.dilation_w == 1 {
                    row.copy(out, t + lo, &src[xa..xa + (hi - lo)]);
                } else {
                    for (i, &v) in src[xa..].iter().step_by(g.dilation_w).take(hi - lo).enumerate() {
                        row.set(out, t + lo + i, v);
                    }
                }
            }
            t += kw;
        }
    }
}

/// Per-task scratch of [`conv2d_forward`]: a packed image and the product's own scratch, each
/// rounded to a cache line.
fn forward_task_len<T: Float>(g: &Conv2dGeometry, c_out: usize) -> Result<usize, KernelError> {
    let (oh, ow) = g.output_size()?;
    let line = 64 / size_of::<T>();
    let packed = im2col_packed_len::<T>(g, 1)?.div_ceil(line) * line;
    let gemm = gemm_prepacked_scratch_len::<T>(c_out, oh * ow, taps(g), Parallelism::None);
    Ok(packed + gemm.div_ceil(line) * line + line)
}

/// Scratch elements [`conv2d_forward`] needs with `par` (for `c_out` filters).
pub fn conv2d_forward_scratch_len<T: Float>(
    g: &Conv2dGeometry,
    c_out: usize,
    par: Parallelism<'_>,
) -> Result<usize, KernelError> {
    let tasks = match par {
        Parallelism::Team(t) => t.threads(),
        _ => 1,
    };
    Ok(tasks * forward_task_len::<T>(g, c_out)?)
}

/// The task scratch regions, shared by the team's tasks, task i using region i.
struct Regions<T>(*mut T);
// SAFETY: task i derives only [i * len, (i + 1) * len), and the team runs each index once.
unsafe impl<T: Send> Sync for Regions<T> {}
/// The output, shared by the tasks; each image's slice is claimed by exactly one task.
struct OutPtr<T>(*mut T);
// SAFETY: images are claimed through an atomic counter, so each image's output slice is
// written by one task only.
unsafe impl<T: Send> Sync for OutPtr<T> {}

/// The convolution of `images` NCHW images with `w` (`c_out x taps`): `out[j] = w · cols_j`
/// plus `bias[o]` on each output channel, written as NCHW (`[images, c_out, oh * ow]`,
/// overwritten). One product per image, with the image's columns packed straight into the
/// task's scratch ([`im2col_packed`]); images are claimed one at a time by `par`'s team
/// (a [`Parallelism::Team`]; anything else runs on the caller). Every image is computed the
/// same way on any thread, so the bits do not depend on the thread count, and they are those
/// of `gemm(w, im2col(image))` plus the bias. `scratch`: at least
/// [`conv2d_forward_scratch_len`] elements.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward<T: Float>(
    input: &[T],
    images: usize,
    g: &Conv2dGeometry,
    w: MatRef<'_, T>,
    bias: Option<&[T]>,
    out: &mut [T],
    scratch: &mut [T],
    par: Parallelism<'_>,
) -> Result<(), KernelError> {
    const OP: &str = "conv2d_forward";
    let (oh, ow) = g.output_size()?;
    let (c_out, ohw) = (w.rows(), oh * ow);
    if w.cols() != taps(g) {
        return Err(KernelError::InvalidArgument {
            op: OP,
            what: "expected weights with one column per tap (channels * kernel_h * kernel_w)",
        });
    }
    check_len(OP, "input", input.len(), images * g.input_len())?;
    check_len(OP, "out", out.len(), images * c_out * ohw)?;
    if let Some(b) = bias {
        check_len(OP, "bias", b.len(), c_out)?;
    }
    let per = forward_task_len::<T>(g, c_out)?;
    let needed = conv2d_forward_scratch_len::<T>(g, c_out, par)?;
    if scratch.len() < needed {
        return Err(KernelError::ScratchTooSmall {
            op: OP,
            needed,
            found: scratch.len(),
        });
    }
    let image = |j: usize, out_j: &mut [T], region: &mut [T]| -> Result<(), KernelError> {
        let line = 64 / size_of::<T>();
        let off = region.as_ptr().align_offset(64).min(line);
        let region = &mut region[off..];
        let plen = im2col_packed_len::<T>(g, 1)?.div_ceil(line) * line;
        let (pbuf, gbuf) = region.split_at_mut(plen);
        let input_j = &input[j * g.input_len()..(j + 1) * g.input_len()];
        let packed = im2col_packed(input_j, 1, g, pbuf)?;
        let mut c = MatMut::row_major(&mut *out_j, c_out, ohw)?;
        gemm_prepacked(T::ONE, w, &packed, T::ZERO, c.reborrow(), gbuf, Parallelism::None)?;
        if let Some(b) = bias {
            for (o, plane) in out_j.chunks_exact_mut(ohw).enumerate() {
                let b = b[o];
                plane.iter_mut().for_each(|v| *v += b);
            }
        }
        Ok(())
    };
    let team = match par {
        Parallelism::Team(t) if images > 1 => Some(t),
        _ => None,
    };
    let Some(team) = team else {
        let region = &mut scratch[..per];
        for (j, out_j) in out.chunks_exact_mut(c_out * ohw).take(images).enumerate() {
            image(j, out_j, region)?;
        }
        return Ok(());
    };
    let tasks = team.threads().min(images);
    let regions = Regions(scratch.as_mut_ptr());
    let dst = OutPtr(out.as_mut_ptr());
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    team.run(tasks, |i| {
        let (regions, dst) = (&regions, &dst);
        // SAFETY: i < tasks <= threads, so region i lies inside the scratch (checked to hold
        // threads * per elements); each index runs once, so regions never overlap.
        let region = unsafe { core::slice::from_raw_parts_mut(regions.0.add(i * per), per) };
        loop {
            let j = next.fetch_add(1, Ordering::Relaxed);
            if j >= images {
                return;
            }
            // SAFETY: j < images, so image j's output lies inside `out` (checked length);
            // the counter hands each j to one task only, and `out` is borrowed mutably for
            // the whole run.
            let out_j =
                unsafe { core::slice::from_raw_parts_mut(dst.0.add(j * c_out * ohw), c_out * ohw) };
            if image(j, out_j, region).is_err() {
                failed.store(true, Ordering::Relaxed);
            }
        }
    });
    if failed.load(Ordering::Relaxed) {
        // Every argument was checked above; an error here would be a bug of this function.
        return Err(KernelError::InvalidArgument {
            op: OP,
            what: "an image's product failed: report this as a bug",
        });
    }
    Ok(())
}
