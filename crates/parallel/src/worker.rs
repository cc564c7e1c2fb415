//! A trainer: the loop that runs on thread "dl4rs trainer N", owning a replica and, through
//! the thread-local manager, its own workspaces. It waits (spinning briefly, then parked:
//! `rendezvous`) for the coordinator to post its job on the board, and finishes the round
//! *with the other trainers*, without the coordinator: its gradient (or parameters) into the
//! exchange, the trainers' barrier, the combined result back into its replica, the updater
//! step. Only then does it count the job finished, which is what the coordinator waits for.
//! Nothing on this path allocates.
//!
//! **A batch from the prefetch ring is copied first.** The ring keeps a batch valid only until
//! the consumer's next `next()`, and the coordinator takes `workers` batches per round. So a
//! trainer copies its batch into its own workspace (`PW_BATCH`, learned like any workspace)
//! and counts it copied before the coordinator asks the iterator for the next batch: the
//! ring slot is never read after the contract ends, and the copy lives in memory nobody else
//! reuses. The copy costs one memcpy of the batch, done on the trainer's core.
//!
//! **A batch that outlives the round is read where it is.** An in-memory source makes its
//! batches in the coordinator's round workspace, whose cycle the coordinator keeps open until
//! every trainer has finished the round (or on the heap, with workspaces off): the coordinator
//! sees that (`DataSet::is_held_by`), posts the job with `copy: false` and takes the next
//! batch at once. No copy, and no wait for one between two hand-outs (on W1 the copy and that
//! wait were a fifth of the coordinator's serial work per round).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dl4rs_array::DataType;
use dl4rs_data::{DataSet, MultiDataSet};
use dl4rs_memory::{
    SpillPolicy, Workspace, WorkspaceConfig, destroy_all_workspaces_for_current_thread,
    get_and_activate_workspace,
};
use dl4rs_nn::{Model, NnError};

use crate::board::{Board, Combine, Failure, Job};
use crate::encoding::Encoder;
use crate::error::panic_message;
use crate::exchange::Exchange;
use crate::rendezvous::{Aborted, Patience};

/// The id of the workspace a trainer copies its batch into.
pub const BATCH_WORKSPACE: &str = "PW_BATCH";

/// A network shared between its worker and the coordinator (which touches it only between
/// rounds, when the worker is idle: the lock is never contended).
pub(crate) type Replica<T> = Arc<Mutex<Box<dyn Model<T>>>>;

pub(crate) fn lock<T: DataType>(r: &Replica<T>) -> MutexGuard<'_, Box<dyn Model<T>>> {
    r.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A batch on its way to a trainer.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Batch<T: DataType> {
    Single(DataSet<T>),
    Multi(MultiDataSet<T>),
}

impl<T: DataType> Batch<T> {
    /// Whether every array is on the heap or in `workspace` (the coordinator's open round
    /// workspace): then it stays valid until the round is over.
    pub(crate) fn is_held_by(&self, workspace: Option<&Workspace>) -> bool {
        match self {
            Batch::Single(d) => d.is_held_by(workspace),
            Batch::Multi(d) => d.is_held_by(workspace),
        }
    }

    fn copy(self, into_workspace: bool) -> Result<Batch<T>, NnError> {
        Ok(match (self, into_workspace) {
            (Batch::Single(d), true) => Batch::Single(d.migrate()?),
            (Batch::Single(d), false) => Batch::Single(d.detach()?),
            (Batch::Multi(d), true) => Batch::Multi(d.migrate()?),
            (Batch::Multi(d), false) => Batch::Multi(d.detach()?),
        })
    }

    fn gradient(&self, m: &mut dyn Model<T>) -> Result<(f64, usize), NnError> {
        Ok(match self {
            Batch::Single(d) => (m.compute_gradient_data_set(d)?, d.num_examples()),
            Batch::Multi(d) => (m.compute_gradient_multi(d)?, d.num_examples()?),
        })
    }
}

/// Where the exchange buffer holds what.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub params: usize,
    pub state_offset: usize,
    pub state: usize,
}

/// Everything one trainer owns.
pub(crate) struct Trainer<T: DataType> {
    pub index: usize,
    pub workers: usize,
    pub replica: Replica<T>,
    pub exchange: Arc<Exchange<T>>,
    pub board: Arc<Board<T>>,
    pub layout: Layout,
    pub encoder: Option<Encoder<T>>,
    /// Copy batches into `PW_BATCH` (training workspaces on) or onto the heap.
    pub workspaces: bool,
    /// Batches trained so far (for the test hook).
    pub batches: u64,
    /// Test hook: panic in this batch (1-based).
    pub panic_at: Option<u64>,
    /// How this thread waits (spin, then park; backs off when preempted).
    pub patience: Patience,
}

/// How long a trainer spins for its next job, or at the barrier, before it parks: longer
/// than the coordinator takes between rounds (its listeners and the next batches, tens of
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
            Ok(Err(e)) => board.fail(index, Failure::Error(e)),
            Err(payload) => board.fail(index, Failure::Panic(panic_message(&*payload))),
        }
        drop(self);
        destroy_all_workspaces_for_current_thread();
    }

    fn serve(&mut self) -> Result<Stopped, NnError> {
        let config = WorkspaceConfig {
            policy_spill: SpillPolicy::Reallocate,
            ..WorkspaceConfig::default()
        };
        let board = Arc::clone(&self.board);
        let slot = &board.slots[self.index];
        let mut seen = 0;
        loop {
            seen = match slot
                .posted
                .wait_change(seen, &mut self.patience, &board.abort)
            {
                Ok(v) => v,
                Err(Aborted) => return Ok(Stopped),
            };
            let Some(job) = board.take(self.index) else {
                continue;
            };
            match self.round(job, &config) {
                Ok(()) => board.finished.add(1),
                Err(RoundError::Stopped) => return Ok(Stopped),
                Err(RoundError::Failed(e)) => return Err(e),
            }
        }
    }

    /// One round's job: the batch (copied first, see the module's notes; then trained on, or
    /// its gradient computed), then the combine.
    fn round(&mut self, job: Job<T>, config: &WorkspaceConfig) -> Result<(), RoundError> {
        let replica = Arc::clone(&self.replica);
        let mut m = lock(&replica);
        let combine = job.combine;
        let mut trained = false;
        if let Some(batch) = job.batch {
            let (score, examples) = self.train(batch, job.copy, m.as_mut(), combine, config)?;
            self.board.set_outcome(self.index, score, examples);
            trained = true;
        }
        let (i, n, l) = (self.index, self.workers, self.layout);
        match combine {
            Combine::Alone => {}
            Combine::Average {
                generation,
                updaters,
                iteration,
                untrained_too,
            } => {
                if trained || untrained_too {
                    self.contribute(m.as_ref(), generation, updaters)?;
                    self.board.contribute(0);
                }
                self.board
                    .barrier
                    .wait(n, &mut self.patience, &self.board.abort)?;
                let (_, contributors) = self.board.sums();
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
                self.board
                    .barrier
                    .wait(n, &mut self.patience, &self.board.abort)?;
                let (examples, contributors) = self.board.sums();
                let divisor = if encoded { contributors } else { examples };
                let scale = T::from_f64(1.0 / divisor.max(1) as f64);
                {
                    let mut g = m.gradients_mut().write()?;
                    let g = g.as_slice_mut().unwrap_or_default();
                    self.exchange.read(generation, 0, g, scale, i, n);
                }
                m.apply_gradients(examples)?;
            }
        }
        Ok(())
    }

    /// Copies the batch when told to and says so, computes its gradient; then, training
    /// alone or averaging, the updater step; sharing gradients, adds the gradient into the
    /// exchange.
    fn train(
        &mut self,
        batch: Batch<T>,
        copy: bool,
        m: &mut dyn Model<T>,
        combine: Combine,
        config: &WorkspaceConfig,
    ) -> Result<(f64, usize), RoundError> {
        let _scope = if self.workspaces && copy {
            Some(get_and_activate_workspace(config, BATCH_WORKSPACE).map_err(NnError::from)?)
        } else {
            None
        };
        let local = if copy {
            let local = batch.copy(self.workspaces)?;
            // The source's batch is dropped: the coordinator may take the next one.
            self.board.copied.add(1);
            local
        } else {
            batch
        };
        self.batches += 1;
        if self.panic_at == Some(self.batches) {
            panic!("injected panic in batch {} (test hook)", self.batches);
        }
        let (score, examples) = local.gradient(m)?;
        drop(local);
        match combine {
            Combine::Alone | Combine::Average { .. } => m.apply_gradients(examples)?,
            Combine::Share { generation, .. } => {
                let (i, n, len) = (self.index, self.workers, self.layout.params);
                let g = m.gradients().read()?;
                let g = g.as_slice().unwrap_or_default();
                match &mut self.encoder {
                    None => self
                        .exchange
                        .add(generation, 0, g, T::from_f64(examples as f64), i, n),
                    Some(encoder) => {
                        let (message, tau) = encoder.encode(g);
                        self.exchange
                            .add_encoded(generation, 0, len, message, tau, i, n);
                    }
                }
                self.board.contribute(examples);
            }
        }
        Ok((score, examples))
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
    Failed(NnError),
}

impl From<Aborted> for RoundError {
    fn from(_: Aborted) -> RoundError {
        RoundError::Stopped
    }
}

impl From<NnError> for RoundError {
    fn from(e: NnError) -> RoundError {
        RoundError::Failed(e)
    }
}

impl From<dl4rs_array::ArrayError> for RoundError {
    fn from(e: dl4rs_array::ArrayError) -> RoundError {
        RoundError::Failed(NnError::from(e))
    }
}
