//! Recurrent layers and the per-time-step output layers, over DL4J's sequence layout
//! `[batch, size, time]` with feature masks `[batch, time]`:
//!
//! * [`LstmLayer`] (`lstm.rs`): DL4J's LSTM without peepholes, backprop through time;
//! * [`SimpleRnnLayer`] (`simple_rnn.rs`): DL4J's `SimpleRnn`;
//! * [`GruLayer`] (`gru.rs`): a GRU (PyTorch's formulation);
//! * [`RnnOutputLayer`] (`output.rs`): a dense layer and a loss at every time step, or only the
//!   activation and loss (`RnnLossLayer`);
//! * [`BidirectionalLayer`] (`bidirectional.rs`): a recurrent layer both ways;
//! * [`TimeDistributedLayer`], [`MaskZeroLayer`] (`wrappers.rs`): a dense layer at every step,
//!   a mask from padding values;
//! * [`LastTimeStepLayer`] (`last_step.rs`): a recurrent layer's output at each example's last
//!   unmasked step.
//!
//! Inside, sequences are worked on time-major (`[time, batch, size]`, so a step is one
//! contiguous block) or as rows (`[batch * time, size]`, row `example * time + step`, the
//! order of DL4J's `RnnToFeedForwardPreProcessor`), copied in and out of the layout of the
//! network in working memory. Every time step of a recurrence runs in a fresh cycle of the RNN
//! loop working-memory workspace (`RnnFfLoopWorkingMem` / `RnnBpLoopWorkingMem`), as DL4J's
//! `WS_RNN_LOOP_WORKING_MEM`.

mod bidirectional;
mod gru;
mod hidden;
mod last_step;
mod lstm;
mod output;
mod simple_rnn;
mod wrappers;

pub use bidirectional::{BidirectionalLayer, BidirectionalMode};
pub use gru::GruLayer;
pub use last_step::LastTimeStepLayer;
pub(crate) use last_step::last_steps;
pub use lstm::LstmLayer;
pub use output::RnnOutputLayer;
pub use simple_rnn::SimpleRnnLayer;
pub use wrappers::{MaskZeroLayer, TimeDistributedLayer};

use dl4rs_array::ops::{self, BinaryOp, PackedMatrix};
use dl4rs_array::{ArrayView, AsView, AsViewMut, DataType, NdArray};

use super::{RecurrentMode, StepContext};
use crate::error::NnError;
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// An error naming the layer (by its index in the network, kind and name).
pub(crate) fn layer_error(
    ctx: &StepContext,
    kind: &'static str,
    name: Option<&str>,
    message: String,
) -> NnError {
    NnError::Layer {
        index: ctx.index,
        kind,
        name: name.map(|n| format!(" \"{n}\"")).unwrap_or_default(),
        message,
    }
}

/// `(batch, size, time)` of a sequence.
pub(crate) fn dims3<T: DataType>(x: &ArrayView<'_, T>) -> (usize, usize, usize) {
    match x.shape() {
        [b, n, t] => (*b, *n, *t),
        other => (other.first().copied().unwrap_or(0), 0, 0),
    }
}

/// Checks that a feature mask fits a `[batch, _, time]` sequence: `[batch, time]`.
pub(crate) fn check_mask<T: DataType>(
    ctx: &StepContext,
    kind: &'static str,
    name: Option<&str>,
    mask: Option<&ArrayView<'_, T>>,
    input: &ArrayView<'_, T>,
) -> Result<(), NnError> {
    let Some(m) = mask else { return Ok(()) };
    let (b, _, t) = dims3(input);
    if m.shape() != [b, t] {
        return Err(layer_error(
            ctx,
            kind,
            name,
            format!(
                "the feature mask has shape {:?} but the input has shape {:?}: expected a mask \
                 of shape [{b}, {t}] (one entry per example and time step)",
                m.shape(),
                input.shape()
            ),
        ));
    }
    Ok(())
}

/// A `[batch, size, time]` sequence copied time-major, `[time, batch, size]`, as `ty`.
pub(crate) fn time_major<T: DataType>(
    x: &ArrayView<'_, T>,
    ty: ArrayType,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    let (b, n, t) = dims3(x);
    let mut out = mgr.create_uninitialized::<T>(ty, &[t, b, n])?;
    out.assign(&x.permute(&[2, 0, 1])?)?;
    Ok(out)
}

/// A `[batch, time]` mask copied time-major, `[time, batch]`, as `ty`.
pub(crate) fn mask_time_major<T: DataType>(
    mask: Option<&ArrayView<'_, T>>,
    ty: ArrayType,
    mgr: &LayerWorkspaceMgr,
) -> Result<Option<NdArray<T>>, NnError> {
    let Some(m) = mask else { return Ok(None) };
    let (b, t) = (m.shape()[0], m.shape()[1]);
    let mut out = mgr.create_uninitialized::<T>(ty, &[t, b])?;
    out.assign(&m.t())?;
    Ok(Some(out))
}

/// A `[batch, size, time]` sequence as rows `[batch * time, size]` (row `b * time + t`), as
/// `ty`.
pub(crate) fn to_rows<T: DataType>(
    x: &ArrayView<'_, T>,
    ty: ArrayType,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    let (b, n, t) = dims3(x);
    let mut out = mgr.create_uninitialized::<T>(ty, &[b, t, n])?;
    out.assign(&x.permute(&[0, 2, 1])?)?;
    Ok(out.reshape(&[b * t, n])?)
}

/// Rows `[batch * time, size]` back into a new `[batch, size, time]` array of type `ty`.
pub(crate) fn from_rows<T: DataType>(
    rows: &ArrayView<'_, T>,
    batch: usize,
    ty: ArrayType,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    let (r, n) = (rows.shape()[0], rows.shape()[1]);
    let t = r.checked_div(batch).unwrap_or(0);
    let mut out = mgr.create_uninitialized::<T>(ty, &[batch, n, t])?;
    out.assign(&rows.reshape(&[batch, t, n])?.permute(&[0, 2, 1])?)?;
    Ok(out)
}

/// The recurrent weights (`RW`, or `RWᵀ` backward) packed once for the products of every time
/// step, as `ty`; `None` for batch 1, whose products read the weights where they lie.
pub(crate) fn pack_recurrent<T: DataType>(
    w: &ArrayView<'_, T>,
    batch: usize,
    ty: ArrayType,
    mgr: &LayerWorkspaceMgr,
) -> Result<Option<PackedMatrix<T>>, NnError> {
    if batch <= 1 {
        return Ok(None);
    }
    let (k, n) = (w.shape()[0], w.shape()[1]);
    let storage = mgr.create_uninitialized::<T>(ty, &[PackedMatrix::<T>::len_for(k, n)])?;
    Ok(Some(PackedMatrix::pack(w, storage)?))
}

/// `c = a·w + beta·c` for one time step, with `w` packed beforehand when it was.
pub(crate) fn step_product<T: DataType>(
    a: &impl AsView<T>,
    w: &impl AsView<T>,
    packed: Option<&PackedMatrix<T>>,
    beta: T,
    c: &mut impl AsViewMut<T>,
) -> Result<(), NnError> {
    match packed {
        Some(p) => ops::gemm_packed_into(T::ONE, a, w, p, beta, c)?,
        None => ops::gemm_into(T::ONE, a, w, beta, c)?,
    }
    Ok(())
}

/// Zeroes the outputs of masked steps (their state was carried, not their output): `out` is
/// `[batch, n, time]`, `mask` `[batch, time]`.
pub(crate) fn mask_steps<T: DataType>(
    out: &mut NdArray<T>,
    mask: Option<&ArrayView<'_, T>>,
    ctx: &StepContext,
    kind: &'static str,
    name: Option<&str>,
) -> Result<(), NnError> {
    let Some(m) = mask else { return Ok(()) };
    let (b, t) = (out.shape()[0], out.shape()[2]);
    let m = m.reshape(&[b, 1, t]).map_err(|_| {
        layer_error(
            ctx,
            kind,
            name,
            "the feature mask must be a contiguous [batch, time] array".into(),
        )
    })?;
    ops::binary_assign(BinaryOp::Mul, out, &m)?;
    Ok(())
}

/// The cache a recurrent layer's forward pass left for its backward pass.
pub(crate) fn forward_cache<'c, T: DataType>(
    cache: Option<ArrayView<'c, T>>,
    ctx: &StepContext,
    kind: &'static str,
    name: Option<&str>,
) -> Result<ArrayView<'c, T>, NnError> {
    cache.ok_or_else(|| {
        layer_error(
            ctx,
            kind,
            name,
            "backward without the forward pass's cache (run forward in training mode)".into(),
        )
    })
}

/// Checks that the gradient from above has the layer's output shape `[batch, n, time]`.
pub(crate) fn check_epsilon<T: DataType>(
    eps: &ArrayView<'_, T>,
    [b, n, t]: [usize; 3],
    ctx: &StepContext,
    kind: &'static str,
    name: Option<&str>,
) -> Result<(), NnError> {
    if eps.shape() != [b, n, t] {
        return Err(layer_error(
            ctx,
            kind,
            name,
            format!(
                "the gradient from above has shape {:?}; expected [{b}, {n}, {t}]",
                eps.shape()
            ),
        ));
    }
    Ok(())
}

/// The first of `t` steps backprop reaches: truncated BPTT goes back at most its backward
/// length (earlier steps get no gradient); full backprop reaches step 0.
pub(crate) fn first_step(ctx: &StepContext, t: usize) -> usize {
    match ctx.recurrent {
        RecurrentMode::Tbptt { backward } => t.saturating_sub(backward),
        _ => 0,
    }
}
