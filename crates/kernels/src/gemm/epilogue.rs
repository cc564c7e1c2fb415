//! The fused epilogue of a dense layer's forward product: `C = act(A·B + bias)`, keeping
//! `pre = A·B + bias` when the activation's derivative needs it ([`gemm_bias_act`]).
//!
//! Each thread applies it to the blocks of C it computed, right after their last depth
//! block, while the `MC x NC` block is still in its L2 cache. Two things come from that over
//! a separate [`bias_act`](crate::bias_act) pass: the epilogue runs on every thread of the
//! product instead of on the caller alone, and C is not read back from memory. Applying it
//! inside the microkernel, on the tile in registers, would save the L2 round trip too, but
//! needs each activation written again in every path's intrinsics; this way the activation
//! is the one element-wise map of `elementwise.rs`, so the bits are those of
//! `gemm` followed by `bias_act` (tested on every dispatch path).

use super::{CPtr, gemm_impl};
use crate::elementwise::unary_assign;
use crate::{Float, KernelError, MatMut, MatRef, PackedB, Parallelism, Unary};

/// `c = act(a·b + bias)` (α = 1, β = 0: C's old contents are not read), with
/// `pre = a·b + bias` when given; `b` may also come packed (see
/// [`gemm_packed_b`](crate::gemm_packed_b)). Same bits as [`gemm`](crate::gemm) followed by
/// [`bias_act`](crate::bias_act), for any thread count. `c` and `pre` must have rows of
/// unit stride (row-major or row-strided), `bias` one element per column, and `scratch`
/// [`gemm_scratch_len`](crate::gemm_scratch_len) elements.
///
/// ```
/// use dl4rs_kernels::{gemm_bias_act, gemm_scratch_len, MatMut, MatRef, Parallelism, Unary};
/// let x = [1.0f32, -2.0]; // 1 x 2
/// let w = [1.0f32, 1.0, 1.0, 3.0]; // 2 x 2
/// let (mut out, mut pre) = ([0.0f32; 2], [0.0f32; 2]);
/// let mut scratch = vec![0.0; gemm_scratch_len::<f32>(1, 2, 2, Parallelism::None)];
/// gemm_bias_act(
///     MatRef::row_major(&x, 1, 2)?,
///     MatRef::row_major(&w, 2, 2)?,
///     None,
///     &[0.5, 0.5],
///     Unary::Relu,
///     Some(MatMut::row_major(&mut pre, 1, 2)?),
///     MatMut::row_major(&mut out, 1, 2)?,
///     &mut scratch,
///     Parallelism::None,
/// )?;
/// assert_eq!((pre, out), ([-0.5, -4.5], [0.0, 0.0]));
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gemm_bias_act<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    packed: Option<&PackedB<'_, T>>,
    bias: &[T],
    act: Unary<T>,
    pre: Option<MatMut<'_, T>>,
    c: MatMut<'_, T>,
    scratch: &mut [T],
    par: Parallelism<'_>,
) -> Result<(), KernelError> {
    const OP: &str = "gemm_bias_act";
    let (m, n) = (c.rows(), c.cols());
    if bias.len() != n {
        return Err(KernelError::Length {
            op: OP,
            what: "bias (one element per column of C)",
            expected: n,
            found: bias.len(),
        });
    }
    if c.col_stride() != 1 && n > 1 {
        return Err(KernelError::InvalidArgument {
            op: OP,
            what: "C must have rows of unit stride (row-major): write into a row-major array",
        });
    }
    let pre = match pre {
        Some(p) if p.rows() != m || p.cols() != n => {
            return Err(KernelError::OutputShape {
                op: OP,
                rows: m,
                cols: n,
                c_rows: p.rows(),
                c_cols: p.cols(),
            });
        }
        Some(p) if p.col_stride() != 1 && n > 1 => {
            return Err(KernelError::InvalidArgument {
                op: OP,
                what: "pre must have rows of unit stride (row-major): write into a row-major array",
            });
        }
        Some(mut p) => Some((CPtr(p.as_mut_ptr()), p.row_stride())),
        None => None,
    };
    if let Some(p) = packed
        && p.info().shape() != (b.rows(), b.cols())
    {
        return Err(KernelError::InvalidArgument {
            op: OP,
            what: "the packed B must be packed from b (same rows and columns): pack b again",
        });
    }
    let source = match packed.filter(|p| p.usable()) {
        Some(p) => super::BSource::PackedWithView(p),
        None => super::BSource::View,
    };
    let epi = Epilogue {
        bias: bias.as_ptr(),
        act,
        pre,
    };
    gemm_impl(T::ONE, a, b, source, T::ZERO, c, scratch, par, Some(&epi))
}

/// What [`gemm_bias_act`] applies, as pointers the product's tasks share: each task touches
/// only the rows and columns of its own blocks of C (and the same ones of `pre`).
pub(super) struct Epilogue<T> {
    /// One element per column of C.
    bias: *const T,
    act: Unary<T>,
    /// `pre`'s origin and row stride (unit column stride).
    pre: Option<(CPtr<T>, usize)>,
}

// SAFETY: tasks only read `bias`, and write `pre` in disjoint blocks (those of C they own);
// the borrows the pointers came from outlive the product (`gemm_bias_act`'s call).
unsafe impl<T: Sync + Send> Sync for Epilogue<T> {}

impl<T: Float> Epilogue<T> {
    /// Applies the epilogue to rows `r0..r0 + rows`, columns `c0..c0 + cols` of C, whose
    /// element (r0, c0) is at `c` and rows `rs_c` apart (columns contiguous).
    ///
    /// # Safety
    /// The region is inside C (and so inside `pre` and `bias`), computed, and owned by the
    /// calling task.
    pub(super) unsafe fn apply(
        &self,
        c: *mut T,
        rs_c: usize,
        (r0, c0): (usize, usize),
        (rows, cols): (usize, usize),
    ) {
        // SAFETY: per the caller, every slice below lies inside the region it owns.
        unsafe {
            let bias = core::slice::from_raw_parts(self.bias.add(c0), cols);
            for i in 0..rows {
                let row = core::slice::from_raw_parts_mut(c.add(i * rs_c), cols);
                for (v, &b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
                if let Some((pre, rs_p)) = self.pre {
                    core::slice::from_raw_parts_mut(pre.0.add((r0 + i) * rs_p + c0), cols)
                        .copy_from_slice(row);
                }
                unary_assign(self.act, row);
            }
        }
    }
}
