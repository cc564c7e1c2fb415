//! im2col / col2im for NCHW convolution: a 2-D convolution becomes one gemm,
//! `out[oc, oh*ow] = W[oc, c*kh*kw] · cols[c*kh*kw, oh*ow]`. One image ([`im2col`]) or a run of
//! images side by side in one column matrix ([`im2col_batch`]: image j's columns are
//! `j*oh*ow..(j+1)*oh*ow`), so a convolution over several images is one gemm and no image's
//! columns are copied twice.
//!
//! Each output row of a kernel tap is one run of valid positions between two runs of padding:
//! the bounds are computed once per row (no test per element), the valid run is a `memcpy`
//! at stride 1 and a strided gather otherwise, and the padding a `fill`.

use crate::parts::for_each_part;
use crate::reduce::check_len;
use crate::{Float, KernelError, Parallelism};

/// Shape of one 2-D convolution over a `channels x height x width` image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Vertical stride (>= 1).
    pub stride_h: usize,
    /// Horizontal stride (>= 1).
    pub stride_w: usize,
    /// Zero padding added above.
    pub pad_h: usize,
    /// Zero padding added on the left.
    pub pad_w: usize,
    /// Zero padding added below (equal to `pad_h` but for DL4J's `Same` mode, where an odd
    /// total puts the extra row at the bottom).
    pub pad_h_end: usize,
    /// Zero padding added on the right (see `pad_h_end`).
    pub pad_w_end: usize,
    /// Vertical dilation (>= 1; 1 is a dense kernel).
    pub dilation_h: usize,
    /// Horizontal dilation (>= 1).
    pub dilation_w: usize,
}

impl Conv2dGeometry {
    /// A square kernel with equal stride, padding and dilation in both directions.
    pub fn square(
        channels: usize,
        height: usize,
        width: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
    ) -> Self {
        Self {
            channels,
            height,
            width,
            kernel_h: kernel,
            kernel_w: kernel,
            stride_h: stride,
            stride_w: stride,
            pad_h: padding,
            pad_w: padding,
            pad_h_end: padding,
            pad_w_end: padding,
            dilation_h: dilation,
            dilation_w: dilation,
        }
    }

    /// `(out_h, out_w)`, or an error when a stride or dilation is 0, the kernel is empty or
    /// does not fit in the padded input.
    pub fn output_size(&self) -> Result<(usize, usize), KernelError> {
        const OP: &str = "im2col";
        if self.stride_h == 0 || self.stride_w == 0 || self.dilation_h == 0 || self.dilation_w == 0
        {
            return Err(KernelError::InvalidArgument {
                op: OP,
                what: "expected strides and dilations >= 1",
            });
        }
        if self.kernel_h == 0 || self.kernel_w == 0 {
            return Err(KernelError::InvalidArgument {
                op: OP,
                what: "expected a kernel of at least 1x1",
            });
        }
        let ext_h = self.dilation_h * (self.kernel_h - 1) + 1;
        let ext_w = self.dilation_w * (self.kernel_w - 1) + 1;
        let ph = self.height + self.pad_h + self.pad_h_end;
        let pw = self.width + self.pad_w + self.pad_w_end;
        if ext_h > ph || ext_w > pw {
            return Err(KernelError::InvalidArgument {
                op: OP,
                what: "expected the dilated kernel to fit in the padded input",
            });
        }
        Ok((
            (ph - ext_h) / self.stride_h + 1,
            (pw - ext_w) / self.stride_w + 1,
        ))
    }

    /// Length of one image: `channels * height * width`.
    pub fn input_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Length of the column matrix: `(channels * kernel_h * kernel_w) * (out_h * out_w)`.
    pub fn cols_len(&self) -> Result<usize, KernelError> {
        let (oh, ow) = self.output_size()?;
        Ok(self.channels * self.kernel_h * self.kernel_w * oh * ow)
    }
}

/// The output columns `lo..hi` of a row whose input column is `ox * stride + off` are the ones
/// that fall inside `0..width` (`lo <= hi <= ow`).
#[inline]
pub(crate) fn valid_run(ow: usize, width: usize, stride: usize, off: isize) -> (usize, usize) {
    if stride == 1 {
        // No division: what the general formula gives for a stride of 1.
        let lo = (off.min(0).unsigned_abs()).min(ow);
        let hi = ((width as isize - off).max(0) as usize).min(ow);
        return (lo, hi.max(lo));
    }
    let lo = if off < 0 {
        off.unsigned_abs().div_ceil(stride).min(ow)
    } else {
        0
    };
    let hi = if (width as isize) > off {
        ((width as isize - off) as usize).div_ceil(stride).min(ow)
    } else {
        0
    };
    (lo, hi.max(lo))
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (an output row: 8 - 30 elements
/// for LeNet) as inline 8-element moves: `copy_from_slice`, and any plain copy loop (which
/// LLVM turns back into one), calls `memmove`, measured at 7 % of a LeNet step in those
/// calls. Up to 32 elements the moves are written out (no loop for LLVM to turn back, and
/// none of the loop's stack round trip); longer runs loop with the index through
/// `black_box`, so the loop stays a loop. The last block overlaps the previous one instead of
/// a scalar tail. (The packed im2col copies its runs of at most a sliver with it too.)
#[inline(always)]
pub(crate) fn copy_short<T: Float>(dst: &mut [T], src: &[T]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    if n < 8 {
        let mut i = 0;
        while i < n {
            dst[i] = src[i];
            i = core::hint::black_box(i + 1);
        }
        return;
    }
    let block = |d: &mut [T], s: &[T]| {
        let s: &[T; 8] = s.try_into().expect("8 elements");
        let d: &mut [T; 8] = d.try_into().expect("8 elements");
        *d = *s;
    };
    if n <= 32 {
        block(&mut dst[..8], &src[..8]);
        if n > 16 {
            block(&mut dst[8..16], &src[8..16]);
        }
        if n > 24 {
            block(&mut dst[16..24], &src[16..24]);
        }
        if n > 8 {
            block(&mut dst[n - 8..], &src[n - 8..]);
        }
        return;
    }
    let mut i = 0;
    while i + 8 <= n {
        block(&mut dst[i..i + 8], &src[i..i + 8]);
        i = core::hint::black_box(i + 8);
    }
    if i < n {
        block(&mut dst[n - 8..n], &src[n - 8..n]);
    }
}

/// Rows `r0..r0 + part.len() / ld` of the batched column matrix of `images` images (row r
/// at `part[(r - r0) * ld..]`, image j's columns at `j * oh * ow` within it).
fn im2col_rows<T: Float>(
    input: &[T],
    images: usize,
    g: &Conv2dGeometry,
    r0: usize,
    part: &mut [T],
    ld: usize,
) {
    let Ok((oh, ow)) = g.output_size() else {
        return;
    };
    let (ohw, hw, per) = (oh * ow, g.height * g.width, g.input_len());
    let taps = g.kernel_h * g.kernel_w;
    for (i, row) in part.chunks_exact_mut(ld.max(1)).enumerate() {
        let r = r0 + i;
        let (c, ki, kj) = (r / taps, (r % taps) / g.kernel_w, r % g.kernel_w);
        let off = (kj * g.dilation_w) as isize - g.pad_w as isize;
        let (lo, hi) = valid_run(ow, g.width, g.stride_w, off);
        // lo * stride + off >= 0 and (hi - 1) * stride + off < width, by valid_run.
        let x0 = if lo < hi {
            ((lo * g.stride_w) as isize + off) as usize
        } else {
            0
        };
        // The output rows whose input row `oy * stride_h + yoff` lies inside the image.
        let yoff = (ki * g.dilation_h) as isize - g.pad_h as isize;
        let (ylo, yhi) = if lo < hi {
            valid_run(oh, g.height, g.stride_h, yoff)
        } else {
            (0, 0)
        };
        for j in 0..images {
            let plane = &input[j * per + c * hw..j * per + (c + 1) * hw];
            let seg = &mut row[j * ohw..(j + 1) * ohw];
            // Zeros only where the kernel reads padding (none in LeNet): the fills and their
            // calls stay off the common path.
            if ylo > 0 {
                seg[..ylo * ow].fill(T::ZERO);
            }
            if yhi < oh {
                seg[yhi * ow..].fill(T::ZERO);
            }
            for (oy, out) in (ylo..yhi).zip(seg[ylo * ow..yhi * ow].chunks_exact_mut(ow)) {
                // y >= 0 and y < height, by valid_run.
                let y = ((oy * g.stride_h) as isize + yoff) as usize;
                let src = &plane[y * g.width + x0..(y + 1) * g.width];
                if lo > 0 {
                    out[..lo].fill(T::ZERO);
                }
                if hi < ow {
                    out[hi..].fill(T::ZERO);
                }
                if g.stride_w == 1 {
                    copy_short(&mut out[lo..hi], &src[..hi - lo]);
                } else {
                    for (o, &v) in out[lo..hi].iter_mut().zip(src.iter().step_by(g.stride_w)) {
                        *o = v;
                    }
                }
            }
        }
    }
}

/// Adds one image's column matrix (row `r` at `cols[r * ld..]`) into `grad` (not cleared).
fn col2im_image<T: Float>(cols: &[T], g: &Conv2dGeometry, grad: &mut [T], ld: usize) {
    let Ok((oh, ow)) = g.output_size() else {
        return;
    };
    let ohw = oh * ow;
    let mut r = 0;
    for c in 0..g.channels {
        let plane = &mut grad[c * g.height * g.width..(c + 1) * g.height * g.width];
        for ki in 0..g.kernel_h {
            for kj in 0..g.kernel_w {
                let row = &cols[r * ld..r * ld + ohw];
                r += 1;
                let off = (kj * g.dilation_w) as isize - g.pad_w as isize;
                let (lo, hi) = valid_run(ow, g.width, g.stride_w, off);
                if lo == hi {
                    continue;
                }
                let x0 = ((lo * g.stride_w) as isize + off) as usize;
                for oy in 0..oh {
                    let y = (oy * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
                    if y < 0 || y as usize >= g.height {
                        continue;
                    }
                    let dst = &mut plane[y as usize * g.width..(y as usize + 1) * g.width];
                    let src = &row[oy * ow + lo..oy * ow + hi];
                    if g.stride_w == 1 {
                        for (d, &v) in dst[x0..x0 + (hi - lo)].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (d, &v) in dst[x0..].iter_mut().step_by(g.stride_w).zip(src) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// Unfolds one NCHW image into a row-major `(c*kh*kw) x (oh*ow)` matrix; padding reads as 0.
///
/// ```
/// use dl4rs_kernels::{im2col, Conv2dGeometry};
/// let g = Conv2dGeometry::square(1, 3, 3, 2, 1, 0, 1); // 1 channel, 3x3 image, 2x2 kernel
/// let img: Vec<f32> = (0..9).map(|v| v as f32).collect();
/// let mut cols = vec![0.0f32; g.cols_len()?];
/// im2col(&img, &g, &mut cols)?;
/// assert_eq!(&cols[..4], &[0.0, 1.0, 3.0, 4.0]); // kernel tap (0,0) at the 4 positions
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
pub fn im2col<T: Float>(
    input: &[T],
    g: &Conv2dGeometry,
    cols: &mut [T],
) -> Result<(), KernelError> {
    im2col_batch(input, 1, g, cols, Parallelism::None)
}

/// Unfolds `images` consecutive NCHW images into one row-major
/// `(c*kh*kw) x (images*oh*ow)` matrix, image j in columns `j*oh*ow..(j+1)*oh*ow`: the
/// right operand of one gemm computing the convolution of all of them. Rows are split over
/// `par`'s team (same bits for any thread count).
///
/// ```
/// use dl4rs_kernels::{im2col, im2col_batch, Conv2dGeometry, Parallelism};
/// let g = Conv2dGeometry::square(1, 3, 3, 2, 1, 0, 1);
/// let imgs: Vec<f32> = (0..18).map(|v| v as f32).collect(); // two 3x3 images
/// let mut both = vec![0.0f32; 2 * g.cols_len()?];
/// im2col_batch(&imgs, 2, &g, &mut both, Parallelism::None)?;
/// let mut second = vec![0.0f32; g.cols_len()?];
/// im2col(&imgs[9..], &g, &mut second)?;
/// assert_eq!(&both[4..8], &second[..4]); // tap (0,0) of image 1 follows image 0's
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
pub fn im2col_batch<T: Float>(
    input: &[T],
    images: usize,
    g: &Conv2dGeometry,
    cols: &mut [T],
    par: Parallelism<'_>,
) -> Result<(), KernelError> {
    let (oh, ow) = g.output_size()?;
    check_len("im2col", "input", input.len(), images * g.input_len())?;
    check_len("im2col", "cols", cols.len(), images * g.cols_len()?)?;
    let ld = images * oh * ow;
    let rows = g.channels * g.kernel_h * g.kernel_w;
    for_each_part(par, cols, rows, ld, |r0, _, part| {
        im2col_rows(input, images, g, r0, part, ld);
    });
    Ok(())
}

/// The adjoint of [`im2col`] (convolution backward to the input): adds each column entry
/// back into the image position it was read from. `input_grad` is overwritten, not
/// accumulated into.
pub fn col2im<T: Float>(
    cols: &[T],
    g: &Conv2dGeometry,
    input_grad: &mut [T],
) -> Result<(), KernelError> {
    col2im_batch(cols, 1, g, input_grad, Parallelism::None)
}

/// The adjoint of [`im2col_batch`]: the gradients of `images` consecutive images
/// (overwritten) from one `(c*kh*kw) x (images*oh*ow)` column matrix; images are split over
/// `par`'s team (same bits for any thread count).
pub fn col2im_batch<T: Float>(
    cols: &[T],
    images: usize,
    g: &Conv2dGeometry,
    input_grad: &mut [T],
    par: Parallelism<'_>,
) -> Result<(), KernelError> {
    let (oh, ow) = g.output_size()?;
    let per = g.input_len();
    check_len("col2im", "input_grad", input_grad.len(), images * per)?;
    check_len("col2im", "cols", cols.len(), images * g.cols_len()?)?;
    let ld = images * oh * ow;
    for_each_part(par, input_grad, images, per, |j0, j1, part| {
        part.fill(T::ZERO);
        for j in j0..j1 {
            let grad = &mut part[(j - j0) * per..(j - j0 + 1) * per];
            col2im_image(&cols[j * oh * ow..], g, grad, ld);
        }
    });
    Ok(())
}
