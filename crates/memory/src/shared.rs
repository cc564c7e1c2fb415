//! Shared memory: one heap region several [`Buffer`](crate::Buffer)s view in full, each owned
//! by a different thread, for data the threads use in lock-step phases. ParallelWrapper's
//! replicas hold their parameters so when every round ends with them equal: one copy, which
//! each trainer reads whole in its forward and backward passes and writes one part of (the
//! part it steps), with a barrier between the phases, instead of a private copy per replica
//! kept equal by copying every other part in after every round.
//!
//! The borrow rules are a reader-writer lock's, with ranges for writers and checked instead of
//! waited for: any number of readers of the whole region, or writers of disjoint ranges, never
//! both. A borrow that breaks them is an error ([`WorkspaceError::SharedBorrowConflict`]), not
//! a wait: the threads' own synchronization (the barrier) is what orders the phases, and a
//! conflict means that synchronization is missing, which a wait would hide. The state sits
//! behind a mutex: a borrow is a lock and an unlock, and the unlock that ends a writer's
//! borrow happens before the lock that starts a reader's, which is what makes the written
//! values visible (and what valgrind's race detectors see).
//!
//! The contents' version ([`Buffer::version`](crate::Buffer::version)) is the region's, so a
//! cache derived from them (packed weights) notices a write made through another handle.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::chunk::RawMem;
use crate::element::Element;

/// Writers of disjoint ranges at once, at most (a trainer writes its part one range at a
/// time: one writer per thread).
pub(crate) const MAX_WRITERS: usize = 16;

/// The region and who borrows it.
pub(crate) struct SharedMem {
    mem: RawMem,
    /// Elements of the region (all handles view all of it).
    len: usize,
    borrows: Mutex<Borrows>,
    version: AtomicU64,
}

#[derive(Default)]
struct Borrows {
    readers: usize,
    /// Element ranges being written, in no order.
    writers: [Option<(usize, usize)>; MAX_WRITERS],
}

/// What a refused borrow ran into, for the error message.
pub(crate) enum Conflict {
    /// Readers hold the region.
    Readers(usize),
    /// A writer holds this range.
    Writer(Range<usize>),
    /// [`MAX_WRITERS`] writers hold ranges already.
    TooManyWriters,
}

impl SharedMem {
    /// Zeroed memory for `len` elements of `elem_size` bytes (`None` if the allocator refuses).
    pub(crate) fn zeroed(len: usize, bytes: usize, version: u64) -> Option<SharedMem> {
        Some(SharedMem {
            mem: RawMem::zeroed(bytes)?,
            len,
            borrows: Mutex::new(Borrows::default()),
            version: AtomicU64::new(version),
        })
    }

    fn state(&self) -> MutexGuard<'_, Borrows> {
        // The state is a few counters updated whole under the lock: a panic elsewhere while
        // it was held cannot leave it half-written.
        self.borrows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The contents' version.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Registers a reader of the whole region and returns it.
    pub(crate) fn read<T: Element>(&self) -> Result<&[T], Conflict> {
        let mut s = self.state();
        if let Some((lo, hi)) = s.writers.iter().flatten().next() {
            return Err(Conflict::Writer(*lo..*hi));
        }
        s.readers += 1;
        // SAFETY: the region holds `len` initialized `T`s (zeroed at creation, only ever
        // written through these borrows) at offset 0. No writer is registered, and none can
        // be until this reader is released (`write` refuses while `readers > 0`): nothing
        // mutates the slice while it lives.
        Ok(unsafe { self.mem.slice::<T>(0, self.len) })
    }

    /// Registers a writer of `range` (in elements; in bounds, checked by the caller), with a
    /// new version, and returns that part.
    #[allow(clippy::mut_from_ref)] // the borrow state, not `&mut self`, makes it exclusive
    pub(crate) fn write<T: Element>(
        &self,
        range: Range<usize>,
        version: u64,
    ) -> Result<&mut [T], Conflict> {
        debug_assert!(range.start <= range.end && range.end <= self.len);
        let mut s = self.state();
        if s.readers > 0 {
            return Err(Conflict::Readers(s.readers));
        }
        let overlapping = s
            .writers
            .iter()
            .flatten()
            .find(|(lo, hi)| *lo < range.end && range.start < *hi);
        if let Some((lo, hi)) = overlapping {
            return Err(Conflict::Writer(*lo..*hi));
        }
        let Some(free) = s.writers.iter_mut().find(|w| w.is_none()) else {
            return Err(Conflict::TooManyWriters);
        };
        *free = Some((range.start, range.end));
        self.version.store(version, Ordering::Release);
        // SAFETY: in bounds (the caller checked `range` against the region's length; each
        // element is a `T` at a multiple of its size from the 64-aligned start). No reader is
        // registered and no other writer's range overlaps this one, and neither can be until
        // this writer is released: the slice is the only access to those elements.
        Ok(unsafe {
            self.mem
                .slice_mut::<T>(range.start * size_of::<T>(), range.len())
        })
    }

    /// Ends a reader's borrow.
    pub(crate) fn release_read(&self) {
        let mut s = self.state();
        s.readers = s.readers.saturating_sub(1);
    }

    /// Ends the borrow of the writer of `range`.
    pub(crate) fn release_write(&self, range: Range<usize>) {
        let mut s = self.state();
        let key = Some((range.start, range.end));
        if let Some(w) = s.writers.iter_mut().find(|w| **w == key) {
            *w = None;
        }
    }
}
