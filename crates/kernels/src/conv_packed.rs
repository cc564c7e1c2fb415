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
//! the bits of [`gemm`](crate::gemm) on the column matrix. The convolution products built on
//! them are in `conv_products.rs`.

use crate::conv::{Conv2dGeometry, copy_short};
use crate::dispatch::Isa;
use crate::gemm::{PackedB, packed_b_len, packed_layout};
use crate::parts::for_each_block;
use crate::reduce::check_len;
use crate::{Float, KernelError, Parallelism};

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
            f(
                self.base + (col >> self.shift) * self.stride + lane,
                done,
                take,
            );
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
            copy_short(&mut out[d..d + n], &src[s..s + n]);
        });
    }

    #[inline]
    fn set<T: Float>(self, out: &mut [T], col: usize, v: T) {
        out[self.base + (col >> self.shift) * self.stride + (col & ((1 << self.shift) - 1))] = v;
    }
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
    /// Without padding: where tap (0, 0) reads the run's first position in the input.
    start: usize,
    /// Input row and column of tap (0, 0) at the run's first position (padding included).
    y0: isize,
    x0: isize,
}

impl Seg {
    /// The run's values of one tap into `dst` (`len` lanes); padding reads as 0.
    #[inline(always)]
    fn gather<T: Float>(
        &self,
        input: &[T],
        g: &Conv2dGeometry,
        tap: Tap,
        sw: usize,
        dst: &mut [T],
    ) {
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
                copy_short(dst, &row[x..x + self.len]);
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

pub(crate) fn taps(g: &Conv2dGeometry) -> usize {
    g.channels * g.kernel_h * g.kernel_w
}

/// Elements [`im2col_packed`] needs for `images` images (on any dispatch path).
pub fn im2col_packed_len<T: Float>(
    g: &Conv2dGeometry,
    images: usize,
) -> Result<usize, KernelError> {
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
    check_len(
        "im2col_packed",
        "input",
        input.len(),
        images * g.input_len(),
    )?;
    let (k, n) = (taps(g), images * oh * ow);
    let lay = Layout::of::<T>(k, n);
    check_len(
        "im2col_packed",
        "out",
        out.len(),
        lay.len().max(packed_b_len::<T>(k, n)),
    )?;
    if lay.nr > MAX_NR {
        return Err(KernelError::InvalidArgument {
            op: "im2col_packed",
            what: "a tile wider than 32 columns: im2col_packed supports up to 32",
        });
    }
    match lay.isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the AVX2 and AVX-512 paths are only current on CPUs with AVX2 (dispatch).
        Isa::Avx2 | Isa::Avx512 => unsafe { fill_packed_avx2(input, images, g, lay, out) },
        _ => fill_packed(input, images, g, lay, out),
    }
    Ok(PackedB::written(&out[..lay.len()], k, n, lay.isa))
}

/// [`im2col_packed`]'s loops compiled for AVX2 (8-element moves become one vector move).
///
/// # Safety
/// The CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_packed_avx2<T: Float>(
    input: &[T],
    images: usize,
    g: &Conv2dGeometry,
    lay: Layout,
    out: &mut [T],
) {
    fill_packed(input, images, g, lay, out);
}

/// The loops of [`im2col_packed`] (arguments checked there): sliver by sliver, each tap row
/// as the runs of the sliver's output rows.
#[inline(always)]
fn fill_packed<T: Float>(
    input: &[T],
    images: usize,
    g: &Conv2dGeometry,
    lay: Layout,
    out: &mut [T],
) {
    let Ok((oh, ow)) = g.output_size() else {
        return;
    };
    let (k, n) = (taps(g), images * oh * ow);
    let dense = g.pad_h == 0
        && g.pad_h_end == 0
        && g.pad_w == 0
        && g.pad_w_end == 0
        && g.stride_w == 1
        && g.dilation_w == 1;
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
                    start: j * g.input_len() + oy * g.stride_h * g.width + ox * g.stride_w,
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
                if dense {
                    // No padding, unit steps along rows: every run is a plain copy.
                    let at = tap.plane + tap.dy as usize * g.width + tap.dx as usize;
                    for seg in &segs[..count] {
                        let src = &input[seg.start + at..seg.start + at + seg.len];
                        copy_short(&mut dst[seg.lane..seg.lane + seg.len], src);
                    }
                } else {
                    for seg in &segs[..count] {
                        let d = &mut dst[seg.lane..seg.lane + seg.len];
                        seg.gather(input, g, tap, g.stride_w, d);
                    }
                }
                if used < lay.nr {
                    dst[used..].fill(T::ZERO);
                }
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
    check_len(
        "im2col_packed_t",
        "input",
        input.len(),
        images * g.input_len(),
    )?;
    let (k, n) = (images * oh * ow, taps(g));
    let lay = Layout::of::<T>(k, n);
    check_len(
        "im2col_packed_t",
        "out",
        out.len(),
        lay.len().max(packed_b_len::<T>(k, n)),
    )?;
    let blocks = k.div_ceil(lay.kc.max(1));
    let start = |b: usize| (b * lay.kc).min(k) * lay.n_pad;
    for_each_block(par, &mut out[..lay.len()], blocks, start, |b, part| {
        let p0 = b * lay.kc;
        if n <= lay.nr && lay.nr <= MAX_NR && lay.nr.is_multiple_of(8) {
            match lay.isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the AVX2 and AVX-512 paths are only current on CPUs with AVX2.
                Isa::Avx2 | Isa::Avx512 => unsafe {
                    one_sliver_rows_avx2(input, g, (oh, ow), p0, lay.nr, n, part)
                },
                _ => one_sliver_rows(input, g, (oh, ow), p0, lay.nr, n, part),
            }
            return;
        }
        for p in p0..(p0 + lay.kc).min(k) {
            let mut row = Lanes::new(lay, p);
            row.base -= start(b);
            patch_row(input, g, (oh, ow), p, row, part);
            row.zero(part, n, lay.n_pad - n);
        }
    });
    Ok(PackedB::written(&out[..lay.len()], k, n, lay.isa))
}

/// [`one_sliver_rows`] compiled for AVX2.
///
/// # Safety
/// The CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn one_sliver_rows_avx2<T: Float>(
    input: &[T],
    g: &Conv2dGeometry,
    out_hw: (usize, usize),
    p0: usize,
    nr: usize,
    taps: usize,
    part: &mut [T],
) {
    one_sliver_rows(input, g, out_hw, p0, nr, taps, part);
}

/// The rows of positions `p0..` of a one-sliver transposed column matrix: consecutive runs
/// of `nr` lanes in `part`.
#[inline(always)]
fn one_sliver_rows<T: Float>(
    input: &[T],
    g: &Conv2dGeometry,
    (oh, ow): (usize, usize),
    p0: usize,
    nr: usize,
    taps: usize,
    part: &mut [T],
) {
    let (mut oy, mut ox) = ((p0 % (oh * ow)) / ow, p0 % ow);
    let mut j = p0 / (oh * ow);
    for dst in part.chunks_exact_mut(nr) {
        patch_lanes(input, g, j, oy, ox, dst, taps);
        ox += 1;
        if ox == ow {
            ox = 0;
            oy += 1;
            if oy == oh {
                oy = 0;
                j += 1;
            }
        }
    }
}

/// The `taps` values of output position `(oy, ox)` of image `j` into the `nr` lanes `dst`
/// of a one-sliver row, lanes `taps..` zero. The row is built in a local, zeroed buffer with
/// 8 lanes of slack, so a run of `kernel_w <= 8` taps that reads inside its input row moves
/// as one 8-element block: its extra lanes are overwritten by the next runs (runs go in lane
/// order and cover every tap), and those past the last run are zeroed again as one block;
/// then the row goes out in 8-lane blocks. No variable-length copy or fill per row (each was
/// a scalar loop or a `memset` call).
#[inline(always)]
fn patch_lanes<T: Float>(
    input: &[T],
    g: &Conv2dGeometry,
    j: usize,
    oy: usize,
    ox: usize,
    dst: &mut [T],
    taps: usize,
) {
    let (hw, kw) = (g.height * g.width, g.kernel_w);
    let mut buf = [T::ZERO; MAX_NR + 8];
    let image = j * g.input_len();
    let x0 = (ox * g.stride_w) as isize - g.pad_w as isize;
    let x_last = x0 + ((kw - 1) * g.dilation_w) as isize;
    let inside = x0 >= 0 && (x_last as usize) < g.width;
    let mut t = 0;
    for c in 0..g.channels {
        for ki in 0..g.kernel_h {
            let y = (oy * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
            if y >= 0 && (y as usize) < g.height {
                let at = image + c * hw + y as usize * g.width;
                if inside && g.dilation_w == 1 {
                    let s = at + x0 as usize;
                    if kw <= 8 && s + 8 <= input.len() {
                        let src: &[T; 8] = input[s..s + 8].try_into().expect("8 elements");
                        let d: &mut [T; 8] = (&mut buf[t..t + 8]).try_into().expect("8 lanes");
                        *d = *src;
                    } else {
                        copy_short(&mut buf[t..t + kw], &input[s..s + kw]);
                    }
                } else {
                    for (kj, d) in buf[t..t + kw].iter_mut().enumerate() {
                        let x = x0 + (kj * g.dilation_w) as isize;
                        *d = if x >= 0 && (x as usize) < g.width {
                            input[at + x as usize]
                        } else {
                            T::ZERO
                        };
                    }
                }
            } else {
                // A padding row: lanes t.. may hold the previous run's extra lanes.
                buf[t..t + kw].fill(T::ZERO);
            }
            t += kw;
        }
    }
    let tail: &mut [T; 8] = (&mut buf[taps..taps + 8]).try_into().expect("8 lanes");
    *tail = [T::ZERO; 8];
    for (d, s) in dst.chunks_exact_mut(8).zip(buf.chunks_exact(8)) {
        let d: &mut [T; 8] = d.try_into().expect("8 lanes");
        let s: &[T; 8] = s.try_into().expect("8 lanes");
        *d = *s;
    }
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
                    for (i, &v) in src[xa..]
                        .iter()
                        .step_by(g.dilation_w)
                        .take(hi - lo)
                        .enumerate()
                    {
                        row.set(out, t + lo + i, v);
                    }
                }
            }
            t += kw;
        }
    }
}
