//! What the kernels' integration tests share: deterministic test data, bit patterns to
//! compare, the lock around the process-wide dispatch setting, and 2-thread pools.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::{Mutex, MutexGuard, OnceLock};

use dl4rs_kernels::{Float, KernelTeam};

/// `set_dispatch` is process-wide: tests that force a path (or rely on one) hold this lock.
static DISPATCH_LOCK: Mutex<()> = Mutex::new(());

pub fn lock() -> MutexGuard<'static, ()> {
    DISPATCH_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deterministic pseudo-random values in [-scale, scale) (xorshift).
pub fn fill_scaled<T: Float>(n: usize, seed: u64, scale: f64) -> Vec<T> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            T::from_f64(((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale)
        })
        .collect()
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn fill<T: Float>(n: usize, seed: u64) -> Vec<T> {
    fill_scaled(n, seed, 1.0)
}

/// The bit patterns (as f64), for exact comparisons.
pub fn bits<T: Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

/// A 2-thread rayon pool.
pub fn pool2() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
    })
}

/// A 2-thread kernel team.
pub fn team2() -> &'static KernelTeam {
    static TEAM: OnceLock<KernelTeam> = OnceLock::new();
    TEAM.get_or_init(|| KernelTeam::new(2))
}
