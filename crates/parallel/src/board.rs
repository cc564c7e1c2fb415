//! The board the coordinator and the trainers share: one mailbox per trainer (the job of the
//! current round), the counters the coordinator waits on (batches copied, jobs finished), the
//! trainers' barrier, what the round's contributors add up (examples, contributors), and the
//! first failure. Everything is allocated when the trainers start; a round only stores into
//! it (see `rendezvous` for how the waits work).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dl4rs_array::DataType;
use dl4rs_nn::NnError;

use crate::rendezvous::{AbortFlag, Barrier, Signal};
use crate::worker::Batch;

/// How a round's results are combined (what a trainer does after its batch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Combine {
    /// Averaging, not this round: train on the batch with the replica's own updater.
    Alone,
    /// Averaging: after training (if it had a batch), add the parameters (and the updater
    /// state) into the exchange; then, past the barrier, replace them by the average of the
    /// contributors and set the iteration counter (replicas that sat out catch up).
    /// `untrained_too`: every replica contributes, batch or not (the final averaging of a
    /// `fit` whose last rounds did not average).
    Average {
        generation: u64,
        updaters: bool,
        iteration: u64,
        untrained_too: bool,
    },
    /// SharedGradients: add the batch's gradient into the exchange (dense: weighted by its
    /// examples; encoded: the threshold message); past the barrier, every replica takes the
    /// combined gradient and steps its updater. `encoded`: divide by the contributors
    /// (DL4J's threshold messages are summed, then averaged per worker), else by the
    /// examples.
    Share { generation: u64, encoded: bool },
}

/// One trainer's job for a round: its batch (none in a short round's combine), whether the
/// trainer must copy it before the coordinator takes the next one (it lives in a prefetch
/// ring: `worker`), and how the round combines. A trainer is posted at most one job at a time.
pub(crate) struct Job<T: DataType> {
    pub batch: Option<Batch<T>>,
    pub copy: bool,
    pub combine: Combine,
}

/// Why a worker stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    Error(NnError),
    Panic(String),
}

/// How the waits of [`ParallelWrapper`](crate::ParallelWrapper)'s rounds went, counted
/// since its trainers started (`ParallelWrapper::round_stats`). A wait either ends while its
/// thread spins (nothing counted) or parks it (counted): each park costs a wake-up later,
/// tens of microseconds on a VM. The coordinator parks once per round by design (while the
/// trainers compute); trainers should park rarely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundStats {
    /// Rounds run (and final averagings).
    pub rounds: u64,
    /// Waits of the coordinator (for a copy or for the round's end) that parked.
    pub coordinator_parks: u64,
    /// Waits of trainers for their next job that parked.
    pub job_parks: u64,
    /// Waits of trainers at the barrier that parked.
    pub barrier_parks: u64,
}

/// A trainer's mailbox.
pub(crate) struct Slot<T: DataType> {
    job: Mutex<Option<Job<T>>>,
    /// Jobs posted to this trainer so far.
    pub posted: Signal,
    /// The score and examples of its last batch (read by the coordinator after `finished`).
    outcome: Mutex<(f64, usize)>,
}

/// The shared state of one pool.
pub(crate) struct Board<T: DataType> {
    pub slots: Vec<Slot<T>>,
    /// Batches copied out of the source's memory (cumulative).
    pub copied: Signal,
    /// Jobs finished (cumulative).
    pub finished: Signal,
    /// The trainers' barrier of a combining round.
    pub barrier: Barrier,
    /// Set when the trainers must stop (the coordinator) or one failed (that trainer).
    pub abort: AbortFlag,
    /// The first failure and its worker.
    failure: Mutex<Option<(usize, Failure)>>,
    /// Examples and contributors of the current combining round, added before the barrier
    /// and reset by the coordinator before it posts a round (when no trainer is busy).
    examples: AtomicUsize,
    contributors: AtomicUsize,
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    // A trainer that panicked while holding it poisons it; the pool is torn down then anyway.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: DataType> Board<T> {
    pub(crate) fn new(workers: usize) -> Board<T> {
        Board {
            slots: (0..workers)
                .map(|_| Slot {
                    job: Mutex::new(None),
                    posted: Signal::default(),
                    outcome: Mutex::new((0.0, 0)),
                })
                .collect(),
            copied: Signal::default(),
            finished: Signal::default(),
            barrier: Barrier::default(),
            abort: AbortFlag::default(),
            failure: Mutex::new(None),
            examples: AtomicUsize::new(0),
            contributors: AtomicUsize::new(0),
        }
    }

    /// Coordinator: gives trainer `w` its job (it has finished the previous one).
    pub(crate) fn post(&self, w: usize, job: Job<T>) {
        *lock(&self.slots[w].job) = Some(job);
        self.slots[w].posted.add(1);
    }

    /// Trainer: takes the job posted to it.
    pub(crate) fn take(&self, w: usize) -> Option<Job<T>> {
        lock(&self.slots[w].job).take()
    }

    /// Coordinator, between rounds: clears the round's sums.
    pub(crate) fn new_round(&self) {
        self.examples.store(0, Ordering::Relaxed);
        self.contributors.store(0, Ordering::Relaxed);
    }

    /// Trainer, before the barrier: counts its contribution.
    pub(crate) fn contribute(&self, examples: usize) {
        self.examples.fetch_add(examples, Ordering::Relaxed);
        self.contributors.fetch_add(1, Ordering::Relaxed);
    }

    /// Trainer, after the barrier: the round's examples and contributors (the barrier orders
    /// every party's `contribute` before this).
    pub(crate) fn sums(&self) -> (usize, usize) {
        (
            self.examples.load(Ordering::Relaxed),
            self.contributors.load(Ordering::Relaxed),
        )
    }

    /// Trainer: its batch's score and examples, before it counts its job finished.
    pub(crate) fn set_outcome(&self, w: usize, score: f64, examples: usize) {
        *lock(&self.slots[w].outcome) = (score, examples);
    }

    /// Coordinator, after the round: trainer `w`'s score and examples.
    pub(crate) fn outcome(&self, w: usize) -> (f64, usize) {
        *lock(&self.slots[w].outcome)
    }

    /// Trainer: records its failure (the first one wins) and aborts every wait.
    pub(crate) fn fail(&self, w: usize, failure: Failure) {
        {
            let mut f = lock(&self.failure);
            if f.is_none() {
                *f = Some((w, failure));
            }
        }
        self.abort_all();
    }

    /// The recorded failure, if any (taken: reported once).
    pub(crate) fn take_failure(&self) -> Option<(usize, Failure)> {
        lock(&self.failure).take()
    }

    /// What the waits did so far.
    pub(crate) fn stats(&self) -> RoundStats {
        RoundStats {
            coordinator_parks: self.copied.parks() + self.finished.parks(),
            job_parks: self.slots.iter().map(|s| s.posted.parks()).sum(),
            barrier_parks: self.barrier.parks(),
            rounds: 0,
        }
    }

    /// Sets the abort flag and wakes every waiter: trainers leave their loops.
    pub(crate) fn abort_all(&self) {
        self.abort.set();
        for s in &self.slots {
            s.posted.wake_all();
        }
        self.copied.wake_all();
        self.finished.wake_all();
        self.barrier.wake_all();
    }
}
