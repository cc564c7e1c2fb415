//! Network configuration: DL4J's `NeuralNetConfiguration.Builder().....list().layer(..).build()`,
//! layer configurations, workspace modes, input-size inference, validation with clear errors,
//! and a JSON round trip (serde). This module owns no arrays; `network.rs` builds a network
//! from a [`MultiLayerConfiguration`].

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::activation::Activation;
use crate::error::NnError;
use crate::loss::LossFunction;
use crate::updater::{Regularization, Updater};
use crate::weight_init::WeightInit;

/// Whether training or inference runs in workspaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WorkspaceMode {
    /// Workspaces on (the default).
    #[default]
    Enabled,
    /// Every array on the heap.
    None,
}

#[allow(non_upper_case_globals)]
impl WorkspaceMode {
    /// DL4J's pre-1.0 "one external workspace" mode: now the same as `Enabled`.
    #[deprecated(note = "SINGLE and SEPARATE were merged into Enabled in DL4J 1.0.0-beta")]
    pub const Single: WorkspaceMode = WorkspaceMode::Enabled;
    /// DL4J's pre-1.0 "separate FF/BP workspaces" mode: now the same as `Enabled`.
    #[deprecated(note = "SINGLE and SEPARATE were merged into Enabled in DL4J 1.0.0-beta")]
    pub const Separate: WorkspaceMode = WorkspaceMode::Enabled;
}

static DEPRECATION_WARNED: AtomicBool = AtomicBool::new(false);

impl WorkspaceMode {
    /// Parses `ENABLED`/`NONE` (any case), and the deprecated `SINGLE`/`SEPARATE` as
    /// `Enabled` with a one-time warning on stderr.
    pub fn parse(name: &str) -> Result<WorkspaceMode, String> {
        match name.to_ascii_uppercase().as_str() {
            "ENABLED" => Ok(WorkspaceMode::Enabled),
            "NONE" => Ok(WorkspaceMode::None),
            "SINGLE" | "SEPARATE" => {
                if !DEPRECATION_WARNED.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "warning: workspace mode {name} is deprecated (DL4J 1.0.0-beta merged \
                         SINGLE and SEPARATE into ENABLED); using ENABLED"
                    );
                }
                Ok(WorkspaceMode::Enabled)
            }
            other => Err(format!(
                "unknown workspace mode {other:?}: expected ENABLED or NONE (SINGLE and \
                 SEPARATE are accepted as deprecated aliases of ENABLED)"
            )),
        }
    }
}

impl Serialize for WorkspaceMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            WorkspaceMode::Enabled => "ENABLED",
            WorkspaceMode::None => "NONE",
        })
    }
}

impl<'de> Deserialize<'de> for WorkspaceMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        WorkspaceMode::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// A dense (fully connected) layer: `act(x·W + b)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseConf {
    /// Optional name (shown in errors and the summary).
    #[serde(default)]
    pub name: Option<String>,
    /// Inputs; inferred from the previous layer when `None`.
    #[serde(default)]
    pub n_in: Option<usize>,
    /// Outputs.
    pub n_out: usize,
    /// Activation; the network default when `None`.
    #[serde(default)]
    pub activation: Option<Activation>,
    /// Weight initialization; the network default when `None`.
    #[serde(default)]
    pub weight_init: Option<WeightInit>,
    /// Initial bias value.
    #[serde(default)]
    pub bias_init: f64,
}

/// An output layer: a dense layer with a loss function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputConf {
    /// The dense part.
    #[serde(flatten)]
    pub dense: DenseConf,
    /// The loss.
    pub loss: LossFunction,
}

/// A loss layer: an activation and a loss, no parameters (`n_in == n_out`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// The loss.
    pub loss: LossFunction,
    /// Activation applied before the loss.
    #[serde(default)]
    pub activation: Activation,
    /// Width (inferred).
    #[serde(default)]
    pub n: Option<usize>,
}

/// A parameterless activation layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// The activation.
    pub activation: Activation,
    /// Width (inferred).
    #[serde(default)]
    pub n: Option<usize>,
}

/// Inverted dropout: while training, each input is kept with probability
/// `retain_probability` and scaled by its inverse; at inference it is the identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropoutConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Probability of keeping an input (DL4J's `dropOut(p)`), in (0, 1].
    pub retain_probability: f64,
    /// Width (inferred).
    #[serde(default)]
    pub n: Option<usize>,
}

/// Batch normalization over a `[batch, n]` input, with running statistics for inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchNormConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Width (inferred).
    #[serde(default)]
    pub n: Option<usize>,
    /// Variance offset (DL4J default 1e-5).
    #[serde(default = "default_bn_eps")]
    pub eps: f64,
    /// Running-average decay (DL4J default 0.9).
    #[serde(default = "default_bn_decay")]
    pub decay: f64,
}

fn default_bn_eps() -> f64 {
    1e-5
}

fn default_bn_decay() -> f64 {
    0.9
}

/// One layer's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum LayerConf {
    /// See [`DenseConf`].
    Dense(DenseConf),
    /// See [`OutputConf`].
    Output(OutputConf),
    /// See [`LossConf`].
    Loss(LossConf),
    /// See [`ActivationConf`].
    Activation(ActivationConf),
    /// See [`DropoutConf`].
    Dropout(DropoutConf),
    /// See [`BatchNormConf`].
    BatchNormalization(BatchNormConf),
}

impl LayerConf {
    /// A dense layer with `n_out` outputs (activation and init from the network defaults).
    pub fn dense(n_out: usize) -> DenseBuilder {
        DenseBuilder(DenseConf {
            name: None,
            n_in: None,
            n_out,
            activation: None,
            weight_init: None,
            bias_init: 0.0,
        })
    }

    /// An output layer with `n_out` outputs and `loss`.
    pub fn output(loss: LossFunction, n_out: usize) -> OutputBuilder {
        OutputBuilder(OutputConf {
            dense: LayerConf::dense(n_out).0,
            loss,
        })
    }

    /// A loss layer (no parameters).
    pub fn loss(loss: LossFunction, activation: Activation) -> LayerConf {
        LayerConf::Loss(LossConf {
            name: None,
            loss,
            activation,
            n: None,
        })
    }

    /// An activation layer.
    pub fn activation(activation: Activation) -> LayerConf {
        LayerConf::Activation(ActivationConf {
            name: None,
            activation,
            n: None,
        })
    }

    /// A dropout layer keeping inputs with probability `retain_probability`.
    pub fn dropout(retain_probability: f64) -> LayerConf {
        LayerConf::Dropout(DropoutConf {
            name: None,
            retain_probability,
            n: None,
        })
    }

    /// A batch normalization layer with DL4J's defaults.
    pub fn batch_norm() -> LayerConf {
        LayerConf::BatchNormalization(BatchNormConf {
            name: None,
            n: None,
            eps: default_bn_eps(),
            decay: default_bn_decay(),
        })
    }

    /// The layer's name, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            LayerConf::Dense(c) => c.name.as_deref(),
            LayerConf::Output(c) => c.dense.name.as_deref(),
            LayerConf::Loss(c) => c.name.as_deref(),
            LayerConf::Activation(c) => c.name.as_deref(),
            LayerConf::Dropout(c) => c.name.as_deref(),
            LayerConf::BatchNormalization(c) => c.name.as_deref(),
        }
    }

    /// The layer type's name.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerConf::Dense(_) => "DenseLayer",
            LayerConf::Output(_) => "OutputLayer",
            LayerConf::Loss(_) => "LossLayer",
            LayerConf::Activation(_) => "ActivationLayer",
            LayerConf::Dropout(_) => "DropoutLayer",
            LayerConf::BatchNormalization(_) => "BatchNormalization",
        }
    }

    /// Inputs (after inference).
    pub fn n_in(&self) -> Option<usize> {
        match self {
            LayerConf::Dense(c) => c.n_in,
            LayerConf::Output(c) => c.dense.n_in,
            LayerConf::Loss(c) => c.n,
            LayerConf::Activation(c) => c.n,
            LayerConf::Dropout(c) => c.n,
            LayerConf::BatchNormalization(c) => c.n,
        }
    }

    /// Outputs (after inference).
    pub fn n_out(&self) -> Option<usize> {
        match self {
            LayerConf::Dense(c) => Some(c.n_out),
            LayerConf::Output(c) => Some(c.dense.n_out),
            _ => self.n_in(),
        }
    }

    /// Whether this layer computes a loss (must be last).
    pub fn is_output(&self) -> bool {
        matches!(self, LayerConf::Output(_) | LayerConf::Loss(_))
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        match self {
            LayerConf::Dense(c) => c.n_in.unwrap_or(0) * c.n_out + c.n_out,
            LayerConf::Output(c) => c.dense.n_in.unwrap_or(0) * c.dense.n_out + c.dense.n_out,
            LayerConf::BatchNormalization(c) => 2 * c.n.unwrap_or(0),
            _ => 0,
        }
    }

    fn set_n_in(&mut self, n: usize) {
        match self {
            LayerConf::Dense(c) => c.n_in = Some(n),
            LayerConf::Output(c) => c.dense.n_in = Some(n),
            LayerConf::Loss(c) => c.n = Some(n),
            LayerConf::Activation(c) => c.n = Some(n),
            LayerConf::Dropout(c) => c.n = Some(n),
            LayerConf::BatchNormalization(c) => c.n = Some(n),
        }
    }
}

/// Builder for a dense layer.
#[derive(Debug, Clone)]
pub struct DenseBuilder(DenseConf);

macro_rules! dense_setters {
    ($builder:ident, $($path:tt)*) => {
        impl $builder {
            /// Sets the name.
            pub fn name(mut self, name: &str) -> Self {
                self.0$($path)*.name = Some(name.to_string());
                self
            }
            /// Sets the number of inputs (otherwise inferred).
            pub fn n_in(mut self, n_in: usize) -> Self {
                self.0$($path)*.n_in = Some(n_in);
                self
            }
            /// Sets the activation.
            pub fn activation(mut self, activation: Activation) -> Self {
                self.0$($path)*.activation = Some(activation);
                self
            }
            /// Sets the weight initialization.
            pub fn weight_init(mut self, init: WeightInit) -> Self {
                self.0$($path)*.weight_init = Some(init);
                self
            }
            /// Sets the initial bias.
            pub fn bias_init(mut self, bias: f64) -> Self {
                self.0$($path)*.bias_init = bias;
                self
            }
        }
    };
}

dense_setters!(DenseBuilder,);
dense_setters!(OutputBuilder, .dense);

impl DenseBuilder {
    /// The layer configuration.
    pub fn build(self) -> LayerConf {
        LayerConf::Dense(self.0)
    }
}

/// Builder for an output layer.
#[derive(Debug, Clone)]
pub struct OutputBuilder(OutputConf);

impl OutputBuilder {
    /// The layer configuration.
    pub fn build(self) -> LayerConf {
        LayerConf::Output(self.0)
    }
}

impl From<DenseBuilder> for LayerConf {
    fn from(b: DenseBuilder) -> LayerConf {
        b.build()
    }
}

impl From<OutputBuilder> for LayerConf {
    fn from(b: OutputBuilder) -> LayerConf {
        b.build()
    }
}

/// A complete, validated configuration of a [`crate::MultiLayerNetwork`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiLayerConfiguration {
    /// Seed for initialization and dropout.
    pub seed: u64,
    /// The updater.
    pub updater: Updater,
    /// Regularization of weights.
    #[serde(default)]
    pub regularization: Regularization,
    /// Workspaces in training.
    #[serde(default)]
    pub training_workspace_mode: WorkspaceMode,
    /// Workspaces in inference.
    #[serde(default)]
    pub inference_workspace_mode: WorkspaceMode,
    /// Default weight initialization.
    #[serde(default)]
    pub weight_init: WeightInit,
    /// Default activation.
    #[serde(default)]
    pub activation: Activation,
    /// The layers, with sizes inferred.
    pub layers: Vec<LayerConf>,
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

    /// Number of inputs of the network.
    pub fn n_in(&self) -> usize {
        self.layers.first().and_then(LayerConf::n_in).unwrap_or(0)
    }

    /// Number of outputs of the network.
    pub fn n_out(&self) -> usize {
        self.layers.last().and_then(LayerConf::n_out).unwrap_or(0)
    }

    /// Infers sizes and checks the configuration.
    pub fn validated(mut self) -> Result<MultiLayerConfiguration, NnError> {
        if self.layers.is_empty() {
            return Err(NnError::config(
                "the network has no layers: add at least one with .layer(..)",
            ));
        }
        self.updater.validate().map_err(NnError::Config)?;
        let r = self.regularization;
        if [r.l1, r.l2, r.weight_decay]
            .iter()
            .any(|v| !(v.is_finite() && *v >= 0.0))
        {
            return Err(NnError::config(format!(
                "regularization coefficients must be finite and >= 0, found {r:?}"
            )));
        }
        let mut prev: Option<usize> = None;
        let count = self.layers.len();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let label = match layer.name() {
                Some(n) => format!("layer {i} (\"{n}\", {})", layer.kind()),
                None => format!("layer {i} ({})", layer.kind()),
            };
            match (layer.n_in(), prev) {
                (Some(n), Some(p)) if n != p => {
                    return Err(NnError::config(format!(
                        "{label} has n_in = {n} but the previous layer outputs {p}: remove \
                         n_in to infer it, or fix one of the sizes"
                    )));
                }
                (None, Some(p)) => layer.set_n_in(p),
                (None, None) => {
                    return Err(NnError::config(format!(
                        "{label}: the first layer needs n_in (the number of input features)"
                    )));
                }
                _ => {}
            }
            let n_in = layer.n_in().unwrap_or(0);
            let n_out = layer.n_out().unwrap_or(0);
            if n_in == 0 || n_out == 0 {
                return Err(NnError::config(format!(
                    "{label}: sizes must be > 0, found n_in = {n_in}, n_out = {n_out}"
                )));
            }
            if layer.is_output() && i + 1 != count {
                return Err(NnError::config(format!(
                    "{label} computes a loss, so it must be the last layer (it is {} of {count})",
                    i + 1
                )));
            }
            match layer {
                LayerConf::Dropout(d)
                    if !(d.retain_probability > 0.0 && d.retain_probability <= 1.0) =>
                {
                    return Err(NnError::config(format!(
                        "{label}: retain probability must be in (0, 1], found {}",
                        d.retain_probability
                    )));
                }
                LayerConf::BatchNormalization(b)
                    if !(b.eps > 0.0 && (0.0..=1.0).contains(&b.decay)) =>
                {
                    return Err(NnError::config(format!(
                        "{label}: expected eps > 0 and decay in [0, 1], found eps = {}, decay = {}",
                        b.eps, b.decay
                    )));
                }
                _ => {}
            }
            prev = Some(n_out);
        }
        Ok(self)
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
#[derive(Debug, Clone)]
pub struct NeuralNetConfiguration {
    conf: MultiLayerConfiguration,
}

impl NeuralNetConfiguration {
    /// A builder with the defaults: seed 12345, SGD 0.1, Xavier init, workspaces enabled.
    pub fn builder() -> NeuralNetConfiguration {
        NeuralNetConfiguration {
            conf: MultiLayerConfiguration {
                seed: 12345,
                updater: Updater::default(),
                regularization: Regularization::default(),
                training_workspace_mode: WorkspaceMode::Enabled,
                inference_workspace_mode: WorkspaceMode::Enabled,
                weight_init: WeightInit::XavierNormal,
                activation: Activation::Identity,
                layers: Vec::new(),
            },
        }
    }

    /// Seed for initialization and dropout.
    pub fn seed(mut self, seed: u64) -> Self {
        self.conf.seed = seed;
        self
    }
    /// The updater.
    pub fn updater(mut self, updater: Updater) -> Self {
        self.conf.updater = updater;
        self
    }
    /// L1 regularization of weights.
    pub fn l1(mut self, l1: f64) -> Self {
        self.conf.regularization.l1 = l1;
        self
    }
    /// L2 regularization of weights.
    pub fn l2(mut self, l2: f64) -> Self {
        self.conf.regularization.l2 = l2;
        self
    }
    /// Weight decay.
    pub fn weight_decay(mut self, coefficient: f64) -> Self {
        self.conf.regularization.weight_decay = coefficient;
        self
    }
    /// Default weight initialization.
    pub fn weight_init(mut self, init: WeightInit) -> Self {
        self.conf.weight_init = init;
        self
    }
    /// Default activation.
    pub fn activation(mut self, activation: Activation) -> Self {
        self.conf.activation = activation;
        self
    }
    /// Workspaces during training.
    pub fn training_workspace_mode(mut self, mode: WorkspaceMode) -> Self {
        self.conf.training_workspace_mode = mode;
        self
    }
    /// Workspaces during inference.
    pub fn inference_workspace_mode(mut self, mode: WorkspaceMode) -> Self {
        self.conf.inference_workspace_mode = mode;
        self
    }
    /// Starts the layer list.
    pub fn list(self) -> ListBuilder {
        ListBuilder { conf: self.conf }
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
        // Network defaults fill what the layer left open.
        let (act, init) = (self.conf.activation, self.conf.weight_init);
        match &mut layer {
            LayerConf::Dense(d) | LayerConf::Output(OutputConf { dense: d, .. }) => {
                d.activation.get_or_insert(act);
                d.weight_init.get_or_insert(init);
            }
            _ => {}
        }
        self.conf.layers.push(layer);
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<MultiLayerConfiguration, NnError> {
        self.conf.validated()
    }
}
