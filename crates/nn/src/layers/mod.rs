//! The layer API. A layer is a plain struct implementing [`Layer`]: it reads its parameters
//! from the network's flat parameter array, writes its parameter gradients into the flat
//! gradient array, and places every array it creates through the [`LayerWorkspaceMgr`] by
//! [`ArrayType`]: activations in `Activations`, the returned input gradient in
//! `ActivationGrad`, scratch in the working-memory types. The network checks where returned
//! arrays live, so a custom layer that misplaces one gets a clear error, not a dangling array.

mod batch_norm;
mod dense;
mod dropout;
mod simple;

pub use batch_norm::BatchNormLayer;
pub use dense::DenseLayer;
pub use dropout::DropoutLayer;
pub use simple::{ActivationLayer, LossLayer};

use dl4rs_array::{ArrayView, ArrayViewMut, DataType, NdArray};

use crate::conf::LayerConf;
use crate::error::NnError;
use crate::loss::LossFunction;
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// What the network knows about the current step, for layers that need it (dropout masks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepContext {
    /// Training (true) or inference.
    pub training: bool,
    /// Iterations done so far.
    pub iteration: u64,
    /// The network's seed.
    pub seed: u64,
    /// This layer's index.
    pub index: usize,
    /// Whether backprop must return `dL/d(input)` (false for the first layer: nobody uses it).
    pub need_input_gradient: bool,
}

/// The gradient a layer's backward pass starts from.
#[derive(Debug, Clone, Copy)]
pub enum Epsilon<'a, T: DataType> {
    /// `dL/d(output)` from the layer above.
    Gradient(ArrayView<'a, T>),
    /// The labels, for a layer that computes the loss itself (an output layer).
    Labels(ArrayView<'a, T>),
}

/// One parameter array inside a layer's slice of the flat parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// DL4J-style key: "W", "b", "gamma", "beta".
    pub key: &'static str,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Whether L1/L2/weight decay apply (weights yes, biases no).
    pub regularize: bool,
}

/// A layer of a network.
pub trait Layer<T: DataType>: Send {
    /// The layer type's name ("DenseLayer", ...).
    fn kind(&self) -> &'static str;
    /// The configured name, if any.
    fn name(&self) -> Option<&str>;
    /// Input width.
    fn n_in(&self) -> usize;
    /// Output width.
    fn n_out(&self) -> usize;
    /// The parameters, in order, inside this layer's slice of the flat array.
    fn param_specs(&self) -> Vec<ParamSpec>;
    /// Total number of parameters.
    fn num_params(&self) -> usize {
        self.param_specs()
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }
    /// Writes initial values into this layer's parameter slice.
    fn init_params(&self, params: &mut [T], seed: u64);
    /// The loss this layer computes, for output layers.
    fn loss(&self) -> Option<LossFunction> {
        None
    }
    /// Forward pass over `input` (`[batch, n_in]`); the result must be created as
    /// `ArrayType::Activations`.
    fn activate(
        &mut self,
        input: &ArrayView<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<NdArray<T>, NnError>;
    /// Backward pass: writes parameter gradients into `grads` (this layer's slice of the flat
    /// gradient array) and returns `dL/d(input)`, created as `ArrayType::ActivationGrad`
    /// (`None` when `ctx.need_input_gradient` is false). `input` and `output` are those of the
    /// last `activate` in training mode.
    #[allow(clippy::too_many_arguments)]
    fn backprop_gradient(
        &mut self,
        input: &ArrayView<'_, T>,
        output: &ArrayView<'_, T>,
        epsilon: Epsilon<'_, T>,
        params: &ArrayView<'_, T>,
        grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError>;
    /// Drops anything cached between forward and backward (called after each iteration).
    fn clear(&mut self) {}
    /// Non-parameter state to save with the model (batch norm's running statistics).
    fn state(&self) -> Vec<(&'static str, Vec<T>)> {
        Vec::new()
    }
    /// Restores state saved by [`Layer::state`].
    fn set_state(&mut self, key: &str, values: &[T]) -> Result<(), NnError> {
        let _ = values;
        Err(NnError::Input(format!(
            "{}: no state named {key:?}",
            self.kind()
        )))
    }
}

/// The layer for a configuration entry (sizes already inferred).
pub fn layer_from_conf<T: DataType>(conf: &LayerConf) -> Result<Box<dyn Layer<T>>, NnError> {
    let missing = || NnError::config(format!("{}: sizes were not inferred", conf.kind()));
    Ok(match conf {
        LayerConf::Dense(d) => Box::new(DenseLayer::new(d, None)?),
        LayerConf::Output(o) => Box::new(DenseLayer::new(&o.dense, Some(o.loss))?),
        LayerConf::Loss(l) => Box::new(LossLayer::new(
            l.name.clone(),
            l.n.ok_or_else(missing)?,
            l.activation,
            l.loss,
        )),
        LayerConf::Activation(a) => Box::new(ActivationLayer::new(
            a.name.clone(),
            a.n.ok_or_else(missing)?,
            a.activation,
        )),
        LayerConf::Dropout(d) => Box::new(DropoutLayer::new(
            d.name.clone(),
            d.n.ok_or_else(missing)?,
            d.retain_probability,
        )),
        LayerConf::BatchNormalization(b) => Box::new(BatchNormLayer::new(
            b.name.clone(),
            b.n.ok_or_else(missing)?,
            b.eps,
            b.decay,
        )),
    })
}

/// Checks a layer input is `[batch, n]`.
pub(crate) fn check_input<T: DataType>(
    layer: &dyn Layer<T>,
    index: usize,
    input: &ArrayView<'_, T>,
    n: usize,
) -> Result<usize, NnError> {
    match input.shape() {
        &[batch, cols] if cols == n => Ok(batch),
        other => Err(NnError::Layer {
            index,
            kind: layer.kind(),
            name: layer
                .name()
                .map(|n| format!(" \"{n}\""))
                .unwrap_or_default(),
            message: format!("expected input of shape [batch, {n}], found {other:?}"),
        }),
    }
}

/// The gradient-or-labels of an output layer, as an error when the wrong one arrives.
pub(crate) fn expect_labels<'a, T: DataType>(
    kind: &'static str,
    epsilon: Epsilon<'a, T>,
) -> Result<ArrayView<'a, T>, NnError> {
    match epsilon {
        Epsilon::Labels(l) => Ok(l),
        Epsilon::Gradient(_) => Err(NnError::Input(format!(
            "{kind} computes the loss: its backward pass needs labels, not a gradient"
        ))),
    }
}

pub(crate) fn expect_gradient<'a, T: DataType>(
    kind: &'static str,
    epsilon: Epsilon<'a, T>,
) -> Result<ArrayView<'a, T>, NnError> {
    match epsilon {
        Epsilon::Gradient(g) => Ok(g),
        Epsilon::Labels(_) => Err(NnError::Input(format!(
            "{kind} is not an output layer: its backward pass needs the gradient from above"
        ))),
    }
}

pub(crate) const ACT: ArrayType = ArrayType::Activations;
pub(crate) const GRAD: ArrayType = ArrayType::ActivationGrad;
