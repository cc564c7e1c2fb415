//! The board the coordinator and the trainers share: one mailbox per trainer (its next jobs:
//! `mailbox`), the counters the coordinator waits on (jobs taken, batches copied, jobs
//! finished), the trainers' barrier, what a combining round's contributors add up (examples,
//! contributors), the batches' scores trainer 0 reports, the listeners lent to trainer 0, and
//! the first failure. Everything is allocated when the trainers start; a round only stores into it
//! (see `rendezvous` for how the waits work).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dl4rs_array::DataType;
use dl4rs_nn::{NnError, TrainingListener};

use crate::batch::Batch;
use crate::mailbox::{Inbox, Mailbox, Next};
use crate::rendezvous::{AbortFlag, Aborted, Barrier, Patience, Signal};

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
    /// `sharded`: averaging every round with the updater state, the replicas equal at the
    /// start of each: a trainer does not step its replica but shares its gradient, and each
    /// computes the mean of the contributors' steps on its part (`Trainer::average_parts`);
    /// each replica's updater state is then current on its part only, as SharedGradients'
    /// (the model gets each part from its owner at the end of the `fit`).
    Average {
        generation: u64,
        updaters: bool,
        iteration: u64,
        untrained_too: bool,
        sharded: bool,
    },
    /// SharedGradients: add the batch's gradient into the exchange (dense: weighted by its
    /// examples, into the other trainers' parts only; encoded: the threshold message, into
    /// every part); past the barrier, each trainer reduces *its part* of the combined
    /// gradient, steps its updater there and puts those parameters into the exchange; past a
    /// second barrier it reads the other parts' parameters. Every replica ends the round with
    /// the parameters one whole step gives (each element's step is its own), for a third of
    /// the memory traffic and half the updater work per trainer of a full reduce and step on
    /// each. `encoded`: divide by the contributors (DL4J's threshold messages are summed,
    /// then averaged per worker), else by the examples.
    Share { generation: u64, encoded: bool },
}

/// One trainer's job for a round: its batch (none in a short round's combine), whether the
/// trainer must copy it before the coordinator takes the next one (it lives in the source's
/// memory: a prefetch ring, the coordinator's workspace; see `worker`), how the round
/// combines, and what trainer 0 reports to the listeners. A trainer holds at most
/// [`LOOKAHEAD`] jobs waiting besides the one it runs: the coordinator posts round `r` once
/// *every trainer* has taken its jobs of the rounds up to `r - LOOKAHEAD` (`Slot::taken`).
/// A count over all trainers would not do: a trainer ahead would make up for one behind,
/// and the one ahead could then reach a round whose per-round slot the one behind has yet
/// to read.
pub(crate) struct Job<T: DataType> {
    pub batch: Option<Batch<T>>,
    pub copy: bool,
    pub combine: Combine,
    /// The pool's round number (0 for its first): which outcome slot the round uses.
    pub round: u64,
    /// The iteration the round completes (what the listeners are told).
    pub iteration: u64,
    /// Its batch was gathered by another trainer, onto the heap, into the owner's inbox
    /// ([`Board::take_to_gather`]): ready as it is, and back to the inbox after the gradient.
    pub delivered: bool,
}

/// How many rounds the coordinator keeps posted ahead of the oldest one still being taken.
/// One would make a trainer that finishes round `r` wait for the coordinator to have posted
/// `r + 1`, which it does only once it gets a CPU after every trainer took round `r`; with
/// both cores computing, the scheduler often gives it one only when a trainer starts
/// spinning at the end of the round (measured: ~100 µs waits per round on W1). With several
/// it has several rounds to do that, and it refills them in bursts ([`REFILL_AT`]): 16 woke
/// it once per 14 rounds and measured 2 % faster rounds than 6 (each wake-up takes a
/// trainer's core for a moment), for as many batches queued as DL4J's `prefetchSize ×
/// workers`.
pub(crate) const LOOKAHEAD: usize = 16;

/// The coordinator, finding the queue full, parks until only this many rounds are left
/// untaken, then posts up to [`LOOKAHEAD`] again in one go: one wake-up (which takes a
/// trainer's CPU for a moment, tens of microseconds on a VM) per `LOOKAHEAD - REFILL_AT`
/// rounds instead of one per round.
pub(crate) const REFILL_AT: usize = 2;

/// Per-round slots (outcomes, batch counts): trainer 0 reads round `r`'s before it takes a
/// job of `r + 1`, and until then nobody can be past round `r + LOOKAHEAD`.
const ROUND_SLOTS: usize = LOOKAHEAD + 1;

/// Why a worker stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    Error(NnError),
    /// A listener (run by trainer 0) returned an error.
    Listener(NnError),
    Panic(String),
}

/// How the waits of [`ParallelWrapper`](crate::ParallelWrapper)'s rounds went, counted
/// since its trainers started (`ParallelWrapper::round_stats`). A wait either ends while its
/// thread spins (nothing counted) or parks it (counted): each park costs a wake-up later,
/// tens of microseconds on a VM. The coordinator parks about once per round by design (it
/// posts the next round while the trainers compute this one); trainers should park rarely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundStats {
    /// Rounds run (and final averagings).
    pub rounds: u64,
    /// Waits of the coordinator (for a copy, for room to post, for the end) that parked.
    pub coordinator_parks: u64,
    /// Waits of trainers for their next job that parked.
    pub job_parks: u64,
    /// Waits of trainers at the barrier that parked.
    pub barrier_parks: u64,
    /// The mean time one batch's gradient took, in nanoseconds, on the trainer where it was
    /// shortest and on the one where it was longest. The trainers do the same work, so a
    /// gap is the machine giving one core less (on a VM: another tenant on its host core);
    /// every combining round waits for the slowest, two independent models would not.
    pub gradient_ns_fastest: u64,
    /// See [`RoundStats::gradient_ns_fastest`].
    pub gradient_ns_slowest: u64,
    /// Batches a trainer copied or gathered while it waited at a barrier of the round
    /// before (arriving before the others), instead of at the start of their own round.
    pub prepared_ahead: u64,
    /// Of those, batches one trainer gathered for another (still on its round) while it
    /// waited at a barrier: the other's next round starts with its batch ready.
    pub gathered_for_another: u64,
}

/// A trainer's mailbox.
pub(crate) struct Slot<T: DataType> {
    /// Its posted jobs and the one being gathered for it.
    mailbox: Mutex<Mailbox<T>>,
    /// Jobs other trainers delivered to it (a trainer that finds its next job being
    /// gathered, `Next::Gathering`, waits for this to change).
    pub delivered: Signal,
    /// Batches other trainers gathered for it.
    gathered_for: AtomicU64,
    /// Jobs posted to this trainer so far.
    pub posted: Signal,
    /// Jobs this trainer has taken so far.
    pub taken: Signal,
    /// The score and examples of its batches of the last rounds, by round number modulo
    /// `ROUND_SLOTS`: trainer 0 reads them (`Board::outcome`) while others may be ahead.
    outcome: Mutex<[(f64, usize); ROUND_SLOTS]>,
    /// The last round it set its outcome for, plus one.
    pub scored: Signal,
    /// Its batches' gradients: how many, and their total time in nanoseconds.
    gradients: AtomicU64,
    gradient_ns: AtomicU64,
    /// Batches it prepared while waiting at a barrier.
    prepared_ahead: AtomicU64,
}

/// The examples and contributors of a combining round, tagged with its generation.
#[derive(Clone, Copy, Default)]
struct Sums {
    generation: u64,
    examples: usize,
    contributors: usize,
}

/// The shared state of one pool.
pub(crate) struct Board<T: DataType> {
    pub slots: Vec<Slot<T>>,
    /// Rounds whose batches are all handed out (cumulative), and how many each had, by
    /// round modulo `ROUND_SLOTS`.
    handed: Signal,
    actives: Mutex<[usize; ROUND_SLOTS]>,
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
    /// What the contributors of the last two combining rounds add up, by generation parity:
    /// added before the barrier, read after it. A fast trainer's next contribution is for
    /// the other slot, and the one after that waits at the next barrier for the slow one.
    sums: Mutex<[Sums; 2]>,
    /// The listeners, lent to trainer 0 for a `fit`.
    listeners: Mutex<Vec<Box<dyn TrainingListener<T>>>>,
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    // A trainer that panicked while holding it poisons it; the pool is torn down then anyway.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which of two slots a generation uses.
fn parity(n: u64) -> usize {
    (n % 2) as usize
}

/// Which of the per-round slots a round uses.
fn round_slot(round: u64) -> usize {
    (round % ROUND_SLOTS as u64) as usize
}

impl<T: DataType> Board<T> {
    pub(crate) fn new(workers: usize) -> Board<T> {
        Board {
            slots: (0..workers)
                .map(|_| Slot {
                    mailbox: Mutex::new(Mailbox::new()),
                    delivered: Signal::default(),
                    gathered_for: AtomicU64::new(0),
                    posted: Signal::default(),
                    taken: Signal::default(),
                    outcome: Mutex::new([(0.0, 0); ROUND_SLOTS]),
                    scored: Signal::default(),
                    gradients: AtomicU64::new(0),
                    gradient_ns: AtomicU64::new(0),
                    prepared_ahead: AtomicU64::new(0),
                })
                .collect(),
            handed: Signal::default(),
            actives: Mutex::new([0; ROUND_SLOTS]),
            copied: Signal::default(),
            finished: Signal::default(),
            barrier: Barrier::default(),
            abort: AbortFlag::default(),
            failure: Mutex::new(None),
            sums: Mutex::new([Sums::default(); 2]),
            listeners: Mutex::new(Vec::new()),
        }
    }

    /// Coordinator: queues a job for trainer `w` (behind fewer than `LOOKAHEAD` others: the
    /// coordinator's wait on `taken` sees to that).
    pub(crate) fn post(&self, w: usize, job: Job<T>) {
        lock(&self.slots[w].mailbox).post(job);
        self.slots[w].posted.add(1);
    }

    /// Trainer: takes its next job (a delivered one first), if any, and counts it taken.
    pub(crate) fn take(&self, w: usize) -> Next<T> {
        let next = lock(&self.slots[w].mailbox).take();
        if let Next::Job(_) = next {
            self.started(w);
        }
        next
    }

    /// Trainer `w`: its next job, taken before its round starts (its batch is prepared while
    /// the trainer waits in the round before); [`Board::started`] counts it taken when the
    /// round starts, so the coordinator's look-ahead is that of [`Board::take`]. None while
    /// another trainer holds it (`Mailbox::take_ahead`).
    pub(crate) fn take_ahead(&self, w: usize) -> Option<Job<T>> {
        lock(&self.slots[w].mailbox).take_ahead()
    }

    /// Another trainer, waiting at a barrier: takes trainer `w`'s next job out to gather its
    /// rows for it (`w` is still on its round: it would gather them at the start of its
    /// next), with the inbox to gather into (`Mailbox::take_to_gather`). [`Board::deliver`]
    /// hands it back; until then `w` waits for it rather than take a later one.
    pub(crate) fn take_to_gather(&self, w: usize) -> Option<(Job<T>, Inbox<T>)> {
        lock(&self.slots[w].mailbox).take_to_gather()
    }

    /// Hands trainer `w` the job [`Board::take_to_gather`] took, its batch gathered (and,
    /// from the first gather, its second inbox).
    pub(crate) fn deliver(&self, w: usize, job: Job<T>, spare: Option<Batch<T>>) {
        lock(&self.slots[w].mailbox).deliver(job, spare);
        self.slots[w].gathered_for.fetch_add(1, Ordering::Relaxed);
        self.slots[w].delivered.add(1);
    }

    /// Trainer `w`, after the gradient of a delivered batch: its inbox back, for the next.
    pub(crate) fn return_inbox(&self, w: usize, batch: Batch<T>) {
        lock(&self.slots[w].mailbox).put_inbox(batch);
    }

    /// Trainer `w` starts the round of a job it took ahead.
    pub(crate) fn started(&self, w: usize) {
        self.slots[w].taken.add(1);
    }

    /// Coordinator: every batch of `round` is handed out, `active` of them (to trainers
    /// `0..active`).
    pub(crate) fn handed_out(&self, round: u64, active: usize) {
        lock(&self.actives)[round_slot(round)] = active;
        self.handed
            .add((round + 1).saturating_sub(self.handed.get()));
    }

    /// Trainer 0: how many batches `round` has (waits until they are all handed out: the
    /// coordinator posts the later ones just after trainer 0's).
    pub(crate) fn active(&self, round: u64, patience: &mut Patience) -> Result<usize, Aborted> {
        self.handed.wait_for(round + 1, patience, &self.abort)?;
        Ok(lock(&self.actives)[round_slot(round)])
    }

    /// Trainer, before the barrier: counts its contribution to combine `generation`.
    pub(crate) fn contribute(&self, generation: u64, examples: usize) {
        let mut sums = lock(&self.sums);
        let s = &mut sums[parity(generation)];
        if s.generation != generation {
            *s = Sums {
                generation,
                ..Sums::default()
            };
        }
        s.examples += examples;
        s.contributors += 1;
    }

    /// Trainer, after the barrier: the examples and contributors of combine `generation`
    /// (the barrier orders every party's `contribute` before this).
    pub(crate) fn sums(&self, generation: u64) -> (usize, usize) {
        let s = lock(&self.sums)[parity(generation)];
        if s.generation == generation {
            (s.examples, s.contributors)
        } else {
            (0, 0)
        }
    }

    /// Trainer: its batch's score and examples in `round`.
    pub(crate) fn set_outcome(&self, w: usize, round: u64, score: f64, examples: usize) {
        lock(&self.slots[w].outcome)[round_slot(round)] = (score, examples);
        let scored = &self.slots[w].scored;
        scored.add((round + 1).saturating_sub(scored.get()));
    }

    /// Trainer `w` computed a batch's gradient in `elapsed`.
    pub(crate) fn add_gradient_time(&self, w: usize, elapsed: Duration) {
        let slot = &self.slots[w];
        slot.gradients.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        slot.gradient_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Trainer `w` prepared its next batch while it waited at a barrier.
    pub(crate) fn add_prepared_ahead(&self, w: usize) {
        self.slots[w].prepared_ahead.fetch_add(1, Ordering::Relaxed);
    }

    /// Trainer 0: trainer `w`'s score and examples in `round` (once `scored` says it is set).
    pub(crate) fn outcome(&self, w: usize, round: u64) -> (f64, usize) {
        lock(&self.slots[w].outcome)[round_slot(round)]
    }

    /// The listeners (lent to trainer 0 during a `fit`, taken back after it).
    pub(crate) fn listeners(&self) -> MutexGuard<'_, Vec<Box<dyn TrainingListener<T>>>> {
        lock(&self.listeners)
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
        let means = self.slots.iter().filter_map(|s| {
            let n = s.gradients.load(Ordering::Relaxed);
            (n > 0).then(|| s.gradient_ns.load(Ordering::Relaxed) / n)
        });
        RoundStats {
            coordinator_parks: self.slots.iter().map(|s| s.taken.parks()).sum::<u64>()
                + self.copied.parks()
                + self.finished.parks(),
            job_parks: self.slots.iter().map(|s| s.posted.parks()).sum(),
            barrier_parks: self.barrier.parks(),
            rounds: 0,
            gradient_ns_fastest: means.clone().min().unwrap_or(0),
            gradient_ns_slowest: means.max().unwrap_or(0),
            prepared_ahead: self
                .slots
                .iter()
                .map(|s| s.prepared_ahead.load(Ordering::Relaxed))
                .sum(),
            gathered_for_another: self
                .slots
                .iter()
                .map(|s| s.gathered_for.load(Ordering::Relaxed))
                .sum(),
        }
    }

    /// Sets the abort flag and wakes every waiter: trainers leave their loops.
    pub(crate) fn abort_all(&self) {
        self.abort.set();
        for s in &self.slots {
            s.posted.wake_all();
            s.delivered.wake_all();
            s.taken.wake_all();
            s.scored.wake_all();
        }
        self.handed.wake_all();
        self.copied.wake_all();
        self.finished.wake_all();
        self.barrier.wake_all();
    }
}
