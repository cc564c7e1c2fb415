//! Vertices that move elements: merge (concatenate along axis 1), subset (a range of axis 1),
//! stack and unstack (along the batch axis). Backward passes route each slice of the gradient
//! back to the input it came from.

use dl4rs_array::{ArrayView, AsViewMut, DataType, NdArray};

use super::{VertexInputs, VertexOut};
use crate::error::NnError;
use crate::layers::{ACT, GRAD, MaskOut};
use crate::workspace_mgr::LayerWorkspaceMgr;

fn with_axis(shape: &[usize], axis: usize, len: usize) -> dl4rs_array::Shape {
    let mut dims = [0usize; dl4rs_array::MAX_DIMS];
    dims[..shape.len()].copy_from_slice(shape);
    dims[axis] = len;
    dl4rs_array::Shape::new(&dims[..shape.len()]).unwrap_or_default()
}

/// Concatenates the inputs along `axis` into a new `Activations` array.
fn concat_into<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    axis: usize,
    ty: crate::workspace_mgr::ArrayType,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    let first = inputs.activations(0)?;
    let mut total = 0;
    for i in 0..inputs.len {
        total += inputs.activations(i)?.shape()[axis];
    }
    let shape = with_axis(first.shape(), axis, total);
    let mut out = mgr.create_uninitialized::<T>(ty, shape.dims())?;
    let mut start = 0;
    for i in 0..inputs.len {
        let x = inputs.activations(i)?;
        let len = x.shape()[axis];
        out.view_mut()
            .slice_axis(axis, start, start + len, 1)?
            .assign(&x)?;
        start += len;
    }
    Ok(out)
}

/// Gradient slices along `axis`, one per input.
fn split_back<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    axis: usize,
    epsilon: &ArrayView<'_, T>,
    grads: &mut [Option<NdArray<T>>],
    mgr: &LayerWorkspaceMgr,
) -> Result<(), NnError> {
    let mut start = 0;
    for (i, g) in grads.iter_mut().enumerate().take(inputs.len) {
        let len = inputs.activations(i)?.shape()[axis];
        *g = Some(mgr.dup(GRAD, &epsilon.slice_axis(axis, start, start + len, 1)?)?);
        start += len;
    }
    Ok(())
}

pub(super) fn merge<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    concat_into(inputs, 1, ACT, mgr)
}

pub(super) fn merge_backward<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    epsilon: &ArrayView<'_, T>,
    grads: &mut [Option<NdArray<T>>],
    mgr: &LayerWorkspaceMgr,
) -> Result<(), NnError> {
    split_back(inputs, 1, epsilon, grads, mgr)
}

pub(super) fn subset<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    from: usize,
    to: usize,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    let x = inputs.activations(0)?;
    mgr.dup(ACT, &x.slice_axis(1, from, to + 1, 1)?)
}

pub(super) fn subset_backward<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    from: usize,
    to: usize,
    epsilon: &ArrayView<'_, T>,
    grads: &mut [Option<NdArray<T>>],
    mgr: &LayerWorkspaceMgr,
) -> Result<(), NnError> {
    let x = inputs.activations(0)?;
    let mut g = mgr.create::<T>(GRAD, x.shape())?;
    g.view_mut()
        .slice_axis(1, from, to + 1, 1)?
        .assign(epsilon)?;
    grads[0] = Some(g);
    Ok(())
}

pub(super) fn stack<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    mgr: &LayerWorkspaceMgr,
) -> Result<VertexOut<T>, NnError> {
    let activations = concat_into(inputs, 0, ACT, mgr)?;
    let mut masked = 0;
    for i in 0..inputs.len {
        masked += usize::from((inputs.get)(i)?.mask.is_some());
    }
    let mask = if masked == 0 {
        MaskOut::Same
    } else if masked == inputs.len {
        let masks = VertexInputs {
            len: inputs.len,
            get: &|i| {
                let x = (inputs.get)(i)?;
                let m = x
                    .mask
                    .ok_or_else(|| NnError::Input("mask missing".into()))?;
                Ok(crate::layers::LayerInput {
                    activations: m,
                    mask: None,
                })
            },
        };
        MaskOut::New(concat_into(&masks, 0, ACT, mgr)?)
    } else {
        return Err(NnError::Input(
            "StackVertex: some inputs have masks and some don't: give every input a mask (all \
             ones where nothing is masked) or none"
                .into(),
        ));
    };
    Ok(VertexOut { activations, mask })
}

pub(super) fn stack_backward<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    epsilon: &ArrayView<'_, T>,
    grads: &mut [Option<NdArray<T>>],
    mgr: &LayerWorkspaceMgr,
) -> Result<(), NnError> {
    split_back(inputs, 0, epsilon, grads, mgr)
}

fn part(batch: usize, from: usize, stack_size: usize) -> Result<(usize, usize), NnError> {
    if stack_size == 0 || !batch.is_multiple_of(stack_size) {
        return Err(NnError::Input(format!(
            "UnstackVertex: a batch of {batch} does not split into {stack_size} equal parts"
        )));
    }
    let step = batch / stack_size;
    Ok((from * step, (from + 1) * step))
}

pub(super) fn unstack<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    from: usize,
    stack_size: usize,
    mgr: &LayerWorkspaceMgr,
) -> Result<VertexOut<T>, NnError> {
    let input = (inputs.get)(0)?;
    let x = input.activations;
    let (a, b) = part(x.shape()[0], from, stack_size)?;
    let activations = mgr.dup(ACT, &x.slice_axis(0, a, b, 1)?)?;
    let mask = match input.mask {
        Some(m) => MaskOut::New(mgr.dup(ACT, &m.slice_axis(0, a, b, 1)?)?),
        None => MaskOut::Same,
    };
    Ok(VertexOut { activations, mask })
}

pub(super) fn unstack_backward<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    from: usize,
    stack_size: usize,
    epsilon: &ArrayView<'_, T>,
    grads: &mut [Option<NdArray<T>>],
    mgr: &LayerWorkspaceMgr,
) -> Result<(), NnError> {
    let x = inputs.activations(0)?;
    let (a, b) = part(x.shape()[0], from, stack_size)?;
    let mut g = mgr.create::<T>(GRAD, x.shape())?;
    g.view_mut().slice_axis(0, a, b, 1)?.assign(epsilon)?;
    grads[0] = Some(g);
    Ok(())
}
