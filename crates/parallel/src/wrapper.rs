//! [`ParallelWrapper`]: the coordinator. It runs on the caller's thread, takes batches from
//! one (prefetching) iterator and hands them out round-robin, one per trainer per *round*
//! (each taken from the iterator once the previous one is copied), then parks until every
//! trainer has finished the round. The trainers combine among themselves (averaging every
//! `f` rounds, or the gradient allreduce before every updater step: `worker`), so the
//! coordinator is woken once per round, not once per hand-off, and never competes with them
//! for a core. Listeners get each round's score. A trainer's error or panic, an iterator
//! error, or the wrapper being dropped stops and joins every thread before anything returns.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dl4rs_array::DataType;
use dl4rs_data::{
    AsyncDataSetIterator, AsyncMultiDataSetIterator, DataSetIterator, MultiDataSetIterator,
    MultiSource, Source,
};
use dl4rs_memory::{SpillPolicy, Workspace, WorkspaceConfig, get_and_activate_workspace};
use dl4rs_nn::{IterationInfo, NnError, TrainingListener, WorkspaceMode};

use crate::board::{Board, Combine, Failure, Job, RoundStats};
use crate::builder::{ParallelWrapperBuilder, Settings, TrainingMode};
use crate::encoding::Encoder;
use crate::error::ParallelError;
use crate::exchange::{Exchange, region_start};
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
    /// Batches handed out to be copied and jobs posted so far (the targets of
    /// `board.copied` and `board.finished`).
    handed_out: u64,
    posted: u64,
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

    /// Adds a listener: called on the calling thread after every round, with replica 0 (after
    /// the round's averaging or update) and the round's score (the mean over its examples).
    /// The model's own listeners are called the same way during `fit`.
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
        let result = self.epoch(source);
        let result = result.and_then(|()| self.end_of_fit());
        if result.is_err() {
            // An error with the workers' state unknown: stop them (the model keeps the state
            // of the last completed fit).
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
        let layout = Layout {
            params,
            state_offset: region_start(params),
            state,
        };
        let len = if averaging && s.average_updaters {
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
            handed_out: 0,
            posted: 0,
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
                encoder: s.threshold.map(|t| Encoder::new(params, t)),
                workspaces: s.workspace_mode == WorkspaceMode::Enabled,
                batches: 0,
                panic_at: s.panic_at.filter(|(w, _)| *w == index).map(|(_, b)| b),
                patience: Patience::spin(TRAINER_SPIN),
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

    /// The rounds of one pass over `source`.
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
                }
            } else {
                Combine::Alone
            };
            let active = pool.round(source, combine, s.workspace_mode)?;
            if active == 0 {
                return Ok(());
            }
            pool.rounds += 1;
            pool.iteration += 1;
            let (mut score, mut examples) = (0.0, 0);
            for w in 0..active {
                let (sc, ex) = pool.board.outcome(w);
                score += sc * ex as f64;
                examples += ex;
            }
            let score = score / examples.max(1) as f64;
            if combine != Combine::Alone {
                pool.generation = generation;
            }
            if averaging {
                pool.since_average += 1;
                if average_now {
                    pool.since_average = 0;
                    if s.report_score {
                        eprintln!(
                            "ParallelWrapper: averaged score at round {}: {score:.6}",
                            pool.iteration
                        );
                    }
                }
            }
            let replica = lock(&pool.replicas[0]);
            let info = IterationInfo {
                iteration: pool.iteration,
                epoch: replica.epoch_count(),
                score,
                batch_size: examples,
            };
            for l in &mut self.listeners {
                l.iteration_done(&**replica, &info)?;
            }
        }
    }

    /// After a pass: the last averaging (when the last rounds did not average), the epoch
    /// counters, and replica 0's state copied into the model.
    fn end_of_fit(&mut self) -> Result<(), ParallelError> {
        let s = self.settings;
        let pool = self.pool.as_mut().ok_or_else(not_running)?;
        if s.training_mode == TrainingMode::Averaging && pool.since_average > 0 {
            pool.generation += 1;
            pool.board.new_round();
            let combine = Combine::Average {
                generation: pool.generation,
                updaters: s.average_updaters,
                iteration: pool.iteration,
                untrained_too: true,
            };
            for w in 0..s.workers {
                pool.post(
                    w,
                    Job {
                        batch: None,
                        copy: false,
                        combine,
                    },
                );
            }
            pool.wait(&pool.board.finished, pool.posted, &mut Patience::park())?;
            pool.since_average = 0;
        }
        for r in &pool.replicas {
            lock(r).increment_epoch();
        }
        let replica = lock(&pool.replicas[0]);
        let model = self
            .model
            .as_mut()
            .ok_or_else(|| ParallelError::Thread("the model was lost".into()))?;
        copy_state(&**replica, model.as_model_mut())?;
        Ok(())
    }
}

impl<T: DataType> Pool<T> {
    /// Posts trainer `w` its job.
    fn post(&mut self, w: usize, job: Job<T>) {
        self.posted += 1;
        self.board.post(w, job);
    }

    /// One round: hands out up to one batch per trainer (each taken from `source` only once
    /// the previous one is copied: it may live in the prefetch ring, valid until the next
    /// `next()`), posts the combine to trainers without a batch, and waits until every
    /// trainer has finished. Returns the number of batches (0: the source was exhausted).
    ///
    /// A source that allocates its batches in the current workspace (an in-memory iterator,
    /// not wrapped because it holds its data already) makes them in the coordinator's round
    /// workspace: no heap allocation. The scope stays open until the round is over, so the
    /// trainers read those batches where they are, without a copy, and the coordinator
    /// takes the next one at once; only a batch from a ring is copied, and waited for,
    /// before the next `next()` (the last one needs no wait: the coordinator parks at once
    /// and leaves the core to the trainers). On an error the trainers are stopped and joined
    /// *before* the scope closes: none still reads a batch in it.
    fn round(
        &mut self,
        source: &mut dyn Rounds<T>,
        combine: Combine,
        mode: WorkspaceMode,
    ) -> Result<usize, ParallelError> {
        let scope = if mode == WorkspaceMode::Enabled {
            Some(
                get_and_activate_workspace(&self.round_config, ROUND_WORKSPACE)
                    .map_err(NnError::from)?,
            )
        } else {
            None
        };
        let workspace = scope.as_ref().and_then(|s| s.workspace());
        let result = self.hand_out(source, combine, workspace);
        if result.is_err() {
            self.halt();
        }
        drop(scope);
        result
    }

    /// Hands out the round's batches; `round_workspace`: the coordinator's open round
    /// workspace (batches in it, or on the heap, are read in place: `worker`).
    fn hand_out(
        &mut self,
        source: &mut dyn Rounds<T>,
        combine: Combine,
        round_workspace: Option<&Workspace>,
    ) -> Result<usize, ParallelError> {
        let n = self.threads.len();
        self.board.new_round();
        let board = Arc::clone(&self.board);
        let mut active = 0;
        while active < n && source.has_next() {
            if active > 0 {
                let mut patience = self.copy_patience;
                let copied = self.wait(&board.copied, self.handed_out, &mut patience);
                self.copy_patience = patience;
                copied?;
            }
            let Some(batch) = source.next_batch() else {
                break;
            };
            let batch = batch?;
            let copy = !batch.is_held_by(round_workspace);
            self.post(
                active,
                Job {
                    batch: Some(batch),
                    copy,
                    combine,
                },
            );
            if copy {
                self.handed_out += 1;
            }
            active += 1;
        }
        if active == 0 {
            return Ok(0);
        }
        if combine != Combine::Alone {
            // A short round's combine needs every trainer at the barrier.
            for w in active..n {
                self.post(
                    w,
                    Job {
                        batch: None,
                        copy: false,
                        combine,
                    },
                );
            }
        }
        self.wait(&board.finished, self.posted, &mut Patience::park())?;
        Ok(active)
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
