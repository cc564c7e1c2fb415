//! A thread team that is already awake: [`KernelTeam`].
//!
//! rayon's idle workers go to sleep at once and take tens of microseconds to wake on a VM,
//! as long as a whole W1 product. A `KernelTeam` keeps its workers spinning for a
//! configurable *blocktime* after each parallel region (OpenMP's `KMP_BLOCKTIME`), so the
//! next region of a step starts at once; only after the blocktime without work does a worker
//! park. And a region never waits for a worker that has not started: when the calling thread
//! has finished its own task, it takes back the task of every worker that has not picked its
//! task up yet and runs it itself (for gemm, whose tasks claim blocks dynamically, that is
//! an empty loop). So a descheduled or parked worker costs the caller nothing beyond the
//! work it would have done anyway.
//!
//! On a shared VM the second CPU is sometimes simply not there (a build runs on it). A
//! spinning worker then only takes CPU time from the caller, so the team gets out of the way
//! (each measured, see the constants):
//!
//! * the spin is a plain load loop, no PAUSE (KVM's pause-loop exits descheduled the vCPU);
//! * every `YIELD_EVERY` the worker yields its CPU, so a caller the scheduler put on the same
//!   CPU runs; a yield or a spin step that took `PREEMPTED` or longer means the worker was
//!   descheduled, and it parks at once instead of finishing its blocktime;
//! * a caller that waited `STALL` or longer for a worker descheduled in the middle of its
//!   task runs the following regions alone for a backoff (10 ms, doubling up to 320 ms while
//!   stalls recur, halving after each clean region).
//!
//! [`KernelTeam::take_stats`] counts all of these.
//!
//! # Protocol
//!
//! One region runs at a time (`busy`, a try-lock; a nested or concurrent `run` runs its
//! tasks inline on its own thread). Each worker owns a cache-line-padded [`Slot`] with a
//! `state`:
//!
//! * `IDLE -> POSTED` (the caller, `Release`, after writing the job into `job`): task i is
//!   offered to worker i.
//! * `POSTED -> RUNNING` (the worker, `compare_exchange`, `Acquire`): the worker owns the
//!   task; the `Acquire` pairs with the caller's `Release`, so the worker sees the job.
//! * `RUNNING -> DONE` (the worker, `Release`, after the task returned or panicked): the
//!   worker never touches the job again; the caller's `Acquire` load makes the task's writes
//!   visible to it.
//! * `POSTED -> IDLE` (the caller, `compare_exchange`, `Acquire`): the caller cancels a task
//!   no worker has taken and runs it itself. Exactly one of the two `compare_exchange`s on
//!   a `POSTED` slot succeeds, so every task runs exactly once.
//! * `DONE -> IDLE` (the caller): the region is over for that slot.
//!
//! The caller returns (or unwinds, through [`RegionGuard`]) only when every slot is back to
//! `IDLE`: no worker holds a reference to the job, which lives on the caller's stack. The
//! job is written only while every slot is `IDLE`, so no worker reads it concurrently.
//!
//! Parking uses the classic store-then-check handshake, with `SeqCst` on both sides: the
//! worker stores `sleeping = true`, then loads `state`; the caller stores `state = POSTED`,
//! then loads `sleeping`. In the single total order of `SeqCst` operations one of the two
//! stores comes first, so either the worker sees `POSTED` and does not park, or the caller
//! sees `sleeping` and unparks it (an unpark before the park makes the park return at once;
//! spurious wake-ups re-check the state). No wake-up is lost.
//!
//! Nothing is allocated per region: the job is a (data pointer, monomorphized trampoline)
//! pair on the caller's stack, the slots and thread handles are allocated by
//! [`KernelTeam::new`].

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

const IDLE: u32 = 0;
const POSTED: u32 = 1;
const RUNNING: u32 = 2;
const DONE: u32 = 3;
const SHUTDOWN: u32 = 4;

/// The default blocktime: how long a worker spins for the next region before parking.
pub const DEFAULT_BLOCKTIME: Duration = Duration::from_millis(2);

/// A gap between two of a spinning worker's clock reads (normally ~100 ns apart) that
/// means it was descheduled. On an oversubscribed machine (a build on the other vCPU) a
/// spinning worker halves the caller's share of the CPUs; measured with a CPU hog on one of
/// 2 vCPUs, the W1 step at 2 threads fell to 43 GFLOP/s against 72 on 1 thread before the
/// worker parked on this signal.
const PREEMPTED: Duration = Duration::from_micros(100);

/// How often a spinning worker yields its CPU (`sched_yield`, ~1 µs when nothing else
/// wants the CPU). Without it, a worker the scheduler had woken onto the caller's own CPU
/// (the other one busy) spun there for its whole blocktime while the caller waited.
const YIELD_EVERY: Duration = Duration::from_micros(20);

/// One worker's mailbox, on its own cache lines so the caller's writes to one slot do not
/// disturb the spinning of another worker.
#[repr(align(128))]
struct Slot {
    state: AtomicU32,
    sleeping: AtomicBool,
    panicked: AtomicBool,
    /// Set by the worker once its thread has started (see `try_with_blocktime`).
    started: AtomicBool,
}

/// A type-erased `&F` where `F: Fn(usize) + Sync`: the data pointer and the function that
/// calls it.
#[derive(Clone, Copy)]
struct JobRef {
    data: *const (),
    call: unsafe fn(*const (), usize),
}

/// # Safety
/// `data` points to a live `F`.
unsafe fn trampoline<F: Fn(usize) + Sync>(data: *const (), i: usize) {
    // SAFETY: per the caller, data is the `&F` the JobRef was made from, still alive.
    unsafe { (*data.cast::<F>())(i) }
}

struct Shared {
    slots: Box<[Slot]>,
    /// The job of the current region; written only while every slot is `IDLE` (see the
    /// module comment), read by a worker only after it moved its slot to `RUNNING`.
    job: UnsafeCell<JobRef>,
    busy: AtomicBool,
    blocktime_ns: AtomicU64,
    /// Time base of `solo_until_ns`.
    epoch: Instant,
    /// Until when (ns after `epoch`) regions run on the caller alone, after a stall (see
    /// `STALL`); with `backoff_ns`, only touched by the region owner (holding `busy`).
    solo_until_ns: AtomicU64,
    backoff_ns: AtomicU64,
    /// [`TeamStats`] counters, indexed by the constants below.
    stats: [AtomicU64; 6],
}

const REGIONS: usize = 0;
const SOLO: usize = 1;
const STALLS: usize = 2;
const TAKEN_BACK: usize = 3;
const PARKS: usize = 4;
const PARKS_CONTENDED: usize = 5;

impl Shared {
    fn count(&self, i: usize) {
        self.stats[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// What a team has done since it was created (or since the last [`KernelTeam::take_stats`]):
/// how often its workers were there, and how often the caller went on without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TeamStats {
    /// Regions with more than one task.
    pub regions: u64,
    /// Of those, regions run on the caller alone while backing off after a stall.
    pub solo_regions: u64,
    /// Regions whose caller waited long for a descheduled worker (each starts a backoff).
    pub stalls: u64,
    /// Tasks no worker had picked up when the caller finished its own, run by the caller.
    pub tasks_taken_back: u64,
    /// Times a worker parked after a full blocktime without work.
    pub parks_idle: u64,
    /// Times a worker parked early because it found itself descheduled (CPUs oversubscribed).
    pub parks_contended: u64,
}

// SAFETY: `job` is the only non-Sync field; its accesses are ordered by the slot protocol
// (written by the region owner while no worker is RUNNING, read by workers only between
// their POSTED -> RUNNING acquire and RUNNING -> DONE release), so they never race. The
// JobRef's pointee is `Sync` (F: Fn + Sync), so calling it from several threads is allowed.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer in JobRef is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// A small team of threads for the kernels' parallel regions: `threads - 1` workers plus the
/// calling thread. Workers spin for the blocktime after each region, then park.
///
/// Use it with [`gemm`](crate::gemm) as `Parallelism::Team(&team)` (borrowed for the call:
/// the array crate keeps one per thread that runs products), or run your own regions with
/// [`KernelTeam::run`]. Dropping a team stops and joins its workers.
///
/// ```
/// use dl4rs_kernels::KernelTeam;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// let team = KernelTeam::new(2);
/// let sum = AtomicUsize::new(0);
/// team.run(2, |i| { sum.fetch_add(i + 1, Ordering::Relaxed); });
/// assert_eq!(sum.load(Ordering::Relaxed), 3); // tasks 0 and 1 ran, each exactly once
/// ```
pub struct KernelTeam {
    shared: Arc<Shared>,
    threads: Vec<Thread>,
    handles: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for KernelTeam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelTeam")
            .field("threads", &self.threads())
            .field("blocktime", &self.blocktime())
            .finish()
    }
}

/// Teams compare by identity.
impl PartialEq for KernelTeam {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for KernelTeam {}

impl KernelTeam {
    /// A team of `threads` (at least 1: the caller) with the default blocktime (2 ms).
    pub fn new(threads: usize) -> Self {
        Self::with_blocktime(threads, DEFAULT_BLOCKTIME)
    }

    /// A team of `threads` whose workers spin `blocktime` after each region before parking
    /// (`Duration::ZERO`: park at once, like rayon).
    ///
    /// # Panics
    /// When the operating system refuses a thread (see [`KernelTeam::try_with_blocktime`]).
    pub fn with_blocktime(threads: usize, blocktime: Duration) -> Self {
        Self::try_with_blocktime(threads, blocktime).expect("spawning a KernelTeam worker")
    }

    /// [`KernelTeam::with_blocktime`], returning the operating system's error when it refuses
    /// a thread (the workers spawned so far are stopped and joined).
    pub fn try_with_blocktime(threads: usize, blocktime: Duration) -> std::io::Result<Self> {
        let workers = threads.max(1) - 1;
        let shared = Arc::new(Shared {
            slots: (0..workers)
                .map(|_| Slot {
                    state: AtomicU32::new(IDLE),
                    sleeping: AtomicBool::new(false),
                    panicked: AtomicBool::new(false),
                    started: AtomicBool::new(false),
                })
                .collect(),
            job: UnsafeCell::new(JobRef {
                data: std::ptr::null(),
                call: |_, _| {},
            }),
            busy: AtomicBool::new(false),
            epoch: Instant::now(),
            solo_until_ns: AtomicU64::new(0),
            backoff_ns: AtomicU64::new(0),
            stats: [const { AtomicU64::new(0) }; 6],
            blocktime_ns: AtomicU64::new(blocktime.as_nanos().min(u64::MAX as u128) as u64),
        });
        let mut team = KernelTeam {
            shared,
            threads: Vec::with_capacity(workers),
            handles: Vec::with_capacity(workers),
        };
        for w in 0..workers {
            let s = Arc::clone(&team.shared);
            // On an error, `team` drops here and stops the workers spawned so far (their
            // slots are IDLE; Drop only signals the threads it has handles for).
            let h = std::thread::Builder::new()
                .name(format!("dl4rs-kernel-team-{}", w + 1))
                .spawn(move || worker(&s, w))?;
            team.threads.push(h.thread().clone());
            team.handles.push(h);
        }
        // Wait until every worker's thread has started: a thread's start-up allocates (its
        // handle, thread-locals), and on a loaded machine a late start would put those
        // allocations inside whatever steady-state cycle runs then, instead of here.
        for slot in &team.shared.slots {
            while !slot.started.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
        }
        Ok(team)
    }

    /// Moves the team into a `'static` reference, for `Parallelism::Team` (the workers then
    /// live, parked when idle, until the process ends).
    pub fn leak(self) -> &'static KernelTeam {
        Box::leak(Box::new(self))
    }

    /// Threads of the team, the caller included.
    pub fn threads(&self) -> usize {
        self.shared.slots.len() + 1
    }

    /// How long a worker spins for the next region before parking.
    pub fn blocktime(&self) -> Duration {
        Duration::from_nanos(self.shared.blocktime_ns.load(Ordering::Relaxed))
    }

    /// Sets the blocktime; workers pick it up at their next idle spell.
    pub fn set_blocktime(&self, blocktime: Duration) {
        let ns = blocktime.as_nanos().min(u64::MAX as u128) as u64;
        self.shared.blocktime_ns.store(ns, Ordering::Relaxed);
    }

    /// Returns the counters and resets them to zero.
    pub fn take_stats(&self) -> TeamStats {
        let t = |i: usize| self.shared.stats[i].swap(0, Ordering::Relaxed);
        TeamStats {
            regions: t(REGIONS),
            solo_regions: t(SOLO),
            stalls: t(STALLS),
            tasks_taken_back: t(TAKEN_BACK),
            parks_idle: t(PARKS),
            parks_contended: t(PARKS_CONTENDED),
        }
    }

    /// Runs `f(i)` exactly once for every `i < tasks` and returns when all have returned:
    /// task 0 on the calling thread, task i on worker i when that worker picks it up before
    /// the caller has finished its own tasks, otherwise on the caller after task 0 (so a
    /// sleeping or descheduled worker never makes the caller wait). `tasks` above
    /// [`threads`](Self::threads), a nested call (from inside a task) or a call while
    /// another thread's region runs: the tasks run one after another on the calling thread.
    ///
    /// Allocation-free. A panic in any task is propagated to the caller after every task
    /// has finished (the team stays usable).
    pub fn run<F: Fn(usize) + Sync>(&self, tasks: usize, f: F) {
        let sh = &*self.shared;
        if tasks <= 1
            || tasks > self.threads()
            || sh
                .busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            (0..tasks).for_each(&f);
            return;
        }
        sh.count(REGIONS);
        if now_ns(sh) < sh.solo_until_ns.load(Ordering::Relaxed) {
            sh.count(SOLO);
            // Backing off after a stall: the workers are not to be had just now.
            sh.busy.store(false, Ordering::Release);
            (0..tasks).for_each(&f);
            return;
        }
        let workers = tasks - 1;
        // SAFETY: we hold `busy` and every slot is IDLE (the previous region's owner reset
        // them all before releasing `busy`, and its Release store of `busy` pairs with our
        // Acquire), so no worker reads `job` now.
        unsafe {
            *sh.job.get() = JobRef {
                data: (&raw const f).cast(),
                call: trampoline::<F>,
            };
        }
        for (w, slot) in sh.slots[..workers].iter().enumerate() {
            slot.state.store(POSTED, Ordering::SeqCst);
            if slot.sleeping.load(Ordering::SeqCst) {
                self.threads[w].unpark();
            }
        }
        let started = Instant::now();
        let guard = RegionGuard {
            sh,
            workers,
            run_cancelled: None,
            own: Duration::ZERO,
        };
        f(0);
        let mut guard = guard;
        guard.run_cancelled = Some(&f);
        guard.own = started.elapsed();
        drop(guard);
    }
}

/// Ends a region, also when the caller's task unwinds: cancels the tasks no worker took
/// (running them on the caller unless unwinding), waits for the tasks workers are running,
/// resets the slots and releases `busy`. Only then may the job (the caller's `f`) die.
struct RegionGuard<'a> {
    sh: &'a Shared,
    workers: usize,
    /// The job, to run cancelled tasks with; `None` while task 0 runs (a panic there
    /// cancels the rest without running them).
    run_cancelled: Option<&'a (dyn Fn(usize) + Sync)>,
    /// How long the caller's own task took.
    own: Duration,
}

fn now_ns(sh: &Shared) -> u64 {
    sh.epoch.elapsed().as_nanos() as u64
}

/// Waiting this long (and more than half the caller's own task) for a worker that took its
/// task means it was descheduled mid-task: the machine is oversubscribed (a build on the
/// other vCPU), and a descheduled worker holding a block makes the caller wait for a CPU
/// slice (milliseconds). The team then runs its regions on the caller alone for a backoff
/// (`MIN_BACKOFF`, doubling on each further stall up to `MAX_BACKOFF`, halving on each
/// stall-free region), so a lost second CPU costs one stall per backoff, not one per
/// product. Measured with a CPU hog on one of 2 vCPUs (`gemm_gflops --gap-us`): before
/// this, the W1 step at 2 threads ran at ~51 GFLOP/s against ~96 on one thread.
const STALL: Duration = Duration::from_micros(100);
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(320);

impl Drop for RegionGuard<'_> {
    fn drop(&mut self) {
        let mut panicked = false;
        let mut pending = 0;
        for (w, slot) in self.sh.slots[..self.workers].iter().enumerate() {
            match slot
                .state
                .compare_exchange(POSTED, IDLE, Ordering::Acquire, Ordering::Acquire)
            {
                // The worker never took it: it will not touch the job for this region.
                Ok(_) => {
                    self.sh.count(TAKEN_BACK);
                    if let Some(f) = self.run_cancelled {
                        // A panic here unwinds out of drop while later slots are still
                        // POSTED; catch it and re-raise once every slot is settled.
                        panicked |= catch_unwind(AssertUnwindSafe(|| f(w + 1))).is_err();
                    }
                }
                Err(_) => pending += 1,
            }
        }
        // Taken tasks: wait for DONE (they are running, not asleep: a short wait unless the
        // worker was descheduled, see STALL).
        if pending > 0 {
            let wait_start = Instant::now();
            for slot in &self.sh.slots[..self.workers] {
                let mut spins = 0u32;
                loop {
                    let s = slot.state.load(Ordering::Acquire);
                    if s == DONE {
                        slot.state.store(IDLE, Ordering::Relaxed);
                        break;
                    }
                    if s == IDLE {
                        break; // cancelled above
                    }
                    spins = spins.wrapping_add(1);
                    if spins.is_multiple_of(1024) {
                        // The worker was descheduled mid-task; let it have the CPU. (No
                        // PAUSE in between, as in the worker's spin.)
                        std::thread::yield_now();
                    }
                }
            }
            let waited = wait_start.elapsed();
            let backoff = self.sh.backoff_ns.load(Ordering::Relaxed);
            let backoff = if waited > STALL && waited > self.own / 2 {
                self.sh.count(STALLS);
                let b = (2 * backoff)
                    .clamp(MIN_BACKOFF.as_nanos() as u64, MAX_BACKOFF.as_nanos() as u64);
                self.sh
                    .solo_until_ns
                    .store(now_ns(self.sh) + b, Ordering::Relaxed);
                b
            } else if backoff / 2 < MIN_BACKOFF.as_nanos() as u64 {
                0
            } else {
                backoff / 2
            };
            self.sh.backoff_ns.store(backoff, Ordering::Relaxed);
        }
        for slot in &self.sh.slots[..self.workers] {
            panicked |= slot.panicked.swap(false, Ordering::Relaxed);
        }
        self.sh.busy.store(false, Ordering::Release);
        if panicked && !std::thread::panicking() {
            panic!("KernelTeam: a task panicked");
        }
    }
}

fn worker(sh: &Shared, w: usize) {
    let slot = &sh.slots[w];
    // The handle `park` needs, made now rather than at the first idle spell.
    drop(std::thread::current());
    slot.started.store(true, Ordering::Release);
    loop {
        // Spin for the blocktime, then park until posted.
        let mut state = slot.state.load(Ordering::Relaxed);
        if state != POSTED && state != SHUTDOWN {
            let start = Instant::now();
            let limit = Duration::from_nanos(sh.blocktime_ns.load(Ordering::Relaxed));
            let mut last = start;
            let mut last_yield = start;
            let mut spins = 0u32;
            loop {
                state = slot.state.load(Ordering::Relaxed);
                if state == POSTED || state == SHUTDOWN {
                    break;
                }
                // No `spin_loop()` (PAUSE) here, on purpose: under KVM a vCPU that executes
                // PAUSE in a loop for ~50 µs takes a pause-loop exit and the host may
                // deschedule it, which is exactly the sleeping worker this team exists to
                // avoid. Measured (`gemm_gflops --wake`, Zen 4 VM): with PAUSE the median
                // start latency after a 200 µs gap was 0.15 µs in one run and > 300 µs in
                // another; without, 0.14 - 0.18 µs in every run. (No SMT sibling here to
                // starve; a plain load loop costs only power.)
                spins = spins.wrapping_add(1);
                if !spins.is_multiple_of(64) {
                    continue;
                }
                // Park when the blocktime is over, or at once when this thread was just
                // descheduled (two clock reads ~100 ns apart are suddenly PREEMPTED apart):
                // the CPUs are oversubscribed, and spinning would only take CPU time from
                // the caller and whatever else runs (see `PREEMPTED`).
                let mut now = Instant::now();
                let mut preempted = now - last >= PREEMPTED;
                if !preempted && now - last_yield >= YIELD_EVERY {
                    // Let a runnable thread on this CPU (the caller itself, when the
                    // scheduler woke us onto its CPU) have it; a yield that takes long means
                    // one did: the CPUs are oversubscribed.
                    std::thread::yield_now();
                    let after = Instant::now();
                    preempted = after - now >= PREEMPTED;
                    now = after;
                    last_yield = now;
                }
                last = now;
                if preempted || now - start >= limit {
                    sh.count(if preempted { PARKS_CONTENDED } else { PARKS });
                    slot.sleeping.store(true, Ordering::SeqCst);
                    state = slot.state.load(Ordering::SeqCst);
                    if state != POSTED && state != SHUTDOWN {
                        std::thread::park();
                    }
                    slot.sleeping.store(false, Ordering::Relaxed);
                    // Woken (or spuriously): spin a fresh blocktime, re-checking.
                    break;
                }
            }
        }
        if state == SHUTDOWN {
            return;
        }
        if state != POSTED {
            continue;
        }
        if slot
            .state
            .compare_exchange(POSTED, RUNNING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue; // the caller took the task back
        }
        // SAFETY: RUNNING was reached from the caller's POSTED (Release after writing the
        // job), so the job is the current region's, and its `f` lives until this slot is
        // DONE and the caller has seen it.
        let job = unsafe { *sh.job.get() };
        // SAFETY: job.data is the region's `&F`, alive as argued above.
        let r = catch_unwind(AssertUnwindSafe(|| unsafe { (job.call)(job.data, w + 1) }));
        if r.is_err() {
            slot.panicked.store(true, Ordering::Relaxed);
        }
        // Release: the task's writes (and `panicked`) happen-before the caller's Acquire.
        slot.state.store(DONE, Ordering::Release);
    }
}

impl Drop for KernelTeam {
    fn drop(&mut self) {
        // `&mut self`: no region is running, every slot is IDLE.
        for (slot, t) in self.shared.slots.iter().zip(&self.threads) {
            slot.state.store(SHUTDOWN, Ordering::SeqCst);
            t.unpark();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
