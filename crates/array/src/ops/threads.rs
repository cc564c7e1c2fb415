//! Who runs the threads of a matrix product: a per-thread setting and a per-thread
//! [`KernelTeam`].
//!
//! A network (and its workspaces) lives on one thread, so the thread that runs a network
//! owns the product threads too: the first product that wants `n > 1` threads on a thread
//! creates that thread's team of `n` (the thread itself plus `n - 1` workers, which spin
//! for the team's blocktime between products and then park), every later product on the
//! thread reuses it without allocating, and the team stops when its thread ends. Two
//! networks trained on two threads (a data-parallel trainer) so get two teams and never
//! contend for one; the rest of the library (data loading, prefetching) keeps rayon.
//!
//! How many threads: [`ProductThreads::Auto`] (the default) takes
//! `rayon::current_num_threads()`: inside `pool.install(..)` of a rayon `ThreadPool` of
//! `k` threads, products use `k`; elsewhere, the global pool's size. So running each trainer
//! inside its own pool of `cores / workers` threads keeps deciding the product's thread
//! count, as it did when products ran on rayon. [`set_product_threads`] overrides it for the
//! calling thread. Results are the same bits whatever the setting (the gemm fixes each
//! element's summation order).

use std::cell::{Cell, RefCell};

use dl4rs_kernels::{KernelTeam, Parallelism};

/// The calling thread's choice of product threads (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProductThreads {
    /// `rayon::current_num_threads()`, on this thread's team (the default).
    #[default]
    Auto,
    /// Exactly this many (0 and 1: the calling thread alone), on this thread's team.
    Fixed(usize),
    /// `rayon::current_num_threads()` tasks on the current rayon pool instead of a team (its
    /// idle workers sleep between products: slower to start; kept for comparisons).
    Rayon,
}

thread_local! {
    static SETTING: Cell<ProductThreads> = const { Cell::new(ProductThreads::Auto) };
    static TEAM: RefCell<Option<KernelTeam>> = const { RefCell::new(None) };
}

/// Sets how the calling thread's matrix products are threaded; returns the previous setting.
/// Only this thread is affected (a rayon pool's workers each keep their own setting).
///
/// ```
/// use dl4rs_array::ops::{ProductThreads, set_product_threads};
/// let before = set_product_threads(ProductThreads::Fixed(1)); // products on this thread only
/// set_product_threads(before);
/// ```
pub fn set_product_threads(setting: ProductThreads) -> ProductThreads {
    SETTING.with(|s| s.replace(setting))
}

/// The calling thread's setting.
pub fn product_threads() -> ProductThreads {
    SETTING.with(Cell::get)
}

/// Threads the calling thread's next product may use under its setting.
pub fn product_thread_count() -> usize {
    match product_threads() {
        ProductThreads::Auto | ProductThreads::Rayon => rayon::current_num_threads(),
        ProductThreads::Fixed(n) => n,
    }
    .max(1)
}

/// Runs `f` with the parallelism the calling thread's products get: its team (created on
/// first use, re-created when the thread count changes), rayon, or the calling thread alone
/// (one thread; a team that cannot be had, e.g. the OS refuses a thread, or the thread is
/// exiting).
pub(crate) fn with_parallelism<R>(f: impl FnOnce(Parallelism<'_>) -> R) -> R {
    let n = product_thread_count();
    if n <= 1 {
        return f(Parallelism::None);
    }
    if product_threads() == ProductThreads::Rayon {
        return f(Parallelism::Rayon(n));
    }
    let mut f = Some(f);
    let done = TEAM.try_with(|cell| {
        let stale = cell
            .try_borrow()
            .is_ok_and(|t| t.as_ref().map(KernelTeam::threads) != Some(n));
        if stale && let Ok(mut t) = cell.try_borrow_mut() {
            // Dropping the old team joins its workers (no product is running on it: this
            // thread is here, and only this thread uses it).
            *t = None;
            *t = KernelTeam::try_with_blocktime(n, dl4rs_kernels::DEFAULT_BLOCKTIME).ok();
        }
        let team = cell.try_borrow().ok();
        let run = f.take().expect("called once");
        match team.as_ref().and_then(|t| t.as_ref()) {
            Some(t) if t.threads() == n => run(Parallelism::Team(t)),
            _ => run(Parallelism::None),
        }
    });
    match (done, f) {
        (Ok(r), _) => r,
        // The thread-local is gone (the thread is exiting): run on this thread alone.
        (Err(_), Some(f)) => f(Parallelism::None),
        (Err(_), None) => unreachable!("try_with fails only before running its closure"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_is_per_thread_and_follows_rayon_by_default() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(product_threads(), ProductThreads::Auto);
            assert_eq!(product_thread_count(), 3);
            with_parallelism(|p| assert!(matches!(p, Parallelism::Team(t) if t.threads() == 3)));
        });
        let before = set_product_threads(ProductThreads::Fixed(2));
        assert_eq!(before, ProductThreads::Auto);
        with_parallelism(|p| assert!(matches!(p, Parallelism::Team(t) if t.threads() == 2)));
        // Another thread keeps its own (default) setting.
        std::thread::spawn(|| assert_eq!(product_threads(), ProductThreads::Auto))
            .join()
            .unwrap();
        set_product_threads(ProductThreads::Fixed(1));
        with_parallelism(|p| assert_eq!(p, Parallelism::None));
        // A pool worker does not see this thread's setting: it is set where products run.
        pool.install(|| {
            assert_eq!(product_threads(), ProductThreads::Auto);
            set_product_threads(ProductThreads::Rayon);
            with_parallelism(|p| assert_eq!(p, Parallelism::Rayon(3)));
            set_product_threads(ProductThreads::Auto);
        });
        set_product_threads(ProductThreads::Auto);
    }

    #[test]
    fn team_is_reused_then_replaced_when_the_count_changes() {
        set_product_threads(ProductThreads::Fixed(2));
        let first = with_parallelism(|p| match p {
            Parallelism::Team(t) => t as *const KernelTeam as usize,
            _ => 0,
        });
        let again = with_parallelism(|p| match p {
            Parallelism::Team(t) => t as *const KernelTeam as usize,
            _ => 0,
        });
        assert_ne!(first, 0);
        assert_eq!(first, again);
        set_product_threads(ProductThreads::Fixed(3));
        with_parallelism(|p| assert!(matches!(p, Parallelism::Team(t) if t.threads() == 3)));
        set_product_threads(ProductThreads::Auto);
    }
}
