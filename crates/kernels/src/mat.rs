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
