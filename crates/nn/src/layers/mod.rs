//! The layer API. A layer is a plain struct implementing [`Layer`]. It describes itself once
//! ([`LayerInfo`]: input type in, output type out, parameter specs, loss), reads its parameters
//! from its slice of the network's flat parameter array, writes parameter gradients into its
//! slice of the flat gradient array, and places every array it creates through the
//! [`LayerWorkspaceMgr`] by [`ArrayType`]:
//!
//! * the forward result as `Activations`, and what backward will need as `FfCache`, returned in
//!   [`Forward`] (the network keeps it for one iteration and hands it back in [`Saved`]);
//!   nothing is kept in `self` between the passes;
//! * the input gradient as `ActivationGrad`; scratch as `FfWorkingMem` / `BpWorkingMem`.
//!
//! The network checks input shapes against [`LayerInfo::input_type`] before calling a layer, and
//! where returned arrays live after it, so a custom layer that misplaces one gets a clear error,
//! not a dangling array. Masks travel with activations: a layer sees its input's mask and says
//! in [`Forward::mask`] whether its output keeps it.

mod batch_norm;
mod conv;
mod dense;
mod dropout;
mod pooling;
pub(crate) mod recurrent;
mod simple;
mod spatial;

pub use batch_norm::BatchNormLayer;
pub use conv::{ConvolutionLayer, weight_grad_chunk};
pub use dense::DenseLayer;
pub use dropout::DropoutLayer;
pub use pooling::{GlobalPoolingLayer, SubsamplingLayer};
pub use recurrent::{
    BidirectionalLayer, BidirectionalMode, GruLayer, LastTimeStepLayer, LstmLayer, MaskZeroLayer,
    RnnOutputLayer, SimpleRnnLayer, TimeDistributedLayer,
};
pub use simple::{ActivationLayer, LossLayer};
pub use spatial::SpatialLayer;

use dl4rs_array::{ArrayView, ArrayViewMut, DataType, NdArray};

use crate::error::NnError;
use crate::input_type::InputType;
use crate::loss::LossFunction;
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// What the network knows about the current step, for layers that need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepContext {
    /// Training (true) or inference.
    pub training: bool,
    /// Iterations done so far.
    pub iteration: u64,
    /// The network's seed.
    pub seed: u64,
    /// This layer's index among the network's layers (a graph's in the order they were
    /// added), whatever preprocessors and vertices sit between them.
    pub index: usize,
    /// Examples in the mini-batch (what `FeedForwardToRnn` needs to fold rows back into
    /// sequences).
    pub batch: usize,
    /// Whether backprop must return `dL/d(input)` (false when the input is a network input:
    /// nobody uses it).
    pub need_input_gradient: bool,
    /// Where recurrent layers start from and what they keep.
    pub recurrent: RecurrentMode,
}

/// Which of a recurrent layer's two carried states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RnnStateSlot {
    /// The state `rnn_time_step` keeps between calls.
    TimeStep,
    /// The state truncated BPTT carries between segments.
    Tbptt,
}

/// Where a recurrent layer's state comes from in a pass, and whether it keeps the final one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecurrentMode {
    /// Every sequence starts from a zero state; nothing is kept (`fit`, `output`).
    #[default]
    Fresh,
    /// `rnn_time_step`: start from the state the previous call left (zeros after
    /// `rnn_clear_previous_state`) and keep the final state for the next call.
    TimeStep,
    /// A truncated-BPTT segment: start from the previous segment's final state (zeros for the
    /// first) and keep the final state; backprop goes back at most `backward` steps from the
    /// segment's end and never past its start (the gradient is cut there).
    Tbptt {
        /// `tbptt_backward_length`.
        backward: usize,
    },
}

/// The gradient a layer's backward pass starts from.
#[derive(Debug, Clone, Copy)]
pub enum Epsilon<'a, T: DataType> {
    /// `dL/d(output)` from the layers above.
    Gradient(ArrayView<'a, T>),
    /// The labels (and their mask), for a layer that computes the loss itself.
    Labels {
        /// The labels, shaped like the layer's output.
        labels: ArrayView<'a, T>,
        /// Which entries count: `[batch]`, `[batch, 1]` or the labels' shape; `None`: all.
        mask: Option<ArrayView<'a, T>>,
    },
}

impl<'a, T: DataType> Epsilon<'a, T> {
    /// The gradient, or an error naming `kind` when labels arrived.
    pub fn gradient(self, kind: &str) -> Result<ArrayView<'a, T>, NnError> {
        match self {
            Epsilon::Gradient(g) => Ok(g),
            Epsilon::Labels { .. } => Err(NnError::Input(format!(
                "{kind} is not an output layer: its backward pass needs the gradient from \
                 above, not labels (put an output or loss layer last)"
            ))),
        }
    }

    /// The labels and mask, or an error naming `kind` when a gradient arrived.
    #[allow(clippy::type_complexity)]
    pub fn labels(
        self,
        kind: &str,
    ) -> Result<(ArrayView<'a, T>, Option<ArrayView<'a, T>>), NnError> {
        match self {
            Epsilon::Labels { labels, mask } => Ok((labels, mask)),
            Epsilon::Gradient(_) => Err(NnError::Input(format!(
                "{kind} computes the loss: its backward pass needs labels, not a gradient \
                 (it must be a network output)"
            ))),
        }
    }
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

impl ParamSpec {
    /// A parameter array that is regularized (weights).
    pub fn weight(key: &'static str, shape: &[usize]) -> ParamSpec {
        ParamSpec {
            key,
            shape: shape.to_vec(),
            regularize: true,
        }
    }

    /// A parameter array that is not regularized (biases, scales).
    pub fn bias(key: &'static str, shape: &[usize]) -> ParamSpec {
        ParamSpec {
            key,
            shape: shape.to_vec(),
            regularize: false,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a layer describes itself, once, when it is built.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    /// The layer type's name ("DenseLayer", ...), as DL4J names it.
    pub kind: &'static str,
    /// The configured name, if any.
    pub name: Option<String>,
    /// What it reads (the network checks every input against it).
    pub input_type: InputType,
    /// What it produces.
    pub output_type: InputType,
    /// Its parameters, in order, inside its slice of the flat array.
    pub params: Vec<ParamSpec>,
    /// The loss it computes, for output layers.
    pub loss: Option<LossFunction>,
}

impl LayerInfo {
    /// A layer of `kind` from `input_type` to `output_type`, with no parameters and no loss.
    pub fn new(kind: &'static str, input_type: InputType, output_type: InputType) -> LayerInfo {
        LayerInfo {
            kind,
            name: None,
            input_type,
            output_type,
            params: Vec::new(),
            loss: None,
        }
    }

    /// Sets the name.
    pub fn named(mut self, name: Option<String>) -> LayerInfo {
        self.name = name;
        self
    }

    /// Sets the parameters.
    pub fn with_params(mut self, params: Vec<ParamSpec>) -> LayerInfo {
        self.params = params;
        self
    }

    /// Sets the loss (an output layer).
    pub fn with_loss(mut self, loss: Option<LossFunction>) -> LayerInfo {
        self.loss = loss;
        self
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(ParamSpec::len).sum()
    }
}

/// A layer's input: activations and their mask.
#[derive(Debug, Clone, Copy)]
pub struct LayerInput<'a, T: DataType> {
    /// The activations, of the layer's input type.
    pub activations: ArrayView<'a, T>,
    /// The mask of the activations (`[batch, time]` for sequences), if any.
    pub mask: Option<ArrayView<'a, T>>,
}

/// What becomes of the mask after a layer.
// Boxing the new mask would put a heap allocation in every step that makes one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Default)]
pub enum MaskOut<T: DataType> {
    /// The output keeps the input's mask (most layers).
    #[default]
    Same,
    /// The output has no mask (e.g. pooling over the masked axis).
    Cleared,
    /// A new mask, created as `ArrayType::Activations`.
    New(NdArray<T>),
}

/// The result of a forward pass.
#[derive(Debug)]
pub struct Forward<T: DataType> {
    /// The output, created as `ArrayType::Activations`.
    pub activations: NdArray<T>,
    /// What backward needs beyond input and output, created as `ArrayType::FfCache` (in
    /// training only; at inference return `None`).
    pub cache: Option<NdArray<T>>,
    /// The output's mask.
    pub mask: MaskOut<T>,
}

impl<T: DataType> Forward<T> {
    /// An output with no cache that keeps the input's mask.
    pub fn new(activations: NdArray<T>) -> Forward<T> {
        Forward {
            activations,
            cache: None,
            mask: MaskOut::Same,
        }
    }

    /// Adds a cache for backward.
    pub fn with_cache(mut self, cache: Option<NdArray<T>>) -> Forward<T> {
        self.cache = cache;
        self
    }
}

/// What the network kept from a layer's forward pass, handed to its backward pass.
#[derive(Debug, Clone, Copy)]
pub struct Saved<'a, T: DataType> {
    /// The input of the forward pass.
    pub input: ArrayView<'a, T>,
    /// Its mask.
    pub mask: Option<ArrayView<'a, T>>,
    /// The output of the forward pass.
    pub output: ArrayView<'a, T>,
    /// The cache the forward pass returned.
    pub cache: Option<ArrayView<'a, T>>,
}

/// A layer of a network.
pub trait Layer<T: DataType>: Send {
    /// The layer's description (built once).
    fn info(&self) -> &LayerInfo;
    /// Writes initial values into this layer's parameter slice (`info().num_params()` long).
    fn init_params(&self, params: &mut [T], seed: u64);
    /// Forward pass. The input's shape has been checked against `info().input_type`.
    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError>;
    /// Backward pass: writes parameter gradients into `grads` (this layer's slice of the flat
    /// gradient array) and returns `dL/d(input)` created as `ArrayType::ActivationGrad`
    /// (`None` when `ctx.need_input_gradient` is false).
    fn backward(
        &self,
        saved: &Saved<'_, T>,
        epsilon: Epsilon<'_, T>,
        params: &ArrayView<'_, T>,
        grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError>;
    /// Non-parameter state to save with the model (batch norm's running statistics).
    fn state(&self) -> Vec<(&'static str, Vec<T>)> {
        Vec::new()
    }
    /// A recurrent layer's carried state (DL4J `rnnGetPreviousState` / `rnnGetTBPTTState`),
    /// by DL4J key ("prevAct", "prevMemCell"); empty for stateless layers or before a call.
    fn rnn_state(&self, slot: RnnStateSlot) -> Vec<(&'static str, ArrayView<'_, T>)> {
        let _ = slot;
        Vec::new()
    }
    /// Sets one array of a carried state (DL4J `rnnSetPreviousState` / `rnnSetTBPTTState`).
    fn rnn_set_state(
        &mut self,
        slot: RnnStateSlot,
        key: &str,
        value: &ArrayView<'_, T>,
    ) -> Result<(), NnError> {
        let _ = (slot, value);
        Err(NnError::Input(format!(
            "{}: no recurrent state named {key:?} (the layer is not recurrent)",
            self.info().kind
        )))
    }
    /// Forgets the carried states (`rnn_time_step`'s and truncated BPTT's).
    fn rnn_clear_state(&mut self) {}
    /// Restores state saved by [`Layer::state`].
    fn set_state(&mut self, key: &str, values: &[T]) -> Result<(), NnError> {
        let _ = values;
        Err(NnError::Input(format!(
            "{}: no state named {key:?}",
            self.info().kind
        )))
    }
}

/// `(batch, n)` of a `[batch, n]` view (the network has checked the shape already).
pub(crate) fn rows<T: DataType>(x: &ArrayView<'_, T>) -> (usize, usize) {
    match x.shape() {
        [b, n] => (*b, *n),
        other => (
            other.first().copied().unwrap_or(0),
            other.iter().skip(1).product(),
        ),
    }
}

pub(crate) const ACT: ArrayType = ArrayType::Activations;
pub(crate) const GRAD: ArrayType = ArrayType::ActivationGrad;
