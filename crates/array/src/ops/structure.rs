//! Operations that rearrange elements: concatenation and stacking along an axis, and row
//! gathering (building a mini-batch from row indices).

use super::with_output;
use crate::array::{AsView, AsViewMut, DataType, NdArray, Place, copy_strided};
use crate::error::{ArrayError, invalid};
use crate::shape::Shape;

fn check_same_except(
    op: &'static str,
    first: &Shape,
    other: &Shape,
    axis: Option<usize>,
) -> Result<(), ArrayError> {
    let same = first.ndim() == other.ndim()
        && first
            .dims()
            .iter()
            .zip(other.dims())
            .enumerate()
            .all(|(i, (a, b))| Some(i) == axis || a == b);
    if same {
        Ok(())
    } else {
        Err(ArrayError::ShapeMismatch {
            op,
            lhs: Box::new(*first),
            rhs: Box::new(*other),
            expected: if axis.is_some() {
                "equal shapes except along the concatenation axis"
            } else {
                "equal shapes"
            },
        })
    }
}

/// Joins arrays along an existing `axis`, in the current workspace (or heap).
pub fn concat<T: DataType, A: AsView<T>>(
    arrays: &[A],
    axis: usize,
) -> Result<NdArray<T>, ArrayError> {
    let first = arrays
        .first()
        .ok_or_else(|| invalid("concat", "expected at least one array, found none"))?
        .view();
    first.layout.check_axis("concat", axis)?;
    let mut total = 0;
    for a in arrays {
        let v = a.view();
        check_same_except("concat", first.layout.shape(), v.layout.shape(), Some(axis))?;
        total += v.layout.shape().dims()[axis];
    }
    let shape = first.layout.shape().with_axis(axis, total);
    let mut out = NdArray::alloc(shape, false, Place::Current)?;
    let mut start = 0;
    for a in arrays {
        let v = a.view();
        let len = v.layout.shape().dims()[axis];
        let mut dst = out.layout;
        dst.offset += start * dst.strides[axis];
        dst.shape = dst.shape.with_axis(axis, len);
        let src = v.read()?;
        let (data, layout) = src.raw();
        copy_strided(data, layout, &mut out.buf.write()?, &dst);
        start += len;
    }
    Ok(out)
}

/// Stacks equally shaped arrays along a new `axis`, in the current workspace (or heap).
pub fn stack<T: DataType, A: AsView<T>>(
    arrays: &[A],
    axis: usize,
) -> Result<NdArray<T>, ArrayError> {
    let first = arrays
        .first()
        .ok_or_else(|| invalid("stack", "expected at least one array, found none"))?
        .view();
    if axis > first.layout.shape().ndim() {
        return Err(invalid(
            "stack",
            format!(
                "axis {axis} is out of range for stacking arrays of shape {}",
                first.layout.shape()
            ),
        ));
    }
    for a in arrays {
        check_same_except("stack", first.layout.shape(), a.view().layout.shape(), None)?;
    }
    let shape = first.layout.shape().with_inserted(axis, arrays.len())?;
    let mut out = NdArray::alloc(shape, false, Place::Current)?;
    for (i, a) in arrays.iter().enumerate() {
        let v = a.view();
        let mut dst = out.layout;
        dst.offset += i * dst.strides[axis];
        // Drop the stacking axis from the destination layout.
        let mut strides = dst.strides;
        strides[axis..shape.ndim() - 1].copy_from_slice(&dst.strides[axis + 1..shape.ndim()]);
        dst.strides = strides;
        dst.shape = *v.layout.shape();
        let src = v.read()?;
        let (data, layout) = src.raw();
        copy_strided(data, layout, &mut out.buf.write()?, &dst);
    }
    Ok(out)
}

/// Rows `indices` of `a` (axis 0), in order, into `out` (contiguous).
pub fn gather_rows_into<T: DataType>(
    a: &impl AsView<T>,
    indices: &[usize],
    out: &mut impl AsViewMut<T>,
) -> Result<(), ArrayError> {
    let a = a.view();
    if a.layout.shape().ndim() == 0 {
        return Err(invalid(
            "gather_rows",
            "expected an array with at least one axis, found a scalar",
        ));
    }
    let rows = a.layout.shape().dims()[0];
    if let Some(&bad) = indices.iter().find(|&&i| i >= rows) {
        return Err(invalid(
            "gather_rows",
            format!(
                "row index {bad} is out of bounds for {rows} rows (shape {})",
                a.layout.shape()
            ),
        ));
    }
    let shape = a.layout.shape().with_axis(0, indices.len());
    let src = a.read()?;
    let (data, layout) = src.raw();
    let row_len: usize = a.layout.shape().dims()[1..].iter().product();
    let contiguous_rows = {
        let mut one = *layout;
        one.shape = one.shape.with_axis(0, 1);
        one.is_c_contiguous()
    };
    with_output("gather_rows", out, &shape, |o| {
        for (dst, &r) in o.chunks_exact_mut(row_len.max(1)).zip(indices) {
            let start = layout.offset() + r * layout.strides()[0];
            if contiguous_rows {
                dst.copy_from_slice(&data[start..start + row_len]);
            } else {
                let mut row = *layout;
                row.offset = start;
                row.shape = row.shape.with_axis(0, 1);
                let mut i = 0;
                row.for_each_index(|j| {
                    dst[i] = data[j];
                    i += 1;
                });
            }
        }
        Ok(())
    })
}

/// Rows `indices` of `a` (axis 0), in the current workspace (or heap).
pub fn gather_rows<T: DataType>(
    a: &impl AsView<T>,
    indices: &[usize],
) -> Result<NdArray<T>, ArrayError> {
    let v = a.view();
    if v.layout.shape().ndim() == 0 {
        return Err(invalid(
            "gather_rows",
            "expected an array with at least one axis, found a scalar",
        ));
    }
    let shape = v.layout.shape().with_axis(0, indices.len());
    let mut out = NdArray::alloc(shape, false, Place::Current)?;
    gather_rows_into(a, indices, &mut out)?;
    Ok(out)
}
