//! The convolutional family in [`LayerConf`]: its constructors, and its part of the
//! inference and the build (the configurations themselves are in `conv.rs`; `layer.rs`
//! dispatches).

use super::conv::{
    ConvolutionBuilder, ConvolutionConf, ConvolutionMode, CroppingConf, DepthwiseBuilder,
    DepthwiseConvolutionConf, GlobalPoolingConf, PoolingType, SubsamplingBuilder, SubsamplingConf,
    UpsamplingConf, ZeroPaddingConf,
};
use super::layer::LayerConf;
use crate::error::NnError;
use crate::input_type::InputType;
use crate::layers::{ConvolutionLayer, GlobalPoolingLayer, Layer, SpatialLayer, SubsamplingLayer};
use dl4rs_array::DataType;

impl LayerConf {
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
}

/// Inference for the convolutional family (`None` for other layers).
pub(super) fn infer(
    conf: &mut LayerConf,
    input: &InputType,
    label: &str,
) -> Result<Option<InputType>, NnError> {
    Ok(Some(match conf {
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

/// The runtime layer of a convolutional-family configuration (`None` for other layers).
pub(super) fn build<T: DataType>(
    conf: &LayerConf,
    input: &InputType,
) -> Result<Option<Box<dyn Layer<T>>>, NnError> {
    Ok(Some(match conf {
        LayerConf::Convolution(c) => Box::new(ConvolutionLayer::new(c, input)?),
        LayerConf::DepthwiseConvolution2D(c) => Box::new(ConvolutionLayer::depthwise(c, input)?),
        LayerConf::Subsampling(c) => Box::new(SubsamplingLayer::new(c, input)?),
        LayerConf::GlobalPooling(c) => Box::new(GlobalPoolingLayer::new(c, input)?),
        LayerConf::ZeroPadding(c) => Box::new(SpatialLayer::zero_padding(c, input)?),
        LayerConf::Cropping2D(c) => Box::new(SpatialLayer::cropping(c, input)?),
        LayerConf::Upsampling2D(c) => Box::new(SpatialLayer::upsampling(c, input)?),
        _ => return Ok(None),
    }))
}
