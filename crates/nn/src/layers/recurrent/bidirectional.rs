//! DL4J's `Bidirectional` wrapper: two copies of a recurrent layer, one reading the series
//! forward and one reading it reversed (its output reversed back), combined per step by
//! concatenation along the features (`Concat`, `[batch, 2 n, time]`), sum (`Add`), product
//! (`Mul`) or mean (`Average`). Parameters: the forward copy's, then the backward copy's, keys
//! prefixed `f` and `b` as DL4J (`fW`, `fRW`, `fb`, `bW`, ...).
//!
//! The whole time axis is reversed, masks with it (DL4J's `reverseTimeSeries`): a sequence
//! padded at the end is padded at the start when reversed, and masked steps carry the zero
//! state, so the backward copy reads exactly the real steps in reverse.
//!
//! The two copies' caches (and for `Mul` their outputs) are packed into the wrapper's one
//! cache. Like the layers it wraps, the backward pass never reads `Saved::output`. Stateful
//! inference and truncated BPTT are not defined for a layer that reads the future (DL4J
//! refuses them too): they are an error.

use dl4rs_array::ops::{self, BinaryOp};
use dl4rs_array::{ArrayView, ArrayViewMut, AsView, AsViewMut, DataType, NdArray};
use serde::{Deserialize, Serialize};

use super::{dims3, layer_error};
use crate::error::NnError;
use crate::input_type::InputType;
use crate::layers::{
    ACT, Epsilon, Forward, Layer, LayerInfo, LayerInput, ParamSpec, RecurrentMode, Saved,
    StepContext,
};
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// How the two directions' outputs are combined (DL4J's `Bidirectional.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum BidirectionalMode {
    /// Features side by side: forward first, `[batch, 2 n, time]`.
    #[default]
    Concat,
    /// `forward + backward`.
    Add,
    /// `forward ⊙ backward`.
    Mul,
    /// `(forward + backward) / 2`.
    Average,
}

/// A recurrent layer run in both directions.
pub struct BidirectionalLayer<T: DataType> {
    info: LayerInfo,
    fwd: Box<dyn Layer<T>>,
    bwd: Box<dyn Layer<T>>,
    mode: BidirectionalMode,
    /// Units of one direction.
    n: usize,
    /// Parameters of one direction.
    np: usize,
}

fn prefixed(prefix: char, key: &str) -> &'static str {
    match (prefix, key) {
        ('f', "W") => "fW",
        ('f', "RW") => "fRW",
        ('f', "b") => "fb",
        ('f', "rb") => "frb",
        ('b', "rb") => "brb",
        ('b', "W") => "bW",
        ('b', "RW") => "bRW",
        ('b', "b") => "bb",
        ('f', _) => "f",
        _ => "b",
    }
}

/// `x` (`[batch, n, time]` or a `[batch, time]` mask) with its time axis reversed, as `ty`.
fn reversed<T: DataType>(
    x: &ArrayView<'_, T>,
    ty: ArrayType,
    mgr: &LayerWorkspaceMgr,
) -> Result<NdArray<T>, NnError> {
    let axis = x.shape().len() - 1;
    let t = x.shape()[axis];
    let mut out = mgr.create_uninitialized::<T>(ty, x.shape())?;
    for s in 0..t {
        out.view_mut()
            .index_axis(axis, s)?
            .assign(&x.index_axis(axis, t - 1 - s)?)?;
    }
    Ok(out)
}

impl<T: DataType> BidirectionalLayer<T> {
    /// Wraps the two copies `fwd` and `bwd` of one recurrent layer.
    pub fn new(
        name: Option<String>,
        mode: BidirectionalMode,
        fwd: Box<dyn Layer<T>>,
        bwd: Box<dyn Layer<T>>,
    ) -> Result<Self, NnError> {
        let i = fwd.info();
        let n = match i.output_type {
            InputType::Recurrent { size, .. } => size,
            other => {
                return Err(NnError::config(format!(
                    "Bidirectional wraps a recurrent layer, but {} outputs {other}",
                    i.kind
                )));
            }
        };
        let out = if mode == BidirectionalMode::Concat {
            2 * n
        } else {
            n
        };
        let mut params: Vec<ParamSpec> = Vec::new();
        for p in ['f', 'b'] {
            params.extend(i.params.iter().map(|s| ParamSpec {
                key: prefixed(p, s.key),
                shape: s.shape.clone(),
                regularize: s.regularize,
            }));
        }
        let info = LayerInfo::new("Bidirectional", i.input_type, i.output_type.with_axis1(out))
            .named(name.or_else(|| i.name.clone()))
            .with_params(params);
        let np = i.num_params();
        Ok(BidirectionalLayer {
            info,
            fwd,
            bwd,
            mode,
            n,
            np,
        })
    }

    fn name(&self) -> Option<&str> {
        self.info.name.as_deref()
    }

    fn check_mode(&self, ctx: &StepContext) -> Result<(), NnError> {
        if ctx.recurrent != RecurrentMode::Fresh {
            return Err(layer_error(
                ctx,
                "Bidirectional",
                self.name(),
                "rnn_time_step and truncated BPTT are not defined for a bidirectional layer \
                 (its backward direction reads the whole series): use output / standard \
                 backprop"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl<T: DataType> Layer<T> for BidirectionalLayer<T> {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, params: &mut [T], seed: u64) {
        let (f, b) = params.split_at_mut(self.np);
        self.fwd.init_params(f, seed);
        self.bwd
            .init_params(b, dl4rs_array::random::splitmix(seed, 7));
    }

    fn forward(
        &mut self,
        input: &LayerInput<'_, T>,
        params: &ArrayView<'_, T>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<T>, NnError> {
        self.check_mode(ctx)?;
        let np = self.np;
        let x = input.activations;
        let (b, _, t) = dims3(&x);
        let n = self.n;
        let pf = params.slice_axis(0, 0, np, 1)?;
        let pb = params.slice_axis(0, np, 2 * np, 1)?;
        let f = self.fwd.forward(input, &pf, ctx, mgr)?;
        let x_rev = reversed(&x, ArrayType::FfWorkingMem, mgr)?;
        let m_rev = match &input.mask {
            Some(m) => Some(reversed(m, ArrayType::FfWorkingMem, mgr)?),
            None => None,
        };
        let rev_input = LayerInput {
            activations: x_rev.view(),
            mask: m_rev.as_ref().map(AsView::view),
        };
        let r = self.bwd.forward(&rev_input, &pb, ctx, mgr)?;
        let back = reversed(&r.activations.view(), ArrayType::FfWorkingMem, mgr)?;
        let out_n = if self.mode == BidirectionalMode::Concat {
            2 * n
        } else {
            n
        };
        let mut out = mgr.create_uninitialized::<T>(ACT, &[b, out_n, t])?;
        match self.mode {
            BidirectionalMode::Concat => {
                out.view_mut()
                    .slice_axis(1, 0, n, 1)?
                    .assign(&f.activations)?;
                out.view_mut().slice_axis(1, n, 2 * n, 1)?.assign(&back)?;
            }
            BidirectionalMode::Add | BidirectionalMode::Mul | BidirectionalMode::Average => {
                out.assign(&f.activations)?;
                let op = if self.mode == BidirectionalMode::Mul {
                    BinaryOp::Mul
                } else {
                    BinaryOp::Add
                };
                ops::binary_assign(op, &mut out, &back)?;
                if self.mode == BidirectionalMode::Average {
                    ops::scalar_assign(BinaryOp::Mul, &mut out, T::from_f64(0.5))?;
                }
            }
        }
        let cache = match (f.cache, r.cache) {
            (Some(cf), Some(cb)) => {
                let keep_outputs = self.mode == BidirectionalMode::Mul;
                let extra = if keep_outputs { 2 * b * n * t } else { 0 };
                let (lf, lb) = (cf.len(), cb.len());
                let mut c =
                    mgr.create_uninitialized::<T>(ArrayType::FfCache, &[lf + lb + extra])?;
                c.view_mut()
                    .slice_axis(0, 0, lf, 1)?
                    .assign(&cf.view().reshape(&[lf])?)?;
                c.view_mut()
                    .slice_axis(0, lf, lf + lb, 1)?
                    .assign(&cb.view().reshape(&[lb])?)?;
                if keep_outputs {
                    let o = lf + lb;
                    c.view_mut()
                        .slice_axis(0, o, o + b * n * t, 1)?
                        .reshape(&[b, n, t])?
                        .assign(&f.activations)?;
                    c.view_mut()
                        .slice_axis(0, o + b * n * t, o + extra, 1)?
                        .reshape(&[b, n, t])?
                        .assign(&back)?;
                }
                Some(c)
            }
            _ => None,
        };
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
        self.check_mode(ctx)?;
        let eps = epsilon.gradient(self.info.kind)?;
        let np = self.np;
        let x = saved.input;
        let (b, _, t) = dims3(&x);
        let n = self.n;
        let cache = saved.cache.ok_or_else(|| {
            layer_error(
                ctx,
                "Bidirectional",
                self.name(),
                "backward without the forward pass's cache (run forward in training mode)".into(),
            )
        })?;
        let extra = if self.mode == BidirectionalMode::Mul {
            2 * b * n * t
        } else {
            0
        };
        let half = (cache.shape()[0] - extra) / 2;
        let (cf, cb) = (
            cache.slice_axis(0, 0, half, 1)?,
            cache.slice_axis(0, half, 2 * half, 1)?,
        );
        // The gradient of each direction's output (the backward one's still in reading order).
        let (eps_f, eps_b) = match self.mode {
            BidirectionalMode::Concat => (
                mgr.dup(ArrayType::BpWorkingMem, &eps.slice_axis(1, 0, n, 1)?)?,
                mgr.dup(ArrayType::BpWorkingMem, &eps.slice_axis(1, n, 2 * n, 1)?)?,
            ),
            BidirectionalMode::Add | BidirectionalMode::Average => {
                let mut e = mgr.dup(ArrayType::BpWorkingMem, &eps)?;
                if self.mode == BidirectionalMode::Average {
                    ops::scalar_assign(BinaryOp::Mul, &mut e, T::from_f64(0.5))?;
                }
                let e2 = mgr.dup(ArrayType::BpWorkingMem, &e)?;
                (e, e2)
            }
            BidirectionalMode::Mul => {
                let o = 2 * half;
                let out_f = cache
                    .slice_axis(0, o, o + b * n * t, 1)?
                    .reshape(&[b, n, t])?;
                let out_b = cache
                    .slice_axis(0, o + b * n * t, o + extra, 1)?
                    .reshape(&[b, n, t])?;
                let mut ef = mgr.dup(ArrayType::BpWorkingMem, &eps)?;
                ops::binary_assign(BinaryOp::Mul, &mut ef, &out_b)?;
                let mut eb = mgr.dup(ArrayType::BpWorkingMem, &eps)?;
                ops::binary_assign(BinaryOp::Mul, &mut eb, &out_f)?;
                (ef, eb)
            }
        };
        let pf = params.slice_axis(0, 0, np, 1)?;
        let pb = params.slice_axis(0, np, 2 * np, 1)?;
        let dx_f = {
            let mut g = grads.view_mut().slice_axis(0, 0, np, 1)?;
            let s = Saved {
                input: x,
                mask: saved.mask,
                output: saved.output,
                cache: Some(cf),
            };
            self.fwd
                .backward(&s, Epsilon::Gradient(eps_f.view()), &pf, &mut g, ctx, mgr)?
        };
        let x_rev = reversed(&x, ArrayType::BpWorkingMem, mgr)?;
        let m_rev = match &saved.mask {
            Some(m) => Some(reversed(m, ArrayType::BpWorkingMem, mgr)?),
            None => None,
        };
        let eps_b_rev = reversed(&eps_b.view(), ArrayType::BpWorkingMem, mgr)?;
        let dx_b_rev = {
            let mut g = grads.view_mut().slice_axis(0, np, 2 * np, 1)?;
            let s = Saved {
                input: x_rev.view(),
                mask: m_rev.as_ref().map(AsView::view),
                output: saved.output,
                cache: Some(cb),
            };
            self.bwd.backward(
                &s,
                Epsilon::Gradient(eps_b_rev.view()),
                &pb,
                &mut g,
                ctx,
                mgr,
            )?
        };
        let (Some(dx_f), Some(dx_b_rev)) = (dx_f, dx_b_rev) else {
            return Ok(None);
        };
        // The forward copy's input gradient (an ActivationGrad array) takes the other's.
        let mut dx = dx_f;
        for s in 0..t {
            let mut col = dx.view_mut().index_axis(2, s)?;
            ops::binary_assign(
                BinaryOp::Add,
                &mut col,
                &dx_b_rev.view().index_axis(2, t - 1 - s)?,
            )?;
        }
        Ok(Some(dx))
    }
}
