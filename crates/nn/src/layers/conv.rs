//! Convolution layers over NCHW images: the 2-D convolution (DL4J's `ConvolutionLayer`) and the
//! depthwise convolution (`DepthwiseConvolution2D`), as im2col + gemm through `crates/array`.
//! The dense convolution's forward is one product per image straight into its NCHW output,
//! with the image's columns packed for the product (no column matrix, images over the
//! threads, `ops::conv2d_forward_into`); backward gathers `dz` of a chunk of images into rows
//! for the weight gradient (`ops::conv2d_weight_grad_into`) and computes the input gradient
//! per image (`ops::conv2d_input_grad_into`). All scratch is working memory or a cycle of
//! the loop working memory, so the largest buffers of a convolutional network come and go
//! with each layer call and never touch the heap. The depthwise convolution runs one product
//! per image and channel, its column matrix in `FfWorkingMem` / `BpWorkingMem`.

use dl4rs_array::ops::{self, Conv2dGeometry, Reduction};
use dl4rs_array::{ArrayView, ArrayViewMut, AsView, AsViewMut, DataType, NdArray};

use super::{
    ACT, Epsilon, Forward, GRAD, Layer, LayerInfo, LayerInput, ParamSpec, Saved, StepContext,
};
use crate::activation::Activation;
use crate::conf::{ConvolutionConf, DepthwiseConvolutionConf};
use crate::error::NnError;
use crate::input_type::InputType;
use crate::weight_init::WeightInit;
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// A convolution, dense over channels or depthwise.
pub struct ConvolutionLayer {
    info: LayerInfo,
    c_in: usize,
    c_out: usize,
    /// Filters per input channel for a depthwise convolution; `None`: dense over channels.
    depthwise: Option<usize>,
    /// One image (dense) or one channel plane (depthwise).
    geometry: Conv2dGeometry,
    out_hw: [usize; 2],
    has_bias: bool,
    activation: Activation,
    weight_init: WeightInit,
    bias_init: f64,
}

/// The kernels' geometry of a window over `channels` planes of size `input`.
pub(super) fn geometry(
    channels: usize,
    input: [usize; 2],
    w: &crate::conf::conv::Window,
) -> Conv2dGeometry {
    Conv2dGeometry {
        channels,
        height: input[0],
        width: input[1],
        kernel_h: w.kernel[0],
        kernel_w: w.kernel[1],
        stride_h: w.stride[0],
        stride_w: w.stride[1],
        pad_h: w.pad[0],
        pad_h_end: w.pad[1],
        pad_w: w.pad[2],
        pad_w_end: w.pad[3],
        dilation_h: w.dilation[0],
        dilation_w: w.dilation[1],
    }
}

fn no_softmax(activation: Activation, kind: &str) -> Result<(), NnError> {
    if activation == Activation::Softmax {
        return Err(NnError::config(format!(
            "{kind}: softmax over images is not defined here; flatten first (a dense or output \
             layer after it gets a CnnToFeedForward preprocessor) and apply softmax there"
        )));
    }
    Ok(())
}

impl ConvolutionLayer {
    /// A 2-D convolution over inputs of `input` (convolutional).
    pub fn new(conf: &ConvolutionConf, input: &InputType) -> Result<Self, NnError> {
        let label = "ConvolutionLayer";
        let (c_in, window) = conf.window(input, label)?;
        let activation = conf.activation.unwrap_or_default();
        no_softmax(activation, label)?;
        let [kh, kw] = conf.kernel;
        let mut params = vec![ParamSpec::weight("W", &[conf.n_out, c_in, kh, kw])];
        if conf.has_bias {
            params.push(ParamSpec::bias("b", &[conf.n_out]));
        }
        let out = InputType::convolutional(window.output[0], window.output[1], conf.n_out);
        Ok(ConvolutionLayer {
            info: LayerInfo::new("ConvolutionLayer", *input, out)
                .named(conf.name.clone())
                .with_params(params),
            c_in,
            c_out: conf.n_out,
            depthwise: None,
            geometry: geometry(c_in, window.input, &window),
            out_hw: window.output,
            has_bias: conf.has_bias,
            activation,
            weight_init: conf.weight_init.unwrap_or_default(),
            bias_init: conf.bias_init,
        })
    }

    /// A depthwise 2-D convolution over inputs of `input` (convolutional).
    pub fn depthwise(conf: &DepthwiseConvolutionConf, input: &InputType) -> Result<Self, NnError> {
        let label = "DepthwiseConvolution2D";
        let (c_in, window) = conf.window(input, label)?;
        let activation = conf.activation.unwrap_or_default();
        no_softmax(activation, label)?;
        let m = conf.depth_multiplier;
        let [kh, kw] = conf.kernel;
        let mut params = vec![ParamSpec::weight("W", &[c_in, m, kh, kw])];
        if conf.has_bias {
            params.push(ParamSpec::bias("b", &[c_in * m]));
        }
        let out = InputType::convolutional(window.output[0], window.output[1], c_in * m);
        Ok(ConvolutionLayer {
            info: LayerInfo::new("DepthwiseConvolution2D", *input, out)
                .named(conf.name.clone())
                .with_params(params),
            c_in,
            c_out: c_in * m,
            depthwise: Some(m),
            geometry: geometry(1, window.input, &window),
            out_hw: window.output,
            has_bias: conf.has_bias,
            activation,
            weight_init: conf.weight_init.unwrap_or_default(),
            bias_init: conf.bias_init,
        })
    }

    fn taps(&self) -> usize {
        self.geometry.channels * self.geometry.kernel_h * self.geometry.kernel_w
    }

    fn n_weights(&self) -> usize {
        self.c_out * self.taps()
    }

    fn ohw(&self) -> usize {
        self.out_hw[0] * self.out_hw[1]
    }

    /// The weights as `[c_out, taps]` (dense) or `[c_in * m, kh * kw]` (depthwise: rows of
    /// channel `c` are `c*m..(c+1)*m`), and the bias.
    #[allow(clippy::type_complexity)]
    fn weights<'a, T: DataType>(
        &self,
        params: &ArrayView<'a, T>,
    ) -> Result<(ArrayView<'a, T>, Option<ArrayView<'a, T>>), NnError> {
        let nw = self.n_weights();
        let w = params
            .slice_axis(0, 0, nw, 1)?
            .reshape(&[self.c_out, self.taps()])?;
        let b = if self.has_bias {
            Some(params.slice_axis(0, nw, nw + self.c_out, 1)?)
        } else {
            None
        };
        Ok((w, b))
    }

    /// The channel groups a gemm covers: all channels at once (dense) or one at a time.
    fn groups(&self) -> usize {
        if self.depthwise.is_some() {
            self.c_in
        } else {
            1
        }
    }

    fn group_rows(&self) -> usize {
        self.c_out / self.groups()
    }
}

/// Columns per weight-gradient product when the backward batches images: enough for the
/// product to run at the gemm's speed (a few hundred at least)...
const CHUNK_COLUMNS: usize = 4096;

/// ...and few enough that the column matrix (`taps x columns`) stays in the L2 cache between
/// the im2col that writes it and the gemm that packs it: 512 KiB of f32. (The chunks also
/// fix the weight gradient's summation order, so they do not depend on the thread count.) Measured on LeNet's
/// conv2 (500 taps, `dl4rs bench conv`, 1 thread): 16 GFLOP/s with 4,096 columns (8 MiB of
/// columns), 24-25 with 131-524 columns (256 KiB - 1 MiB).
const CHUNK_ELEMS: usize = 1 << 17;

/// Images per weight-gradient product of a convolution with `taps` taps (channels x kernel
/// area) and `ohw` output positions, over a batch of `batch`: what the layer's backward
/// batches (public so that `dl4rs bench conv` times the same products).
pub fn weight_grad_chunk(taps: usize, ohw: usize, batch: usize) -> usize {
    let cols = CHUNK_COLUMNS.min(CHUNK_ELEMS / taps.max(1));
    (cols / ohw.max(1)).clamp(1, batch.max(1))
}

impl ConvolutionLayer {
    /// Images per batched product.
    fn chunk(&self, batch: usize) -> usize {
        weight_grad_chunk(self.taps(), self.ohw(), batch)
    }

    /// Activation (keeping the pre-activation for backward when its derivative needs it).
    fn finish_forward<T: DataType>(
        &self,
        mut out: NdArray<T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        let pre = if ctx.training && self.activation.needs_input_for_backprop() {
            Some(mgr.dup(ArrayType::FfCache, &out)?)
        } else {
            None
        };
        if let Some(u) = self.activation.unary::<T>()
            && u != ops::Unary::Identity
        {
            ops::unary_assign(u, &mut out)?;
        }
        Ok(Forward::new(out).with_cache(pre))
    }

    /// Dense convolution backward, several images per gemm.
    #[allow(clippy::too_many_arguments)]
    fn backward_chunks<T: DataType>(
        &self,
        x: &ArrayView<'_, T>,
        w: &ArrayView<'_, T>,
        dz: &ArrayView<'_, T>,
        grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError> {
        let (batch, ohw, oc) = (x.shape()[0], self.ohw(), self.c_out);
        let per = self.chunk(batch);
        let nw = self.n_weights();
        let loop_ty = ArrayType::RnnBpLoopWorkingMem;
        let mut dx = if ctx.need_input_gradient {
            Some(mgr.create_uninitialized::<T>(GRAD, x.shape())?)
        } else {
            None
        };
        for (k, start) in (0..batch).step_by(per).enumerate() {
            let n = per.min(batch - start);
            let _chunk = mgr.notify_scope_entered(loop_ty)?;
            let x_chunk = x.slice_axis(0, start, start + n, 1)?;
            // dz of these images as [oc, n * ohw].
            let mut dzc = mgr.create_uninitialized::<T>(loop_ty, &[oc, n * ohw])?;
            ops::to_channel_major_into(&dz.slice_axis(0, start, start + n, 1)?, &mut dzc)?;
            let first = k == 0;
            {
                // dW (+)= dz · colsᵀ, the columns packed straight for the product.
                let mut gw = grads
                    .view_mut()
                    .slice_axis(0, 0, nw, 1)?
                    .reshape(&[oc, self.taps()])?;
                let beta = if first { T::ZERO } else { T::ONE };
                ops::conv2d_weight_grad_into(&x_chunk, &self.geometry, &dzc, beta, &mut gw)?;
            }
            if self.has_bias {
                let mut gb = grads.view_mut().slice_axis(0, nw, nw + oc, 1)?;
                if first {
                    ops::reduce_axis_into(Reduction::Sum, &dzc, 1, &mut gb)?;
                } else {
                    let mut part = mgr.create_uninitialized::<T>(loop_ty, &[oc])?;
                    ops::reduce_axis_into(Reduction::Sum, &dzc, 1, &mut part)?;
                    ops::binary_assign(ops::BinaryOp::Add, &mut gb, &part)?;
                }
            }
        }
        if let Some(dx) = dx.as_mut() {
            // dx_j = col2im(Wᵀ · dz_j) per image, images over the threads; its scratch in a
            // cycle of the loop working memory.
            let _cycle = mgr.notify_scope_entered(loop_ty)?;
            let dz4 = dz.reshape(&[batch, oc, self.out_hw[0], self.out_hw[1]])?;
            ops::conv2d_input_grad_into(&dz4, &self.geometry, w, dx)?;
        }
        Ok(dx)
    }
}

/// Rows `g*rows..(g+1)*rows` of a `[n, cols]` view.
fn rows_of<'a, T: DataType>(
    v: ArrayView<'a, T>,
    g: usize,
    rows: usize,
) -> Result<ArrayView<'a, T>, NnError> {
    Ok(v.slice_axis(0, g * rows, (g + 1) * rows, 1)?)
}

impl<T: DataType> Layer<T> for ConvolutionLayer {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, params: &mut [T], seed: u64) {
        let k = self.geometry.kernel_h * self.geometry.kernel_w;
        let (fan_in, fan_out) = match self.depthwise {
            None => (self.c_in * k, self.c_out * k),
            Some(m) => (k, m * k),
        };
        let nw = self.n_weights();
        self.weight_init
            .fill(&mut params[..nw], fan_in, fan_out, seed);
        params[nw..].fill(T::from_f64(self.bias_init));
    }

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        let x = input.activations;
        let batch = x.shape()[0];
        let (w, bias) = self.weights(params)?;
        let (ohw, groups, rows) = (self.ohw(), self.groups(), self.group_rows());
        let mut out = mgr
            .create_uninitialized::<T>(ACT, &[batch, self.c_out, self.out_hw[0], self.out_hw[1]])?;
        if groups == 1 {
            // One product per image straight into its NCHW output (see the kernels'
            // `conv2d_forward`): no column matrix, no scatter, images over the threads.
            ops::conv2d_forward_into(&x, &self.geometry, &w, bias.as_ref(), &mut out)?;
            return self.finish_forward(out, ctx, mgr);
        }
        let mut cols =
            mgr.create_uninitialized::<T>(ArrayType::FfWorkingMem, &[self.taps(), ohw])?;
        let bias_cols = bias.map(|b| b.reshape(&[self.c_out, 1])).transpose()?;
        for i in 0..batch {
            // One loop cycle per image: the gemm's packing scratch is reused, not stacked up
            // over the batch.
            let _image_cycle = mgr.notify_scope_entered(ArrayType::RnnFfLoopWorkingMem)?;
            let image = x.index_axis(0, i)?;
            for g in 0..groups {
                let plane = if groups == 1 {
                    image
                } else {
                    image.slice_axis(0, g, g + 1, 1)?
                };
                ops::im2col_into(&plane, &self.geometry, &mut cols)?;
                let mut out_g = out
                    .view_mut()
                    .index_axis(0, i)?
                    .reshape(&[self.c_out, ohw])?
                    .slice_axis(0, g * rows, (g + 1) * rows, 1)?;
                let beta = match &bias_cols {
                    Some(b) => {
                        out_g.assign(&rows_of(*b, g, rows)?.broadcast(&[rows, ohw])?)?;
                        T::ONE
                    }
                    None => T::ZERO,
                };
                ops::gemm_into(T::ONE, &rows_of(w, g, rows)?, &cols, beta, &mut out_g)?;
            }
        }
        self.finish_forward(out, ctx, mgr)
    }

    fn backward(
        &self,
        saved: &Saved<'_, T>,
        epsilon: Epsilon<'_, T>,
        params: &ArrayView<'_, T>,
        grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError> {
        let eps = epsilon.gradient(self.info.kind)?;
        let x = saved.input;
        let batch = x.shape()[0];
        let (w, _) = self.weights(params)?;
        let (ohw, groups, rows) = (self.ohw(), self.groups(), self.group_rows());
        // dL/dz: the activation's derivative applied to the incoming gradient.
        let dz_owned = if self.activation == Activation::Identity {
            None
        } else {
            let mut dz = mgr.create_uninitialized::<T>(ArrayType::BpWorkingMem, eps.shape())?;
            self.activation
                .backprop(saved.cache.as_ref(), &saved.output, &eps, &mut dz)?;
            Some(dz)
        };
        let dz = match &dz_owned {
            Some(d) => d.view(),
            None => eps,
        };
        if groups == 1 {
            return self.backward_chunks(&x, &w, &dz, grads, ctx, mgr);
        }
        let mut cols =
            mgr.create_uninitialized::<T>(ArrayType::BpWorkingMem, &[self.taps(), ohw])?;
        let mut dcols = if ctx.need_input_gradient {
            Some(mgr.create_uninitialized::<T>(ArrayType::BpWorkingMem, &[self.taps(), ohw])?)
        } else {
            None
        };
        let mut dx = if ctx.need_input_gradient {
            Some(mgr.create_uninitialized::<T>(GRAD, x.shape())?)
        } else {
            None
        };
        let nw = self.n_weights();
        for i in 0..batch {
            let _image_cycle = mgr.notify_scope_entered(ArrayType::RnnBpLoopWorkingMem)?;
            let image = x.index_axis(0, i)?;
            let dz_i = dz.index_axis(0, i)?.reshape(&[self.c_out, ohw])?;
            for g in 0..groups {
                let plane = if groups == 1 {
                    image
                } else {
                    image.slice_axis(0, g, g + 1, 1)?
                };
                ops::im2col_into(&plane, &self.geometry, &mut cols)?;
                let dz_g = rows_of(dz_i, g, rows)?;
                {
                    let mut gw = grads
                        .view_mut()
                        .slice_axis(0, 0, nw, 1)?
                        .reshape(&[self.c_out, self.taps()])?
                        .slice_axis(0, g * rows, (g + 1) * rows, 1)?;
                    let beta = if i == 0 { T::ZERO } else { T::ONE };
                    ops::gemm_into(T::ONE, &dz_g, &cols.view().t(), beta, &mut gw)?;
                }
                if let (Some(dcols), Some(dx)) = (dcols.as_mut(), dx.as_mut()) {
                    ops::gemm_into(T::ONE, &rows_of(w, g, rows)?.t(), &dz_g, T::ZERO, dcols)?;
                    let mut dx_i = dx.view_mut().index_axis(0, i)?;
                    if groups == 1 {
                        ops::col2im_into(dcols, &self.geometry, &mut dx_i)?;
                    } else {
                        let [h, wd] = [self.geometry.height, self.geometry.width];
                        let mut plane = dx_i.slice_axis(0, g, g + 1, 1)?.reshape(&[1, h, wd])?;
                        ops::col2im_into(dcols, &self.geometry, &mut plane)?;
                    }
                }
            }
        }
        if self.has_bias {
            // db = Σ over examples and positions: [b, c, hw] -> [b, c] -> [c].
            let per_example = dz.reshape(&[batch, self.c_out, ohw])?;
            let mut sums =
                mgr.create_uninitialized::<T>(ArrayType::BpWorkingMem, &[batch, self.c_out])?;
            ops::reduce_axis_into(Reduction::Sum, &per_example, 2, &mut sums)?;
            let mut gb = grads.view_mut().slice_axis(0, nw, nw + self.c_out, 1)?;
            ops::reduce_axis_into(Reduction::Sum, &sums, 0, &mut gb)?;
        }
        Ok(dx)
    }
}
