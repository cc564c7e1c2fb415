//! Validation and allocation-free reading of one batch: labels and predictions as rank-2
//! matrices of any layout (strided, transposed, broadcast), plus an optional mask. Elements are
//! read through the layout's strides directly, so no batch is ever copied.

use dl4rs_array::{ArrayRead, ArrayView, DataType};

use crate::error::EvalError;

/// A read-only rank-2 window over a borrowed buffer.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'r, T> {
    data: &'r [T],
    offset: usize,
    row_stride: usize,
    col_stride: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

impl<T: DataType> Mat<'_, T> {
    /// Element `(i, j)` as f64; callers keep `i < rows`, `j < cols`.
    #[inline]
    pub(crate) fn at(&self, i: usize, j: usize) -> f64 {
        self.raw_at(i, j).to_f64()
    }

    /// Element `(i, j)` in the input's own precision.
    #[inline]
    pub(crate) fn raw_at(&self, i: usize, j: usize) -> T {
        self.data[self.offset + i * self.row_stride + j * self.col_stride]
    }

    /// Index of the largest element of row `i` (the first one on ties). NaN never compares
    /// greater, so a NaN is only chosen when it comes first and nothing beats it.
    pub(crate) fn argmax_row(&self, i: usize) -> usize {
        let mut best = 0;
        let mut best_v = self.at(i, 0);
        for j in 1..self.cols {
            let v = self.at(i, j);
            if v > best_v || (best_v.is_nan() && !v.is_nan()) {
                best = j;
                best_v = v;
            }
        }
        best
    }
}

/// How a batch is masked.
#[derive(Clone, Copy)]
pub(crate) enum Mask<'r, T> {
    /// Everything counts.
    None,
    /// One value per example (a [batch] or [batch, 1] mask; stored as a [batch, 1] window).
    PerExample(Mat<'r, T>),
    /// One value per output ([batch, n]).
    PerOutput(Mat<'r, T>),
}

impl<T: DataType> Mask<'_, T> {
    /// Whether example `i` counts at all (per-output masks are checked per entry instead).
    #[inline]
    pub(crate) fn keep_row(&self, i: usize) -> bool {
        match self {
            Mask::PerExample(m) => m.at(i, 0) != 0.0,
            _ => true,
        }
    }

    /// Whether entry `(i, j)` counts.
    #[inline]
    pub(crate) fn keep(&self, i: usize, j: usize) -> bool {
        match self {
            Mask::None => true,
            Mask::PerExample(m) => m.at(i, 0) != 0.0,
            Mask::PerOutput(m) => m.at(i, j) != 0.0,
        }
    }
}

/// The read guards of one batch; they must outlive the [`Batch`] built from them.
pub(crate) struct Reads<'a, T: DataType> {
    labels: ArrayRead<'a, T>,
    predictions: ArrayRead<'a, T>,
    mask: Option<ArrayRead<'a, T>>,
}

impl<'a, T: DataType> Reads<'a, T> {
    /// Borrows the three inputs for reading (fails on a stale array).
    pub(crate) fn new(
        op: &'static str,
        labels: &ArrayView<'a, T>,
        predictions: &ArrayView<'a, T>,
        mask: Option<&ArrayView<'a, T>>,
    ) -> Result<Self, EvalError> {
        let read = |what: &'static str, v: &ArrayView<'a, T>| {
            v.read().map_err(|e| EvalError::Array {
                op,
                what,
                source: Box::new(e),
            })
        };
        Ok(Reads {
            labels: read("labels", labels)?,
            predictions: read("predictions", predictions)?,
            mask: match mask {
                Some(m) => Some(read("mask", m)?),
                None => None,
            },
        })
    }

    /// Checks ranks and shapes and gives the matrices. `n` names the columns in messages.
    pub(crate) fn batch(
        &self,
        op: &'static str,
        n: &'static str,
    ) -> Result<Batch<'_, T>, EvalError> {
        let labels = matrix(op, "labels", n, &self.labels)?;
        let predictions = matrix(op, "predictions", n, &self.predictions)?;
        if (labels.rows, labels.cols) != (predictions.rows, predictions.cols) {
            return Err(EvalError::ShapeMismatch {
                op,
                labels: shape_of(&self.labels).to_vec(),
                predictions: shape_of(&self.predictions).to_vec(),
            });
        }
        let mask = match &self.mask {
            None => Mask::None,
            Some(m) => mask(op, m, &labels, shape_of(&self.labels))?,
        };
        Ok(Batch {
            labels,
            predictions,
            mask,
        })
    }
}

/// One validated batch.
pub(crate) struct Batch<'r, T> {
    pub(crate) labels: Mat<'r, T>,
    pub(crate) predictions: Mat<'r, T>,
    pub(crate) mask: Mask<'r, T>,
}

impl<T> Batch<'_, T> {
    pub(crate) fn rows(&self) -> usize {
        self.labels.rows
    }

    pub(crate) fn cols(&self) -> usize {
        self.labels.cols
    }
}

fn shape_of<'r, T: DataType>(r: &'r ArrayRead<'_, T>) -> &'r [usize] {
    r.raw().1.shape().dims()
}

fn matrix<'r, T: DataType>(
    op: &'static str,
    what: &'static str,
    n: &'static str,
    r: &'r ArrayRead<'_, T>,
) -> Result<Mat<'r, T>, EvalError> {
    let (data, layout) = r.raw();
    let dims = layout.shape().dims();
    if dims.len() != 2 {
        return Err(EvalError::Rank {
            op,
            what,
            shape: dims.to_vec(),
            rank: dims.len(),
            n,
        });
    }
    let strides = layout.strides();
    Ok(Mat {
        data,
        offset: layout.offset(),
        row_stride: strides[0],
        col_stride: strides[1],
        rows: dims[0],
        cols: dims[1],
    })
}

fn mask<'r, T: DataType>(
    op: &'static str,
    r: &'r ArrayRead<'_, T>,
    labels: &Mat<'_, T>,
    label_shape: &[usize],
) -> Result<Mask<'r, T>, EvalError> {
    let (data, layout) = r.raw();
    let dims = layout.shape().dims();
    let strides = layout.strides();
    let window = |rows, cols, row_stride, col_stride| Mat {
        data,
        offset: layout.offset(),
        row_stride,
        col_stride,
        rows,
        cols,
    };
    match *dims {
        [b] if b == labels.rows => Ok(Mask::PerExample(window(b, 1, strides[0], 0))),
        [b, 1] if b == labels.rows && labels.cols != 1 => {
            Ok(Mask::PerExample(window(b, 1, strides[0], 0)))
        }
        [b, c] if b == labels.rows && c == labels.cols => {
            Ok(Mask::PerOutput(window(b, c, strides[0], strides[1])))
        }
        _ => Err(EvalError::MaskShape {
            op,
            mask: dims.to_vec(),
            labels: label_shape.to_vec(),
            batch: labels.rows,
            n: labels.cols,
        }),
    }
}

/// The shape of the inputs, for messages about column counts (only on the failure path).
pub(crate) fn column_error<T>(
    op: &'static str,
    n: &'static str,
    expected: usize,
    b: &Batch<'_, T>,
) -> EvalError {
    EvalError::ColumnCount {
        op,
        n,
        expected,
        found: b.labels.cols,
        shape: vec![b.labels.rows, b.labels.cols],
    }
}
