//! Batch normalization over `[batch, n]` inputs. Training normalizes with the batch's mean and
//! (biased) variance and updates running averages; inference uses the running averages. The
//! statistics live in buffers allocated once with the layer, so a step allocates nothing
//! outside the workspaces; the running averages are saved with the model as layer state.

use dl4rs_array::{ArrayView, ArrayViewMut, AsViewMut, DataType, NdArray};

use super::{ACT, Epsilon, GRAD, Layer, ParamSpec, StepContext, check_input, expect_gradient};
use crate::error::NnError;
use crate::workspace_mgr::LayerWorkspaceMgr;

/// Batch normalization: `y = gamma * (x - mean) / sqrt(var + eps) + beta`.
pub struct BatchNormLayer<T: DataType> {
    name: Option<String>,
    n: usize,
    eps: f64,
    decay: f64,
    running_mean: Vec<T>,
    running_var: Vec<T>,
    batch_mean: Vec<T>,
    batch_inv_std: Vec<T>,
    sum_dy: Vec<T>,
    sum_dy_xhat: Vec<T>,
}

impl<T: DataType> BatchNormLayer<T> {
    /// Width `n`, variance offset `eps`, running-average `decay`.
    pub fn new(name: Option<String>, n: usize, eps: f64, decay: f64) -> Self {
        BatchNormLayer {
            name,
            n,
            eps,
            decay,
            running_mean: vec![T::ZERO; n],
            running_var: vec![T::ONE; n],
            batch_mean: vec![T::ZERO; n],
            batch_inv_std: vec![T::ONE; n],
            sum_dy: vec![T::ZERO; n],
            sum_dy_xhat: vec![T::ZERO; n],
        }
    }
}

fn contiguous<'a, T: DataType>(r: &'a dl4rs_array::ArrayRead<'_, T>) -> Result<&'a [T], NnError> {
    r.as_slice()
        .ok_or_else(|| NnError::Input("batch norm needs contiguous arrays".into()))
}

impl<T: DataType> Layer<T> for BatchNormLayer<T> {
    fn kind(&self) -> &'static str {
        "BatchNormalization"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn n_in(&self) -> usize {
        self.n
    }
    fn n_out(&self) -> usize {
        self.n
    }
    fn param_specs(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec {
                key: "gamma",
                shape: vec![self.n],
                regularize: false,
            },
            ParamSpec {
                key: "beta",
                shape: vec![self.n],
                regularize: false,
            },
        ]
    }
    fn init_params(&self, params: &mut [T], _seed: u64) {
        params[..self.n].fill(T::ONE);
        params[self.n..].fill(T::ZERO);
    }

    fn activate(
        &mut self,
        input: &ArrayView<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<NdArray<T>, NnError> {
        let batch = check_input(self, ctx.index, input, self.n)?;
        let n = self.n;
        let xr = input.read()?;
        let x = contiguous(&xr)?;
        let pr = params.read()?;
        let p = contiguous(&pr)?;
        let (gamma, beta) = p.split_at(n);
        let eps = T::from_f64(self.eps);
        if ctx.training {
            let inv_b = T::ONE / T::from_f64(batch.max(1) as f64);
            self.batch_mean.fill(T::ZERO);
            for row in x.chunks_exact(n) {
                for (m, &v) in self.batch_mean.iter_mut().zip(row) {
                    *m += v;
                }
            }
            for m in &mut self.batch_mean {
                *m *= inv_b;
            }
            // Two-pass variance: numerically safer than E[x²] - E[x]².
            self.sum_dy.fill(T::ZERO);
            for row in x.chunks_exact(n) {
                for ((s, &v), &m) in self.sum_dy.iter_mut().zip(row).zip(&self.batch_mean) {
                    *s += (v - m) * (v - m);
                }
            }
            let decay = T::from_f64(self.decay);
            for j in 0..n {
                let var = self.sum_dy[j] * inv_b;
                self.batch_inv_std[j] = T::ONE / (var + eps).sqrt();
                self.running_mean[j] =
                    decay * self.running_mean[j] + (T::ONE - decay) * self.batch_mean[j];
                self.running_var[j] = decay * self.running_var[j] + (T::ONE - decay) * var;
            }
        } else {
            for j in 0..n {
                self.batch_mean[j] = self.running_mean[j];
                self.batch_inv_std[j] = T::ONE / (self.running_var[j] + eps).sqrt();
            }
        }
        let mut out = mgr.create_uninitialized::<T>(ACT, &[batch, n])?;
        {
            let mut ow = out.write()?;
            let o = ow
                .as_slice_mut()
                .ok_or_else(|| NnError::Input("output must be contiguous".into()))?;
            for (orow, xrow) in o.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
                for j in 0..n {
                    let xhat = (xrow[j] - self.batch_mean[j]) * self.batch_inv_std[j];
                    orow[j] = gamma[j] * xhat + beta[j];
                }
            }
        }
        Ok(out)
    }

    fn backprop_gradient(
        &mut self,
        input: &ArrayView<'_, T>,
        _output: &ArrayView<'_, T>,
        epsilon: Epsilon<'_, T>,
        params: &ArrayView<'_, T>,
        grads: &mut ArrayViewMut<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<T>>, NnError> {
        let eps = expect_gradient("BatchNormalization", epsilon)?;
        let batch = check_input(self, ctx.index, input, self.n)?;
        let n = self.n;
        let (xr, dyr, pr) = (input.read()?, eps.read()?, params.read()?);
        let (x, dy, p) = (contiguous(&xr)?, contiguous(&dyr)?, contiguous(&pr)?);
        let gamma = &p[..n];
        self.sum_dy.fill(T::ZERO);
        self.sum_dy_xhat.fill(T::ZERO);
        for (xrow, dyrow) in x.chunks_exact(n).zip(dy.chunks_exact(n)) {
            for j in 0..n {
                let xhat = (xrow[j] - self.batch_mean[j]) * self.batch_inv_std[j];
                self.sum_dy[j] += dyrow[j];
                self.sum_dy_xhat[j] += dyrow[j] * xhat;
            }
        }
        {
            let mut g = grads.view_mut();
            let mut gw = g.write()?;
            let gs = gw
                .as_slice_mut()
                .ok_or_else(|| NnError::Input("gradients must be contiguous".into()))?;
            gs[..n].copy_from_slice(&self.sum_dy_xhat);
            gs[n..].copy_from_slice(&self.sum_dy);
        }
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        let mut dx = mgr.create_uninitialized::<T>(GRAD, &[batch, n])?;
        {
            let bf = T::from_f64(batch as f64);
            let inv_b = T::ONE / bf;
            let mut dw = dx.write()?;
            let d = dw
                .as_slice_mut()
                .ok_or_else(|| NnError::Input("gradient must be contiguous".into()))?;
            for ((drow, xrow), dyrow) in d
                .chunks_exact_mut(n)
                .zip(x.chunks_exact(n))
                .zip(dy.chunks_exact(n))
            {
                for j in 0..n {
                    let xhat = (xrow[j] - self.batch_mean[j]) * self.batch_inv_std[j];
                    drow[j] = gamma[j]
                        * self.batch_inv_std[j]
                        * inv_b
                        * (bf * dyrow[j] - self.sum_dy[j] - xhat * self.sum_dy_xhat[j]);
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
