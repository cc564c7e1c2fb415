//! The parameterless graph vertices at run time: forward (the output as `Activations`) and
//! backward (one gradient per input as `ActivationGrad`) for every [`VertexConf`] but layers,
//! which the network runs through [`crate::Layer`]. Inputs are read through [`VertexInputs`], a
//! window onto the network's activations, so a call allocates nothing but its results.
//!
//! Masks: a vertex's output keeps its first input's mask, except stacking and unstacking,
//! which stack and slice the masks along the batch axis with the activations, and the time
//! vertices (`time.rs`), which clear it (last time step) or take the reference sequence's.

mod arith;
mod shape;
mod time;

use dl4rs_array::{ArrayView, DataType, NdArray};

use crate::conf::VertexConf;
use crate::error::NnError;
use crate::layers::{LayerInput, MaskOut, StepContext};
use crate::workspace_mgr::LayerWorkspaceMgr;

/// The inputs of one vertex call (activations and masks, by input position).
pub(crate) struct VertexInputs<'a, T: DataType> {
    pub len: usize,
    pub get: &'a dyn Fn(usize) -> Result<LayerInput<'a, T>, NnError>,
}

impl<'a, T: DataType> VertexInputs<'a, T> {
    pub fn activations(&self, i: usize) -> Result<ArrayView<'a, T>, NnError> {
        Ok((self.get)(i)?.activations)
    }
}

/// What a vertex forward pass returns.
pub(crate) struct VertexOut<T: DataType> {
    pub activations: NdArray<T>,
    pub mask: MaskOut<T>,
}

/// Runs `vertex` forward.
pub(crate) fn forward<T: DataType>(
    vertex: &VertexConf,
    inputs: &VertexInputs<'_, T>,
    ctx: &StepContext,
    mgr: &LayerWorkspaceMgr,
) -> Result<VertexOut<T>, NnError> {
    let plain = |activations| VertexOut {
        activations,
        mask: MaskOut::Same,
    };
    Ok(match vertex {
        VertexConf::Layer { .. } => {
            return Err(NnError::config("layer vertices run as layers"));
        }
        VertexConf::Preprocessor { preprocessor } => {
            let f = preprocessor.forward(&(inputs.get)(0)?, ctx, mgr)?;
            VertexOut {
                activations: f.activations,
                mask: f.mask,
            }
        }
        VertexConf::Merge => plain(shape::merge(inputs, mgr)?),
        VertexConf::Subset { from, to } => plain(shape::subset(inputs, *from, *to, mgr)?),
        VertexConf::Stack => shape::stack(inputs, mgr)?,
        VertexConf::Unstack { from, stack_size } => {
            shape::unstack(inputs, *from, *stack_size, mgr)?
        }
        VertexConf::ElementWise { op } => plain(arith::element_wise(inputs, *op, mgr)?),
        VertexConf::Scale { factor } => plain(arith::scale(inputs, *factor, mgr)?),
        VertexConf::Shift { shift } => plain(arith::shift(inputs, *shift, mgr)?),
        VertexConf::L2Normalize { eps } => plain(arith::l2_normalize(inputs, *eps, mgr)?),
        VertexConf::LastTimeStep => time::last_time_step(inputs, mgr)?,
        VertexConf::DuplicateToTimeSeries => time::duplicate_to_time_series(inputs, mgr)?,
    })
}

/// Runs `vertex` backward: `grads[i]` receives the gradient of input `i` (`grads` is at least
/// as long as the inputs).
pub(crate) fn backward<T: DataType>(
    vertex: &VertexConf,
    inputs: &VertexInputs<'_, T>,
    output: &ArrayView<'_, T>,
    epsilon: &ArrayView<'_, T>,
    grads: &mut [Option<NdArray<T>>],
    mgr: &LayerWorkspaceMgr,
) -> Result<(), NnError> {
    match vertex {
        VertexConf::Layer { .. } => Err(NnError::config("layer vertices run as layers")),
        VertexConf::Preprocessor { preprocessor } => {
            let x = inputs.activations(0)?;
            grads[0] = Some(preprocessor.backward(x.shape(), epsilon, mgr)?);
            Ok(())
        }
        VertexConf::Merge => shape::merge_backward(inputs, epsilon, grads, mgr),
        VertexConf::Subset { from, to } => {
            shape::subset_backward(inputs, *from, *to, epsilon, grads, mgr)
        }
        VertexConf::Stack => shape::stack_backward(inputs, epsilon, grads, mgr),
        VertexConf::Unstack { from, stack_size } => {
            shape::unstack_backward(inputs, *from, *stack_size, epsilon, grads, mgr)
        }
        VertexConf::ElementWise { op } => {
            arith::element_wise_backward(inputs, *op, output, epsilon, grads, mgr)
        }
        VertexConf::Scale { factor } => arith::scale_backward(*factor, epsilon, grads, mgr),
        VertexConf::Shift { .. } => arith::scale_backward(1.0, epsilon, grads, mgr),
        VertexConf::L2Normalize { eps } => {
            arith::l2_normalize_backward(inputs, *eps, output, epsilon, grads, mgr)
        }
        VertexConf::LastTimeStep => time::last_time_step_backward(inputs, epsilon, grads, mgr),
        VertexConf::DuplicateToTimeSeries => {
            time::duplicate_to_time_series_backward(inputs, epsilon, grads, mgr)
        }
    }
}

/// `&mut [T]` of a freshly created (contiguous) array.
pub(crate) fn slice_mut<'a, T: DataType>(
    w: &'a mut dl4rs_array::ArrayWrite<'_, T>,
) -> Result<&'a mut [T], NnError> {
    w.as_slice_mut()
        .ok_or_else(|| NnError::Input("vertex arrays must be contiguous".into()))
}
