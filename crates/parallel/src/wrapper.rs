//! [`ParallelWrapper`]: the coordinator. It runs on the caller's thread, takes batches from
//! one (prefetching) iterator and hands them out round-robin, one per trainer per *round*,
//! **rounds ahead** (`LOOKAHEAD`, 16): it posts round `r` once every trainer has taken its
//! jobs of round `r - LOOKAHEAD`; finding the queue full, it parks until only `REFILL_AT`
//! (2) rounds are left untaken and then refills it in one go. A trainer that finishes a
//! round finds its next job waiting, so no round waits for the coordinator to wake up, and
//! the coordinator wakes once per 14 rounds. The trainers combine among
//! themselves (averaging every `f` rounds, or the gradient allreduce before every updater
//! step: `worker`), and trainer 0 reports each round's score to the listeners, lent to it for
//! the `fit`. A trainer's error or panic, a listener's, an iterator error, or the wrapper
//! being dropped stops and joins every thread before anything returns.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dl4rs_array::DataType;
use dl4rs_data::{
    AsyncDataSetIterator, AsyncMultiDataSetIterator, DataSetIterator, MultiDataSetIterator,
    MultiSource, Source,
};
use dl4rs_memory::{SpillPolicy, WorkspaceConfig, get_and_activate_workspace};
use dl4rs_nn::{NnError, TrainingListener, WorkspaceMode};

use crate::batch::Batch;
use crate::board::{Board, Combine, Failure, Job, LOOKAHEAD, REFILL_AT, RoundStats};
use crate::builder::{ParallelWrapperBuilder, Settings, TrainingMode};
use crate::encoding::Encoder;
use crate::error::ParallelError;
use crate::exchange::{CHUNK, Exchange, part, region_start};
use crate::rendezvous::{Patience, Signal};
use crate::replica::{AsModel, copy_state, replicate};
use crate::rounds::{Exhausted, Rounds, finish_epoch, finish_multi_epoch};
use crate::threads::{WorkerThread, product_threads};
use crate::worker::{Layout, Replica, TRAINER_SPIN, Trainer, lock};

/// DL4J's ParallelWrapper: data-parallel training of one network on several threads, each
/// trainer with its own replica and its own workspaces.
///
/// ```
/// use dl4rs_array::NdArray;
/// use dl4rs_data::{DataSet, DataSetIterator, InMemoryDataSetIterator};
/// use dl4rs_nn::*;
/// use dl4rs_parallel::{ParallelWrapper, TrainingMode};
///
/// let conf = NeuralNetConfiguration::builder()
///     .updater(Updater::sgd(0.1))
///     .list()
///     .layer(LayerConf::dense(8).n_in(4).activation(Activation::Relu))
///     .layer(LayerConf::output(LossFunction::Mse, 1))
///     .build()?;
/// let net = MultiLayerNetwork::<f32>::new(conf)?;
/// let x = NdArray::<f32>::rand_uniform(&[64, 4], 0.0, 1.0, 1)?;
/// let y = NdArray::<f32>::rand_uniform(&[64, 1], 0.0, 1.0, 2)?;
/// let mut data: Box<dyn DataSetIterator<f32> + Send> =
///     Box::new(InMemoryDataSetIterator::new(DataSet::new(x, y)?, 8)?);
///
/// let mut wrapper = ParallelWrapper::builder(net)
///     .workers(2)
///     .training_mode(TrainingMode::Averaging)
///     .build()?;
/// wrapper.fit(&mut data)?; // one epoch: 8 batches, 4 rounds of 2
/// let net = wrapper.into_model()?;
/// assert_eq!(net.iteration_count(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ParallelWrapper<T: DataType, M: AsModel<T>> {
    model: Option<M>,
    settings: Settings,
    listeners: Vec<Box<dyn TrainingListener<T>>>,
    pool: Option<Pool<T>>,
}

/// The running trainers.
struct Pool<T: DataType> {
    threads: Vec<WorkerThread>,
    board: Arc<Board<T>>,
    replicas: Vec<Replica<T>>,
    /// Batches posted to be copied, and jobs posted, so far (the targets of
    /// `board.copied` and `board.finished`).
    to_copy: u64,
    posted: u64,
    /// Per trainer: the jobs posted to it (`Slot::posted`) at the end of each of the last
    /// `LOOKAHEAD` rounds, oldest first (a round is posted once every trainer's
    /// `Slot::taken` reaches its oldest).
    posted_by_round: Vec<[u64; LOOKAHEAD]>,
    /// Rounds run by this pool (for [`RoundStats`]).
    rounds: u64,
    /// How the coordinator waits for a copy (spin, then park; backs off when preempted).
    copy_patience: Patience,
    /// Rounds done (the replicas' iteration counter).
    iteration: u64,
    /// The exchange's generation: one per combine.
    generation: u64,
    /// Averaging: rounds since the replicas were last averaged.
    since_average: u64,
    round_config: WorkspaceConfig,
}

/// The id of the coordinator's workspace for batches an in-memory source makes.
pub const ROUND_WORKSPACE: &str = "PW_ROUND";

/// How long the coordinator spins for a trainer to copy its batch (a memcpy of
/// microseconds) before it parks. While the trainers compute a round, it parks at once.
const COPY_SPIN: Duration = Duration::from_micros(100);

impl<T: DataType, M: AsModel<T>> ParallelWrapper<T, M> {
    /// A builder with DL4J's defaults: workers = the cores (at least 2), prefetch 16,
    /// averaging every round, updaters averaged, `Averaging`, workspaces `Enabled`, no score
    /// reporting.
    pub fn builder(model: M) -> ParallelWrapperBuilder<T, M> {
        ParallelWrapperBuilder::new(model)
    }

    pub(crate) fn new(model: M, settings: Settings) -> Self {
        ParallelWrapper {
            model: Some(model),
            settings,
            listeners: Vec::new(),
            pool: None,
        }
    }

    /// Adds a listener: called after every round on trainer 0's thread ("dl4rs trainer 0",
    /// which holds it during `fit`), with replica 0 (after the round's averaging or update)
    /// and the round's score (the mean over its examples). The model's own listeners are
    /// called the same way during `fit`. A listener's error stops the `fit` with that error.
    pub fn add_listener(&mut self, listener: Box<dyn TrainingListener<T>>) {
        self.listeners.push(listener);
    }

    /// The wrapped model, as of the end of the last completed `fit`.
    pub fn model(&self) -> Option<&M> {
        self.model.as_ref()
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.settings.workers
    }

    /// Names of the running trainer threads (empty before the first `fit` and after an error).
    pub fn thread_names(&self) -> Vec<String> {
        self.pool.as_ref().map_or_else(Vec::new, |p| {
            p.threads.iter().map(|t| t.name().to_string()).collect()
        })
    }

    /// How the waits of the rounds went since the trainers started (all zero when none
    /// runs): see [`RoundStats`].
    pub fn round_stats(&self) -> RoundStats {
        self.pool
            .as_ref()
            .map_or_else(RoundStats::default, |p| RoundStats {
                rounds: p.rounds,
                ..p.board.stats()
            })
    }

    /// One epoch over `iterator` (as DL4J's `fit(DataSetIterator)`), then `reset()` when
    /// supported. Unless the iterator already prefetches (or `prefetch_buffer` is 0), it is
    /// wrapped in an [`AsyncDataSetIterator`] for the epoch and handed back afterwards.
    pub fn fit(&mut self, iterator: &mut Source<T>) -> Result<(), ParallelError> {
        let prefetch = self.settings.prefetch_buffer;
        if prefetch == 0 || !iterator.async_supported() {
            let mut rounds: &mut dyn DataSetIterator<T> = &mut **iterator;
            let result = self.fit_epoch(&mut rounds);
            return finish_epoch(result, &mut **iterator);
        }
        let source = std::mem::replace(iterator, Box::new(Exhausted));
        let mut wrapped = AsyncDataSetIterator::new(source, prefetch)?;
        let mut rounds: &mut dyn DataSetIterator<T> = &mut wrapped;
        let result = self.fit_epoch(&mut rounds);
        *iterator = wrapped.into_source()?;
        finish_epoch(result, &mut **iterator)
    }

    /// [`ParallelWrapper::fit`] for multi data sets (graphs with several inputs or outputs).
    pub fn fit_multi(&mut self, iterator: &mut MultiSource<T>) -> Result<(), ParallelError> {
        let prefetch = self.settings.prefetch_buffer;
        if prefetch == 0 || !iterator.async_supported() {
            let mut rounds: &mut dyn MultiDataSetIterator<T> = &mut **iterator;
            let result = self.fit_epoch(&mut rounds);
            return finish_multi_epoch(result, &mut **iterator);
        }
        let source = std::mem::replace(iterator, Box::new(Exhausted));
        let mut wrapped = AsyncMultiDataSetIterator::new(source, prefetch)?;
        let mut rounds: &mut dyn MultiDataSetIterator<T> = &mut wrapped;
        let result = self.fit_epoch(&mut rounds);
        *iterator = wrapped.into_source()?;
        finish_multi_epoch(result, &mut **iterator)
    }

    /// Stops and joins the trainers and returns the model (holding the trained state).
    pub fn into_model(mut self) -> Result<M, ParallelError> {
        self.stop_pool();
        self.model
            .take()
            .ok_or_else(|| ParallelError::Thread("the model was lost".into()))
    }

    fn fit_epoch(&mut self, source: &mut dyn Rounds<T>) -> Result<(), ParallelError> {
        let model = self
            .model
            .as_mut()
            .ok_or_else(|| ParallelError::Thread("the model was lost".into()))?;
        // The model's listeners are called per round here, and go back to it afterwards.
        let mut own = model.as_model_mut().take_listeners();
        let borrowed = own.len();
        own.append(&mut self.listeners);
        self.listeners = own;
        let result = self.rounds(source);
        let model = self.model.as_mut().map(AsModel::as_model_mut);
        if let Some(model) = model {
            for l in self.listeners.drain(..borrowed) {
                model.add_listener(l);
            }
        }
        result
    }

    fn rounds(&mut self, source: &mut dyn Rounds<T>) -> Result<(), ParallelError> {
        if self.pool.is_none() {
            self.start_pool()?;
        }
        let pool = self.pool.as_mut().ok_or_else(not_running)?;
        *pool.board.listeners() = std::mem::take(&mut self.listeners);
        let result = self.epoch(source);
        let result = result.and_then(|()| self.end_of_fit());
        if let Some(pool) = self.pool.as_mut() {
            if result.is_err() {
                // An error with the workers' state unknown: stop them (the model keeps the
                // state of the last completed fit). Joined, none holds the listeners.
                pool.halt();
            }
            self.listeners = std::mem::take(&mut *pool.board.listeners());
        }
        if result.is_err() {
            self.stop_pool();
        }
        result
    }

    fn start_pool(&mut self) -> Result<(), ParallelError> {
        let s = self.settings;
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| ParallelError::Thread("the model was lost".into()))?
            .as_model();
        let n = s.workers;
        let params = model.num_params();
        let state = model.updater_state().len();
        let averaging = s.training_mode == TrainingMode::Averaging;
        let state_offset = region_start(params);
        // Averaging in parts shares gradients through `workers - 1` slots, the first of them
        // the parameter region (`Layout::slot`), the others after it; averaging the updater
        // state whole puts it after the parameters. SharedGradients and averaging in parts
        // never exchange the updater state (each replica's is current on its own part: the
        // coordinator copies each part into the model at the end of a fit).
        let layout = Layout {
            params,
            state_offset,
            state,
            slots: state_offset,
            slot_stride: region_start(params),
        };
        let len = if s.averages_in_parts() {
            layout.slots + n.saturating_sub(2) * layout.slot_stride
        } else if averaging && s.average_updaters {
            layout.state_offset + state
        } else {
            params
        };
        let exchange = Arc::new(Exchange::new(len));
        let board = Arc::new(Board::new(n));
        let threads_each = s.product_threads.unwrap_or_else(|| product_threads(n));
        let mode = Some(s.workspace_mode);
        let mut pool = Pool {
            threads: Vec::with_capacity(n),
            board: Arc::clone(&board),
            replicas: Vec::with_capacity(n),
            to_copy: 0,
            posted: 0,
            posted_by_round: vec![[0; LOOKAHEAD]; n],
            rounds: 0,
            copy_patience: Patience::spin(COPY_SPIN),
            iteration: model.iteration_count(),
            generation: 0,
            since_average: 0,
            round_config: WorkspaceConfig {
                policy_spill: SpillPolicy::Reallocate,
                ..WorkspaceConfig::default()
            },
        };
        for index in 0..n {
            let replica: Replica<T> = Arc::new(Mutex::new(replicate(model, mode)?));
            let trainer = Trainer {
                index,
                workers: n,
                replica: Arc::clone(&replica),
                exchange: Arc::clone(&exchange),
                board: Arc::clone(&board),
                layout,
                part: part(params, index, n),
                others: if s.averages_in_parts() {
                    vec![T::ZERO; (n - 1) * CHUNK]
                } else {
                    Vec::new()
                },
                encoder: s.threshold.map(|t| Encoder::new(params, t)),
                workspaces: s.workspace_mode == WorkspaceMode::Enabled,
                // The round's settings: a batch that outgrows the block spills, and the block
                // grows to it when the cycle ends.
                batch_config: pool.round_config.clone(),
                batches: 0,
                panic_at: s.panic_at.filter(|(w, _)| *w == index).map(|(_, b)| b),
                patience: Patience::spin(TRAINER_SPIN),
                report_score: s.report_score,
            };
            let thread =
                WorkerThread::spawn(format!("dl4rs trainer {index}"), threads_each, || {
                    trainer.run()
                });
            match thread {
                Ok(t) => pool.threads.push(t),
                Err(e) => {
                    stop(pool);
                    return Err(e);
                }
            }
            pool.replicas.push(replica);
        }
        self.pool = Some(pool);
        Ok(())
    }

    fn stop_pool(&mut self) {
        if let Some(pool) = self.pool.take() {
            stop(pool);
        }
    }

    /// The rounds of one pass over `source`, then the wait for the last one to finish.
    fn epoch(&mut self, source: &mut dyn Rounds<T>) -> Result<(), ParallelError> {
        let s = self.settings;
        let pool = self.pool.as_mut().ok_or_else(not_running)?;
        let averaging = s.training_mode == TrainingMode::Averaging;
        loop {
            let average_now = averaging && (pool.since_average + 1) % s.averaging_frequency == 0;
            let generation = pool.generation + 1;
            let combine = if !averaging {
                Combine::Share {
                    generation,
                    encoded: s.threshold.is_some(),
                }
            } else if average_now {
                Combine::Average {
                    generation,
                    updaters: s.average_updaters,
                    iteration: pool.iteration + 1,
                    untrained_too: false,
                    sharded: s.averages_in_parts(),
                }
            } else {
                Combine::Alone
            };
            let active = pool.round(source, combine, s.workspace_mode)?;
            if active == 0 {
                break;
            }
            pool.rounds += 1;
            pool.iteration += 1;
            if combine != Combine::Alone {
                pool.generation = generation;
            }
            if averaging {
                pool.since_average = if average_now {
                    0
                } else {
                    pool.since_average + 1
                };
            }
        }
        pool.wait(&pool.board.finished, pool.posted, &mut Patience::park())
    }

    /// After a pass: the last averaging (when the last rounds did not average), the epoch
    /// counters, and replica 0's state copied into the model.
    fn end_of_fit(&mut self) -> Result<(), ParallelError> {
        let s = self.settings;
        let pool = self.pool.as_mut().ok_or_else(not_running)?;
        if s.training_mode == TrainingMode::Averaging && pool.since_average > 0 {
            pool.generation += 1;
            let combine = Combine::Average {
                generation: pool.generation,
                updaters: s.average_updaters,
                iteration: pool.iteration,
                untrained_too: true,
                sharded: false,
            };
            for w in 0..s.workers {
                let job = pool.job(None, false, combine);
                pool.post(w, job);
            }
            pool.wait(&pool.board.finished, pool.posted, &mut Patience::park())?;
            pool.since_average = 0;
        }
        for r in &pool.replicas {
            lock(r).increment_epoch();
        }
        let model = self
            .model
            .as_mut()
            .ok_or_else(|| ParallelError::Thread("the model was lost".into()))?
            .as_model_mut();
        copy_state(&**lock(&pool.replicas[0]), model)?;
        if s.training_mode == TrainingMode::SharedGradients || s.averages_in_parts() {
            // Each replica's updater state is current on its own part: the model takes the
            // others' parts from their owners (each state array, Adam's m then v).
            let np = model.num_params();
            let mut state = model.updater_state_mut().write().map_err(NnError::from)?;
            let state = state.as_slice_mut().unwrap_or_default();
            for (w, r) in pool.replicas.iter().enumerate().skip(1) {
                let r = lock(r);
                let theirs = r.updater_state().read().map_err(NnError::from)?;
                let theirs = theirs.as_slice().unwrap_or_default();
                let p = part(np, w, s.workers);
                if np == 0 || theirs.len() != state.len() {
                    continue;
                }
                for (mine, theirs) in state.chunks_exact_mut(np).zip(theirs.chunks_exact(np)) {
                    mine[p.clone()].copy_from_slice(&theirs[p.clone()]);
                }
            }
        }
        Ok(())
    }
}

impl<T: DataType> Pool<T> {
    /// Posts trainer `w` its job.
    fn post(&mut self, w: usize, job: Job<T>) {
        self.posted += 1;
        self.board.post(w, job);
    }

    /// A job of the round being handed out (`self.rounds`, completing `self.iteration + 1`).
    fn job(&self, batch: Option<Batch<T>>, copy: bool, combine: Combine) -> Job<T> {
        Job {
            batch,
            copy,
            combine,
            round: self.rounds,
            iteration: self.iteration + 1,
            delivered: false,
        }
    }

    /// One round: once every trainer has taken its jobs of the rounds up to `LOOKAHEAD`
    /// before this one (else after waiting until only `REFILL_AT` rounds are left untaken),
    /// hands out up to one batch per trainer and posts the combine to trainers without a
    /// batch. Returns the number of batches (0: the source was exhausted). It does not wait
    /// for the round to finish: the next rounds are posted while this one runs.
    ///
    /// A batch that stays valid for as long as it is held (rows a trainer gathers itself, a
    /// data set on the heap) is posted as it is. One in the source's memory (a prefetch
    /// ring's slot, or the workspace the coordinator opens around `next()` for a source that
    /// allocates there) is copied by its trainer, and waited for, before the next `next()`
    /// and before that workspace's cycle ends. On an error the trainers are stopped and
    /// joined *before* the cycle ends: none still reads a batch in it.
    fn round(
        &mut self,
        source: &mut dyn Rounds<T>,
        combine: Combine,
        mode: WorkspaceMode,
    ) -> Result<usize, ParallelError> {
        let board = Arc::clone(&self.board);
        let n = self.threads.len();
        let full = (0..n).any(|w| board.slots[w].taken.get() < self.posted_by_round[w][0]);
        if full {
            // Wait until only `REFILL_AT` rounds are left untaken, then refill.
            for w in 0..n {
                let target = self.posted_by_round[w][LOOKAHEAD - 1 - REFILL_AT];
                self.wait(&board.slots[w].taken, target, &mut Patience::park())?;
            }
        }
        let mut active = 0;
        while active < n && source.has_next() {
            let scope = if mode == WorkspaceMode::Enabled {
                Some(
                    get_and_activate_workspace(&self.round_config, ROUND_WORKSPACE)
                        .map_err(NnError::from)?,
                )
            } else {
                None
            };
            let result = self.hand_out(source, active, combine);
            if result.is_err() {
                self.halt();
            }
            drop(scope);
            if !result? {
                break;
            }
            active += 1;
        }
        if active == 0 {
            return Ok(0);
        }
        board.handed_out(self.rounds, active);
        if combine != Combine::Alone {
            // A short round's combine needs every trainer at the barrier.
            for w in active..n {
                let job = self.job(None, false, combine);
                self.post(w, job);
            }
        }
        for (by_round, slot) in self.posted_by_round.iter_mut().zip(&board.slots) {
            by_round.rotate_left(1);
            by_round[LOOKAHEAD - 1] = slot.posted.get();
        }
        Ok(active)
    }

    /// Takes the next batch from `source` and posts it to trainer `w`, waiting for its copy
    /// when it must be copied; false when the source had none.
    fn hand_out(
        &mut self,
        source: &mut dyn Rounds<T>,
        w: usize,
        combine: Combine,
    ) -> Result<bool, ParallelError> {
        let Some(batch) = source.next_batch() else {
            return Ok(false);
        };
        let batch = batch?;
        let copy = !batch.outlives_the_source();
        let job = self.job(Some(batch), copy, combine);
        self.post(w, job);
        if copy {
            self.to_copy += 1;
            let board = Arc::clone(&self.board);
            let mut patience = self.copy_patience;
            let copied = self.wait(&board.copied, self.to_copy, &mut patience);
            self.copy_patience = patience;
            copied?;
        }
        Ok(true)
    }

    /// Aborts every wait and joins every trainer thread (the pool is dead afterwards).
    fn halt(&mut self) {
        self.board.abort_all();
        for t in self.threads.drain(..) {
            t.join();
        }
    }

    /// Waits until `signal` reaches `target`; a trainer's failure ends the wait with its error.
    fn wait(
        &self,
        signal: &Signal,
        target: u64,
        patience: &mut Patience,
    ) -> Result<(), ParallelError> {
        if signal.wait_for(target, patience, &self.board.abort).is_ok() {
            return Ok(());
        }
        Err(match self.board.take_failure() {
            Some((worker, failure)) => {
                let thread = self
                    .threads
                    .get(worker)
                    .map_or_else(String::new, |t| t.name().to_string());
                match failure {
                    Failure::Error(source) => ParallelError::Worker {
                        worker,
                        thread,
                        source: Box::new(source),
                    },
                    Failure::Listener(source) => ParallelError::Nn(Box::new(source)),
                    Failure::Panic(message) => ParallelError::Panic {
                        worker,
                        thread,
                        message,
                    },
                }
            }
            None => not_running(),
        })
    }
}

/// Stops every trainer and joins every thread: the abort flag ends every wait (a trainer
/// still busy finishes its job's current step, sees the flag at its next wait and leaves).
fn stop<T: DataType>(mut pool: Pool<T>) {
    pool.halt();
}

fn not_running() -> ParallelError {
    ParallelError::Thread("the trainers are not running".into())
}

impl<T: DataType, M: AsModel<T>> Drop for ParallelWrapper<T, M> {
    /// Stops and joins every trainer thread (also mid-epoch, e.g. when a listener panics).
    fn drop(&mut self) {
        self.stop_pool();
    }
}
