//! The process-wide view of every thread's workspaces: what a monitor (the `StatsListener`,
//! a progress bar) on one thread can see of the workspaces of every other thread — the async
//! prefetch ring, trainer threads — without stopping them.
//!
//! Each workspace publishes a fixed-size [`CycleSnapshot`] into atomics it shares with the
//! registry (a sequence lock: the owning thread is the only writer, so a reader retries until
//! it sees the same even sequence number before and after its loads and never sees a torn
//! snapshot). Publishing happens at creation and at every cycle end: a handful of relaxed
//! stores, no lock, no allocation. The registry itself (a mutex over a list of entries) is
//! only locked when a workspace is created or dropped, and by readers for the time it takes
//! to copy the entries out: a training thread never waits for a reader. Reading with
//! [`process_workspaces_into`] into a `Vec` that already has the capacity allocates nothing
//! (ids and thread names are shared `Arc<str>`s, cloned by reference count).
//!
//! No `unsafe` here: everything shared is an atomic or behind the mutex.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU64, fence};
use std::sync::{Arc, Mutex, MutexGuard};

/// One workspace's statistics as of its last cycle end (fixed size, `Copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CycleSnapshot {
    /// Size of the block in bytes (0 before learning).
    pub block_bytes: u64,
    /// Bytes allocated in the last completed cycle (block and spills).
    pub used_bytes: u64,
    /// Bytes spilled to the heap in the last completed cycle (for a ring: spills still held).
    pub spilled_bytes: u64,
    /// Bytes pinned (ring allocations of oversize cycles).
    pub pinned_bytes: u64,
    /// Largest cycle seen (what learning sizes the block from).
    pub max_cycle_bytes: u64,
    /// Completed cycles.
    pub cycles: u64,
}

/// The atomics a workspace publishes its [`CycleSnapshot`] into (a sequence lock with one
/// writer: the owning thread).
#[derive(Debug, Default)]
pub(crate) struct Published {
    seq: AtomicU64,
    fields: [AtomicU64; 6],
}

impl Published {
    /// Publishes `s`. Only the owning thread calls this (the state is `!Send`), so there is
    /// one writer.
    pub(crate) fn publish(&self, s: &CycleSnapshot) {
        let seq = self.seq.load(Relaxed);
        self.seq.store(seq.wrapping_add(1), Relaxed);
        // Readers that see one of the stores below also see the odd sequence number.
        fence(Release);
        let values = [
            s.block_bytes,
            s.used_bytes,
            s.spilled_bytes,
            s.pinned_bytes,
            s.max_cycle_bytes,
            s.cycles,
        ];
        for (field, value) in self.fields.iter().zip(values) {
            field.store(value, Relaxed);
        }
        self.seq.store(seq.wrapping_add(2), Release);
    }

    /// A consistent snapshot (retries while the owner is publishing).
    pub(crate) fn read(&self) -> CycleSnapshot {
        let mut tries = 0u32;
        loop {
            let before = self.seq.load(Acquire);
            let v: [u64; 6] = std::array::from_fn(|i| self.fields[i].load(Relaxed));
            fence(Acquire);
            let after = self.seq.load(Relaxed);
            if before == after && before.is_multiple_of(2) {
                return CycleSnapshot {
                    block_bytes: v[0],
                    used_bytes: v[1],
                    spilled_bytes: v[2],
                    pinned_bytes: v[3],
                    max_cycle_bytes: v[4],
                    cycles: v[5],
                };
            }
            tries += 1;
            if tries < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// One workspace of some thread of this process, as [`process_workspaces`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessWorkspace {
    /// Process-unique number of the workspace (ids repeat across threads; this does not).
    pub uid: u64,
    /// Workspace id.
    pub id: Arc<str>,
    /// The owning thread's name (`"thread-N"` for an unnamed thread).
    pub thread: Arc<str>,
    /// Process-unique number of the owning thread (in the order threads first made a
    /// workspace).
    pub thread_index: u64,
    /// Whether it is a ring (cyclic workspace).
    pub cyclic: bool,
    /// Its statistics at its last cycle end.
    pub snapshot: CycleSnapshot,
}

struct Entry {
    uid: u64,
    id: Arc<str>,
    thread: Arc<str>,
    thread_index: u64,
    cyclic: bool,
    published: Arc<Published>,
}

static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Entry>> {
    // The list is consistent after any panic (entries are pushed or removed whole).
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    static THREAD: (u64, Arc<str>) = {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let index = NEXT.fetch_add(1, Relaxed);
        let name = std::thread::current()
            .name()
            .map_or_else(|| format!("thread-{index}"), str::to_string);
        (index, name.into())
    };
}

/// Adds a workspace of the calling thread (at creation).
pub(crate) fn register(uid: u64, id: &str, cyclic: bool, published: Arc<Published>) {
    let (thread_index, thread) = THREAD
        .try_with(|t| (t.0, t.1.clone()))
        .unwrap_or_else(|_| (0, Arc::from("exiting thread")));
    registry().push(Entry {
        uid,
        id: id.into(),
        thread,
        thread_index,
        cyclic,
        published,
    });
}

/// Removes a workspace (destroyed, or its thread exited).
pub(crate) fn unregister(uid: u64) {
    registry().retain(|e| e.uid != uid);
}

/// Every live workspace of every thread, in creation order, written into `out` (cleared
/// first). Allocation-free when `out` has the capacity; never blocks the workspaces' threads.
pub fn process_workspaces_into(out: &mut Vec<ProcessWorkspace>) {
    out.clear();
    let entries = registry();
    out.extend(entries.iter().map(|e| ProcessWorkspace {
        uid: e.uid,
        id: e.id.clone(),
        thread: e.thread.clone(),
        thread_index: e.thread_index,
        cyclic: e.cyclic,
        snapshot: e.published.read(),
    }));
}

/// Every live workspace of every thread, in creation order (see [`process_workspaces_into`]).
///
/// ```
/// use std::sync::{Arc, Barrier};
/// use dl4rs_memory::{Buffer, WorkspaceConfig, get_and_activate_workspace, process_workspaces};
///
/// let (cycled, seen) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
/// let (c, s) = (cycled.clone(), seen.clone());
/// let worker = std::thread::Builder::new().name("worker".into()).spawn(move || {
///     for _ in 0..3 {
///         let _cycle = get_and_activate_workspace(&WorkspaceConfig::default(), "W").unwrap();
///         let _a = Buffer::<f32>::zeros(256).unwrap();
///     }
///     c.wait(); // main looks now, while this thread is alive
///     s.wait();
/// }).unwrap();
/// cycled.wait();
/// let view = process_workspaces();
/// let w = view.iter().find(|w| &*w.thread == "worker" && &*w.id == "W").unwrap();
/// assert_eq!((w.snapshot.cycles, w.snapshot.used_bytes), (3, 1024));
/// assert!(w.snapshot.block_bytes >= 1024);
/// seen.wait();
/// worker.join().unwrap();
/// // The worker has exited: its workspaces are gone from the view.
/// assert!(process_workspaces().iter().all(|w| &*w.thread != "worker"));
/// ```
pub fn process_workspaces() -> Vec<ProcessWorkspace> {
    let mut out = Vec::new();
    process_workspaces_into(&mut out);
    out
}
