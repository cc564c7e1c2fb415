//! Shapes and layouts, stored inline (no heap) so that creating, viewing and reshaping arrays
//! never allocates. A [`Layout`] is a shape, non-negative element strides (0 for broadcast
//! axes) and an offset into the buffer; this module owns the index arithmetic and the
//! allocation-free iteration over a layout in logical (row-major) order.

use std::fmt;

use crate::error::{ArrayError, invalid};

/// The largest rank an array may have.
pub const MAX_DIMS: usize = 6;

/// The extent of each axis; at most [`MAX_DIMS`] axes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    dims: [usize; MAX_DIMS],
    ndim: usize,
}

impl Shape {
    /// A shape from axis lengths. More than [`MAX_DIMS`] axes, or an element count that
    /// overflows, is an error.
    pub fn new(dims: &[usize]) -> Result<Shape, ArrayError> {
        if dims.len() > MAX_DIMS {
            return Err(invalid(
                "shape",
                format!(
                    "expected at most {MAX_DIMS} axes, found {} ({dims:?})",
                    dims.len()
                ),
            ));
        }
        let mut shape = Shape {
            dims: [0; MAX_DIMS],
            ndim: dims.len(),
        };
        shape.dims[..dims.len()].copy_from_slice(dims);
        dims.iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                invalid(
                    "shape",
                    format!("{dims:?} has more elements than fit in memory"),
                )
            })?;
        Ok(shape)
    }

    /// The axis lengths.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.ndim]
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.ndim
    }

    /// Number of elements (1 for a rank-0 scalar).
    pub fn len(&self) -> usize {
        self.dims().iter().product()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row-major (C order) strides for this shape.
    pub fn c_strides(&self) -> [usize; MAX_DIMS] {
        let mut strides = [0; MAX_DIMS];
        let mut acc = 1;
        for axis in (0..self.ndim).rev() {
            strides[axis] = acc;
            acc *= self.dims[axis].max(1);
        }
        strides
    }

    pub(crate) fn with_axis(mut self, axis: usize, len: usize) -> Shape {
        self.dims[axis] = len;
        self
    }

    pub(crate) fn without_axis(&self, axis: usize) -> Shape {
        let mut out = Shape::default();
        for (i, &d) in self.dims().iter().enumerate() {
            if i != axis {
                out.dims[out.ndim] = d;
                out.ndim += 1;
            }
        }
        out
    }

    pub(crate) fn with_inserted(&self, axis: usize, len: usize) -> Result<Shape, ArrayError> {
        if self.ndim == MAX_DIMS {
            return Err(invalid(
                "stack",
                format!("result would have more than {MAX_DIMS} axes"),
            ));
        }
        let mut out = Shape::default();
        for i in 0..=self.ndim {
            if i == axis {
                out.dims[out.ndim] = len;
                out.ndim += 1;
            }
            if i < self.ndim {
                out.dims[out.ndim] = self.dims[i];
                out.ndim += 1;
            }
        }
        Ok(out)
    }

    /// The shape both `self` and `other` broadcast to (NumPy rules), if any.
    pub fn broadcast_with(&self, other: &Shape) -> Option<Shape> {
        let ndim = self.ndim.max(other.ndim);
        let mut out = Shape {
            dims: [0; MAX_DIMS],
            ndim,
        };
        for i in 0..ndim {
            let a = if i < ndim - self.ndim {
                1
            } else {
                self.dims[i - (ndim - self.ndim)]
            };
            let b = if i < ndim - other.ndim {
                1
            } else {
                other.dims[i - (ndim - other.ndim)]
            };
            out.dims[i] = match (a, b) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => return None,
            };
        }
        Some(out)
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

/// Where an array's elements are in its buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Layout {
    pub(crate) shape: Shape,
    pub(crate) strides: [usize; MAX_DIMS],
    pub(crate) offset: usize,
}

impl Layout {
    /// Row-major, starting at element 0.
    pub fn c_order(shape: Shape) -> Layout {
        Layout {
            strides: shape.c_strides(),
            shape,
            offset: 0,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Element strides of each axis.
    pub fn strides(&self) -> &[usize] {
        &self.strides[..self.shape.ndim]
    }

    /// Offset of the first element in the buffer.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Whether the elements are contiguous in row-major order (axes of length 1 may have any
    /// stride).
    pub fn is_c_contiguous(&self) -> bool {
        let c = self.shape.c_strides();
        self.shape
            .dims()
            .iter()
            .enumerate()
            .all(|(i, &d)| d <= 1 || self.strides[i] == c[i])
    }

    /// The buffer index of a multi-index, or an error when out of bounds.
    pub(crate) fn index_of(&self, index: &[usize]) -> Result<usize, ArrayError> {
        if index.len() != self.shape.ndim
            || index.iter().zip(self.shape.dims()).any(|(&i, &d)| i >= d)
        {
            return Err(invalid(
                "index",
                format!("index {index:?} is out of bounds for shape {}", self.shape),
            ));
        }
        Ok(self.offset
            + index
                .iter()
                .zip(self.strides())
                .map(|(i, s)| i * s)
                .sum::<usize>())
    }

    /// Calls `f` with the buffer index of every element, in row-major logical order.
    pub(crate) fn for_each_index(&self, mut f: impl FnMut(usize)) {
        let ndim = self.shape.ndim;
        if self.shape.is_empty() {
            return;
        }
        if ndim == 0 {
            f(self.offset);
            return;
        }
        let dims = self.shape.dims();
        let last = ndim - 1;
        let (inner, inner_stride) = (dims[last], self.strides[last]);
        let mut counter = [0usize; MAX_DIMS];
        let mut base = self.offset;
        loop {
            for j in 0..inner {
                f(base + j * inner_stride);
            }
            // Advance the outer axes like an odometer.
            let mut axis = last;
            loop {
                if axis == 0 {
                    return;
                }
                axis -= 1;
                counter[axis] += 1;
                base += self.strides[axis];
                if counter[axis] < dims[axis] {
                    break;
                }
                base -= self.strides[axis] * dims[axis];
                counter[axis] = 0;
            }
        }
    }

    /// This layout seen with `shape` (NumPy broadcasting): new leading axes and axes of length
    /// 1 get stride 0.
    pub(crate) fn broadcast_to(&self, shape: &Shape) -> Option<Layout> {
        if shape.ndim < self.shape.ndim {
            return None;
        }
        let lead = shape.ndim - self.shape.ndim;
        let mut out = Layout {
            shape: *shape,
            strides: [0; MAX_DIMS],
            offset: self.offset,
        };
        for i in 0..self.shape.ndim {
            let (from, to) = (self.shape.dims[i], shape.dims[lead + i]);
            out.strides[lead + i] = if from == to {
                self.strides[i]
            } else if from == 1 {
                0
            } else {
                return None;
            };
        }
        Some(out)
    }

    pub(crate) fn check_axis(&self, op: &'static str, axis: usize) -> Result<(), ArrayError> {
        if axis >= self.shape.ndim {
            return Err(invalid(
                op,
                format!(
                    "axis {axis} is out of range for an array of shape {}",
                    self.shape
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iteration_follows_logical_order() {
        let shape = Shape::new(&[2, 3]).unwrap();
        let mut transposed = Layout::c_order(Shape::new(&[3, 2]).unwrap());
        transposed.shape = shape;
        transposed.strides[0] = 1;
        transposed.strides[1] = 2;
        let mut seen = Vec::new();
        transposed.for_each_index(|i| seen.push(i));
        assert_eq!(seen, vec![0, 2, 4, 1, 3, 5]);
        assert!(!transposed.is_c_contiguous());
        assert!(Layout::c_order(shape).is_c_contiguous());
    }

    #[test]
    fn broadcasting() {
        let a = Shape::new(&[4, 1, 3]).unwrap();
        let b = Shape::new(&[5, 1]).unwrap();
        assert_eq!(a.broadcast_with(&b).unwrap().dims(), &[4, 5, 3]);
        assert!(
            Shape::new(&[2])
                .unwrap()
                .broadcast_with(&Shape::new(&[3]).unwrap())
                .is_none()
        );
        let row = Layout::c_order(Shape::new(&[3]).unwrap());
        let b = row.broadcast_to(&Shape::new(&[2, 3]).unwrap()).unwrap();
        let mut seen = Vec::new();
        b.for_each_index(|i| seen.push(i));
        assert_eq!(seen, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn too_many_axes() {
        assert!(Shape::new(&[1; 7]).is_err());
        assert!(Shape::new(&[usize::MAX, 2]).is_err());
    }

    #[test]
    fn scalar_layout() {
        let s = Layout::c_order(Shape::new(&[]).unwrap());
        let mut seen = Vec::new();
        s.for_each_index(|i| seen.push(i));
        assert_eq!(seen, vec![0]);
    }
}
