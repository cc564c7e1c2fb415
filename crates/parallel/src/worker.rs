//! A trainer: the loop that runs on thread "dl4rs trainer N", owning a replica and, through
//! the thread-local manager, its own workspaces. It takes its next job from the board (posted
//! rounds ahead, so it is usually there already; otherwise it spins briefly, then parks:
//! `rendezvous`) and finishes the round *with the other trainers*, without the coordinator:
//! its gradient (or parameters) into the exchange, the trainers' barrier, the combined result
//! back into its replica, the updater step. Trainer 0 then reports the round to the
//! listeners. Nothing on this path allocates.
//!
//! **An early arrival at a barrier prepares its next batch.** The copy or gather needs the
//! next job, not the combined parameters, and jobs are posted ahead: a trainer that
//! reaches a barrier before the others takes its next job there and prepares it while
//! they arrive ([`Trainer::arrive_and_wait`], [`Ahead`]), instead of adding the work to
//! its next round. Preparing a batch (`batch`) is the same either way. Still waiting, it
//! gathers the next rows of a trainer that has not arrived ([`Board::take_to_gather`]):
//! that one is late because its core is slower this round or this second (another tenant
//! on the host), and the last to arrive never prepares ahead itself, so without this it
//! would add its gather to every round it is late in.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use dl4rs_array::DataType;
use dl4rs_memory::{WorkspaceConfig, destroy_all_workspaces_for_current_thread};
use dl4rs_nn::{IterationInfo, Model, NnError};

use crate::batch::{Batch, Ready, gather_for_another, prepare};
use crate::board::{Board, Combine, Failure, Job};
use crate::encoding::Encoder;
use crate::error::panic_message;
use crate::exchange::{Exchange, pieces};
use crate::mailbox::Next;
use crate::rendezvous::{Aborted, Arrival, Patience};

/// A network shared between its worker and the coordinator (which touches it only between
/// rounds, when the worker is idle: the lock is never contended).
pub(crate) type Replica<T> = Arc<Mutex<Box<dyn Model<T>>>>;

pub(crate) fn lock<T: DataType>(r: &Replica<T>) -> MutexGuard<'_, Box<dyn Model<T>>> {
    r.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The next round's job, taken while the trainer waited at a barrier of the round before
/// ([`Trainer::arrive_and_wait`]), its batch already prepared. Thread-local: the scope in it
/// belongs to the trainer's thread.
struct Ahead<T: DataType> {
    job: Job<T>,
    ready: Option<Ready<T>>,
}

/// Where the exchange buffer holds what.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub params: usize,
    pub state_offset: usize,
    pub state: usize,
    /// Averaging every round: where the gradient slots after the first start, and their
    /// stride (`Layout::slot`).
    pub slots: usize,
    pub slot_stride: usize,
}

impl Layout {
    /// Where gradient slot `k` starts. A part's owner reads its `k`-th other contributor's
    /// gradient on the part in slot `k` (`slot_index`); slot 0 is the parameter region
    /// itself, which the owner overwrites with the part's parameters once it has read it,
    /// so two trainers need no slot memory beyond what SharedGradients uses.
    pub(crate) fn slot(&self, k: usize) -> usize {
        match k {
            0 => 0,
            k => self.slots + (k - 1) * self.slot_stride,
        }
    }
}

/// Trainer `w`'s position among the other contributors of part owner `owner`.
fn slot_index(w: usize, owner: usize) -> usize {
    if w < owner { w } else { w - 1 }
}

/// Everything one trainer owns.
pub(crate) struct Trainer<T: DataType> {
    pub index: usize,
    pub workers: usize,
    pub replica: Replica<T>,
    pub exchange: Arc<Exchange<T>>,
    pub board: Arc<Board<T>>,
    pub layout: Layout,
    /// SharedGradients and averaging every round: the part of the parameters this trainer
    /// reduces and steps (`exchange::part`); the replica's updater state is current only
    /// there (the coordinator copies each part from its owner into the model at the end of
    /// a `fit`: `ParallelWrapper::end_of_fit`).
    pub part: std::ops::Range<usize>,
    /// Averaging every round: the other contributors' gradients on one chunk of the part,
    /// read from their slots (`workers - 1` chunks; allocated once).
    pub others: Vec<T>,
    pub encoder: Option<Encoder<T>>,
    /// Copy batches into `PW_BATCH` (training workspaces on) or onto the heap.
    pub workspaces: bool,
    /// The configuration of `PW_BATCH`.
    pub batch_config: WorkspaceConfig,
    /// Batches trained so far (for the test hook).
    pub batches: u64,
    /// Test hook: panic in this batch (1-based).
    pub panic_at: Option<u64>,
    /// How this thread waits (spin, then park; backs off when preempted).
    pub patience: Patience,
    /// Trainer 0: print the score of averaging rounds (`report_score`).
    pub report_score: bool,
}

/// How long a trainer spins for its next job, or at the barrier, before it parks: longer
/// than the coordinator takes to post a round that was not ready (a copy, tens of
/// microseconds) and than two trainers' rounds differ, far shorter than a pause between
/// `fit` calls.
pub(crate) const TRAINER_SPIN: Duration = Duration::from_micros(500);

/// The end of a trainer's loop other than a failure of its own.
struct Stopped;

impl<T: DataType> Trainer<T> {
    /// The thread's body: serve jobs until the pool is stopped (or a failure); an error or
    /// a panic is recorded on the board, which aborts every wait. The thread's workspaces are
    /// destroyed on the way out.
    pub(crate) fn run(mut self) {
        let index = self.index;
        let board = Arc::clone(&self.board);
        let outcome = catch_unwind(AssertUnwindSafe(|| self.serve()));
        match outcome {
            Ok(Ok(Stopped)) => {}
            Ok(Err(Failed::Own(e))) => board.fail(index, Failure::Error(e)),
            Ok(Err(Failed::Listener(e))) => board.fail(index, Failure::Listener(*e)),
            Err(payload) => board.fail(index, Failure::Panic(panic_message(&*payload))),
        }
        drop(self);
        destroy_all_workspaces_for_current_thread();
    }

    fn serve(&mut self) -> Result<Stopped, Failed> {
        let board = Arc::clone(&self.board);
        let slot = &board.slots[self.index];
        let mut ahead = None;
        loop {
            let (job, ready) = match ahead.take() {
                Some(Ahead { job, ready }) => {
                    board.started(self.index);
                    (job, ready)
                }
                None => {
                    // Read before looking: a job posted (or delivered) after the look
                    // changes it.
                    let (posted, delivered) = (slot.posted.get(), slot.delivered.get());
                    match board.take(self.index) {
                        Next::Job(job) => (job, None),
                        next => {
                            let (signal, seen) = match next {
                                Next::Gathering => (&slot.delivered, delivered),
                                _ => (&slot.posted, posted),
                            };
                            let waited = signal.wait_change(seen, &mut self.patience, &board.abort);
                            if let Err(Aborted) = waited {
                                return Ok(Stopped);
                            }
                            continue;
                        }
                    }
                }
            };
            match self.round(job, ready, &mut ahead) {
                Ok(()) => board.finished.add(1),
                Err(RoundError::Stopped) => return Ok(Stopped),
                Err(RoundError::Failed(e)) => return Err(e),
            }
        }
    }

    /// One round's job: the batch (prepared first, unless it was while the trainer waited
    /// in the round before: `ready`; then trained on, or its gradient computed), then the
    /// combine; trainer 0 then reports the round to the listeners.
    fn round(
        &mut self,
        mut job: Job<T>,
        ready: Option<Ready<T>>,
        ahead: &mut Option<Ahead<T>>,
    ) -> Result<(), RoundError> {
        let replica = Arc::clone(&self.replica);
        let mut m = lock(&replica);
        let combine = job.combine;
        let ready = match (ready, job.batch.take()) {
            (Some(ready), _) => Some(ready),
            (None, Some(batch)) if job.delivered => Some(Ready {
                batch,
                scope: None,
                delivered: true,
            }),
            (None, Some(batch)) => Some(self.prepare(batch, job.copy)?),
            (None, None) => None,
        };
        let mut trained = None;
        if let Some(ready) = ready {
            trained = Some(self.train(ready, m.as_mut(), job.round, combine)?);
        }
        self.combine(m.as_mut(), combine, trained, ahead)?;
        if self.index == 0 && trained.is_some() {
            self.report(m.as_ref(), &job)?;
        }
        Ok(())
    }

    /// The round's combine, after the batch (`trained`: this trainer had one, of so many
    /// examples).
    fn combine(
        &mut self,
        m: &mut dyn Model<T>,
        combine: Combine,
        trained: Option<usize>,
        ahead: &mut Option<Ahead<T>>,
    ) -> Result<(), RoundError> {
        let (i, n, l) = (self.index, self.workers, self.layout);
        match combine {
            Combine::Alone => {}
            Combine::Average {
                generation,
                iteration,
                sharded: true,
                ..
            } => self.average_parts(m, generation, iteration, trained.is_some(), ahead)?,
            Combine::Average {
                generation,
                updaters,
                iteration,
                untrained_too,
                sharded: false,
            } => {
                if trained.is_some() || untrained_too {
                    self.contribute(&*m, generation, updaters)?;
                    self.board.contribute(generation, 0);
                }
                self.arrive_and_wait(ahead)?;
                let (_, contributors) = self.board.sums(generation);
                let scale = T::ONE / T::from_f64(contributors.max(1) as f64);
                {
                    let mut p = m.params_mut().write()?;
                    let p = p.as_slice_mut().unwrap_or_default();
                    self.exchange.read(generation, 0, p, scale, i, n);
                }
                if updaters && l.state > 0 {
                    let mut s = m.updater_state_mut().write()?;
                    let s = s.as_slice_mut().unwrap_or_default();
                    self.exchange
                        .read(generation, l.state_offset, s, scale, i, n);
                }
                let epoch = m.epoch_count();
                m.set_counters(iteration, epoch);
            }
            Combine::Share {
                generation,
                encoded,
            } => {
                self.arrive_and_wait(ahead)?;
                let (examples, contributors) = self.board.sums(generation);
                let divisor = if encoded { contributors } else { examples };
                let scale = T::from_f64(1.0 / divisor.max(1) as f64);
                // Dense: the own contribution is still in the gradient (`add_except`).
                let own = trained.filter(|_| !encoded).map(|e| T::from_f64(e as f64));
                let iteration = m.iteration_count() + 1;
                for piece in pieces(self.part.clone()) {
                    // Chunk by chunk, as `average_parts`: the reduced gradient and the new
                    // parameters are put and stepped while in L1. The step is the mean of
                    // one step (`apply_averaged_gradients_part`, which leaves the counters
                    // alone): the bits of `apply_gradients_part`.
                    {
                        let mut g = m.gradients_mut().write()?;
                        let g = g.as_slice_mut().unwrap_or_default();
                        let g = &mut g[piece.clone()];
                        self.exchange
                            .reduce_into(generation, piece.start, g, own, scale);
                    }
                    m.apply_averaged_gradients_part(piece.clone(), 1, Some(0), &[], T::ONE)?;
                    self.put_piece_params(m, generation, piece)?;
                }
                self.read_part_params(m, generation, ahead)?;
                let epoch = m.epoch_count();
                m.set_counters(iteration, epoch);
            }
        }
        Ok(())
    }

    /// Averaging every round, replicas equal at the start of each (`Combine::Average`'s
    /// `sharded`): each trainer puts its gradient's other parts into its slot; past the
    /// barrier it computes the mean of the contributors' updater steps on its part
    /// (`Model::apply_averaged_gradients_part`, the bits of averaging the stepped replicas),
    /// puts those parameters into the exchange, and past a second barrier reads the other
    /// parts'. The contributors are trainers `0..contributors` (batches go out in order).
    ///
    /// The part goes chunk by chunk: the other contributors' gradients on a chunk are read
    /// into `others` (a chunk each, in L1; with two contributors the other's is read in
    /// place, under the chunk's lock: W1's chunk loop 100 -> 89 µs per trainer and round),
    /// the chunk is stepped and its parameters, still in L1, are put into the exchange (over
    /// slot 0, read just before). Whole-part passes
    /// read each of those arrays once more from L2 or beyond (measured: 3-4 % of a W1
    /// round).
    fn average_parts(
        &mut self,
        m: &mut dyn Model<T>,
        generation: u64,
        iteration: u64,
        trained: bool,
        ahead: &mut Option<Ahead<T>>,
    ) -> Result<(), RoundError> {
        let (i, n, l) = (self.index, self.workers, self.layout);
        let part = self.part.clone();
        if trained {
            let g = m.gradients().read()?;
            let g = g.as_slice().unwrap_or_default();
            for j in (0..n).filter(|&j| j != i) {
                let pj = crate::exchange::part(l.params, j, n);
                let at = l.slot(slot_index(i, j)) + pj.start;
                self.exchange.put(generation, at, &g[pj]);
            }
            self.board.contribute(generation, 0);
        }
        self.arrive_and_wait(ahead)?;
        let (_, contributors) = self.board.sums(generation);
        let scale = T::ONE / T::from_f64(contributors.max(1) as f64);
        let own = (i < contributors).then_some(i);
        // Parts are runs of whole chunks: a piece is one chunk (the last may be short).
        for piece in pieces(part) {
            let len = piece.len();
            if contributors == 2 && own.is_some() {
                // Two contributors: the other's gradient chunk is read in place (a chunk of
                // another generation, which a contributor never leaves, takes the copy).
                let at = l.slot(slot_index(1 - i, i)) + piece.start;
                let stepped = self.exchange.with_chunk(generation, at, len, |g| {
                    g.map(|g| m.apply_averaged_gradients_part(piece.clone(), 2, own, g, scale))
                });
                if let Some(stepped) = stepped {
                    stepped?;
                    self.put_piece_params(m, generation, piece)?;
                    continue;
                }
            }
            let mut k = 0;
            for w in (0..contributors).filter(|&w| w != i) {
                let at = l.slot(slot_index(w, i)) + piece.start;
                let dst = &mut self.others[k * len..(k + 1) * len];
                self.exchange.read(generation, at, dst, T::ONE, i, n);
                k += 1;
            }
            let others = &self.others[..k * len];
            m.apply_averaged_gradients_part(piece.clone(), contributors, own, others, scale)?;
            self.put_piece_params(m, generation, piece)?;
        }
        self.read_part_params(m, generation, ahead)?;
        let epoch = m.epoch_count();
        m.set_counters(iteration, epoch);
        Ok(())
    }

    /// Puts the parameters of `piece` (a chunk of the part, just stepped) into the exchange.
    fn put_piece_params(
        &self,
        m: &dyn Model<T>,
        generation: u64,
        piece: std::ops::Range<usize>,
    ) -> Result<(), RoundError> {
        let p = m.params().read()?;
        let p = p.as_slice().unwrap_or_default();
        self.exchange.put(generation, piece.start, &p[piece]);
        Ok(())
    }

    /// Past the barrier that follows every trainer's put of its part's parameters: reads
    /// the other parts' into the replica.
    fn read_part_params(
        &mut self,
        m: &mut dyn Model<T>,
        generation: u64,
        ahead: &mut Option<Ahead<T>>,
    ) -> Result<(), RoundError> {
        self.arrive_and_wait(ahead)?;
        let mut p = m.params_mut().write()?;
        let p = p.as_slice_mut().unwrap_or_default();
        self.read_others(generation, 0, p);
        Ok(())
    }

    /// Reads the other trainers' parts of the region at `offset` into `dst` (a whole
    /// parameter-sized array; the own part is left as it is).
    fn read_others(&self, generation: u64, offset: usize, dst: &mut [T]) {
        let (i, n, part) = (self.index, self.workers, self.part.clone());
        let (before, rest) = dst.split_at_mut(part.start);
        let after = &mut rest[part.len()..];
        self.exchange.read(generation, offset, before, T::ONE, i, n);
        self.exchange
            .read(generation, offset + part.end, after, T::ONE, i, n);
    }

    /// The trainers' barrier. A trainer that arrives before the others first prepares its
    /// next round's batch ([`Ahead`]), when that job is posted and none is prepared yet: the
    /// copy or gather it would start that round with (on W1 the gather of a batch's rows,
    /// ~40 µs on a 2-vCPU VM) fills the wait (15-70 µs per round, from the trainers'
    /// differing speeds) instead of adding to the next round. Then, while the barrier has
    /// not passed, it gathers the next rows of each trainer still on its round
    /// ([`Board::take_to_gather`]): the last to arrive never prepares ahead itself. The last
    /// to arrive goes on.
    fn arrive_and_wait(&mut self, ahead: &mut Option<Ahead<T>>) -> Result<(), RoundError> {
        let barrier = &self.board.barrier;
        let Arrival::Early(ticket) = barrier.arrive(self.workers) else {
            return Ok(());
        };
        if ahead.is_none()
            && !barrier.passed(ticket)
            && let Some(mut job) = self.board.take_ahead(self.index)
        {
            let ready = match job.batch.take() {
                Some(batch) => {
                    if batch.needs_preparing(job.copy) {
                        self.board.add_prepared_ahead(self.index);
                    }
                    Some(self.prepare(batch, job.copy)?)
                }
                None => None,
            };
            *ahead = Some(Ahead { job, ready });
        }
        let (i, n) = (self.index, self.workers);
        for other in (1..n).map(|k| (i + k) % n) {
            if barrier.passed(ticket) {
                break;
            }
            if let Some((mut job, inbox)) = self.board.take_to_gather(other) {
                let mut spare = None;
                if let Some(batch) = job.batch.take() {
                    let (gathered, second) = gather_for_another(batch, inbox)?;
                    job.batch = Some(gathered);
                    spare = second;
                }
                job.delivered = true;
                self.board.add_prepared_ahead(i);
                self.board.deliver(other, job, spare);
            }
        }
        barrier.wait_passed(ticket, &mut self.patience, &self.board.abort)?;
        Ok(())
    }

    /// [`prepare`] with this trainer's workspace mode and copy count.
    fn prepare(&self, batch: Batch<T>, copy: bool) -> Result<Ready<T>, NnError> {
        let copied = &self.board.copied;
        prepare(batch, copy, self.workspaces, copied, &self.batch_config)
    }

    /// Computes the gradient of the prepared batch and sets the round's outcome (trainer 0
    /// may be waiting for it: before the updater step, not after); then, training alone or
    /// averaging, the updater step; sharing gradients, adds the gradient into the exchange.
    fn train(
        &mut self,
        ready: Ready<T>,
        m: &mut dyn Model<T>,
        round: u64,
        combine: Combine,
    ) -> Result<usize, RoundError> {
        let Ready {
            batch: local,
            scope,
            delivered,
        } = ready;
        self.batches += 1;
        if self.panic_at == Some(self.batches) {
            panic!("injected panic in batch {} (test hook)", self.batches);
        }
        let started = Instant::now();
        let (score, examples) = local.gradient(m)?;
        self.board.add_gradient_time(self.index, started.elapsed());
        if delivered {
            self.board.return_inbox(self.index, local);
        } else {
            drop(local);
        }
        self.board.set_outcome(self.index, round, score, examples);
        match combine {
            // Averaging every round steps the mean of the replicas' steps, part by part.
            Combine::Average { sharded: true, .. } => {}
            Combine::Alone | Combine::Average { .. } => m.apply_gradients(examples)?,
            Combine::Share { generation, .. } => {
                let (i, n, len) = (self.index, self.workers, self.layout.params);
                let g = m.gradients().read()?;
                let g = g.as_slice().unwrap_or_default();
                match &mut self.encoder {
                    None => {
                        let w = T::from_f64(examples as f64);
                        let own = self.part.clone();
                        self.exchange.add_except(generation, 0, g, w, i, n, own);
                    }
                    Some(encoder) => {
                        let (message, tau) = encoder.encode(g);
                        self.exchange
                            .add_encoded(generation, 0, len, message, tau, i, n);
                    }
                }
                self.board.contribute(generation, examples);
            }
        }
        drop(scope);
        Ok(examples)
    }

    /// Trainer 0, after the round (its replica updated or averaged): the round's score, the
    /// mean over the examples of every batch in it, to the listeners. Another trainer sets
    /// its score before its contribution, so past a combine's barrier the wait is none; in a
    /// round without one it is at most the others' lag behind trainer 0.
    fn report(&mut self, m: &dyn Model<T>, job: &Job<T>) -> Result<(), RoundError> {
        let active = self.board.active(job.round, &mut self.patience)?;
        let (mut score, mut examples) = (0.0, 0);
        for w in 0..active {
            self.board.slots[w].scored.wait_for(
                job.round + 1,
                &mut self.patience,
                &self.board.abort,
            )?;
            let (s, e) = self.board.outcome(w, job.round);
            score += s * e as f64;
            examples += e;
        }
        let score = score / examples.max(1) as f64;
        if self.report_score && matches!(job.combine, Combine::Average { .. }) {
            eprintln!(
                "ParallelWrapper: averaged score at round {}: {score:.6}",
                job.iteration
            );
        }
        let info = IterationInfo {
            iteration: job.iteration,
            epoch: m.epoch_count(),
            score,
            batch_size: examples,
        };
        for l in self.board.listeners().iter_mut() {
            l.iteration_done(m, &info)
                .map_err(|e| RoundError::Failed(Failed::Listener(Box::new(e))))?;
        }
        Ok(())
    }

    /// Adds the parameters (and the updater state) into the exchange.
    fn contribute(&self, m: &dyn Model<T>, generation: u64, updaters: bool) -> Result<(), NnError> {
        let (i, n, l) = (self.index, self.workers, self.layout);
        let p = m.params().read()?;
        self.exchange.add(
            generation,
            0,
            p.as_slice().unwrap_or_default(),
            T::ONE,
            i,
            n,
        );
        if updaters && l.state > 0 {
            let s = m.updater_state().read()?;
            let s = s.as_slice().unwrap_or_default();
            self.exchange
                .add(generation, l.state_offset, s, T::ONE, i, n);
        }
        Ok(())
    }
}

/// Why a round ended early.
enum RoundError {
    /// The pool is being stopped, or another trainer failed.
    Stopped,
    /// This trainer failed.
    Failed(Failed),
}

/// What failed on a trainer's thread.
enum Failed {
    /// Its own work (the batch, the combine, the updater).
    Own(NnError),
    /// A listener trainer 0 called (boxed: the error path only).
    Listener(Box<NnError>),
}

impl From<Aborted> for RoundError {
    fn from(_: Aborted) -> RoundError {
        RoundError::Stopped
    }
}

impl From<NnError> for RoundError {
    fn from(e: NnError) -> RoundError {
        RoundError::Failed(Failed::Own(e))
    }
}

impl From<dl4rs_array::ArrayError> for RoundError {
    fn from(e: dl4rs_array::ArrayError) -> RoundError {
        RoundError::Failed(Failed::Own(NnError::from(e)))
    }
}
