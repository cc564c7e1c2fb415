//! Graph vertices between sequences and rows: `LastTimeStepVertex` (each example's last
//! unmasked step, `[batch, n, time]` → `[batch, n]`, no mask after it) and
//! `DuplicateToTimeSeriesVertex` (rows repeated at every step of a reference sequence, its
//! second input, whose length and mask the output takes).
//!
//! DL4J names the network input whose mask these use; here masks travel with activations, so
//! the vertex uses the mask of the input it reads (the reference sequence for the duplicate).

use dl4rs_array::ops::{self, Reduction};
use dl4rs_array::{ArrayView, AsViewMut, DataType, NdArray};

use super::{VertexInputs, VertexOut};
use crate::error::NnError;
use crate::layers::recurrent::last_steps;
use crate::layers::{ACT, GRAD, MaskOut};
use crate::workspace_mgr::LayerWorkspaceMgr;

/// A sequence input: activations, mask and `[batch, n, time]`.
type Sequence<'a, T> = (ArrayView<'a, T>, Option<ArrayView<'a, T>>, [usize; 3]);

fn sequence<'a, T: DataType>(
    inputs: &VertexInputs<'a, T>,
    i: usize,
    kind: &str,
) -> Result<Sequence<'a, T>, NnError> {
    let input = (inputs.get)(i)?;
    let x = input.activations;
    let &[b, n, t] = x.shape() else {
        return Err(NnError::Input(format!(
            "{kind}: input {i} must be a sequence [batch, n, time], found {:?}",
            x.shape()
        )));
    };
    if let Some(m) = &input.mask
        && m.shape() != [b, t]
    {
        return Err(NnError::Input(format!(
            "{kind}: the mask has shape {:?} but the sequence {:?} needs [{b}, {t}]",
            m.shape(),
            x.shape()
        )));
    }
    Ok((x, input.mask, [b, n, t]))
}

/// Each example's last unmasked step.
pub(super) fn last_time_step<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    mgr: &LayerWorkspaceMgr,
) -> Result<VertexOut<T>, NnError> {
    let (x, mask, [b, n, t]) = sequence(inputs, 0, "LastTimeStepVertex")?;
    let mut out = mgr.create_uninitialized::<T>(ACT, &[b, n])?;
    last_steps(mask.as_ref(), b, t, |r, s| {
        out.view_mut()
            .index_axis(0, r)?
            .assign(&x.index_axis(0, r)?.index_axis(1, s)?)?;
        Ok(())
    })?;
    Ok(VertexOut {
        activations: out,
        mask: MaskOut::Cleared,
    })
}

/// The gradient at each example's last unmasked step, 0 elsewhere.
pub(super) fn last_time_step_backward<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    epsilon: &ArrayView<'_, T>,
    grads: &mut [Option<NdArray<T>>],
    mgr: &LayerWorkspaceMgr,
) -> Result<(), NnError> {
    let (_, mask, [b, n, t]) = sequence(inputs, 0, "LastTimeStepVertex")?;
    let mut g = mgr.create::<T>(GRAD, &[b, n, t])?;
    last_steps(mask.as_ref(), b, t, |r, s| {
        g.view_mut()
            .index_axis(0, r)?
            .index_axis(1, s)?
            .assign(&epsilon.index_axis(0, r)?)?;
        Ok(())
    })?;
    grads[0] = Some(g);
    Ok(())
}

/// Rows `[batch, n]` (input 0) repeated at every step of the sequence in input 1.
pub(super) fn duplicate_to_time_series<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    mgr: &LayerWorkspaceMgr,
) -> Result<VertexOut<T>, NnError> {
    const KIND: &str = "DuplicateToTimeSeriesVertex";
    let rows = inputs.activations(0)?;
    let (_, mask, [b, _, t]) = sequence(inputs, 1, KIND)?;
    let &[rb, n] = rows.shape() else {
        return Err(NnError::Input(format!(
            "{KIND}: input 0 must be rows [batch, n], found {:?}",
            rows.shape()
        )));
    };
    if rb != b {
        return Err(NnError::Input(format!(
            "{KIND}: the rows have batch {rb} but the reference sequence has batch {b}"
        )));
    }
    let mut out = mgr.create_uninitialized::<T>(ACT, &[b, n, t])?;
    out.assign(&rows.reshape(&[b, n, 1])?.broadcast(&[b, n, t])?)?;
    let mask = match mask {
        Some(m) => MaskOut::New(mgr.dup(ACT, &m)?),
        None => MaskOut::Cleared,
    };
    Ok(VertexOut {
        activations: out,
        mask,
    })
}

/// The rows' gradient is the sum over the steps; the reference sequence gets none (0).
pub(super) fn duplicate_to_time_series_backward<T: DataType>(
    inputs: &VertexInputs<'_, T>,
    epsilon: &ArrayView<'_, T>,
    grads: &mut [Option<NdArray<T>>],
    mgr: &LayerWorkspaceMgr,
) -> Result<(), NnError> {
    let rows = inputs.activations(0)?;
    let mut g = mgr.create_uninitialized::<T>(GRAD, rows.shape())?;
    ops::reduce_axis_into(Reduction::Sum, epsilon, 2, &mut g)?;
    grads[0] = Some(g);
    let reference = inputs.activations(1)?;
    grads[1] = Some(mgr.create::<T>(GRAD, reference.shape())?);
    Ok(())
}
