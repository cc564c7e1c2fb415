//! [`DistributedTrainer`]: data-parallel training of one replica per rank over a
//! [`Collective`]. Every rank reads the same iterator and keeps the batches at its stride
//! (rank `r` of `n` trains batches `r, r + n, r + 2n, ...`), so no coordinator hands data out.
//!
//! Two modes, with DL4J's words:
//! - [`TrainingMode::SharedGradients`] (DL4J's `SharedTrainingMaster`, dense): each round every
//!   rank computes the gradient of its batch, and one allreduce over a fused, preallocated buffer
//!   `[examples * gradient | examples | failed | examples * score]` gives every rank the
//!   gradient of the union of the round's batches; each then takes the same updater step, so
//!   replicas stay identical without ever sending parameters. The two counters make the round
//!   self-describing: uneven shards (a rank with no batch left contributes zeros), the end of an
//!   epoch (no rank had a batch) and a failed rank (its error stays on its own output; every
//!   other rank stops with [`DistributedError::RemoteFailure`]) need no extra message.
//! - [`TrainingMode::ParameterAveraging`] (DL4J Spark's `ParameterAveragingTrainingMaster`):
//!   each rank fits its batches locally and every `averaging_frequency` rounds the parameters
//!   (and, with `average_updaters`, the updater state) of the ranks that trained in that round
//!   are averaged by one allreduce, and every rank takes the mean (ParallelWrapper's rule); at
//!   the end of an epoch every rank contributes. A three-value allreduce per round carries the
//!   examples / failed / trained counters.
//!
//! The batches a round reads live in a cyclic workspace of the trainer (when the model trains
//! in workspaces), as DL4J's `fit` keeps its input in the all-layers workspace: nothing is
//! allocated per round once the sizes are learned. Layer state that is not a parameter
//! (batch-norm running statistics) stays per replica; rank 0's is the one saved.

use std::time::{Duration, Instant};

use dl4rs_array::{AsView, DataType, NdArray};
use dl4rs_data::{DataSet, DataSetIterator, MultiDataSet, MultiDataSetIterator};
use dl4rs_memory::{
    AllocationPolicy, LearningPolicy, SpillPolicy, WorkspaceConfig, WorkspaceScope,
    get_workspace_for_current_thread,
};
use dl4rs_nn::{Model, NnError, WorkspaceMode};

use crate::collective::Collective;
use crate::error::DistributedError;

/// How replicas are kept in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingMode {
    /// Sum every round's gradients over the ranks before the updater step.
    SharedGradients,
    /// Train locally, average parameters every `averaging_frequency` rounds.
    ParameterAveraging,
}

/// Counters of a trainer, for reports and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrainerStats {
    /// Rounds trained (over all epochs), counting only rounds where some rank had a batch.
    pub rounds: u64,
    /// Examples trained by all ranks together.
    pub examples: u64,
    /// Allreduce calls (all sizes).
    pub allreduces: u64,
    /// Seconds spent in allreduce calls on this rank.
    pub allreduce_seconds: f64,
    /// Payload bytes this rank contributed to allreduces (what a ring allreduce moves is
    /// `2 (n - 1) / n` of it per rank).
    pub allreduce_bytes: u64,
    /// The mean score of the last round over every rank's examples (SharedGradients), or of
    /// this rank's last batch (ParameterAveraging).
    pub last_score: f64,
}

/// Builds a [`DistributedTrainer`].
pub struct DistributedTrainerBuilder<T: DataType, C: Collective<T>> {
    collective: C,
    mode: TrainingMode,
    averaging_frequency: usize,
    average_updaters: bool,
    _t: std::marker::PhantomData<T>,
}

impl<T: DataType, C: Collective<T>> DistributedTrainerBuilder<T, C> {
    /// [`TrainingMode::SharedGradients`] (the default) or [`TrainingMode::ParameterAveraging`].
    pub fn training_mode(mut self, mode: TrainingMode) -> Self {
        self.mode = mode;
        self
    }

    /// Rounds between parameter averages (ParameterAveraging; default 5, as DL4J Spark's
    /// `averagingFrequency`; 1 keeps the replicas closest). Must be at least 1.
    pub fn averaging_frequency(mut self, rounds: usize) -> Self {
        self.averaging_frequency = rounds;
        self
    }

    /// Average the updater state with the parameters (default true, as DL4J).
    pub fn average_updaters(mut self, yes: bool) -> Self {
        self.average_updaters = yes;
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<DistributedTrainer<T, C>, DistributedError> {
        if self.averaging_frequency == 0 {
            return Err(DistributedError::Config(
                "averaging_frequency must be at least 1 (rounds between parameter averages); \
                 found 0"
                    .into(),
            ));
        }
        if self.collective.size() == 0 || self.collective.rank() >= self.collective.size() {
            return Err(DistributedError::Config(format!(
                "rank {} of a group of {}: not a member",
                self.collective.rank(),
                self.collective.size()
            )));
        }
        Ok(DistributedTrainer {
            collective: self.collective,
            mode: self.mode,
            averaging_frequency: self.averaging_frequency,
            average_updaters: self.average_updaters,
            send: Vec::new(),
            recv: Vec::new(),
            flat: None,
            since_average: 0,
            input_ws: (
                format!("WS_DISTRIBUTED_INPUT_{}", next_id()),
                WorkspaceConfig {
                    overallocation_limit: 0.2,
                    policy_learning: LearningPolicy::FirstLoop,
                    policy_spill: SpillPolicy::Reallocate,
                    policy_allocation: AllocationPolicy::Overallocate,
                    ..WorkspaceConfig::default()
                },
            ),
            stats: TrainerStats::default(),
        })
    }
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static IDS: AtomicU64 = AtomicU64::new(1);
    IDS.fetch_add(1, Ordering::Relaxed)
}

/// One rank's trainer: owns the collective and the fused buffers.
pub struct DistributedTrainer<T: DataType, C: Collective<T>> {
    collective: C,
    mode: TrainingMode,
    averaging_frequency: usize,
    average_updaters: bool,
    /// Fused allreduce buffers, sized once per model.
    send: Vec<T>,
    recv: Vec<T>,
    /// A detached array the averaged parameters / updater state are copied into for
    /// `set_params` (which takes a view).
    flat: Option<NdArray<T>>,
    since_average: usize,
    input_ws: (String, WorkspaceConfig),
    stats: TrainerStats,
}

/// What one rank trains in a round.
enum Batch<'a, T: DataType> {
    One(&'a DataSet<T>),
    Multi(&'a MultiDataSet<T>),
}

impl<T: DataType> Batch<'_, T> {
    fn examples(&self) -> Result<usize, DistributedError> {
        Ok(match self {
            Batch::One(d) => d.num_examples(),
            Batch::Multi(d) => d.num_examples()?,
        })
    }
}

/// Where a round's batches come from.
trait Source<T: DataType> {
    type Item;
    fn next(&mut self) -> Option<Result<Self::Item, DistributedError>>;
    fn reset(&mut self) -> Result<(), DistributedError>;
    fn reset_supported(&self) -> bool;
    fn has_next(&self) -> bool;
    fn as_batch(item: &Self::Item) -> Batch<'_, T>;
}

struct Single<'a, T: DataType>(&'a mut dyn DataSetIterator<T>);
struct Multi<'a, T: DataType>(&'a mut dyn MultiDataSetIterator<T>);

impl<T: DataType> Source<T> for Single<'_, T> {
    type Item = DataSet<T>;
    fn next(&mut self) -> Option<Result<DataSet<T>, DistributedError>> {
        self.0.next().map(|r| r.map_err(DistributedError::from))
    }
    fn reset(&mut self) -> Result<(), DistributedError> {
        Ok(self.0.reset()?)
    }
    fn reset_supported(&self) -> bool {
        self.0.reset_supported()
    }
    fn has_next(&self) -> bool {
        self.0.has_next()
    }
    fn as_batch(item: &DataSet<T>) -> Batch<'_, T> {
        Batch::One(item)
    }
}

impl<T: DataType> Source<T> for Multi<'_, T> {
    type Item = MultiDataSet<T>;
    fn next(&mut self) -> Option<Result<MultiDataSet<T>, DistributedError>> {
        self.0.next().map(|r| r.map_err(DistributedError::from))
    }
    fn reset(&mut self) -> Result<(), DistributedError> {
        Ok(self.0.reset()?)
    }
    fn reset_supported(&self) -> bool {
        self.0.reset_supported()
    }
    fn has_next(&self) -> bool {
        self.0.has_next()
    }
    fn as_batch(item: &MultiDataSet<T>) -> Batch<'_, T> {
        Batch::Multi(item)
    }
}

impl<T: DataType, C: Collective<T>> DistributedTrainer<T, C> {
    /// A trainer for this rank of `collective`.
    pub fn builder(collective: C) -> DistributedTrainerBuilder<T, C> {
        DistributedTrainerBuilder {
            collective,
            mode: TrainingMode::SharedGradients,
            averaging_frequency: 5,
            average_updaters: true,
            _t: std::marker::PhantomData,
        }
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.collective.rank()
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.collective.size()
    }

    /// Rank 0: the one that prints, evaluates and writes model files.
    pub fn is_root(&self) -> bool {
        self.collective.rank() == 0
    }

    /// The mode.
    pub fn training_mode(&self) -> TrainingMode {
        self.mode
    }

    /// Counters so far.
    pub fn stats(&self) -> TrainerStats {
        self.stats
    }

    /// The collective (to reuse it after training, e.g. for a final barrier).
    pub fn collective_mut(&mut self) -> &mut C {
        &mut self.collective
    }

    fn local(&self, source: NnError) -> DistributedError {
        DistributedError::Local {
            rank: self.collective.rank(),
            source: Box::new(source),
        }
    }

    /// Sizes the fused buffers for `model` (once; again only if the model changes size).
    fn prepare(&mut self, model: &dyn Model<T>) -> Result<(), DistributedError> {
        let params = model.num_params();
        let state = model.updater_state().len();
        let len = (params + state).max(params + 3);
        if self.send.len() != len {
            self.send = vec![T::ZERO; len];
            self.recv = vec![T::ZERO; len];
        }
        let flat_len = params.max(state).max(1);
        if self.flat.as_ref().map(|f| f.len()) != Some(flat_len) {
            self.flat = Some(NdArray::zeros_detached(&[flat_len])?);
        }
        Ok(())
    }

    fn all_reduce(&mut self, len: usize) -> Result<(), DistributedError> {
        let started = Instant::now();
        self.collective
            .all_reduce_sum(&self.send[..len], &mut self.recv[..len])?;
        self.stats.allreduce_seconds += started.elapsed().as_secs_f64();
        self.stats.allreduces += 1;
        self.stats.allreduce_bytes += (len * std::mem::size_of::<T>()) as u64;
        Ok(())
    }

    /// Copies rank 0's parameters and updater state to every rank (call before training, so
    /// replicas start identical whatever their seeds).
    pub fn broadcast_model(&mut self, model: &mut dyn Model<T>) -> Result<(), DistributedError> {
        self.prepare(model)?;
        let params = model.num_params();
        let state = model.updater_state().len();
        copy_out(model.params(), &mut self.send[..params])?;
        copy_out(
            model.updater_state(),
            &mut self.send[params..params + state],
        )?;
        self.collective
            .broadcast(&mut self.send[..params + state], 0)?;
        set_flat(model, &mut self.flat, &self.send[..params], true)?;
        if state > 0 {
            set_flat(
                model,
                &mut self.flat,
                &self.send[params..params + state],
                false,
            )?;
        }
        Ok(())
    }

    /// `epochs` passes over `iterator`, rank-strided, in the trainer's mode. Every rank must
    /// call it with the same iterator contents and epochs.
    pub fn fit(
        &mut self,
        model: &mut dyn Model<T>,
        iterator: &mut dyn DataSetIterator<T>,
        epochs: usize,
    ) -> Result<TrainerStats, DistributedError> {
        self.fit_source(model, Single(iterator), epochs)
    }

    /// [`DistributedTrainer::fit`] over a multi data set iterator (ComputationGraphs with
    /// several inputs or outputs).
    pub fn fit_multi(
        &mut self,
        model: &mut dyn Model<T>,
        iterator: &mut dyn MultiDataSetIterator<T>,
        epochs: usize,
    ) -> Result<TrainerStats, DistributedError> {
        self.fit_source(model, Multi(iterator), epochs)
    }

    fn input_scope(
        &self,
        model: &dyn Model<T>,
    ) -> Result<Option<WorkspaceScope>, DistributedError> {
        if model.global_conf().training_workspace_mode != WorkspaceMode::Enabled {
            return Ok(None);
        }
        let ws = get_workspace_for_current_thread(&self.input_ws.1, &self.input_ws.0)
            .map_err(NnError::from)?;
        Ok(Some(ws.notify_scope_entered().map_err(NnError::from)?))
    }

    fn fit_source<S: Source<T>>(
        &mut self,
        model: &mut dyn Model<T>,
        mut source: S,
        epochs: usize,
    ) -> Result<TrainerStats, DistributedError> {
        self.prepare(model)?;
        self.since_average = 0;
        let (rank, size) = (self.collective.rank(), self.collective.size());
        for epoch in 0..epochs {
            if epoch > 0 || !source.has_next() {
                if !source.reset_supported() {
                    return Err(DistributedError::Config(
                        "the iterator cannot be reset: train one epoch per fit call, or use a \
                         resettable iterator"
                            .into(),
                    ));
                }
                source.reset()?;
            }
            loop {
                // The round's batches are read inside the trainer's input workspace; the
                // batch this rank keeps stays valid until the scope ends with the round.
                let _scope = self.input_scope(model)?;
                let mut mine = None;
                let mut read_error = None;
                for k in 0..size {
                    match source.next() {
                        Some(Ok(item)) if k == rank => mine = Some(item),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            if k == rank {
                                read_error = Some(e);
                            }
                        }
                        None => break,
                    }
                }
                let batch = mine.as_ref().map(S::as_batch);
                let more = match self.mode {
                    TrainingMode::SharedGradients => {
                        self.shared_gradient_round(model, batch, read_error)?
                    }
                    TrainingMode::ParameterAveraging => {
                        self.averaging_round(model, batch, read_error)?
                    }
                };
                if !more {
                    break;
                }
            }
            if self.mode == TrainingMode::ParameterAveraging && self.since_average > 0 {
                self.average(model, true, size as f64)?;
            }
            model.increment_epoch();
        }
        Ok(self.stats)
    }

    /// Fills the counters of a round after a local step; returns the local error to keep.
    fn local_step(
        &mut self,
        batch: Option<Batch<'_, T>>,
        read_error: Option<DistributedError>,
        step: impl FnOnce(Batch<'_, T>) -> Result<f64, NnError>,
    ) -> (f64, f64, Option<DistributedError>) {
        if let Some(e) = read_error {
            return (0.0, 0.0, Some(e));
        }
        let Some(batch) = batch else {
            return (0.0, 0.0, None);
        };
        let examples = match batch.examples() {
            Ok(n) => n as f64,
            Err(e) => return (0.0, 0.0, Some(e)),
        };
        match step(batch) {
            Ok(score) => (examples, score, None),
            Err(e) => (0.0, 0.0, Some(self.local(e))),
        }
    }

    fn check_round(
        &self,
        failed: f64,
        local: Option<DistributedError>,
    ) -> Result<(), DistributedError> {
        if let Some(e) = local {
            return Err(e);
        }
        if failed > 0.0 {
            return Err(DistributedError::RemoteFailure {
                rank: self.collective.rank(),
                failed: failed.round() as usize,
                round: self.stats.rounds,
            });
        }
        Ok(())
    }

    fn shared_gradient_round(
        &mut self,
        model: &mut dyn Model<T>,
        batch: Option<Batch<'_, T>>,
        read_error: Option<DistributedError>,
    ) -> Result<bool, DistributedError> {
        let n = model.num_params();
        let (examples, score, local) = self.local_step(batch, read_error, |b| match b {
            Batch::One(d) => model.compute_gradient_data_set(d),
            Batch::Multi(d) => model.compute_gradient_multi(d),
        });
        if examples > 0.0 {
            // Weighted by examples: the sum over ranks divided by the total is the mean
            // gradient of the union of the round's batches, as one process would compute it.
            let w = T::from_f64(examples);
            copy_out(model.gradients(), &mut self.send[..n])?;
            self.send[..n].iter_mut().for_each(|g| *g *= w);
        } else {
            self.send[..n].fill(T::ZERO);
        }
        self.send[n] = T::from_f64(examples);
        self.send[n + 1] = T::from_f64(if local.is_some() { 1.0 } else { 0.0 });
        self.send[n + 2] = T::from_f64(score * examples);
        self.all_reduce(n + 3)?;
        self.check_round(self.recv[n + 1].to_f64(), local)?;
        let total = self.recv[n].to_f64();
        if total == 0.0 {
            return Ok(false);
        }
        let inv = T::ONE / T::from_f64(total);
        {
            let grads = model.gradients_mut();
            let mut w = grads.write()?;
            let dst = w.as_slice_mut().ok_or_else(|| {
                DistributedError::Config("the model's gradient array is not contiguous".into())
            })?;
            for (d, &s) in dst.iter_mut().zip(&self.recv[..n]) {
                *d = s * inv;
            }
        }
        self.stats.last_score = self.recv[n + 2].to_f64() / total;
        self.stats.rounds += 1;
        self.stats.examples += total as u64;
        model
            .apply_gradients(total as usize)
            .map_err(|e| self.local(e))?;
        Ok(true)
    }

    fn averaging_round(
        &mut self,
        model: &mut dyn Model<T>,
        batch: Option<Batch<'_, T>>,
        read_error: Option<DistributedError>,
    ) -> Result<bool, DistributedError> {
        let (examples, score, local) = self.local_step(batch, read_error, |b| {
            match b {
                Batch::One(d) => model.fit_data_set(d)?,
                Batch::Multi(d) => model.fit_multi_data_set(d)?,
            }
            Ok(model.last_score())
        });
        self.send[0] = T::from_f64(examples);
        self.send[1] = T::from_f64(if local.is_some() { 1.0 } else { 0.0 });
        self.send[2] = T::from_f64(if examples > 0.0 { 1.0 } else { 0.0 });
        self.all_reduce(3)?;
        self.check_round(self.recv[1].to_f64(), local)?;
        let total = self.recv[0].to_f64();
        if total == 0.0 {
            return Ok(false);
        }
        if examples > 0.0 {
            self.stats.last_score = score;
        } else {
            // Idle in an epoch's short last round: count the round anyway, so that every
            // replica's iteration (Adam's bias correction, schedules) stays the same.
            let (iteration, epoch) = (model.iteration_count(), model.epoch_count());
            model.set_counters(iteration + 1, epoch);
        }
        self.stats.rounds += 1;
        self.stats.examples += total as u64;
        self.since_average += 1;
        if self.since_average >= self.averaging_frequency {
            // The ranks that trained this round (all but in an epoch's short last round).
            let trained = self.recv[2].to_f64();
            self.average(model, examples > 0.0, trained)?;
        }
        Ok(true)
    }

    /// Parameters (and updater state) := their mean over the contributing ranks
    /// (`contributors` of them; a rank that does not contribute sends zeros and takes the
    /// mean too), as ParallelWrapper averages the replicas that trained in the round.
    fn average(
        &mut self,
        model: &mut dyn Model<T>,
        contribute: bool,
        contributors: f64,
    ) -> Result<(), DistributedError> {
        let n = model.num_params();
        let state = if self.average_updaters {
            model.updater_state().len()
        } else {
            0
        };
        if contribute {
            copy_out(model.params(), &mut self.send[..n])?;
            copy_out(model.updater_state(), &mut self.send[n..n + state])?;
        } else {
            self.send[..n + state].fill(T::ZERO);
        }
        self.all_reduce(n + state)?;
        let inv = T::ONE / T::from_f64(contributors.max(1.0));
        self.recv[..n + state].iter_mut().for_each(|v| *v *= inv);
        set_flat(model, &mut self.flat, &self.recv[..n], true)?;
        if state > 0 {
            set_flat(model, &mut self.flat, &self.recv[n..n + state], false)?;
        }
        self.since_average = 0;
        Ok(())
    }
}

/// Copies a contiguous model array into `dst` (same length).
fn copy_out<T: DataType>(src: &NdArray<T>, dst: &mut [T]) -> Result<(), DistributedError> {
    if dst.is_empty() {
        return Ok(());
    }
    let r = src.read()?;
    let s = r
        .as_slice()
        .ok_or_else(|| DistributedError::Config("a model array is not contiguous".into()))?;
    if s.len() != dst.len() {
        return Err(DistributedError::Length {
            op: "copy",
            expected: dst.len(),
            found: s.len(),
        });
    }
    dst.copy_from_slice(s);
    Ok(())
}

/// `set_params` (or `set_updater_state`) from a slice, through the preallocated flat array.
fn set_flat<T: DataType>(
    model: &mut dyn Model<T>,
    flat: &mut Option<NdArray<T>>,
    values: &[T],
    params: bool,
) -> Result<(), DistributedError> {
    let flat = flat
        .as_mut()
        .ok_or_else(|| DistributedError::Config("trainer buffers not prepared".into()))?;
    {
        let mut w = flat.write()?;
        let dst = w
            .as_slice_mut()
            .ok_or_else(|| DistributedError::Config("flat buffer not contiguous".into()))?;
        dst[..values.len()].copy_from_slice(values);
    }
    let whole = flat.len();
    let view = flat.view();
    let view = if whole == values.len() {
        view
    } else {
        view.slice_axis(0, 0, values.len(), 1)?
    };
    if params {
        model.set_params(&view)?;
    } else {
        model.set_updater_state(&view)?;
    }
    Ok(())
}

/// How long a collective may take before the group is declared broken (default 120 s: longer
/// than any one round of a sane job, short enough that a dead rank does not stall a cluster).
pub const DEFAULT_COLLECTIVE_TIMEOUT: Duration = Duration::from_secs(120);
