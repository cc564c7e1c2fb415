//! Layer configurations ([`LayerConf`]) and their builders. A configuration describes a layer
//! before its input is known; [`LayerConf::infer`] takes the input type, fills in the sizes it
//! implies and returns the output type, and [`LayerConf::build`] makes the runtime layer.

use serde::{Deserialize, Serialize};

pub use super::conv::{
    ConvolutionBuilder, ConvolutionConf, ConvolutionMode, CroppingConf, DepthwiseBuilder,
    DepthwiseConvolutionConf, GlobalPoolingConf, PoolingType, SubsamplingBuilder, SubsamplingConf,
    UpsamplingConf, ZeroPaddingConf,
};
pub use super::recurrent::{
    BidirectionalConf, GruBuilder, GruConf, LastTimeStepConf, LstmBuilder, LstmConf, MaskZeroConf,
    RnnLossConf, RnnOutputBuilder, RnnOutputConf, SimpleRnnBuilder, SimpleRnnConf,
    TimeDistributedConf,
};
use crate::activation::Activation;
use crate::error::NnError;
use crate::input_type::{Accepts, InputType};
use crate::layers::{
    ActivationLayer, BatchNormLayer, ConvolutionLayer, DenseLayer, DropoutLayer,
    GlobalPoolingLayer, Layer, LossLayer, SpatialLayer, SubsamplingLayer,
};
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
    /// See [`ConvolutionConf`].
    Convolution(ConvolutionConf),
    /// See [`DepthwiseConvolutionConf`].
    DepthwiseConvolution2D(DepthwiseConvolutionConf),
    /// See [`SubsamplingConf`].
    Subsampling(SubsamplingConf),
    /// See [`GlobalPoolingConf`].
    GlobalPooling(GlobalPoolingConf),
    /// See [`ZeroPaddingConf`].
    ZeroPadding(ZeroPaddingConf),
    /// See [`CroppingConf`].
    Cropping2D(CroppingConf),
    /// See [`UpsamplingConf`].
    Upsampling2D(UpsamplingConf),
    /// See [`LstmConf`].
    #[serde(rename = "LSTM")]
    Lstm(LstmConf),
    /// See [`SimpleRnnConf`].
    SimpleRnn(SimpleRnnConf),
    /// See [`GruConf`].
    #[serde(rename = "GRU")]
    Gru(GruConf),
    /// See [`RnnOutputConf`].
    #[serde(rename = "RnnOutputLayer")]
    RnnOutput(RnnOutputConf),
    /// See [`RnnLossConf`].
    #[serde(rename = "RnnLossLayer")]
    RnnLoss(RnnLossConf),
    /// See [`LastTimeStepConf`].
    LastTimeStep(LastTimeStepConf),
    /// See [`BidirectionalConf`].
    Bidirectional(BidirectionalConf),
    /// See [`TimeDistributedConf`].
    TimeDistributed(TimeDistributedConf),
    /// See [`MaskZeroConf`].
    #[serde(rename = "MaskZeroLayer")]
    MaskZero(MaskZeroConf),
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

    /// A 2-D convolution with `n_out` filters of `kernel` (`[height, width]`).
    pub fn convolution(n_out: usize, kernel: [usize; 2]) -> ConvolutionBuilder {
        ConvolutionBuilder(ConvolutionConf {
            name: None,
            n_in: None,
            n_out,
            kernel,
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            mode: ConvolutionMode::Truncate,
            has_bias: true,
            activation: None,
            weight_init: None,
            bias_init: 0.0,
        })
    }

    /// A depthwise 2-D convolution with `depth_multiplier` filters of `kernel` per channel.
    pub fn depthwise_convolution(depth_multiplier: usize, kernel: [usize; 2]) -> DepthwiseBuilder {
        DepthwiseBuilder(DepthwiseConvolutionConf {
            name: None,
            n_in: None,
            depth_multiplier,
            kernel,
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            mode: ConvolutionMode::Truncate,
            has_bias: true,
            activation: None,
            weight_init: None,
            bias_init: 0.0,
        })
    }

    /// Pooling (`Max`, `Avg`, `Pnorm`) over `kernel` windows moved by `stride`.
    pub fn subsampling(
        pooling: PoolingType,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> SubsamplingBuilder {
        SubsamplingBuilder(SubsamplingConf {
            name: None,
            pooling,
            kernel,
            stride,
            padding: [0, 0],
            mode: ConvolutionMode::Truncate,
            pnorm: 2.0,
            n: None,
        })
    }

    /// Pooling over all of space (images) or all unmasked steps (sequences).
    pub fn global_pooling(pooling: PoolingType) -> LayerConf {
        LayerConf::GlobalPooling(GlobalPoolingConf {
            name: None,
            pooling,
            pnorm: 2.0,
            n: None,
        })
    }

    /// Zero padding `[top, bottom, left, right]`.
    pub fn zero_padding(padding: [usize; 4]) -> LayerConf {
        LayerConf::ZeroPadding(ZeroPaddingConf {
            name: None,
            padding,
        })
    }

    /// Cropping `[top, bottom, left, right]`.
    pub fn cropping(cropping: [usize; 4]) -> LayerConf {
        LayerConf::Cropping2D(CroppingConf {
            name: None,
            cropping,
        })
    }

    /// Nearest-neighbour upsampling by `[height, width]`.
    pub fn upsampling(size: [usize; 2]) -> LayerConf {
        LayerConf::Upsampling2D(UpsamplingConf { name: None, size })
    }

    /// The same layer with a name.
    pub fn named(mut self, name: &str) -> LayerConf {
        let slot = match &mut self {
            LayerConf::Dense(c) => &mut c.name,
            LayerConf::Output(c) => &mut c.dense.name,
            LayerConf::Loss(c) => &mut c.name,
            LayerConf::Activation(c) => &mut c.name,
            LayerConf::Dropout(c) => &mut c.name,
            LayerConf::BatchNormalization(c) => &mut c.name,
            LayerConf::Convolution(c) => &mut c.name,
            LayerConf::DepthwiseConvolution2D(c) => &mut c.name,
            LayerConf::Subsampling(c) => &mut c.name,
            LayerConf::GlobalPooling(c) => &mut c.name,
            LayerConf::ZeroPadding(c) => &mut c.name,
            LayerConf::Cropping2D(c) => &mut c.name,
            LayerConf::Upsampling2D(c) => &mut c.name,
            LayerConf::Lstm(c) => &mut c.name,
            LayerConf::SimpleRnn(c) => &mut c.name,
            LayerConf::Gru(c) => &mut c.name,
            LayerConf::RnnOutput(c) => &mut c.name,
            LayerConf::RnnLoss(c) => &mut c.name,
            LayerConf::LastTimeStep(c) => &mut c.name,
            LayerConf::Bidirectional(c) => &mut c.name,
            LayerConf::TimeDistributed(c) => &mut c.name,
            LayerConf::MaskZero(c) => &mut c.name,
        };
        *slot = Some(name.to_string());
        self
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
            LayerConf::Convolution(c) => c.name.as_deref(),
            LayerConf::DepthwiseConvolution2D(c) => c.name.as_deref(),
            LayerConf::Subsampling(c) => c.name.as_deref(),
            LayerConf::GlobalPooling(c) => c.name.as_deref(),
            LayerConf::ZeroPadding(c) => c.name.as_deref(),
            LayerConf::Cropping2D(c) => c.name.as_deref(),
            LayerConf::Upsampling2D(c) => c.name.as_deref(),
            LayerConf::Lstm(c) => c.name.as_deref(),
            LayerConf::SimpleRnn(c) => c.name.as_deref(),
            LayerConf::Gru(c) => c.name.as_deref(),
            LayerConf::RnnOutput(c) => c.name.as_deref(),
            LayerConf::RnnLoss(c) => c.name.as_deref(),
            LayerConf::LastTimeStep(c) => c.name.as_deref().or_else(|| c.layer.name()),
            LayerConf::Bidirectional(c) => c.name.as_deref().or_else(|| c.layer.name()),
            LayerConf::TimeDistributed(c) => c.name.as_deref().or_else(|| c.layer.name()),
            LayerConf::MaskZero(c) => c.name.as_deref().or_else(|| c.layer.name()),
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
            LayerConf::Convolution(_) => "ConvolutionLayer",
            LayerConf::DepthwiseConvolution2D(_) => "DepthwiseConvolution2D",
            LayerConf::Subsampling(_) => "SubsamplingLayer",
            LayerConf::GlobalPooling(_) => "GlobalPoolingLayer",
            LayerConf::ZeroPadding(_) => "ZeroPaddingLayer",
            LayerConf::Cropping2D(_) => "Cropping2D",
            LayerConf::Upsampling2D(_) => "Upsampling2D",
            LayerConf::Lstm(_) => "LSTM",
            LayerConf::SimpleRnn(_) => "SimpleRnn",
            LayerConf::Gru(_) => "GRU",
            LayerConf::RnnOutput(_) => "RnnOutputLayer",
            LayerConf::RnnLoss(_) => "RnnLossLayer",
            LayerConf::LastTimeStep(_) => "LastTimeStep",
            LayerConf::Bidirectional(_) => "Bidirectional",
            LayerConf::TimeDistributed(_) => "TimeDistributed",
            LayerConf::MaskZero(_) => "MaskZeroLayer",
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
            LayerConf::Convolution(c) => c.n_in,
            LayerConf::DepthwiseConvolution2D(c) => c.n_in,
            LayerConf::Subsampling(c) => c.n,
            LayerConf::GlobalPooling(c) => c.n,
            LayerConf::ZeroPadding(_) | LayerConf::Cropping2D(_) | LayerConf::Upsampling2D(_) => {
                None
            }
            LayerConf::Lstm(c) => c.n_in,
            LayerConf::SimpleRnn(c) => c.n_in,
            LayerConf::Gru(c) => c.n_in,
            LayerConf::RnnOutput(c) => c.n_in,
            LayerConf::RnnLoss(c) => c.n,
            LayerConf::LastTimeStep(c) => c.layer.n_in(),
            LayerConf::Bidirectional(c) => c.layer.n_in(),
            LayerConf::TimeDistributed(c) => c.layer.n_in(),
            LayerConf::MaskZero(c) => c.layer.n_in(),
        }
    }

    /// Outputs (features or channels, after inference).
    pub fn n_out(&self) -> Option<usize> {
        match self {
            LayerConf::Dense(c) => Some(c.n_out),
            LayerConf::Output(c) => Some(c.dense.n_out),
            LayerConf::Convolution(c) => Some(c.n_out),
            LayerConf::DepthwiseConvolution2D(c) => c.n_in.map(|n| n * c.depth_multiplier),
            LayerConf::Lstm(c) => Some(c.n_out),
            LayerConf::SimpleRnn(c) => Some(c.n_out),
            LayerConf::Gru(c) => Some(c.n_out),
            LayerConf::RnnOutput(c) => Some(c.n_out),
            LayerConf::LastTimeStep(c) => c.layer.n_out(),
            LayerConf::TimeDistributed(c) => c.layer.n_out(),
            LayerConf::MaskZero(c) => c.layer.n_out(),
            LayerConf::Bidirectional(c) => c.layer.n_out().map(|n| {
                if c.mode == crate::layers::BidirectionalMode::Concat {
                    2 * n
                } else {
                    n
                }
            }),
            _ => self.n_in(),
        }
    }

    /// Whether this layer computes a loss (must be last).
    pub fn is_output(&self) -> bool {
        matches!(
            self,
            LayerConf::Output(_)
                | LayerConf::Loss(_)
                | LayerConf::RnnOutput(_)
                | LayerConf::RnnLoss(_)
        )
    }

    /// The loss this layer computes, if it is an output layer.
    pub fn loss_function(&self) -> Option<LossFunction> {
        match self {
            LayerConf::Output(c) => Some(c.loss),
            LayerConf::Loss(c) => Some(c.loss),
            LayerConf::RnnOutput(c) => Some(c.loss),
            LayerConf::RnnLoss(c) => Some(c.loss),
            _ => None,
        }
    }

    /// Number of parameters (after inference); `usize::MAX` when the sizes overflow (a
    /// configuration read from an untrusted file can claim any size).
    pub fn num_params(&self) -> usize {
        let dense = |n_in: Option<usize>, n_out: usize| {
            n_in.unwrap_or(0)
                .saturating_mul(n_out)
                .saturating_add(n_out)
        };
        if let Some(n) = super::recurrent::num_params(self) {
            return n;
        }
        match self {
            LayerConf::Dense(c) => dense(c.n_in, c.n_out),
            LayerConf::Output(c) => dense(c.dense.n_in, c.dense.n_out),
            LayerConf::BatchNormalization(c) => c.n.unwrap_or(0).saturating_mul(2),
            LayerConf::Convolution(c) => {
                let w = c
                    .n_out
                    .saturating_mul(c.n_in.unwrap_or(0))
                    .saturating_mul(c.kernel[0])
                    .saturating_mul(c.kernel[1]);
                w.saturating_add(if c.has_bias { c.n_out } else { 0 })
            }
            LayerConf::DepthwiseConvolution2D(c) => {
                let out = c.n_in.unwrap_or(0).saturating_mul(c.depth_multiplier);
                out.saturating_mul(c.kernel[0])
                    .saturating_mul(c.kernel[1])
                    .saturating_add(if c.has_bias { out } else { 0 })
            }
            _ => 0,
        }
    }

    /// What input layout this layer reads without a preprocessor.
    pub fn accepts(&self) -> Accepts {
        match self {
            LayerConf::Activation(_) | LayerConf::Dropout(_) => Accepts::Any,
            // Rows or images (statistics per feature or per channel); the inference rejects
            // sequences.
            LayerConf::BatchNormalization(_) => Accepts::Any,
            // Images or sequences.
            LayerConf::GlobalPooling(_) => Accepts::Any,
            LayerConf::Convolution(_)
            | LayerConf::DepthwiseConvolution2D(_)
            | LayerConf::Subsampling(_)
            | LayerConf::ZeroPadding(_)
            | LayerConf::Cropping2D(_)
            | LayerConf::Upsampling2D(_) => Accepts::Convolutional,
            LayerConf::Lstm(_)
            | LayerConf::SimpleRnn(_)
            | LayerConf::Gru(_)
            | LayerConf::RnnOutput(_)
            | LayerConf::RnnLoss(_)
            | LayerConf::LastTimeStep(_)
            | LayerConf::Bidirectional(_)
            | LayerConf::TimeDistributed(_)
            | LayerConf::MaskZero(_) => Accepts::Recurrent,
            _ => Accepts::FeedForward,
        }
    }

    /// Fills the network defaults into what the layer left open.
    pub(crate) fn apply_defaults(&mut self, activation: Activation, weight_init: WeightInit) {
        match self {
            LayerConf::Dense(d) | LayerConf::Output(OutputConf { dense: d, .. }) => {
                d.activation.get_or_insert(activation);
                d.weight_init.get_or_insert(weight_init);
            }
            LayerConf::Convolution(c) => {
                c.activation.get_or_insert(activation);
                c.weight_init.get_or_insert(weight_init);
            }
            LayerConf::DepthwiseConvolution2D(c) => {
                c.activation.get_or_insert(activation);
                c.weight_init.get_or_insert(weight_init);
            }
            // The LSTM's activation stays tanh unless set (see LstmConf::activation).
            LayerConf::Lstm(c) => {
                c.weight_init.get_or_insert(weight_init);
            }
            LayerConf::SimpleRnn(c) => {
                c.weight_init.get_or_insert(weight_init);
            }
            LayerConf::Gru(c) => {
                c.weight_init.get_or_insert(weight_init);
            }
            LayerConf::RnnOutput(c) => {
                c.activation.get_or_insert(activation);
                c.weight_init.get_or_insert(weight_init);
            }
            LayerConf::LastTimeStep(c) => c.layer.apply_defaults(activation, weight_init),
            LayerConf::Bidirectional(c) => c.layer.apply_defaults(activation, weight_init),
            LayerConf::TimeDistributed(c) => c.layer.apply_defaults(activation, weight_init),
            LayerConf::MaskZero(c) => c.layer.apply_defaults(activation, weight_init),
            _ => {}
        }
    }

    /// Takes the input type (already in a layout [`LayerConf::accepts`] allows), fills in the
    /// sizes it implies, checks the layer's settings and returns the output type. `label`
    /// names the layer in errors ("layer 2 (DenseLayer)").
    pub fn infer(&mut self, input: &InputType, label: &str) -> Result<InputType, NnError> {
        if let Some(out) = self.infer_spatial(input, label)? {
            return Ok(out);
        }
        if let Some(out) = super::recurrent::infer(self, input, label)? {
            return Ok(out);
        }
        let size = input.feature_size();
        if self.accepts() == Accepts::FeedForward && !input.is_feed_forward() {
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
        let out = match self {
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
            // Handled by infer_spatial above.
            LayerConf::Convolution(_)
            | LayerConf::DepthwiseConvolution2D(_)
            | LayerConf::Subsampling(_)
            | LayerConf::GlobalPooling(_)
            | LayerConf::ZeroPadding(_)
            | LayerConf::Cropping2D(_)
            | LayerConf::Upsampling2D(_)
            | LayerConf::Lstm(_)
            | LayerConf::SimpleRnn(_)
            | LayerConf::Gru(_)
            | LayerConf::RnnOutput(_)
            | LayerConf::RnnLoss(_)
            | LayerConf::LastTimeStep(_)
            | LayerConf::Bidirectional(_)
            | LayerConf::TimeDistributed(_)
            | LayerConf::MaskZero(_) => {
                return Err(NnError::config(format!(
                    "{label}: internal inference order"
                )));
            }
        };
        if out.flat_size() == 0 || size == 0 {
            return Err(NnError::config(format!(
                "{label}: sizes must be > 0, found input {input}, output {out}"
            )));
        }
        Ok(out)
    }

    /// Inference for the convolutional family (`None` for other layers).
    fn infer_spatial(
        &mut self,
        input: &InputType,
        label: &str,
    ) -> Result<Option<InputType>, NnError> {
        Ok(Some(match self {
            LayerConf::Convolution(c) => c.infer(input, label)?,
            LayerConf::DepthwiseConvolution2D(c) => c.infer(input, label)?,
            LayerConf::Subsampling(c) => c.infer(input, label)?,
            LayerConf::GlobalPooling(c) => c.infer(input, label)?,
            LayerConf::ZeroPadding(c) => c.infer(input, label)?,
            LayerConf::Cropping2D(c) => c.infer(input, label)?,
            LayerConf::Upsampling2D(c) => c.infer(input, label)?,
            _ => return Ok(None),
        }))
    }

    /// The runtime layer for inputs of `input` (after [`LayerConf::infer`]).
    pub fn build<T: DataType>(&self, input: &InputType) -> Result<Box<dyn Layer<T>>, NnError> {
        if let Some(layer) = super::recurrent::build::<T>(self, input)? {
            return Ok(layer);
        }
        let size = input.feature_size();
        Ok(match self {
            LayerConf::Dense(d) => Box::new(dense_layer(d, size, None)),
            LayerConf::Output(o) => Box::new(dense_layer(&o.dense, size, Some(o.loss))),
            LayerConf::Loss(l) => {
                Box::new(LossLayer::new(l.name.clone(), size, l.activation, l.loss))
            }
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
            LayerConf::Convolution(c) => Box::new(ConvolutionLayer::new(c, input)?),
            LayerConf::DepthwiseConvolution2D(c) => {
                Box::new(ConvolutionLayer::depthwise(c, input)?)
            }
            LayerConf::Subsampling(c) => Box::new(SubsamplingLayer::new(c, input)?),
            LayerConf::GlobalPooling(c) => Box::new(GlobalPoolingLayer::new(c, input)?),
            LayerConf::ZeroPadding(c) => Box::new(SpatialLayer::zero_padding(c, input)?),
            LayerConf::Cropping2D(c) => Box::new(SpatialLayer::cropping(c, input)?),
            LayerConf::Upsampling2D(c) => Box::new(SpatialLayer::upsampling(c, input)?),
            LayerConf::Lstm(_)
            | LayerConf::SimpleRnn(_)
            | LayerConf::Gru(_)
            | LayerConf::RnnOutput(_)
            | LayerConf::RnnLoss(_)
            | LayerConf::LastTimeStep(_)
            | LayerConf::Bidirectional(_)
            | LayerConf::TimeDistributed(_)
            | LayerConf::MaskZero(_) => {
                return Err(NnError::config("recurrent layer: internal build order"));
            }
        })
    }
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
