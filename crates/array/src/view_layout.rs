//! How a view's layout follows from its parent's: slicing, indexing, permuting, reversing and
//! reshaping change only the shape, strides and offset, never the elements; each checks its
//! arguments against the parent's shape and names the operation in its error.

use crate::error::{ArrayError, invalid};
use crate::shape::{Layout, MAX_DIMS, Shape};

/// Elements `start..end` (every `step`-th) along `axis`.
pub(crate) fn sliced(
    layout: &Layout,
    axis: usize,
    start: usize,
    end: usize,
    step: usize,
) -> Result<Layout, ArrayError> {
    layout.check_axis("slice_axis", axis)?;
    let len = layout.shape.dims()[axis];
    if step == 0 || start > end || end > len {
        return Err(invalid(
            "slice_axis",
            format!(
                "expected start <= end <= {len} and step >= 1 on axis {axis} of shape {}, \
                 found {start}..{end} step {step}",
                layout.shape
            ),
        ));
    }
    let mut out = *layout;
    out.offset += start * out.strides[axis];
    out.shape = out.shape.with_axis(axis, (end - start).div_ceil(step));
    out.strides[axis] *= step;
    Ok(out)
}

/// The sub-array at `index` along `axis` (one axis fewer).
pub(crate) fn indexed(layout: &Layout, axis: usize, index: usize) -> Result<Layout, ArrayError> {
    layout.check_axis("index_axis", axis)?;
    let len = layout.shape.dims()[axis];
    if index >= len {
        return Err(invalid(
            "index_axis",
            format!("index {index} is out of bounds for axis {axis} of length {len}"),
        ));
    }
    let mut out = *layout;
    out.offset += index * layout.strides[axis];
    out.shape = layout.shape.without_axis(axis);
    for i in axis..out.shape.ndim() {
        out.strides[i] = layout.strides[i + 1];
    }
    Ok(out)
}

/// The axes in the order `axes` (a permutation of `0..ndim`).
pub(crate) fn permuted(layout: &Layout, axes: &[usize]) -> Result<Layout, ArrayError> {
    let ndim = layout.shape.ndim();
    let mut seen = [false; MAX_DIMS];
    if axes.len() != ndim
        || axes
            .iter()
            .any(|&a| a >= ndim || std::mem::replace(&mut seen[a], true))
    {
        return Err(invalid(
            "permute",
            format!(
                "expected a permutation of 0..{ndim} for shape {}, found {axes:?}",
                layout.shape
            ),
        ));
    }
    let mut dims = [0; MAX_DIMS];
    let mut out = *layout;
    for (i, &a) in axes.iter().enumerate() {
        dims[i] = layout.shape.dims()[a];
        out.strides[i] = layout.strides[a];
    }
    out.shape = Shape::new(&dims[..ndim])?;
    Ok(out)
}

/// The axes reversed (a transpose for matrices).
pub(crate) fn reversed(layout: &Layout) -> Layout {
    let ndim = layout.shape.ndim();
    let mut axes = [0; MAX_DIMS];
    for (i, a) in axes[..ndim].iter_mut().enumerate() {
        *a = ndim - 1 - i;
    }
    permuted(layout, &axes[..ndim]).unwrap_or(*layout)
}

/// The same elements with another shape, for a contiguous layout only.
pub(crate) fn reshaped(layout: &Layout, shape: &[usize]) -> Result<Layout, ArrayError> {
    let shape = Shape::new(shape)?;
    if shape.len() != layout.shape.len() {
        return Err(ArrayError::ShapeMismatch {
            op: "reshape",
            lhs: Box::new(layout.shape),
            rhs: Box::new(shape),
            expected: "the same number of elements",
        });
    }
    if !layout.is_c_contiguous() {
        return Err(invalid(
            "reshape",
            format!(
                "an array of shape {} with strides {:?} is not contiguous: make a contiguous copy \
                 with dup() first",
                layout.shape,
                layout.strides()
            ),
        ));
    }
    Ok(Layout {
        offset: layout.offset,
        ..Layout::c_order(shape)
    })
}
