//! [`LayerConf`], the configuration of one layer of any family, and what is asked of every
//! layer alike: its name, kind and sizes, its loss, the input layout it reads, the network
//! defaults it takes. A configuration describes a layer before its input is known;
//! [`LayerConf::infer`] takes the input type, fills in the sizes it implies and returns the
//! output type, and [`LayerConf::build`] makes the runtime layer, each dispatching to the
//! family's module: `feed_forward.rs`, `spatial.rs` (configurations in `conv.rs`) and
//! `recurrent/`.

use serde::{Deserialize, Serialize};

pub use super::conv::{
    ConvolutionBuilder, ConvolutionConf, ConvolutionMode, CroppingConf, DepthwiseBuilder,
    DepthwiseConvolutionConf, GlobalPoolingConf, PoolingType, SubsamplingBuilder, SubsamplingConf,
    UpsamplingConf, ZeroPaddingConf,
};
pub use super::feed_forward::{
    ActivationConf, BatchNormConf, DenseBuilder, DenseConf, DropoutConf, LossConf, OutputBuilder,
    OutputConf,
};
pub use super::recurrent::{
    BidirectionalConf, GruBuilder, GruConf, LastTimeStepConf, LstmBuilder, LstmConf, MaskZeroConf,
    RnnLossConf, RnnOutputBuilder, RnnOutputConf, SimpleRnnBuilder, SimpleRnnConf,
    TimeDistributedConf,
};
use crate::activation::Activation;
use crate::error::NnError;
use crate::input_type::{Accepts, InputType};
use crate::layers::Layer;
use crate::loss::LossFunction;
use crate::weight_init::WeightInit;
use dl4rs_array::DataType;

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
        if let Some(out) = super::spatial::infer(self, input, label)? {
            return Ok(out);
        }
        if let Some(out) = super::recurrent::infer(self, input, label)? {
            return Ok(out);
        }
        super::feed_forward::infer(self, input, label)?
            .ok_or_else(|| NnError::config(format!("{label}: no inference for {}", self.kind())))
    }

    /// The runtime layer for inputs of `input` (after [`LayerConf::infer`]).
    pub fn build<T: DataType>(&self, input: &InputType) -> Result<Box<dyn Layer<T>>, NnError> {
        if let Some(layer) = super::spatial::build::<T>(self, input)? {
            return Ok(layer);
        }
        if let Some(layer) = super::recurrent::build::<T>(self, input)? {
            return Ok(layer);
        }
        super::feed_forward::build::<T>(self, input)?
            .ok_or_else(|| NnError::config(format!("{}: no runtime layer", self.kind())))
    }
}
