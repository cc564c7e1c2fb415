//! Recurrent time steps on arrays: the layout of an LSTM's per-sequence cache and the fused
//! element-wise step over it (forward and backward). The cache is one flat array so a layer
//! keeps a single array between its passes; [`LstmCacheLayout`] says where each part is.

use dl4rs_kernels as k;
use dl4rs_kernels::{GradFrom, Unary};

use super::with_contiguous;
use crate::array::{ArrayView, ArrayViewMut, AsView, AsViewMut, DataType};
use crate::error::{ArrayError, invalid};

/// Where the parts of an LSTM's cache for `steps` steps of `batch` rows and `hidden` units
/// live in one flat array, time-major:
///
/// * gates `[steps * batch, 4 * hidden]`: the gate activations (`a | f | o | i` per row);
/// * cell `[steps + 1, batch, hidden]`: `c` before the first step (the initial state), then
///   after each step;
/// * hidden `[steps + 1, batch, hidden]`: `h` likewise (the state, which masked steps carry);
/// * tanh_cell `[steps, batch, hidden]`: `act(c)` of each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmCacheLayout {
    /// Time steps.
    pub steps: usize,
    /// Rows (examples).
    pub batch: usize,
    /// Units.
    pub hidden: usize,
}

impl LstmCacheLayout {
    fn gates_len(&self) -> usize {
        self.steps * self.batch * 4 * self.hidden
    }
    fn state_len(&self) -> usize {
        (self.steps + 1) * self.batch * self.hidden
    }
    fn offsets(&self) -> [usize; 4] {
        let g = self.gates_len();
        let s = self.state_len();
        [0, g, g + s, g + 2 * s]
    }

    /// Elements of the whole cache.
    pub fn len(&self) -> usize {
        self.offsets()[3] + self.steps * self.batch * self.hidden
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn part<'a, T: DataType>(
        &self,
        cache: &ArrayView<'a, T>,
        index: usize,
        shape: &[usize],
    ) -> Result<ArrayView<'a, T>, ArrayError> {
        let start = self.offsets()[index];
        let len: usize = shape.iter().product();
        cache.slice_axis(0, start, start + len, 1)?.reshape(shape)
    }

    fn part_mut<'a, T: DataType>(
        &self,
        cache: ArrayViewMut<'a, T>,
        index: usize,
        shape: &[usize],
    ) -> Result<ArrayViewMut<'a, T>, ArrayError> {
        let start = self.offsets()[index];
        let len: usize = shape.iter().product();
        cache.slice_axis(0, start, start + len, 1)?.reshape(shape)
    }

    /// The gates, `[steps * batch, 4 * hidden]`.
    pub fn gates<'a, T: DataType>(
        &self,
        cache: &ArrayView<'a, T>,
    ) -> Result<ArrayView<'a, T>, ArrayError> {
        self.part(cache, 0, &[self.steps * self.batch, 4 * self.hidden])
    }

    /// The gates, writable.
    pub fn gates_mut<'a, T: DataType>(
        &self,
        cache: ArrayViewMut<'a, T>,
    ) -> Result<ArrayViewMut<'a, T>, ArrayError> {
        self.part_mut(cache, 0, &[self.steps * self.batch, 4 * self.hidden])
    }

    /// The cell states, `[steps + 1, batch, hidden]`.
    pub fn cell<'a, T: DataType>(
        &self,
        cache: &ArrayView<'a, T>,
    ) -> Result<ArrayView<'a, T>, ArrayError> {
        self.part(cache, 1, &[self.steps + 1, self.batch, self.hidden])
    }

    /// The cell states, writable.
    pub fn cell_mut<'a, T: DataType>(
        &self,
        cache: ArrayViewMut<'a, T>,
    ) -> Result<ArrayViewMut<'a, T>, ArrayError> {
        self.part_mut(cache, 1, &[self.steps + 1, self.batch, self.hidden])
    }

    /// The hidden states, `[steps + 1, batch, hidden]`.
    pub fn hidden<'a, T: DataType>(
        &self,
        cache: &ArrayView<'a, T>,
    ) -> Result<ArrayView<'a, T>, ArrayError> {
        self.part(cache, 2, &[self.steps + 1, self.batch, self.hidden])
    }

    /// The hidden states, writable.
    pub fn hidden_mut<'a, T: DataType>(
        &self,
        cache: ArrayViewMut<'a, T>,
    ) -> Result<ArrayViewMut<'a, T>, ArrayError> {
        self.part_mut(cache, 2, &[self.steps + 1, self.batch, self.hidden])
    }

    fn check(&self, op: &'static str, len: usize) -> Result<(), ArrayError> {
        if len != self.len() {
            return Err(invalid(
                op,
                format!(
                    "the cache has {len} elements; {self:?} needs {} (one flat array)",
                    self.len()
                ),
            ));
        }
        Ok(())
    }
}

fn check_output_grads<T: DataType>(
    op: &'static str,
    act: Unary<T>,
    gate: Unary<T>,
) -> Result<(), ArrayError> {
    for u in [act, gate] {
        if u.grad_from() != GradFrom::Output {
            return Err(invalid(
                op,
                format!(
                    "{u:?}: an LSTM's activations must have derivatives computable from their \
                     outputs (tanh, sigmoid, relu, identity, ...)"
                ),
            ));
        }
    }
    Ok(())
}

fn contiguous_len<T: DataType>(
    op: &'static str,
    what: &str,
    v: &ArrayView<'_, T>,
    len: usize,
) -> Result<(), ArrayError> {
    if v.layout.shape().len() != len {
        return Err(invalid(
            op,
            format!(
                "{what} has shape {:?} ({} elements); expected {len} elements",
                v.shape(),
                v.layout.shape().len()
            ),
        ));
    }
    Ok(())
}

/// Step `step` of an LSTM forward, in `cache` (laid out as `layout` says; contiguous): the
/// gates of the step hold `x·W + b` on entry; `recurrent` (`[batch, 4 * hidden]`) is
/// `h_prev·RW`; `mask` (`[batch]`) marks the rows that take the step. Writes the gate
/// activations, `c`, `h` and `act(c)` of the step (see `dl4rs_kernels::lstm_cell_forward`).
pub fn lstm_step_forward_into<T: DataType>(
    cache: &mut impl AsViewMut<T>,
    layout: &LstmCacheLayout,
    step: usize,
    recurrent: &impl AsView<T>,
    mask: Option<&ArrayView<'_, T>>,
    act: Unary<T>,
    gate: Unary<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "lstm_step_forward";
    check_output_grads(OP, act, gate)?;
    let (b, n) = (layout.batch, layout.hidden);
    if step >= layout.steps {
        return Err(invalid(OP, format!("step {step} of {}", layout.steps)));
    }
    let rec = recurrent.view();
    contiguous_len(OP, "recurrent", &rec, b * 4 * n)?;
    if let Some(m) = mask {
        contiguous_len(OP, "mask", m, b)?;
    }
    let cache = cache.view_mut();
    layout.check(OP, cache.layout.shape().len())?;
    if !cache.layout.is_c_contiguous() {
        return Err(invalid(OP, "the cache must be contiguous"));
    }
    let offset = cache.layout.offset();
    let mut w = cache.buf.write()?;
    let all = &mut w[offset..offset + layout.len()];
    let [_, oc, oh, ot] = layout.offsets();
    let (gates, rest) = all.split_at_mut(oc);
    let (cells, rest) = rest.split_at_mut(oh - oc);
    let (hiddens, tanh_cells) = rest.split_at_mut(ot - oh);
    let bn = b * n;
    let g = &mut gates[step * b * 4 * n..(step + 1) * b * 4 * n];
    let (c_prev, c) = cells[step * bn..(step + 2) * bn].split_at_mut(bn);
    let (h_prev, h) = hiddens[step * bn..(step + 2) * bn].split_at_mut(bn);
    let tc = &mut tanh_cells[step * bn..(step + 1) * bn];
    with_contiguous(&rec, |r| match mask {
        Some(m) => with_contiguous(m, |m| {
            Ok(k::lstm_cell_forward(
                g,
                r,
                c_prev,
                h_prev,
                c,
                h,
                tc,
                Some(m),
                b,
                n,
                act,
                gate,
            )?)
        }),
        None => Ok(k::lstm_cell_forward(
            g, r, c_prev, h_prev, c, h, tc, None, b, n, act, gate,
        )?),
    })
}

/// Step `step` of an LSTM backward from `cache` (what the forward steps wrote): `eps`
/// (`[batch, hidden]`) is the output gradient of the step, `dh` / `dc` the state gradients
/// from the next step (updated for the previous one; see `dl4rs_kernels::lstm_cell_backward`:
/// the caller adds `dz·RWᵀ` into `dh`), `dz` (`[batch, 4 * hidden]`) receives the gates'
/// gradient.
#[allow(clippy::too_many_arguments)]
pub fn lstm_step_backward_into<T: DataType>(
    cache: &impl AsView<T>,
    layout: &LstmCacheLayout,
    step: usize,
    eps: &impl AsView<T>,
    dh: &mut impl AsViewMut<T>,
    dc: &mut impl AsViewMut<T>,
    dz: &mut impl AsViewMut<T>,
    mask: Option<&ArrayView<'_, T>>,
    act: Unary<T>,
    gate: Unary<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "lstm_step_backward";
    check_output_grads(OP, act, gate)?;
    let (b, n) = (layout.batch, layout.hidden);
    if step >= layout.steps {
        return Err(invalid(OP, format!("step {step} of {}", layout.steps)));
    }
    let cache = cache.view();
    layout.check(OP, cache.layout.shape().len())?;
    let eps = eps.view();
    contiguous_len(OP, "eps", &eps, b * n)?;
    if let Some(m) = mask {
        contiguous_len(OP, "mask", m, b)?;
    }
    let bn = b * n;
    let gates = layout
        .gates(&cache)?
        .slice_axis(0, step * b, (step + 1) * b, 1)?;
    let c_prev = layout.cell(&cache)?.index_axis(0, step)?;
    let [_, _, _, ot] = layout.offsets();
    let tc = cache.slice_axis(0, ot + step * bn, ot + (step + 1) * bn, 1)?;
    let shape_h = crate::shape::Shape::new(&[b, n])?;
    let shape_z = crate::shape::Shape::new(&[b, 4 * n])?;
    let (mut dh, mut dc) = (dh.view_mut(), dc.view_mut());
    let dh_shape = *dh.layout.shape();
    let dc_shape = *dc.layout.shape();
    for (what, s) in [("dh", dh_shape), ("dc", dc_shape)] {
        if s.len() != bn {
            return Err(invalid(
                OP,
                format!("{what} has shape {:?}; expected {shape_h:?}", s.dims()),
            ));
        }
    }
    with_contiguous(&gates, |g| {
        with_contiguous(&c_prev, |cp| {
            with_contiguous(&tc, |t| {
                with_contiguous(&eps, |e| {
                    super::with_output(OP, dz, &shape_z, |z| {
                        super::with_output(OP, &mut dh, &dh_shape, |dh| {
                            super::with_output(OP, &mut dc, &dc_shape, |dc| match mask {
                                Some(mv) => with_contiguous(mv, |m| {
                                    Ok(k::lstm_cell_backward(
                                        g,
                                        cp,
                                        t,
                                        e,
                                        dh,
                                        dc,
                                        z,
                                        Some(m),
                                        b,
                                        n,
                                        act,
                                        gate,
                                    )?)
                                }),
                                None => Ok(k::lstm_cell_backward(
                                    g, cp, t, e, dh, dc, z, None, b, n, act, gate,
                                )?),
                            })
                        })
                    })
                })
            })
        })
    })
}

/// Step `step` of a simple recurrent layer forward: `states` (`[steps + 1, batch, hidden]`,
/// contiguous) holds the initial state and then each step's; `z` (`[batch, hidden]`) is the
/// step's `x·W + h_prev·RW + b`. Writes `states[step + 1] = act(z)` (the previous state for
/// rows masked 0).
pub fn rnn_step_forward_into<T: DataType>(
    states: &mut impl AsViewMut<T>,
    step: usize,
    z: &impl AsView<T>,
    mask: Option<&ArrayView<'_, T>>,
    act: Unary<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "rnn_step_forward";
    check_output_grads(OP, act, act)?;
    let states = states.view_mut();
    let &[steps1, b, n] = states.layout.shape().dims() else {
        return Err(invalid(OP, "the states must be [steps + 1, batch, hidden]"));
    };
    if step + 1 >= steps1 || !states.layout.is_c_contiguous() {
        return Err(invalid(
            OP,
            format!("step {step} of {steps1} - 1 states (contiguous)"),
        ));
    }
    let z = z.view();
    contiguous_len(OP, "z", &z, b * n)?;
    if let Some(m) = mask {
        contiguous_len(OP, "mask", m, b)?;
    }
    let bn = b * n;
    let offset = states.layout.offset();
    let mut w = states.buf.write()?;
    let all = &mut w[offset + step * bn..offset + (step + 2) * bn];
    let (h_prev, h) = all.split_at_mut(bn);
    with_contiguous(&z, |zs| match mask {
        Some(m) => with_contiguous(m, |m| {
            Ok(k::rnn_cell_forward(zs, h_prev, h, Some(m), b, n, act)?)
        }),
        None => Ok(k::rnn_cell_forward(zs, h_prev, h, None, b, n, act)?),
    })
}

/// Step `step` of a simple recurrent layer backward (see `dl4rs_kernels::rnn_cell_backward`):
/// `h` is the step's output state `[batch, hidden]`, `eps` its output gradient; `dh` holds the
/// state gradient from the next step; `dz` receives the pre-activation gradient.
pub fn rnn_step_backward_into<T: DataType>(
    h: &impl AsView<T>,
    eps: &impl AsView<T>,
    dh: &mut impl AsViewMut<T>,
    dz: &mut impl AsViewMut<T>,
    mask: Option<&ArrayView<'_, T>>,
    act: Unary<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "rnn_step_backward";
    check_output_grads(OP, act, act)?;
    let (h, eps) = (h.view(), eps.view());
    let shape = *h.layout.shape();
    let &[b, n] = shape.dims() else {
        return Err(invalid(OP, "h must be [batch, hidden]"));
    };
    contiguous_len(OP, "eps", &eps, b * n)?;
    if let Some(m) = mask {
        contiguous_len(OP, "mask", m, b)?;
    }
    with_contiguous(&h, |hs| {
        with_contiguous(&eps, |e| {
            super::with_output(OP, dz, &shape, |z| {
                super::with_output(OP, dh, &shape, |d| match mask {
                    Some(mv) => with_contiguous(mv, |m| {
                        Ok(k::rnn_cell_backward(hs, e, d, z, Some(m), b, n, act)?)
                    }),
                    None => Ok(k::rnn_cell_backward(hs, e, d, z, None, b, n, act)?),
                })
            })
        })
    })
}

/// Where the parts of a GRU's cache for `steps` steps of `batch` rows and `hidden` units
/// live in one flat array, time-major: gates `[steps * batch, 3 * hidden]` (the activations
/// `r | z | g`), `hn` `[steps * batch, hidden]` (`h_prev·RW_n + rb`), states
/// `[steps + 1, batch, hidden]` (the initial one first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GruCacheLayout {
    /// Time steps.
    pub steps: usize,
    /// Rows (examples).
    pub batch: usize,
    /// Units.
    pub hidden: usize,
}

impl GruCacheLayout {
    fn offsets(&self) -> [usize; 3] {
        let rows = self.steps * self.batch;
        [0, rows * 3 * self.hidden, rows * 4 * self.hidden]
    }

    /// Elements of the whole cache.
    pub fn len(&self) -> usize {
        self.offsets()[2] + (self.steps + 1) * self.batch * self.hidden
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The gates, `[steps * batch, 3 * hidden]`, writable.
    pub fn gates_mut<'a, T: DataType>(
        &self,
        cache: ArrayViewMut<'a, T>,
    ) -> Result<ArrayViewMut<'a, T>, ArrayError> {
        let len = self.offsets()[1];
        cache
            .slice_axis(0, 0, len, 1)?
            .reshape(&[self.steps * self.batch, 3 * self.hidden])
    }

    /// The states, `[steps + 1, batch, hidden]`.
    pub fn states<'a, T: DataType>(
        &self,
        cache: &ArrayView<'a, T>,
    ) -> Result<ArrayView<'a, T>, ArrayError> {
        let o = self.offsets()[2];
        cache
            .slice_axis(0, o, self.len(), 1)?
            .reshape(&[self.steps + 1, self.batch, self.hidden])
    }

    /// The states, writable.
    pub fn states_mut<'a, T: DataType>(
        &self,
        cache: ArrayViewMut<'a, T>,
    ) -> Result<ArrayViewMut<'a, T>, ArrayError> {
        let o = self.offsets()[2];
        cache
            .slice_axis(0, o, self.len(), 1)?
            .reshape(&[self.steps + 1, self.batch, self.hidden])
    }
}

/// Step `step` of a GRU forward in `cache` (see [`GruCacheLayout`]; the step's gates hold
/// `x·W + b`): `rec` is `h_prev·RW` (`[batch, 3 hidden]`), `rb` the candidate's recurrent bias
/// (see `dl4rs_kernels::gru_cell_forward`).
#[allow(clippy::too_many_arguments)]
pub fn gru_step_forward_into<T: DataType>(
    cache: &mut impl AsViewMut<T>,
    layout: &GruCacheLayout,
    step: usize,
    rec: &impl AsView<T>,
    rb: &impl AsView<T>,
    mask: Option<&ArrayView<'_, T>>,
    act: Unary<T>,
    gate: Unary<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "gru_step_forward";
    check_output_grads(OP, act, gate)?;
    let (b, n) = (layout.batch, layout.hidden);
    let (rec, rb) = (rec.view(), rb.view());
    contiguous_len(OP, "rec", &rec, b * 3 * n)?;
    contiguous_len(OP, "rb", &rb, n)?;
    if let Some(m) = mask {
        contiguous_len(OP, "mask", m, b)?;
    }
    let cache = cache.view_mut();
    if cache.layout.shape().len() != layout.len() || !cache.layout.is_c_contiguous() {
        return Err(invalid(
            OP,
            format!("the cache must be {layout:?}, contiguous"),
        ));
    }
    if step >= layout.steps {
        return Err(invalid(OP, format!("step {step} of {}", layout.steps)));
    }
    let offset = cache.layout.offset();
    let mut w = cache.buf.write()?;
    let all = &mut w[offset..offset + layout.len()];
    let [_, oh, os] = layout.offsets();
    let (gates, rest) = all.split_at_mut(oh);
    let (hns, states) = rest.split_at_mut(os - oh);
    let bn = b * n;
    let g = &mut gates[step * 3 * bn..(step + 1) * 3 * bn];
    let hn = &mut hns[step * bn..(step + 1) * bn];
    let (h_prev, h) = states[step * bn..(step + 2) * bn].split_at_mut(bn);
    with_contiguous(&rec, |r| {
        with_contiguous(&rb, |rbs| match mask {
            Some(m) => with_contiguous(m, |m| {
                Ok(k::gru_cell_forward(
                    g,
                    r,
                    rbs,
                    hn,
                    h_prev,
                    h,
                    Some(m),
                    b,
                    n,
                    act,
                    gate,
                )?)
            }),
            None => Ok(k::gru_cell_forward(
                g, r, rbs, hn, h_prev, h, None, b, n, act, gate,
            )?),
        })
    })
}

/// Step `step` of a GRU backward from `cache` (see `dl4rs_kernels::gru_cell_backward`): `dx`
/// and `drec` (`[batch, 3 hidden]`) receive the gradients of `x·W + b` and `h_prev·RW`.
#[allow(clippy::too_many_arguments)]
pub fn gru_step_backward_into<T: DataType>(
    cache: &impl AsView<T>,
    layout: &GruCacheLayout,
    step: usize,
    eps: &impl AsView<T>,
    dh: &mut impl AsViewMut<T>,
    dx: &mut impl AsViewMut<T>,
    drec: &mut impl AsViewMut<T>,
    mask: Option<&ArrayView<'_, T>>,
    act: Unary<T>,
    gate: Unary<T>,
) -> Result<(), ArrayError> {
    const OP: &str = "gru_step_backward";
    check_output_grads(OP, act, gate)?;
    let (b, n) = (layout.batch, layout.hidden);
    let cache = cache.view();
    if cache.layout.shape().len() != layout.len() || step >= layout.steps {
        return Err(invalid(
            OP,
            format!("the cache must be {layout:?}, step < steps"),
        ));
    }
    let eps = eps.view();
    contiguous_len(OP, "eps", &eps, b * n)?;
    if let Some(m) = mask {
        contiguous_len(OP, "mask", m, b)?;
    }
    let bn = b * n;
    let [_, oh, _] = layout.offsets();
    let g = cache.slice_axis(0, step * 3 * bn, (step + 1) * 3 * bn, 1)?;
    let hn = cache.slice_axis(0, oh + step * bn, oh + (step + 1) * bn, 1)?;
    let h_prev = layout.states(&cache)?.index_axis(0, step)?;
    let shape_h = crate::shape::Shape::new(&[b, n])?;
    let shape_z = crate::shape::Shape::new(&[b, 3 * n])?;
    with_contiguous(&g, |gs| {
        with_contiguous(&hn, |hns| {
            with_contiguous(&h_prev, |hp| {
                with_contiguous(&eps, |e| {
                    super::with_output(OP, dh, &shape_h, |d| {
                        super::with_output(OP, dx, &shape_z, |x| {
                            super::with_output(OP, drec, &shape_z, |r| match mask {
                                Some(mv) => with_contiguous(mv, |m| {
                                    Ok(k::gru_cell_backward(
                                        gs,
                                        hns,
                                        hp,
                                        e,
                                        d,
                                        x,
                                        r,
                                        Some(m),
                                        b,
                                        n,
                                        act,
                                        gate,
                                    )?)
                                }),
                                None => Ok(k::gru_cell_backward(
                                    gs, hns, hp, e, d, x, r, None, b, n, act, gate,
                                )?),
                            })
                        })
                    })
                })
            })
        })
    })
}
