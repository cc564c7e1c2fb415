//! The feed-forward layers' configurations (dense, output, loss, activation, dropout, batch
//! normalization), their builders and constructors on [`LayerConf`], and their part of the
//! inference and the build; `layer.rs` dispatches to this family, `conv.rs` /
//! `spatial.rs` and `recurrent/` hold the others.

use serde::{Deserialize, Serialize};

use super::layer::LayerConf;
use crate::activation::Activation;
use crate::error::NnError;
use crate::input_type::{Accepts, InputType};
use crate::layers::{ActivationLayer, BatchNormLayer, DenseLayer, DropoutLayer, Layer, LossLayer};
use crate::loss::LossFunction;
use crate::weight_init::WeightInit;
use dl4rs_array::DataType;

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
}

/// Inference for the feed-forward layers (`None` for the other families, inferred before):
/// fills in `n_in` (or the width) from the input, checks the settings, returns the output type.
pub(super) fn infer(
    conf: &mut LayerConf,
    input: &InputType,
    label: &str,
) -> Result<Option<InputType>, NnError> {
    let size = input.feature_size();
    if conf.accepts() == Accepts::FeedForward && !input.is_feed_forward() {
        return Err(NnError::config(format!(
            "{label} reads feed-forward input [batch, n] but gets {input}: set the input \
             type (set_input_type) so a preprocessor is inserted, or add one"
        )));
    }
    let check_n_in = |n_in: Option<usize>| match n_in {
        Some(n) if n != size => Err(NnError::config(format!(
            "{label} has n_in = {n} but its input has {size} features ({input}): remove \
             n_in to infer it, or fix one of the sizes"
        ))),
        _ => Ok(size),
    };
    let out = match conf {
        LayerConf::Dense(c) | LayerConf::Output(OutputConf { dense: c, .. }) => {
            c.n_in = Some(check_n_in(c.n_in)?);
            InputType::feed_forward(c.n_out)
        }
        LayerConf::Loss(c) => {
            c.n = Some(check_n_in(c.n)?);
            *input
        }
        LayerConf::BatchNormalization(b) => {
            b.n = Some(match *input {
                InputType::Convolutional { channels, .. } => match b.n {
                    Some(n) if n != channels => {
                        return Err(NnError::config(format!(
                            "{label} has n = {n} but its input has {channels} channels"
                        )));
                    }
                    _ => channels,
                },
                InputType::Recurrent { .. } => {
                    return Err(NnError::config(format!(
                        "{label}: batch normalization over sequences is not supported; \
                         use it on rows or images"
                    )));
                }
                _ => check_n_in(b.n)?,
            });
            if !(b.eps > 0.0 && (0.0..=1.0).contains(&b.decay)) {
                return Err(NnError::config(format!(
                    "{label}: expected eps > 0 and decay in [0, 1], found eps = {}, decay = {}",
                    b.eps, b.decay
                )));
            }
            *input
        }
        LayerConf::Activation(a) => {
            a.n = Some(input.flat_size());
            *input
        }
        LayerConf::Dropout(d) => {
            if !(d.retain_probability > 0.0 && d.retain_probability <= 1.0) {
                return Err(NnError::config(format!(
                    "{label}: retain probability must be in (0, 1], found {}",
                    d.retain_probability
                )));
            }
            d.n = Some(input.flat_size());
            *input
        }
        _ => return Ok(None),
    };
    if out.flat_size() == 0 || size == 0 {
        return Err(NnError::config(format!(
            "{label}: sizes must be > 0, found input {input}, output {out}"
        )));
    }
    Ok(Some(out))
}

/// The runtime layer of a feed-forward configuration (`None` for the other families).
pub(super) fn build<T: DataType>(
    conf: &LayerConf,
    input: &InputType,
) -> Result<Option<Box<dyn Layer<T>>>, NnError> {
    let size = input.feature_size();
    Ok(Some(match conf {
        LayerConf::Dense(d) => Box::new(dense_layer(d, size, None)),
        LayerConf::Output(o) => Box::new(dense_layer(&o.dense, size, Some(o.loss))),
        LayerConf::Loss(l) => Box::new(LossLayer::new(l.name.clone(), size, l.activation, l.loss)),
        LayerConf::Activation(a) => {
            Box::new(ActivationLayer::new(a.name.clone(), *input, a.activation))
        }
        LayerConf::Dropout(d) => Box::new(DropoutLayer::new(
            d.name.clone(),
            *input,
            d.retain_probability,
        )),
        LayerConf::BatchNormalization(b) => Box::new(BatchNormLayer::<T>::new(
            b.name.clone(),
            *input,
            b.eps,
            b.decay,
        )?),
        _ => return Ok(None),
    }))
}

fn dense_layer(d: &DenseConf, n_in: usize, loss: Option<LossFunction>) -> DenseLayer {
    DenseLayer::new(
        d.name.clone(),
        n_in,
        d.n_out,
        d.activation.unwrap_or_default(),
        d.weight_init.unwrap_or_default(),
        d.bias_init,
        loss,
    )
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
