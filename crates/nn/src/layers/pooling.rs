//! Pooling: over windows of an image (DL4J's `SubsamplingLayer`: max, average, p-norm) and over
//! all of space or time (`GlobalPoolingLayer`: max, average, sum, p-norm; over time only the
//! steps the mask keeps). Backward recomputes what it needs from the saved input and output
//! (the max position, the norm) instead of storing indices. Window max, average and sum run
//! in the kernels (`ops::pool2d_into`, a row of outputs per tap); p-norm here.

use dl4rs_array::ops::{self, Conv2dGeometry, PoolOp};
use dl4rs_array::{ArrayView, ArrayViewMut, DataType, NdArray};

use super::{
    ACT, Epsilon, Forward, GRAD, Layer, LayerInfo, LayerInput, MaskOut, Saved, StepContext,
};
use crate::conf::conv::Window;
use crate::conf::{GlobalPoolingConf, PoolingType, SubsamplingConf};
use crate::error::NnError;
use crate::input_type::InputType;
use crate::workspace_mgr::LayerWorkspaceMgr;

/// `x^p` (through f64: the element types have no power function of their own).
fn pw<T: DataType>(x: T, p: T) -> T {
    T::from_f64(x.to_f64().powf(p.to_f64()))
}

fn slice<'a, T: DataType>(r: &'a dl4rs_array::ArrayRead<'_, T>) -> Result<&'a [T], NnError> {
    r.as_slice()
        .ok_or_else(|| NnError::Input("pooling needs contiguous arrays".into()))
}

fn slice_mut<'a, T: DataType>(
    w: &'a mut dl4rs_array::ArrayWrite<'_, T>,
) -> Result<&'a mut [T], NnError> {
    w.as_slice_mut()
        .ok_or_else(|| NnError::Input("pooling needs contiguous arrays".into()))
}

/// Pooling over windows.
pub struct SubsamplingLayer {
    info: LayerInfo,
    pooling: PoolingType,
    p: f64,
    channels: usize,
    window: Window,
    /// The window as the kernels' geometry (one image), when its output size agrees.
    geometry: Option<Conv2dGeometry>,
}

impl SubsamplingLayer {
    /// Over inputs of `input` (convolutional).
    pub fn new(conf: &SubsamplingConf, input: &InputType) -> Result<Self, NnError> {
        let (channels, window) = conf.window(input, "SubsamplingLayer")?;
        let out = InputType::convolutional(window.output[0], window.output[1], channels);
        let g = super::conv::geometry(channels, window.input, &window);
        let geometry =
            (g.output_size().ok() == Some((window.output[0], window.output[1]))).then_some(g);
        Ok(SubsamplingLayer {
            info: LayerInfo::new("SubsamplingLayer", *input, out).named(conf.name.clone()),
            pooling: conf.pooling,
            p: conf.pnorm,
            channels,
            window,
            geometry,
        })
    }

    /// The kernels' operation and geometry, for every pooling type but p-norm.
    fn kernel_op(&self) -> Option<(PoolOp, &Conv2dGeometry)> {
        let op = match self.pooling {
            PoolingType::Max => PoolOp::Max,
            PoolingType::Avg => PoolOp::Avg,
            PoolingType::Sum => PoolOp::Sum,
            PoolingType::Pnorm => return None,
        };
        self.geometry.as_ref().map(|g| (op, g))
    }

    /// Calls `f(window index, input index)` for every valid input position of output `(oy, ox)`.
    fn each(&self, oy: usize, ox: usize, mut f: impl FnMut(usize)) {
        let w = &self.window;
        let [h, wd] = w.input;
        for ki in 0..w.kernel[0] {
            let y = (oy * w.stride[0] + ki * w.dilation[0]) as isize - w.pad[0] as isize;
            if y < 0 || y as usize >= h {
                continue;
            }
            for kj in 0..w.kernel[1] {
                let x = (ox * w.stride[1] + kj * w.dilation[1]) as isize - w.pad[2] as isize;
                if x >= 0 && (x as usize) < wd {
                    f(y as usize * wd + x as usize);
                }
            }
        }
    }
}

impl<T: DataType> Layer<T> for SubsamplingLayer {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, _params: &mut [T], _seed: u64) {}

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        _params: &ArrayView<'_, T>,
        _ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        let x = input.activations;
        let batch = x.shape()[0];
        let [oh, ow] = self.window.output;
        let [h, w] = self.window.input;
        let mut out = mgr.create_uninitialized::<T>(ACT, &[batch, self.channels, oh, ow])?;
        if let Some((op, g)) = self.kernel_op() {
            ops::pool2d_into(op, &x, g, &mut out)?;
            return Ok(Forward::new(out));
        }
        let size = T::from_f64((self.window.kernel[0] * self.window.kernel[1]) as f64);
        let p = T::from_f64(self.p);
        {
            let xr = x.read()?;
            let xs = slice(&xr)?;
            let mut ow_ = out.write()?;
            let o = slice_mut(&mut ow_)?;
            for (plane, dst) in xs.chunks_exact(h * w).zip(o.chunks_exact_mut(oh * ow)) {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let v = match self.pooling {
                            PoolingType::Max => {
                                let mut m = T::NEG_INFINITY;
                                self.each(oy, ox, |i| {
                                    if plane[i] > m {
                                        m = plane[i];
                                    }
                                });
                                if m == T::NEG_INFINITY { T::ZERO } else { m }
                            }
                            PoolingType::Avg | PoolingType::Sum => {
                                let mut s = T::ZERO;
                                self.each(oy, ox, |i| s += plane[i]);
                                if self.pooling == PoolingType::Avg {
                                    s / size
                                } else {
                                    s
                                }
                            }
                            PoolingType::Pnorm => {
                                let mut s = T::ZERO;
                                self.each(oy, ox, |i| s += pw(plane[i].abs(), p));
                                pw(s, T::ONE / p)
                            }
                        };
                        dst[oy * ow + ox] = v;
                    }
                }
            }
        }
        Ok(Forward::new(out))
    }

    fn backward(
        &self,
        saved: &Saved<'_, T>,
        epsilon: Epsilon<'_, T>,
        _params: &ArrayView<'_, T>,
        _grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError> {
        let eps = epsilon.gradient(self.info.kind)?;
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        if let Some((op, g)) = self.kernel_op() {
            let mut dx = mgr.create_uninitialized::<T>(GRAD, saved.input.shape())?;
            ops::pool2d_backward_into(op, &saved.input, &saved.output, &eps, g, &mut dx)?;
            return Ok(Some(dx));
        }
        let [oh, ow] = self.window.output;
        let [h, w] = self.window.input;
        let mut dx = mgr.create::<T>(GRAD, saved.input.shape())?;
        let size = T::from_f64((self.window.kernel[0] * self.window.kernel[1]) as f64);
        let p = T::from_f64(self.p);
        {
            let (xr, yr, er) = (saved.input.read()?, saved.output.read()?, eps.read()?);
            let (xs, ys, es) = (slice(&xr)?, slice(&yr)?, slice(&er)?);
            let mut dw = dx.write()?;
            let d = slice_mut(&mut dw)?;
            for (((plane, dplane), yplane), eplane) in xs
                .chunks_exact(h * w)
                .zip(d.chunks_exact_mut(h * w))
                .zip(ys.chunks_exact(oh * ow))
                .zip(es.chunks_exact(oh * ow))
            {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (y, e) = (yplane[oy * ow + ox], eplane[oy * ow + ox]);
                        match self.pooling {
                            PoolingType::Max => {
                                let mut first = None;
                                self.each(oy, ox, |i| {
                                    if first.is_none() && plane[i] == y {
                                        first = Some(i);
                                    }
                                });
                                if let Some(i) = first {
                                    dplane[i] += e;
                                }
                            }
                            PoolingType::Avg => self.each(oy, ox, |i| dplane[i] += e / size),
                            PoolingType::Sum => self.each(oy, ox, |i| dplane[i] += e),
                            PoolingType::Pnorm => {
                                if y > T::ZERO {
                                    let scale = e / pw(y, p - T::ONE);
                                    self.each(oy, ox, |i| {
                                        let v = plane[i];
                                        let sign = if v < T::ZERO { -T::ONE } else { T::ONE };
                                        dplane[i] += scale * sign * pw(v.abs(), p - T::ONE);
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(Some(dx))
    }
}

/// Pooling over all of space (images) or the unmasked time steps (sequences).
pub struct GlobalPoolingLayer {
    info: LayerInfo,
    pooling: PoolingType,
    p: f64,
    features: usize,
    /// Positions pooled per example (h * w), or `None` for sequences (time varies).
    positions: Option<usize>,
}

impl GlobalPoolingLayer {
    /// Over inputs of `input` (convolutional or recurrent).
    pub fn new(conf: &GlobalPoolingConf, input: &InputType) -> Result<Self, NnError> {
        let (features, positions) = match *input {
            InputType::Convolutional {
                channels,
                height,
                width,
            } => (channels, Some(height * width)),
            InputType::Recurrent { size, .. } => (size, None),
            other => {
                return Err(NnError::config(format!(
                    "GlobalPoolingLayer pools convolutional or recurrent input, not {other}"
                )));
            }
        };
        Ok(GlobalPoolingLayer {
            info: LayerInfo::new(
                "GlobalPoolingLayer",
                *input,
                InputType::feed_forward(features),
            )
            .named(conf.name.clone()),
            pooling: conf.pooling,
            p: conf.pnorm,
            features,
            positions,
        })
    }

    /// `(batch, positions)` of an input and the mask as one weight per (example, position).
    fn dims<'a, T: DataType>(
        &self,
        x: &ArrayView<'_, T>,
        mask: Option<&'a ArrayView<'a, T>>,
    ) -> Result<(usize, usize, Option<dl4rs_array::ArrayRead<'a, T>>), NnError> {
        let batch = x.shape()[0];
        let len = self.positions.unwrap_or_else(|| x.shape()[2]);
        let mask = match (mask, self.positions) {
            (Some(m), None) => {
                if m.shape().iter().product::<usize>() != batch * len {
                    return Err(NnError::Input(format!(
                        "GlobalPoolingLayer: the mask has shape {:?}; expected [{batch}, {len}] \
                         (one entry per example and time step)",
                        m.shape()
                    )));
                }
                Some(m.read()?)
            }
            _ => None,
        };
        Ok((batch, len, mask))
    }
}

impl<T: DataType> Layer<T> for GlobalPoolingLayer {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, _params: &mut [T], _seed: u64) {}

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        _params: &ArrayView<'_, T>,
        _ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        let x = input.activations;
        let (batch, len, mask) = self.dims(&x, input.mask.as_ref())?;
        let n = self.features;
        let mut out = mgr.create_uninitialized::<T>(ACT, &[batch, n])?;
        let p = T::from_f64(self.p);
        {
            let xr = x.read()?;
            let xs = slice(&xr)?;
            let ms = match &mask {
                Some(m) => Some(slice(m)?),
                None => None,
            };
            let mut w = out.write()?;
            let o = slice_mut(&mut w)?;
            for b in 0..batch {
                let keep = |t: usize| ms.is_none_or(|m| m[b * len + t] != T::ZERO);
                let count = (0..len).filter(|&t| keep(t)).count();
                for f in 0..n {
                    let row = &xs[(b * n + f) * len..(b * n + f + 1) * len];
                    let kept = row
                        .iter()
                        .enumerate()
                        .filter(|(t, _)| keep(*t))
                        .map(|(_, v)| *v);
                    o[b * n + f] = match self.pooling {
                        PoolingType::Max => kept
                            .fold(None, |m: Option<T>, v| {
                                Some(m.map_or(v, |m| if v > m { v } else { m }))
                            })
                            .unwrap_or(T::ZERO),
                        PoolingType::Sum => kept.fold(T::ZERO, |s, v| s + v),
                        PoolingType::Avg => {
                            let s = kept.fold(T::ZERO, |s, v| s + v);
                            if count == 0 {
                                T::ZERO
                            } else {
                                s / T::from_f64(count as f64)
                            }
                        }
                        PoolingType::Pnorm => {
                            let norm = kept.fold(T::ZERO, |s, v| s + pw(v.abs(), p));
                            pw(norm, T::ONE / p)
                        }
                    };
                }
            }
        }
        Ok(Forward {
            activations: out,
            cache: None,
            mask: MaskOut::Cleared,
        })
    }

    fn backward(
        &self,
        saved: &Saved<'_, T>,
        epsilon: Epsilon<'_, T>,
        _params: &ArrayView<'_, T>,
        _grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError> {
        let eps = epsilon.gradient(self.info.kind)?;
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        let x = saved.input;
        let (batch, len, mask) = self.dims(&x, saved.mask.as_ref())?;
        let n = self.features;
        let p = T::from_f64(self.p);
        let mut dx = mgr.create::<T>(GRAD, x.shape())?;
        {
            let (xr, yr, er) = (x.read()?, saved.output.read()?, eps.read()?);
            let (xs, ys, es) = (slice(&xr)?, slice(&yr)?, slice(&er)?);
            let ms = match &mask {
                Some(m) => Some(slice(m)?),
                None => None,
            };
            let mut w = dx.write()?;
            let d = slice_mut(&mut w)?;
            for b in 0..batch {
                let keep = |t: usize| ms.is_none_or(|m| m[b * len + t] != T::ZERO);
                let count = (0..len).filter(|&t| keep(t)).count();
                for f in 0..n {
                    let base = (b * n + f) * len;
                    let (y, e) = (ys[b * n + f], es[b * n + f]);
                    match self.pooling {
                        PoolingType::Max => {
                            if let Some(t) = (0..len).find(|&t| keep(t) && xs[base + t] == y) {
                                d[base + t] = e;
                            }
                        }
                        PoolingType::Sum | PoolingType::Avg => {
                            let g = if self.pooling == PoolingType::Avg && count > 0 {
                                e / T::from_f64(count as f64)
                            } else {
                                e
                            };
                            for t in (0..len).filter(|&t| keep(t)) {
                                d[base + t] = g;
                            }
                        }
                        PoolingType::Pnorm => {
                            if y > T::ZERO {
                                let scale = e / pw(y, p - T::ONE);
                                for t in (0..len).filter(|&t| keep(t)) {
                                    let v = xs[base + t];
                                    let sign = if v < T::ZERO { -T::ONE } else { T::ONE };
                                    d[base + t] = scale * sign * pw(v.abs(), p - T::ONE);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(Some(dx))
    }
}
