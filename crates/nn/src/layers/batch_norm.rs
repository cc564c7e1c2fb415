//! Batch normalization over rows (`[batch, n]`, statistics per feature) or images
//! (`[batch, channels, height, width]`, statistics per channel over batch and space, as DL4J).
//! Training normalizes with the batch's mean and (biased) variance and updates running
//! averages; inference uses the running averages. The batch statistics backward needs (mean
//! and 1/std) are the layer's forward cache, a `[2, n]` `FfCache` array; backward's sums are
//! `BpWorkingMem`. The running averages are the layer's state, saved with the model.

use dl4rs_array::{ArrayView, ArrayViewMut, AsViewMut, DataType, NdArray};

use super::{
    ACT, Epsilon, Forward, GRAD, Layer, LayerInfo, LayerInput, ParamSpec, Saved, StepContext,
};
use crate::error::NnError;
use crate::input_type::InputType;
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// Batch normalization: `y = gamma * (x - mean) / sqrt(var + eps) + beta`.
pub struct BatchNormLayer<T: DataType> {
    info: LayerInfo,
    /// Features (rows) or channels (images).
    n: usize,
    /// Positions per channel: 1 for rows, `height * width` for images.
    hw: usize,
    eps: f64,
    decay: f64,
    running_mean: Vec<T>,
    running_var: Vec<T>,
}

impl<T: DataType> BatchNormLayer<T> {
    /// Over inputs of `input` (rows or images), variance offset `eps`, running-average
    /// `decay`.
    pub fn new(
        name: Option<String>,
        input: InputType,
        eps: f64,
        decay: f64,
    ) -> Result<Self, NnError> {
        let (n, hw) = match input {
            InputType::Convolutional {
                channels,
                height,
                width,
            } => (channels, height * width),
            InputType::FeedForward { .. } | InputType::ConvolutionalFlat { .. } => {
                (input.flat_size(), 1)
            }
            other => {
                return Err(NnError::config(format!(
                    "BatchNormalization normalizes rows or images, not {other}"
                )));
            }
        };
        Ok(BatchNormLayer {
            info: LayerInfo::new("BatchNormalization", input, input)
                .named(name)
                .with_params(vec![
                    ParamSpec::bias("gamma", &[n]),
                    ParamSpec::bias("beta", &[n]),
                ]),
            n,
            hw,
            eps,
            decay,
            running_mean: vec![T::ZERO; n],
            running_var: vec![T::ONE; n],
        })
    }
}

fn contiguous<'a, T: DataType>(r: &'a dl4rs_array::ArrayRead<'_, T>) -> Result<&'a [T], NnError> {
    r.as_slice()
        .ok_or_else(|| NnError::Input("batch norm needs contiguous arrays".into()))
}

fn contiguous_mut<'a, T: DataType>(
    w: &'a mut dl4rs_array::ArrayWrite<'_, T>,
) -> Result<&'a mut [T], NnError> {
    w.as_slice_mut()
        .ok_or_else(|| NnError::Input("batch norm needs contiguous arrays".into()))
}

impl<T: DataType> Layer<T> for BatchNormLayer<T> {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, params: &mut [T], _seed: u64) {
        params[..self.n].fill(T::ONE);
        params[self.n..].fill(T::ZERO);
    }

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        let batch = input.activations.shape()[0];
        let (n, hw) = (self.n, self.hw);
        let xr = input.activations.read()?;
        let x = contiguous(&xr)?;
        let pr = params.read()?;
        let p = contiguous(&pr)?;
        let (gamma, beta) = p.split_at(n);
        let eps = T::from_f64(self.eps);
        // Row 0: mean; row 1: 1 / std. Kept for backward in training, scratch at inference.
        let ty = if ctx.training {
            ArrayType::FfCache
        } else {
            ArrayType::FfWorkingMem
        };
        let mut stats = mgr.create_uninitialized::<T>(ty, &[2, n])?;
        {
            let mut sw = stats.write()?;
            let (mean, inv_std) = contiguous_mut(&mut sw)?.split_at_mut(n);
            if ctx.training {
                let inv_b = T::ONE / T::from_f64((batch * hw).max(1) as f64);
                mean.fill(T::ZERO);
                for row in x.chunks_exact(n * hw) {
                    for (j, m) in mean.iter_mut().enumerate() {
                        for &v in &row[j * hw..(j + 1) * hw] {
                            *m += v;
                        }
                    }
                }
                for m in mean.iter_mut() {
                    *m *= inv_b;
                }
                // Two-pass variance: numerically safer than E[x²] - E[x]².
                inv_std.fill(T::ZERO);
                for row in x.chunks_exact(n * hw) {
                    for (j, (s, &m)) in inv_std.iter_mut().zip(mean.iter()).enumerate() {
                        for &v in &row[j * hw..(j + 1) * hw] {
                            *s += (v - m) * (v - m);
                        }
                    }
                }
                let decay = T::from_f64(self.decay);
                for j in 0..n {
                    let var = inv_std[j] * inv_b;
                    inv_std[j] = T::ONE / (var + eps).sqrt();
                    self.running_mean[j] =
                        decay * self.running_mean[j] + (T::ONE - decay) * mean[j];
                    self.running_var[j] = decay * self.running_var[j] + (T::ONE - decay) * var;
                }
            } else {
                for j in 0..n {
                    mean[j] = self.running_mean[j];
                    inv_std[j] = T::ONE / (self.running_var[j] + eps).sqrt();
                }
            }
        }
        let mut out = mgr.create_uninitialized::<T>(ACT, input.activations.shape())?;
        {
            let sr = stats.read()?;
            let (mean, inv_std) = contiguous(&sr)?.split_at(n);
            let mut ow = out.write()?;
            let o = contiguous_mut(&mut ow)?;
            for (orow, xrow) in o.chunks_exact_mut(n * hw).zip(x.chunks_exact(n * hw)) {
                for j in 0..n {
                    for k in j * hw..(j + 1) * hw {
                        let xhat = (xrow[k] - mean[j]) * inv_std[j];
                        orow[k] = gamma[j] * xhat + beta[j];
                    }
                }
            }
        }
        let cache = if ctx.training { Some(stats) } else { None };
        Ok(Forward::new(out).with_cache(cache))
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
        let stats = saved.cache.ok_or_else(|| {
            NnError::Input(
                "BatchNormalization backward needs the batch statistics of a training forward \
                 pass"
                    .into(),
            )
        })?;
        let batch = saved.input.shape()[0];
        let (n, hw) = (self.n, self.hw);
        let (xr, dyr, pr, sr) = (
            saved.input.read()?,
            eps.read()?,
            params.read()?,
            stats.read()?,
        );
        let (x, dy, p) = (contiguous(&xr)?, contiguous(&dyr)?, contiguous(&pr)?);
        let (mean, inv_std) = contiguous(&sr)?.split_at(n);
        let gamma = &p[..n];
        let mut sums = mgr.create::<T>(ArrayType::BpWorkingMem, &[2, n])?;
        let mut sw = sums.write()?;
        let (sum_dy, sum_dy_xhat) = contiguous_mut(&mut sw)?.split_at_mut(n);
        for (xrow, dyrow) in x.chunks_exact(n * hw).zip(dy.chunks_exact(n * hw)) {
            for j in 0..n {
                for k in j * hw..(j + 1) * hw {
                    let xhat = (xrow[k] - mean[j]) * inv_std[j];
                    sum_dy[j] += dyrow[k];
                    sum_dy_xhat[j] += dyrow[k] * xhat;
                }
            }
        }
        {
            let mut g = grads.view_mut();
            let mut gw = g.write()?;
            let gs = contiguous_mut(&mut gw)?;
            gs[..n].copy_from_slice(sum_dy_xhat);
            gs[n..].copy_from_slice(sum_dy);
        }
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        let mut dx = mgr.create_uninitialized::<T>(GRAD, saved.input.shape())?;
        {
            let bf = T::from_f64((batch * hw) as f64);
            let inv_b = T::ONE / bf;
            let mut dw = dx.write()?;
            let d = contiguous_mut(&mut dw)?;
            for ((drow, xrow), dyrow) in d
                .chunks_exact_mut(n * hw)
                .zip(x.chunks_exact(n * hw))
                .zip(dy.chunks_exact(n * hw))
            {
                for j in 0..n {
                    for k in j * hw..(j + 1) * hw {
                        let xhat = (xrow[k] - mean[j]) * inv_std[j];
                        drow[k] = gamma[j]
                            * inv_std[j]
                            * inv_b
                            * (bf * dyrow[k] - sum_dy[j] - xhat * sum_dy_xhat[j]);
                    }
                }
            }
        }
        Ok(Some(dx))
    }

    fn state(&self) -> Vec<(&'static str, Vec<T>)> {
        vec![
            ("running_mean", self.running_mean.clone()),
            ("running_var", self.running_var.clone()),
        ]
    }

    fn set_state(&mut self, key: &str, values: &[T]) -> Result<(), NnError> {
        let target = match key {
            "running_mean" => &mut self.running_mean,
            "running_var" => &mut self.running_var,
            other => {
                return Err(NnError::Input(format!(
                    "BatchNormalization: no state named {other:?}"
                )));
            }
        };
        if values.len() != target.len() {
            return Err(NnError::Input(format!(
                "BatchNormalization {key}: expected {} values, found {}",
                target.len(),
                values.len()
            )));
        }
        target.copy_from_slice(values);
        Ok(())
    }
}
