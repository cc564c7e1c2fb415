//! Element-wise loops: binary arithmetic (with scalar, row and column broadcasting), unary
//! activations and their derivatives, `axpy`/`scale`, and a fused bias + activation pass.
//!
//! Every output element is a pure function of its inputs, so results cannot depend on slice
//! alignment or chunking. The loops are written so LLVM vectorizes them; on AVX2 and AVX-512
//! machines the unary maps, `axpy`, `scale` and `scale_into` run in a copy compiled with that
//! instruction set enabled (same operations, no FMA contraction, so bit-identical to the
//! portable copy, only wider: ParallelWrapper's exchange buffer, which moves a network's
//! parameters through the cache every round, took 15 % of the run's samples in the 16-byte
//! SSE loops and 4 % in these, `perf` on W1 averaging every round, AMD EPYC).

use crate::dispatch::{Isa, isa};
use crate::reduce::{check_len, check_mat};
use crate::{Float, KernelError};

/// A binary arithmetic operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `x + y`
    Add,
    /// `x - y`
    Sub,
    /// `x * y`
    Mul,
    /// `x / y`
    Div,
}

/// Expands `$body` once per operation with `$f` bound to a closure, so the match happens
/// outside the loop and each loop is monomorphic (vectorizable).
macro_rules! by_op {
    ($op:expr, $f:ident => $body:expr) => {
        match $op {
            BinaryOp::Add => {
                let $f = |x: T, y: T| x + y;
                $body
            }
            BinaryOp::Sub => {
                let $f = |x: T, y: T| x - y;
                $body
            }
            BinaryOp::Mul => {
                let $f = |x: T, y: T| x * y;
                $body
            }
            BinaryOp::Div => {
                let $f = |x: T, y: T| x / y;
                $body
            }
        }
    };
}

/// `out[i] = a[i] op b[i]`. All three lengths must match.
///
/// ```
/// use dl4rs_kernels::{binary, BinaryOp};
/// let mut out = [0.0f32; 3];
/// binary(BinaryOp::Sub, &[5.0, 6.0, 7.0], &[1.0, 2.0, 3.0], &mut out)?;
/// assert_eq!(out, [4.0; 3]);
/// assert!(binary(BinaryOp::Add, &[1.0f32], &[1.0, 2.0], &mut out).is_err());
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
pub fn binary<T: Float>(op: BinaryOp, a: &[T], b: &[T], out: &mut [T]) -> Result<(), KernelError> {
    check_len("binary", "b", b.len(), a.len())?;
    check_len("binary", "out", out.len(), a.len())?;
    by_op!(op, f => {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    });
    Ok(())
}

/// `a[i] = a[i] op b[i]`.
pub fn binary_assign<T: Float>(op: BinaryOp, a: &mut [T], b: &[T]) -> Result<(), KernelError> {
    check_len("binary_assign", "b", b.len(), a.len())?;
    by_op!(op, f => {
        for (o, &y) in a.iter_mut().zip(b) {
            *o = f(*o, y);
        }
    });
    Ok(())
}

/// `out[i] = a[i] op s`.
pub fn binary_scalar<T: Float>(
    op: BinaryOp,
    a: &[T],
    s: T,
    out: &mut [T],
) -> Result<(), KernelError> {
    check_len("binary_scalar", "out", out.len(), a.len())?;
    by_op!(op, f => {
        for (o, &x) in out.iter_mut().zip(a) {
            *o = f(x, s);
        }
    });
    Ok(())
}

/// `a[i] = a[i] op s`.
pub fn binary_scalar_assign<T: Float>(op: BinaryOp, a: &mut [T], s: T) {
    by_op!(op, f => {
        for o in a.iter_mut() {
            *o = f(*o, s);
        }
    });
}

/// Row broadcast over a row-major `rows x cols` matrix: `out[i, j] = a[i, j] op row[j]`
/// (`row` has length `cols`, e.g. a bias added to every sample).
pub fn binary_row<T: Float>(
    op: BinaryOp,
    a: &[T],
    rows: usize,
    cols: usize,
    row: &[T],
    out: &mut [T],
) -> Result<(), KernelError> {
    check_mat("binary_row", "a", a.len(), rows, cols)?;
    check_len("binary_row", "row", row.len(), cols)?;
    check_mat("binary_row", "out", out.len(), rows, cols)?;
    if cols == 0 {
        return Ok(());
    }
    by_op!(op, f => {
        for (orow, arow) in out.chunks_exact_mut(cols).zip(a.chunks_exact(cols)) {
            for ((o, &x), &y) in orow.iter_mut().zip(arow).zip(row) {
                *o = f(x, y);
            }
        }
    });
    Ok(())
}

/// In-place row broadcast: `a[i, j] = a[i, j] op row[j]`.
pub fn binary_row_assign<T: Float>(
    op: BinaryOp,
    a: &mut [T],
    rows: usize,
    cols: usize,
    row: &[T],
) -> Result<(), KernelError> {
    check_mat("binary_row_assign", "a", a.len(), rows, cols)?;
    check_len("binary_row_assign", "row", row.len(), cols)?;
    if cols == 0 {
        return Ok(());
    }
    by_op!(op, f => {
        for arow in a.chunks_exact_mut(cols) {
            for (o, &y) in arow.iter_mut().zip(row) {
                *o = f(*o, y);
            }
        }
    });
    Ok(())
}

/// Column broadcast: `out[i, j] = a[i, j] op col[i]` (`col` has length `rows`, e.g. dividing
/// each row by its sum).
pub fn binary_col<T: Float>(
    op: BinaryOp,
    a: &[T],
    rows: usize,
    cols: usize,
    col: &[T],
    out: &mut [T],
) -> Result<(), KernelError> {
    check_mat("binary_col", "a", a.len(), rows, cols)?;
    check_len("binary_col", "col", col.len(), rows)?;
    check_mat("binary_col", "out", out.len(), rows, cols)?;
    if cols == 0 {
        return Ok(());
    }
    by_op!(op, f => {
        for ((orow, arow), &y) in out.chunks_exact_mut(cols).zip(a.chunks_exact(cols)).zip(col) {
            for (o, &x) in orow.iter_mut().zip(arow) {
                *o = f(x, y);
            }
        }
    });
    Ok(())
}

/// In-place column broadcast: `a[i, j] = a[i, j] op col[i]`.
pub fn binary_col_assign<T: Float>(
    op: BinaryOp,
    a: &mut [T],
    rows: usize,
    cols: usize,
    col: &[T],
) -> Result<(), KernelError> {
    check_mat("binary_col_assign", "a", a.len(), rows, cols)?;
    check_len("binary_col_assign", "col", col.len(), rows)?;
    if cols == 0 {
        return Ok(());
    }
    by_op!(op, f => {
        for (arow, &y) in a.chunks_exact_mut(cols).zip(col) {
            for o in arow.iter_mut() {
                *o = f(*o, y);
            }
        }
    });
    Ok(())
}

/// A unary map (activation) and, through [`Unary::derivative`], its derivative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary<T> {
    /// `x` (useful for [`bias_act`] without activation).
    Identity,
    /// `e^x` ([`Float::vexp`]).
    Exp,
    /// `ln x`.
    Ln,
    /// `tanh x` ([`Float::vtanh`]).
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `max(x, 0)` (NaN passes through).
    Relu,
    /// `x` for x >= 0, `alpha * x` below.
    LeakyRelu(T),
    /// `x` for x > 0, `alpha * (e^x - 1)` below.
    Elu(T),
    /// `ln(1 + e^x)`, computed as `max(x, 0) + ln_1p(e^-|x|)` so it never overflows.
    Softplus,
    /// GELU, tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    Gelu,
    /// `|x|`.
    Abs,
    /// `sqrt x`.
    Sqrt,
    /// `x^2`.
    Square,
}

/// What a derivative is computed from: the map's input `x` or its output `y`. Backward
/// passes keep whichever [`Unary::grad_from`] names (outputs avoid recomputing e.g. exp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradFrom {
    /// The input `x`.
    Input,
    /// The output `y = f(x)`.
    Output,
}

const GELU_C: f64 = 0.797_884_560_802_865_4; // sqrt(2/pi)
const GELU_K: f64 = 0.044_715;

#[inline(always)]
fn sigmoid<T: Float>(x: T) -> T {
    T::ONE / (T::ONE + (-x).vexp())
}

#[inline(always)]
fn gelu<T: Float>(x: T) -> T {
    let half = T::from_f64(0.5);
    let inner = T::from_f64(GELU_C) * (x + T::from_f64(GELU_K) * x * x * x);
    half * x * (T::ONE + inner.vtanh())
}

#[inline(always)]
fn gelu_grad<T: Float>(x: T) -> T {
    let half = T::from_f64(0.5);
    let c = T::from_f64(GELU_C);
    let k = T::from_f64(GELU_K);
    let t = (c * (x + k * x * x * x)).vtanh();
    half * (T::ONE + t) + half * x * (T::ONE - t * t) * c * (T::ONE + T::from_f64(3.0) * k * x * x)
}

macro_rules! by_unary {
    ($op:expr, $f:ident => $body:expr) => {
        match $op {
            Unary::Identity => {
                let $f = |x: T| x;
                $body
            }
            Unary::Exp => {
                let $f = |x: T| x.vexp();
                $body
            }
            Unary::Ln => {
                let $f = |x: T| x.ln();
                $body
            }
            Unary::Tanh => {
                let $f = |x: T| x.vtanh();
                $body
            }
            Unary::Sigmoid => {
                let $f = |x: T| sigmoid(x);
                $body
            }
            Unary::Relu => {
                let $f = |x: T| if x < T::ZERO { T::ZERO } else { x };
                $body
            }
            Unary::LeakyRelu(a) => {
                let $f = move |x: T| if x < T::ZERO { a * x } else { x };
                $body
            }
            Unary::Elu(a) => {
                let $f = move |x: T| {
                    if x > T::ZERO {
                        x
                    } else {
                        a * (x.vexp() - T::ONE)
                    }
                };
                $body
            }
            Unary::Softplus => {
                let $f = |x: T| {
                    let pos = if x > T::ZERO { x } else { T::ZERO };
                    pos + (-x.abs()).vexp().ln_1p()
                };
                $body
            }
            Unary::Gelu => {
                let $f = |x: T| gelu(x);
                $body
            }
            Unary::Abs => {
                let $f = |x: T| x.abs();
                $body
            }
            Unary::Sqrt => {
                let $f = |x: T| x.sqrt();
                $body
            }
            Unary::Square => {
                let $f = |x: T| x * x;
                $body
            }
        }
    };
}

/// Derivative closures, each taking what `grad_from` names.
macro_rules! by_grad {
    ($op:expr, $f:ident => $body:expr) => {
        match $op {
            Unary::Identity => {
                let $f = |_s: T| T::ONE;
                $body
            }
            Unary::Exp => {
                let $f = |y: T| y;
                $body
            }
            Unary::Ln => {
                let $f = |x: T| T::ONE / x;
                $body
            }
            Unary::Tanh => {
                let $f = |y: T| T::ONE - y * y;
                $body
            }
            Unary::Sigmoid => {
                let $f = |y: T| y * (T::ONE - y);
                $body
            }
            Unary::Relu => {
                let $f = |y: T| if y > T::ZERO { T::ONE } else { T::ZERO };
                $body
            }
            Unary::LeakyRelu(a) => {
                let $f = move |x: T| if x < T::ZERO { a } else { T::ONE };
                $body
            }
            Unary::Elu(a) => {
                let $f = move |x: T| if x > T::ZERO { T::ONE } else { a * x.vexp() };
                $body
            }
            Unary::Softplus => {
                let $f = |x: T| sigmoid(x);
                $body
            }
            Unary::Gelu => {
                let $f = |x: T| gelu_grad(x);
                $body
            }
            Unary::Abs => {
                let $f = |x: T| {
                    if x > T::ZERO {
                        T::ONE
                    } else if x < T::ZERO {
                        -T::ONE
                    } else {
                        T::ZERO
                    }
                };
                $body
            }
            Unary::Sqrt => {
                let $f = |y: T| T::from_f64(0.5) / y;
                $body
            }
            Unary::Square => {
                let $f = |x: T| T::from_f64(2.0) * x;
                $body
            }
        }
    };
}

impl<T: Float> Unary<T> {
    /// The map at one point.
    pub fn apply(self, x: T) -> T {
        by_unary!(self, f => f(x))
    }

    /// Whether [`Unary::derivative`] wants the input or the output.
    pub fn grad_from(self) -> GradFrom {
        match self {
            Unary::Identity
            | Unary::Exp
            | Unary::Tanh
            | Unary::Sigmoid
            | Unary::Relu
            | Unary::Sqrt => GradFrom::Output,
            Unary::Ln
            | Unary::LeakyRelu(_)
            | Unary::Elu(_)
            | Unary::Softplus
            | Unary::Gelu
            | Unary::Abs
            | Unary::Square => GradFrom::Input,
        }
    }

    /// `f'` at one point, given the input or output as [`Unary::grad_from`] says
    /// (e.g. `Sigmoid.derivative(y) = y (1 - y)`, `Gelu.derivative(x)`).
    pub fn derivative(self, saved: T) -> T {
        by_grad!(self, f => f(saved))
    }
}

#[inline(always)]
fn map_into<T: Float, F: Fn(T) -> T>(x: &[T], out: &mut [T], f: F) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

#[inline(always)]
fn acc_into<T: Float, F: Fn(T) -> T>(x: &[T], out: &mut [T], f: F) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o += f(v);
    }
}

#[inline(always)]
fn map_in_place<T: Float, F: Fn(T) -> T>(x: &mut [T], f: F) {
    for v in x.iter_mut() {
        *v = f(*v);
    }
}

#[inline(always)]
fn zip_in_place<T: Float, F: Fn(T) -> T>(saved: &[T], g: &mut [T], f: F) {
    for (o, &s) in g.iter_mut().zip(saved) {
        *o *= f(s);
    }
}

#[inline(always)]
fn zip_into<T: Float, F: Fn(T) -> T>(saved: &[T], go: &[T], gi: &mut [T], f: F) {
    for ((o, &s), &g) in gi.iter_mut().zip(saved).zip(go) {
        *o = g * f(s);
    }
}

/// Runs `$call` in a function compiled with AVX-512 or AVX2 enabled when the dispatch allows,
/// else as is. Only the code generation differs (the vector width): the operations and thus
/// the bits are the same.
macro_rules! multiversion {
    ($name:ident, $name512:ident, fn($($arg:ident: $ty:ty),*) => $inner:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $name<T: Float, F: Fn(T) -> T>($($arg: $ty),*, f: F) {
            $inner($($arg),*, f)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        fn $name512<T: Float, F: Fn(T) -> T>($($arg: $ty),*, f: F) {
            $inner($($arg),*, f)
        }
    };
}
multiversion!(map_into_avx2, map_into_avx512, fn(x: &[T], out: &mut [T]) => map_into);
multiversion!(acc_into_avx2, acc_into_avx512, fn(x: &[T], out: &mut [T]) => acc_into);
multiversion!(map_in_place_avx2, map_in_place_avx512, fn(x: &mut [T]) => map_in_place);
multiversion!(zip_in_place_avx2, zip_in_place_avx512, fn(saved: &[T], g: &mut [T]) => zip_in_place);
multiversion!(zip_into_avx2, zip_into_avx512, fn(saved: &[T], go: &[T], gi: &mut [T]) => zip_into);

#[inline(always)]
fn use_avx2() -> bool {
    cfg!(target_arch = "x86_64") && isa() >= Isa::Avx2
}

#[inline(always)]
fn use_avx512() -> bool {
    cfg!(target_arch = "x86_64") && isa() >= Isa::Avx512
}

macro_rules! run {
    ($plain:ident, $avx:ident, $avx512:ident, $($arg:expr),*) => {{
        #[cfg(target_arch = "x86_64")]
        if use_avx512() {
            // SAFETY: `use_avx512` is true only when the dispatch resolved to a path whose CPU
            // check included AVX-512F.
            unsafe { $avx512($($arg),*) };
        } else if use_avx2() {
            // SAFETY: `use_avx2` is true only when the dispatch resolved to a path whose CPU
            // check included AVX2.
            unsafe { $avx($($arg),*) };
        } else {
            $plain($($arg),*);
        }
        #[cfg(not(target_arch = "x86_64"))]
        $plain($($arg),*);
    }};
}

/// `out[i] = op(x[i])`.
///
/// ```
/// use dl4rs_kernels::{unary, Unary};
/// let mut y = [0.0f32; 3];
/// unary(Unary::LeakyRelu(0.1), &[-2.0, 0.0, 3.0], &mut y)?;
/// assert_eq!(y, [-0.2, 0.0, 3.0]);
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
pub fn unary<T: Float>(op: Unary<T>, x: &[T], out: &mut [T]) -> Result<(), KernelError> {
    check_len("unary", "out", out.len(), x.len())?;
    by_unary!(op, f => run!(map_into, map_into_avx2, map_into_avx512, x, out, f));
    Ok(())
}

/// `x[i] = op(x[i])`.
pub fn unary_assign<T: Float>(op: Unary<T>, x: &mut [T]) {
    by_unary!(op, f => run!(map_in_place, map_in_place_avx2, map_in_place_avx512, x, f));
}

/// Backward of a unary map: `grad_in[i] = grad_out[i] * f'(saved[i])`, where `saved` is the
/// forward input or output as [`Unary::grad_from`] says.
///
/// ```
/// use dl4rs_kernels::{unary_grad, GradFrom, Unary};
/// let y = [0.5f32, 0.0, 1.0]; // relu outputs
/// assert_eq!(Unary::<f32>::Relu.grad_from(), GradFrom::Output);
/// let mut gi = [0.0f32; 3];
/// unary_grad(Unary::Relu, &y, &[1.0, 1.0, 2.0], &mut gi)?;
/// assert_eq!(gi, [1.0, 0.0, 2.0]);
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
pub fn unary_grad<T: Float>(
    op: Unary<T>,
    saved: &[T],
    grad_out: &[T],
    grad_in: &mut [T],
) -> Result<(), KernelError> {
    check_len("unary_grad", "grad_out", grad_out.len(), saved.len())?;
    check_len("unary_grad", "grad_in", grad_in.len(), saved.len())?;
    by_grad!(op, f => run!(zip_into, zip_into_avx2, zip_into_avx512, saved, grad_out, grad_in, f));
    Ok(())
}

/// In-place backward: `grad[i] *= f'(saved[i])`.
pub fn unary_grad_assign<T: Float>(
    op: Unary<T>,
    saved: &[T],
    grad: &mut [T],
) -> Result<(), KernelError> {
    check_len("unary_grad_assign", "grad", grad.len(), saved.len())?;
    by_grad!(op, f => run!(zip_in_place, zip_in_place_avx2, zip_in_place_avx512, saved, grad, f));
    Ok(())
}

/// `y += alpha * x` (separate multiply and add, no FMA, so every path agrees).
pub fn axpy<T: Float>(alpha: T, x: &[T], y: &mut [T]) -> Result<(), KernelError> {
    check_len("axpy", "y", y.len(), x.len())?;
    let f = |v: T| alpha * v;
    run!(acc_into, acc_into_avx2, acc_into_avx512, x, y, f);
    Ok(())
}

/// `x *= alpha`.
pub fn scale<T: Float>(alpha: T, x: &mut [T]) {
    let f = |v: T| alpha * v;
    run!(map_in_place, map_in_place_avx2, map_in_place_avx512, x, f);
}

/// `out = alpha * x`.
///
/// ```
/// let mut out = [0.0f32; 3];
/// dl4rs_kernels::scale_into(0.5, &[2.0, -4.0, 1.0], &mut out)?;
/// assert_eq!(out, [1.0, -2.0, 0.5]);
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
pub fn scale_into<T: Float>(alpha: T, x: &[T], out: &mut [T]) -> Result<(), KernelError> {
    check_len("scale_into", "out", out.len(), x.len())?;
    let f = |v: T| alpha * v;
    run!(map_into, map_into_avx2, map_into_avx512, x, out, f);
    Ok(())
}

/// Fused epilogue of a dense layer over a row-major `rows x cols` gemm output:
/// `c[i, j] = act(c[i, j] + bias[j])`, storing `c + bias` into `pre` when given (for
/// activations whose derivative needs the input). One pass per row while it is in cache.
pub fn bias_act<T: Float>(
    c: &mut [T],
    rows: usize,
    cols: usize,
    bias: &[T],
    act: Unary<T>,
    mut pre: Option<&mut [T]>,
) -> Result<(), KernelError> {
    check_mat("bias_act", "c", c.len(), rows, cols)?;
    check_len("bias_act", "bias", bias.len(), cols)?;
    if let Some(p) = pre.as_deref() {
        check_mat("bias_act", "pre", p.len(), rows, cols)?;
    }
    if cols == 0 {
        return Ok(());
    }
    for (i, row) in c.chunks_exact_mut(cols).enumerate() {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
        if let Some(p) = pre.as_deref_mut() {
            p[i * cols..(i + 1) * cols].copy_from_slice(row);
        }
        unary_assign(act, row);
    }
    Ok(())
}
