//! The element trait. Kernels are written once, generic over [`Float`], and instantiated for
//! `f32` and `f64` only: the trait is sealed because every implementation needs its own
//! microkernels and vectorizable transcendental functions.

use core::fmt::{Debug, Display};
use core::iter::Sum;
use core::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use crate::gemm::kernels::GemmSpec;

pub(crate) mod sealed {
    /// Per-type kernel tables; private so that nobody outside can implement [`super::Float`].
    pub trait Sealed: Sized {
        /// The gemm kernels and blocking for one instruction-set path.
        fn gemm_spec(isa: crate::dispatch::Isa) -> crate::gemm::kernels::GemmSpec<Self>;
    }
}

/// A floating-point element type the kernels work on: `f32` or `f64`.
///
/// Besides the arithmetic operators it provides the scalar functions the vectorized loops use.
/// [`Float::vexp`] and [`Float::vtanh`] are branch-free for `f32` (a polynomial that LLVM
/// vectorizes, within 1-2 ulp, see their docs) and are `std`'s functions for `f64`.
pub trait Float:
    sealed::Sealed
    + Copy
    + Send
    + Sync
    + 'static
    + Debug
    + Display
    + Default
    + PartialEq
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Negative infinity (the identity of `max`).
    const NEG_INFINITY: Self;
    /// Machine epsilon.
    const EPSILON: Self;
    /// The smallest positive normal value: below it lie the subnormals.
    const MIN_POSITIVE: Self;
    /// Converts from `f64`, rounding to nearest.
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// `self * a + b` with one rounding.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Natural logarithm (`std`).
    fn ln(self) -> Self;
    /// `ln(1 + self)`, accurate near 0 (`std`).
    fn ln_1p(self) -> Self;
    /// Whether this is NaN.
    fn is_nan(self) -> bool;
    /// e^self, vectorizable. `f32`: Cephes-style range reduction and degree-6 polynomial,
    /// no branches; 1 ulp max error against the correctly rounded result on a 2M-point sweep
    /// of [-87, 88.7] (the test asserts <= 2), returns
    /// 0 below -87.33 (where `f32::exp` is subnormal), +inf above 88.72, NaN for NaN.
    /// `f64`: `f64::exp`.
    fn vexp(self) -> Self;
    /// tanh(self), vectorizable. `f32`: odd polynomial for |x| < 0.625, `1 - 2/(e^{2|x|}+1)`
    /// above; 1 ulp max error against the correctly rounded result on a 2M-point sweep of
    /// [-12, 12] plus tiny arguments (the test asserts <= 4). `f64`: `f64::tanh`.
    fn vtanh(self) -> Self;
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    const EPSILON: Self = f32::EPSILON;
    const MIN_POSITIVE: Self = f32::MIN_POSITIVE;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f32::ln(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        f32::ln_1p(self)
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    #[inline(always)]
    fn vexp(self) -> Self {
        exp_f32(self)
    }
    #[inline(always)]
    fn vtanh(self) -> Self {
        tanh_f32(self)
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    const EPSILON: Self = f64::EPSILON;
    const MIN_POSITIVE: Self = f64::MIN_POSITIVE;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f64::ln(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    #[inline(always)]
    fn vexp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn vtanh(self) -> Self {
        f64::tanh(self)
    }
}

impl sealed::Sealed for f32 {
    fn gemm_spec(isa: crate::dispatch::Isa) -> GemmSpec<Self> {
        crate::gemm::kernels::spec_f32(isa)
    }
}

impl sealed::Sealed for f64 {
    fn gemm_spec(isa: crate::dispatch::Isa) -> GemmSpec<Self> {
        crate::gemm::kernels::spec_f64(isa)
    }
}

/// Branch-free expf. Every operation is an add, multiply, compare-select or integer bit
/// operation so that LLVM turns a loop over it into SIMD code. No `mul_add`: without the FMA
/// target feature that becomes a libm call, and keeping plain ops makes the portable and the
/// AVX2 build give bit-identical results.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in a part exact in few bits and a correction, so r = x - n ln2 is exact-ish.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer and leaves that integer in the low mantissa
    // bits, avoiding float->int conversion (which does not vectorize well with saturation).
    const MAGIC: f32 = 12_582_912.0;
    const HI: f32 = 88.722_83;
    const LO: f32 = -87.336_54;
    let xc = x.clamp(LO, HI);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * (r * r) + r + 1.0;
    // low bits of t hold n (two's complement inside the mantissa). n spans [-126, 128], one
    // more than a biased exponent field holds at each end, so scale by 2^(n/2) twice.
    let n = t.to_bits().wrapping_sub(0x4B40_0000) as i32;
    let n1 = n >> 1;
    let n2 = n - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    let res = y * s1 * s2;
    if x > HI {
        f32::INFINITY
    } else if x < LO {
        0.0
    } else if x.is_nan() {
        x
    } else {
        res
    }
}

/// Branch-free tanhf, see [`Float::vtanh`].
#[inline(always)]
fn tanh_f32(x: f32) -> f32 {
    let ax = x.abs();
    let z = x * x;
    let p = -5.704_988_7e-3_f32;
    let p = p * z + 2.063_908_8e-2;
    let p = p * z - 5.373_971_6e-2;
    let p = p * z + 1.333_144_2e-1;
    let p = p * z - 3.333_328e-1;
    let small = p * z * x + x;
    let e = exp_f32(2.0 * ax);
    let big = 1.0 - 2.0 / (e + 1.0);
    let big = if x < 0.0 { -big } else { big };
    if ax < 0.625 { small } else { big }
}
