//! What every network is: the [`Model`] trait (fit, output, evaluate, parameters, score,
//! listeners, save), taken by listeners, the model serializer, evaluation helpers, the CLI
//! and ParallelWrapper, and the shared machinery behind both implementations,
//! [`crate::MultiLayerNetwork`] and [`crate::ComputationGraph`]: the engine (`engine/`), the
//! flat parameter store (`params.rs`), the workspace plan (`workspaces.rs`) and the training
//! and evaluation loops (here).

pub(crate) mod engine;
mod params;
pub(crate) mod workspaces;

pub use params::ParamEntry;

use dl4rs_array::{ArrayView, AsView, AsViewMut, DataType, NdArray};
use dl4rs_data::{DataSet, DataSetIterator, MultiDataSet, MultiDataSetIterator};
use dl4rs_eval::IEvaluation;

use crate::conf::GlobalConf;
use crate::error::NnError;
use crate::input_type::InputType;
use crate::listeners::{IterationInfo, TrainingListener};
use engine::{Arrays, Batch, Engine, Masks};
use workspaces::NetWorkspaces;

/// Which kind of network a [`Model`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A [`crate::MultiLayerNetwork`].
    MultiLayerNetwork,
    /// A [`crate::ComputationGraph`].
    ComputationGraph,
}

/// A trainable network: what listeners, the serializer, the CLI and trainers work with.
pub trait Model<T: DataType>: Send {
    /// Which kind of network this is.
    fn kind(&self) -> ModelKind;
    /// The configuration as JSON (what `from_json` of its configuration type reads).
    fn conf_json(&self) -> Result<String, NnError>;
    /// Seed, updater, regularization, workspace modes.
    fn global_conf(&self) -> &GlobalConf;
    /// Names and types of the network inputs.
    fn input_types(&self) -> Vec<(String, InputType)>;
    /// Names and types of the network outputs.
    fn output_types(&self) -> Vec<(String, InputType)>;
    /// The loss of output `k`, when it is an output or loss layer.
    fn output_loss(&self, k: usize) -> Option<crate::loss::LossFunction>;
    /// Number of parameters.
    fn num_params(&self) -> usize;
    /// The flat parameter array (vertex by vertex; within a layer in `ParamSpec` order).
    fn params(&self) -> &NdArray<T>;
    /// Replaces the parameters (any shape with `num_params` values).
    fn set_params(&mut self, params: &ArrayView<'_, T>) -> Result<(), NnError>;
    /// The flat gradient array of the last iteration.
    fn gradients(&self) -> &NdArray<T>;
    /// The flat gradient array, writable: data-parallel trainers sum or average the gradients
    /// of several replicas into it before [`Model::apply_gradients`].
    fn gradients_mut(&mut self) -> &mut NdArray<T>;
    /// Forward, loss and backprop on a multi data set without an update: fills
    /// [`Model::gradients`] and returns the score (also [`Model::last_score`]).
    fn compute_gradient_multi(&mut self, data: &MultiDataSet<T>) -> Result<f64, NnError>;
    /// [`Model::compute_gradient_multi`] on a data set (one input, one output).
    fn compute_gradient_data_set(&mut self, data: &DataSet<T>) -> Result<f64, NnError>;
    /// The updater step with the gradients in [`Model::gradients`], as the end of a `fit` call:
    /// counts the iteration and runs the listeners with [`Model::last_score`] (`batch_size`
    /// examples). Together with `compute_gradient_*` this is `fit` split in two.
    fn apply_gradients(&mut self, batch_size: usize) -> Result<(), NnError>;
    /// [`Model::apply_gradients`] stepping only the elements `part` of the flat parameter
    /// array (and the updater state's arrays at the same positions); the rest keep their
    /// values. Each element's step depends on that element alone, so the parts of a
    /// partition stepped one by one give the bits of one whole step: ParallelWrapper's
    /// SharedGradients trainers each step their part and exchange the results. An error when
    /// `part` is not within `0..num_params()`.
    fn apply_gradients_part(
        &mut self,
        batch_size: usize,
        part: std::ops::Range<usize>,
    ) -> Result<(), NnError>;
    /// The mean of `contributors` updater steps on the elements `part`, each from the
    /// current parameters and updater state with its own gradient, written over them there
    /// (the rest keep their values): what averaging replicas that started the round equal
    /// gives after each stepped on its own batch, computed for one part by one replica
    /// (ParallelWrapper averaging every round). The gradients, in order: this model's own
    /// ([`Model::gradients`] on the part) at position `own`, the others in `others`,
    /// `part.len()` values each; the sum in that order is scaled by `scale`
    /// (`1 / contributors`). The step is the one of [`Model::iteration_count`], which this
    /// does not advance: a caller stepping its part in pieces (as they arrive) calls it once
    /// per piece, then [`Model::set_counters`]. No listeners run. An error when the part or
    /// the gradients do not fit.
    fn apply_averaged_gradients_part(
        &mut self,
        part: std::ops::Range<usize>,
        contributors: usize,
        own: Option<usize>,
        others: &[T],
        scale: T,
    ) -> Result<(), NnError>;
    /// The flat updater state.
    fn updater_state(&self) -> &NdArray<T>;
    /// Replaces the updater state.
    fn set_updater_state(&mut self, state: &ArrayView<'_, T>) -> Result<(), NnError>;
    /// Every parameter array: DL4J key, shape, range in the flat array.
    fn param_table(&self) -> &[ParamEntry];
    /// Non-parameter layer state (batch-norm statistics), keyed `"{layer}.{key}"`.
    fn layer_states(&self) -> Vec<(String, Vec<T>)>;
    /// Restores one entry of [`Model::layer_states`].
    fn set_layer_state(&mut self, name: &str, values: &[T]) -> Result<(), NnError>;
    /// Iterations done.
    fn iteration_count(&self) -> u64;
    /// Epochs done.
    fn epoch_count(&self) -> u64;
    /// Sets the counters (restoring a model file).
    fn set_counters(&mut self, iteration: u64, epoch: u64);
    /// The score (loss) of the last training iteration.
    fn last_score(&self) -> f64;
    /// One training iteration on a data set (one input, one output).
    fn fit_data_set(&mut self, data: &DataSet<T>) -> Result<(), NnError>;
    /// One training iteration on a multi data set.
    fn fit_multi_data_set(&mut self, data: &MultiDataSet<T>) -> Result<(), NnError>;
    /// `epochs` passes over `iterator`.
    fn fit_iter(
        &mut self,
        iterator: &mut dyn DataSetIterator<T>,
        epochs: usize,
    ) -> Result<(), NnError>;
    /// The outputs for `inputs`, detached.
    fn output_arrays(
        &mut self,
        inputs: &[ArrayView<'_, T>],
        train: bool,
    ) -> Result<Vec<NdArray<T>>, NnError>;
    /// [`Model::output_arrays`] with a feature mask per input (`None`: no mask), e.g. the
    /// `[batch, time]` masks of variable-length sequences; detached.
    fn output_arrays_masked(
        &mut self,
        inputs: &[ArrayView<'_, T>],
        masks: &[Option<NdArray<T>>],
        train: bool,
    ) -> Result<Vec<NdArray<T>>, NnError>;
    /// Runs over `iterator` once, updating each evaluation with output 0 (DL4J's
    /// `doEvaluation`); allocation-free in steady state.
    fn do_evaluation(
        &mut self,
        iterator: &mut dyn DataSetIterator<T>,
        evaluations: &mut [&mut dyn IEvaluation<T>],
    ) -> Result<(), NnError>;
    /// The loss of a data set in inference mode.
    fn score_data_set(&mut self, data: &DataSet<T>) -> Result<f64, NnError>;
    /// Adds a training listener.
    fn add_listener(&mut self, listener: Box<dyn TrainingListener<T>>);
    /// Removes the listeners and returns them (ParallelWrapper calls them once per round
    /// instead, and hands them back with the model).
    fn take_listeners(&mut self) -> Vec<Box<dyn TrainingListener<T>>>;
    /// The flat parameter array, writable in place: data-parallel trainers average replicas
    /// into it without the copy [`Model::set_params`] makes.
    fn params_mut(&mut self) -> &mut NdArray<T>;
    /// The flat updater state, writable in place (averaged across replicas like the parameters).
    fn updater_state_mut(&mut self) -> &mut NdArray<T>;
    /// A table of the network.
    fn summary(&self) -> String;
    /// Ids of the network's workspaces on this thread.
    fn workspace_ids(&self) -> Vec<String>;
    /// Marks the end of an epoch.
    fn increment_epoch(&mut self);
    /// Writes the model file (configuration, parameters, optionally the updater state).
    fn save(&self, path: &std::path::Path, save_updater: bool) -> Result<(), NnError>
    where
        Self: Sized,
    {
        crate::serializer::ModelSerializer::write_model(self, path, save_updater)
    }
}

/// The engine and listeners of a network (both implementations hold one).
pub(crate) struct Core<T: DataType> {
    pub engine: Engine<T>,
    pub listeners: Vec<Box<dyn TrainingListener<T>>>,
    /// Reused for outputs during evaluation (no allocation per batch).
    pub out_buf: Vec<NdArray<T>>,
}

impl<T: DataType> Core<T> {
    pub fn new(engine: Engine<T>) -> Core<T> {
        let outputs = engine.outputs.len();
        Core {
            engine,
            listeners: Vec::new(),
            out_buf: Vec::with_capacity(outputs),
        }
    }
}

/// Access to the core, for the shared loops.
pub(crate) trait HasCore<T: DataType>: Model<T> + Sized {
    fn core(&self) -> &Core<T>;
    fn core_mut(&mut self) -> &mut Core<T>;
}

/// Counts the iteration and runs the listeners.
pub(crate) fn finish_iteration<T: DataType, M: HasCore<T>>(
    m: &mut M,
    score: f64,
    batch: usize,
) -> Result<(), NnError> {
    if m.core().listeners.is_empty() {
        return Ok(());
    }
    let info = IterationInfo {
        iteration: m.core().engine.iteration,
        epoch: m.core().engine.epoch,
        score,
        batch_size: batch,
    };
    // Listeners see the whole network; take them out so they can borrow it.
    let mut listeners = std::mem::take(&mut m.core_mut().listeners);
    let result = listeners
        .iter_mut()
        .try_for_each(|l| l.iteration_done(&*m, &info));
    m.core_mut().listeners = listeners;
    result
}

pub(crate) fn data_set_batch<T: DataType>(data: &DataSet<T>) -> Batch<'_, T> {
    Batch {
        features: Arrays::One(dl4rs_array::AsView::view(&data.features)),
        features_masks: Masks::One(data.features_mask.as_ref().map(dl4rs_array::AsView::view)),
        labels: Arrays::One(dl4rs_array::AsView::view(&data.labels)),
        labels_masks: Masks::One(data.labels_mask.as_ref().map(dl4rs_array::AsView::view)),
    }
}

pub(crate) fn multi_batch<T: DataType>(data: &MultiDataSet<T>) -> Batch<'_, T> {
    Batch {
        features: Arrays::Owned(&data.features),
        features_masks: Masks::Owned(&data.features_masks),
        labels: Arrays::Owned(&data.labels),
        labels_masks: Masks::Owned(&data.labels_masks),
    }
}

/// The second half of a split `fit`: updater step, counters, listeners.
pub(crate) fn apply_gradients<T: DataType, M: HasCore<T>>(
    m: &mut M,
    batch_size: usize,
) -> Result<(), NnError> {
    m.core_mut().engine.apply_update()?;
    let score = m.core().engine.score;
    finish_iteration(m, score, batch_size)
}

/// [`apply_gradients`] stepping the elements `part` of the flat arrays only.
pub(crate) fn apply_gradients_part<T: DataType, M: HasCore<T>>(
    m: &mut M,
    batch_size: usize,
    part: std::ops::Range<usize>,
) -> Result<(), NnError> {
    m.core_mut().engine.apply_update_part(part)?;
    let score = m.core().engine.score;
    finish_iteration(m, score, batch_size)
}

pub(crate) fn fit_batch<T: DataType, M: HasCore<T>>(
    m: &mut M,
    batch: &Batch<'_, T>,
) -> Result<(), NnError> {
    let rows = batch.features.get(0).map_or(0, |f| f.shape()[0]);
    let score = m.core_mut().engine.fit_batch(batch)?;
    finish_iteration(m, score, rows)
}

/// A source of training batches: a data set iterator or a multi data set iterator, seen the same
/// way by the training loop.
pub(crate) trait BatchSource<T: DataType> {
    fn has_next(&self) -> bool;
    fn next_batch(&mut self) -> Option<Result<EvalBatch<T>, NnError>>;
    fn reset_supported(&self) -> bool;
    fn reset(&mut self) -> Result<(), NnError>;
}

impl<T: DataType> BatchSource<T> for &mut dyn DataSetIterator<T> {
    fn has_next(&self) -> bool {
        DataSetIterator::has_next(&**self)
    }
    fn next_batch(&mut self) -> Option<Result<EvalBatch<T>, NnError>> {
        self.next()
            .map(|d| d.map(EvalBatch::Single).map_err(NnError::from))
    }
    fn reset_supported(&self) -> bool {
        DataSetIterator::reset_supported(&**self)
    }
    fn reset(&mut self) -> Result<(), NnError> {
        Ok(DataSetIterator::reset(&mut **self)?)
    }
}

impl<T: DataType> BatchSource<T> for &mut dyn MultiDataSetIterator<T> {
    fn has_next(&self) -> bool {
        MultiDataSetIterator::has_next(&**self)
    }
    fn next_batch(&mut self) -> Option<Result<EvalBatch<T>, NnError>> {
        self.next()
            .map(|d| d.map(EvalBatch::Multi).map_err(NnError::from))
    }
    fn reset_supported(&self) -> bool {
        MultiDataSetIterator::reset_supported(&**self)
    }
    fn reset(&mut self) -> Result<(), NnError> {
        Ok(MultiDataSetIterator::reset(&mut **self)?)
    }
}

/// `epochs` passes over `source`; each batch is fetched inside the iteration's all-layers
/// workspace cycle, so it lives there and costs no heap allocation. Under truncated BPTT each
/// batch is fitted in segments instead ([`fit_tbptt_batch`]).
pub(crate) fn fit_source<T: DataType, M: HasCore<T>>(
    m: &mut M,
    mut source: impl BatchSource<T>,
    epochs: usize,
) -> Result<(), NnError> {
    let tbptt = m.core().engine.global.backprop_type == crate::conf::BackpropType::TruncatedBptt;
    for _ in 0..epochs {
        while tbptt && source.has_next() {
            if !fit_tbptt_batch(m, &mut source)? {
                break;
            }
        }
        while !tbptt && source.has_next() {
            let (score, rows) = {
                let engine = &mut m.core_mut().engine;
                let _all = if engine.global.training_workspace_mode
                    == crate::conf::WorkspaceMode::Enabled
                {
                    Some(NetWorkspaces::scope(&engine.ws.all_act)?)
                } else {
                    None
                };
                let Some(data) = source.next_batch() else {
                    break;
                };
                let data = data?;
                let score = engine.gradient_and_score(&data.batch())?;
                (score, data.num_examples()?)
            };
            let engine = &mut m.core_mut().engine;
            engine
                .store
                .apply_updater(&engine.global, engine.iteration)?;
            engine.score = score;
            engine.iteration += 1;
            finish_iteration(m, score, rows)?;
        }
        if source.reset_supported() {
            source.reset()?;
        }
        m.core_mut().engine.epoch += 1;
    }
    Ok(())
}

/// One batch of a truncated-BPTT `fit_source`, as `fit(&DataSet)` does it: segment by
/// segment, one updater step (and one iteration) each, the listeners once for the batch.
/// The batch is fetched outside the all-layers workspace, whose cycles are the segments (a
/// prefetching iterator's ring holds it until the next batch is asked for). Returns false
/// when the source had no batch after all.
fn fit_tbptt_batch<T: DataType, M: HasCore<T>>(
    m: &mut M,
    source: &mut impl BatchSource<T>,
) -> Result<bool, NnError> {
    let Some(data) = source.next_batch() else {
        return Ok(false);
    };
    let data = data?;
    let engine = &mut m.core_mut().engine;
    let (forward, backward) = (
        engine.global.tbptt_forward_length,
        engine.global.tbptt_backward_length,
    );
    let score = engine.fit_tbptt(&data.batch(), forward, backward)?;
    let rows = data.num_examples()?;
    drop(data);
    finish_iteration(m, score, rows)?;
    Ok(true)
}

/// [`fit_source`] over a data set iterator.
pub(crate) fn fit_iter<T: DataType, M: HasCore<T>>(
    m: &mut M,
    iterator: &mut dyn DataSetIterator<T>,
    epochs: usize,
) -> Result<(), NnError> {
    fit_source(m, iterator, epochs)
}

/// [`fit_source`] over a multi data set iterator.
pub(crate) fn fit_multi_iter<T: DataType, M: HasCore<T>>(
    m: &mut M,
    iterator: &mut dyn MultiDataSetIterator<T>,
    epochs: usize,
) -> Result<(), NnError> {
    fit_source(m, iterator, epochs)
}

/// One evaluation pass: batches and outputs live in the network's output workspace, so in
/// steady state nothing is allocated per batch. `eval` gets the batch and the outputs.
fn evaluation_pass<T: DataType>(
    core: &mut Core<T>,
    mut next: impl FnMut() -> Option<Result<EvalBatch<T>, NnError>>,
    mut eval: impl FnMut(&EvalBatch<T>, &[NdArray<T>]) -> Result<(), NnError>,
) -> Result<(), NnError> {
    let enabled = core.engine.inference_enabled();
    loop {
        let scope = if enabled {
            Some(NetWorkspaces::scope(&core.engine.ws.output)?)
        } else {
            None
        };
        let Some(data) = next() else { break };
        let data = data?;
        if let Some(s) = &scope {
            let ws = s
                .workspace()
                .ok_or_else(|| NnError::config("output workspace missing"))?
                .clone();
            core.engine.set_user_workspace(&ws)?;
        }
        let mut outs = std::mem::take(&mut core.out_buf);
        outs.clear();
        let batch = data.batch();
        let result = core
            .engine
            .output_into(
                &batch.features,
                &batch.features_masks,
                false,
                enabled,
                &mut outs,
            )
            .and_then(|()| eval(&data, &outs));
        outs.clear();
        core.out_buf = outs;
        result?;
    }
    Ok(())
}

/// A batch being trained on or evaluated (by value: boxing it would allocate per batch).
#[allow(clippy::large_enum_variant)]
pub(crate) enum EvalBatch<T: DataType> {
    Single(DataSet<T>),
    Multi(MultiDataSet<T>),
}

impl<T: DataType> EvalBatch<T> {
    fn batch(&self) -> Batch<'_, T> {
        match self {
            EvalBatch::Single(d) => data_set_batch(d),
            EvalBatch::Multi(d) => multi_batch(d),
        }
    }

    fn num_examples(&self) -> Result<usize, NnError> {
        Ok(match self {
            EvalBatch::Single(d) => d.num_examples(),
            EvalBatch::Multi(d) => d.num_examples()?,
        })
    }
}

/// Labels and predictions, as rows.
type LabelsAndPredictions<T> = (NdArray<T>, NdArray<T>);

/// Labels and predictions with a loss per time step (`[batch, n, time]`) as the rows of
/// their unmasked steps, `[steps, n]` (DL4J's `evalTimeSeries`: a step is one decision), and
/// no mask; `None` for other shapes. `mask` is `[batch, time]` (the label mask, else the
/// feature mask).
fn time_series_rows<T: DataType>(
    labels: &ArrayView<'_, T>,
    out: &ArrayView<'_, T>,
    mask: Option<ArrayView<'_, T>>,
) -> Result<Option<LabelsAndPredictions<T>>, NnError> {
    let (&[b, n, t], &[_, _, _]) = (labels.shape(), out.shape()) else {
        return Ok(None);
    };
    if out.shape() != labels.shape() {
        return Err(NnError::Input(format!(
            "evaluation: labels have shape {:?} but the network output has shape {:?}",
            labels.shape(),
            out.shape()
        )));
    }
    let keep: Vec<(usize, usize)> = match mask {
        Some(m) if m.shape() == [b, t] => {
            let r = m.read()?;
            (0..b)
                .flat_map(|e| (0..t).map(move |s| (e, s)))
                .filter(|&(e, s)| r.get(&[e, s]).is_ok_and(|v| v != T::ZERO))
                .collect()
        }
        Some(m) => {
            return Err(NnError::Input(format!(
                "evaluation: the mask has shape {:?}; expected [{b}, {t}] for outputs {:?}",
                m.shape(),
                out.shape()
            )));
        }
        None => (0..b).flat_map(|e| (0..t).map(move |s| (e, s))).collect(),
    };
    let rows = |a: &ArrayView<'_, T>| -> Result<NdArray<T>, NnError> {
        let mut r = NdArray::<T>::zeros_detached(&[keep.len(), n])?;
        for (i, &(e, s)) in keep.iter().enumerate() {
            r.view_mut()
                .index_axis(0, i)?
                .assign(&a.index_axis(0, e)?.index_axis(1, s)?)?;
        }
        Ok(r)
    };
    Ok(Some((rows(labels)?, rows(out)?)))
}

pub(crate) fn do_evaluation<T: DataType>(
    core: &mut Core<T>,
    iterator: &mut dyn DataSetIterator<T>,
    evaluations: &mut [&mut dyn IEvaluation<T>],
) -> Result<(), NnError> {
    if !iterator.has_next() && iterator.reset_supported() {
        iterator.reset()?;
    }
    evaluation_pass(
        core,
        || {
            if !iterator.has_next() {
                return None;
            }
            iterator
                .next()
                .map(|d| d.map(EvalBatch::Single).map_err(NnError::from))
        },
        |data, outs| {
            let EvalBatch::Single(d) = data else {
                return Ok(());
            };
            let out = outs
                .first()
                .ok_or_else(|| NnError::config("the network produced no output"))?;
            let mask = d
                .labels_mask
                .as_ref()
                .or(d.features_mask.as_ref())
                .map(dl4rs_array::AsView::view);
            let labels = dl4rs_array::AsView::view(&d.labels);
            let out = dl4rs_array::AsView::view(out);
            let rows = time_series_rows(&labels, &out, mask)?;
            for e in evaluations.iter_mut() {
                match &rows {
                    Some((l, o)) => e.eval(&l.view(), &o.view(), None)?,
                    None => e.eval(
                        &labels,
                        &out,
                        d.labels_mask.as_ref().map(|m| m.view()).as_ref(),
                    )?,
                }
            }
            Ok(())
        },
    )?;
    if iterator.reset_supported() {
        iterator.reset()?;
    }
    Ok(())
}

pub(crate) fn do_evaluation_multi<T: DataType>(
    core: &mut Core<T>,
    iterator: &mut dyn MultiDataSetIterator<T>,
    evaluations: &mut [(usize, &mut dyn IEvaluation<T>)],
) -> Result<(), NnError> {
    let outputs = core.engine.outputs.len();
    if let Some((k, _)) = evaluations.iter().find(|(k, _)| *k >= outputs) {
        return Err(NnError::Input(format!(
            "an evaluation is for output {k}, but the network has {outputs} output(s)"
        )));
    }
    if !iterator.has_next() && iterator.reset_supported() {
        iterator.reset()?;
    }
    evaluation_pass(
        core,
        || {
            if !iterator.has_next() {
                return None;
            }
            iterator
                .next()
                .map(|d| d.map(EvalBatch::Multi).map_err(NnError::from))
        },
        |data, outs| {
            let EvalBatch::Multi(d) = data else {
                return Ok(());
            };
            for (k, e) in evaluations.iter_mut() {
                let labels = d.labels.get(*k).ok_or_else(|| {
                    NnError::Input(format!("the data set has no labels for output {k}"))
                })?;
                let mask = d
                    .labels_masks
                    .get(*k)
                    .and_then(|m| m.as_ref().map(dl4rs_array::AsView::view));
                let (labels, out) = (
                    dl4rs_array::AsView::view(labels),
                    dl4rs_array::AsView::view(&outs[*k]),
                );
                match time_series_rows(&labels, &out, mask)? {
                    Some((l, o)) => e.eval(&l.view(), &o.view(), None)?,
                    None => e.eval(&labels, &out, mask.as_ref())?,
                }
            }
            Ok(())
        },
    )?;
    if iterator.reset_supported() {
        iterator.reset()?;
    }
    Ok(())
}
