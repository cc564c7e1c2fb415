//! `MultiLayerNetwork`: a stack of layers whose training and inference run in workspaces, laid
//! out as DL4J does (reference §2.4–2.5):
//!
//! * **training** (`fit`): the batch, every layer's activations and forward caches live in the
//!   all-layers-activations workspace for one iteration; each layer call gets a fresh cycle of
//!   the layer-working-memory workspace for its scratch; activation gradients ping-pong between
//!   two workspaces (layer *i*'s gradient in `ACT[i % 2]`), so backprop holds two at a time.
//! * **inference** (`output`): activations ping-pong between the same two workspaces, so memory
//!   is about two activations, not all of them; the last layer's output is detached (or placed
//!   in the caller's open workspace).
//!
//! Parameters, gradients and updater state are each one contiguous heap array; layers see
//! their slices. Workspace ids carry a per-network number, so two networks on one thread never
//! share a workspace. With `WorkspaceMode::None` every array goes to the heap, and results are
//! bit-identical either way.

use std::sync::atomic::{AtomicU64, Ordering};

use dl4rs_array::{ArrayView, AsView, DataType, NdArray};
use dl4rs_data::{AsyncDataSetIterator, DataSet, DataSetIterator};
use dl4rs_eval::{Evaluation, IEvaluation, RegressionEvaluation, Roc, RocMultiClass};
use dl4rs_memory::{
    AllocationPolicy, LearningPolicy, SpillPolicy, Workspace, WorkspaceConfig, WorkspaceScope,
    find_workspace_for_current_thread,
};

use crate::conf::{MultiLayerConfiguration, WorkspaceMode};
use crate::error::NnError;
use crate::layers::{Epsilon, Layer, StepContext, layer_from_conf};
use crate::listeners::{IterationInfo, TrainingListener};
use crate::updater::{self, Segment};
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

static NETWORK_IDS: AtomicU64 = AtomicU64::new(1);

fn ws_config(overallocation: f64, learning: LearningPolicy, cycles: u32) -> WorkspaceConfig {
    WorkspaceConfig {
        overallocation_limit: overallocation,
        policy_learning: learning,
        cycles_before_initialization: cycles,
        policy_spill: SpillPolicy::Reallocate,
        policy_allocation: AllocationPolicy::Overallocate,
        ..WorkspaceConfig::default()
    }
}

/// The workspaces of one network and the managers that route array types to them.
struct NetWorkspaces {
    all_act: (String, WorkspaceConfig),
    /// Network outputs during evaluation.
    output: (String, WorkspaceConfig),
    working: (String, WorkspaceConfig),
    act: [(String, WorkspaceConfig); 2],
    /// Forward pass in training: everything kept for backprop in ALL_ACT.
    train: LayerWorkspaceMgr,
    /// Backprop: gradients in ACT[i % 2].
    backprop: [LayerWorkspaceMgr; 2],
    /// Inference: activations in ACT[i % 2].
    infer: [LayerWorkspaceMgr; 2],
    /// Inference, last layer: activations detached.
    infer_last: LayerWorkspaceMgr,
    /// Inference, last layer into a caller's workspace (cached by id).
    infer_user: Option<(String, LayerWorkspaceMgr)>,
    /// Feed forward keeping every activation: activations detached.
    detached: LayerWorkspaceMgr,
    /// Workspaces off.
    none: LayerWorkspaceMgr,
}

impl NetWorkspaces {
    fn new(num_layers: usize) -> Result<Self, NnError> {
        let n = NETWORK_IDS.fetch_add(1, Ordering::Relaxed);
        let layers = num_layers.max(1) as u32;
        let all_act = (
            format!("WS_ALL_LAYERS_ACT#{n}"),
            ws_config(0.05, LearningPolicy::FirstLoop, 0),
        );
        let output = (format!("WS_OUTPUT_MEM#{n}"), all_act.1.clone());
        let working = (
            format!("WS_LAYER_WORKING_MEM#{n}"),
            ws_config(0.02, LearningPolicy::OverTime, 2 * layers),
        );
        let act_cfg = ws_config(0.02, LearningPolicy::OverTime, layers);
        let act = [
            (format!("WS_LAYER_ACT_1#{n}"), act_cfg.clone()),
            (format!("WS_LAYER_ACT_2#{n}"), act_cfg),
        ];
        let with_working = |b: crate::workspace_mgr::LayerWorkspaceMgrBuilder| {
            b.with(ArrayType::FfWorkingMem, &working.0, working.1.clone())
                .with(ArrayType::BpWorkingMem, &working.0, working.1.clone())
                .with(
                    ArrayType::RnnFfLoopWorkingMem,
                    &working.0,
                    working.1.clone(),
                )
                .with(
                    ArrayType::RnnBpLoopWorkingMem,
                    &working.0,
                    working.1.clone(),
                )
        };
        let train = with_working(LayerWorkspaceMgr::builder())
            .with(ArrayType::Input, &all_act.0, all_act.1.clone())
            .with(ArrayType::Activations, &all_act.0, all_act.1.clone())
            .with(ArrayType::FfCache, &all_act.0, all_act.1.clone())
            .with(ArrayType::UpdaterWorkingMem, &all_act.0, all_act.1.clone())
            .with(ArrayType::ActivationGrad, &act[0].0, act[0].1.clone())
            .build()?;
        let backprop = [0, 1].map(|k| {
            let mut m = train.clone();
            m.set_workspace(ArrayType::ActivationGrad, &act[k].0, act[k].1.clone());
            m
        });
        let infer_base = |activations: Option<&(String, WorkspaceConfig)>| {
            let b = with_working(LayerWorkspaceMgr::builder()).with(
                ArrayType::FfCache,
                &working.0,
                working.1.clone(),
            );
            let b = match activations {
                Some((id, cfg)) => b.with(ArrayType::Activations, id, cfg.clone()),
                None => b.no_workspace_for(ArrayType::Activations),
            };
            b.default_no_workspace().build()
        };
        Ok(NetWorkspaces {
            infer: [infer_base(Some(&act[0]))?, infer_base(Some(&act[1]))?],
            infer_last: infer_base(None)?,
            detached: infer_base(None)?,
            none: LayerWorkspaceMgr::no_workspaces(),
            infer_user: None,
            backprop,
            train,
            output,
            all_act,
            working,
            act,
        })
    }

    fn scope(&self, which: &(String, WorkspaceConfig)) -> Result<WorkspaceScope, NnError> {
        Ok(
            dl4rs_memory::get_workspace_for_current_thread(&which.1, &which.0)?
                .notify_scope_entered()?,
        )
    }
}

/// A feed-forward network of layers.
///
/// ```
/// use dl4rs_nn::*;
/// use dl4rs_array::NdArray;
///
/// let conf = NeuralNetConfiguration::builder()
///     .seed(7)
///     .updater(Updater::sgd(0.5))
///     .list()
///     .layer(LayerConf::dense(8).n_in(2).activation(Activation::Tanh))
///     .layer(LayerConf::output(LossFunction::Mcxent, 2).activation(Activation::Softmax))
///     .build()?;
/// let mut net = MultiLayerNetwork::<f32>::new(conf)?;
/// // XOR
/// let x = NdArray::from_slice(&[4, 2], &[0., 0., 0., 1., 1., 0., 1., 1.])?;
/// let y = NdArray::from_slice(&[4, 2], &[1., 0., 0., 1., 0., 1., 1., 0.])?;
/// let before = net.score_arrays(&x, &y)?;
/// for _ in 0..300 {
///     net.fit_arrays(&x, &y)?;
/// }
/// assert!(net.score_arrays(&x, &y)? < before);
/// let out = net.output(&x, false)?; // detached: outlives every workspace cycle
/// assert_eq!(out.shape(), &[4, 2]);
/// # Ok::<(), NnError>(())
/// ```
pub struct MultiLayerNetwork<T: DataType = f32> {
    conf: MultiLayerConfiguration,
    layers: Vec<Box<dyn Layer<T>>>,
    offsets: Vec<usize>,
    params: NdArray<T>,
    grads: NdArray<T>,
    updater_state: NdArray<T>,
    segments: Vec<Segment>,
    iteration: u64,
    epoch: u64,
    score: f64,
    ws: NetWorkspaces,
    acts: Vec<NdArray<T>>,
    listeners: Vec<Box<dyn TrainingListener<T>>>,
}

fn layer_label<T: DataType>(layer: &dyn Layer<T>) -> String {
    layer
        .name()
        .map(|n| format!(" - layer name \"{n}\""))
        .unwrap_or_default()
}

impl<T: DataType> MultiLayerNetwork<T> {
    /// Builds and initializes a network (DL4J `new MultiLayerNetwork(conf); init()`).
    pub fn new(conf: MultiLayerConfiguration) -> Result<Self, NnError> {
        let conf = conf.validated()?;
        let layers = conf
            .layers
            .iter()
            .map(layer_from_conf::<T>)
            .collect::<Result<Vec<_>, _>>()?;
        let ws = NetWorkspaces::new(layers.len())?;
        let mut net = MultiLayerNetwork {
            offsets: Vec::new(),
            params: NdArray::zeros_detached(&[0])?,
            grads: NdArray::zeros_detached(&[0])?,
            updater_state: NdArray::zeros_detached(&[0])?,
            segments: Vec::new(),
            iteration: 0,
            epoch: 0,
            score: f64::NAN,
            acts: Vec::with_capacity(layers.len()),
            listeners: Vec::new(),
            ws,
            layers,
            conf,
        };
        net.init()?;
        Ok(net)
    }

    /// (Re)allocates parameters, gradients and updater state and initializes the parameters
    /// from the seed.
    pub fn init(&mut self) -> Result<(), NnError> {
        let mut offsets = vec![0];
        let mut segments = Vec::new();
        for layer in &self.layers {
            let mut at = *offsets.last().unwrap_or(&0);
            for spec in layer.param_specs() {
                let len: usize = spec.shape.iter().product();
                segments.push(Segment {
                    range: at..at + len,
                    regularize: spec.regularize,
                });
                at += len;
            }
            offsets.push(at);
        }
        let total = *offsets.last().unwrap_or(&0);
        let mut params = NdArray::<T>::zeros_detached(&[total])?;
        {
            let mut w = params.write()?;
            let flat = w.as_slice_mut().unwrap_or_default();
            for (i, layer) in self.layers.iter().enumerate() {
                let seed = dl4rs_array::random::splitmix(self.conf.seed, i as u64);
                layer.init_params(&mut flat[offsets[i]..offsets[i + 1]], seed);
            }
        }
        self.grads = NdArray::zeros_detached(&[total])?;
        self.updater_state =
            NdArray::zeros_detached(&[total * self.conf.updater.state_per_param()])?;
        self.params = params;
        self.offsets = offsets;
        self.segments = segments;
        self.iteration = 0;
        Ok(())
    }

    /// The configuration.
    pub fn conf(&self) -> &MultiLayerConfiguration {
        &self.conf
    }

    /// The layers.
    pub fn layers(&self) -> &[Box<dyn Layer<T>>] {
        &self.layers
    }

    /// Replaces layer `index` with a custom implementation of the same shape (sizes and
    /// parameter count must match the configured layer).
    pub fn set_layer(&mut self, index: usize, layer: Box<dyn Layer<T>>) -> Result<(), NnError> {
        let old = self.layers.get(index).ok_or_else(|| {
            NnError::Input(format!(
                "set_layer: no layer {index} (the network has {})",
                self.layers.len()
            ))
        })?;
        if (old.n_in(), old.n_out(), old.num_params())
            != (layer.n_in(), layer.n_out(), layer.num_params())
        {
            return Err(NnError::Input(format!(
                "set_layer: layer {index} has n_in {}, n_out {}, {} parameters; the replacement has {}, {}, {}",
                old.n_in(),
                old.n_out(),
                old.num_params(),
                layer.n_in(),
                layer.n_out(),
                layer.num_params()
            )));
        }
        self.layers[index] = layer;
        Ok(())
    }

    /// Adds a training listener.
    pub fn add_listener(&mut self, listener: Box<dyn TrainingListener<T>>) {
        self.listeners.push(listener);
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// The flat parameter array (layer by layer; within a layer in `param_specs` order).
    pub fn params(&self) -> &NdArray<T> {
        &self.params
    }

    /// The flat gradient array of the last iteration.
    pub fn gradients(&self) -> &NdArray<T> {
        &self.grads
    }

    /// The updater state (flat).
    pub fn updater_state(&self) -> &NdArray<T> {
        &self.updater_state
    }

    /// Replaces the parameters (a `[num_params]` array, or any shape with that many elements).
    pub fn set_params(&mut self, params: &impl AsView<T>) -> Result<(), NnError> {
        self.copy_flat(params, true)
    }

    /// Replaces the updater state.
    pub fn set_updater_state(&mut self, state: &impl AsView<T>) -> Result<(), NnError> {
        self.copy_flat(state, false)
    }

    fn copy_flat(&mut self, src: &impl AsView<T>, params: bool) -> Result<(), NnError> {
        let v = src.view();
        let target = if params {
            &mut self.params
        } else {
            &mut self.updater_state
        };
        let n: usize = v.shape().iter().product();
        if n != target.len() {
            return Err(NnError::Input(format!(
                "expected {} {}, found {n} (shape {:?})",
                target.len(),
                if params {
                    "parameters"
                } else {
                    "updater state values"
                },
                v.shape()
            )));
        }
        let flat = v.dup()?;
        let flat = flat.reshape(&[n])?;
        target.assign(&flat)?;
        Ok(())
    }

    /// The parameter slice of layer `index` (as a flat view).
    pub fn layer_params(&self, index: usize) -> Result<ArrayView<'_, T>, NnError> {
        if index >= self.layers.len() {
            return Err(NnError::Input(format!("no layer {index}")));
        }
        Ok(self
            .params
            .view()
            .slice_axis(0, self.offsets[index], self.offsets[index + 1], 1)?)
    }

    pub(crate) fn set_layer_state(
        &mut self,
        index: usize,
        key: &str,
        values: &[T],
    ) -> Result<(), NnError> {
        self.layers
            .get_mut(index)
            .ok_or_else(|| NnError::Input(format!("no layer {index}")))?
            .set_state(key, values)
    }

    pub(crate) fn set_counters(&mut self, iteration: u64, epoch: u64) {
        self.iteration = iteration;
        self.epoch = epoch;
    }

    /// Iterations done.
    pub fn iteration_count(&self) -> u64 {
        self.iteration
    }

    /// Epochs done.
    pub fn epoch_count(&self) -> u64 {
        self.epoch
    }

    /// Marks the end of an epoch (for listeners and `fit_iter`).
    pub fn increment_epoch(&mut self) {
        self.epoch += 1;
    }

    /// The score (loss) of the last training iteration.
    pub fn last_score(&self) -> f64 {
        self.score
    }

    fn check_training(&self) -> Result<(), NnError> {
        match self.layers.last() {
            Some(l) if l.loss().is_some() => Ok(()),
            _ => Err(NnError::config(
                "the last layer must be an output or loss layer to train or score the network",
            )),
        }
    }

    fn check_input(&self, x: &ArrayView<'_, T>) -> Result<usize, NnError> {
        let n_in = self.conf.n_in();
        match x.shape() {
            &[b, n] if n == n_in => Ok(b),
            other => Err(NnError::Input(format!(
                "network input: expected shape [batch, {n_in}], found {other:?}"
            ))),
        }
    }

    fn validate(
        &self,
        op: &'static str,
        mgr: &LayerWorkspaceMgr,
        ty: ArrayType,
        index: usize,
        array: &NdArray<T>,
    ) -> Result<(), NnError> {
        // As DL4J: the first layer may hand back a detached array (e.g. its own input).
        mgr.validate_array_location(ty, array, index > 0)
            .map_err(|(expected, found)| {
                let layer = &self.layers[index];
                NnError::WorkspaceValidation {
                    op,
                    array_type: ty,
                    index,
                    name: layer_label(layer.as_ref()),
                    kind: layer.kind(),
                    expected,
                    found,
                }
            })
    }

    /// One training iteration on a data set (one batch), as DL4J's `fit(DataSet)`.
    pub fn fit(&mut self, data: &DataSet<T>) -> Result<(), NnError> {
        Self::reject_masks(data)?;
        self.fit_arrays(&data.features, &data.labels)
    }

    fn reject_masks(data: &DataSet<T>) -> Result<(), NnError> {
        if data.features_mask.is_some() || data.labels_mask.is_some() {
            return Err(NnError::Input(
                "this data set has masks, which feed-forward MultiLayerNetworks don't use yet: \
                 drop the masks (set them to None) or filter the masked examples out"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Trains for `epochs` passes over `iterator` (DL4J's `fit(iterator, epochs)`). Each batch
    /// is fetched inside the iteration's workspace cycle, so it lives there and costs no heap
    /// allocation; the iterator is reset after each epoch.
    pub fn fit_iter(
        &mut self,
        iterator: &mut dyn DataSetIterator<T>,
        epochs: usize,
    ) -> Result<(), NnError> {
        self.check_training()?;
        let enabled = self.conf.training_workspace_mode == WorkspaceMode::Enabled;
        for _ in 0..epochs {
            while iterator.has_next() {
                let (score, batch) = {
                    let _all = if enabled {
                        Some(self.ws.scope(&self.ws.all_act)?)
                    } else {
                        None
                    };
                    let Some(data) = iterator.next() else { break };
                    let data = data?;
                    Self::reject_masks(&data)?;
                    let score = self.gradient_and_score(
                        &data.features.view(),
                        &data.labels.view(),
                        enabled,
                    )?;
                    (score, data.num_examples())
                };
                self.apply_updater()?;
                self.finish_iteration(score, batch)?;
            }
            if iterator.reset_supported() {
                iterator.reset()?;
            }
            self.epoch += 1;
        }
        Ok(())
    }

    /// Runs the network over `iterator` once and updates every evaluation with each batch
    /// (DL4J's `doEvaluation`). Batches and outputs live in the network's output workspace:
    /// in steady state no heap allocation per batch.
    pub fn do_evaluation(
        &mut self,
        iterator: &mut dyn DataSetIterator<T>,
        evaluations: &mut [&mut dyn IEvaluation<T>],
    ) -> Result<(), NnError> {
        if !iterator.has_next() && iterator.reset_supported() {
            iterator.reset()?;
        }
        let enabled = self.conf.inference_workspace_mode == WorkspaceMode::Enabled;
        while iterator.has_next() {
            let scope = if enabled {
                Some(self.ws.scope(&self.ws.output)?)
            } else {
                None
            };
            let Some(data) = iterator.next() else { break };
            let data = data?;
            Self::reject_masks(&data)?;
            let out = match &scope {
                Some(s) => {
                    let ws = s
                        .workspace()
                        .ok_or_else(|| NnError::config("output workspace missing"))?
                        .clone();
                    self.output_in(&data.features, false, &ws)?
                }
                None => self.output(&data.features, false)?,
            };
            for e in evaluations.iter_mut() {
                e.eval(&data.labels.view(), &out.view(), None)?;
            }
        }
        if iterator.reset_supported() {
            iterator.reset()?;
        }
        Ok(())
    }

    /// [`MultiLayerNetwork::do_evaluation`] over an owned `source`, prefetched on a background
    /// thread when it supports it (DL4J's `doEvaluation` wraps with an `AsyncDataSetIterator`
    /// of 2). The prefetch thread is joined before this returns.
    pub fn do_evaluation_prefetched(
        &mut self,
        source: Box<dyn DataSetIterator<T> + Send>,
        evaluations: &mut [&mut dyn IEvaluation<T>],
    ) -> Result<(), NnError> {
        let mut iterator = AsyncDataSetIterator::wrap_if_supported(source, 2)?;
        self.do_evaluation(iterator.as_mut(), evaluations)
    }

    /// Classification metrics over `iterator` (DL4J `evaluate`).
    pub fn evaluate(
        &mut self,
        iterator: &mut dyn DataSetIterator<T>,
    ) -> Result<Evaluation, NnError> {
        let mut e = Evaluation::new(self.conf.n_out());
        self.do_evaluation(iterator, &mut [&mut e])?;
        Ok(e)
    }

    /// Regression metrics over `iterator` (DL4J `evaluateRegression`).
    pub fn evaluate_regression(
        &mut self,
        iterator: &mut dyn DataSetIterator<T>,
    ) -> Result<RegressionEvaluation, NnError> {
        let mut e = RegressionEvaluation::new(self.conf.n_out());
        self.do_evaluation(iterator, &mut [&mut e])?;
        Ok(e)
    }

    /// Exact ROC of a binary classifier over `iterator` (DL4J `evaluateROC`): outputs
    /// `[batch, 1]` or `[batch, 2]` (column 1 positive).
    pub fn evaluate_roc(&mut self, iterator: &mut dyn DataSetIterator<T>) -> Result<Roc, NnError> {
        let mut roc = Roc::with_capacity(iterator.total_examples().unwrap_or(0));
        self.do_evaluation(iterator, &mut [&mut roc])?;
        Ok(roc)
    }

    /// One-vs-all exact ROC per class over `iterator`.
    pub fn evaluate_roc_multi_class(
        &mut self,
        iterator: &mut dyn DataSetIterator<T>,
    ) -> Result<RocMultiClass, NnError> {
        let mut roc =
            RocMultiClass::with_capacity(self.conf.n_out(), iterator.total_examples().unwrap_or(0));
        self.do_evaluation(iterator, &mut [&mut roc])?;
        Ok(roc)
    }

    /// Trains for `epochs` passes over an owned `source`, prefetching batches on a background
    /// thread when the source says it is worth it (`async_supported()`), as DL4J's
    /// `fit(iterator)` does: an [`AsyncDataSetIterator`] with a queue of 2 whose batches live in
    /// its own cyclic workspace. Use [`dl4rs_data::AsyncShieldDataSetIterator`] to turn
    /// prefetch off. The prefetch thread is stopped and joined before this returns.
    pub fn fit_prefetched(
        &mut self,
        source: Box<dyn DataSetIterator<T> + Send>,
        epochs: usize,
    ) -> Result<(), NnError> {
        let mut iterator = AsyncDataSetIterator::wrap_if_supported(source, 2)?;
        self.fit_iter(iterator.as_mut(), epochs)
    }

    /// The loss of a data set in inference mode (DL4J `score(DataSet)`).
    pub fn score(&mut self, data: &DataSet<T>) -> Result<f64, NnError> {
        self.score_arrays(&data.features, &data.labels)
    }

    /// One training iteration on a batch: forward, loss, backprop, updater step.
    pub fn fit_arrays(
        &mut self,
        features: &impl AsView<T>,
        labels: &impl AsView<T>,
    ) -> Result<(), NnError> {
        self.check_training()?;
        let enabled = self.conf.training_workspace_mode == WorkspaceMode::Enabled;
        let _all = if enabled {
            Some(self.ws.scope(&self.ws.all_act)?)
        } else {
            None
        };
        let score = self.gradient_and_score(&features.view(), &labels.view(), enabled)?;
        self.apply_updater()?;
        self.finish_iteration(score, features.view().shape().first().copied().unwrap_or(0))
    }

    pub(crate) fn finish_iteration(&mut self, score: f64, batch: usize) -> Result<(), NnError> {
        self.score = score;
        self.iteration += 1;
        if self.listeners.is_empty() {
            return Ok(());
        }
        let info = IterationInfo {
            iteration: self.iteration,
            epoch: self.epoch,
            score,
            batch_size: batch,
        };
        // Listeners see the whole network; take them out so they can borrow it.
        let mut listeners = std::mem::take(&mut self.listeners);
        let result = listeners
            .iter_mut()
            .try_for_each(|l| l.iteration_done(self, &info));
        self.listeners = listeners;
        result
    }

    /// Forward (training mode), loss and backprop: fills the gradients; returns the score.
    /// With `enabled`, the caller has the all-layers-activations workspace open.
    fn gradient_and_score(
        &mut self,
        x: &ArrayView<'_, T>,
        labels: &ArrayView<'_, T>,
        enabled: bool,
    ) -> Result<f64, NnError> {
        let batch = self.check_input(x)?;
        let n = self.layers.len();
        let out_n = self.conf.n_out();
        if labels.shape() != [batch, out_n] {
            return Err(NnError::Input(format!(
                "labels: expected shape [{batch}, {out_n}] (batch, outputs), found {:?}",
                labels.shape()
            )));
        }
        self.acts.clear();
        // Forward, keeping every activation for backprop.
        for i in 0..n {
            let mgr = if enabled {
                &self.ws.train
            } else {
                &self.ws.none
            };
            let _working = self.working_scope(enabled)?;
            let ctx = self.ctx(true, i);
            let params =
                self.params
                    .view()
                    .slice_axis(0, self.offsets[i], self.offsets[i + 1], 1)?;
            let input = if i == 0 { *x } else { self.acts[i - 1].view() };
            let out = self.layers[i].activate(&input, &params, &ctx, mgr)?;
            self.validate(
                "Feed forward to layer (training)",
                mgr,
                ArrayType::Activations,
                i,
                &out,
            )?;
            self.acts.push(out);
        }
        let output_layer = &self.layers[n - 1];
        let loss = output_layer
            .loss()
            .ok_or_else(|| NnError::config("the last layer has no loss"))?;
        let score =
            loss.score(labels, &self.acts[n - 1].view())?.to_f64() + self.regularization_score()?;

        // Backprop: gradients ping-pong between ACT_1 and ACT_2.
        let mut grad_scopes: [Option<WorkspaceScope>; 2] = [None, None];
        let mut epsilon: Option<NdArray<T>> = None;
        for i in (0..n).rev() {
            let k = i % 2;
            let mgr = if enabled {
                grad_scopes[k] = None;
                grad_scopes[k] = Some(self.ws.scope(&self.ws.act[k])?);
                &self.ws.backprop[k]
            } else {
                &self.ws.none
            };
            let _working = self.working_scope(enabled)?;
            let mut ctx = self.ctx(true, i);
            ctx.need_input_gradient = i > 0;
            let params =
                self.params
                    .view()
                    .slice_axis(0, self.offsets[i], self.offsets[i + 1], 1)?;
            let input = if i == 0 { *x } else { self.acts[i - 1].view() };
            let output = self.acts[i].view();
            let eps = match (&epsilon, i + 1 == n) {
                (_, true) => Epsilon::Labels(*labels),
                (Some(e), false) => Epsilon::Gradient(e.view()),
                (None, false) => {
                    return Err(NnError::Input(format!(
                        "layer {} returned no input gradient during backprop",
                        i + 1
                    )));
                }
            };
            let mut grads = dl4rs_array::AsViewMut::view_mut(&mut self.grads).slice_axis(
                0,
                self.offsets[i],
                self.offsets[i + 1],
                1,
            )?;
            let next = self.layers[i]
                .backprop_gradient(&input, &output, eps, &params, &mut grads, &ctx, mgr)?;
            if let Some(g) = &next {
                self.validate("Backprop", mgr, ArrayType::ActivationGrad, i, g)?;
            }
            epsilon = next;
        }
        drop(epsilon);
        drop(grad_scopes);
        for layer in &mut self.layers {
            layer.clear();
        }
        self.acts.clear();
        Ok(score)
    }

    /// A cycle of the layer working memory for one layer call (nothing with workspaces off).
    fn working_scope(&self, enabled: bool) -> Result<Option<WorkspaceScope>, NnError> {
        if enabled {
            Ok(Some(self.ws.scope(&self.ws.working)?))
        } else {
            Ok(None)
        }
    }

    fn ctx(&self, training: bool, index: usize) -> StepContext {
        StepContext {
            training,
            iteration: self.iteration,
            seed: self.conf.seed,
            index,
            need_input_gradient: true,
        }
    }

    fn regularization_score(&self) -> Result<f64, NnError> {
        let r = self.conf.regularization;
        if r.l1 == 0.0 && r.l2 == 0.0 {
            return Ok(0.0);
        }
        let p = self.params.read()?;
        let p = p.as_slice().unwrap_or_default();
        let (mut l1, mut l2) = (0.0, 0.0);
        for seg in self.segments.iter().filter(|s| s.regularize) {
            for &w in &p[seg.range.clone()] {
                let w = w.to_f64();
                l1 += w.abs();
                l2 += w * w;
            }
        }
        Ok(r.l1 * l1 + 0.5 * r.l2 * l2)
    }

    fn apply_updater(&mut self) -> Result<(), NnError> {
        let mut pw = self.params.write()?;
        let mut gw = self.grads.write()?;
        let mut sw = self.updater_state.write()?;
        updater::apply(
            &self.conf.updater,
            &self.conf.regularization,
            pw.as_slice_mut().unwrap_or_default(),
            gw.as_slice_mut().unwrap_or_default(),
            sw.as_slice_mut().unwrap_or_default(),
            &self.segments,
            self.iteration,
        );
        Ok(())
    }

    /// Computes the gradient and score of a batch without updating (for gradient checks).
    pub fn compute_gradient_and_score(
        &mut self,
        features: &impl AsView<T>,
        labels: &impl AsView<T>,
    ) -> Result<f64, NnError> {
        self.check_training()?;
        let enabled = self.conf.training_workspace_mode == WorkspaceMode::Enabled;
        let _all = if enabled {
            Some(self.ws.scope(&self.ws.all_act)?)
        } else {
            None
        };
        let score = self.gradient_and_score(&features.view(), &labels.view(), enabled)?;
        self.score = score;
        Ok(score)
    }

    /// The network's output for `input` (`[batch, n_in]`), detached from every workspace.
    /// `train` selects training behaviour (dropout on, batch statistics).
    pub fn output(&mut self, input: &impl AsView<T>, train: bool) -> Result<NdArray<T>, NnError> {
        self.output_impl(&input.view(), train, false)
    }

    /// The output placed in the caller's open workspace `workspace` (DL4J's
    /// `output(input, train, outputWorkspace)`): nothing is allocated on the heap in steady
    /// state. Closing `workspace` is the caller's business.
    pub fn output_in(
        &mut self,
        input: &impl AsView<T>,
        train: bool,
        workspace: &Workspace,
    ) -> Result<NdArray<T>, NnError> {
        if self.conf.inference_workspace_mode == WorkspaceMode::None {
            return Err(NnError::config(
                "output into a workspace needs inference_workspace_mode Enabled (it is None)",
            ));
        }
        if !workspace.is_scope_active() {
            return Err(dl4rs_memory::WorkspaceError::NotOpen {
                workspace: workspace.id().to_string(),
                open: dl4rs_memory::open_workspaces(),
            }
            .into());
        }
        let cached = matches!(&self.ws.infer_user, Some((id, _)) if id == workspace.id());
        if !cached {
            let mut mgr = self.ws.infer_last.clone();
            mgr.set_workspace(ArrayType::Activations, workspace.id(), workspace.config()?);
            self.ws.infer_user = Some((workspace.id().to_string(), mgr));
        }
        self.output_impl(&input.view(), train, true)
    }

    fn output_impl(
        &mut self,
        x: &ArrayView<'_, T>,
        train: bool,
        into_user_workspace: bool,
    ) -> Result<NdArray<T>, NnError> {
        self.check_input(x)?;
        let enabled = self.conf.inference_workspace_mode == WorkspaceMode::Enabled;
        let n = self.layers.len();
        let mut scopes: [Option<WorkspaceScope>; 2] = [None, None];
        let mut current: Option<NdArray<T>> = None;
        for i in 0..n {
            let last = i + 1 == n;
            let mgr = match (enabled, last, into_user_workspace) {
                (false, _, _) => &self.ws.none,
                (true, true, true) => match &self.ws.infer_user {
                    Some((_, m)) => m,
                    None => &self.ws.infer_last,
                },
                (true, true, false) => &self.ws.infer_last,
                (true, false, _) => {
                    let k = i % 2;
                    scopes[k] = None;
                    scopes[k] = Some(self.ws.scope(&self.ws.act[k])?);
                    &self.ws.infer[k]
                }
            };
            let _working = self.working_scope(enabled)?;
            let ctx = self.ctx(train, i);
            let params =
                self.params
                    .view()
                    .slice_axis(0, self.offsets[i], self.offsets[i + 1], 1)?;
            let out = {
                let input = match &current {
                    Some(a) => a.view(),
                    None => *x,
                };
                self.layers[i].activate(&input, &params, &ctx, mgr)?
            };
            self.validate(
                "Output of layer (inference)",
                mgr,
                ArrayType::Activations,
                i,
                &out,
            )?;
            current = Some(out);
        }
        for layer in &mut self.layers {
            layer.clear();
        }
        let out = current.ok_or_else(|| NnError::config("the network has no layers"))?;
        drop(scopes);
        Ok(out)
    }

    /// Every layer's activations (input first), each detached.
    pub fn feed_forward(
        &mut self,
        input: &impl AsView<T>,
        train: bool,
    ) -> Result<Vec<NdArray<T>>, NnError> {
        let x = input.view();
        self.check_input(&x)?;
        let enabled = self.conf.inference_workspace_mode == WorkspaceMode::Enabled;
        let mut all = vec![x.detach()?];
        for i in 0..self.layers.len() {
            let mgr = if enabled {
                &self.ws.detached
            } else {
                &self.ws.none
            };
            let _working = self.working_scope(enabled)?;
            let ctx = self.ctx(train, i);
            let params =
                self.params
                    .view()
                    .slice_axis(0, self.offsets[i], self.offsets[i + 1], 1)?;
            let out = self.layers[i].activate(&all[i].view(), &params, &ctx, mgr)?;
            self.validate(
                "Feed forward to layer (inference)",
                mgr,
                ArrayType::Activations,
                i,
                &out,
            )?;
            all.push(out);
        }
        for layer in &mut self.layers {
            layer.clear();
        }
        Ok(all)
    }

    /// The loss (plus regularization) of a batch, in inference mode.
    pub fn score_arrays(
        &mut self,
        features: &impl AsView<T>,
        labels: &impl AsView<T>,
    ) -> Result<f64, NnError> {
        self.check_training()?;
        let loss = self
            .layers
            .last()
            .and_then(|l| l.loss())
            .ok_or_else(|| NnError::config("no loss"))?;
        let enabled = self.conf.inference_workspace_mode == WorkspaceMode::Enabled;
        let _scratch = if enabled {
            Some(self.ws.scope(&self.ws.all_act)?)
        } else {
            None
        };
        let out = if enabled {
            let ws = find_workspace_for_current_thread(&self.ws.all_act.0)?;
            self.output_in(features, false, &ws)?
        } else {
            self.output(features, false)?
        };
        let labels = labels.view();
        if labels.shape() != out.shape() {
            return Err(NnError::Input(format!(
                "labels: expected shape {:?}, found {:?}",
                out.shape(),
                labels.shape()
            )));
        }
        Ok(loss.score(&labels, &out.view())?.to_f64() + self.regularization_score()?)
    }

    /// A table of the layers: type, sizes, parameters and activation bytes per example.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let line = "=".repeat(86);
        s.push_str(&line);
        s.push('\n');
        s.push_str(&format!(
            "{:<4} {:<28} {:<20} {:>8} {:>8} {:>10} {:>8}\n",
            "#", "layer (name)", "type", "n_in", "n_out", "params", "act B/ex"
        ));
        s.push_str(&"-".repeat(86));
        s.push('\n');
        for (i, l) in self.layers.iter().enumerate() {
            s.push_str(&format!(
                "{:<4} {:<28} {:<20} {:>8} {:>8} {:>10} {:>8}\n",
                i,
                l.name().unwrap_or("-"),
                l.kind(),
                l.n_in(),
                l.n_out(),
                l.num_params(),
                l.n_out() * size_of::<T>()
            ));
        }
        s.push_str(&"-".repeat(86));
        s.push('\n');
        s.push_str(&format!(
            "total parameters: {}   updater: {:?}   workspaces: training {:?}, inference {:?}\n",
            self.num_params(),
            self.conf.updater,
            self.conf.training_workspace_mode,
            self.conf.inference_workspace_mode
        ));
        s.push_str(&line);
        s.push('\n');
        s
    }

    /// Ids of this network's workspaces (all-layers activations, working memory, the two
    /// ping-pong workspaces).
    pub fn workspace_ids(&self) -> [&str; 4] {
        [
            &self.ws.all_act.0,
            &self.ws.working.0,
            &self.ws.act[0].0,
            &self.ws.act[1].0,
        ]
    }
}
