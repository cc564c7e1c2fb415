//! Matrix products through the kernels' gemm. Transposed and strided 2-D views are passed as
//! strides (no copies); the packing scratch comes from the current workspace, so a product in
//! a warmed-up workspace makes no heap allocation. Threads: the calling thread's setting and
//! team (see [`super::threads`]).

use dl4rs_kernels::{MatMut, MatRef, gemm, gemm_scratch_len};
use dl4rs_memory::Buffer;

use crate::array::{ArrayView, AsView, AsViewMut, DataType, NdArray, Place};
use crate::error::{ArrayError, invalid};
use crate::shape::Shape;

fn matrix_dims<T: DataType>(
    op: &'static str,
    v: &ArrayView<'_, T>,
) -> Result<(usize, usize), ArrayError> {
    match v.layout.shape().dims() {
        &[r, c] => Ok((r, c)),
        other => Err(invalid(
            op,
            format!("expected a 2-D matrix, found shape {other:?}"),
        )),
    }
}

/// `c = alpha * a·b + beta * c` for 2-D arrays (views may be transposed or strided; `c` may be
/// strided but not overlapping). With `beta == 0`, `c`'s old contents are ignored.
pub fn gemm_into<T: DataType>(
    alpha: T,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
    beta: T,
    c: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    let (a, b) = (a.view(), b.view());
    let (m, ka) = matrix_dims("gemm", &a)?;
    let (kb, n) = matrix_dims("gemm", &b)?;
    if ka != kb {
        return Err(ArrayError::ShapeMismatch {
            op: "matmul",
            lhs: Box::new(*a.layout.shape()),
            rhs: Box::new(*b.layout.shape()),
            expected: "a is m x k and b is k x n (inner dimensions equal)",
        });
    }
    let expected = Shape::new(&[m, n])?;
    let c = c.view_mut();
    if c.layout.shape() != &expected {
        return Err(ArrayError::ShapeMismatch {
            op: "gemm",
            lhs: Box::new(expected),
            rhs: Box::new(*c.layout.shape()),
            expected: "the output must be m x n",
        });
    }
    super::threads::with_parallelism(|par| {
        let mut scratch = Buffer::<T>::uninitialized(gemm_scratch_len::<T>(m, n, ka, par))?;
        let (ra, rb) = (a.read()?, b.read()?);
        let ((da, la), (db, lb)) = (ra.raw(), rb.raw());
        let lhs = MatRef::new(&da[la.offset()..], m, ka, la.strides()[0], la.strides()[1])?;
        let rhs = MatRef::new(&db[lb.offset()..], ka, n, lb.strides()[0], lb.strides()[1])?;
        let lc = c.layout;
        let mut wc = c.buf.write()?;
        let out = MatMut::new(
            &mut wc[lc.offset()..],
            m,
            n,
            lc.strides()[0],
            lc.strides()[1],
        )?;
        gemm(alpha, lhs, rhs, beta, out, &mut scratch.write()?, par)?;
        Ok(())
    })
}

/// The matrix product `a·b` in the current workspace (or heap).
pub fn matmul<T: DataType>(
    a: &impl AsView<T>,
    b: &impl AsView<T>,
) -> Result<NdArray<T>, ArrayError> {
    let (av, bv) = (a.view(), b.view());
    let (m, _) = matrix_dims("matmul", &av)?;
    let (_, n) = matrix_dims("matmul", &bv)?;
    let mut out = NdArray::alloc(Shape::new(&[m, n])?, false, Place::Current)?;
    gemm_into(T::ONE, &av, &bv, T::ZERO, &mut out)?;
    Ok(out)
}
