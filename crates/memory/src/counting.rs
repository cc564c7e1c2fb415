//! A counting global allocator, so tests and benchmarks can assert "0 heap allocations per
//! steady-state iteration" and report peak heap bytes. It wraps the system allocator and keeps
//! process-wide atomics plus a per-thread allocation count (so parallel tests can each measure
//! their own thread). Install it in a test or binary crate:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: dl4rs_memory::CountingAllocator = dl4rs_memory::CountingAllocator::new();
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

thread_local! {
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// A `GlobalAlloc` that counts allocations and live bytes.
#[derive(Debug)]
pub struct CountingAllocator {
    allocations: AtomicU64,
    live_bytes: AtomicUsize,
    peak_bytes: AtomicUsize,
}

impl CountingAllocator {
    /// A new counter (usable in a `static`).
    pub const fn new() -> Self {
        CountingAllocator {
            allocations: AtomicU64::new(0),
            live_bytes: AtomicUsize::new(0),
            peak_bytes: AtomicUsize::new(0),
        }
    }

    /// Allocations (including reallocations) made by all threads so far.
    pub fn allocations(&self) -> u64 {
        self.allocations.load(Relaxed)
    }

    /// Allocations made by the calling thread so far.
    pub fn thread_allocations(&self) -> u64 {
        THREAD_ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
    }

    /// Heap bytes live now.
    pub fn live_bytes(&self) -> usize {
        self.live_bytes.load(Relaxed)
    }

    /// Largest `live_bytes` seen since the last [`CountingAllocator::reset_peak`].
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes.load(Relaxed)
    }

    /// Starts a new peak measurement from the current live bytes.
    pub fn reset_peak(&self) {
        self.peak_bytes.store(self.live_bytes(), Relaxed);
    }

    fn count(&self, size: usize) {
        self.allocations.fetch_add(1, Relaxed);
        let _ = THREAD_ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        let live = self.live_bytes.fetch_add(size, Relaxed) + size;
        self.peak_bytes.fetch_max(live, Relaxed);
    }
}

impl Default for CountingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is upheld by `System`; the counting only touches atomics and a
// const-initialized thread-local `Cell` (which never allocates).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.count(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.live_bytes.fetch_sub(layout.size(), Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.live_bytes.fetch_sub(layout.size(), Relaxed);
        self.count(new_size);
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
