//! Instruction-set dispatch. The best path is detected once and cached in an atomic, so a
//! kernel call pays one relaxed load. Tests and benchmarks may force a path with
//! [`set_dispatch`]; the setting is process-wide.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::KernelError;

/// Which code path the kernels use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// The best path this CPU supports (the default).
    Auto,
    /// Plain Rust, no `unsafe` SIMD intrinsics; the only path on non-x86 targets.
    Portable,
    /// AVX2 + FMA microkernels.
    Avx2,
    /// AVX-512F microkernels.
    Avx512,
}

/// The resolved path. `pub` inside a private module so the sealed `Float` trait can name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust.
    Portable = 1,
    /// AVX2 + FMA.
    Avx2 = 2,
    /// AVX-512F.
    Avx512 = 3,
}

static CURRENT: AtomicU8 = AtomicU8::new(0);

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // The AVX-512 path also runs AVX2 loops (LSTM cells, pack_b), so it needs AVX2+FMA
        // too (every AVX-512F CPU has them; this keeps the claim checked).
        std::arch::is_x86_feature_detected!("avx512f") && has_avx2()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn detect() -> Isa {
    if has_avx512() {
        Isa::Avx512
    } else if has_avx2() {
        Isa::Avx2
    } else {
        Isa::Portable
    }
}

/// The path in effect, detecting on first use.
#[inline]
pub(crate) fn isa() -> Isa {
    match CURRENT.load(Ordering::Relaxed) {
        1 => Isa::Portable,
        2 => Isa::Avx2,
        3 => Isa::Avx512,
        _ => {
            let d = detect();
            // A racing set_dispatch may win; either value is a valid choice.
            let _ = CURRENT.compare_exchange(0, d as u8, Ordering::Relaxed, Ordering::Relaxed);
            d
        }
    }
}

/// Forces a code path for all later kernel calls in this process (`Auto` re-detects).
/// Fails, leaving the setting unchanged, if the CPU lacks the instructions.
///
/// ```
/// use dl4rs_kernels::{set_dispatch, current_dispatch, Dispatch};
/// set_dispatch(Dispatch::Portable)?;
/// assert_eq!(current_dispatch(), Dispatch::Portable);
/// set_dispatch(Dispatch::Auto)?;
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
pub fn set_dispatch(d: Dispatch) -> Result<(), KernelError> {
    let isa = match d {
        Dispatch::Auto => detect(),
        Dispatch::Portable => Isa::Portable,
        Dispatch::Avx2 if has_avx2() => Isa::Avx2,
        Dispatch::Avx2 => {
            return Err(KernelError::UnsupportedDispatch {
                requested: "Avx2",
                missing: "avx2+fma",
            });
        }
        Dispatch::Avx512 if has_avx512() => Isa::Avx512,
        Dispatch::Avx512 => {
            return Err(KernelError::UnsupportedDispatch {
                requested: "Avx512",
                missing: "avx512f",
            });
        }
    };
    CURRENT.store(isa as u8, Ordering::Relaxed);
    Ok(())
}

/// The path in effect (never `Auto`).
pub fn current_dispatch() -> Dispatch {
    match isa() {
        Isa::Portable => Dispatch::Portable,
        Isa::Avx2 => Dispatch::Avx2,
        Isa::Avx512 => Dispatch::Avx512,
    }
}

/// The paths this CPU can run, best last. Tests iterate over it.
pub fn available_dispatches() -> &'static [Dispatch] {
    if has_avx512() {
        &[Dispatch::Portable, Dispatch::Avx2, Dispatch::Avx512]
    } else if has_avx2() {
        &[Dispatch::Portable, Dispatch::Avx2]
    } else {
        &[Dispatch::Portable]
    }
}
