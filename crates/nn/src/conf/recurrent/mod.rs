//! Configurations of the recurrent family (sequences `[batch, size, time]`): `LSTM`,
//! `RnnOutputLayer`, `RnnLossLayer` and the `LastTimeStep` wrapper, with their builders, size
//! inference and the runtime layers they build. JSON types are DL4J's class names.

use serde::{Deserialize, Serialize};

mod builders;

pub use builders::{GruBuilder, LstmBuilder, RnnOutputBuilder, SimpleRnnBuilder};

use super::layer::LayerConf;
use crate::activation::Activation;
use crate::error::NnError;
use crate::input_type::InputType;
use crate::layers::{
    BidirectionalLayer, BidirectionalMode, GruLayer, LastTimeStepLayer, Layer, LstmLayer,
    MaskZeroLayer, RnnOutputLayer, SimpleRnnLayer, TimeDistributedLayer,
};
use crate::loss::LossFunction;
use crate::weight_init::WeightInit;
use dl4rs_array::DataType;

fn default_forget_bias() -> f64 {
    1.0
}

fn default_gate() -> Activation {
    Activation::Sigmoid
}

/// DL4J's `LSTM` (no peepholes). See `crate::layers::LstmLayer` for the gate order and the
/// parameter layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LstmConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Features per step; inferred when `None`.
    #[serde(default)]
    pub n_in: Option<usize>,
    /// Units.
    pub n_out: usize,
    /// Block-input and cell activation; tanh when `None` (not the network default: an LSTM
    /// with another activation is rarely meant).
    #[serde(default)]
    pub activation: Option<Activation>,
    /// Gate activation (sigmoid).
    #[serde(default = "default_gate")]
    pub gate_activation: Activation,
    /// Weight initialization of `W` and `RW`; the network default when `None`.
    #[serde(default)]
    pub weight_init: Option<WeightInit>,
    /// Initial bias of the forget gate (DL4J default 1.0; the other biases start at 0).
    #[serde(default = "default_forget_bias")]
    pub forget_gate_bias_init: f64,
}

/// DL4J's `SimpleRnn`: `h_t = act(x_t·W + h_{t-1}·RW + b)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimpleRnnConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Features per step; inferred when `None`.
    #[serde(default)]
    pub n_in: Option<usize>,
    /// Units.
    pub n_out: usize,
    /// Activation; tanh when `None`.
    #[serde(default)]
    pub activation: Option<Activation>,
    /// Weight initialization of `W` and `RW`; the network default when `None`.
    #[serde(default)]
    pub weight_init: Option<WeightInit>,
}

/// A GRU (see `crate::layers::GruLayer` for the formulation and the parameter layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GruConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Features per step; inferred when `None`.
    #[serde(default)]
    pub n_in: Option<usize>,
    /// Units.
    pub n_out: usize,
    /// Candidate activation; tanh when `None`.
    #[serde(default)]
    pub activation: Option<Activation>,
    /// Gate activation (sigmoid).
    #[serde(default = "default_gate")]
    pub gate_activation: Activation,
    /// Weight initialization of `W` and `RW`; the network default when `None`.
    #[serde(default)]
    pub weight_init: Option<WeightInit>,
}

/// A dense layer and a loss at every time step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RnnOutputConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Features per step; inferred when `None`.
    #[serde(default)]
    pub n_in: Option<usize>,
    /// Outputs per step.
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
    /// The loss.
    pub loss: LossFunction,
}

/// An activation and a loss at every time step (no parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RnnLossConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// The loss.
    pub loss: LossFunction,
    /// Activation applied before the loss.
    #[serde(default)]
    pub activation: Activation,
    /// Features per step (inferred).
    #[serde(default)]
    pub n: Option<usize>,
}

/// A recurrent layer run forward and backward in time, outputs combined per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BidirectionalConf {
    /// Optional name (the wrapped layer's when `None`).
    #[serde(default)]
    pub name: Option<String>,
    /// How the two directions combine.
    #[serde(default)]
    pub mode: BidirectionalMode,
    /// The wrapped recurrent layer (each direction gets its own copy and parameters).
    pub layer: Box<LayerConf>,
}

/// A feed-forward (dense) layer applied at every time step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeDistributedConf {
    /// Optional name (the wrapped layer's when `None`).
    #[serde(default)]
    pub name: Option<String>,
    /// The wrapped dense layer.
    pub layer: Box<LayerConf>,
}

/// A recurrent layer that masks the steps whose features all equal `masking_value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskZeroConf {
    /// Optional name (the wrapped layer's when `None`).
    #[serde(default)]
    pub name: Option<String>,
    /// The padding value (DL4J default 0).
    #[serde(default)]
    pub masking_value: f64,
    /// The wrapped recurrent layer.
    pub layer: Box<LayerConf>,
}

/// The last unmasked time step of a recurrent layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastTimeStepConf {
    /// Optional name (the wrapped layer's when `None`).
    #[serde(default)]
    pub name: Option<String>,
    /// The wrapped recurrent layer.
    pub layer: Box<LayerConf>,
}

impl LayerConf {
    /// An LSTM with `n_out` units (tanh, sigmoid gates, forget-gate bias 1.0).
    pub fn lstm(n_out: usize) -> LstmBuilder {
        LstmBuilder(LstmConf {
            name: None,
            n_in: None,
            n_out,
            activation: None,
            gate_activation: default_gate(),
            weight_init: None,
            forget_gate_bias_init: default_forget_bias(),
        })
    }

    /// A simple recurrent layer with `n_out` units (tanh).
    pub fn simple_rnn(n_out: usize) -> SimpleRnnBuilder {
        SimpleRnnBuilder(SimpleRnnConf {
            name: None,
            n_in: None,
            n_out,
            activation: None,
            weight_init: None,
        })
    }

    /// A GRU with `n_out` units (tanh, sigmoid gates).
    pub fn gru(n_out: usize) -> GruBuilder {
        GruBuilder(GruConf {
            name: None,
            n_in: None,
            n_out,
            activation: None,
            gate_activation: default_gate(),
            weight_init: None,
        })
    }

    /// A dense layer with `n_out` outputs and `loss` at every time step.
    pub fn rnn_output(loss: LossFunction, n_out: usize) -> RnnOutputBuilder {
        RnnOutputBuilder(RnnOutputConf {
            name: None,
            n_in: None,
            n_out,
            activation: None,
            weight_init: None,
            bias_init: 0.0,
            loss,
        })
    }

    /// An activation and a loss at every time step.
    pub fn rnn_loss(loss: LossFunction, activation: Activation) -> LayerConf {
        LayerConf::RnnLoss(RnnLossConf {
            name: None,
            loss,
            activation,
            n: None,
        })
    }

    /// The recurrent layer `inner` in both directions, combined by `mode`.
    pub fn bidirectional(mode: BidirectionalMode, inner: impl Into<LayerConf>) -> LayerConf {
        LayerConf::Bidirectional(BidirectionalConf {
            name: None,
            mode,
            layer: Box::new(inner.into()),
        })
    }

    /// The dense layer `inner` at every time step.
    pub fn time_distributed(inner: impl Into<LayerConf>) -> LayerConf {
        LayerConf::TimeDistributed(TimeDistributedConf {
            name: None,
            layer: Box::new(inner.into()),
        })
    }

    /// The recurrent layer `inner`, skipping steps whose features all equal `masking_value`.
    pub fn mask_zero(inner: impl Into<LayerConf>, masking_value: f64) -> LayerConf {
        LayerConf::MaskZero(MaskZeroConf {
            name: None,
            masking_value,
            layer: Box::new(inner.into()),
        })
    }

    /// The last unmasked step of the recurrent layer `inner`.
    pub fn last_time_step(inner: impl Into<LayerConf>) -> LayerConf {
        LayerConf::LastTimeStep(LastTimeStepConf {
            name: None,
            layer: Box::new(inner.into()),
        })
    }

    /// Whether this is a recurrent layer (sequences in, sequences out, state over time).
    pub fn is_recurrent(&self) -> bool {
        matches!(
            self,
            LayerConf::Lstm(_)
                | LayerConf::SimpleRnn(_)
                | LayerConf::Gru(_)
                | LayerConf::Bidirectional(_)
                | LayerConf::MaskZero(_)
        )
    }
}

fn recurrent_size(input: &InputType, label: &str) -> Result<usize, NnError> {
    match *input {
        InputType::Recurrent { size, .. } => Ok(size),
        other => Err(NnError::config(format!(
            "{label} reads sequences [batch, size, time] but gets {other}: set the input type \
             (set_input_type(InputType::recurrent(n))) so a preprocessor is inserted"
        ))),
    }
}

fn check_n_in(n_in: Option<usize>, size: usize, label: &str) -> Result<usize, NnError> {
    match n_in {
        Some(n) if n != size => Err(NnError::config(format!(
            "{label} has n_in = {n} but its input has {size} features per step: remove n_in to \
             infer it, or fix one of the sizes"
        ))),
        _ if size == 0 => Err(NnError::config(format!(
            "{label}: sizes must be > 0, found {size} input features"
        ))),
        _ => Ok(size),
    }
}

fn with_size(input: &InputType, size: usize) -> InputType {
    match *input {
        InputType::Recurrent {
            time_series_length, ..
        } => InputType::Recurrent {
            size,
            time_series_length,
        },
        _ => InputType::recurrent(size),
    }
}

/// Size inference for the recurrent family (`None` for other layers).
pub(crate) fn infer(
    conf: &mut LayerConf,
    input: &InputType,
    label: &str,
) -> Result<Option<InputType>, NnError> {
    Ok(Some(match conf {
        LayerConf::Lstm(c) => {
            c.n_in = Some(check_n_in(c.n_in, recurrent_size(input, label)?, label)?);
            if c.n_out == 0 {
                return Err(NnError::config(format!("{label}: n_out must be > 0")));
            }
            with_size(input, c.n_out)
        }
        LayerConf::Gru(c) => {
            c.n_in = Some(check_n_in(c.n_in, recurrent_size(input, label)?, label)?);
            if c.n_out == 0 {
                return Err(NnError::config(format!("{label}: n_out must be > 0")));
            }
            with_size(input, c.n_out)
        }
        LayerConf::SimpleRnn(c) => {
            c.n_in = Some(check_n_in(c.n_in, recurrent_size(input, label)?, label)?);
            if c.n_out == 0 {
                return Err(NnError::config(format!("{label}: n_out must be > 0")));
            }
            with_size(input, c.n_out)
        }
        LayerConf::RnnOutput(c) => {
            c.n_in = Some(check_n_in(c.n_in, recurrent_size(input, label)?, label)?);
            if c.n_out == 0 {
                return Err(NnError::config(format!("{label}: n_out must be > 0")));
            }
            with_size(input, c.n_out)
        }
        LayerConf::RnnLoss(c) => {
            c.n = Some(check_n_in(c.n, recurrent_size(input, label)?, label)?);
            *input
        }
        LayerConf::Bidirectional(c) => {
            if !matches!(
                *c.layer,
                LayerConf::Lstm(_) | LayerConf::SimpleRnn(_) | LayerConf::Gru(_)
            ) {
                return Err(NnError::config(format!(
                    "{label}: Bidirectional wraps a recurrent layer (LSTM, GRU, SimpleRnn), not {}",
                    c.layer.kind()
                )));
            }
            match c.layer.infer(input, label)? {
                InputType::Recurrent { size, .. } if c.mode == BidirectionalMode::Concat => {
                    with_size(input, 2 * size)
                }
                InputType::Recurrent { size, .. } => with_size(input, size),
                other => {
                    return Err(NnError::config(format!(
                        "{label}: the wrapped layer outputs {other}, not sequences"
                    )));
                }
            }
        }
        LayerConf::TimeDistributed(c) => {
            if !matches!(*c.layer, LayerConf::Dense(_)) {
                return Err(NnError::config(format!(
                    "{label}: TimeDistributed wraps a dense layer, not {}",
                    c.layer.kind()
                )));
            }
            let size = recurrent_size(input, label)?;
            match c.layer.infer(&InputType::feed_forward(size), label)? {
                InputType::FeedForward { size } => with_size(input, size),
                other => {
                    return Err(NnError::config(format!(
                        "{label}: the wrapped layer outputs {other}, not rows"
                    )));
                }
            }
        }
        LayerConf::MaskZero(c) => {
            if !c.layer.is_recurrent() || !c.masking_value.is_finite() {
                return Err(NnError::config(format!(
                    "{label}: MaskZeroLayer wraps a recurrent layer with a finite masking \
                     value, found {} and {}",
                    c.layer.kind(),
                    c.masking_value
                )));
            }
            c.layer.infer(input, label)?
        }
        LayerConf::LastTimeStep(c) => {
            if !c.layer.is_recurrent() {
                return Err(NnError::config(format!(
                    "{label}: LastTimeStep wraps a recurrent layer (LSTM), not {}",
                    c.layer.kind()
                )));
            }
            match c.layer.infer(input, label)? {
                InputType::Recurrent { size, .. } => InputType::feed_forward(size),
                other => {
                    return Err(NnError::config(format!(
                        "{label}: the wrapped layer outputs {other}, not sequences"
                    )));
                }
            }
        }
        _ => return Ok(None),
    }))
}

/// The runtime layer of a recurrent-family configuration (`None` for other layers).
pub(crate) fn build<T: DataType>(
    conf: &LayerConf,
    input: &InputType,
) -> Result<Option<Box<dyn Layer<T>>>, NnError> {
    let size = input.feature_size();
    Ok(Some(match conf {
        LayerConf::Lstm(c) => Box::new(LstmLayer::<T>::new(
            c.name.clone(),
            size,
            c.n_out,
            c.activation.unwrap_or(Activation::Tanh),
            c.gate_activation,
            c.weight_init.unwrap_or_default(),
            c.forget_gate_bias_init,
        )?),
        LayerConf::Gru(c) => Box::new(GruLayer::<T>::new(
            c.name.clone(),
            size,
            c.n_out,
            c.activation.unwrap_or(Activation::Tanh),
            c.gate_activation,
            c.weight_init.unwrap_or_default(),
        )?),
        LayerConf::SimpleRnn(c) => Box::new(SimpleRnnLayer::<T>::new(
            c.name.clone(),
            size,
            c.n_out,
            c.activation.unwrap_or(Activation::Tanh),
            c.weight_init.unwrap_or_default(),
        )?),
        LayerConf::RnnOutput(c) => Box::new(RnnOutputLayer::new(
            c.name.clone(),
            size,
            c.n_out,
            c.activation.unwrap_or_default(),
            c.weight_init.unwrap_or_default(),
            c.bias_init,
            c.loss,
        )),
        LayerConf::RnnLoss(c) => Box::new(RnnOutputLayer::loss_only(
            c.name.clone(),
            size,
            c.activation,
            c.loss,
        )),
        LayerConf::Bidirectional(c) => Box::new(BidirectionalLayer::new(
            c.name.clone(),
            c.mode,
            c.layer.build::<T>(input)?,
            c.layer.build::<T>(input)?,
        )?),
        LayerConf::TimeDistributed(c) => Box::new(TimeDistributedLayer::new(
            c.name.clone(),
            c.layer.build::<T>(&InputType::feed_forward(size))?,
        )?),
        LayerConf::MaskZero(c) => Box::new(MaskZeroLayer::new(
            c.name.clone(),
            c.layer.build::<T>(input)?,
            c.masking_value,
        )?),
        LayerConf::LastTimeStep(c) => Box::new(LastTimeStepLayer::new(
            c.name.clone(),
            c.layer.build::<T>(input)?,
        )?),
        _ => return Ok(None),
    }))
}

/// Number of parameters of a recurrent-family layer (after inference).
pub(crate) fn num_params(conf: &LayerConf) -> Option<usize> {
    let n_in = |n: Option<usize>| n.unwrap_or(0);
    Some(match conf {
        LayerConf::Lstm(c) => {
            let g = c.n_out.saturating_mul(4);
            n_in(c.n_in)
                .saturating_add(c.n_out)
                .saturating_mul(g)
                .saturating_add(g)
        }
        LayerConf::Gru(c) => {
            let g = c.n_out.saturating_mul(3);
            n_in(c.n_in)
                .saturating_add(c.n_out)
                .saturating_mul(g)
                .saturating_add(g)
                .saturating_add(c.n_out)
        }
        LayerConf::SimpleRnn(c) => n_in(c.n_in)
            .saturating_add(c.n_out)
            .saturating_mul(c.n_out)
            .saturating_add(c.n_out),
        LayerConf::RnnOutput(c) => n_in(c.n_in).saturating_mul(c.n_out).saturating_add(c.n_out),
        LayerConf::RnnLoss(_) => 0,
        LayerConf::Bidirectional(c) => c.layer.num_params().saturating_mul(2),
        LayerConf::LastTimeStep(c) => c.layer.num_params(),
        LayerConf::TimeDistributed(c) => c.layer.num_params(),
        LayerConf::MaskZero(c) => c.layer.num_params(),
        _ => return None,
    })
}
