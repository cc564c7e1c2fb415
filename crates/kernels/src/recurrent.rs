//! The element-wise part of one recurrent time step, fused per row so a step makes one pass
//! over its gates while they are in cache: the LSTM cell forward and backward (DL4J's gate
//! order, see [`lstm_cell_forward`]). The matrix products around them (`x·W`, `h·RW`, the
//! weight gradients) are gemms done by the caller.
//!
//! Masks are per row (one value per example at this step): a row whose mask is 0 keeps its
//! state (`c = c_prev`, `h = h_prev`) and gets no gate gradient; its state gradients pass
//! through unchanged. Nonzero mask values count as 1.

use crate::elementwise::{Unary, unary_assign};
use crate::error::KernelError;
use crate::float::Float;
use crate::reduce::check_mat;

fn check_lstm(
    op: &'static str,
    parts: &[(&'static str, usize, usize)],
    batch: usize,
    mask: Option<&[impl Copy]>,
) -> Result<(), KernelError> {
    for &(what, len, cols) in parts {
        check_mat(op, what, len, batch, cols)?;
    }
    if let Some(m) = mask {
        check_mat(op, "mask", m.len(), batch, 1)?;
    }
    Ok(())
}

/// One LSTM step forward over `batch` rows of `hidden` units.
///
/// `gates` is `[batch, 4 * hidden]` in DL4J's order per row: block input `a` (the layer
/// activation, tanh by default), forget gate `f`, output gate `o`, input gate `i` (the gate
/// activation, sigmoid by default). It holds `x·W + b` on entry; `recurrent` (`h_prev·RW`, same
/// shape) is added and the activations are written back (what backward needs). Then
/// `c = f ⊙ c_prev + i ⊙ a`, `tanh_c = act(c)`, `h = o ⊙ tanh_c`; rows masked 0 keep
/// `c_prev` and `h_prev`.
#[allow(clippy::too_many_arguments)]
pub fn lstm_cell_forward<T: Float>(
    gates: &mut [T],
    recurrent: &[T],
    c_prev: &[T],
    h_prev: &[T],
    c: &mut [T],
    h: &mut [T],
    tanh_c: &mut [T],
    mask: Option<&[T]>,
    batch: usize,
    hidden: usize,
    act: Unary<T>,
    gate: Unary<T>,
) -> Result<(), KernelError> {
    let n = hidden;
    check_lstm(
        "lstm_cell_forward",
        &[
            ("gates", gates.len(), 4 * n),
            ("recurrent", recurrent.len(), 4 * n),
            ("c_prev", c_prev.len(), n),
            ("h_prev", h_prev.len(), n),
            ("c", c.len(), n),
            ("h", h.len(), n),
            ("tanh_c", tanh_c.len(), n),
        ],
        batch,
        mask,
    )?;
    if n == 0 {
        return Ok(());
    }
    for r in 0..batch {
        let g = &mut gates[r * 4 * n..(r + 1) * 4 * n];
        for (v, &x) in g.iter_mut().zip(&recurrent[r * 4 * n..(r + 1) * 4 * n]) {
            *v += x;
        }
        let (a, rest) = g.split_at_mut(n);
        unary_assign(act, a);
        unary_assign(gate, rest);
        let (f, rest) = rest.split_at(n);
        let (o, i) = rest.split_at(n);
        let row = r * n..(r + 1) * n;
        let (cp, hp) = (&c_prev[row.clone()], &h_prev[row.clone()]);
        let (cr, hr, tr) = (
            &mut c[row.clone()],
            &mut h[row.clone()],
            &mut tanh_c[row.clone()],
        );
        if mask.is_some_and(|m| m[r] == T::ZERO) {
            cr.copy_from_slice(cp);
            hr.copy_from_slice(hp);
            tr.fill(T::ZERO);
            continue;
        }
        for j in 0..n {
            cr[j] = f[j] * cp[j] + i[j] * a[j];
        }
        tr.copy_from_slice(cr);
        unary_assign(act, tr);
        for j in 0..n {
            hr[j] = o[j] * tr[j];
        }
    }
    Ok(())
}

/// One LSTM step backward (the adjoint of [`lstm_cell_forward`]), from the saved gate
/// activations, `c_prev` and `tanh_c` of the step.
///
/// `eps` is `dL/dh` from the layer's output at this step; `dh` holds `dL/dh` from the next
/// step on entry and `dc` likewise `dL/dc`. On return `dz` (`[batch, 4 * hidden]`) holds the
/// gradient of the gates' pre-activations, `dc` the gradient of `c_prev`, and `dh` the part of
/// `h_prev`'s gradient that does not go through `dz·RWᵀ` (the carried gradient of masked rows,
/// 0 elsewhere), so the caller finishes with `dh += dz·RWᵀ`. Both activations must take their
/// derivative from their output ([`Unary::grad_from`]).
#[allow(clippy::too_many_arguments)]
pub fn lstm_cell_backward<T: Float>(
    gates: &[T],
    c_prev: &[T],
    tanh_c: &[T],
    eps: &[T],
    dh: &mut [T],
    dc: &mut [T],
    dz: &mut [T],
    mask: Option<&[T]>,
    batch: usize,
    hidden: usize,
    act: Unary<T>,
    gate: Unary<T>,
) -> Result<(), KernelError> {
    let n = hidden;
    check_lstm(
        "lstm_cell_backward",
        &[
            ("gates", gates.len(), 4 * n),
            ("c_prev", c_prev.len(), n),
            ("tanh_c", tanh_c.len(), n),
            ("eps", eps.len(), n),
            ("dh", dh.len(), n),
            ("dc", dc.len(), n),
            ("dz", dz.len(), 4 * n),
        ],
        batch,
        mask,
    )?;
    if n == 0 {
        return Ok(());
    }
    let parts = BackwardParts {
        gates,
        c_prev,
        tanh_c,
        eps,
        dh,
        dc,
        dz,
        mask,
        batch,
        n,
    };
    // DL4J's defaults (tanh, sigmoid) get their derivatives inlined, so the loop vectorizes;
    // the formulas are `Unary::derivative`'s, so the bits are the same as the general path.
    match (act, gate) {
        (Unary::Tanh, Unary::Sigmoid) => {
            run_backward(parts, |y: T| T::ONE - y * y, |y: T| y * (T::ONE - y))
        }
        _ => run_backward(
            parts,
            move |y| act.derivative(y),
            move |y| gate.derivative(y),
        ),
    }
    Ok(())
}

/// The operands of [`lstm_cell_backward`], lengths checked.
struct BackwardParts<'a, T> {
    gates: &'a [T],
    c_prev: &'a [T],
    tanh_c: &'a [T],
    eps: &'a [T],
    dh: &'a mut [T],
    dc: &'a mut [T],
    dz: &'a mut [T],
    mask: Option<&'a [T]>,
    batch: usize,
    n: usize,
}

fn run_backward<T: Float>(p: BackwardParts<'_, T>, da: impl Fn(T) -> T, dg: impl Fn(T) -> T) {
    #[cfg(target_arch = "x86_64")]
    if crate::dispatch::isa() >= crate::dispatch::Isa::Avx2 {
        // SAFETY: the dispatch resolved to a path whose CPU check included AVX2.
        unsafe { backward_rows_avx2(p, da, dg) };
        return;
    }
    backward_rows(p, da, dg);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn backward_rows_avx2<T: Float>(p: BackwardParts<'_, T>, da: impl Fn(T) -> T, dg: impl Fn(T) -> T) {
    backward_rows(p, da, dg);
}

#[inline(always)]
fn backward_rows<T: Float>(
    p: BackwardParts<'_, T>,
    da_of: impl Fn(T) -> T,
    dg_of: impl Fn(T) -> T,
) {
    let n = p.n;
    for r in 0..p.batch {
        let g = &p.gates[r * 4 * n..(r + 1) * 4 * n];
        let d = &mut p.dz[r * 4 * n..(r + 1) * 4 * n];
        let row = r * n..(r + 1) * n;
        if p.mask.is_some_and(|m| m[r] == T::ZERO) {
            // The output was a constant 0 and the state was copied: gradients pass through.
            d.fill(T::ZERO);
            continue;
        }
        let (a, f, o, i) = (&g[..n], &g[n..2 * n], &g[2 * n..3 * n], &g[3 * n..4 * n]);
        let (cp, tc, e) = (
            &p.c_prev[row.clone()],
            &p.tanh_c[row.clone()],
            &p.eps[row.clone()],
        );
        let (dhr, dcr) = (&mut p.dh[row.clone()], &mut p.dc[row]);
        let (da, rest) = d.split_at_mut(n);
        let (df, rest) = rest.split_at_mut(n);
        let (d_o, di) = rest.split_at_mut(n);
        backward_row(
            a, f, o, i, cp, tc, e, dhr, dcr, da, df, d_o, di, &da_of, &dg_of,
        );
    }
}

/// One row of [`lstm_cell_backward`]. Each slice is a parameter of its own so that the
/// compiler knows none overlaps another and vectorizes the loop without run-time overlap
/// checks (slices inside a struct or an array carry no such promise: measured, the loop ran
/// its scalar fallback).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_row<T: Float>(
    a: &[T],
    f: &[T],
    o: &[T],
    i: &[T],
    cp: &[T],
    tc: &[T],
    e: &[T],
    dhr: &mut [T],
    dcr: &mut [T],
    da: &mut [T],
    df: &mut [T],
    d_o: &mut [T],
    di: &mut [T],
    da_of: &impl Fn(T) -> T,
    dg_of: &impl Fn(T) -> T,
) {
    let n = a.len();
    let (f, o, i, cp, tc, e) = (&f[..n], &o[..n], &i[..n], &cp[..n], &tc[..n], &e[..n]);
    let (dhr, dcr, da, df, d_o, di) = (
        &mut dhr[..n],
        &mut dcr[..n],
        &mut da[..n],
        &mut df[..n],
        &mut d_o[..n],
        &mut di[..n],
    );
    for j in 0..n {
        let dh_total = e[j] + dhr[j];
        let dc_total = dcr[j] + dh_total * o[j] * da_of(tc[j]);
        d_o[j] = dh_total * tc[j] * dg_of(o[j]);
        da[j] = dc_total * i[j] * da_of(a[j]);
        di[j] = dc_total * a[j] * dg_of(i[j]);
        df[j] = dc_total * cp[j] * dg_of(f[j]);
        dcr[j] = dc_total * f[j];
        dhr[j] = T::ZERO;
    }
}

/// One step of a simple recurrent layer forward: `h = act(z)` per row (`z = x·W + h_prev·RW +
/// b`, `[batch, hidden]`), or `h = h_prev` for a row masked 0.
pub fn rnn_cell_forward<T: Float>(
    z: &[T],
    h_prev: &[T],
    h: &mut [T],
    mask: Option<&[T]>,
    batch: usize,
    hidden: usize,
    act: Unary<T>,
) -> Result<(), KernelError> {
    let n = hidden;
    check_lstm(
        "rnn_cell_forward",
        &[
            ("z", z.len(), n),
            ("h_prev", h_prev.len(), n),
            ("h", h.len(), n),
        ],
        batch,
        mask,
    )?;
    for r in 0..batch {
        let row = r * n..(r + 1) * n;
        if mask.is_some_and(|m| m[r] == T::ZERO) {
            h[row.clone()].copy_from_slice(&h_prev[row]);
        } else {
            h[row.clone()].copy_from_slice(&z[row.clone()]);
            unary_assign(act, &mut h[row]);
        }
    }
    Ok(())
}

/// One step of a simple recurrent layer backward, from the step's output `h`: `dz = (eps +
/// dh) ⊙ act'(h)` per unmasked row and `dh` set to 0 (the caller adds `dz·RWᵀ`); a masked
/// row gets `dz = 0` and keeps `dh` (its state was copied).
#[allow(clippy::too_many_arguments)]
pub fn rnn_cell_backward<T: Float>(
    h: &[T],
    eps: &[T],
    dh: &mut [T],
    dz: &mut [T],
    mask: Option<&[T]>,
    batch: usize,
    hidden: usize,
    act: Unary<T>,
) -> Result<(), KernelError> {
    let n = hidden;
    check_lstm(
        "rnn_cell_backward",
        &[
            ("h", h.len(), n),
            ("eps", eps.len(), n),
            ("dh", dh.len(), n),
            ("dz", dz.len(), n),
        ],
        batch,
        mask,
    )?;
    for r in 0..batch {
        let row = r * n..(r + 1) * n;
        if mask.is_some_and(|m| m[r] == T::ZERO) {
            dz[row].fill(T::ZERO);
            continue;
        }
        for j in row {
            dz[j] = (eps[j] + dh[j]) * act.derivative(h[j]);
            dh[j] = T::ZERO;
        }
    }
    Ok(())
}

/// One GRU step forward ("reset after", PyTorch's formulation) over `batch` rows of `hidden`
/// units, gate blocks `r | z | n` per row.
///
/// `gates` holds `x·W + b` on entry and the activations `r, z, g` on return; `rec` is
/// `h_prev·RW` (`[batch, 3 hidden]`), `rb` the recurrent bias of the candidate (`[hidden]`).
/// `r = σ(x_r + rec_r)`, `z = σ(x_z + rec_z)`, `hn = rec_n + rb` (kept: backward needs it),
/// `g = act(x_n + r ⊙ hn)`, `h = (1 - z) ⊙ g + z ⊙ h_prev`; rows masked 0 keep `h_prev`.
#[allow(clippy::too_many_arguments)]
pub fn gru_cell_forward<T: Float>(
    gates: &mut [T],
    rec: &[T],
    rb: &[T],
    hn: &mut [T],
    h_prev: &[T],
    h: &mut [T],
    mask: Option<&[T]>,
    batch: usize,
    hidden: usize,
    act: Unary<T>,
    gate: Unary<T>,
) -> Result<(), KernelError> {
    let n = hidden;
    check_lstm(
        "gru_cell_forward",
        &[
            ("gates", gates.len(), 3 * n),
            ("rec", rec.len(), 3 * n),
            ("hn", hn.len(), n),
            ("h_prev", h_prev.len(), n),
            ("h", h.len(), n),
        ],
        batch,
        mask,
    )?;
    check_mat("gru_cell_forward", "rb", rb.len(), 1, n)?;
    for r in 0..batch {
        let g = &mut gates[r * 3 * n..(r + 1) * 3 * n];
        let rr = &rec[r * 3 * n..(r + 1) * 3 * n];
        let row = r * n..(r + 1) * n;
        let (hnr, hp, hr) = (&mut hn[row.clone()], &h_prev[row.clone()], &mut h[row]);
        for j in 0..2 * n {
            g[j] += rr[j];
        }
        unary_assign(gate, &mut g[..2 * n]);
        for j in 0..n {
            hnr[j] = rr[2 * n + j] + rb[j];
            g[2 * n + j] += g[j] * hnr[j];
        }
        unary_assign(act, &mut g[2 * n..]);
        if mask.is_some_and(|m| m[r] == T::ZERO) {
            hr.copy_from_slice(hp);
            continue;
        }
        for j in 0..n {
            let z = g[n + j];
            hr[j] = (T::ONE - z) * g[2 * n + j] + z * hp[j];
        }
    }
    Ok(())
}

/// One GRU step backward (the adjoint of [`gru_cell_forward`]): from the step's gate
/// activations, `hn` and `h_prev`, `eps` (output gradient) and `dh` (the next step's state
/// gradient), writes `dx` (the gradient of `x·W + b`, `[batch, 3 hidden]`) and `drec` (of
/// `h_prev·RW`, the candidate block including `rb`), and leaves in `dh` the part of `h_prev`'s
/// gradient that does not go through `drec·RWᵀ` (the caller adds that).
#[allow(clippy::too_many_arguments)]
pub fn gru_cell_backward<T: Float>(
    gates: &[T],
    hn: &[T],
    h_prev: &[T],
    eps: &[T],
    dh: &mut [T],
    dx: &mut [T],
    drec: &mut [T],
    mask: Option<&[T]>,
    batch: usize,
    hidden: usize,
    act: Unary<T>,
    gate: Unary<T>,
) -> Result<(), KernelError> {
    let n = hidden;
    check_lstm(
        "gru_cell_backward",
        &[
            ("gates", gates.len(), 3 * n),
            ("hn", hn.len(), n),
            ("h_prev", h_prev.len(), n),
            ("eps", eps.len(), n),
            ("dh", dh.len(), n),
            ("dx", dx.len(), 3 * n),
            ("drec", drec.len(), 3 * n),
        ],
        batch,
        mask,
    )?;
    for r in 0..batch {
        let g = &gates[r * 3 * n..(r + 1) * 3 * n];
        let (dxr, drr) = (
            &mut dx[r * 3 * n..(r + 1) * 3 * n],
            &mut drec[r * 3 * n..(r + 1) * 3 * n],
        );
        let row = r * n..(r + 1) * n;
        if mask.is_some_and(|m| m[r] == T::ZERO) {
            dxr.fill(T::ZERO);
            drr.fill(T::ZERO);
            continue;
        }
        let (hnr, hp, e, dhr) = (
            &hn[row.clone()],
            &h_prev[row.clone()],
            &eps[row.clone()],
            &mut dh[row],
        );
        for j in 0..n {
            let (rg, z, c) = (g[j], g[n + j], g[2 * n + j]);
            let d = e[j] + dhr[j];
            let dc = d * (T::ONE - z) * act.derivative(c);
            let dz = d * (hp[j] - c) * gate.derivative(z);
            let dr = dc * hnr[j] * gate.derivative(rg);
            dxr[j] = dr;
            dxr[n + j] = dz;
            dxr[2 * n + j] = dc;
            drr[j] = dr;
            drr[n + j] = dz;
            drr[2 * n + j] = dc * rg;
            dhr[j] = d * z;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backward kernel is the adjoint of the forward one: central differences of a
    /// weighted sum of `h` and `c` against the analytic gradients, for one row.
    #[test]
    fn backward_matches_finite_differences() {
        let n = 2;
        let x: Vec<f64> = (0..4 * n).map(|k| 0.3 * k as f64 - 1.0).collect();
        let cp = [0.4, -0.7];
        let (wh, wc) = ([0.9, -1.3], [0.5, 0.2]);
        let f = |z: &[f64]| {
            let mut g = z.to_vec();
            let (mut c, mut h, mut t) = ([0.0; 2], [0.0; 2], [0.0; 2]);
            lstm_cell_forward(
                &mut g,
                &[0.0; 8],
                &cp,
                &[0.0; 2],
                &mut c,
                &mut h,
                &mut t,
                None,
                1,
                n,
                Unary::Tanh,
                Unary::Sigmoid,
            )
            .unwrap();
            (0..n).map(|j| wh[j] * h[j] + wc[j] * c[j]).sum::<f64>()
        };
        let mut g = x.clone();
        let (mut c, mut h, mut t) = ([0.0; 2], [0.0; 2], [0.0; 2]);
        lstm_cell_forward(
            &mut g,
            &[0.0; 8],
            &cp,
            &[0.0; 2],
            &mut c,
            &mut h,
            &mut t,
            None,
            1,
            n,
            Unary::Tanh,
            Unary::Sigmoid,
        )
        .unwrap();
        let (mut dh, mut dc, mut dz) = ([0.0; 2], wc, [0.0; 8]);
        lstm_cell_backward(
            &g,
            &cp,
            &t,
            &wh,
            &mut dh,
            &mut dc,
            &mut dz,
            None,
            1,
            n,
            Unary::Tanh,
            Unary::Sigmoid,
        )
        .unwrap();
        for k in 0..4 * n {
            let (mut p, mut m) = (x.clone(), x.clone());
            p[k] += 1e-6;
            m[k] -= 1e-6;
            let num = (f(&p) - f(&m)) / 2e-6;
            assert!((num - dz[k]).abs() < 1e-8, "gate {k}: {num} vs {}", dz[k]);
        }
    }

    /// The vectorized default pair (tanh, sigmoid) gives the bits of the plain formulas
    /// (`Unary::derivative`), row by row, masked rows included, at a width that leaves a
    /// vector remainder.
    #[test]
    fn tanh_sigmoid_path_equals_the_general_formulas_bit_for_bit() {
        let (b, n) = (3, 37);
        let v = |seed: usize, len: usize, lo: f32, hi: f32| -> Vec<f32> {
            (0..len)
                .map(|k| lo + (hi - lo) * (((k * 7919 + seed * 104_729) % 1000) as f32 / 999.0))
                .collect()
        };
        let gates = v(1, b * 4 * n, 0.01, 0.99);
        let (cp, tc, eps) = (
            v(2, b * n, -2.0, 2.0),
            v(3, b * n, -0.9, 0.9),
            v(4, b * n, -1.0, 1.0),
        );
        let (dh0, dc0) = (v(5, b * n, -0.5, 0.5), v(6, b * n, -0.5, 0.5));
        let mask = [1.0f32, 0.0, 1.0];
        let (mut dh, mut dc, mut dz) = (dh0.clone(), dc0.clone(), vec![0.0f32; b * 4 * n]);
        lstm_cell_backward(
            &gates,
            &cp,
            &tc,
            &eps,
            &mut dh,
            &mut dc,
            &mut dz,
            Some(&mask),
            b,
            n,
            Unary::Tanh,
            Unary::Sigmoid,
        )
        .unwrap();
        let (act, gate) = (Unary::<f32>::Tanh, Unary::<f32>::Sigmoid);
        for (r, &m) in mask.iter().enumerate() {
            for j in 0..n {
                let (k, g) = (r * n + j, r * 4 * n);
                let z = |q: usize| dz[g + q * n + j].to_bits();
                if m == 0.0 {
                    assert_eq!((dh[k], dc[k]), (dh0[k], dc0[k]));
                    assert!((0..4).all(|q| z(q) == 0));
                    continue;
                }
                let (a, f, o, i) = (
                    gates[g + j],
                    gates[g + n + j],
                    gates[g + 2 * n + j],
                    gates[g + 3 * n + j],
                );
                let dh_total = eps[k] + dh0[k];
                let dc_total = dc0[k] + dh_total * o * act.derivative(tc[k]);
                let want = [
                    dc_total * i * act.derivative(a),
                    dc_total * cp[k] * gate.derivative(f),
                    dh_total * tc[k] * gate.derivative(o),
                    dc_total * a * gate.derivative(i),
                ];
                for (q, w) in want.iter().enumerate() {
                    assert_eq!(z(q), w.to_bits(), "row {r} unit {j} gate {q}");
                }
                assert_eq!(dc[k].to_bits(), (dc_total * f).to_bits());
                assert_eq!(dh[k], 0.0);
            }
        }
    }

    #[test]
    fn masked_rows_keep_state_and_pass_gradients() {
        let mut g = [0.5f32; 8];
        let (mut c, mut h, mut t) = ([0.0; 2], [0.0; 2], [0.0; 2]);
        lstm_cell_forward(
            &mut g,
            &[0.0; 8],
            &[1.0, 2.0],
            &[3.0, 4.0],
            &mut c,
            &mut h,
            &mut t,
            Some(&[0.0]),
            1,
            2,
            Unary::Tanh,
            Unary::Sigmoid,
        )
        .unwrap();
        assert_eq!((c, h), ([1.0, 2.0], [3.0, 4.0]));
        let (mut dh, mut dc, mut dz) = ([1.0f32, 2.0], [3.0, 4.0], [9.0; 8]);
        lstm_cell_backward(
            &g,
            &[1.0, 2.0],
            &t,
            &[7.0, 7.0],
            &mut dh,
            &mut dc,
            &mut dz,
            Some(&[0.0]),
            1,
            2,
            Unary::Tanh,
            Unary::Sigmoid,
        )
        .unwrap();
        assert_eq!((dh, dc, dz), ([1.0, 2.0], [3.0, 4.0], [0.0; 8]));
    }

    #[test]
    fn gru_backward_matches_finite_differences() {
        let n = 2;
        let x: Vec<f64> = (0..3 * n).map(|k| 0.37 * k as f64 - 0.8).collect();
        let rec: Vec<f64> = (0..3 * n).map(|k| 0.21 * k as f64 - 0.5).collect();
        let (rb, hp, w) = ([0.1, -0.3], [0.4, -0.6], [0.7, -1.1]);
        let run = |x: &[f64], rec: &[f64]| {
            let (mut g, mut hn, mut h) = (x.to_vec(), [0.0; 2], [0.0; 2]);
            gru_cell_forward(
                &mut g,
                rec,
                &rb,
                &mut hn,
                &hp,
                &mut h,
                None,
                1,
                n,
                Unary::Tanh,
                Unary::Sigmoid,
            )
            .unwrap();
            (g, hn, h)
        };
        let f = |x: &[f64], rec: &[f64]| {
            let h = run(x, rec).2;
            w[0] * h[0] + w[1] * h[1]
        };
        let (g, hn, _) = run(&x, &rec);
        let (mut dh, mut dx, mut drec) = ([0.0; 2], [0.0; 6], [0.0; 6]);
        gru_cell_backward(
            &g,
            &hn,
            &hp,
            &w,
            &mut dh,
            &mut dx,
            &mut drec,
            None,
            1,
            n,
            Unary::Tanh,
            Unary::Sigmoid,
        )
        .unwrap();
        for k in 0..3 * n {
            let (mut p, mut m) = (x.clone(), x.clone());
            p[k] += 1e-6;
            m[k] -= 1e-6;
            let num = (f(&p, &rec) - f(&m, &rec)) / 2e-6;
            assert!((num - dx[k]).abs() < 1e-8, "x {k}: {num} vs {}", dx[k]);
            let (mut p, mut m) = (rec.clone(), rec.clone());
            p[k] += 1e-6;
            m[k] -= 1e-6;
            let num = (f(&x, &p) - f(&x, &m)) / 2e-6;
            assert!(
                (num - drec[k]).abs() < 1e-8,
                "rec {k}: {num} vs {}",
                drec[k]
            );
        }
        // h_prev's direct part: z ⊙ dL/dh.
        for j in 0..n {
            assert!((dh[j] - w[j] * g[n + j]).abs() < 1e-12);
        }
    }
}
