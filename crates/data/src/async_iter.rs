//! [`AsyncDataSetIterator`], DL4J's prefetching iterator: a background thread runs the source
//! iterator's `next()` ahead of the consumer, into a **cyclic workspace** (a ring), and hands the
//! batches over through a bounded queue. The machinery (thread, ring, queue, peek, reset, drop)
//! is the private `Prefetcher`, generic over the kind of batch; [`AsyncDataSetIterator`] and
//! [`AsyncMultiDataSetIterator`](crate::AsyncMultiDataSetIterator) are thin wrappers over it.
//!
//! ## Design
//! - The prefetch thread owns the ring (`"ADSI_ITER-<n>"`, resp. `"AMDSI_ITER-<n>"`, unique per
//!   instance; see [`AsyncDataSetIterator::ring_config`]). Each batch is one cycle of the ring: the thread
//!   opens a scope, calls the source's `next()` (which allocates the batch in the ring, the
//!   thread's current workspace), closes the scope and sends the batch through a
//!   `std::sync::mpsc::sync_channel` of capacity `prefetch` (a preallocated array queue: no
//!   allocation per message).
//! - The first cycle spills to the heap while the ring learns one slot `B = 1.3 x` the batch's
//!   bytes; the ring then holds `prefetch + 3` slots (or more, when `min_ring_bytes` is larger).
//!   A larger batch later is served from the heap (trimmed mode) until the ring is rebuilt at
//!   the new size a few laps later: the ring grows to the largest batch and never shrinks.
//! - **Why a handed-out batch is safe**: at any moment the live batches are the consumer's
//!   current one, at most one peeked by `has_next()`, at most `prefetch` in the queue and at
//!   most one the thread made and is waiting to send: `prefetch + 3` consecutive batches, in
//!   `prefetch + 3` distinct slots. The thread can only write a new batch after the consumer
//!   has taken the next one, so the consumer's current batch is never the one written over.
//!   Past the contract, the memory crate's checks take over: a batch read after its slot was
//!   reused is a [`StaleRingSlot`](dl4rs_memory::WorkspaceError::StaleRingSlot) error, and a
//!   slot still borrowed by a reader is skipped, never overwritten.
//! - `reset()` and `Drop` stop the thread (a flag, then dropping the receiver, which wakes a
//!   blocked send), join it and get the source back from it; no thread outlives the iterator.
//! - The source runs under `catch_unwind`: a panic reaches the consumer as a
//!   [`DataError::Prefetch`], after every batch produced before it.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use dl4rs_array::{ArrayError, DataType};
use dl4rs_memory::{
    AllocationPolicy, LearningPolicy, ResetPolicy, SpillPolicy, WorkspaceConfig,
    get_workspace_for_current_thread,
};

use crate::dataset::DataSet;
use crate::error::{DataError, invalid};
use crate::iterator::DataSetIterator;

/// DL4J's default prefetch queue length (`AsyncDataSetIterator(iterator)`): 8 batches.
pub const DEFAULT_PREFETCH: usize = 8;

/// The smallest prefetch queue: 1 batch (DL4J requires 2; dl4rs's ring is sized from the queue
/// length, so 1 is as safe as any other length).
pub const MIN_PREFETCH: usize = 1;

/// The largest prefetch queue accepted: 1024 batches (the ring holds `prefetch + 3` batches).
pub const MAX_PREFETCH: usize = 1024;

/// The default floor on the ring's size: 1 MiB (DL4J uses 10 MiB). A ring smaller than this
/// gets more than `prefetch + 3` slots, which only lengthens the time a batch stays valid.
pub const DEFAULT_MIN_RING_BYTES: usize = 1 << 20;

/// Names used in thread names, ids and messages, one set per public prefetching type.
pub(crate) struct Names {
    /// The public type, e.g. `"AsyncDataSetIterator"`.
    pub(crate) ty: &'static str,
    /// `"<ty>::new"`.
    pub(crate) new_op: &'static str,
    /// `"<ty>::next"`.
    pub(crate) next_op: &'static str,
    /// `"<ty>::reset"`.
    pub(crate) reset_op: &'static str,
    /// The ring id's prefix, e.g. `"ADSI_ITER-"`.
    pub(crate) id_prefix: &'static str,
    /// The prefetch thread's name.
    pub(crate) thread: &'static str,
}

const ADSI: Names = Names {
    ty: "AsyncDataSetIterator",
    new_op: "AsyncDataSetIterator::new",
    next_op: "AsyncDataSetIterator::next",
    reset_op: "AsyncDataSetIterator::reset",
    id_prefix: "ADSI_ITER-",
    thread: "ADSI prefetch thread",
};

/// A source of batches the prefetch thread can drive: what the prefetcher needs of a
/// [`DataSetIterator`] or a [`MultiDataSetIterator`](crate::MultiDataSetIterator).
pub(crate) trait BatchSource: Send + 'static {
    /// What one `next()` produces.
    type Batch: Send + 'static;
    /// What the consumer may ask of the source while the thread owns it (read before each
    /// thread starts).
    type Info: Copy;
    /// The next batch, `None` at the end of the epoch.
    fn next_batch(&mut self) -> Option<Result<Self::Batch, DataError>>;
    /// Starts the next epoch.
    fn reset_source(&mut self) -> Result<(), DataError>;
    /// Whether `reset_source` works.
    fn can_reset(&self) -> bool;
    /// The source's description.
    fn info(&self) -> Self::Info;
}

/// What the prefetch thread sends. The end of an epoch is the channel's disconnection.
#[allow(
    clippy::large_enum_variant,
    reason = "boxing the batch would allocate once per batch; the queue's slots are preallocated"
)]
enum Msg<B> {
    Batch(B),
    Failed(DataError),
}

/// The running prefetch thread and its ends of the handoff. The thread returns the source
/// (`None` only if it never received it, which cannot happen).
struct Producer<S: BatchSource> {
    rx: Receiver<Msg<S::Batch>>,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Option<S>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The configuration of the prefetch thread's ring for a queue of `prefetch` batches (see
/// [`AsyncDataSetIterator::ring_config`]); errors name `names.new_op`.
pub(crate) fn ring_config(
    prefetch: usize,
    min_ring_bytes: usize,
    names: &Names,
) -> Result<WorkspaceConfig, DataError> {
    if !(MIN_PREFETCH..=MAX_PREFETCH).contains(&prefetch) {
        return Err(invalid(
            names.new_op,
            format!(
                "expected a prefetch queue of {MIN_PREFETCH} to {MAX_PREFETCH} batches, \
                 found {prefetch}: use DEFAULT_PREFETCH ({DEFAULT_PREFETCH}), or 2 as fit does"
            ),
        ));
    }
    WorkspaceConfig::builder()
        .min_size(min_ring_bytes)
        .overallocation_limit((prefetch + 2) as f64)
        .policy_reset(ResetPolicy::EndOfBuffer)
        .policy_learning(LearningPolicy::FirstLoop)
        .policy_allocation(AllocationPolicy::Overallocate)
        .policy_spill(SpillPolicy::Reallocate)
        .build()
        .map_err(|e| DataError::Array(ArrayError::Workspace(e)))
}

/// The prefetching machinery shared by the public async iterators: the thread, its ring, the
/// bounded queue, the peeked message, reset and shutdown. See the module docs for why a
/// handed-out batch is safe.
pub(crate) struct Prefetcher<S: BatchSource> {
    names: &'static Names,
    id: String,
    prefetch: usize,
    min_ring_bytes: usize,
    config: WorkspaceConfig,
    reset_supported: bool,
    info: S::Info,
    /// The running thread; `None` once joined (end of epoch seen by `next()`, or stopped).
    producer: Option<Producer<S>>,
    /// The source while no thread owns it. `None` with `producer == None` means it was lost
    /// (the thread ended abnormally).
    source: Option<S>,
    /// A message `has_next()` received and keeps for the next `next()`.
    peeked: RefCell<Option<Msg<S::Batch>>>,
    /// The epoch ended (end of data, an error, or the thread stopped).
    finished: Cell<bool>,
}

impl<S: BatchSource> Prefetcher<S> {
    /// Checks `prefetch`, builds the ring configuration and starts the thread over `source`.
    pub(crate) fn new(
        source: S,
        prefetch: usize,
        min_ring_bytes: usize,
        names: &'static Names,
    ) -> Result<Self, DataError> {
        let config = ring_config(prefetch, min_ring_bytes, names)?;
        let id = format!("{}{}", names.id_prefix, NEXT_ID.fetch_add(1, SeqCst));
        let mut p = Prefetcher {
            names,
            id,
            prefetch,
            min_ring_bytes,
            config,
            reset_supported: source.can_reset(),
            info: source.info(),
            producer: None,
            source: None,
            peeked: RefCell::new(None),
            finished: Cell::new(false),
        };
        p.start(source)?;
        Ok(p)
    }

    /// The prefetch queue length.
    pub(crate) fn prefetch(&self) -> usize {
        self.prefetch
    }

    /// The ring's workspace id.
    pub(crate) fn workspace_id(&self) -> &str {
        &self.id
    }

    /// The source's description, as read when the current thread started.
    pub(crate) fn info(&self) -> S::Info {
        self.info
    }

    /// Whether the source supports reset.
    pub(crate) fn reset_supported(&self) -> bool {
        self.reset_supported
    }

    /// Writes the `Debug` form of the public type (named by `Names::ty`).
    pub(crate) fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.names.ty)
            .field("workspace", &self.id)
            .field("prefetch", &self.prefetch)
            .field("min_ring_bytes", &self.min_ring_bytes)
            .field("running", &self.producer.is_some())
            .field("finished", &self.finished.get())
            .finish()
    }

    /// Starts a prefetch thread over `source`. If the thread can't be started, the source is
    /// kept (a later `reset()` retries) and the error returned.
    fn start(&mut self, source: S) -> Result<(), DataError> {
        let (tx, rx) = sync_channel(self.prefetch);
        let stop = Arc::new(AtomicBool::new(false));
        // Handed over through a slot rather than moved into the closure, so that a failed spawn
        // (which drops the closure) doesn't drop the source with it.
        let slot = Arc::new(Mutex::new(Some(source)));
        let thread_slot = Arc::clone(&slot);
        let thread_stop = Arc::clone(&stop);
        let config = self.config.clone();
        let id = self.id.clone();
        let names = self.names;
        let spawned = std::thread::Builder::new()
            .name(names.thread.to_string())
            .spawn(move || {
                let source = thread_slot
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                drop(thread_slot);
                // `None` is unreachable: the slot is filled before the spawn.
                source.map(|source| produce(source, &tx, &thread_stop, &id, &config, names))
            });
        match spawned {
            Ok(handle) => {
                self.producer = Some(Producer { rx, stop, handle });
                self.finished.set(false);
                Ok(())
            }
            Err(e) => {
                self.source = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                self.finished.set(true);
                Err(DataError::Prefetch {
                    op: self.names.ty,
                    message: format!(
                        "expected to start the prefetch thread, but the operating system \
                         refused: {e}. Free resources (threads, memory) and call reset() to \
                         retry, or iterate the source without prefetch"
                    ),
                })
            }
        }
    }

    /// Stops the prefetch thread (if running), joins it and returns the source.
    pub(crate) fn stop(&mut self) -> Result<S, DataError> {
        self.peeked.get_mut().take();
        self.finished.set(true);
        if let Some(producer) = self.producer.take() {
            producer.stop.store(true, SeqCst);
            // Dropping the receiver drops the queued batches and makes a send the thread is
            // blocked in (or starts) fail at once: the thread then returns the source.
            drop(producer.rx);
            self.source = join(producer.handle, self.names)?;
        }
        self.source.take().ok_or_else(|| lost_source(self.names))
    }

    /// Stops and joins the thread and drops the source: what `Drop` does.
    pub(crate) fn shutdown(&mut self) {
        let _ = self.stop();
    }

    /// Takes the next message: the peeked one, or one from the queue (blocking). `None` at the
    /// end of the epoch.
    fn receive(&self) -> Option<Msg<S::Batch>> {
        if self.finished.get() {
            return None;
        }
        let msg = self.producer.as_ref()?.rx.recv().ok();
        if msg.is_none() {
            self.finished.set(true);
        }
        msg
    }

    /// The next prefetched batch (blocking until the thread has one); `None` at the end of the
    /// epoch, after which the source is back here.
    pub(crate) fn next(&mut self) -> Option<Result<S::Batch, DataError>> {
        let msg = match self.peeked.get_mut().take() {
            Some(msg) => msg,
            None => match self.receive() {
                Some(msg) => msg,
                None => {
                    // End of the epoch: the thread has returned (or is returning) the source.
                    let producer = self.producer.take()?;
                    drop(producer.rx);
                    return match join(producer.handle, self.names) {
                        Ok(source) => {
                            self.source = source;
                            None
                        }
                        Err(e) => Some(Err(e)),
                    };
                }
            },
        };
        match msg {
            Msg::Batch(batch) => Some(Ok(batch)),
            Msg::Failed(e) => {
                self.finished.set(true);
                Some(Err(e))
            }
        }
    }

    /// Whether `next()` has another batch (or an error) this epoch; blocks until the thread has
    /// produced the next batch or ended, and keeps the batch for `next()`.
    pub(crate) fn has_next(&self) -> bool {
        let Ok(mut peeked) = self.peeked.try_borrow_mut() else {
            // Only reachable re-entrantly, which the API doesn't allow; answer conservatively.
            return false;
        };
        if peeked.is_some() {
            return true;
        }
        match self.receive() {
            Some(msg) => {
                *peeked = Some(msg);
                true
            }
            None => false,
        }
    }

    /// Stops and joins the thread (mid-epoch too), resets the source and starts a new thread
    /// (with a new ring).
    pub(crate) fn reset(&mut self) -> Result<(), DataError> {
        if !self.reset_supported {
            return Err(invalid(
                self.names.reset_op,
                format!(
                    "expected a source iterator that supports reset(), found one whose \
                     reset_supported() is false: create a new source (and {}) for each epoch \
                     instead",
                    self.names.ty
                ),
            ));
        }
        let mut source = self.stop()?;
        if let Err(e) = source.reset_source() {
            self.source = Some(source);
            return Err(e);
        }
        self.reset_supported = source.can_reset();
        self.info = source.info();
        self.start(source)
    }
}

impl<S: BatchSource> Drop for Prefetcher<S> {
    /// Stops the prefetch thread and joins it: no thread outlives the prefetcher.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The prefetch thread's loop. Returns the source when the epoch ends, after an error, or when
/// stopped. The ring is not destroyed: batches in the queue or held by the consumer live in
/// it, and its memory is freed when the last of them drops.
fn produce<S: BatchSource>(
    mut source: S,
    tx: &SyncSender<Msg<S::Batch>>,
    stop: &AtomicBool,
    id: &str,
    config: &WorkspaceConfig,
    names: &Names,
) -> S {
    let ring = match get_workspace_for_current_thread(config, id) {
        Ok(ring) => ring,
        Err(e) => {
            let _ = tx.send(Msg::Failed(DataError::Array(ArrayError::Workspace(e))));
            return source;
        }
    };
    while !stop.load(SeqCst) {
        let produced = catch_unwind(AssertUnwindSafe(|| {
            // One cycle of the ring per batch; the scope closes (unwinding included) before the
            // batch is sent.
            let _cycle = match ring.notify_scope_entered() {
                Ok(cycle) => cycle,
                Err(e) => return Some(Err(DataError::Array(ArrayError::Workspace(e)))),
            };
            source.next_batch()
        }));
        let msg = match produced {
            Ok(None) => break,
            Ok(Some(Ok(batch))) => Msg::Batch(batch),
            Ok(Some(Err(e))) => Msg::Failed(e),
            Err(payload) => Msg::Failed(panicked(payload.as_ref(), names)),
        };
        let failed = matches!(msg, Msg::Failed(_));
        if tx.send(msg).is_err() || failed {
            break;
        }
    }
    source
}

fn payload_str(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<a non-string panic payload>")
}

fn panicked(payload: &(dyn Any + Send), names: &Names) -> DataError {
    DataError::Prefetch {
        op: names.next_op,
        message: format!(
            "expected the source iterator's next() to return a batch, None or an error, but it \
             panicked on the prefetch thread: {}. The batches before it were delivered and \
             the epoch ends here; fix the source, then reset() to start over",
            payload_str(payload)
        ),
    }
}

fn join<S>(handle: JoinHandle<Option<S>>, names: &Names) -> Result<Option<S>, DataError> {
    handle.join().map_err(|payload| DataError::Prefetch {
        op: names.ty,
        message: format!(
            "expected the prefetch thread to hand the source iterator back, but the thread \
             panicked outside the source ({}), and the source was lost with it. Create a new \
             {}",
            payload_str(payload.as_ref()),
            names.ty
        ),
    })
}

fn lost_source(names: &Names) -> DataError {
    DataError::Prefetch {
        op: names.reset_op,
        message: format!(
            "expected the source iterator back from the prefetch thread, but it was lost when \
             the thread ended abnormally (reported earlier). Create a new {}",
            names.ty
        ),
    }
}

/// The source iterator the prefetch thread drives.
/// A data set iterator the prefetch thread can own.
pub type Source<T> = Box<dyn DataSetIterator<T> + Send>;

/// What the consumer may ask of the source while the thread owns it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceInfo {
    batch: usize,
    total_outcomes: usize,
    input_columns: usize,
    total_examples: Option<usize>,
}

impl<T: DataType> BatchSource for Source<T> {
    type Batch = DataSet<T>;
    type Info = SourceInfo;

    fn next_batch(&mut self) -> Option<Result<DataSet<T>, DataError>> {
        DataSetIterator::next(&mut **self)
    }
    fn reset_source(&mut self) -> Result<(), DataError> {
        DataSetIterator::reset(&mut **self)
    }
    fn can_reset(&self) -> bool {
        DataSetIterator::reset_supported(&**self)
    }
    fn info(&self) -> SourceInfo {
        SourceInfo {
            batch: self.batch(),
            total_outcomes: self.total_outcomes(),
            input_columns: self.input_columns(),
            total_examples: self.total_examples(),
        }
    }
}

/// DL4J's `AsyncDataSetIterator`: prefetches batches of a source iterator on a background
/// thread into a ring workspace, safely.
///
/// # The contract
/// A [`DataSet`] returned by [`next`](DataSetIterator::next) lives in the prefetch thread's ring
/// and **stays valid at least until the next call to `next()`** (`has_next()` calls in between
/// are fine). Use it (train on it, evaluate it) before asking for the next one, or
/// [`detach`](DataSet::detach) what you keep: a detached copy lives on the heap forever. A data
/// set kept longer is *not* silently overwritten: once the ring has reused its slot, reading
/// it fails with [`WorkspaceError::StaleRingSlot`](dl4rs_memory::WorkspaceError::StaleRingSlot)
/// (wrapped in [`ArrayError::Workspace`]), never returning another batch's data.
///
/// - The order is the source's: every batch of an epoch exactly once, in order.
/// - An error from the source's `next()` comes out of this iterator's `next()` after every batch
///   produced before it; a panic in the source comes out as [`DataError::Prefetch`]. Either way
///   the epoch ends there: `has_next()` is false until [`reset`](DataSetIterator::reset).
/// - `reset()` works at any point of an epoch: it stops and joins the thread, resets the source
///   and starts a new thread. Dropping the iterator stops and joins the thread (it waits for a
///   `next()` of the source that is running).
/// - [`async_supported`](DataSetIterator::async_supported) is false: it is never wrapped twice.
/// - Steady state makes no heap allocation: once the ring has grown to the largest batch,
///   handing a batch over allocates nothing on either thread (the source's own allocations are
///   its business; [`InMemoryDataSetIterator`](crate::InMemoryDataSetIterator) makes none).
///   Each epoch starts a new thread with a new ring, whose first batch spills while it learns.
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::{AsyncDataSetIterator, DataSet, DataSetIterator, InMemoryDataSetIterator};
///
/// let x = NdArray::<f32>::from_slice(&[6, 1], &[0., 1., 2., 3., 4., 5.]).unwrap();
/// let y = NdArray::<f32>::zeros(&[6, 1]).unwrap();
/// let source = InMemoryDataSetIterator::new(DataSet::new(x, y).unwrap(), 2).unwrap();
/// let mut it = AsyncDataSetIterator::new(Box::new(source), 2).unwrap();
///
/// let mut seen = Vec::new();
/// let mut kept = None;
/// while let Some(batch) = it.next() {
///     let batch = batch.unwrap();
///     seen.extend(batch.features.to_vec().unwrap()); // use it before the next `next()` ...
///     kept = Some(batch.detach().unwrap()); // ... or detach what you keep
/// }
/// assert_eq!(seen, [0., 1., 2., 3., 4., 5.]);
/// assert_eq!(kept.unwrap().features.to_vec().unwrap(), [4., 5.]);
/// it.reset().unwrap(); // next epoch
/// assert!(it.has_next());
/// ```
///
/// Misuse: keeping a batch while the ring moves on. With `prefetch = 1` and no minimum ring
/// size, the ring has 4 slots, so the 4th batch after a kept one (the first batch of an epoch
/// spills to the heap while the ring learns, so keep a later one) is written over it:
///
/// ```
/// use dl4rs_array::{ArrayError, NdArray};
/// use dl4rs_data::{AsyncDataSetIterator, DataError, DataSet, DataSetIterator, InMemoryDataSetIterator};
/// use dl4rs_memory::WorkspaceError;
///
/// let x = NdArray::<f32>::from_slice(&[20, 1], &[1.; 20]).unwrap();
/// let y = NdArray::<f32>::zeros(&[20, 1]).unwrap();
/// let source = InMemoryDataSetIterator::new(DataSet::new(x, y).unwrap(), 2).unwrap();
/// let mut it = AsyncDataSetIterator::with_min_ring_bytes(Box::new(source), 1, 0).unwrap();
///
/// let _first = it.next().unwrap().unwrap();
/// let kept = it.next().unwrap().unwrap(); // kept too long ...
/// for _ in 0..4 {
///     it.next().unwrap().unwrap();
/// }
/// let err = kept.features.to_vec().unwrap_err(); // ... its slot was reused: an error, not data
/// assert!(matches!(err, ArrayError::Workspace(WorkspaceError::StaleRingSlot { .. })), "{err}");
/// ```
pub struct AsyncDataSetIterator<T: DataType = f32> {
    inner: Prefetcher<Source<T>>,
}

impl<T: DataType> fmt::Debug for AsyncDataSetIterator<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug(f)
    }
}

impl<T: DataType> AsyncDataSetIterator<T> {
    /// Prefetches `source` with a queue of `prefetch` batches (at least [`MIN_PREFETCH`], at
    /// most [`MAX_PREFETCH`]; DL4J's default is [`DEFAULT_PREFETCH`], `fit` uses 2) and a ring
    /// of at least [`DEFAULT_MIN_RING_BYTES`]. Starts the prefetch thread.
    pub fn new(source: Source<T>, prefetch: usize) -> Result<Self, DataError> {
        Self::with_min_ring_bytes(source, prefetch, DEFAULT_MIN_RING_BYTES)
    }

    /// As [`new`](Self::new), with the ring's minimum size in bytes (0: exactly
    /// `prefetch + 3` slots of the learned batch size).
    pub fn with_min_ring_bytes(
        source: Source<T>,
        prefetch: usize,
        min_ring_bytes: usize,
    ) -> Result<Self, DataError> {
        Ok(AsyncDataSetIterator {
            inner: Prefetcher::new(source, prefetch, min_ring_bytes, &ADSI)?,
        })
    }

    /// The configuration of the prefetch thread's ring for a queue of `prefetch` batches:
    /// `ResetPolicy::EndOfBuffer`, `LearningPolicy::FirstLoop`, `SpillPolicy::Reallocate`,
    /// `AllocationPolicy::Overallocate` with `overallocation_limit = prefetch + 2` extra slots
    /// (so `prefetch + 3` slots), and `min_size = min_ring_bytes`. Fails when `prefetch` is
    /// outside `MIN_PREFETCH..=MAX_PREFETCH`.
    pub fn ring_config(
        prefetch: usize,
        min_ring_bytes: usize,
    ) -> Result<WorkspaceConfig, DataError> {
        ring_config(prefetch, min_ring_bytes, &ADSI)
    }

    /// Wraps `source` in an `AsyncDataSetIterator` with a queue of `prefetch` batches when its
    /// [`async_supported`](DataSetIterator::async_supported) is true, and returns it unchanged
    /// otherwise: what DL4J's `fit` does (with `prefetch = 2`).
    pub fn wrap_if_supported(source: Source<T>, prefetch: usize) -> Result<Source<T>, DataError> {
        if source.async_supported() {
            Ok(Box::new(Self::new(source, prefetch)?))
        } else {
            Ok(source)
        }
    }

    /// The prefetch queue length.
    pub fn prefetch(&self) -> usize {
        self.inner.prefetch()
    }

    /// The id of the ring workspace on the prefetch thread (`"ADSI_ITER-<n>"`); the batches'
    /// arrays report it as their workspace.
    pub fn workspace_id(&self) -> &str {
        self.inner.workspace_id()
    }

    /// Stops and joins the prefetch thread and gives the source back (where it stopped: call
    /// its `reset()` for a new epoch). Batches still held stay valid. Fails only when the
    /// source was lost (it panicked on the prefetch thread).
    pub fn into_source(mut self) -> Result<Source<T>, DataError> {
        self.inner.stop()
    }
}

impl<T: DataType> DataSetIterator<T> for AsyncDataSetIterator<T> {
    /// The next prefetched batch (blocking until the thread has one), valid at least until the
    /// next call to `next()`: see [the contract](AsyncDataSetIterator#the-contract).
    fn next(&mut self) -> Option<Result<DataSet<T>, DataError>> {
        self.inner.next()
    }

    /// Whether `next()` has another batch (or an error) this epoch. Blocks until the thread has
    /// produced the next batch or ended; the batch is kept for `next()`, never lost or repeated.
    fn has_next(&self) -> bool {
        self.inner.has_next()
    }

    /// Stops and joins the prefetch thread (mid-epoch too), resets the source and starts a new
    /// thread (with a new ring). Batches still held from before stay valid.
    fn reset(&mut self) -> Result<(), DataError> {
        self.inner.reset()
    }

    fn reset_supported(&self) -> bool {
        self.inner.reset_supported()
    }

    /// Always false: this iterator already prefetches.
    fn async_supported(&self) -> bool {
        false
    }

    fn batch(&self) -> usize {
        self.inner.info().batch
    }

    fn total_outcomes(&self) -> usize {
        self.inner.info().total_outcomes
    }

    fn input_columns(&self) -> usize {
        self.inner.info().input_columns
    }

    fn total_examples(&self) -> Option<usize> {
        self.inner.info().total_examples
    }
}

impl<T: DataType> Drop for AsyncDataSetIterator<T> {
    /// Stops the prefetch thread and joins it: no thread outlives the iterator.
    fn drop(&mut self) {
        self.inner.shutdown();
    }
}
