//! The convolution products on packed columns ([`im2col_packed`], [`im2col_packed_t`]):
//!
//! * [`conv2d_forward`]: one product per image, `out_j = W · cols_j (+ b)`, with the image's
//!   NCHW output as C: no scatter of a batched product into NCHW, and images (not the small
//!   per-image products) split over the team, each task with its own packing region;
//! * [`conv2d_weight_grad`]: `dW = beta * dW + dz · colsᵀ` over a run of images, the
//!   transposed columns packed once for all of the product's tasks;
//! * [`conv2d_input_grad`]: per image, `dx_j = col2im(Wᵀ · dz_j)` with `dz_j` read where it
//!   lies in NCHW, images over the team (a batch of few small images was one region too
//!   small to split);
//! * [`to_channel_major`]: `dz` of a run of NCHW images as the `[c, n * h * w]` rows the
//!   weight gradient multiplies, split over the team.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::conv::{Conv2dGeometry, im2col_batch};
use crate::conv_packed::{
    im2col_packed, im2col_packed_len, im2col_packed_t, im2col_packed_t_len, taps,
};
use crate::gemm::{gemm, gemm_prepacked, gemm_prepacked_scratch_len, gemm_scratch_len};
use crate::parts::for_each_part;
use crate::reduce::check_len;
use crate::{Float, KernelError, KernelTeam, MatMut, MatRef, Parallelism};

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
        gemm_prepacked(
            T::ONE,
            w,
            &packed,
            T::ZERO,
            c.reborrow(),
            gbuf,
            Parallelism::None,
        )?;
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
    for_each_image(team, images, out, c_out * ohw, scratch, per, OP, image)
}

/// Scratch elements [`conv2d_weight_grad`] needs for `images` images and `c_out` filters with
/// `par`: the packed transposed columns and the product's scratch.
pub fn conv2d_weight_grad_scratch_len<T: Float>(
    g: &Conv2dGeometry,
    images: usize,
    c_out: usize,
    par: Parallelism<'_>,
) -> Result<usize, KernelError> {
    let (oh, ow) = g.output_size()?;
    let line = 64 / size_of::<T>();
    let (k, n) = (images * oh * ow, taps(g));
    // Either path's: the packed transposed columns, or the column matrix for gemm.
    let packed = im2col_packed_t_len::<T>(g, images)?
        .max(k * n)
        .div_ceil(line)
        * line;
    let gemm = gemm_prepacked_scratch_len::<T>(c_out, n, k, par)
        .max(gemm_scratch_len::<T>(c_out, n, k, par));
    Ok(line + packed + gemm)
}

/// Whether the weight gradient packs its transposed columns straight ([`im2col_packed_t`]):
/// when the taps fit one sliver of the tile (a first layer over few channels, LeNet's conv1:
/// 25 taps). There `pack_b` would transpose a partial sliver element by element; with more
/// taps it transposes 8x8 blocks in registers from the column matrix, which measured faster
/// than gathering runs of `kernel_w` taps per position.
fn packs_straight<T: Float>(g: &Conv2dGeometry) -> bool {
    taps(g) <= crate::gemm::packed_layout::<T>(1, 1).1
}

/// The weight gradient of a convolution over `images` NCHW images:
/// `dw = beta * dw + dz · colsᵀ`, with `dz` the `[c_out, images * oh * ow]` gradient of the
/// outputs (image j's positions in columns `j * oh * ow..`, see [`to_channel_major`]) and
/// `dw` `[c_out, taps]`. The transposed columns are packed straight into `scratch` (at least
/// [`conv2d_weight_grad_scratch_len`] elements; [`im2col_packed_t`], split over `par`'s team)
/// and read by every task of the product when the taps fit one tile sliver, else im2col +
/// [`gemm`](crate::gemm) (see `packs_straight`): the bits of
/// `gemm(dz, im2col(images)ᵀ)` for any thread count.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_weight_grad<T: Float>(
    input: &[T],
    images: usize,
    g: &Conv2dGeometry,
    dz: MatRef<'_, T>,
    beta: T,
    dw: MatMut<'_, T>,
    scratch: &mut [T],
    par: Parallelism<'_>,
) -> Result<(), KernelError> {
    const OP: &str = "conv2d_weight_grad";
    let needed = conv2d_weight_grad_scratch_len::<T>(g, images, dz.rows(), par)?;
    if scratch.len() < needed {
        return Err(KernelError::ScratchTooSmall {
            op: OP,
            needed,
            found: scratch.len(),
        });
    }
    let line = 64 / size_of::<T>();
    let off = scratch.as_ptr().align_offset(64).min(line);
    let plen = im2col_packed_t_len::<T>(g, images)?.div_ceil(line) * line;
    let (oh, ow) = g.output_size()?;
    let (k, n) = (images * oh * ow, taps(g));
    let plen = plen.max(k * n).div_ceil(line) * line;
    let (pbuf, gbuf) = scratch[off..].split_at_mut(plen);
    if packs_straight::<T>(g) {
        let packed = im2col_packed_t(input, images, g, pbuf, par)?;
        return gemm_prepacked(T::ONE, dz, &packed, beta, dw, gbuf, par);
    }
    let cols = &mut pbuf[..k * n];
    im2col_batch(input, images, g, cols, par)?;
    let cols = MatRef::row_major(cols, n, k)?;
    gemm(T::ONE, dz, cols.t(), beta, dw, gbuf, par)
}

/// `dst[c, j * plane + p] = src[j, c, p]` for `images` images of `channels` planes of `plane`
/// elements: a run of NCHW gradients as the rows of one product. Channels are split over
/// `par`'s team.
pub fn to_channel_major<T: Float>(
    src: &[T],
    images: usize,
    channels: usize,
    plane: usize,
    dst: &mut [T],
    par: Parallelism<'_>,
) -> Result<(), KernelError> {
    let n = images * channels * plane;
    check_len("to_channel_major", "src", src.len(), n)?;
    check_len("to_channel_major", "dst", dst.len(), n)?;
    let row = images * plane;
    for_each_part(par, dst, channels, row, |c0, _, part| {
        for (i, out) in part.chunks_exact_mut(row.max(1)).enumerate() {
            let c = c0 + i;
            for (j, seg) in out.chunks_exact_mut(plane.max(1)).enumerate() {
                let at = (j * channels + c) * plane;
                seg.copy_from_slice(&src[at..at + plane]);
            }
        }
    });
    Ok(())
}

/// Per-task scratch of [`conv2d_input_grad`]: an image's column gradient and the product's
/// scratch, each rounded to a cache line.
fn input_grad_task_len<T: Float>(g: &Conv2dGeometry, c_out: usize) -> Result<usize, KernelError> {
    let (oh, ow) = g.output_size()?;
    let line = 64 / size_of::<T>();
    let cols = (taps(g) * oh * ow).div_ceil(line) * line;
    let gemm = gemm_scratch_len::<T>(taps(g), oh * ow, c_out, Parallelism::None);
    Ok(cols + gemm.div_ceil(line) * line + line)
}

/// Scratch elements [`conv2d_input_grad`] needs with `par` (for `c_out` filters): the
/// transposed weights and one region per task.
pub fn conv2d_input_grad_scratch_len<T: Float>(
    g: &Conv2dGeometry,
    c_out: usize,
    par: Parallelism<'_>,
) -> Result<usize, KernelError> {
    let tasks = match par {
        Parallelism::Team(t) => t.threads(),
        _ => 1,
    };
    let line = 64 / size_of::<T>();
    let wt = (taps(g) * c_out).div_ceil(line) * line;
    Ok(wt + tasks * input_grad_task_len::<T>(g, c_out)?)
}

/// The input gradient of a convolution over `images` NCHW images: for each image,
/// `dcols_j = Wᵀ · dz_j` (`dz_j` the image's `[c_out, oh * ow]` output gradient, read where
/// it lies in NCHW `dz`), then col2im into `dx_j` (`[channels, height, width]`,
/// overwritten). `w` is `c_out x taps`; it is transposed once into `scratch` so every
/// product reads it in place. Images are claimed one at a time by `par`'s team (a
/// [`Parallelism::Team`]; anything else runs on the caller), each task with its own column
/// buffer: the bits of `col2im(gemm(wᵀ, dz_j))` for any thread count. `scratch`: at least
/// [`conv2d_input_grad_scratch_len`] elements.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_input_grad<T: Float>(
    dz: &[T],
    images: usize,
    g: &Conv2dGeometry,
    w: MatRef<'_, T>,
    dx: &mut [T],
    scratch: &mut [T],
    par: Parallelism<'_>,
) -> Result<(), KernelError> {
    const OP: &str = "conv2d_input_grad";
    let (oh, ow) = g.output_size()?;
    let (c_out, ohw, k) = (w.rows(), oh * ow, taps(g));
    if w.cols() != k {
        return Err(KernelError::InvalidArgument {
            op: OP,
            what: "expected weights with one column per tap (channels * kernel_h * kernel_w)",
        });
    }
    check_len(OP, "dz", dz.len(), images * c_out * ohw)?;
    check_len(OP, "dx", dx.len(), images * g.input_len())?;
    let needed = conv2d_input_grad_scratch_len::<T>(g, c_out, par)?;
    if scratch.len() < needed {
        return Err(KernelError::ScratchTooSmall {
            op: OP,
            needed,
            found: scratch.len(),
        });
    }
    let line = 64 / size_of::<T>();
    let wt_len = (k * c_out).div_ceil(line) * line;
    let (wt, rest) = scratch.split_at_mut(wt_len);
    crate::copy_mat(w.t(), MatMut::row_major(&mut wt[..k * c_out], k, c_out)?)?;
    let wt = MatRef::row_major(&wt[..k * c_out], k, c_out)?;
    let per = input_grad_task_len::<T>(g, c_out)?;
    let image = |j: usize, dx_j: &mut [T], region: &mut [T]| -> Result<(), KernelError> {
        let off = region.as_ptr().align_offset(64).min(line);
        let region = &mut region[off..];
        let clen = (k * ohw).div_ceil(line) * line;
        let (cbuf, gbuf) = region.split_at_mut(clen);
        let cols = &mut cbuf[..k * ohw];
        let dz_j = MatRef::row_major(&dz[j * c_out * ohw..(j + 1) * c_out * ohw], c_out, ohw)?;
        gemm(
            T::ONE,
            wt,
            dz_j,
            T::ZERO,
            MatMut::row_major(&mut *cols, k, ohw)?,
            gbuf,
            Parallelism::None,
        )?;
        crate::col2im(cols, g, dx_j)
    };
    let per_image = g.input_len();
    let team = match par {
        Parallelism::Team(t) if images > 1 => Some(t),
        _ => None,
    };
    for_each_image(team, images, dx, per_image, rest, per, OP, image)
}

/// Runs `image(j, out_j, region)` for each image `j` (`out_j`: image j's `out_len` elements of
/// `out`; `region`: `per` elements of `scratch` owned by the running task), on the team's
/// threads (images claimed one at a time) or, without a team, on the caller. `scratch` holds
/// `per` elements per thread of the team (one without). An error of an image, which the
/// callers' checks rule out, is reported as a bug of `op`.
#[allow(clippy::too_many_arguments)]
fn for_each_image<T: Float>(
    team: Option<&KernelTeam>,
    images: usize,
    out: &mut [T],
    out_len: usize,
    scratch: &mut [T],
    per: usize,
    op: &'static str,
    image: impl Fn(usize, &mut [T], &mut [T]) -> Result<(), KernelError> + Sync,
) -> Result<(), KernelError> {
    let Some(team) = team else {
        let region = &mut scratch[..per];
        for (j, out_j) in out
            .chunks_exact_mut(out_len.max(1))
            .take(images)
            .enumerate()
        {
            image(j, out_j, region)?;
        }
        return Ok(());
    };
    let tasks = team.threads().min(images);
    assert!(scratch.len() >= tasks * per && out.len() >= images * out_len);
    let regions = Regions(scratch.as_mut_ptr());
    let dst = OutPtr(out.as_mut_ptr());
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    team.run(tasks, |i| {
        let (regions, dst) = (&regions, &dst);
        // SAFETY: i < tasks, so region i lies inside `scratch` (asserted to hold tasks * per
        // elements); each index runs once, so regions never overlap.
        let region = unsafe { core::slice::from_raw_parts_mut(regions.0.add(i * per), per) };
        loop {
            let j = next.fetch_add(1, Ordering::Relaxed);
            if j >= images {
                return;
            }
            // SAFETY: j < images, so image j's elements lie inside `out` (asserted length);
            // the counter hands each j to one task only, and `out` is borrowed mutably for
            // the whole run.
            let out_j = unsafe { core::slice::from_raw_parts_mut(dst.0.add(j * out_len), out_len) };
            if image(j, out_j, region).is_err() {
                failed.store(true, Ordering::Relaxed);
            }
        }
    });
    if failed.load(Ordering::Relaxed) {
        // Every argument was checked by the caller; an error here would be a bug.
        return Err(KernelError::InvalidArgument {
            op,
            what: "an image's product failed: report this as a bug",
        });
    }
    Ok(())
}
