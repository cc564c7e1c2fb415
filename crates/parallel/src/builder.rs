//! `ParallelWrapper::builder(model)`: DL4J's settings, names and defaults, checked by
//! `build()` (DL4J throws from the setter; a Rust builder reports at `build()`).

use std::marker::PhantomData;

use dl4rs_array::DataType;
use dl4rs_data::MAX_PREFETCH;
use dl4rs_nn::WorkspaceMode;

use crate::encoding::ThresholdEncoding;
use crate::error::ParallelError;
use crate::replica::AsModel;
use crate::wrapper::ParallelWrapper;

/// How the workers' results are combined (DL4J's `TrainingMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainingMode {
    /// Each worker trains its replica; parameters (and updater state) are averaged every
    /// `averaging_frequency` rounds and broadcast back (DL4J's default).
    #[default]
    Averaging,
    /// Every round, the workers' gradients are combined (a dense allreduce, or threshold
    /// messages with residuals) and every replica applies the same gradient with its updater.
    SharedGradients,
}

/// DL4J's default prefetch queue of ParallelWrapper: 16 batches (its javadoc says 2).
pub const DEFAULT_PREFETCH_BUFFER: usize = 16;

/// The validated settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub workers: usize,
    pub prefetch_buffer: usize,
    pub averaging_frequency: u64,
    pub average_updaters: bool,
    pub training_mode: TrainingMode,
    pub workspace_mode: WorkspaceMode,
    pub report_score: bool,
    pub threshold: Option<ThresholdEncoding>,
    pub product_threads: Option<usize>,
    /// Test hook: `(worker, batch)` panics in that worker's `batch`-th batch (1-based).
    pub panic_at: Option<(usize, u64)>,
}

impl Settings {
    /// Averaging every round with the updater state: the replicas start every round equal,
    /// so each trainer computes the averaged step of its part (`Combine::Average`'s
    /// `sharded`) instead of stepping its replica and averaging the whole state.
    pub(crate) fn averages_in_parts(&self) -> bool {
        self.training_mode == TrainingMode::Averaging
            && self.averaging_frequency == 1
            && self.average_updaters
    }
}

/// Builds a [`ParallelWrapper`]; see [`ParallelWrapper::builder`].
pub struct ParallelWrapperBuilder<T: DataType, M: AsModel<T>> {
    model: M,
    settings: Settings,
    _t: PhantomData<fn() -> T>,
}

const WHAT: &str = "ParallelWrapper";

impl<T: DataType, M: AsModel<T>> ParallelWrapperBuilder<T, M> {
    pub(crate) fn new(model: M) -> Self {
        ParallelWrapperBuilder {
            model,
            settings: Settings {
                // DL4J: the number of devices; on CPUs, the cores (at least 2).
                workers: rayon::current_num_threads().max(2),
                prefetch_buffer: DEFAULT_PREFETCH_BUFFER,
                averaging_frequency: 1,
                average_updaters: true,
                training_mode: TrainingMode::Averaging,
                workspace_mode: WorkspaceMode::Enabled,
                report_score: false,
                threshold: None,
                product_threads: None,
                panic_at: None,
            },
            _t: PhantomData,
        }
    }

    /// Number of trainer threads (at least 2; default: the cores, at least 2).
    pub fn workers(mut self, n: usize) -> Self {
        self.settings.workers = n;
        self
    }

    /// Prefetch queue length of the async iterator `fit` wraps the data in (default 16; 0
    /// turns prefetch off, as in DL4J).
    pub fn prefetch_buffer(mut self, k: usize) -> Self {
        self.settings.prefetch_buffer = k;
        self
    }

    /// Averaging mode: average every `f` rounds (default 1; at least 1).
    pub fn averaging_frequency(mut self, f: u64) -> Self {
        self.settings.averaging_frequency = f;
        self
    }

    /// Averaging mode: average the updater state too (default true).
    pub fn average_updaters(mut self, yes: bool) -> Self {
        self.settings.average_updaters = yes;
        self
    }

    /// Averaging (default) or SharedGradients.
    pub fn training_mode(mut self, mode: TrainingMode) -> Self {
        self.settings.training_mode = mode;
        self
    }

    /// Training workspaces of the replicas (default Enabled; overrides the model's, as DL4J).
    pub fn workspace_mode(mut self, mode: WorkspaceMode) -> Self {
        self.settings.workspace_mode = mode;
        self
    }

    /// Print the averaged score at each averaging (DL4J logs it; default false). Listeners see
    /// every round's score either way.
    pub fn report_score(mut self, yes: bool) -> Self {
        self.settings.report_score = yes;
        self
    }

    /// SharedGradients: send threshold-encoded gradients with residuals instead of the dense
    /// allreduce (see [`ThresholdEncoding`]).
    pub fn threshold_encoding(mut self, encoding: ThresholdEncoding) -> Self {
        self.settings.threshold = Some(encoding);
        self
    }

    /// Matrix-product threads per worker (default: the caller's rayon pool size divided by
    /// the workers, at least 1, so workers never oversubscribe the cores).
    pub fn product_threads(mut self, n: usize) -> Self {
        self.settings.product_threads = Some(n);
        self
    }

    /// Fault injection for tests: worker `worker` panics in its `batch`-th batch (1-based).
    #[doc(hidden)]
    pub fn panic_in_worker_for_tests(mut self, worker: usize, batch: u64) -> Self {
        self.settings.panic_at = Some((worker, batch));
        self
    }

    /// Checks the settings and makes the wrapper (the threads start at the first `fit`).
    pub fn build(self) -> Result<ParallelWrapper<T, M>, ParallelError> {
        let s = self.settings;
        if s.workers < 2 {
            return Err(ParallelError::config(
                WHAT,
                format!(
                    "workers({}): at least 2 workers are needed (DL4J: \"Number of workers \
                     can't be lower then 2!\"); to train on one thread, call the model's fit",
                    s.workers
                ),
            ));
        }
        if s.averaging_frequency == 0 {
            return Err(ParallelError::config(
                WHAT,
                "averaging_frequency(0): the replicas would never be averaged; expected at \
                 least 1 (average every round, the default)",
            ));
        }
        if s.prefetch_buffer > MAX_PREFETCH {
            return Err(ParallelError::config(
                WHAT,
                format!(
                    "prefetch_buffer({}): at most {MAX_PREFETCH} batches (0 turns prefetch off)",
                    s.prefetch_buffer
                ),
            ));
        }
        if s.product_threads == Some(0) {
            return Err(ParallelError::config(
                WHAT,
                "product_threads(0): each worker needs at least 1 thread",
            ));
        }
        if let Some(t) = &s.threshold {
            if s.training_mode != TrainingMode::SharedGradients {
                return Err(ParallelError::config(
                    WHAT,
                    "threshold_encoding applies to TrainingMode::SharedGradients; set \
                     training_mode(SharedGradients) or remove it",
                ));
            }
            t.check().map_err(|m| ParallelError::config(WHAT, m))?;
        }
        let params = self.model.as_model().num_params();
        if params >= (1 << 31) {
            return Err(ParallelError::config(
                WHAT,
                format!("{params} parameters: at most 2^31 - 1 can be exchanged"),
            ));
        }
        Ok(ParallelWrapper::new(self.model, s))
    }
}
