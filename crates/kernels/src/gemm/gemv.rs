//! The one-row product (`m == 1`, batch-1 inference): B streamed where it lies, without
//! packing, columns split over tasks on boundaries that keep the vector loops full.

use super::CPtr;
use super::kernels::GemmSpec;
use crate::{Float, MatRef};

pub(super) struct GemvJob<'s, 'a, T> {
    pub(super) spec: &'s GemmSpec<T>,
    pub(super) alpha: T,
    pub(super) a: MatRef<'a, T>,
    pub(super) b: MatRef<'a, T>,
    pub(super) beta: T,
    pub(super) c: CPtr<T>,
    pub(super) cs_c: usize,
}

/// m == 1: columns `j0..j1` split over `tasks` (boundaries on multiples of 64 columns; any
/// boundary would give the same bits, 64 keeps the vector loops full).
pub(super) fn run_gemv<T: Float>(job: &GemvJob<'_, '_, T>, j0: usize, j1: usize, tasks: usize) {
    if tasks <= 1 {
        gemv_range(job, j0, j1);
        return;
    }
    let left = tasks / 2;
    let mid = (j0 + ((j1 - j0) * left / tasks).div_ceil(64) * 64).min(j1);
    rayon::join(
        || run_gemv(job, j0, mid, left),
        || run_gemv(job, mid, j1, tasks - left),
    );
}

pub(super) fn gemv_range<T: Float>(job: &GemvJob<'_, '_, T>, j0: usize, j1: usize) {
    if j0 == j1 {
        return;
    }
    let (a, b) = (job.a, job.b);
    let k = a.cols();
    let (x, incx) = (a.data().as_ptr(), a.col_stride());
    let (rs_b, cs_b) = (b.row_stride(), b.col_stride());
    // SAFETY: columns j0..j1 of the 1 x n output are inside C and owned by this task; the
    // reads are inside the views checked at construction.
    unsafe {
        let bp = b.data().as_ptr().add(j0 * cs_b);
        let c = job.c.0.add(j0 * job.cs_c);
        if cs_b == 1 {
            (job.spec.gemv)(
                k,
                j1 - j0,
                x,
                incx,
                bp,
                rs_b,
                job.alpha,
                job.beta,
                c,
                job.cs_c,
            );
        } else {
            gemv_strided(
                k,
                j1 - j0,
                x,
                incx,
                bp,
                rs_b,
                cs_b,
                job.alpha,
                job.beta,
                c,
                job.cs_c,
            );
        }
    }
}

/// m == 1 with B not unit-stride along columns (e.g. x·Wᵀ): one dot product per column, in
/// 8 fixed lanes from index 0 when both operands are contiguous so LLVM can vectorize.
///
/// # Safety
/// As for the gemv kernels, with B read at `p*rs_b + j*cs_b`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemv_strided<T: Float>(
    k: usize,
    n: usize,
    x: *const T,
    incx: usize,
    b: *const T,
    rs_b: usize,
    cs_b: usize,
    alpha: T,
    beta: T,
    c: *mut T,
    cs_c: usize,
) {
    for j in 0..n {
        // SAFETY: p < k, j < n: inside the views, per the caller.
        unsafe {
            let col = b.add(j * cs_b);
            let acc = if incx == 1 && rs_b == 1 {
                let xs = core::slice::from_raw_parts(x, k);
                let bs = core::slice::from_raw_parts(col, k);
                crate::reduce::dot_impl(xs, bs)
            } else {
                let mut acc = T::ZERO;
                for p in 0..k {
                    acc += *x.add(p * incx) * *col.add(p * rs_b);
                }
                acc
            };
            let p = c.add(j * cs_c);
            *p = if beta == T::ZERO {
                alpha * acc
            } else {
                alpha * acc + beta * *p
            };
        }
    }
}
