//! Reductions (sum, max, argmax, dot) over slices and over the rows or columns of row-major
//! matrices, and row-wise softmax / log-softmax with their backward passes.
//!
//! Sums run in 16 fixed lanes from index 0 (the tail lands in the lanes it would occupy in a
//! next chunk), then the lanes are combined in a fixed tree, so the result depends on the
//! values only, not on where the slice starts in memory. Column reductions walk the matrix
//! row by row, adding each row into the output, which streams memory in order.

use crate::{Float, KernelError};

const LANES: usize = 16;

pub(crate) fn check_len(
    op: &'static str,
    what: &'static str,
    found: usize,
    expected: usize,
) -> Result<(), KernelError> {
    if found == expected {
        Ok(())
    } else {
        Err(KernelError::Length {
            op,
            what,
            expected,
            found,
        })
    }
}

/// Checks that a row-major `rows x cols` matrix has exactly `rows * cols` elements.
pub(crate) fn check_mat(
    op: &'static str,
    what: &'static str,
    found: usize,
    rows: usize,
    cols: usize,
) -> Result<(), KernelError> {
    let expected = rows.checked_mul(cols).ok_or(KernelError::Overflow { op })?;
    check_len(op, what, found, expected)
}

#[inline(always)]
fn tree<T: Float>(mut acc: [T; LANES]) -> T {
    let mut w = LANES / 2;
    while w > 0 {
        for i in 0..w {
            acc[i] += acc[i + w];
        }
        w /= 2;
    }
    acc[0]
}

/// Sum of `x` (0 for an empty slice), in a fixed, alignment-independent order.
///
/// ```
/// assert_eq!(dl4rs_kernels::sum(&[1.0f32, 2.0, 3.5]), 6.5);
/// ```
pub fn sum<T: Float>(x: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for ch in &mut chunks {
        for i in 0..LANES {
            acc[i] += ch[i];
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += v;
    }
    tree(acc)
}

pub(crate) fn dot_impl<T: Float>(x: &[T], y: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let mut cx = x.chunks_exact(LANES);
    let mut cy = y.chunks_exact(LANES);
    for (a, b) in (&mut cx).zip(&mut cy) {
        for i in 0..LANES {
            acc[i] += a[i] * b[i];
        }
    }
    for ((s, &a), &b) in acc.iter_mut().zip(cx.remainder()).zip(cy.remainder()) {
        *s += a * b;
    }
    tree(acc)
}

/// Dot product `Σ x[i] y[i]`; the slices must have equal length.
pub fn dot<T: Float>(x: &[T], y: &[T]) -> Result<T, KernelError> {
    check_len("dot", "y", y.len(), x.len())?;
    Ok(dot_impl(x, y))
}

/// Lane-wise max; NaN is tracked separately so that it propagates whatever lane it hits.
fn max_impl<T: Float>(x: &[T]) -> T {
    let mut acc = [T::NEG_INFINITY; LANES];
    let mut nan = [false; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for ch in &mut chunks {
        for i in 0..LANES {
            let v = ch[i];
            acc[i] = if v > acc[i] { v } else { acc[i] };
            nan[i] |= v.is_nan();
        }
    }
    for ((a, n), &v) in acc.iter_mut().zip(nan.iter_mut()).zip(chunks.remainder()) {
        *a = if v > *a { v } else { *a };
        *n |= v.is_nan();
    }
    if nan.iter().any(|&n| n) {
        return x
            .iter()
            .copied()
            .find(|v| v.is_nan())
            .unwrap_or(T::NEG_INFINITY);
    }
    let mut m = acc[0];
    for &v in &acc[1..] {
        if v > m {
            m = v;
        }
    }
    m
}

fn argmax_impl<T: Float>(x: &[T]) -> usize {
    let mut best = 0;
    let mut bv = x[0];
    if bv.is_nan() {
        return 0;
    }
    for (i, &v) in x.iter().enumerate().skip(1) {
        if v.is_nan() {
            return i;
        }
        if v > bv {
            bv = v;
            best = i;
        }
    }
    best
}

const EMPTY: &str = "expected a non-empty slice";

/// Largest element. NaN propagates (any NaN gives NaN). Errors on an empty slice.
pub fn max<T: Float>(x: &[T]) -> Result<T, KernelError> {
    if x.is_empty() {
        return Err(KernelError::InvalidArgument {
            op: "max",
            what: EMPTY,
        });
    }
    Ok(max_impl(x))
}

/// Index of the first largest element (of the first NaN, if any). Errors on an empty slice.
pub fn argmax<T: Float>(x: &[T]) -> Result<usize, KernelError> {
    if x.is_empty() {
        return Err(KernelError::InvalidArgument {
            op: "argmax",
            what: EMPTY,
        });
    }
    Ok(argmax_impl(x))
}

/// `out[i] = Σ_j x[i, j]` for a row-major `rows x cols` matrix.
pub fn sum_rows<T: Float>(
    x: &[T],
    rows: usize,
    cols: usize,
    out: &mut [T],
) -> Result<(), KernelError> {
    check_mat("sum_rows", "x", x.len(), rows, cols)?;
    check_len("sum_rows", "out", out.len(), rows)?;
    if cols == 0 {
        out.fill(T::ZERO);
        return Ok(());
    }
    for (o, row) in out.iter_mut().zip(x.chunks_exact(cols)) {
        *o = sum(row);
    }
    Ok(())
}

/// `out[j] = Σ_i x[i, j]` (e.g. a bias gradient), accumulated row by row in order.
pub fn sum_cols<T: Float>(
    x: &[T],
    rows: usize,
    cols: usize,
    out: &mut [T],
) -> Result<(), KernelError> {
    check_mat("sum_cols", "x", x.len(), rows, cols)?;
    check_len("sum_cols", "out", out.len(), cols)?;
    out.fill(T::ZERO);
    if cols == 0 {
        return Ok(());
    }
    for row in x.chunks_exact(cols) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    Ok(())
}

fn nonempty_rows(op: &'static str, rows: usize, cols: usize) -> Result<(), KernelError> {
    if rows > 0 && cols == 0 {
        return Err(KernelError::InvalidArgument {
            op,
            what: "expected cols > 0 (the max of an empty row is undefined)",
        });
    }
    Ok(())
}

fn nonempty_cols(op: &'static str, rows: usize, cols: usize) -> Result<(), KernelError> {
    if cols > 0 && rows == 0 {
        return Err(KernelError::InvalidArgument {
            op,
            what: "expected rows > 0 (the max of an empty column is undefined)",
        });
    }
    Ok(())
}

/// `out[i] = max_j x[i, j]`; NaN propagates.
pub fn max_rows<T: Float>(
    x: &[T],
    rows: usize,
    cols: usize,
    out: &mut [T],
) -> Result<(), KernelError> {
    check_mat("max_rows", "x", x.len(), rows, cols)?;
    check_len("max_rows", "out", out.len(), rows)?;
    nonempty_rows("max_rows", rows, cols)?;
    for (o, row) in out.iter_mut().zip(x.chunks_exact(cols.max(1))) {
        *o = max_impl(row);
    }
    Ok(())
}

/// `out[i] = argmax_j x[i, j]` (first maximum; first NaN if any), e.g. predicted classes.
pub fn argmax_rows<T: Float>(
    x: &[T],
    rows: usize,
    cols: usize,
    out: &mut [usize],
) -> Result<(), KernelError> {
    check_mat("argmax_rows", "x", x.len(), rows, cols)?;
    check_len("argmax_rows", "out", out.len(), rows)?;
    nonempty_rows("argmax_rows", rows, cols)?;
    for (o, row) in out.iter_mut().zip(x.chunks_exact(cols.max(1))) {
        *o = argmax_impl(row);
    }
    Ok(())
}

/// `out[j] = max_i x[i, j]`, row by row; NaN propagates.
pub fn max_cols<T: Float>(
    x: &[T],
    rows: usize,
    cols: usize,
    out: &mut [T],
) -> Result<(), KernelError> {
    check_mat("max_cols", "x", x.len(), rows, cols)?;
    check_len("max_cols", "out", out.len(), cols)?;
    nonempty_cols("max_cols", rows, cols)?;
    if cols == 0 {
        return Ok(());
    }
    out.copy_from_slice(&x[..cols]);
    for row in x.chunks_exact(cols).skip(1) {
        for (o, &v) in out.iter_mut().zip(row) {
            // Once NaN, stay NaN: `v > NaN` is false.
            *o = if v > *o || v.is_nan() { v } else { *o };
        }
    }
    Ok(())
}

/// `out[j] = argmax_i x[i, j]` (first maximum; first NaN if any), row by row.
pub fn argmax_cols<T: Float>(
    x: &[T],
    rows: usize,
    cols: usize,
    out: &mut [usize],
) -> Result<(), KernelError> {
    check_mat("argmax_cols", "x", x.len(), rows, cols)?;
    check_len("argmax_cols", "out", out.len(), cols)?;
    nonempty_cols("argmax_cols", rows, cols)?;
    if cols == 0 {
        return Ok(());
    }
    out.fill(0);
    for (i, row) in x.chunks_exact(cols).enumerate().skip(1) {
        for (j, (o, &v)) in out.iter_mut().zip(row).enumerate() {
            let best = x[*o * cols + j];
            if !best.is_nan() && (v > best || v.is_nan()) {
                *o = i;
            }
        }
    }
    Ok(())
}

/// Row-wise softmax of a row-major `rows x cols` matrix, stable (the row max is subtracted
/// before exponentiating); `exp(-inf)` rows entries give exactly 0.
///
/// ```
/// let mut p = [0.0f32; 3];
/// dl4rs_kernels::softmax_rows(&[1000.0f32, 1000.0, f32::NEG_INFINITY], 1, 3, &mut p)?;
/// assert_eq!(p, [0.5, 0.5, 0.0]);
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
pub fn softmax_rows<T: Float>(
    x: &[T],
    rows: usize,
    cols: usize,
    out: &mut [T],
) -> Result<(), KernelError> {
    check_mat("softmax_rows", "x", x.len(), rows, cols)?;
    check_mat("softmax_rows", "out", out.len(), rows, cols)?;
    if cols == 0 {
        return Ok(());
    }
    for (xr, or) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let m = max_impl(xr);
        for (o, &v) in or.iter_mut().zip(xr) {
            *o = (v - m).vexp();
        }
        let s = sum(or);
        for o in or.iter_mut() {
            *o /= s;
        }
    }
    Ok(())
}

/// Row-wise log-softmax: `x - max - ln Σ exp(x - max)`, stable for large logits.
pub fn log_softmax_rows<T: Float>(
    x: &[T],
    rows: usize,
    cols: usize,
    out: &mut [T],
) -> Result<(), KernelError> {
    check_mat("log_softmax_rows", "x", x.len(), rows, cols)?;
    check_mat("log_softmax_rows", "out", out.len(), rows, cols)?;
    if cols == 0 {
        return Ok(());
    }
    for (xr, or) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let m = max_impl(xr);
        // `out` doubles as the buffer for exp(x - m) so no temporary is needed.
        for (o, &v) in or.iter_mut().zip(xr) {
            *o = (v - m).vexp();
        }
        let lse = m + sum(or).ln();
        for (o, &v) in or.iter_mut().zip(xr) {
            *o = v - lse;
        }
    }
    Ok(())
}

/// Backward of [`softmax_rows`] given its output `y`:
/// `grad_in = y * (grad_out - Σ_j grad_out_j y_j)` per row.
pub fn softmax_rows_backward<T: Float>(
    y: &[T],
    grad_out: &[T],
    rows: usize,
    cols: usize,
    grad_in: &mut [T],
) -> Result<(), KernelError> {
    const OP: &str = "softmax_rows_backward";
    check_mat(OP, "y", y.len(), rows, cols)?;
    check_mat(OP, "grad_out", grad_out.len(), rows, cols)?;
    check_mat(OP, "grad_in", grad_in.len(), rows, cols)?;
    if cols == 0 {
        return Ok(());
    }
    for ((yr, gr), ir) in y
        .chunks_exact(cols)
        .zip(grad_out.chunks_exact(cols))
        .zip(grad_in.chunks_exact_mut(cols))
    {
        let d = dot_impl(yr, gr);
        for ((o, &yv), &g) in ir.iter_mut().zip(yr).zip(gr) {
            *o = yv * (g - d);
        }
    }
    Ok(())
}

/// Backward of [`log_softmax_rows`] given its output `y`:
/// `grad_in = grad_out - exp(y) * Σ_j grad_out_j` per row.
pub fn log_softmax_rows_backward<T: Float>(
    y: &[T],
    grad_out: &[T],
    rows: usize,
    cols: usize,
    grad_in: &mut [T],
) -> Result<(), KernelError> {
    const OP: &str = "log_softmax_rows_backward";
    check_mat(OP, "y", y.len(), rows, cols)?;
    check_mat(OP, "grad_out", grad_out.len(), rows, cols)?;
    check_mat(OP, "grad_in", grad_in.len(), rows, cols)?;
    if cols == 0 {
        return Ok(());
    }
    for ((yr, gr), ir) in y
        .chunks_exact(cols)
        .zip(grad_out.chunks_exact(cols))
        .zip(grad_in.chunks_exact_mut(cols))
    {
        let s = sum(gr);
        for ((o, &yv), &g) in ir.iter_mut().zip(yr).zip(gr) {
            *o = g - yv.vexp() * s;
        }
    }
    Ok(())
}
