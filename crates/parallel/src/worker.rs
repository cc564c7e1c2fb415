//! A trainer: the loop that runs on thread "dl4rs trainer N", owning a replica and, through
//! the thread-local manager, its own workspaces. It takes jobs from the coordinator (a
//! `sync_channel` of capacity 1, DL4J's per-trainer queue) and reports back on a shared channel;
//! both are preallocated array queues, so a round allocates nothing.
//!
//! **A batch from the prefetch ring is copied first.** The ring keeps a batch valid only until
//! the consumer's next `next()`, and the coordinator takes `workers` batches per round. So a
//! trainer copies its batch into its own workspace (`PW_BATCH`, learned like any workspace)
//! and says so (`Copied`) before the coordinator asks the iterator for the next batch: the
//! ring slot is never read after the contract ends, and the copy lives in memory nobody else
//! reuses. The copy costs one memcpy of the batch, done on the trainer's core, in parallel
//! with the other trainers' work.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dl4rs_array::DataType;
use dl4rs_data::{DataSet, MultiDataSet};
use dl4rs_memory::{
    SpillPolicy, WorkspaceConfig, destroy_all_workspaces_for_current_thread,
    get_and_activate_workspace,
};
use dl4rs_nn::{Model, NnError};

use crate::encoding::Encoder;
use crate::error::panic_message;
use crate::exchange::Exchange;

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

/// What the coordinator asks.
pub(crate) enum Job<T: DataType> {
    /// Averaging: train on the batch (gradient and updater step); with a generation, add the
    /// parameters (and the updater state) into the exchange afterwards.
    Fit {
        batch: Batch<T>,
        contribute: Option<u64>,
        updaters: bool,
    },
    /// Averaging: replace parameters (and updater state) by the exchange's sum / `divisor`,
    /// and set the iteration counter (replicas that sat out a short round catch up).
    Collect {
        generation: u64,
        divisor: usize,
        updaters: bool,
        iteration: u64,
    },
    /// SharedGradients: the gradient of the batch, added into the exchange (dense: weighted
    /// by the examples; encoded: the threshold message).
    Gradient { batch: Batch<T>, generation: u64 },
    /// SharedGradients: gradient = exchange / `divisor`, then the updater step.
    Apply {
        generation: u64,
        divisor: f64,
        examples: usize,
    },
    /// Averaging: add the parameters (and updater state) into the exchange without training
    /// (the final averaging of a `fit` whose last rounds did not average).
    Contribute { generation: u64, updaters: bool },
    /// Leave the loop.
    Stop,
}

/// Why a worker stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    Error(NnError),
    Panic(String),
}

/// What a worker says.
#[derive(Debug)]
pub(crate) enum Report {
    /// Its batch is copied: the coordinator may take the next one from the iterator.
    Copied(usize),
    /// Its batch is trained on (or its gradient computed).
    Done {
        worker: usize,
        score: f64,
        examples: usize,
    },
    /// A `Collect`, `Apply` or `Contribute` is done.
    Finished,
    /// It failed and left its loop.
    Failed { worker: usize, failure: Failure },
}

/// Everything one trainer owns.
pub(crate) struct Trainer<T: DataType> {
    pub index: usize,
    pub workers: usize,
    pub replica: Replica<T>,
    pub exchange: Arc<Exchange<T>>,
    pub layout: Layout,
    pub jobs: Receiver<Job<T>>,
    pub reports: SyncSender<Report>,
    pub encoder: Option<Encoder<T>>,
    /// Copy batches into `PW_BATCH` (training workspaces on) or onto the heap.
    pub workspaces: bool,
    /// Batches trained so far (for the test hook).
    pub batches: u64,
    /// Test hook: panic in this batch (1-based).
    pub panic_at: Option<u64>,
}

impl<T: DataType> Trainer<T> {
    /// The thread's body: serve jobs until `Stop` (or the coordinator is gone, or a failure);
    /// a panic is caught and reported. The thread's workspaces are destroyed on the way out.
    pub(crate) fn run(mut self) {
        let index = self.index;
        let reports = self.reports.clone();
        let outcome = catch_unwind(AssertUnwindSafe(|| self.serve()));
        if let Err(payload) = outcome {
            let _ = reports.send(Report::Failed {
                worker: index,
                failure: Failure::Panic(panic_message(&*payload)),
            });
        }
        drop(self);
        destroy_all_workspaces_for_current_thread();
    }

    fn serve(&mut self) {
        let config = WorkspaceConfig {
            policy_spill: SpillPolicy::Reallocate,
            ..WorkspaceConfig::default()
        };
        while let Ok(job) = self.jobs.recv() {
            let report = match job {
                Job::Stop => return,
                Job::Fit {
                    batch,
                    contribute,
                    updaters,
                } => self.fit(batch, contribute, updaters, &config),
                Job::Gradient { batch, generation } => self.gradient(batch, generation, &config),
                Job::Contribute {
                    generation,
                    updaters,
                } => {
                    let replica = Arc::clone(&self.replica);
                    let m = lock(&replica);
                    self.contribute(m.as_ref(), generation, updaters)
                        .map(|()| Report::Finished)
                }
                Job::Collect {
                    generation,
                    divisor,
                    updaters,
                    iteration,
                } => self.collect(generation, divisor, updaters, iteration),
                Job::Apply {
                    generation,
                    divisor,
                    examples,
                } => self.apply(generation, divisor, examples),
            };
            let failed = report.is_err();
            let message = report.unwrap_or_else(|e| Report::Failed {
                worker: self.index,
                failure: Failure::Error(e),
            });
            if self.reports.send(message).is_err() || failed {
                return;
            }
        }
    }

    /// Copies the batch (see the module's notes), says so, and computes its gradient.
    fn train(
        &mut self,
        batch: Batch<T>,
        config: &WorkspaceConfig,
        then: impl FnOnce(&mut Self, &mut dyn Model<T>, usize) -> Result<(), NnError>,
    ) -> Result<Report, NnError> {
        let _scope = if self.workspaces {
            Some(get_and_activate_workspace(config, BATCH_WORKSPACE)?)
        } else {
            None
        };
        let local = batch.copy(self.workspaces)?;
        if self.reports.send(Report::Copied(self.index)).is_err() {
            return Err(NnError::Input("the coordinator is gone".into()));
        }
        self.batches += 1;
        if self.panic_at == Some(self.batches) {
            panic!("injected panic in batch {} (test hook)", self.batches);
        }
        let replica = Arc::clone(&self.replica);
        let mut m = lock(&replica);
        let (score, examples) = local.gradient(m.as_mut())?;
        drop(local);
        then(self, m.as_mut(), examples)?;
        Ok(Report::Done {
            worker: self.index,
            score,
            examples,
        })
    }

    fn fit(
        &mut self,
        batch: Batch<T>,
        contribute: Option<u64>,
        updaters: bool,
        config: &WorkspaceConfig,
    ) -> Result<Report, NnError> {
        self.train(batch, config, |t, m, examples| {
            m.apply_gradients(examples)?;
            match contribute {
                Some(generation) => t.contribute(m, generation, updaters),
                None => Ok(()),
            }
        })
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

    fn gradient(
        &mut self,
        batch: Batch<T>,
        generation: u64,
        config: &WorkspaceConfig,
    ) -> Result<Report, NnError> {
        self.train(batch, config, |t, m, examples| {
            let (i, n, len) = (t.index, t.workers, t.layout.params);
            let g = m.gradients().read()?;
            let g = g.as_slice().unwrap_or_default();
            match &mut t.encoder {
                None => t
                    .exchange
                    .add(generation, 0, g, T::from_f64(examples as f64), i, n),
                Some(encoder) => {
                    let (message, tau) = encoder.encode(g);
                    t.exchange
                        .add_encoded(generation, 0, len, message, tau, i, n);
                }
            }
            Ok(())
        })
    }

    fn collect(
        &mut self,
        generation: u64,
        divisor: usize,
        updaters: bool,
        iteration: u64,
    ) -> Result<Report, NnError> {
        let (i, n, l) = (self.index, self.workers, self.layout);
        let scale = T::ONE / T::from_f64(divisor as f64);
        let mut m = lock(&self.replica);
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
        Ok(Report::Finished)
    }

    fn apply(&mut self, generation: u64, divisor: f64, examples: usize) -> Result<Report, NnError> {
        let (i, n) = (self.index, self.workers);
        let scale = T::from_f64(1.0 / divisor);
        let mut m = lock(&self.replica);
        {
            let mut g = m.gradients_mut().write()?;
            let g = g.as_slice_mut().unwrap_or_default();
            self.exchange.read(generation, 0, g, scale, i, n);
        }
        m.apply_gradients(examples)?;
        Ok(Report::Finished)
    }
}
