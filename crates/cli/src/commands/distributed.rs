//! `dl4rs train --distributed`: the main job (or any `--config`) as one rank of an MPI job,
//! `mpiexec -n N dl4rs train --distributed ...`. Every rank loads the same data and shuffles it
//! with the same seed; the trainer keeps each rank's stride of the batches and shares
//! gradients (or averages parameters) over MPI. Rank 0 prints, evaluates and saves; the others
//! are quiet. Built with the `distributed` feature; without it `--distributed` says how to get
//! it.

use std::time::Duration;

use clap::ValueEnum;
use dl4rs::data::DataSetIterator;
use dl4rs::nn::Model;

use super::CliError;
use super::train::TrainArgs;

/// `--training-mode` of `--distributed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DistMode {
    /// Gradients summed over the ranks every iteration (one fused allreduce).
    SharedGradients,
    /// Local training, parameters averaged every `--averaging-frequency` iterations.
    Averaging,
}

/// How to get a dl4rs that can train across processes.
#[cfg(not(feature = "distributed"))]
pub const NOT_BUILT: &str = "--distributed needs a dl4rs built with MPI support: install MPICH \
    (`apt-get install mpich libmpich-dev libclang-dev`), then `cargo build --release -p dl4rs-cli \
    --features distributed` and run `mpiexec -n 2 target/release/dl4rs train --distributed`";

/// This process's rank of the job.
pub struct Rank {
    #[cfg(feature = "distributed")]
    trainer: dl4rs::distributed::DistributedTrainer<f32, dl4rs::distributed::MpiCollective>,
    #[cfg(not(feature = "distributed"))]
    never: std::convert::Infallible,
}

#[cfg(feature = "distributed")]
fn dist_error<E: std::fmt::Display>(e: E) -> CliError {
    CliError::Usage(e.to_string())
}

/// Joins the MPI job when `--distributed` is given (once per process).
pub fn init(args: &TrainArgs) -> Result<Option<Rank>, CliError> {
    if !args.distributed {
        return Ok(None);
    }
    if args.collective_timeout.is_nan() || args.collective_timeout <= 0.0 {
        return Err(CliError::Usage(format!(
            "--collective-timeout must be a positive number of seconds; found {}",
            args.collective_timeout
        )));
    }
    if args.workers.is_some() {
        return Err(CliError::Usage(
            "--workers and --distributed together are not supported: one replica per rank \
             (start more ranks instead of workers)"
                .into(),
        ));
    }
    if args.report.is_some() {
        return Err(CliError::Usage(
            "--report is not available with --distributed: train on one process for the report, \
             or use the stats listener on rank 0"
                .into(),
        ));
    }
    start(args, Duration::from_secs_f64(args.collective_timeout))
}

#[cfg(feature = "distributed")]
fn start(args: &TrainArgs, timeout: Duration) -> Result<Option<Rank>, CliError> {
    use dl4rs::distributed::{DistributedTrainer, MpiCollective, TrainingMode};
    let world = MpiCollective::init(timeout).map_err(dist_error)?;
    let mode = match args.training_mode {
        DistMode::SharedGradients => TrainingMode::SharedGradients,
        DistMode::Averaging => TrainingMode::ParameterAveraging,
    };
    let trainer = DistributedTrainer::builder(world)
        .training_mode(mode)
        .averaging_frequency(args.averaging_frequency)
        .build()
        .map_err(dist_error)?;
    Ok(Some(Rank { trainer }))
}

#[cfg(not(feature = "distributed"))]
fn start(_args: &TrainArgs, _timeout: Duration) -> Result<Option<Rank>, CliError> {
    Err(CliError::Usage(NOT_BUILT.into()))
}

#[cfg(feature = "distributed")]
impl Rank {
    /// Rank 0 prints, evaluates and saves.
    pub fn is_root(&self) -> bool {
        self.trainer.is_root()
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.trainer.size()
    }

    /// One line for the log.
    pub fn describe(&self) -> String {
        format!(
            "distributed: {} ranks over MPI, {:?}",
            self.trainer.size(),
            self.trainer.training_mode()
        )
    }

    /// Rank 0's initial model to every rank, then `epochs` passes.
    pub fn fit(
        &mut self,
        net: &mut dyn Model<f32>,
        iterator: &mut dyn DataSetIterator<f32>,
        epochs: usize,
    ) -> Result<(), CliError> {
        self.trainer.broadcast_model(net).map_err(dist_error)?;
        self.trainer
            .fit(net, iterator, epochs)
            .map_err(dist_error)?;
        Ok(())
    }

    /// Allreduce calls, seconds and bytes, for the closing lines.
    pub fn traffic(&self) -> String {
        let s = self.trainer.stats();
        format!(
            "allreduce: {} calls, {:.3} ms per call, {} per call ({} in all) on this rank",
            s.allreduces,
            1e3 * s.allreduce_seconds / s.allreduces.max(1) as f64,
            dl4rs::memory::human_bytes((s.allreduce_bytes / s.allreduces.max(1)) as usize),
            dl4rs::memory::human_bytes(s.allreduce_bytes as usize)
        )
    }
}

#[cfg(not(feature = "distributed"))]
impl Rank {
    /// Rank 0 prints, evaluates and saves.
    pub fn is_root(&self) -> bool {
        match self.never {}
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        match self.never {}
    }

    /// One line for the log.
    pub fn describe(&self) -> String {
        match self.never {}
    }

    /// Rank 0's initial model to every rank, then `epochs` passes.
    pub fn fit(
        &mut self,
        _net: &mut dyn Model<f32>,
        _iterator: &mut dyn DataSetIterator<f32>,
        _epochs: usize,
    ) -> Result<(), CliError> {
        match self.never {}
    }

    /// Allreduce calls, seconds and bytes, for the closing lines.
    pub fn traffic(&self) -> String {
        match self.never {}
    }
}
