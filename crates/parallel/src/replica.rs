//! Replicas: a copy of a network built from its configuration JSON (either kind, as the model
//! serializer rebuilds one) with the training workspace mode ParallelWrapper asks for, then
//! given the parameters, the updater state, the layer states (batch-norm statistics) and the
//! counters. Each trainer or inference thread owns one, so their workspaces (thread-local)
//! never meet. [`AsModel`] lets the wrapper take a concrete network or a `Box<dyn Model>`.

use dl4rs_array::{AsView, DataType};
use dl4rs_nn::{
    ComputationGraph, ComputationGraphConfiguration, Model, ModelKind, MultiLayerConfiguration,
    MultiLayerNetwork, NnError, WorkspaceMode,
};

/// A network ParallelWrapper or ParallelInference can take: a [`MultiLayerNetwork`], a
/// [`ComputationGraph`] or a `Box<dyn Model<T>>`.
pub trait AsModel<T: DataType>: Send + 'static {
    /// The network.
    fn as_model(&self) -> &dyn Model<T>;
    /// The network, writable.
    fn as_model_mut(&mut self) -> &mut dyn Model<T>;
}

impl<T: DataType> AsModel<T> for MultiLayerNetwork<T> {
    fn as_model(&self) -> &dyn Model<T> {
        self
    }
    fn as_model_mut(&mut self) -> &mut dyn Model<T> {
        self
    }
}

impl<T: DataType> AsModel<T> for ComputationGraph<T> {
    fn as_model(&self) -> &dyn Model<T> {
        self
    }
    fn as_model_mut(&mut self) -> &mut dyn Model<T> {
        self
    }
}

impl<T: DataType> AsModel<T> for Box<dyn Model<T>> {
    fn as_model(&self) -> &dyn Model<T> {
        &**self
    }
    fn as_model_mut(&mut self) -> &mut dyn Model<T> {
        &mut **self
    }
}

/// A copy of `model` (same kind, configuration, parameters, updater state, layer states and
/// counters); `training_mode` replaces the configuration's training workspace mode when given
/// (DL4J's `ParallelWrapper.workspaceMode` overrides the model's).
pub fn replicate<T: DataType>(
    model: &dyn Model<T>,
    training_mode: Option<WorkspaceMode>,
) -> Result<Box<dyn Model<T>>, NnError> {
    let json = model.conf_json()?;
    let mut replica: Box<dyn Model<T>> = match model.kind() {
        ModelKind::MultiLayerNetwork => {
            let mut conf = MultiLayerConfiguration::from_json(&json)?;
            if let Some(m) = training_mode {
                conf.global.training_workspace_mode = m;
            }
            Box::new(MultiLayerNetwork::<T>::with_params(
                conf,
                &model.params().view(),
            )?)
        }
        ModelKind::ComputationGraph => {
            let mut conf = ComputationGraphConfiguration::from_json(&json)?;
            if let Some(m) = training_mode {
                conf.global.training_workspace_mode = m;
            }
            Box::new(ComputationGraph::<T>::with_params(
                conf,
                &model.params().view(),
            )?)
        }
    };
    // Built with the parameters (no weight initialization: 5 ms for W1's 235 k), then the
    // rest of the state.
    copy_state_but_params(model, replica.as_mut())?;
    Ok(replica)
}

/// Copies parameters, updater state, layer states and counters from `from` into `to` (same
/// configuration). Allocates (layer states come out as vectors): used outside rounds only.
pub fn copy_state<T: DataType>(from: &dyn Model<T>, to: &mut dyn Model<T>) -> Result<(), NnError> {
    to.set_params(&from.params().view())?;
    copy_state_but_params(from, to)
}

/// [`copy_state`] but the parameters (a replica built with them).
fn copy_state_but_params<T: DataType>(
    from: &dyn Model<T>,
    to: &mut dyn Model<T>,
) -> Result<(), NnError> {
    if from.updater_state().len() == to.updater_state().len() {
        to.set_updater_state(&from.updater_state().view())?;
    }
    for (name, values) in from.layer_states() {
        to.set_layer_state(&name, &values)?;
    }
    to.set_counters(from.iteration_count(), from.epoch_count());
    Ok(())
}
