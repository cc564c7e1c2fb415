//! im2col / col2im for NCHW convolution: a 2-D convolution becomes one gemm,
//! `out[oc, oh*ow] = W[oc, c*kh*kw] · cols[c*kh*kw, oh*ow]`. One image at a time; the caller
//! loops over the batch (or points `cols` at consecutive column blocks).

use crate::reduce::check_len;
use crate::{Float, KernelError};

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
    let (oh, ow) = g.output_size()?;
    check_len("im2col", "input", input.len(), g.input_len())?;
    check_len("im2col", "cols", cols.len(), g.cols_len()?)?;
    let mut rows = cols.chunks_exact_mut((oh * ow).max(1));
    for c in 0..g.channels {
        let plane = &input[c * g.height * g.width..(c + 1) * g.height * g.width];
        for ki in 0..g.kernel_h {
            for kj in 0..g.kernel_w {
                let Some(row) = rows.next() else {
                    return Ok(());
                };
                for oy in 0..oh {
                    let y = (oy * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
                    let out = &mut row[oy * ow..(oy + 1) * ow];
                    if y < 0 || y as usize >= g.height {
                        out.fill(T::ZERO);
                        continue;
                    }
                    let src = &plane[y as usize * g.width..(y as usize + 1) * g.width];
                    for (ox, o) in out.iter_mut().enumerate() {
                        let x = (ox * g.stride_w + kj * g.dilation_w) as isize - g.pad_w as isize;
                        *o = if x < 0 || x as usize >= g.width {
                            T::ZERO
                        } else {
                            src[x as usize]
                        };
                    }
                }
            }
        }
    }
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
    let (oh, ow) = g.output_size()?;
    check_len("col2im", "input_grad", input_grad.len(), g.input_len())?;
    check_len("col2im", "cols", cols.len(), g.cols_len()?)?;
    input_grad.fill(T::ZERO);
    let mut rows = cols.chunks_exact((oh * ow).max(1));
    for c in 0..g.channels {
        let plane = &mut input_grad[c * g.height * g.width..(c + 1) * g.height * g.width];
        for ki in 0..g.kernel_h {
            for kj in 0..g.kernel_w {
                let Some(row) = rows.next() else {
                    return Ok(());
                };
                for oy in 0..oh {
                    let y = (oy * g.stride_h + ki * g.dilation_h) as isize - g.pad_h as isize;
                    if y < 0 || y as usize >= g.height {
                        continue;
                    }
                    let dst = &mut plane[y as usize * g.width..(y as usize + 1) * g.width];
                    for (ox, &v) in row[oy * ow..(oy + 1) * ow].iter().enumerate() {
                        let x = (ox * g.stride_w + kj * g.dilation_w) as isize - g.pad_w as isize;
                        if x >= 0 && (x as usize) < g.width {
                            dst[x as usize] += v;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
