//! [`MultiLayerConfiguration`]: a stack of layers, built as in DL4J
//! (`NeuralNetConfiguration::builder()...list().layer(..).set_input_type(..).build()`), with
//! size inference, preprocessor insertion, validation with clear errors, and a JSON round trip.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::graph::GraphBuilder;
use super::layer::LayerConf;
use super::mode::{BackpropType, GlobalConf, WorkspaceMode};
use crate::activation::Activation;
use crate::error::NnError;
use crate::input_type::InputType;
use crate::preprocessor::{InputPreProcessor, preprocessor_for};
use crate::updater::Updater;
use crate::weight_init::WeightInit;

/// A complete, validated configuration of a [`crate::MultiLayerNetwork`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiLayerConfiguration {
    /// Seed, updater, regularization, workspace modes, layer defaults.
    #[serde(flatten)]
    pub global: GlobalConf,
    /// The input type given to `set_input_type`, if any (else the first layer's `n_in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_type: Option<InputType>,
    /// Preprocessors by the index of the layer they feed (explicit, or inserted by
    /// `set_input_type`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input_preprocessors: BTreeMap<usize, InputPreProcessor>,
    /// The layers, with sizes inferred.
    pub layers: Vec<LayerConf>,
}

/// One layer as the network will run it: the preprocessor before it and the types around it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerPlan {
    pub preprocessor: Option<(InputPreProcessor, InputType)>,
    pub input_type: InputType,
    pub output_type: InputType,
}

pub(crate) fn layer_label(i: usize, layer: &LayerConf) -> String {
    match layer.name() {
        Some(n) => format!("layer {i} (\"{n}\", {})", layer.kind()),
        None => format!("layer {i} ({})", layer.kind()),
    }
}

impl MultiLayerConfiguration {
    /// JSON text.
    pub fn to_json(&self) -> Result<String, NnError> {
        serde_json::to_string_pretty(self).map_err(|e| NnError::config(format!("JSON: {e}")))
    }

    /// Parses and validates JSON text.
    pub fn from_json(json: &str) -> Result<MultiLayerConfiguration, NnError> {
        let conf: MultiLayerConfiguration = serde_json::from_str(json)
            .map_err(|e| NnError::config(format!("can't read the configuration JSON: {e}")))?;
        conf.validated()
    }

    /// The network's input type: the one set, or rows of the first layer's `n_in`.
    pub fn network_input_type(&self) -> InputType {
        self.input_type.unwrap_or_else(|| {
            first_layer_input(
                self.layers.first(),
                self.layers.first().and_then(LayerConf::n_in),
            )
        })
    }

    /// Number of input values per example.
    pub fn n_in(&self) -> usize {
        self.network_input_type().flat_size()
    }

    /// Number of outputs of the network.
    pub fn n_out(&self) -> usize {
        self.layers.last().and_then(LayerConf::n_out).unwrap_or(0)
    }

    /// Infers sizes, inserts preprocessors (when an input type is set) and checks the
    /// configuration.
    pub fn validated(mut self) -> Result<MultiLayerConfiguration, NnError> {
        self.global.validate()?;
        if self.layers.is_empty() {
            return Err(NnError::config(
                "the network has no layers: add at least one with .layer(..)",
            ));
        }
        if let Some(&i) = self
            .input_preprocessors
            .keys()
            .find(|&&i| i >= self.layers.len())
        {
            return Err(NnError::config(format!(
                "a preprocessor is set for layer {i}, but the network has {} layers",
                self.layers.len()
            )));
        }
        let mut t = match self.input_type {
            Some(t) => t,
            None => match self.layers[0].n_in() {
                Some(n) => first_layer_input(self.layers.first(), Some(n)),
                None => {
                    return Err(NnError::config(format!(
                        "{}: the first layer needs n_in (the number of input features), or \
                         call set_input_type(..) on the list builder",
                        layer_label(0, &self.layers[0])
                    )));
                }
            },
        };
        check_sizes(&t, "the network input")?;
        let mut params = 0usize;
        let count = self.layers.len();
        let (activation, weight_init) = (self.global.activation, self.global.weight_init);
        for i in 0..count {
            // What a layer leaves open comes from the network (also for JSON files).
            self.layers[i].apply_defaults(activation, weight_init);
            let label = layer_label(i, &self.layers[i]);
            let pre = match self.input_preprocessors.get(&i) {
                Some(p) => Some(*p),
                None if self.input_type.is_some() => preprocessor_for(&t, self.layers[i].accepts())
                    .map_err(|e| NnError::config(format!("{label}: {e}")))?,
                None => None,
            };
            if let Some(p) = pre {
                t = p
                    .output_type(&t)
                    .map_err(|e| NnError::config(format!("{label}: {e}")))?;
                self.input_preprocessors.insert(i, p);
            }
            t = self.layers[i].infer(&t, &label)?;
            check_sizes(&t, &label)?;
            params = check_params(params, &self.layers[i], &label)?;
            if self.layers[i].is_output() && i + 1 != count {
                return Err(NnError::config(format!(
                    "{label} computes a loss, so it must be the last layer (it is {} of {count})",
                    i + 1
                )));
            }
        }
        Ok(self)
    }

    /// Each layer's preprocessor and types, in order (the configuration is validated).
    pub(crate) fn plan(&self) -> Result<Vec<LayerPlan>, NnError> {
        let mut t = self.network_input_type();
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let preprocessor = match self.input_preprocessors.get(&i) {
                Some(p) => {
                    let before = t;
                    t = p.output_type(&t).map_err(NnError::Config)?;
                    Some((*p, before))
                }
                None => None,
            };
            let input_type = t;
            t = layer.clone().infer(&t, &layer_label(i, layer))?;
            out.push(LayerPlan {
                preprocessor,
                input_type,
                output_type: t,
            });
        }
        Ok(out)
    }
}

/// The network input implied by the first layer's `n_in` when no input type is set: sequences
/// for a layer that reads them (an LSTM), rows otherwise.
fn first_layer_input(first: Option<&LayerConf>, n_in: Option<usize>) -> InputType {
    let n = n_in.unwrap_or(0);
    match first.map(LayerConf::accepts) {
        Some(crate::input_type::Accepts::Recurrent) => InputType::recurrent(n),
        _ => InputType::feed_forward(n),
    }
}

/// An error when a type's size overflows `usize` (sizes read from an untrusted file can be
/// anything; everything computed from a validated configuration then fits).
pub(crate) fn check_sizes(t: &InputType, what: &str) -> Result<(), NnError> {
    match t.checked_flat_size() {
        Some(_) => Ok(()),
        None => Err(NnError::config(format!(
            "{what}: the sizes of {t:?} overflow (their product is larger than {})",
            usize::MAX
        ))),
    }
}

/// `total` plus the layer's parameter count, or an error when either overflows.
pub(crate) fn check_params(total: usize, layer: &LayerConf, what: &str) -> Result<usize, NnError> {
    let n = layer.num_params();
    match total.checked_add(n) {
        Some(sum) if n != usize::MAX => Ok(sum),
        _ => Err(NnError::config(format!(
            "{what}: the parameter count overflows (n_in {:?} x n_out {:?})",
            layer.n_in(),
            layer.n_out()
        ))),
    }
}

/// DL4J-style configuration builder.
///
/// ```
/// use dl4rs_nn::*;
///
/// let conf = NeuralNetConfiguration::builder()
///     .seed(42)
///     .updater(Updater::adam(1e-3))
///     .list()
///     .layer(LayerConf::dense(256).n_in(784).activation(Activation::Relu))
///     .layer(LayerConf::dense(128).activation(Activation::Relu))
///     .layer(LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax))
///     .build()
///     .unwrap();
/// assert_eq!(conf.layers[1].n_in(), Some(256)); // inferred
/// let back = MultiLayerConfiguration::from_json(&conf.to_json().unwrap()).unwrap();
/// assert_eq!(back, conf);
/// ```
#[derive(Debug, Clone, Default)]
pub struct NeuralNetConfiguration {
    global: GlobalConf,
}

impl NeuralNetConfiguration {
    /// A builder with the defaults: seed 12345, SGD 0.1, Xavier init, workspaces enabled.
    pub fn builder() -> NeuralNetConfiguration {
        NeuralNetConfiguration::default()
    }

    /// Seed for initialization and dropout.
    pub fn seed(mut self, seed: u64) -> Self {
        self.global.seed = seed;
        self
    }
    /// The updater.
    pub fn updater(mut self, updater: Updater) -> Self {
        self.global.updater = updater;
        self
    }
    /// L1 regularization of weights.
    pub fn l1(mut self, l1: f64) -> Self {
        self.global.regularization.l1 = l1;
        self
    }
    /// L2 regularization of weights.
    pub fn l2(mut self, l2: f64) -> Self {
        self.global.regularization.l2 = l2;
        self
    }
    /// Weight decay.
    pub fn weight_decay(mut self, coefficient: f64) -> Self {
        self.global.regularization.weight_decay = coefficient;
        self
    }
    /// Default weight initialization.
    pub fn weight_init(mut self, init: WeightInit) -> Self {
        self.global.weight_init = init;
        self
    }
    /// Default activation.
    pub fn activation(mut self, activation: Activation) -> Self {
        self.global.activation = activation;
        self
    }
    /// Workspaces during training.
    pub fn training_workspace_mode(mut self, mode: WorkspaceMode) -> Self {
        self.global.training_workspace_mode = mode;
        self
    }
    /// Workspaces during inference.
    pub fn inference_workspace_mode(mut self, mode: WorkspaceMode) -> Self {
        self.global.inference_workspace_mode = mode;
        self
    }
    /// Starts the layer list of a [`MultiLayerConfiguration`].
    pub fn list(self) -> ListBuilder {
        ListBuilder {
            conf: MultiLayerConfiguration {
                global: self.global,
                input_type: None,
                input_preprocessors: BTreeMap::new(),
                layers: Vec::new(),
            },
        }
    }
    /// Starts a [`crate::ComputationGraphConfiguration`].
    pub fn graph_builder(self) -> GraphBuilder {
        GraphBuilder::new(self.global)
    }
}

/// The layer list of a configuration.
#[derive(Debug, Clone)]
pub struct ListBuilder {
    conf: MultiLayerConfiguration,
}

impl ListBuilder {
    /// Appends a layer.
    pub fn layer(mut self, layer: impl Into<LayerConf>) -> Self {
        let mut layer = layer.into();
        layer.apply_defaults(self.conf.global.activation, self.conf.global.weight_init);
        self.conf.layers.push(layer);
        self
    }

    /// Sets the preprocessor in front of layer `index` (DL4J's `inputPreProcessor`).
    pub fn input_preprocessor(mut self, index: usize, preprocessor: InputPreProcessor) -> Self {
        self.conf.input_preprocessors.insert(index, preprocessor);
        self
    }

    /// The network's input type: every `n_in` is inferred from it and the preprocessors each
    /// layer needs are inserted (DL4J's `setInputType`).
    pub fn set_input_type(mut self, input_type: InputType) -> Self {
        self.conf.input_type = Some(input_type);
        self
    }

    /// Standard backprop or truncated BPTT (DL4J's `backpropType`).
    pub fn backprop_type(mut self, backprop_type: BackpropType) -> Self {
        self.conf.global.backprop_type = backprop_type;
        self
    }

    /// Truncated BPTT: time steps per segment (DL4J's `tBPTTForwardLength`, default 20).
    pub fn tbptt_forward_length(mut self, steps: usize) -> Self {
        self.conf.global.tbptt_forward_length = steps;
        self
    }

    /// Truncated BPTT: steps backprop goes back from a segment's end (DL4J's
    /// `tBPTTBackwardLength`, default 20).
    pub fn tbptt_backward_length(mut self, steps: usize) -> Self {
        self.conf.global.tbptt_backward_length = steps;
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<MultiLayerConfiguration, NnError> {
        self.conf.validated()
    }
}
