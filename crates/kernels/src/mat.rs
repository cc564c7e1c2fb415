//! Strided matrix views over plain slices. A view is a slice plus shape and element strides;
//! transposing swaps the strides and never moves data, which is how gemm supports Aᵀ·B and
//! A·Bᵀ. Construction checks that every element is inside the slice (and, for mutable views,
//! that no two elements alias), so the kernels can index without bounds checks.

use crate::KernelError;

/// Whether an operand is used as is or transposed. A convenience over [`MatRef::t`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transpose {
    /// Use the matrix as stored.
    No,
    /// Use the transpose (a stride swap, no copy).
    Yes,
}

/// Largest element offset + 1, or `None` on overflow. 0 for an empty view.
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(rs)?
        .checked_add((cols - 1).checked_mul(cs)?)?
        .checked_add(1)
}

fn check(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> Result<(), KernelError> {
    let oob = |needed| KernelError::ViewOutOfBounds {
        rows,
        cols,
        row_stride: rs,
        col_stride: cs,
        needed,
        found: len,
    };
    match span(rows, cols, rs, cs) {
        Some(needed) if needed <= len => Ok(()),
        Some(needed) => Err(oob(needed)),
        None => Err(oob(usize::MAX)),
    }
}

/// An immutable `rows x cols` view: element (i, j) is `data[i * row_stride + j * col_stride]`.
///
/// ```
/// use dl4rs_kernels::MatRef;
/// let data = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let a = MatRef::row_major(&data, 2, 3)?;
/// assert_eq!(a.get(1, 0), Some(4.0));
/// let at = a.t(); // 3x2, no copy
/// assert_eq!((at.rows(), at.cols(), at.get(0, 1)), (3, 2, Some(4.0)));
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T: Copy> MatRef<'a, T> {
    /// A view with explicit element strides. Fails if some element lies outside `data`.
    pub fn new(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, KernelError> {
        check(data.len(), rows, cols, row_stride, col_stride)?;
        Ok(Self {
            data,
            rows,
            cols,
            rs: row_stride,
            cs: col_stride,
        })
    }

    /// A dense row-major view; `data.len()` must be exactly `rows * cols`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Result<Self, KernelError> {
        dense_len("MatRef::row_major", data.len(), rows, cols)?;
        Self::new(data, rows, cols, cols, 1)
    }

    /// A dense column-major view; `data.len()` must be exactly `rows * cols`.
    pub fn col_major(data: &'a [T], rows: usize, cols: usize) -> Result<Self, KernelError> {
        dense_len("MatRef::col_major", data.len(), rows, cols)?;
        Self::new(data, rows, cols, 1, rows)
    }

    /// The transpose: a `cols x rows` view of the same data.
    #[must_use]
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// The view itself or its transpose.
    #[must_use]
    pub fn op(self, t: Transpose) -> Self {
        match t {
            Transpose::No => self,
            Transpose::Yes => self.t(),
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Element stride between consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.rs
    }
    /// Element stride between consecutive columns.
    pub fn col_stride(&self) -> usize {
        self.cs
    }
    /// The underlying slice.
    pub fn data(&self) -> &'a [T] {
        self.data
    }
    /// Element (i, j), or `None` outside the view.
    pub fn get(&self, i: usize, j: usize) -> Option<T> {
        if i < self.rows && j < self.cols {
            Some(self.data[i * self.rs + j * self.cs])
        } else {
            None
        }
    }

    /// Rows `r0..r1` and columns `c0..c1`; callers inside the crate guarantee the ranges.
    pub(crate) fn sub(self, r0: usize, r1: usize, c0: usize, c1: usize) -> Self {
        debug_assert!(r0 <= r1 && r1 <= self.rows && c0 <= c1 && c1 <= self.cols);
        let off = if r0 < r1 && c0 < c1 {
            r0 * self.rs + c0 * self.cs
        } else {
            0
        };
        Self {
            data: &self.data[off.min(self.data.len())..],
            rows: r1 - r0,
            cols: c1 - c0,
            ..self
        }
    }
}

fn dense_len(op: &'static str, len: usize, rows: usize, cols: usize) -> Result<(), KernelError> {
    let expected = rows.checked_mul(cols).ok_or(KernelError::Overflow { op })?;
    if len != expected {
        return Err(KernelError::Length {
            op,
            what: "data",
            expected,
            found: len,
        });
    }
    Ok(())
}

/// A mutable `rows x cols` view; like [`MatRef`] but its elements must not alias each other
/// (checked), which is what lets gemm hand disjoint tiles to different threads.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T: Copy> MatMut<'a, T> {
    /// A view with explicit element strides. Fails if an element lies outside `data` or if
    /// two elements share a location (e.g. a zero stride with more than one row).
    pub fn new(
        data: &'a mut [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, KernelError> {
        check(data.len(), rows, cols, row_stride, col_stride)?;
        if !non_overlapping(rows, cols, row_stride, col_stride) {
            return Err(KernelError::OverlappingView {
                rows,
                cols,
                row_stride,
                col_stride,
            });
        }
        Ok(Self {
            data,
            rows,
            cols,
            rs: row_stride,
            cs: col_stride,
        })
    }

    /// A dense row-major view; `data.len()` must be exactly `rows * cols`.
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self, KernelError> {
        dense_len("MatMut::row_major", data.len(), rows, cols)?;
        Self::new(data, rows, cols, cols, 1)
    }

    /// A dense column-major view; `data.len()` must be exactly `rows * cols`.
    pub fn col_major(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self, KernelError> {
        dense_len("MatMut::col_major", data.len(), rows, cols)?;
        Self::new(data, rows, cols, 1, rows)
    }

    /// The transpose: a `cols x rows` view of the same data.
    #[must_use]
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            data: self.data,
        }
    }

    /// A shorter-lived mutable view of the same elements.
    pub fn reborrow(&mut self) -> MatMut<'_, T> {
        MatMut {
            data: &mut *self.data,
            rows: self.rows,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
        }
    }

    /// An immutable view of the same elements.
    pub fn as_ref(&self) -> MatRef<'_, T> {
        MatRef {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Element stride between consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.rs
    }
    /// Element stride between consecutive columns.
    pub fn col_stride(&self) -> usize {
        self.cs
    }

    /// Raw access for the gemm driver, which splits the view into disjoint tiles.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut T {
        self.data.as_mut_ptr()
    }
}

/// Sufficient condition for injectivity of (i, j) -> i*rs + j*cs: one stride steps over the
/// whole extent of the other dimension.
fn non_overlapping(rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    if rows <= 1 || cols <= 1 {
        let (n, s) = if rows <= 1 { (cols, cs) } else { (rows, rs) };
        return n <= 1 || s >= 1;
    }
    // Overflow was excluded by `check`, so these products fit.
    (cs >= 1 && rs > (cols - 1) * cs) || (rs >= 1 && cs > (rows - 1) * rs)
}

/// Side of a tile of [`copy_mat`]: 16 x 16 elements touch 16 cache lines on each side.
const COPY_TILE: usize = 16;

/// `dst = src` element by element, for views of one shape with any strides: in 16 x 16 tiles
/// when the two are laid out differently (a transpose: one contiguous along rows, the other
/// along columns), so each tile touches a few cache lines on both sides instead of striding
/// through one of them; row by row (a `memcpy` per row when both rows are contiguous)
/// otherwise. The views were bounds-checked when they were made, so the loops index without
/// checks.
///
/// ```
/// use dl4rs_kernels::{copy_mat, MatMut, MatRef};
/// let src = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3, row-major
/// let mut dst = [0.0f32; 6];
/// copy_mat(MatRef::row_major(&src, 2, 3)?, MatMut::col_major(&mut dst, 2, 3)?)?;
/// assert_eq!(dst, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
pub fn copy_mat<T: Copy>(src: MatRef<'_, T>, dst: MatMut<'_, T>) -> Result<(), KernelError> {
    let (rows, cols) = (src.rows(), src.cols());
    if (dst.rows(), dst.cols()) != (rows, cols) {
        return Err(KernelError::OutputShape {
            op: "copy_mat",
            rows,
            cols,
            c_rows: dst.rows(),
            c_cols: dst.cols(),
        });
    }
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let (srs, scs, drs, dcs) = (src.rs, src.cs, dst.rs, dst.cs);
    let (s, d) = (src.data.as_ptr(), dst.data.as_mut_ptr());
    let rowwise = (scs == 1 && dcs == 1) || cols == 1 || (scs != 1 && dcs != 1 && srs != 1);
    // SAFETY: every (i, j) below has i < rows and j < cols, and both views were checked at
    // construction to hold (rows - 1) * rs + (cols - 1) * cs inside their slices; `dst` is a
    // non-overlapping view (checked too) and `src` is a shared borrow of other memory (the
    // two cannot alias: one is borrowed mutably).
    unsafe {
        if rowwise {
            for i in 0..rows {
                let (sr, dr) = (s.add(i * srs), d.add(i * drs));
                if scs == 1 && dcs == 1 {
                    core::ptr::copy_nonoverlapping(sr, dr, cols);
                } else {
                    for j in 0..cols {
                        *dr.add(j * dcs) = *sr.add(j * scs);
                    }
                }
            }
            return Ok(());
        }
        for i0 in (0..rows).step_by(COPY_TILE) {
            let i1 = (i0 + COPY_TILE).min(rows);
            for j0 in (0..cols).step_by(COPY_TILE) {
                let j1 = (j0 + COPY_TILE).min(cols);
                for i in i0..i1 {
                    let (sr, dr) = (s.add(i * srs), d.add(i * drs));
                    for j in j0..j1 {
                        *dr.add(j * dcs) = *sr.add(j * scs);
                    }
                }
            }
        }
    }
    Ok(())
}
