//! Training listeners (DL4J's `TrainingListener`s): called after every iteration with the
//! network. Score reporting, performance (examples/s, batches/s, workspace bytes) and
//! checkpoints that keep the last K models, each written atomically. Listeners see the network
//! as a [`Model`], so they work for every kind of network.

use std::path::PathBuf;
use std::time::Instant;

use dl4rs_array::DataType;

use crate::atomic_file::write_atomic;
use crate::error::NnError;
use crate::model::Model;

/// What a listener learns about an iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IterationInfo {
    /// Iterations done, this one included.
    pub iteration: u64,
    /// Current epoch.
    pub epoch: u64,
    /// The iteration's score (loss).
    pub score: f64,
    /// Examples in the batch.
    pub batch_size: usize,
}

/// Called after each training iteration.
pub trait TrainingListener<T: DataType>: Send {
    /// One iteration is done.
    fn iteration_done(&mut self, net: &dyn Model<T>, info: &IterationInfo) -> Result<(), NnError>;
}

/// Prints the score every `frequency` iterations (to stderr, or collects lines).
pub struct ScoreIterationListener {
    frequency: u64,
    lines: Option<Vec<String>>,
}

impl ScoreIterationListener {
    /// Prints every `frequency` iterations.
    pub fn new(frequency: u64) -> Self {
        ScoreIterationListener {
            frequency: frequency.max(1),
            lines: None,
        }
    }

    /// Collects the lines instead of printing them (see [`ScoreIterationListener::lines`]).
    pub fn collecting(frequency: u64) -> Self {
        ScoreIterationListener {
            frequency: frequency.max(1),
            lines: Some(Vec::new()),
        }
    }

    /// Collected lines.
    pub fn lines(&self) -> &[String] {
        self.lines.as_deref().unwrap_or(&[])
    }
}

impl<T: DataType> TrainingListener<T> for ScoreIterationListener {
    fn iteration_done(&mut self, _net: &dyn Model<T>, info: &IterationInfo) -> Result<(), NnError> {
        if info.iteration.is_multiple_of(self.frequency) {
            let line = format!("Score at iteration {} is {:.6}", info.iteration, info.score);
            match &mut self.lines {
                Some(lines) => lines.push(line),
                None => eprintln!("{line}"),
            }
        }
        Ok(())
    }
}

/// Performance figures over the last `frequency` iterations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Performance {
    /// Iteration at the end of the window.
    pub iteration: u64,
    /// Examples per second.
    pub examples_per_second: f64,
    /// Batches per second.
    pub batches_per_second: f64,
    /// Workspace block bytes on this thread.
    pub workspace_bytes: usize,
}

/// Measures examples/s, batches/s and workspace memory every `frequency` iterations.
pub struct PerformanceListener {
    frequency: u64,
    window_start: Option<Instant>,
    examples: usize,
    batches: u64,
    print: bool,
    last: Option<Performance>,
}

impl PerformanceListener {
    /// Reports every `frequency` iterations; prints when `print`.
    pub fn new(frequency: u64, print: bool) -> Self {
        PerformanceListener {
            frequency: frequency.max(1),
            window_start: None,
            examples: 0,
            batches: 0,
            print,
            last: None,
        }
    }

    /// The latest figures.
    pub fn last(&self) -> Option<Performance> {
        self.last
    }
}

impl<T: DataType> TrainingListener<T> for PerformanceListener {
    fn iteration_done(&mut self, _net: &dyn Model<T>, info: &IterationInfo) -> Result<(), NnError> {
        let start = *self.window_start.get_or_insert_with(Instant::now);
        self.examples += info.batch_size;
        self.batches += 1;
        if info.iteration.is_multiple_of(self.frequency) {
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            let perf = Performance {
                iteration: info.iteration,
                examples_per_second: self.examples as f64 / secs,
                batches_per_second: self.batches as f64 / secs,
                workspace_bytes: dl4rs_memory::allocation_report().total_block_bytes(),
            };
            if self.print {
                eprintln!(
                    "iteration {}: {:.0} examples/s, {:.1} batches/s, workspaces {}",
                    perf.iteration,
                    perf.examples_per_second,
                    perf.batches_per_second,
                    dl4rs_memory::human_bytes(perf.workspace_bytes)
                );
            }
            self.last = Some(perf);
            self.window_start = Some(Instant::now());
            self.examples = 0;
            self.batches = 0;
        }
        Ok(())
    }
}

/// Saves the model every `frequency` iterations into `dir`, keeping the last `keep` files.
/// Each file is written to a temporary name, synced, then renamed: a crash never leaves a
/// truncated checkpoint under a checkpoint's name.
pub struct CheckpointListener {
    dir: PathBuf,
    frequency: u64,
    keep: usize,
    saved: Vec<PathBuf>,
}

impl CheckpointListener {
    /// Checkpoints into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>, frequency: u64, keep: usize) -> Result<Self, NnError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| NnError::File {
            path: dir.display().to_string(),
            message: format!("can't create the checkpoint directory: {e}"),
        })?;
        Ok(CheckpointListener {
            dir,
            frequency: frequency.max(1),
            keep: keep.max(1),
            saved: Vec::new(),
        })
    }

    /// Paths of the checkpoints kept, oldest first.
    pub fn saved(&self) -> &[PathBuf] {
        &self.saved
    }
}

impl<T: DataType> TrainingListener<T> for CheckpointListener {
    fn iteration_done(&mut self, net: &dyn Model<T>, info: &IterationInfo) -> Result<(), NnError> {
        if !info.iteration.is_multiple_of(self.frequency) {
            return Ok(());
        }
        let path = self
            .dir
            .join(format!("checkpoint_iter_{}.dl4rs", info.iteration));
        let bytes = crate::serializer::ModelSerializer::to_bytes(net, true)?;
        write_atomic(&path, &bytes)?;
        self.saved.push(path);
        while self.saved.len() > self.keep {
            let old = self.saved.remove(0);
            let _ = std::fs::remove_file(&old);
        }
        Ok(())
    }
}
