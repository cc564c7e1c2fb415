//! Raw memory and the borrow protocol that makes reading it safe.
//!
//! This is the only module that turns pointers into slices. It owns two things:
//!
//! * [`RawMem`]: a 64-byte-aligned, always-initialized region (zeroed heap memory or a
//!   memory-mapped file) freed on drop.
//! * [`Chunk`]: a `RawMem` shared through `Arc` by a workspace and every array carved from it,
//!   with per-page borrow counters and the validity rule of its kind (generation, ring position,
//!   or forever).
//! * [`Attached`]: where a buffer lives inside a chunk (what `buffer.rs` holds and the
//!   workspace hands out).
//!
//! The protocol (DESIGN.md rules 2 and 3) is a Dekker-style handshake on sequentially
//! consistent atomics. A reader first increments the borrow counter of every page it touches,
//! then checks validity; the owner first publishes invalidation (bumps the generation, or moves
//! the ring's write end), then reads the counters of the memory it is about to reuse. In the
//! single total order of SeqCst operations one of the two sees the other: either the reader
//! sees the invalidation and backs off with an error, or the owner sees the borrow and does not
//! touch that memory (the block is retired, or the ring slot skipped). Memory is freed only
//! when the last `Arc<Chunk>` drops, so a stale handle can never point at freed memory.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ops::Range;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};

use crate::element::Element;
use crate::mapped;

/// Alignment of every block and of every allocation inside one, in bytes.
pub const ALIGN: usize = 64;

/// The alignment the system allocator gives every allocation without being asked (glibc's
/// on 64-bit targets; `calloc` serves requests of at most this alignment).
const MIN_ALIGN: usize = 16;

/// Pages a ring block is split into for borrow tracking when its slot size is not known.
const RING_PAGES: usize = 64;

/// Rounds `n` up to a multiple of [`ALIGN`]; `None` on overflow.
pub(crate) fn align_up(n: usize) -> Option<usize> {
    n.checked_add(ALIGN - 1).map(|v| v & !(ALIGN - 1))
}

enum Backing {
    /// Zero-length region: a dangling, aligned pointer that is never dereferenced.
    Empty,
    /// From `alloc_zeroed(layout)` at `base`, `ptr` the first [`ALIGN`]ed byte in it.
    Heap { base: NonNull<u8>, layout: Layout },
    /// Field order matters: the mapping is unmapped before the file is unlocked and leaves
    /// the registry.
    Mmap {
        _map: memmap2::MmapMut,
        _file: mapped::MappedFile,
    },
}

/// Where an attached buffer lives inside its chunk.
pub(crate) struct Attached {
    pub(crate) chunk: Arc<Chunk>,
    pub(crate) offset: usize,
    /// Generation born in (scoped) or linear ring position (cyclic).
    pub(crate) stamp: u64,
}

/// An owned, 64-byte-aligned, fully initialized memory region.
pub(crate) struct RawMem {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
}

// SAFETY: RawMem owns its region exclusively, like a `Box<[u8]>`. It hands out raw pointers
// only; every dereference is guarded either by Rust borrows of the owning `Buffer` (heap
// buffers) or by the `Chunk` borrow protocol (shared blocks), which work across threads.
unsafe impl Send for RawMem {}
// SAFETY: see `Send`; `&RawMem` exposes no interior mutation other than through those guards.
unsafe impl Sync for RawMem {}

impl RawMem {
    /// Zeroed heap memory of `len` bytes, or `None` if the allocator refuses.
    pub(crate) fn zeroed(len: usize) -> Option<RawMem> {
        if len == 0 {
            return Some(RawMem {
                // Aligned and non-null; never dereferenced because len == 0.
                ptr: NonNull::new(std::ptr::without_provenance_mut(ALIGN))?,
                len: 0,
                backing: Backing::Empty,
            });
        }
        // The allocator's own alignment and `ALIGN - MIN` bytes more, aligned here: the
        // system allocator zeroes an over-aligned request with a pass of stores (which
        // faults in every page at once, ~2 ms for a W1 replica), a plainly aligned one with
        // `calloc`, which gets fresh pages from the kernel already zero and touches them
        // only when they are first used.
        let layout =
            Layout::from_size_align(len.checked_add(ALIGN - MIN_ALIGN)?, MIN_ALIGN).ok()?;
        // SAFETY: `layout` has a non-zero size (len > 0) and a valid power-of-two alignment.
        let base = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        let offset = base.as_ptr().align_offset(ALIGN);
        if offset > ALIGN - MIN_ALIGN {
            // SAFETY: allocated just above with this layout, freed once.
            unsafe { dealloc(base.as_ptr(), layout) };
            return None;
        }
        // SAFETY: `offset + len <= ALIGN - MIN_ALIGN + len`, the allocation's size.
        let ptr = unsafe { base.add(offset) };
        Some(RawMem {
            ptr,
            len,
            backing: Backing::Heap { base, layout },
        })
    }

    /// A memory-mapped file of `len` bytes at `path` (created if missing, extended if
    /// shorter, never truncated), or a new temporary file when `path` is `None`, owned
    /// exclusively by the workspace `ws` (see `mapped.rs`) until the region drops.
    pub(crate) fn mmap(
        path: Option<&Path>,
        len: usize,
        ws: &Arc<WsShared>,
    ) -> Result<RawMem, mapped::OpenFailure> {
        let (path, temp, mut file) = match path {
            Some(p) => (p.to_path_buf(), false, mapped::open(p, len, ws, false)?),
            None => {
                // A new file (create_new): a name left behind by an earlier process with the
                // same id is skipped, never reused.
                static COUNTER: AtomicU64 = AtomicU64::new(0);
                let mut attempt = 0;
                loop {
                    let name = format!(
                        "dl4rs-ws-{}-{}.mmap",
                        std::process::id(),
                        COUNTER.fetch_add(1, SeqCst)
                    );
                    let path = std::env::temp_dir().join(name);
                    match mapped::open(&path, len, ws, true) {
                        Ok(file) => break (path, true, file),
                        Err(mapped::OpenFailure::Io { error, .. })
                            if error.kind() == std::io::ErrorKind::AlreadyExists
                                && attempt < 64 =>
                        {
                            attempt += 1;
                        }
                        Err(failure) => return Err(failure),
                    }
                }
            }
        };
        let io = |error: std::io::Error| mapped::OpenFailure::Io {
            path: path.clone(),
            error,
        };
        // SAFETY: memmap2's contract is that nothing else modifies or truncates the file while
        // the mapping lives. `mapped::open` made this mapping the only one of the file in this
        // process (registry, keyed by device and inode) and holds an exclusive advisory lock
        // that refuses every other dl4rs process, both released only after this mapping is
        // unmapped (field order of `Backing::Mmap`). The file is at least `len` bytes (extended
        // under the lock) and this crate never truncates it. A program that ignores advisory
        // locks could still write or truncate the file: that is outside what a library can
        // rule out, and `LocationPolicy::Mmap` documents that the file must be left alone.
        let mut map =
            unsafe { memmap2::MmapOptions::new().len(len).map_mut(file.file()) }.map_err(io)?;
        if temp {
            file.unlink_temporary(&path);
        }
        let ptr = NonNull::new(map.as_mut_ptr()).ok_or_else(|| {
            io(std::io::Error::other(
                "the operating system returned a null mapping",
            ))
        })?;
        // Page alignment (>= 4096) implies ALIGN.
        debug_assert_eq!(ptr.as_ptr() as usize % ALIGN, 0);
        Ok(RawMem {
            ptr,
            len,
            backing: Backing::Mmap {
                _map: map,
                _file: file,
            },
        })
    }

    /// Size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Fills `[offset, offset + len)` with `byte`.
    ///
    /// # Safety
    /// The range must be in bounds and no reference to any byte of it may be alive.
    pub(crate) unsafe fn fill(&self, offset: usize, len: usize, byte: u8) {
        debug_assert!(offset + len <= self.len, "fill out of bounds");
        if len == 0 {
            return;
        }
        // SAFETY: in bounds by the caller's contract (checked in debug builds); no live
        // references alias the range, so writing through the raw pointer is not a data race.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(offset), byte, len) }
    }

    /// `len` elements of `T` starting at byte `offset`, shared.
    ///
    /// # Safety
    /// `offset` must be a multiple of `align_of::<T>()`, the range in bounds, and no mutable
    /// reference to it may be alive while the slice lives.
    pub(crate) unsafe fn slice<T: Element>(&self, offset: usize, len: usize) -> &[T] {
        debug_assert!(offset + len * size_of::<T>() <= self.len);
        // SAFETY: the pointer is aligned (blocks are 64-aligned, offsets are multiples of 64 or
        // of T's size) and in bounds; the bytes are initialized (memory is zeroed or mapped at
        // creation and only ever written with initialized values), and any bit pattern is a
        // valid `T` (`Element` contract). Aliasing is the caller's contract.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset).cast::<T>(), len) }
    }

    /// `len` elements of `T` starting at byte `offset`, exclusive.
    ///
    /// # Safety
    /// As [`RawMem::slice`], and no other reference to the range may be alive while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut<T: Element>(&self, offset: usize, len: usize) -> &mut [T] {
        debug_assert!(offset + len * size_of::<T>() <= self.len);
        // SAFETY: as `slice`; exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset).cast::<T>(), len) }
    }
}

impl Drop for RawMem {
    fn drop(&mut self) {
        match &self.backing {
            Backing::Empty => {}
            Backing::Heap { base, layout } => {
                // SAFETY: `base` came from `alloc_zeroed(layout)` and is freed exactly once.
                unsafe { dealloc(base.as_ptr(), *layout) }
            }
            // Unmapped when `_map` drops, then the file is unlocked, leaves the registry and
            // (where it could not be unlinked at once) a temporary file is deleted.
            Backing::Mmap { .. } => {}
        }
    }
}

/// The part of a workspace that arrays on any thread may look at: its identity and the atomics
/// their validity depends on.
#[derive(Debug)]
pub(crate) struct WsShared {
    pub(crate) id: Box<str>,
    pub(crate) uid: u64,
    pub(crate) generation: AtomicU64,
    pub(crate) destroyed: AtomicBool,
    pub(crate) open: AtomicBool,
}

impl WsShared {
    pub(crate) fn new(id: &str) -> Arc<WsShared> {
        static UID: AtomicU64 = AtomicU64::new(1);
        Arc::new(WsShared {
            id: id.into(),
            uid: UID.fetch_add(1, SeqCst),
            generation: AtomicU64::new(0),
            destroyed: AtomicBool::new(false),
            open: AtomicBool::new(false),
        })
    }
}

/// What keeps an allocation inside a chunk valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Validity {
    /// Valid while the workspace's generation equals the one it was born in (scoped blocks and
    /// their spills).
    Generation,
    /// Valid until the ring's write end passes its start plus the ring size (cyclic blocks).
    Ring { size: u64 },
    /// Valid until the workspace is destroyed (a ring's spills: never reused).
    Forever,
}

/// Why a validity check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    Generation { current: u64 },
    Ring { write_end: u64, size: u64 },
    Destroyed,
}

/// A region shared by a workspace and the arrays carved from it.
pub(crate) struct Chunk {
    mem: RawMem,
    pub(crate) ws: Arc<WsShared>,
    validity: Validity,
    /// Bytes per borrow-tracking page (the whole chunk for scoped blocks and spills).
    page: usize,
    borrows: Box<[AtomicUsize]>,
    write_end: AtomicU64,
}

impl Chunk {
    /// A chunk over `mem`. For a ring, `slot` is the ring's slot size (one cycle) when known:
    /// borrow-tracking pages are then exactly the slots, so a reader of one slot never makes the
    /// writer of a neighbouring slot skip it. Otherwise a ring gets 64 pages.
    pub(crate) fn new(mem: RawMem, ws: Arc<WsShared>, validity: Validity, slot: usize) -> Chunk {
        let len = mem.len().max(1);
        let page = match validity {
            Validity::Ring { .. } if slot > 0 => slot,
            Validity::Ring { .. } => len.div_ceil(RING_PAGES).max(ALIGN),
            _ => len,
        };
        let pages = len.div_ceil(page);
        Chunk {
            mem,
            ws,
            validity,
            page,
            borrows: (0..pages).map(|_| AtomicUsize::new(0)).collect(),
            write_end: AtomicU64::new(0),
        }
    }

    pub(crate) fn mem(&self) -> &RawMem {
        &self.mem
    }

    pub(crate) fn validity(&self) -> Validity {
        self.validity
    }

    fn pages(&self, offset: usize, bytes: usize) -> Range<usize> {
        if bytes == 0 {
            return 0..0;
        }
        let last = (offset + bytes - 1) / self.page;
        (offset / self.page).min(self.borrows.len())..(last + 1).min(self.borrows.len())
    }

    /// Checks validity without borrowing (for `is_valid` and error reports).
    pub(crate) fn check(&self, stamp: u64) -> Result<(), Invalid> {
        if self.ws.destroyed.load(SeqCst) {
            return Err(Invalid::Destroyed);
        }
        match self.validity {
            Validity::Generation => {
                let current = self.ws.generation.load(SeqCst);
                if current != stamp {
                    return Err(Invalid::Generation { current });
                }
            }
            Validity::Ring { size } => {
                let write_end = self.write_end.load(SeqCst);
                if write_end > stamp.saturating_add(size) {
                    return Err(Invalid::Ring { write_end, size });
                }
            }
            Validity::Forever => {}
        }
        Ok(())
    }

    /// Reader side of the handshake: count the borrow, then check validity. On `Ok` the caller
    /// must call [`Chunk::release`] with the same range exactly once.
    pub(crate) fn acquire(&self, offset: usize, bytes: usize, stamp: u64) -> Result<(), Invalid> {
        for page in self.pages(offset, bytes) {
            self.borrows[page].fetch_add(1, SeqCst);
        }
        let checked = self.check(stamp);
        if checked.is_err() {
            self.release(offset, bytes);
        }
        checked
    }

    /// Ends a borrow started by a successful [`Chunk::acquire`].
    pub(crate) fn release(&self, offset: usize, bytes: usize) {
        for page in self.pages(offset, bytes) {
            self.borrows[page].fetch_sub(1, SeqCst);
        }
    }

    /// Owner side, scoped blocks: total borrows alive. Call after bumping the generation.
    pub(crate) fn borrow_count(&self) -> usize {
        self.borrows.iter().map(|b| b.load(SeqCst)).sum()
    }

    /// Owner side, rings: announce that the ring is about to write up to linear position `end`,
    /// then report whether any page of `[offset, offset + bytes)` is borrowed (if so, the
    /// owner must not write there).
    pub(crate) fn publish_write(&self, end: u64, offset: usize, bytes: usize) -> bool {
        self.write_end.fetch_max(end, SeqCst);
        self.pages(offset, bytes)
            .any(|page| self.borrows[page].load(SeqCst) > 0)
    }

    /// Owner side: fill a range with `byte` (zeroing fresh allocations, poisoning on reset).
    ///
    /// # Safety
    /// The owner must have established (through the handshake) that nothing borrows the range
    /// and that no valid allocation other than the one being created covers it.
    pub(crate) unsafe fn fill(&self, offset: usize, bytes: usize, byte: u8) {
        // SAFETY: forwarded contract.
        unsafe { self.mem.fill(offset, bytes, byte) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_heap_memory_is_aligned_and_zero_at_every_size() {
        // Small (heap arena, recycled: calloc clears it) and large (fresh pages) requests,
        // several at once so that the allocator hands out differently aligned bases.
        let sizes = [1, 15, 16, 63, 64, 65, 4096, 100_000, 1 << 20, (1 << 20) + 3];
        let held: Vec<RawMem> = sizes
            .iter()
            .flat_map(|&n| (0..3).map(move |_| n))
            .map(|n| RawMem::zeroed(n).expect("allocation"))
            .collect();
        for mem in &held {
            assert_eq!(mem.ptr.as_ptr() as usize % ALIGN, 0);
            // SAFETY: in bounds, no other reference to the region exists.
            let bytes = unsafe { mem.slice::<u8>(0, mem.len()) };
            assert!(
                bytes.iter().all(|&b| b == 0),
                "{} bytes not zero",
                mem.len()
            );
            // SAFETY: as above; writing the whole region must stay in its allocation.
            unsafe { mem.fill(0, mem.len(), 0xAB) };
        }
    }
}
