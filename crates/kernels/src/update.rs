//! The updaters' arithmetic (DL4J's SGD, Nesterovs, Adam, RmsProp, AdaGrad, and L1/L2 and
//! weight decay) over flat slices: one pass over a network's whole parameter array per step,
//! compiled for AVX-512 or AVX2 when the dispatch allows, like the element-wise maps. Only the
//! vector width differs between paths: each element gets the same separate multiplies, adds,
//! divisions and square roots (no fused multiply-add), so the bits are the same on every path
//! and equal to a plain scalar loop's.
//!
//! The updaters' state (momentum, Adam's moments, RmsProp's and AdaGrad's sums) is flushed to
//! zero once it falls below the smallest normal value ([`flush`]). For a parameter whose
//! gradient is 0 (a weight of a pixel that is always black), Adam's `m` shrinks by `b1` every
//! step and turns subnormal after about 750 steps (f32); on Intel cores every operation on a
//! subnormal takes a microcode assist, and the Adam pass took 54 % of W1's time by its 20th
//! epoch (12 % at its 3rd), halving examples/s. Rust cannot set the FPU's flush-to-zero mode
//! (changing MXCSR is undefined behaviour for LLVM), so the kernel flushes the values itself:
//! one compare and blend per value, the same on every path. What it drops is below 1.2e-38
//! (f32): its share of a parameter's step is far below the parameter's rounding.

use crate::dispatch::{Isa, isa};
use crate::reduce::check_len;
use crate::{Float, KernelError};

#[inline(always)]
fn zip2<T: Float, F: Fn(T, T) -> T>(p: &mut [T], g: &[T], f: F) {
    for (pi, &gi) in p.iter_mut().zip(g) {
        *pi = f(*pi, gi);
    }
}

#[inline(always)]
fn zip3<T: Float, F: Fn(T, T, T) -> (T, T)>(p: &mut [T], g: &[T], s: &mut [T], f: F) {
    for ((pi, &gi), si) in p.iter_mut().zip(g).zip(s.iter_mut()) {
        (*pi, *si) = f(*pi, gi, *si);
    }
}

#[inline(always)]
fn zip4<T: Float, F: Fn(T, T, T, T) -> (T, T, T)>(
    p: &mut [T],
    g: &[T],
    s1: &mut [T],
    s2: &mut [T],
    f: F,
) {
    for (((pi, &gi), ai), bi) in p.iter_mut().zip(g).zip(s1.iter_mut()).zip(s2.iter_mut()) {
        (*pi, *ai, *bi) = f(*pi, gi, *ai, *bi);
    }
}

/// `$name(args.., f)`: `$inner` compiled for AVX-512 or AVX2 when the dispatch resolved to
/// them, else as is (the operations, and so the bits, are the same).
macro_rules! dispatched {
    ($name:ident, $inner:ident, ($($arg:ident: $ty:ty),*), $f:path) => {
        fn $name<T: Float, F: $f>($($arg: $ty,)* f: F) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512<T: Float, F: $f>($($arg: $ty,)* f: F) {
                    $inner($($arg,)* f)
                }
                #[target_feature(enable = "avx2")]
                fn avx2<T: Float, F: $f>($($arg: $ty,)* f: F) {
                    $inner($($arg,)* f)
                }
                let path = isa();
                if path >= Isa::Avx512 {
                    // SAFETY: the dispatch resolves to Avx512 only after checking AVX-512F.
                    return unsafe { avx512($($arg,)* f) };
                }
                if path >= Isa::Avx2 {
                    // SAFETY: the dispatch resolves to Avx2 only after checking AVX2.
                    return unsafe { avx2($($arg,)* f) };
                }
            }
            $inner($($arg,)* f)
        }
    };
}

dispatched!(run2, zip2, (p: &mut [T], g: &[T]), Fn(T, T) -> T);
dispatched!(run3, zip3, (p: &mut [T], g: &[T], s: &mut [T]), Fn(T, T, T) -> (T, T));
dispatched!(
    run4,
    zip4,
    (p: &mut [T], g: &[T], s1: &mut [T], s2: &mut [T]),
    Fn(T, T, T, T) -> (T, T, T)
);

/// `x`, or 0 when `x` is subnormal (see the module docs): updater state never stays
/// subnormal. Branch-free after vectorization (a compare and a blend).
#[inline(always)]
pub fn flush<T: Float>(x: T) -> T {
    if x.abs() < T::MIN_POSITIVE {
        T::ZERO
    } else {
        x
    }
}

// Each updater's arithmetic on one element, shared by the in-place passes and
// [`averaged_step`] so that both give the same bits.

#[inline(always)]
fn sgd_step<T: Float>(lr: T) -> impl Fn(T, T) -> T + Copy {
    move |p, g| p - lr * g
}

#[inline(always)]
fn nesterovs_step<T: Float>(lr: T, mu: T) -> impl Fn(T, T, T) -> (T, T) + Copy {
    move |p, g, v| {
        let next = flush(mu * v - lr * g);
        (p + (-mu * v + (T::ONE + mu) * next), next)
    }
}

#[inline(always)]
fn adam_step<T: Float>(alpha: T, b1: T, b2: T, eps: T) -> impl Fn(T, T, T, T) -> (T, T, T) + Copy {
    move |p, g, m, v| {
        let m = flush(b1 * m + (T::ONE - b1) * g);
        let v = flush(b2 * v + (T::ONE - b2) * g * g);
        (p - alpha * m / (v.sqrt() + eps), m, v)
    }
}

#[inline(always)]
fn rmsprop_step<T: Float>(lr: T, decay: T, eps: T) -> impl Fn(T, T, T) -> (T, T) + Copy {
    move |p, g, c| {
        let c = flush(decay * c + (T::ONE - decay) * g * g);
        (p - lr * g / (c + eps).sqrt(), c)
    }
}

#[inline(always)]
fn adagrad_step<T: Float>(lr: T, eps: T) -> impl Fn(T, T, T) -> (T, T) + Copy {
    move |p, g, h| {
        let h = flush(h + g * g);
        (p - lr * g / (h.sqrt() + eps), h)
    }
}

/// `g + (l2 p + l1 sign(p))`, as `(g, p)`.
#[inline(always)]
fn l1_l2_step<T: Float>(l1: T, l2: T) -> impl Fn(T, T) -> T + Copy {
    move |g, p| {
        let sign = if p > T::ZERO {
            T::ONE
        } else if p < T::ZERO {
            -T::ONE
        } else {
            T::ZERO
        };
        g + (l2 * p + l1 * sign)
    }
}

#[inline(always)]
fn decay_step<T: Float>(k: T) -> impl Fn(T) -> T + Copy {
    move |p| p - k * p
}

fn lens(op: &'static str, p: usize, others: &[(&'static str, usize)]) -> Result<(), KernelError> {
    for &(what, len) in others {
        check_len(op, what, len, p)?;
    }
    Ok(())
}

/// Plain SGD: `p -= lr * g`.
pub fn sgd<T: Float>(lr: T, g: &[T], p: &mut [T]) -> Result<(), KernelError> {
    lens("sgd", p.len(), &[("g", g.len())])?;
    run2(p, g, sgd_step(lr));
    Ok(())
}

/// Nesterov momentum (DL4J's `Nesterovs`): `v' = mu v - lr g`, `p += -mu v + (1 + mu) v'`.
pub fn nesterovs<T: Float>(
    lr: T,
    mu: T,
    g: &[T],
    v: &mut [T],
    p: &mut [T],
) -> Result<(), KernelError> {
    lens("nesterovs", p.len(), &[("g", g.len()), ("v", v.len())])?;
    run3(p, g, v, nesterovs_step(lr, mu));
    Ok(())
}

/// Adam with the bias correction folded into `alpha`:
/// `m' = b1 m + (1 - b1) g`, `v' = b2 v + (1 - b2) g²`, `p -= alpha m' / (sqrt(v') + eps)`.
#[allow(clippy::too_many_arguments)]
pub fn adam<T: Float>(
    alpha: T,
    b1: T,
    b2: T,
    eps: T,
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    p: &mut [T],
) -> Result<(), KernelError> {
    lens(
        "adam",
        p.len(),
        &[("g", g.len()), ("m", m.len()), ("v", v.len())],
    )?;
    run4(p, g, m, v, adam_step(alpha, b1, b2, eps));
    Ok(())
}

/// RmsProp: `c' = d c + (1 - d) g²`, `p -= lr g / sqrt(c' + eps)`.
pub fn rmsprop<T: Float>(
    lr: T,
    decay: T,
    eps: T,
    g: &[T],
    c: &mut [T],
    p: &mut [T],
) -> Result<(), KernelError> {
    lens("rmsprop", p.len(), &[("g", g.len()), ("cache", c.len())])?;
    run3(p, g, c, rmsprop_step(lr, decay, eps));
    Ok(())
}

/// AdaGrad: `h' = h + g²`, `p -= lr g / (sqrt(h') + eps)`.
pub fn adagrad<T: Float>(
    lr: T,
    eps: T,
    g: &[T],
    h: &mut [T],
    p: &mut [T],
) -> Result<(), KernelError> {
    lens("adagrad", p.len(), &[("g", g.len()), ("history", h.len())])?;
    run3(p, g, h, adagrad_step(lr, eps));
    Ok(())
}

/// L1/L2 regularization into the gradient: `g += l2 p + l1 sign(p)` (sign(0) = 0).
pub fn l1_l2<T: Float>(l1: T, l2: T, p: &[T], g: &mut [T]) -> Result<(), KernelError> {
    lens("l1_l2", g.len(), &[("p", p.len())])?;
    run2(g, p, l1_l2_step(l1, l2));
    Ok(())
}

/// Decoupled weight decay after the update: `p -= k p`.
pub fn weight_decay<T: Float>(k: T, p: &mut [T]) {
    #[inline(always)]
    fn decay<T: Float>(p: &mut [T], k: T) {
        let f = decay_step(k);
        for v in p.iter_mut() {
            *v = f(*v);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512<T: Float>(p: &mut [T], k: T) {
            decay(p, k)
        }
        #[target_feature(enable = "avx2")]
        fn avx2<T: Float>(p: &mut [T], k: T) {
            decay(p, k)
        }
        let path = isa();
        if path >= Isa::Avx512 {
            // SAFETY: the dispatch resolves to Avx512 only after checking AVX-512F.
            return unsafe { avx512(p, k) };
        }
        if path >= Isa::Avx2 {
            // SAFETY: the dispatch resolves to Avx2 only after checking AVX2.
            return unsafe { avx2(p, k) };
        }
    }
    decay(p, k)
}

/// One updater step's arithmetic, for [`averaged_step`] (Adam's bias correction folded into
/// `alpha`, as [`adam`] takes it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step<T> {
    /// [`sgd`].
    Sgd {
        /// Learning rate.
        lr: T,
    },
    /// [`nesterovs`].
    Nesterovs {
        /// Learning rate.
        lr: T,
        /// Momentum.
        mu: T,
    },
    /// [`adam`].
    Adam {
        /// Learning rate with the bias correction.
        alpha: T,
        /// First moment decay.
        b1: T,
        /// Second moment decay.
        b2: T,
        /// Epsilon.
        eps: T,
    },
    /// [`rmsprop`].
    RmsProp {
        /// Learning rate.
        lr: T,
        /// Decay of the squared gradients' average.
        decay: T,
        /// Epsilon.
        eps: T,
    },
    /// [`adagrad`].
    AdaGrad {
        /// Learning rate.
        lr: T,
        /// Epsilon.
        eps: T,
    },
    /// No update.
    NoOp,
}

impl<T> Step<T> {
    /// State arrays the updater keeps per parameter.
    pub fn states(&self) -> usize {
        match self {
            Step::Sgd { .. } | Step::NoOp => 0,
            Step::Nesterovs { .. } | Step::RmsProp { .. } | Step::AdaGrad { .. } => 1,
            Step::Adam { .. } => 2,
        }
    }
}

/// One step of `step` in place: [`sgd`], [`nesterovs`], [`adam`], [`rmsprop`] or
/// [`adagrad`] on `p` with gradient `g` and the state arrays it keeps (`s0`, then `s1`;
/// the ones it does not keep are ignored).
pub fn step_in_place<T: Float>(
    step: Step<T>,
    g: &[T],
    s0: &mut [T],
    s1: &mut [T],
    p: &mut [T],
) -> Result<(), KernelError> {
    match step {
        Step::Sgd { lr } => sgd(lr, g, p),
        Step::Nesterovs { lr, mu } => nesterovs(lr, mu, g, s0, p),
        Step::Adam { alpha, b1, b2, eps } => adam(alpha, b1, b2, eps, g, s0, s1, p),
        Step::RmsProp { lr, decay, eps } => rmsprop(lr, decay, eps, g, s0, p),
        Step::AdaGrad { lr, eps } => adagrad(lr, eps, g, s0, p),
        Step::NoOp => Ok(()),
    }
}

/// The mean of `count` updater steps from the same parameters `p` and state `s0`, `s1` (as
/// many as the updater keeps; empty otherwise), one per gradient `grad(c)`, written over
/// them: what averaging replicas that started equal gives after each stepped on its own
/// gradient, in one pass (ParallelWrapper averaging every round; no replica's step is
/// stored). Each step is the in-place passes' arithmetic (`l1_l2` into the gradient when
/// given, the updater, `weight_decay` when given); the steps are summed in order, the first
/// as it is, and the sum multiplied by `scale`, as the exchange sums and scales replicas:
/// with two gradients the bits of stepping both replicas and averaging them.
#[allow(clippy::too_many_arguments)]
pub fn averaged_step<'a, T: Float, G: Fn(usize) -> &'a [T]>(
    step: Step<T>,
    l1_l2: Option<(T, T)>,
    decay: Option<T>,
    count: usize,
    grad: G,
    scale: T,
    p: &mut [T],
    s0: &mut [T],
    s1: &mut [T],
) -> Result<(), KernelError> {
    let n = p.len();
    let states = step.states();
    let want = |k: usize| if states > k { n } else { 0 };
    lens("averaged_step", want(0), &[("s0", s0.len())])?;
    lens("averaged_step", want(1), &[("s1", s1.len())])?;
    if count == 0 {
        return Err(KernelError::InvalidArgument {
            op: "averaged_step",
            what: "expected at least one gradient to average the steps of, but got none",
        });
    }
    for c in 0..count {
        lens("averaged_step", n, &[("gradient", grad(c).len())])?;
    }
    let arrays = Arrays { p, s0, s1 };
    macro_rules! with_reg {
        ($f:expr) => {{
            let f = $f;
            macro_rules! run {
                ($pre:expr, $post:expr) => {
                    multiversioned(Averaging {
                        arrays,
                        count,
                        grad: &grad,
                        scale,
                        pre: $pre,
                        post: $post,
                        f,
                    })
                };
            }
            match (l1_l2, decay) {
                (None, None) => run!(|g, _| g, |p| p),
                (Some((l1, l2)), None) => run!(l1_l2_step(l1, l2), |p| p),
                (None, Some(k)) => run!(|g, _| g, decay_step(k)),
                (Some((l1, l2)), Some(k)) => run!(l1_l2_step(l1, l2), decay_step(k)),
            }
        }};
    }
    match step {
        Step::Sgd { lr } => {
            let f = sgd_step(lr);
            with_reg!(move |p, g, a, b| (f(p, g), a, b))
        }
        Step::Nesterovs { lr, mu } => {
            let f = nesterovs_step(lr, mu);
            with_reg!(move |p, g, a, b| {
                let (p, a) = f(p, g, a);
                (p, a, b)
            })
        }
        Step::Adam { alpha, b1, b2, eps } => with_reg!(adam_step(alpha, b1, b2, eps)),
        Step::RmsProp { lr, decay, eps } => {
            let f = rmsprop_step(lr, decay, eps);
            with_reg!(move |p, g, a, b| {
                let (p, a) = f(p, g, a);
                (p, a, b)
            })
        }
        Step::AdaGrad { lr, eps } => {
            let f = adagrad_step(lr, eps);
            with_reg!(move |p, g, a, b| {
                let (p, a) = f(p, g, a);
                (p, a, b)
            })
        }
        Step::NoOp => with_reg!(|p, _g, a, b| (p, a, b)),
    }
    Ok(())
}

/// The arrays [`averaged_step`] writes (a state array may be empty).
struct Arrays<'s, T> {
    p: &'s mut [T],
    s0: &'s mut [T],
    s1: &'s mut [T],
}

/// One run of [`averaged_step`]'s loops, compiled for the dispatched instruction set
/// ([`multiversioned`]).
trait Kernel {
    fn run(self);
}

/// `kernel.run()` compiled for AVX-512 or AVX2 when the dispatch resolved to them (the
/// operations, and so the bits, are the same on every path).
#[inline(always)]
fn multiversioned<K: Kernel>(kernel: K) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512<K: Kernel>(kernel: K) {
            kernel.run()
        }
        #[target_feature(enable = "avx2")]
        fn avx2<K: Kernel>(kernel: K) {
            kernel.run()
        }
        let path = isa();
        if path >= Isa::Avx512 {
            // SAFETY: the dispatch resolves to Avx512 only after checking AVX-512F.
            return unsafe { avx512(kernel) };
        }
        if path >= Isa::Avx2 {
            // SAFETY: the dispatch resolves to Avx2 only after checking AVX2.
            return unsafe { avx2(kernel) };
        }
    }
    kernel.run()
}

/// [`averaged_step`]'s arguments once the updater and the regularization are closures.
struct Averaging<'s, T, G, Pre, Post, F> {
    arrays: Arrays<'s, T>,
    count: usize,
    grad: &'s G,
    scale: T,
    pre: Pre,
    post: Post,
    f: F,
}

/// One to three contributors (two trainers are the common case; SharedGradients steps its
/// part as the mean of one step) take the fused loop, more the tiles: all give the same
/// bits.
impl<'a, T, G, Pre, Post, F> Kernel for Averaging<'_, T, G, Pre, Post, F>
where
    T: Float,
    G: Fn(usize) -> &'a [T],
    Pre: Fn(T, T) -> T,
    Post: Fn(T) -> T,
    F: Fn(T, T, T, T) -> (T, T, T),
{
    #[inline(always)]
    fn run(self) {
        let Averaging {
            arrays,
            count,
            grad,
            scale,
            pre,
            post,
            f,
        } = self;
        match count {
            1 => {
                let g = grad(0);
                let rows = |r: std::ops::Range<usize>| g[r].iter().map(|&x| [x]);
                averaged_fused(rows, arrays, scale, pre, post, f)
            }
            2 => {
                let (ga, gb) = (grad(0), grad(1));
                let rows = |r: std::ops::Range<usize>| {
                    ga[r.clone()].iter().zip(&gb[r]).map(|(&a, &b)| [a, b])
                };
                averaged_fused(rows, arrays, scale, pre, post, f)
            }
            3 => {
                let (ga, gb, gc) = (grad(0), grad(1), grad(2));
                let rows = |r: std::ops::Range<usize>| {
                    let (ga, gb, gc) = (&ga[r.clone()], &gb[r.clone()], &gc[r]);
                    ga.iter().zip(gb).zip(gc).map(|((&a, &b), &c)| [a, b, c])
                };
                averaged_fused(rows, arrays, scale, pre, post, f)
            }
            _ => averaged_tiles(arrays, count, grad, scale, pre, post, f),
        }
    }
}

/// Elements `lo..lo + k` of a state array, or of `zeros` when the updater keeps no such
/// state (`s` empty): the steps pass it through unchanged, so it stays zeros.
#[inline(always)]
fn state_tile<'s, T>(s: &'s mut [T], zeros: &'s mut [T; TILE], lo: usize, k: usize) -> &'s mut [T] {
    if s.is_empty() {
        &mut zeros[..k]
    } else {
        &mut s[lo..lo + k]
    }
}

/// [`averaged_tiles`] for `N` (1-3) gradients, `rows(lo..hi)` giving each element's
/// gradients as an array: every contributor's step of an element in registers, summed and
/// scaled there, so each array is read and written once (the tiles' running sums cost
/// three stores and loads per element and contributor): on W1's half part with two
/// gradients 34 µs where the tiles took 69 (three: 63 against 93), less than one whole
/// Adam step (40-45 µs).
/// Zipped slices, not indices: indexed, the same loop kept its bounds checks and took
/// 58-60 µs. A state the updater does not keep is a tile of zeros, which the steps pass
/// through unchanged, so it stays zeros.
#[inline(always)]
fn averaged_fused<T, Rows, I, Pre, Post, F, const N: usize>(
    rows: Rows,
    arrays: Arrays<'_, T>,
    scale: T,
    pre: Pre,
    post: Post,
    f: F,
) where
    T: Float,
    Rows: Fn(std::ops::Range<usize>) -> I,
    I: Iterator<Item = [T; N]>,
    Pre: Fn(T, T) -> T,
    Post: Fn(T) -> T,
    F: Fn(T, T, T, T) -> (T, T, T),
{
    let Arrays { p, s0, s1 } = arrays;
    let n = p.len();
    let (mut z0, mut z1) = ([T::ZERO; TILE], [T::ZERO; TILE]);
    let mut lo = 0;
    while lo < n {
        let k = TILE.min(n - lo);
        let (st0, st1) = (
            state_tile(s0, &mut z0, lo, k),
            state_tile(s1, &mut z1, lo, k),
        );
        let olds = p[lo..lo + k]
            .iter_mut()
            .zip(st0.iter_mut())
            .zip(st1.iter_mut());
        for (((p, a), b), g) in olds.zip(rows(lo..lo + k)) {
            let (p0, a0, b0) = (*p, *a, *b);
            let (np, na, nb) = f(p0, pre(g[0], p0), a0, b0);
            let (mut sp, mut sa, mut sb) = (post(np), na, nb);
            for &g in &g[1..] {
                let (np, na, nb) = f(p0, pre(g, p0), a0, b0);
                (sp, sa, sb) = (sp + post(np), sa + na, sb + nb);
            }
            (*p, *a, *b) = (scale * sp, scale * sa, scale * sb);
        }
        lo += k;
    }
}

/// Elements per tile of [`averaged_tiles`]: its three running sums (3 KiB in f32) stay in L1.
const TILE: usize = 256;

#[inline(always)]
fn averaged_tiles<'a, T, G, Pre, Post, F>(
    arrays: Arrays<'_, T>,
    count: usize,
    grad: &G,
    scale: T,
    pre: Pre,
    post: Post,
    f: F,
) where
    T: Float,
    G: Fn(usize) -> &'a [T],
    Pre: Fn(T, T) -> T,
    Post: Fn(T) -> T,
    F: Fn(T, T, T, T) -> (T, T, T),
{
    let Arrays { p, s0, s1 } = arrays;
    let n = p.len();
    let zeros = [T::ZERO; TILE];
    let mut lo = 0;
    while lo < n {
        let k = TILE.min(n - lo);
        let (mut ap, mut a0, mut a1) = ([T::ZERO; TILE], [T::ZERO; TILE], [T::ZERO; TILE]);
        {
            let pt = &p[lo..lo + k];
            // A state the updater does not keep reads as zeros and its sums are dropped.
            let st0 = if s0.is_empty() {
                &zeros[..k]
            } else {
                &s0[lo..lo + k]
            };
            let st1 = if s1.is_empty() {
                &zeros[..k]
            } else {
                &s1[lo..lo + k]
            };
            // Zipped, not indexed: the lengths are then known equal and the loops carry no
            // bounds checks (indexed, they ran at three fifths of the speed).
            let olds = pt.iter().zip(st0).zip(st1);
            let sums = ap[..k].iter_mut().zip(&mut a0[..k]).zip(&mut a1[..k]);
            for (((ap, a0), a1), (((&p, &s0), &s1), &g)) in sums.zip(olds.zip(&grad(0)[lo..])) {
                let (np, n0, n1) = f(p, pre(g, p), s0, s1);
                (*ap, *a0, *a1) = (post(np), n0, n1);
            }
            for c in 1..count {
                let olds = pt.iter().zip(st0).zip(st1);
                let sums = ap[..k].iter_mut().zip(&mut a0[..k]).zip(&mut a1[..k]);
                for (((ap, a0), a1), (((&p, &s0), &s1), &g)) in sums.zip(olds.zip(&grad(c)[lo..])) {
                    let (np, n0, n1) = f(p, pre(g, p), s0, s1);
                    (*ap, *a0, *a1) = (*ap + post(np), *a0 + n0, *a1 + n1);
                }
            }
        }
        for (d, &a) in p[lo..lo + k].iter_mut().zip(&ap[..k]) {
            *d = scale * a;
        }
        if !s0.is_empty() {
            for (d, &a) in s0[lo..lo + k].iter_mut().zip(&a0[..k]) {
                *d = scale * a;
            }
        }
        if !s1.is_empty() {
            for (d, &a) in s1[lo..lo + k].iter_mut().zip(&a1[..k]) {
                *d = scale * a;
            }
        }
        lo += k;
    }
}
