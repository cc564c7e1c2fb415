//! Configurations of the convolutional family (NCHW): convolution, depthwise convolution,
//! subsampling (max, average, p-norm pooling), global pooling (over space, or over time with
//! masks), zero padding, upsampling and cropping, with their builders; and DL4J's output-size
//! rules for its three `ConvolutionMode`s.

use serde::{Deserialize, Serialize};

use super::layer::LayerConf;
use crate::activation::Activation;
use crate::error::NnError;
use crate::input_type::InputType;
use crate::weight_init::WeightInit;

/// How a convolution or pooling window meets the edge of its input (DL4J's `ConvolutionMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ConvolutionMode {
    /// `out = floor((in + 2p - k) / s) + 1`: positions that don't fit are dropped (DL4J's
    /// default).
    #[default]
    Truncate,
    /// `out = ceil(in / s)`, padding computed (the odd row or column at the bottom / right);
    /// the configured padding is ignored.
    Same,
    /// As `Truncate`, but a size that does not divide exactly is an error.
    Strict,
}

/// One axis of a window: `(out, pad_begin, pad_end)` for input length `input`.
pub(crate) fn window(
    mode: ConvolutionMode,
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    axis: &str,
) -> Result<(usize, usize, usize), String> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return Err(format!(
            "kernel, stride and dilation must be >= 1, found kernel {kernel}, stride {stride}, \
             dilation {dilation} ({axis})"
        ));
    }
    let ext = dilation * (kernel - 1) + 1;
    match mode {
        ConvolutionMode::Same => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + ext).saturating_sub(input);
            Ok((out, total / 2, total - total / 2))
        }
        ConvolutionMode::Truncate | ConvolutionMode::Strict => {
            let padded = input + 2 * pad;
            if ext > padded {
                return Err(format!(
                    "the kernel ({kernel}, dilated to {ext}) is larger than the padded input \
                     ({input} + 2 x {pad} = {padded}) along the {axis}"
                ));
            }
            if mode == ConvolutionMode::Strict && !(padded - ext).is_multiple_of(stride) {
                return Err(format!(
                    "ConvolutionMode::Strict requires (input {axis} - kernel + 2*padding) / \
                     stride + 1 to be an integer, found ({input} - {ext} + 2*{pad}) / {stride} \
                     + 1 = {:.2}: use Truncate or Same, or change the padding or stride",
                    (padded - ext) as f64 / stride as f64 + 1.0
                ));
            }
            Ok(((padded - ext) / stride + 1, pad, pad))
        }
    }
}

/// The spatial geometry of a window over an NCHW input, resolved for one input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// `[top, bottom, left, right]`.
    pub pad: [usize; 4],
    pub input: [usize; 2],
    pub output: [usize; 2],
}

impl Window {
    #[allow(clippy::too_many_arguments)]
    pub fn resolve(
        mode: ConvolutionMode,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<Window, String> {
        let (oh, pt, pb) = window(
            mode,
            input[0],
            kernel[0],
            stride[0],
            padding[0],
            dilation[0],
            "height",
        )?;
        let (ow, pl, pr) = window(
            mode,
            input[1],
            kernel[1],
            stride[1],
            padding[1],
            dilation[1],
            "width",
        )?;
        Ok(Window {
            kernel,
            stride,
            dilation,
            pad: [pt, pb, pl, pr],
            input,
            output: [oh, ow],
        })
    }
}

fn spatial(input: &InputType, label: &str) -> Result<(usize, [usize; 2]), NnError> {
    match *input {
        InputType::Convolutional {
            channels,
            height,
            width,
        } => Ok((channels, [height, width])),
        other => Err(NnError::config(format!(
            "{label} reads convolutional input [batch, channels, height, width] but gets \
             {other}: set the input type to InputType::convolutional(..) or \
             convolutional_flat(..)"
        ))),
    }
}

/// `(kernel, stride, padding, dilation)`, each `[height, width]`.
type WindowSettings = ([usize; 2], [usize; 2], [usize; 2], [usize; 2]);

/// Channels and the resolved window of a convolution-like layer over `input`.
fn resolve_window(
    input: &InputType,
    mode: ConvolutionMode,
    (kernel, stride, padding, dilation): WindowSettings,
    label: &str,
) -> Result<(usize, Window), NnError> {
    let (c, hw) = spatial(input, label)?;
    let w = Window::resolve(mode, hw, kernel, stride, padding, dilation)
        .map_err(|e| NnError::config(format!("{label}: {e}")))?;
    Ok((c, w))
}

fn check_n_in(n_in: Option<usize>, channels: usize, label: &str) -> Result<usize, NnError> {
    match n_in {
        Some(n) if n != channels => Err(NnError::config(format!(
            "{label} has n_in = {n} channels but its input has {channels}: remove n_in to \
             infer it, or fix one of the sizes"
        ))),
        _ => Ok(channels),
    }
}

fn one() -> [usize; 2] {
    [1, 1]
}

fn yes() -> bool {
    true
}

/// A 2-D convolution: `n_out` filters of `kernel` over `n_in` channels (DL4J's
/// `ConvolutionLayer`); weights `[n_out, n_in, kh, kw]`, bias `[n_out]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvolutionConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Input channels (inferred).
    #[serde(default)]
    pub n_in: Option<usize>,
    /// Filters (output channels).
    pub n_out: usize,
    /// `[height, width]`.
    pub kernel: [usize; 2],
    /// `[height, width]`.
    #[serde(default = "one")]
    pub stride: [usize; 2],
    /// `[height, width]` (ignored in `Same` mode).
    #[serde(default)]
    pub padding: [usize; 2],
    /// `[height, width]`.
    #[serde(default = "one")]
    pub dilation: [usize; 2],
    /// Edge rule.
    #[serde(default)]
    pub mode: ConvolutionMode,
    /// Whether the layer has a bias.
    #[serde(default = "yes")]
    pub has_bias: bool,
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

/// A depthwise 2-D convolution: each input channel convolved with `depth_multiplier` filters of
/// its own (DL4J's `DepthwiseConvolution2D`); weights `[n_in, depth_multiplier, kh, kw]`, bias
/// `[n_in * depth_multiplier]`; output channel `c * depth_multiplier + m`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthwiseConvolutionConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Input channels (inferred).
    #[serde(default)]
    pub n_in: Option<usize>,
    /// Filters per input channel.
    #[serde(default = "one_usize")]
    pub depth_multiplier: usize,
    /// `[height, width]`.
    pub kernel: [usize; 2],
    /// `[height, width]`.
    #[serde(default = "one")]
    pub stride: [usize; 2],
    /// `[height, width]`.
    #[serde(default)]
    pub padding: [usize; 2],
    /// `[height, width]`.
    #[serde(default = "one")]
    pub dilation: [usize; 2],
    /// Edge rule.
    #[serde(default)]
    pub mode: ConvolutionMode,
    /// Whether the layer has a bias.
    #[serde(default = "yes")]
    pub has_bias: bool,
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

fn one_usize() -> usize {
    1
}

/// How a pooling layer combines a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolingType {
    /// The largest value (the gradient goes to the first position holding it).
    Max,
    /// The mean (windows divide by their full size, padding included, as DL4J by default).
    Avg,
    /// The sum (global pooling only).
    Sum,
    /// `(Σ |x|^p)^(1/p)`.
    Pnorm,
}

/// Pooling over windows (DL4J's `SubsamplingLayer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubsamplingConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Max, Avg or Pnorm.
    pub pooling: PoolingType,
    /// `[height, width]`.
    pub kernel: [usize; 2],
    /// `[height, width]` (DL4J's default: the kernel, here `[2, 2]` with the builder).
    pub stride: [usize; 2],
    /// `[height, width]`.
    #[serde(default)]
    pub padding: [usize; 2],
    /// Edge rule.
    #[serde(default)]
    pub mode: ConvolutionMode,
    /// `p` of p-norm pooling (DL4J default 2).
    #[serde(default = "two")]
    pub pnorm: f64,
    /// Channels (inferred; for display).
    #[serde(default)]
    pub n: Option<usize>,
}

fn two() -> f64 {
    2.0
}

/// Pooling over all of space (CNN input) or all unmasked time steps (RNN input) (DL4J's
/// `GlobalPoolingLayer`): `[batch, channels]` or `[batch, size]` out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalPoolingConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Max, Avg, Sum or Pnorm.
    pub pooling: PoolingType,
    /// `p` of p-norm pooling.
    #[serde(default = "two")]
    pub pnorm: f64,
    /// Features (inferred).
    #[serde(default)]
    pub n: Option<usize>,
}

/// Zero padding `[top, bottom, left, right]` (DL4J's `ZeroPaddingLayer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroPaddingConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// `[top, bottom, left, right]`.
    pub padding: [usize; 4],
}

/// Cropping `[top, bottom, left, right]` (DL4J's `Cropping2D`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CroppingConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// `[top, bottom, left, right]`.
    pub cropping: [usize; 4],
}

/// Nearest-neighbour upsampling by `size` (DL4J's `Upsampling2D`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpsamplingConf {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// `[height, width]` repeat factors.
    pub size: [usize; 2],
}

impl ConvolutionConf {
    pub(crate) fn window(
        &self,
        input: &InputType,
        label: &str,
    ) -> Result<(usize, Window), NnError> {
        let settings = (self.kernel, self.stride, self.padding, self.dilation);
        resolve_window(input, self.mode, settings, label)
    }

    pub(crate) fn infer(&mut self, input: &InputType, label: &str) -> Result<InputType, NnError> {
        let (c, w) = self.window(input, label)?;
        self.n_in = Some(check_n_in(self.n_in, c, label)?);
        if self.n_out == 0 {
            return Err(NnError::config(format!(
                "{label}: n_out (filters) must be > 0"
            )));
        }
        Ok(InputType::convolutional(
            w.output[0],
            w.output[1],
            self.n_out,
        ))
    }
}

impl DepthwiseConvolutionConf {
    pub(crate) fn window(
        &self,
        input: &InputType,
        label: &str,
    ) -> Result<(usize, Window), NnError> {
        let settings = (self.kernel, self.stride, self.padding, self.dilation);
        resolve_window(input, self.mode, settings, label)
    }

    pub(crate) fn infer(&mut self, input: &InputType, label: &str) -> Result<InputType, NnError> {
        let (c, w) = self.window(input, label)?;
        self.n_in = Some(check_n_in(self.n_in, c, label)?);
        if self.depth_multiplier == 0 {
            return Err(NnError::config(format!(
                "{label}: depth_multiplier must be > 0"
            )));
        }
        Ok(InputType::convolutional(
            w.output[0],
            w.output[1],
            c * self.depth_multiplier,
        ))
    }
}

impl SubsamplingConf {
    pub(crate) fn window(
        &self,
        input: &InputType,
        label: &str,
    ) -> Result<(usize, Window), NnError> {
        let settings = (self.kernel, self.stride, self.padding, [1, 1]);
        resolve_window(input, self.mode, settings, label)
    }

    pub(crate) fn infer(&mut self, input: &InputType, label: &str) -> Result<InputType, NnError> {
        if self.pooling == PoolingType::Sum {
            return Err(NnError::config(format!(
                "{label}: sum pooling is for GlobalPoolingLayer; use Max, Avg or Pnorm"
            )));
        }
        if self.pooling == PoolingType::Pnorm && !(self.pnorm >= 1.0 && self.pnorm.is_finite()) {
            return Err(NnError::config(format!(
                "{label}: p-norm pooling needs a finite p >= 1, found {}",
                self.pnorm
            )));
        }
        let (c, w) = self.window(input, label)?;
        self.n = Some(c);
        Ok(InputType::convolutional(w.output[0], w.output[1], c))
    }
}

impl GlobalPoolingConf {
    pub(crate) fn infer(&mut self, input: &InputType, label: &str) -> Result<InputType, NnError> {
        if self.pooling == PoolingType::Pnorm && !(self.pnorm >= 1.0 && self.pnorm.is_finite()) {
            return Err(NnError::config(format!(
                "{label}: p-norm pooling needs a finite p >= 1, found {}",
                self.pnorm
            )));
        }
        let n = match *input {
            InputType::Convolutional { channels, .. } => channels,
            InputType::Recurrent { size, .. } => size,
            other => {
                return Err(NnError::config(format!(
                    "{label} pools convolutional or recurrent input, but gets {other}"
                )));
            }
        };
        self.n = Some(n);
        Ok(InputType::feed_forward(n))
    }
}

impl ZeroPaddingConf {
    pub(crate) fn infer(&self, input: &InputType, label: &str) -> Result<InputType, NnError> {
        let (c, [h, w]) = spatial(input, label)?;
        let [t, b, l, r] = self.padding;
        Ok(InputType::convolutional(h + t + b, w + l + r, c))
    }
}

impl CroppingConf {
    pub(crate) fn infer(&self, input: &InputType, label: &str) -> Result<InputType, NnError> {
        let (c, [h, w]) = spatial(input, label)?;
        let [t, b, l, r] = self.cropping;
        if t + b >= h || l + r >= w {
            return Err(NnError::config(format!(
                "{label}: cropping {:?} removes all of a {h}x{w} input",
                self.cropping
            )));
        }
        Ok(InputType::convolutional(h - t - b, w - l - r, c))
    }
}

impl UpsamplingConf {
    pub(crate) fn infer(&self, input: &InputType, label: &str) -> Result<InputType, NnError> {
        let (c, [h, w]) = spatial(input, label)?;
        if self.size[0] == 0 || self.size[1] == 0 {
            return Err(NnError::config(format!(
                "{label}: upsampling size must be >= 1, found {:?}",
                self.size
            )));
        }
        Ok(InputType::convolutional(
            h * self.size[0],
            w * self.size[1],
            c,
        ))
    }
}

macro_rules! window_setters {
    ($builder:ident) => {
        impl $builder {
            /// Sets the name.
            pub fn name(mut self, name: &str) -> Self {
                self.0.name = Some(name.to_string());
                self
            }
            /// Sets the stride `[height, width]`.
            pub fn stride(mut self, stride: [usize; 2]) -> Self {
                self.0.stride = stride;
                self
            }
            /// Sets the padding `[height, width]` (ignored in `Same` mode).
            pub fn padding(mut self, padding: [usize; 2]) -> Self {
                self.0.padding = padding;
                self
            }
            /// Sets the dilation `[height, width]`.
            pub fn dilation(mut self, dilation: [usize; 2]) -> Self {
                self.0.dilation = dilation;
                self
            }
            /// Sets the convolution mode.
            pub fn mode(mut self, mode: ConvolutionMode) -> Self {
                self.0.mode = mode;
                self
            }
            /// Sets the input channels (otherwise inferred).
            pub fn n_in(mut self, n_in: usize) -> Self {
                self.0.n_in = Some(n_in);
                self
            }
            /// Turns the bias off.
            pub fn no_bias(mut self) -> Self {
                self.0.has_bias = false;
                self
            }
            /// Sets the activation.
            pub fn activation(mut self, activation: Activation) -> Self {
                self.0.activation = Some(activation);
                self
            }
            /// Sets the weight initialization.
            pub fn weight_init(mut self, init: WeightInit) -> Self {
                self.0.weight_init = Some(init);
                self
            }
            /// Sets the initial bias.
            pub fn bias_init(mut self, bias: f64) -> Self {
                self.0.bias_init = bias;
                self
            }
        }
    };
}

/// Builder for a convolution layer.
#[derive(Debug, Clone)]
pub struct ConvolutionBuilder(pub(crate) ConvolutionConf);
window_setters!(ConvolutionBuilder);

impl From<ConvolutionBuilder> for LayerConf {
    fn from(b: ConvolutionBuilder) -> LayerConf {
        LayerConf::Convolution(b.0)
    }
}

/// Builder for a depthwise convolution layer.
#[derive(Debug, Clone)]
pub struct DepthwiseBuilder(pub(crate) DepthwiseConvolutionConf);
window_setters!(DepthwiseBuilder);

impl From<DepthwiseBuilder> for LayerConf {
    fn from(b: DepthwiseBuilder) -> LayerConf {
        LayerConf::DepthwiseConvolution2D(b.0)
    }
}

/// Builder for a subsampling (pooling) layer.
#[derive(Debug, Clone)]
pub struct SubsamplingBuilder(pub(crate) SubsamplingConf);

impl SubsamplingBuilder {
    /// Sets the name.
    pub fn name(mut self, name: &str) -> Self {
        self.0.name = Some(name.to_string());
        self
    }
    /// Sets the padding `[height, width]`.
    pub fn padding(mut self, padding: [usize; 2]) -> Self {
        self.0.padding = padding;
        self
    }
    /// Sets the convolution mode.
    pub fn mode(mut self, mode: ConvolutionMode) -> Self {
        self.0.mode = mode;
        self
    }
    /// Sets `p` of p-norm pooling.
    pub fn pnorm(mut self, p: f64) -> Self {
        self.0.pnorm = p;
        self
    }
}

impl From<SubsamplingBuilder> for LayerConf {
    fn from(b: SubsamplingBuilder) -> LayerConf {
        LayerConf::Subsampling(b.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_dl4j() {
        assert_eq!(
            window(ConvolutionMode::Truncate, 28, 5, 1, 0, 1, "h"),
            Ok((24, 0, 0))
        );
        assert_eq!(
            window(ConvolutionMode::Truncate, 7, 3, 2, 0, 1, "h"),
            Ok((3, 0, 0))
        );
        assert_eq!(
            window(ConvolutionMode::Same, 7, 3, 2, 9, 1, "h"),
            Ok((4, 1, 1))
        );
        assert_eq!(
            window(ConvolutionMode::Same, 8, 3, 2, 0, 1, "h"),
            Ok((4, 0, 1))
        );
        assert_eq!(
            window(ConvolutionMode::Same, 5, 3, 1, 0, 2, "h"),
            Ok((5, 2, 2))
        );
        let e = window(ConvolutionMode::Strict, 8, 3, 2, 0, 1, "height").unwrap_err();
        assert!(e.contains("Strict requires") && e.contains("= 3.50"), "{e}");
        let e = window(ConvolutionMode::Truncate, 4, 7, 1, 1, 1, "width").unwrap_err();
        assert!(e.contains("larger than the padded input"), "{e}");
    }
}
