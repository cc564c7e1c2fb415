//! [`ParallelWrapper`]: the coordinator. It runs on the caller's thread, takes batches from
//! one (prefetching) iterator and hands them out round-robin, one per trainer per *round*,
//! then waits for every trainer (the barrier) and combines: averaging every `f` rounds, or the
//! gradient allreduce before every updater step. Listeners get each round's score. A trainer's
//! error or panic, an iterator error, or the wrapper being dropped stops and joins every
//! thread before anything returns.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use dl4rs_array::DataType;
use dl4rs_data::{
    AsyncDataSetIterator, AsyncMultiDataSetIterator, DataSetIterator, MultiDataSetIterator,
    MultiSource, Source,
};
use dl4rs_memory::{SpillPolicy, WorkspaceConfig, get_and_activate_workspace};
use dl4rs_nn::{IterationInfo, NnError, TrainingListener, WorkspaceMode};

use crate::builder::{ParallelWrapperBuilder, Settings, TrainingMode};
use crate::encoding::Encoder;
use crate::error::ParallelError;
use crate::exchange::{Exchange, region_start};
use crate::replica::{AsModel, copy_state, replicate};
use crate::rounds::{Exhausted, Rounds, finish_epoch, finish_multi_epoch};
use crate::threads::{WorkerThread, product_threads};
use crate::worker::{Failure, Job, Layout, Replica, Report, Trainer, lock};

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
    jobs: Vec<SyncSender<Job<T>>>,
    reports: Receiver<Report>,
    replicas: Vec<Replica<T>>,
    /// Rounds done (the replicas' iteration counter).
    iteration: u64,
    /// The exchange's generation: one per combine.
    generation: u64,
    /// Averaging: rounds since the replicas were last averaged.
    since_average: u64,
    tally: Tally,
    round_config: WorkspaceConfig,
}

/// The id of the coordinator's workspace for batches an in-memory source makes.
pub const ROUND_WORKSPACE: &str = "PW_ROUND";

/// What the reports of the current round said.
struct Tally {
    copied: Vec<bool>,
    done: usize,
    finished: usize,
    score: f64,
    examples: usize,
}

impl Tally {
    fn clear(&mut self) {
        self.copied.fill(false);
        self.done = 0;
        self.finished = 0;
        self.score = 0.0;
        self.examples = 0;
    }
}

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
        let (report_tx, reports) = sync_channel(4 * n);
        let threads_each = s.product_threads.unwrap_or_else(|| product_threads(n));
        let mode = Some(s.workspace_mode);
        let mut pool = Pool {
            threads: Vec::with_capacity(n),
            jobs: Vec::with_capacity(n),
            reports,
            replicas: Vec::with_capacity(n),
            iteration: model.iteration_count(),
            generation: 0,
            since_average: 0,
            round_config: WorkspaceConfig {
                policy_spill: SpillPolicy::Reallocate,
                ..WorkspaceConfig::default()
            },
            tally: Tally {
                copied: vec![false; n],
                done: 0,
                finished: 0,
                score: 0.0,
                examples: 0,
            },
        };
        for index in 0..n {
            let replica: Replica<T> = Arc::new(Mutex::new(replicate(model, mode)?));
            let (job_tx, jobs) = sync_channel(1);
            let trainer = Trainer {
                index,
                workers: n,
                replica: Arc::clone(&replica),
                exchange: Arc::clone(&exchange),
                layout,
                jobs,
                reports: report_tx.clone(),
                encoder: s.threshold.map(|t| Encoder::new(params, t)),
                workspaces: s.workspace_mode == WorkspaceMode::Enabled,
                batches: 0,
                panic_at: s.panic_at.filter(|(w, _)| *w == index).map(|(_, b)| b),
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
            pool.jobs.push(job_tx);
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
        let n = s.workers;
        let pool = self.pool.as_mut().ok_or_else(not_running)?;
        loop {
            pool.tally.clear();
            let averaging = s.training_mode == TrainingMode::Averaging;
            let average_now = averaging && (pool.since_average + 1) % s.averaging_frequency == 0;
            let generation = pool.generation + 1;
            let mut active = 0;
            // A source that allocates its batches in the current workspace (an in-memory
            // iterator, not wrapped because it holds its data already) makes them in the
            // coordinator's round workspace: valid until every trainer has copied its batch,
            // and no heap allocation.
            let round = if s.workspace_mode == WorkspaceMode::Enabled {
                Some(
                    get_and_activate_workspace(&pool.round_config, ROUND_WORKSPACE)
                        .map_err(NnError::from)?,
                )
            } else {
                None
            };
            while active < n && source.has_next() {
                let Some(batch) = source.next_batch() else {
                    break;
                };
                let batch = batch?;
                let job = if averaging {
                    Job::Fit {
                        batch,
                        contribute: average_now.then_some(generation),
                        updaters: s.average_updaters,
                    }
                } else {
                    Job::Gradient { batch, generation }
                };
                pool.send(active, job)?;
                // The batch may live in the prefetch ring: take the next one only once this
                // trainer has copied it (see `worker`).
                let w = active;
                pool.wait(|t| t.copied[w])?;
                active += 1;
            }
            drop(round);
            if active == 0 {
                return Ok(());
            }
            pool.wait(|t| t.done == active)?;
            pool.iteration += 1;
            let examples = pool.tally.examples;
            let score = pool.tally.score / examples.max(1) as f64;
            if averaging {
                pool.since_average += 1;
                if average_now {
                    pool.generation = generation;
                    pool.collect(active, s.average_updaters)?;
                    if s.report_score {
                        eprintln!(
                            "ParallelWrapper: averaged score at round {}: {score:.6}",
                            pool.iteration
                        );
                    }
                }
            } else {
                pool.generation = generation;
                let divisor = if s.threshold.is_some() {
                    active as f64
                } else {
                    examples as f64
                };
                for w in 0..n {
                    pool.send(
                        w,
                        Job::Apply {
                            generation,
                            divisor,
                            examples,
                        },
                    )?;
                }
                pool.wait(|t| t.finished == n)?;
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
            pool.tally.clear();
            pool.generation += 1;
            let generation = pool.generation;
            for w in 0..s.workers {
                pool.send(
                    w,
                    Job::Contribute {
                        generation,
                        updaters: s.average_updaters,
                    },
                )?;
            }
            pool.wait(|t| t.finished == s.workers)?;
            pool.collect(s.workers, s.average_updaters)?;
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
    fn send(&mut self, w: usize, job: Job<T>) -> Result<(), ParallelError> {
        if self.jobs[w].send(job).is_ok() {
            return Ok(());
        }
        // The worker left its loop: its report says why.
        self.wait(|_| false)?;
        Err(not_running())
    }

    /// Processes reports until `until` holds; a failure report ends the wait with the error.
    fn wait(&mut self, until: impl Fn(&Tally) -> bool) -> Result<(), ParallelError> {
        while !until(&self.tally) {
            let report = self.reports.recv().map_err(|_| {
                ParallelError::Thread(
                    "every worker thread stopped without a report: none is left running".into(),
                )
            })?;
            match report {
                Report::Copied(w) => self.tally.copied[w] = true,
                Report::Done {
                    worker,
                    score,
                    examples,
                } => {
                    debug_assert!(self.tally.copied[worker], "done before copied");
                    self.tally.done += 1;
                    self.tally.score += score * examples as f64;
                    self.tally.examples += examples;
                }
                Report::Finished => self.tally.finished += 1,
                Report::Failed { worker, failure } => {
                    let thread = self
                        .threads
                        .get(worker)
                        .map_or_else(String::new, |t| t.name().to_string());
                    return Err(match failure {
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
                    });
                }
            }
        }
        Ok(())
    }

    /// Every replica takes the average of the `contributors`' parameters (and updater state).
    fn collect(&mut self, contributors: usize, updaters: bool) -> Result<(), ParallelError> {
        self.tally.finished = 0;
        let n = self.jobs.len();
        for w in 0..n {
            self.send(
                w,
                Job::Collect {
                    generation: self.generation,
                    divisor: contributors,
                    updaters,
                    iteration: self.iteration,
                },
            )?;
        }
        self.since_average = 0;
        self.wait(|t| t.finished == n)
    }
}

/// Stops every trainer and joins every thread: the reports channel is dropped first, so a
/// trainer still busy fails its next send and leaves; `Stop` reaches the idle ones.
fn stop<T: DataType>(pool: Pool<T>) {
    let Pool {
        threads,
        jobs,
        reports,
        ..
    } = pool;
    drop(reports);
    for tx in &jobs {
        let _ = tx.try_send(Job::Stop);
    }
    // Dropping the senders ends the loop of a trainer whose queue was full (it finishes its
    // job, then sees the channel closed).
    drop(jobs);
    for t in threads {
        t.join();
    }
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
