//! `Buffer<T>`: the typed allocation the array crate holds. A buffer is either *detached* (its
//! own 64-byte-aligned heap memory, valid until dropped), *attached* (a range of a workspace
//! chunk, valid while its cycle lasts) or *shared* (a heap region other buffers, on other
//! threads, view too: `shared.rs`). Every access goes through [`Buffer::read`] or
//! [`Buffer::write`], which check validity and hold a counted borrow for as long as the guard
//! lives, so an attached buffer can never show memory that a later cycle reuses.
//!
//! This module owns the typed view of memory; it does not decide placement (that is the
//! thread's workspace manager, `manager.rs`) or sizes (the workspace, `workspace.rs`).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut, Range};
use std::sync::Arc;

use crate::chunk::{Attached, Invalid, RawMem};
use crate::element::Element;
use crate::error::WorkspaceError;
use crate::manager::{self, Target, Workspace};
use crate::shared::{Conflict, MAX_WRITERS, SharedMem};

enum Repr {
    Detached(RawMem),
    Attached(Attached),
    Shared(Arc<SharedMem>),
}

/// A typed allocation on the heap or in a workspace.
///
/// ```
/// use dl4rs_memory::{Buffer, WorkspaceConfig, get_and_activate_workspace};
///
/// let cfg = WorkspaceConfig::default();
/// let kept = {
///     let _scope = get_and_activate_workspace(&cfg, "LOOP").unwrap();
///     let mut buf = Buffer::<f32>::zeros(4).unwrap();
///     assert!(buf.is_attached());
///     buf.write().unwrap().copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
///     let copy = buf.detach().unwrap(); // heap copy that outlives the cycle
///     drop(_scope);
///     // The cycle ended: the attached buffer is stale, and says so.
///     assert!(buf.read().is_err());
///     copy
/// };
/// assert_eq!(&*kept.read().unwrap(), &[1.0, 2.0, 3.0, 4.0]);
/// ```
pub struct Buffer<T: Element> {
    repr: Repr,
    len: usize,
    /// See [`Buffer::version`].
    version: u64,
    _elem: PhantomData<T>,
}

/// A version no buffer had before: the thread's own counter under a per-thread prefix, so
/// versions are unique process-wide without an atomic operation per write.
fn next_version() -> u64 {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};
    static THREADS: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NEXT: Cell<u64> = const { Cell::new(0) };
    }
    NEXT.with(|next| {
        let mut v = next.get();
        if v & VERSION_MASK == 0 {
            // First use on this thread, or 2^40 versions used: take a fresh prefix.
            v = THREADS.fetch_add(1, Ordering::Relaxed) << 40;
        }
        next.set(v + 1);
        v + 1
    })
}

const VERSION_MASK: u64 = (1 << 40) - 1;

impl<T: Element> Buffer<T> {
    fn bytes_for(len: usize) -> Result<usize, WorkspaceError> {
        len.checked_mul(size_of::<T>())
            .filter(|b| *b <= isize::MAX as usize - crate::chunk::ALIGN)
            .ok_or(WorkspaceError::SizeOverflow {
                len,
                elem: T::NAME,
                max: isize::MAX as usize - crate::chunk::ALIGN,
            })
    }

    fn heap(len: usize) -> Result<Self, WorkspaceError> {
        let bytes = Self::bytes_for(len)?;
        let mem = RawMem::zeroed(bytes).ok_or_else(|| WorkspaceError::OutOfMemory {
            workspace: "heap".into(),
            bytes,
        })?;
        Ok(Buffer {
            repr: Repr::Detached(mem),
            len,
            version: next_version(),
            _elem: PhantomData,
        })
    }

    fn allocate(target: Target<'_>, len: usize, zero: bool) -> Result<Self, WorkspaceError> {
        let bytes = Self::bytes_for(len)?;
        match manager::allocate(target, bytes, zero)? {
            Some(attached) => Ok(Buffer {
                repr: Repr::Attached(attached),
                len,
                version: next_version(),
                _elem: PhantomData,
            }),
            None => Self::heap(len),
        }
    }

    /// `len` zeros in the thread's current workspace, or on the heap when none is active.
    pub fn zeros(len: usize) -> Result<Self, WorkspaceError> {
        Self::allocate(Target::Current, len, true)
    }

    /// `len` elements in the current workspace (or heap) without zeroing: the contents are
    /// unspecified but always initialized (zeros or an earlier cycle's values; NaN under
    /// [`crate::DebugMode::PoisonOnReset`]). Write before you read.
    pub fn uninitialized(len: usize) -> Result<Self, WorkspaceError> {
        Self::allocate(Target::Current, len, false)
    }

    /// A copy of `data` in the current workspace (or heap).
    pub fn from_slice(data: &[T]) -> Result<Self, WorkspaceError> {
        let mut buf = Self::uninitialized(data.len())?;
        buf.write()?.copy_from_slice(data);
        Ok(buf)
    }

    /// `len` zeros on the heap, whatever workspace is active (ND4J's
    /// `createUninitializedDetached`, zeroed).
    pub fn zeros_detached(len: usize) -> Result<Self, WorkspaceError> {
        Self::heap(len)
    }

    /// A heap copy of `data`.
    pub fn from_slice_detached(data: &[T]) -> Result<Self, WorkspaceError> {
        let mut buf = Self::heap(data.len())?;
        buf.write()?.copy_from_slice(data);
        Ok(buf)
    }

    /// A copy of `data` in new shared memory: [`Buffer::share`] makes further handles on it
    /// (for other threads), each viewing all of it. Borrows follow a reader-writer lock's
    /// rules across the handles, checked ([`WorkspaceError::SharedBorrowConflict`]): readers
    /// of the whole, or writers of disjoint ranges ([`Buffer::write_range`]), never both.
    ///
    /// ```
    /// use dl4rs_memory::Buffer;
    ///
    /// let mut a = Buffer::<f32>::shared_from_slice(&[0.0; 4]).unwrap();
    /// let mut b = a.share().unwrap();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| a.write_range(0..2).unwrap().fill(1.0));
    ///     s.spawn(|| b.write_range(2..4).unwrap().fill(2.0));
    /// });
    /// assert_eq!(&*b.read().unwrap(), &[1.0, 1.0, 2.0, 2.0]);
    /// let reading = a.read().unwrap();
    /// assert!(b.write_range(0..1).is_err()); // a reader holds it
    /// drop(reading);
    /// assert!(b.write_range(0..1).is_ok());
    /// ```
    pub fn shared_from_slice(data: &[T]) -> Result<Self, WorkspaceError> {
        let len = data.len();
        let bytes = Self::bytes_for(len)?;
        let mem = SharedMem::zeroed(len, bytes, next_version()).ok_or_else(|| {
            WorkspaceError::OutOfMemory {
                workspace: "heap (shared)".into(),
                bytes,
            }
        })?;
        let mut buf = Buffer {
            repr: Repr::Shared(Arc::new(mem)),
            len,
            version: 0,
            _elem: PhantomData,
        };
        buf.write()?.copy_from_slice(data);
        Ok(buf)
    }

    /// Another handle on a shared buffer's memory (`None` for one that is not shared).
    pub fn share(&self) -> Option<Buffer<T>> {
        match &self.repr {
            Repr::Shared(mem) => Some(Buffer {
                repr: Repr::Shared(Arc::clone(mem)),
                len: self.len,
                version: 0,
                _elem: PhantomData,
            }),
            _ => None,
        }
    }

    /// Whether the buffer is shared memory ([`Buffer::shared_from_slice`]).
    pub fn is_shared(&self) -> bool {
        matches!(self.repr, Repr::Shared(_))
    }

    /// `len` zeros in `workspace`, which must be open (it need not be current).
    pub fn zeros_in(workspace: &Workspace, len: usize) -> Result<Self, WorkspaceError> {
        Self::allocate(Target::Workspace(workspace), len, true)
    }

    /// `len` unspecified (initialized) elements in the open `workspace`.
    pub fn uninitialized_in(workspace: &Workspace, len: usize) -> Result<Self, WorkspaceError> {
        Self::allocate(Target::Workspace(workspace), len, false)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the buffer lives in a workspace.
    pub fn is_attached(&self) -> bool {
        matches!(self.repr, Repr::Attached(_))
    }

    /// The id of the buffer's workspace, or `None` when detached.
    pub fn workspace_id(&self) -> Option<&str> {
        match &self.repr {
            Repr::Attached(a) => Some(&a.chunk.ws.id),
            Repr::Detached(_) | Repr::Shared(_) => None,
        }
    }

    /// The generation the buffer was born in (`None` when detached; for a ring, its position).
    pub fn generation(&self) -> Option<u64> {
        match &self.repr {
            Repr::Attached(a) => Some(a.stamp),
            Repr::Detached(_) | Repr::Shared(_) => None,
        }
    }

    /// Whether [`Buffer::read`] would succeed now.
    pub fn is_valid(&self) -> bool {
        self.check().is_ok()
    }

    /// `Ok` if the buffer may be used now, else the error that explains why not.
    pub fn check(&self) -> Result<(), WorkspaceError> {
        match &self.repr {
            Repr::Detached(_) | Repr::Shared(_) => Ok(()),
            Repr::Attached(a) => a.chunk.check(a.stamp).map_err(|e| self.error(a, e)),
        }
    }

    /// Whether `self` lives in the workspace `workspace`.
    pub fn is_in(&self, workspace: &Workspace) -> bool {
        match &self.repr {
            Repr::Attached(a) => a.chunk.ws.uid == workspace.uid(),
            Repr::Detached(_) | Repr::Shared(_) => false,
        }
    }

    fn byte_len(&self) -> usize {
        self.len * size_of::<T>()
    }

    fn conflict(&self, wanted: String, why: Conflict) -> WorkspaceError {
        let held = match why {
            Conflict::Readers(n) => format!("{n} reader(s) of the whole buffer"),
            Conflict::Writer(r) => format!("a writer of elements {}..{}", r.start, r.end),
            Conflict::TooManyWriters => format!("{MAX_WRITERS} writers, the most it admits"),
        };
        WorkspaceError::SharedBorrowConflict {
            len: self.len,
            elem: T::NAME,
            wanted,
            held,
        }
    }

    fn error(&self, a: &Attached, why: Invalid) -> WorkspaceError {
        let open = manager::open_workspaces();
        let workspace = a.chunk.ws.id.to_string();
        match why {
            Invalid::Destroyed => WorkspaceError::WorkspaceDestroyed {
                workspace,
                len: self.len,
                elem: T::NAME,
                born: a.stamp,
                open,
            },
            Invalid::Generation { current } => WorkspaceError::StaleArray {
                state: if a.chunk.ws.open.load(std::sync::atomic::Ordering::SeqCst) {
                    "was closed and reopened since"
                } else {
                    "has closed that cycle"
                },
                workspace,
                len: self.len,
                elem: T::NAME,
                born: a.stamp,
                current,
                open,
            },
            Invalid::Ring { write_end, size } => WorkspaceError::StaleRingSlot {
                workspace,
                len: self.len,
                elem: T::NAME,
                position: a.stamp,
                write_end,
                ring_bytes: size as usize,
                open,
            },
        }
    }

    /// Borrows the data for reading, after checking the buffer is valid. While the guard lives
    /// the workspace will not reuse this memory.
    pub fn read(&self) -> Result<BufRef<'_, T>, WorkspaceError> {
        let data = match &self.repr {
            Repr::Detached(mem) => {
                // SAFETY: the heap region is owned by `self`, holds `len` elements at offset 0,
                // and `&self` rules out a live mutable borrow for the guard's lifetime.
                unsafe { mem.slice::<T>(0, self.len) }
            }
            Repr::Attached(a) => {
                a.chunk
                    .acquire(a.offset, self.byte_len(), a.stamp)
                    .map_err(|e| self.error(a, e))?;
                // SAFETY: `acquire` proved the range valid and registered a borrow, so the owner
                // will not write it until the guard releases. No other valid buffer covers the
                // range: allocations of one cycle (or one ring lap) are disjoint, an allocation
                // over an older one invalidates it first, and no other workspace maps the same
                // memory (a mapped file belongs to one workspace, `mapped.rs`). `&self` rules
                // out a `write()` guard on this one. Offsets are multiples of 64, in bounds.
                unsafe { a.chunk.mem().slice::<T>(a.offset, self.len) }
            }
            Repr::Shared(mem) => mem
                .read::<T>()
                .map_err(|e| self.conflict("to read it".into(), e))?,
        };
        Ok(BufRef { buf: self, data })
    }

    /// The version of the contents: a new one whenever they may change (each [`Buffer::write`]),
    /// and no two buffers ever share one. A cache derived from the contents (a layer's
    /// weights packed for the microkernel) is valid while the version it was made from is.
    pub fn version(&self) -> u64 {
        match &self.repr {
            // Another handle may have written it.
            Repr::Shared(mem) => mem.version(),
            _ => self.version,
        }
    }

    /// Borrows the data for writing, after checking the buffer is valid (and takes a new
    /// [`Buffer::version`]).
    pub fn write(&mut self) -> Result<BufMut<'_, T>, WorkspaceError> {
        if self.is_shared() {
            return self.write_range(0..self.len);
        }
        let data = match &self.repr {
            Repr::Detached(mem) => {
                // SAFETY: owned region; `&mut self` makes this the only borrow.
                unsafe { mem.slice_mut::<T>(0, self.len) }
            }
            Repr::Attached(a) => {
                a.chunk
                    .acquire(a.offset, self.byte_len(), a.stamp)
                    .map_err(|e| self.error(a, e))?;
                // SAFETY: as in `read`, and `&mut self` makes this the only guard of the only
                // valid buffer covering the range.
                unsafe { a.chunk.mem().slice_mut::<T>(a.offset, self.len) }
            }
            Repr::Shared(_) => unreachable!("written through write_range above"),
        };
        self.version = next_version();
        Ok(BufMut {
            buf: self,
            data,
            range: 0..0,
        })
    }

    /// Borrows the elements `range` for writing: [`Buffer::write`] of that part only. For a
    /// shared buffer, handles on other threads may write disjoint ranges meanwhile.
    pub fn write_range(&mut self, range: Range<usize>) -> Result<BufMut<'_, T>, WorkspaceError> {
        if range.start > range.end || range.end > self.len {
            return Err(WorkspaceError::SharedBorrowConflict {
                len: self.len,
                elem: T::NAME,
                wanted: format!("to write elements {}..{}", range.start, range.end),
                held: "nothing: the range is not inside the buffer".into(),
            });
        }
        if !self.is_shared() {
            let mut w = self.write()?;
            w.data = &mut std::mem::take(&mut w.data)[range];
            return Ok(w);
        }
        let this: &Buffer<T> = self;
        let Repr::Shared(mem) = &this.repr else {
            unreachable!("checked just above")
        };
        let data = mem
            .write::<T>(range.clone(), next_version())
            .map_err(|e| this.conflict(format!("to write elements {range:?}"), e))?;
        Ok(BufMut {
            buf: this,
            data,
            range,
        })
    }

    /// A heap copy that outlives every workspace cycle (ND4J `detach()`).
    pub fn detach(&self) -> Result<Buffer<T>, WorkspaceError> {
        Self::from_slice_detached(&self.read()?)
    }

    /// A copy in the current workspace, or on the heap when none is active (ND4J `dup()`).
    pub fn dup(&self) -> Result<Buffer<T>, WorkspaceError> {
        Self::from_slice(&self.read()?)
    }

    /// A copy in the open workspace `workspace`.
    pub fn copy_to(&self, workspace: &Workspace) -> Result<Buffer<T>, WorkspaceError> {
        let src = self.read()?;
        let mut out = Self::uninitialized_in(workspace, self.len)?;
        out.write()?.copy_from_slice(&src);
        Ok(out)
    }

    /// The contents as a `Vec` (a heap copy).
    pub fn to_vec(&self) -> Result<Vec<T>, WorkspaceError> {
        Ok(self.read()?.to_vec())
    }
}

impl<T: Element> fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Buffer");
        d.field("elem", &T::NAME).field("len", &self.len);
        match &self.repr {
            Repr::Detached(_) => d.field("placement", &"heap"),
            Repr::Shared(_) => d.field("placement", &"shared"),
            Repr::Attached(a) => d
                .field("workspace", &a.chunk.ws.id)
                .field("generation", &a.stamp)
                .field("valid", &self.is_valid()),
        };
        d.finish()
    }
}

/// A checked shared borrow of a buffer's data; derefs to `[T]`.
pub struct BufRef<'a, T: Element> {
    buf: &'a Buffer<T>,
    data: &'a [T],
}

impl<T: Element> Deref for BufRef<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.data
    }
}

impl<T: Element> Drop for BufRef<'_, T> {
    fn drop(&mut self) {
        match &self.buf.repr {
            Repr::Attached(a) => a.chunk.release(a.offset, self.buf.byte_len()),
            Repr::Shared(mem) => mem.release_read(),
            Repr::Detached(_) => {}
        }
    }
}

impl<T: Element> fmt::Debug for BufRef<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.data.fmt(f)
    }
}

/// A checked exclusive borrow of a buffer's data; derefs to `[T]`.
pub struct BufMut<'a, T: Element> {
    buf: &'a Buffer<T>,
    data: &'a mut [T],
    /// The elements borrowed of a shared buffer (its release names them).
    range: Range<usize>,
}

impl<T: Element> Deref for BufMut<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.data
    }
}

impl<T: Element> DerefMut for BufMut<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.data
    }
}

impl<T: Element> Drop for BufMut<'_, T> {
    fn drop(&mut self) {
        match &self.buf.repr {
            Repr::Attached(a) => a.chunk.release(a.offset, self.buf.byte_len()),
            Repr::Shared(mem) => mem.release_write(self.range.clone()),
            Repr::Detached(_) => {}
        }
    }
}

impl<T: Element> fmt::Debug for BufMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (*self.data).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Versions: new at creation and at every write borrow, unchanged by reads, never shared
    /// by two buffers (also across threads).
    #[test]
    fn versions_change_with_writes_only_and_are_unique() {
        let mut a = Buffer::<f32>::zeros_detached(4).unwrap();
        let b = Buffer::<f32>::zeros_detached(4).unwrap();
        assert_ne!(a.version(), b.version());
        let v = a.version();
        drop(a.read().unwrap());
        assert_eq!(a.version(), v);
        a.write().unwrap()[0] = 1.0;
        assert_ne!(a.version(), v);
        let dup = a.detach().unwrap();
        assert_ne!(dup.version(), a.version());
        let theirs: Vec<u64> = (0..4)
            .map(|_| {
                std::thread::spawn(|| Buffer::<f64>::zeros_detached(1).unwrap().version())
                    .join()
                    .unwrap()
            })
            .collect();
        let mut all = theirs.clone();
        all.extend([a.version(), b.version(), dup.version()]);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 7, "versions shared: {theirs:?}");
    }

    /// Shared memory: readers of the whole or writers of disjoint ranges, never both, each
    /// refusal an error naming both borrows; released guards free their claim.
    #[test]
    fn shared_borrows_follow_reader_writer_rules() {
        let mut a = Buffer::<f32>::shared_from_slice(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        let mut b = a.share().unwrap();
        assert!(a.is_shared() && !a.is_attached() && a.share().is_some());
        assert!(Buffer::<f32>::zeros_detached(1).unwrap().share().is_none());
        {
            let r1 = a.read().unwrap();
            let r2 = b.read().unwrap();
            assert_eq!(&*r1, &*r2);
        }
        let w = a.write_range(0..2).unwrap();
        let err = b.read().unwrap_err().to_string();
        assert!(
            err.contains("to read it") && err.contains("elements 0..2"),
            "{err}"
        );
        assert!(err.contains("barrier"), "{err}");
        drop(w);
        {
            let r = b.read().unwrap();
            let err = a.write_range(3..4).unwrap_err().to_string();
            assert!(err.contains("1 reader(s)"), "{err}");
            drop(r);
        }
        let mut c = a.share().unwrap();
        let wa = a.write_range(0..2).unwrap();
        let wb = b.write_range(2..4).unwrap();
        assert!(c.write_range(1..3).is_err(), "overlaps both");
        assert!(c.write().is_err(), "the whole overlaps");
        drop((wa, wb));
        assert!(c.write_range(1..3).is_ok());
        assert!(a.write_range(3..5).is_err(), "out of bounds");
        assert!(a.write_range(2..2).is_ok());
    }

    /// A write through one handle gives every handle a new version (caches made from the
    /// contents, such as packed weights, are keyed on it).
    #[test]
    fn a_shared_write_changes_every_handles_version() {
        let mut a = Buffer::<f64>::shared_from_slice(&[0.0; 8]).unwrap();
        let b = a.share().unwrap();
        let v = b.version();
        assert_eq!(a.version(), v);
        drop(b.read().unwrap());
        assert_eq!(b.version(), v);
        a.write_range(4..8).unwrap()[0] = 1.0;
        assert_ne!(b.version(), v);
        assert_eq!(a.version(), b.version());
        assert_eq!(b.to_vec().unwrap()[4], 1.0);
    }

    /// Lock-step threads over one shared buffer (what ParallelWrapper's replicas do with
    /// their parameters): each round every thread reads the whole, a barrier, each writes its
    /// own part, a barrier. Thousands of rounds, every value checked, no borrow refused.
    #[test]
    fn lock_step_threads_share_one_buffer() {
        const THREADS: usize = 3;
        const PART: usize = 64;
        const ROUNDS: u64 = 2000;
        let start: Vec<f64> = (0..THREADS * PART)
            .map(|k| (k / PART) as f64 * 0.5)
            .collect();
        let first = Buffer::<f64>::shared_from_slice(&start).unwrap();
        let barrier = std::sync::Barrier::new(THREADS);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let mut mine = first.share().unwrap();
                let barrier = &barrier;
                s.spawn(move || {
                    for round in 0..ROUNDS {
                        {
                            let all = mine.read().unwrap();
                            for (k, &x) in all.iter().enumerate() {
                                assert_eq!(x, round as f64 + (k / PART) as f64 * 0.5);
                            }
                        }
                        barrier.wait();
                        let part = t * PART..(t + 1) * PART;
                        let next = (round + 1) as f64 + t as f64 * 0.5;
                        mine.write_range(part).unwrap().fill(next);
                        barrier.wait();
                    }
                });
            }
        });
        let all = first.to_vec().unwrap();
        assert!((0..THREADS * PART).all(|k| all[k] == ROUNDS as f64 + (k / PART) as f64 * 0.5));
    }
}
