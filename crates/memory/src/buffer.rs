//! `Buffer<T>`: the typed allocation the array crate holds. A buffer is either *detached* (its
//! own 64-byte-aligned heap memory, valid until dropped) or *attached* (a range of a workspace
//! chunk, valid while its cycle lasts). Every access goes through [`Buffer::read`] or
//! [`Buffer::write`], which check validity and hold a counted borrow for as long as the guard
//! lives, so an attached buffer can never show memory that a later cycle reuses.
//!
//! This module owns the typed view of memory; it does not decide placement (that is the
//! thread's workspace manager, `manager.rs`) or sizes (the workspace, `workspace.rs`).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::chunk::{Attached, Invalid, RawMem};
use crate::element::Element;
use crate::error::WorkspaceError;
use crate::manager::{self, Target, Workspace};

enum Repr {
    Detached(RawMem),
    Attached(Attached),
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
            Repr::Detached(_) => None,
        }
    }

    /// The generation the buffer was born in (`None` when detached; for a ring, its position).
    pub fn generation(&self) -> Option<u64> {
        match &self.repr {
            Repr::Attached(a) => Some(a.stamp),
            Repr::Detached(_) => None,
        }
    }

    /// Whether [`Buffer::read`] would succeed now.
    pub fn is_valid(&self) -> bool {
        self.check().is_ok()
    }

    /// `Ok` if the buffer may be used now, else the error that explains why not.
    pub fn check(&self) -> Result<(), WorkspaceError> {
        match &self.repr {
            Repr::Detached(_) => Ok(()),
            Repr::Attached(a) => a.chunk.check(a.stamp).map_err(|e| self.error(a, e)),
        }
    }

    /// Whether `self` lives in the workspace `workspace`.
    pub fn is_in(&self, workspace: &Workspace) -> bool {
        match &self.repr {
            Repr::Attached(a) => a.chunk.ws.uid == workspace.uid(),
            Repr::Detached(_) => false,
        }
    }

    fn byte_len(&self) -> usize {
        self.len * size_of::<T>()
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
        };
        Ok(BufRef { buf: self, data })
    }

    /// The version of the contents: a new one whenever they may change (each [`Buffer::write`]),
    /// and no two buffers ever share one. A cache derived from the contents (a layer's
    /// weights packed for the microkernel) is valid while the version it was made from is.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Borrows the data for writing, after checking the buffer is valid (and takes a new
    /// [`Buffer::version`]).
    pub fn write(&mut self) -> Result<BufMut<'_, T>, WorkspaceError> {
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
        };
        self.version = next_version();
        Ok(BufMut { buf: self, data })
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
        if let Repr::Attached(a) = &self.buf.repr {
            a.chunk.release(a.offset, self.buf.byte_len());
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
        if let Repr::Attached(a) = &self.buf.repr {
            a.chunk.release(a.offset, self.buf.byte_len());
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
}
