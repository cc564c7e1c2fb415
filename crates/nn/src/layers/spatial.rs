//! Layers that move pixels without arithmetic on them: zero padding (DL4J's
//! `ZeroPaddingLayer`), cropping (`Cropping2D`) and nearest-neighbour upsampling
//! (`Upsampling2D`). Padding and cropping are each other's backward.

use dl4rs_array::{ArrayView, ArrayViewMut, AsViewMut, DataType, NdArray};

use super::{ACT, Epsilon, Forward, GRAD, Layer, LayerInfo, LayerInput, Saved, StepContext};
use crate::conf::{CroppingConf, UpsamplingConf, ZeroPaddingConf};
use crate::error::NnError;
use crate::input_type::InputType;
use crate::workspace_mgr::LayerWorkspaceMgr;

#[derive(Debug, Clone, Copy)]
enum Op {
    /// `[top, bottom, left, right]` added.
    Pad([usize; 4]),
    /// `[top, bottom, left, right]` removed.
    Crop([usize; 4]),
    /// `[height, width]` repeats.
    Upsample([usize; 2]),
}

/// Zero padding, cropping or upsampling of images.
pub struct SpatialLayer {
    info: LayerInfo,
    op: Op,
}

impl SpatialLayer {
    fn new(
        kind: &'static str,
        name: Option<String>,
        input: &InputType,
        out: InputType,
        op: Op,
    ) -> Self {
        SpatialLayer {
            info: LayerInfo::new(kind, *input, out).named(name),
            op,
        }
    }

    /// Zero padding over inputs of `input`.
    pub fn zero_padding(conf: &ZeroPaddingConf, input: &InputType) -> Result<Self, NnError> {
        let out = conf.infer(input, "ZeroPaddingLayer")?;
        Ok(Self::new(
            "ZeroPaddingLayer",
            conf.name.clone(),
            input,
            out,
            Op::Pad(conf.padding),
        ))
    }

    /// Cropping over inputs of `input`.
    pub fn cropping(conf: &CroppingConf, input: &InputType) -> Result<Self, NnError> {
        let out = conf.infer(input, "Cropping2D")?;
        Ok(Self::new(
            "Cropping2D",
            conf.name.clone(),
            input,
            out,
            Op::Crop(conf.cropping),
        ))
    }

    /// Upsampling over inputs of `input`.
    pub fn upsampling(conf: &UpsamplingConf, input: &InputType) -> Result<Self, NnError> {
        let out = conf.infer(input, "Upsampling2D")?;
        Ok(Self::new(
            "Upsampling2D",
            conf.name.clone(),
            input,
            out,
            Op::Upsample(conf.size),
        ))
    }
}

/// The interior `[top, bottom, left, right]` border of an NCHW view.
fn interior<'a, T: DataType>(
    v: ArrayView<'a, T>,
    b: [usize; 4],
) -> Result<ArrayView<'a, T>, NnError> {
    let (h, w) = (v.shape()[2], v.shape()[3]);
    Ok(v.slice_axis(2, b[0], h - b[1], 1)?
        .slice_axis(3, b[2], w - b[3], 1)?)
}

fn interior_mut<'a, T: DataType>(
    v: ArrayViewMut<'a, T>,
    b: [usize; 4],
) -> Result<ArrayViewMut<'a, T>, NnError> {
    let (h, w) = (v.shape()[2], v.shape()[3]);
    Ok(v.slice_axis(2, b[0], h - b[1], 1)?
        .slice_axis(3, b[2], w - b[3], 1)?)
}

/// `big`'s interior = `small` (the rest zero), as array type `ty`.
fn pad<T: DataType>(
    small: &ArrayView<'_, T>,
    shape: &[usize],
    border: [usize; 4],
    ty: crate::workspace_mgr::ArrayType,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    let mut big = mgr.create::<T>(ty, shape)?;
    interior_mut(big.view_mut(), border)?.assign(small)?;
    Ok(big)
}

fn padded_shape(x: &[usize], b: [usize; 4]) -> [usize; 4] {
    [x[0], x[1], x[2] + b[0] + b[1], x[3] + b[2] + b[3]]
}

fn cropped_shape(x: &[usize], b: [usize; 4]) -> [usize; 4] {
    [x[0], x[1], x[2] - b[0] - b[1], x[3] - b[2] - b[3]]
}

impl<T: DataType> Layer<T> for SpatialLayer {
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
        let out = match self.op {
            Op::Pad(b) => pad(&x, &padded_shape(x.shape(), b), b, ACT, mgr)?,
            Op::Crop(b) => mgr.dup(ACT, &interior(x, b)?)?,
            Op::Upsample([sh, sw]) => {
                let [n, c, h, w] = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
                let mut out = mgr.create_uninitialized::<T>(ACT, &[n, c, h * sh, w * sw])?;
                {
                    let xr = x.read()?;
                    let xs = xr.as_slice().ok_or_else(|| {
                        NnError::Input("Upsampling2D needs contiguous input".into())
                    })?;
                    let mut ow = out.write()?;
                    let o = ow.as_slice_mut().unwrap_or_default();
                    let (oh, owd) = (h * sh, w * sw);
                    for (plane, dst) in xs.chunks_exact(h * w).zip(o.chunks_exact_mut(oh * owd)) {
                        for y in 0..oh {
                            for xx in 0..owd {
                                dst[y * owd + xx] = plane[(y / sh) * w + xx / sw];
                            }
                        }
                    }
                }
                out
            }
        };
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
        let shape = saved.input.shape();
        let dx = match self.op {
            Op::Pad(b) => mgr.dup(GRAD, &interior(eps, b)?)?,
            Op::Crop(b) => {
                debug_assert_eq!(cropped_shape(shape, b)[..], eps.shape()[..]);
                pad(&eps, shape, b, GRAD, mgr)?
            }
            Op::Upsample([sh, sw]) => {
                let [h, w] = [shape[2], shape[3]];
                let mut dx = mgr.create::<T>(GRAD, shape)?;
                {
                    let er = eps.read()?;
                    let es = er.as_slice().ok_or_else(|| {
                        NnError::Input("Upsampling2D needs a contiguous gradient".into())
                    })?;
                    let mut dw = dx.write()?;
                    let d = dw.as_slice_mut().unwrap_or_default();
                    let (oh, owd) = (h * sh, w * sw);
                    for (src, plane) in es.chunks_exact(oh * owd).zip(d.chunks_exact_mut(h * w)) {
                        for y in 0..oh {
                            for xx in 0..owd {
                                plane[(y / sh) * w + xx / sw] += src[y * owd + xx];
                            }
                        }
                    }
                }
                dx
            }
        };
        Ok(Some(dx))
    }
}
