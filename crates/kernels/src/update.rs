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

fn lens(op: &'static str, p: usize, others: &[(&'static str, usize)]) -> Result<(), KernelError> {
    for &(what, len) in others {
        check_len(op, what, len, p)?;
    }
    Ok(())
}

/// Plain SGD: `p -= lr * g`.
pub fn sgd<T: Float>(lr: T, g: &[T], p: &mut [T]) -> Result<(), KernelError> {
    lens("sgd", p.len(), &[("g", g.len())])?;
    run2(p, g, |p, g| p - lr * g);
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
    run3(p, g, v, |p, g, v| {
        let next = flush(mu * v - lr * g);
        (p + (-mu * v + (T::ONE + mu) * next), next)
    });
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
    run4(p, g, m, v, |p, g, m, v| {
        let m = flush(b1 * m + (T::ONE - b1) * g);
        let v = flush(b2 * v + (T::ONE - b2) * g * g);
        (p - alpha * m / (v.sqrt() + eps), m, v)
    });
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
    run3(p, g, c, |p, g, c| {
        let c = flush(decay * c + (T::ONE - decay) * g * g);
        (p - lr * g / (c + eps).sqrt(), c)
    });
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
    run3(p, g, h, |p, g, h| {
        let h = flush(h + g * g);
        (p - lr * g / (h.sqrt() + eps), h)
    });
    Ok(())
}

/// L1/L2 regularization into the gradient: `g += l2 p + l1 sign(p)` (sign(0) = 0).
pub fn l1_l2<T: Float>(l1: T, l2: T, p: &[T], g: &mut [T]) -> Result<(), KernelError> {
    lens("l1_l2", g.len(), &[("p", p.len())])?;
    run2(g, p, |g, p| {
        let sign = if p > T::ZERO {
            T::ONE
        } else if p < T::ZERO {
            -T::ONE
        } else {
            T::ZERO
        };
        g + (l2 * p + l1 * sign)
    });
    Ok(())
}

/// Decoupled weight decay after the update: `p -= k p`.
pub fn weight_decay<T: Float>(k: T, p: &mut [T]) {
    #[inline(always)]
    fn decay<T: Float>(p: &mut [T], k: T) {
        for v in p.iter_mut() {
            *v -= k * *v;
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
