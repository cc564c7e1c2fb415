//! Matrix products through the kernels' gemm. Transposed and strided 2-D views are passed as
//! strides (no copies); the packing scratch comes from the current workspace, so a product in
//! a warmed-up workspace makes no heap allocation. Threads: the calling thread's setting and
//! team (see [`super::threads`]).

use dl4rs_kernels::{
    MatMut, MatRef, PackInfo, PackedB, Unary, gemm, gemm_bias_act, gemm_packed_b, gemm_scratch_len,
    pack_b, packed_b_len, reads_packed_b,
};
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
    product(alpha, a, b, None, beta, c, None)
}

/// [`gemm_into`] with `b` also given packed (see [`PackedMatrix`]): same result, same bits,
/// without packing `b` again. `packed` must have been packed from `b` (its shape is checked).
pub fn gemm_packed_into<T: DataType>(
    alpha: T,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
    packed: &PackedMatrix<T>,
    beta: T,
    c: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    product(alpha, a, b, Some(packed), beta, c, None)
}

/// `out = act(a·b + bias)` in one product, keeping `pre = a·b + bias` when given (a dense
/// layer's forward): the bias and activation are applied by each thread of the product to
/// the blocks of `out` it computed, while they are in its cache, instead of in a second pass
/// over `out` on one thread. Same bits as [`gemm_into`] followed by
/// [`bias_act_into`](super::bias_act_into). `out` and `pre` must be contiguous `[m, n]`,
/// `bias` `[n]` (or `[1, n]`); `packed`, when given, must be packed from `b`.
pub fn gemm_bias_act_into<T: DataType>(
    a: &impl AsView<T>,
    b: &impl AsView<T>,
    packed: Option<&PackedMatrix<T>>,
    bias: &impl AsView<T>,
    act: Unary<T>,
    pre: Option<&mut NdArray<T>>,
    out: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "gemm_bias_act";
    let (bias, n) = (
        bias.view(),
        out.view_mut().layout.shape().dims().get(1).copied(),
    );
    let n = n.unwrap_or(0);
    if bias.shape() != [n] && bias.shape() != [1, n] {
        return Err(invalid(
            OP,
            format!("expected a bias of shape [{n}], found {:?}", bias.shape()),
        ));
    }
    let expected = *out.view_mut().layout.shape();
    let out_layout = out.view_mut().layout;
    let pre_layout = pre.as_ref().map(|p| p.view().layout);
    for (what, layout) in [("the output", Some(out_layout)), ("pre", pre_layout)] {
        if let Some(l) = layout
            && (l.shape() != &expected || !l.is_c_contiguous())
        {
            return Err(invalid(
                OP,
                format!(
                    "{what} must be a contiguous {:?} array, found shape {:?} (contiguous: {})",
                    expected.dims(),
                    l.shape().dims(),
                    l.is_c_contiguous()
                ),
            ));
        }
    }
    super::with_contiguous(&bias, |bias| {
        product(T::ONE, a, b, packed, T::ZERO, out, Some((bias, act, pre)))
    })
}

/// A matrix packed once for many products with it on the right, `x·B` (a recurrence's
/// `h·RW` at every time step, `dz·RWᵀ` backward): a product copies its B into the layout
/// the microkernel reads, and with the same B at every step that copy is made once here
/// instead of once per product. The packed elements live in an array the caller provides
/// (working memory of a layer), so packing allocates nothing.
pub struct PackedMatrix<T: DataType> {
    data: NdArray<T>,
    info: PackInfo,
}

impl<T: DataType> PackedMatrix<T> {
    /// Elements [`PackedMatrix::pack`] needs for a `k x n` matrix.
    pub fn len_for(k: usize, n: usize) -> usize {
        packed_b_len::<T>(k, n)
    }

    /// Packs the 2-D `b` into `storage`, a contiguous 1-D array of at least
    /// [`PackedMatrix::len_for`] elements.
    pub fn pack(b: &impl AsView<T>, mut storage: NdArray<T>) -> Result<Self, ArrayError> {
        let b = b.view();
        let (k, n) = matrix_dims("pack", &b)?;
        let needed = Self::len_for(k, n);
        if storage.layout.shape().ndim() != 1
            || storage.layout.shape().len() < needed
            || !storage.layout.is_c_contiguous()
        {
            return Err(invalid(
                "pack",
                format!(
                    "the storage must be a contiguous 1-D array of at least {needed} elements \
                     for a {k} x {n} matrix; found shape {:?}",
                    storage.layout.shape().dims()
                ),
            ));
        }
        let info = {
            let rb = b.read()?;
            let (db, lb) = rb.raw();
            let rhs = MatRef::new(&db[lb.offset()..], k, n, lb.strides()[0], lb.strides()[1])?;
            let offset = storage.layout.offset();
            let mut w = storage.buf.write()?;
            pack_b(rhs, &mut w[offset..offset + needed])?.info()
        };
        Ok(PackedMatrix {
            data: storage,
            info,
        })
    }

    /// Packs `b` again into the same storage (the matrix's new values, or the layout of
    /// the dispatch path now current). `b` must have the shape packed before.
    pub fn repack(&mut self, b: &impl AsView<T>) -> Result<(), ArrayError> {
        let b = b.view();
        let (k, n) = matrix_dims("repack", &b)?;
        if (k, n) != self.shape() {
            return Err(invalid(
                "repack",
                format!(
                    "expected a {:?} matrix (the shape packed before), found {k} x {n}: pack \
                     it into new storage with PackedMatrix::pack",
                    self.shape()
                ),
            ));
        }
        let rb = b.read()?;
        let (db, lb) = rb.raw();
        let rhs = MatRef::new(&db[lb.offset()..], k, n, lb.strides()[0], lb.strides()[1])?;
        let needed = Self::len_for(k, n);
        let offset = self.data.layout.offset();
        let mut w = self.data.buf.write()?;
        self.info = pack_b(rhs, &mut w[offset..offset + needed])?.info();
        Ok(())
    }

    /// Rows and columns of the matrix packed.
    pub fn shape(&self) -> (usize, usize) {
        self.info.shape()
    }

    /// Whether an `m`-row product with a `k x n` right operand reads it packed: packing
    /// pays only then (not for one row, nor for a narrow operand computed transposed).
    pub fn used_for(m: usize, n: usize) -> bool {
        reads_packed_b::<T>(m, n)
    }
}

/// A bias, activation and optional `pre` array to fuse into the product.
type Fused<'e, T> = (&'e [T], Unary<T>, Option<&'e mut NdArray<T>>);

fn product<T: DataType>(
    alpha: T,
    a: &impl AsView<T>,
    b: &impl AsView<T>,
    packed: Option<&PackedMatrix<T>>,
    beta: T,
    c: &mut impl AsViewMut<T>,
    fused: Option<Fused<'_, T>>,
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
        let rp = packed.map(|p| p.data.read()).transpose()?;
        let pb = match (packed, rp.as_ref()) {
            (Some(p), Some(r)) => Some(PackedB::from_parts(
                r.as_slice().unwrap_or_default(),
                p.info,
            )?),
            _ => None,
        };
        let mut scratch = scratch.write()?;
        match (fused, pb) {
            (None, None) => gemm(alpha, lhs, rhs, beta, out, &mut scratch, par)?,
            (None, Some(pb)) => gemm_packed_b(alpha, lhs, rhs, &pb, beta, out, &mut scratch, par)?,
            (Some((bias, act, pre)), pb) => {
                let mut wp = pre.map(|p| p.write()).transpose()?;
                let pre = wp
                    .as_mut()
                    .map(|w| {
                        let s = w.as_slice_mut().unwrap_or_default();
                        MatMut::row_major(s, m, n)
                    })
                    .transpose()?;
                gemm_bias_act(
                    lhs,
                    rhs,
                    pb.as_ref(),
                    bias,
                    act,
                    pre,
                    out,
                    &mut scratch,
                    par,
                )?
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A packed right operand gives `gemm_into`'s bits, transposed or not, with any beta;
    /// storage too small, a matrix of another shape and a non-matrix are errors.
    #[test]
    fn packed_products_equal_plain_ones_and_bad_uses_are_errors() {
        for (m, k, n) in [(32, 64, 256), (5, 7, 33), (1, 9, 40), (64, 300, 10)] {
            let a = NdArray::<f32>::rand_uniform(&[m, k], -1.0, 1.0, 1).unwrap();
            let w = NdArray::<f32>::rand_uniform(&[k, n], -1.0, 1.0, 2).unwrap();
            let wt = NdArray::<f32>::rand_uniform(&[n, k], -1.0, 1.0, 3).unwrap();
            for (b, beta) in [(w.view(), 0.0), (wt.view().t(), 1.0)] {
                let storage = NdArray::zeros(&[PackedMatrix::<f32>::len_for(k, n)]).unwrap();
                let packed = PackedMatrix::pack(&b, storage).unwrap();
                assert_eq!(packed.shape(), (k, n));
                let c0 = NdArray::<f32>::rand_uniform(&[m, n], -1.0, 1.0, 4).unwrap();
                let (mut want, mut got) = (c0.dup().unwrap(), c0.dup().unwrap());
                gemm_into(1.0, &a, &b, beta, &mut want).unwrap();
                gemm_packed_into(1.0, &a, &b, &packed, beta, &mut got).unwrap();
                let bits = |x: &NdArray<f32>| -> Vec<u32> {
                    x.read()
                        .unwrap()
                        .as_slice()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect()
                };
                assert_eq!(bits(&got), bits(&want), "{m}x{k}x{n} beta {beta}");
            }
        }
        let w = NdArray::<f32>::zeros(&[4, 8]).unwrap();
        let short = NdArray::zeros(&[PackedMatrix::<f32>::len_for(4, 8) - 1]).unwrap();
        assert!(PackedMatrix::pack(&w, short).is_err());
        let flat = NdArray::<f32>::zeros(&[32]).unwrap();
        let storage = NdArray::zeros(&[PackedMatrix::<f32>::len_for(4, 8)]).unwrap();
        assert!(PackedMatrix::pack(&flat, storage).is_err());
        let storage = NdArray::zeros(&[PackedMatrix::<f32>::len_for(4, 8)]).unwrap();
        let packed = PackedMatrix::pack(&w, storage).unwrap();
        let other = NdArray::<f32>::zeros(&[8, 4]).unwrap();
        let a = NdArray::<f32>::zeros(&[3, 8]).unwrap();
        let mut c = NdArray::<f32>::zeros(&[3, 4]).unwrap();
        assert!(gemm_packed_into(1.0, &a, &other, &packed, 0.0, &mut c).is_err());
    }
}
