//! `MultiLayerNetwork`: a stack of layers (with the preprocessors `set_input_type` inserted)
//! run as a chain on the shared engine (`crate::model`), so its workspaces follow DL4J's plan:
//! training keeps every activation in the all-layers workspace for one iteration, gradients
//! ping-pong between two pool workspaces, inference holds about two activations.

mod rnn;

use dl4rs_array::{ArrayView, AsView, DataType, NdArray};
use dl4rs_data::{AsyncDataSetIterator, DataSet, DataSetIterator};
use dl4rs_eval::{Evaluation, IEvaluation, RegressionEvaluation, Roc, RocMultiClass};
use dl4rs_memory::Workspace;

use crate::conf::{GlobalConf, MultiLayerConfiguration, VertexConf};
use crate::error::NnError;
use crate::input_type::InputType;
use crate::layers::Layer;
use crate::listeners::TrainingListener;
use crate::model::engine::{Arrays, Batch, Engine, Masks, NodeSpec, Op, PREPROCESSOR_SUFFIX};
use crate::model::workspaces::Src;
use crate::model::{self, Core, HasCore, Model, ModelKind, ParamEntry};

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
    core: Core<T>,
    /// Engine vertex of each layer.
    layer_nodes: Vec<usize>,
}

impl<T: DataType> MultiLayerNetwork<T> {
    /// Builds and initializes a network (DL4J `new MultiLayerNetwork(conf); init()`).
    pub fn new(conf: MultiLayerConfiguration) -> Result<Self, NnError> {
        let mut net = Self::build(conf)?;
        net.engine_mut().init_from_seed()?;
        Ok(net)
    }

    /// Builds a network with the given parameters (a `[num_params]` array, or any shape with
    /// that many values) instead of random ones (DL4J `init(params, true)`): no weight
    /// initialization is run. Updater state and counters start at zero.
    pub fn with_params(
        conf: MultiLayerConfiguration,
        params: &impl AsView<T>,
    ) -> Result<Self, NnError> {
        let mut net = Self::build(conf)?;
        net.set_params(params)?;
        Ok(net)
    }

    /// The network's structure, parameters zero.
    fn build(conf: MultiLayerConfiguration) -> Result<Self, NnError> {
        let conf = conf.validated()?;
        let plan = conf.plan()?;
        let mut nodes = Vec::with_capacity(plan.len() * 2);
        let mut layer_nodes = Vec::with_capacity(plan.len());
        for (i, (layer, p)) in conf.layers.iter().zip(&plan).enumerate() {
            let name = layer.name().map_or_else(|| i.to_string(), str::to_string);
            let input = match nodes.len() {
                0 => Src::Input(0),
                n => Src::Node(n - 1),
            };
            let input = match p.preprocessor {
                Some((pre, _)) => {
                    nodes.push(NodeSpec {
                        name: format!("{name}{PREPROCESSOR_SUFFIX}"),
                        param_prefix: format!("{i}{PREPROCESSOR_SUFFIX}"),
                        inputs: vec![input],
                        op: Op::Vertex(VertexConf::preprocessor(pre)),
                        layer_index: i,
                        out_type: p.input_type,
                    });
                    Src::Node(nodes.len() - 1)
                }
                None => input,
            };
            layer_nodes.push(nodes.len());
            nodes.push(NodeSpec {
                name,
                param_prefix: i.to_string(),
                inputs: vec![input],
                op: Op::Layer(layer.build::<T>(&p.input_type)?),
                layer_index: i,
                out_type: p.output_type,
            });
        }
        let last = nodes.len() - 1;
        let engine = Engine::new(
            conf.global.clone(),
            nodes,
            vec!["input".to_string()],
            vec![conf.network_input_type()],
            vec![last],
        )?;
        Ok(MultiLayerNetwork {
            conf,
            core: Core::new(engine),
            layer_nodes,
        })
    }

    fn engine(&self) -> &Engine<T> {
        &self.core.engine
    }

    fn engine_mut(&mut self) -> &mut Engine<T> {
        &mut self.core.engine
    }

    /// Re-initializes parameters from the seed; clears gradients, updater state, counters.
    pub fn init(&mut self) -> Result<(), NnError> {
        let seeds: Vec<usize> = (0..self.engine().ops.len())
            .map(|v| self.layer_of_node(v))
            .collect();
        self.engine_mut().reinit(&seeds)
    }

    fn layer_of_node(&self, v: usize) -> usize {
        self.layer_nodes.iter().position(|&n| n >= v).unwrap_or(0)
    }

    /// The configuration.
    pub fn conf(&self) -> &MultiLayerConfiguration {
        &self.conf
    }

    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        self.layer_nodes.len()
    }

    /// Layer `index`.
    pub fn layer(&self, index: usize) -> Option<&dyn Layer<T>> {
        self.layer_nodes
            .get(index)
            .and_then(|&v| self.engine().layer(v))
    }

    /// Replaces layer `index` with a custom implementation of the same shape (input and
    /// output types and parameter count must match the configured layer).
    pub fn set_layer(&mut self, index: usize, layer: Box<dyn Layer<T>>) -> Result<(), NnError> {
        let count = self.num_layers();
        let v = *self.layer_nodes.get(index).ok_or_else(|| {
            NnError::Input(format!(
                "set_layer: no layer {index} (the network has {count})"
            ))
        })?;
        let old = self
            .engine()
            .layer(v)
            .ok_or_else(|| NnError::Input("set_layer: not a layer".into()))?
            .info();
        let new = layer.info();
        if (old.input_type, old.output_type, old.num_params())
            != (new.input_type, new.output_type, new.num_params())
        {
            return Err(NnError::Input(format!(
                "set_layer: layer {index} reads {}, outputs {} and has {} parameters; the \
                 replacement reads {}, outputs {} and has {}",
                old.input_type,
                old.output_type,
                old.num_params(),
                new.input_type,
                new.output_type,
                new.num_params()
            )));
        }
        if let Some(slot) = self.engine_mut().layer_mut(v) {
            *slot = layer;
        }
        Ok(())
    }

    /// The parameter slice of layer `index` (a flat view).
    pub fn layer_params(&self, index: usize) -> Result<ArrayView<'_, T>, NnError> {
        let v = *self
            .layer_nodes
            .get(index)
            .ok_or_else(|| NnError::Input(format!("no layer {index}")))?;
        let r = &self.engine().meta[v].params;
        Ok(self
            .engine()
            .store
            .params
            .view()
            .slice_axis(0, r.start, r.end, 1)?)
    }

    /// Adds a training listener.
    pub fn add_listener(&mut self, listener: Box<dyn TrainingListener<T>>) {
        self.core.listeners.push(listener);
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.engine().num_params()
    }

    /// The flat parameter array (layer by layer; within a layer in `ParamSpec` order).
    pub fn params(&self) -> &NdArray<T> {
        &self.engine().store.params
    }

    /// The flat gradient array of the last iteration.
    pub fn gradients(&self) -> &NdArray<T> {
        &self.engine().store.grads
    }

    /// The updater state (flat).
    pub fn updater_state(&self) -> &NdArray<T> {
        &self.engine().store.updater_state
    }

    /// Replaces the parameters (a `[num_params]` array, or any shape with that many values).
    pub fn set_params(&mut self, params: &impl AsView<T>) -> Result<(), NnError> {
        self.engine_mut().set_flat(&params.view(), true)
    }

    /// Replaces the updater state.
    pub fn set_updater_state(&mut self, state: &impl AsView<T>) -> Result<(), NnError> {
        self.engine_mut().set_flat(&state.view(), false)
    }

    /// Iterations done.
    pub fn iteration_count(&self) -> u64 {
        self.engine().iteration
    }

    /// Epochs done.
    pub fn epoch_count(&self) -> u64 {
        self.engine().epoch
    }

    /// Marks the end of an epoch (for listeners and `fit_iter`).
    pub fn increment_epoch(&mut self) {
        self.engine_mut().epoch += 1;
    }

    /// The score (loss) of the last training iteration.
    pub fn last_score(&self) -> f64 {
        self.engine().score
    }

    /// One training iteration on a data set (one batch), as DL4J's `fit(DataSet)`; label
    /// masks weight the loss per example or per output.
    pub fn fit(&mut self, data: &DataSet<T>) -> Result<(), NnError> {
        model::fit_batch(self, &model::data_set_batch(data))
    }

    /// One training iteration on a batch: forward, loss, backprop, updater step.
    pub fn fit_arrays(
        &mut self,
        features: &impl AsView<T>,
        labels: &impl AsView<T>,
    ) -> Result<(), NnError> {
        model::fit_batch(self, &arrays_batch(features.view(), labels.view()))
    }

    /// Trains for `epochs` passes over `iterator` (DL4J's `fit(iterator, epochs)`). Each batch
    /// is fetched inside the iteration's workspace cycle, so it lives there and costs no heap
    /// allocation; the iterator is reset after each epoch.
    pub fn fit_iter(
        &mut self,
        iterator: &mut dyn DataSetIterator<T>,
        epochs: usize,
    ) -> Result<(), NnError> {
        model::fit_iter(self, iterator, epochs)
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

    /// Runs the network over `iterator` once and updates every evaluation with each batch
    /// (DL4J's `doEvaluation`). Batches and outputs live in the network's output workspace:
    /// in steady state no heap allocation per batch.
    pub fn do_evaluation(
        &mut self,
        iterator: &mut dyn DataSetIterator<T>,
        evaluations: &mut [&mut dyn IEvaluation<T>],
    ) -> Result<(), NnError> {
        model::do_evaluation(&mut self.core, iterator, evaluations)
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

    /// The loss of a data set in inference mode (DL4J `score(DataSet)`).
    pub fn score(&mut self, data: &DataSet<T>) -> Result<f64, NnError> {
        self.engine_mut().score_batch(&model::data_set_batch(data))
    }

    /// The loss (plus regularization) of a batch, in inference mode.
    pub fn score_arrays(
        &mut self,
        features: &impl AsView<T>,
        labels: &impl AsView<T>,
    ) -> Result<f64, NnError> {
        self.engine_mut()
            .score_batch(&arrays_batch(features.view(), labels.view()))
    }

    /// Computes the gradient and score of a batch without updating (for gradient checks).
    pub fn compute_gradient_and_score(
        &mut self,
        features: &impl AsView<T>,
        labels: &impl AsView<T>,
    ) -> Result<f64, NnError> {
        self.engine_mut()
            .compute_gradient_and_score(&arrays_batch(features.view(), labels.view()))
    }

    /// [`MultiLayerNetwork::compute_gradient_and_score`] on a data set (with its masks).
    pub fn compute_gradient_and_score_data_set(
        &mut self,
        data: &DataSet<T>,
    ) -> Result<f64, NnError> {
        self.engine_mut()
            .compute_gradient_and_score(&model::data_set_batch(data))
    }

    /// The network's output for `input`, detached from every workspace. `train` selects
    /// training behaviour (dropout on, batch statistics).
    pub fn output(&mut self, input: &impl AsView<T>, train: bool) -> Result<NdArray<T>, NnError> {
        self.output_one(input.view(), None, train, false)
    }

    /// [`MultiLayerNetwork::output`] with a feature mask.
    pub fn output_masked(
        &mut self,
        input: &impl AsView<T>,
        mask: Option<&ArrayView<'_, T>>,
        train: bool,
    ) -> Result<NdArray<T>, NnError> {
        self.output_one(input.view(), mask.copied(), train, false)
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
        self.engine_mut().set_user_workspace(workspace)?;
        self.output_one(input.view(), None, train, true)
    }

    /// [`MultiLayerNetwork::output_in`] with a feature mask (variable-length sequences).
    pub fn output_masked_in(
        &mut self,
        input: &impl AsView<T>,
        mask: Option<&ArrayView<'_, T>>,
        train: bool,
        workspace: &Workspace,
    ) -> Result<NdArray<T>, NnError> {
        self.engine_mut().set_user_workspace(workspace)?;
        self.output_one(input.view(), mask.copied(), train, true)
    }

    fn output_one(
        &mut self,
        x: ArrayView<'_, T>,
        mask: Option<ArrayView<'_, T>>,
        train: bool,
        into_user: bool,
    ) -> Result<NdArray<T>, NnError> {
        let mut outs = std::mem::take(&mut self.core.out_buf);
        outs.clear();
        let result = self.core.engine.output_into(
            &Arrays::One(x),
            &Masks::One(mask),
            train,
            into_user,
            &mut outs,
        );
        let out = outs.pop();
        self.core.out_buf = outs;
        result?;
        out.ok_or_else(|| NnError::config("the network has no layers"))
    }

    /// Every layer's activations (input first), each detached.
    pub fn feed_forward(
        &mut self,
        input: &impl AsView<T>,
        train: bool,
    ) -> Result<Vec<NdArray<T>>, NnError> {
        let x = input.view();
        let mut acts = self.engine_mut().feed_forward(&Arrays::One(x), train)?;
        let mut all = Vec::with_capacity(self.layer_nodes.len() + 1);
        all.push(x.detach()?);
        for &v in &self.layer_nodes {
            if let Some(a) = acts[v].take() {
                all.push(a);
            }
        }
        Ok(all)
    }

    /// A table of the layers: type, input and output types, parameters.
    pub fn summary(&self) -> String {
        let mut rows = Vec::new();
        for (i, &v) in self.layer_nodes.iter().enumerate() {
            if let Some(pre) = v
                .checked_sub(1)
                .filter(|&p| self.engine().meta[p].name.ends_with(PREPROCESSOR_SUFFIX))
                && let Op::Vertex(c) = &self.engine().ops[pre]
            {
                rows.push(crate::summary::Row {
                    index: format!("{i}p"),
                    name: "-".into(),
                    kind: match c {
                        VertexConf::Preprocessor { preprocessor } => preprocessor.kind(),
                        other => other.kind(),
                    }
                    .to_string(),
                    inputs: String::new(),
                    output: self.engine().meta[pre].out_type.to_string(),
                    params: 0,
                });
            }
            if let Some(l) = self.engine().layer(v) {
                let info = l.info();
                rows.push(crate::summary::Row {
                    index: i.to_string(),
                    name: info.name.clone().unwrap_or_else(|| "-".into()),
                    kind: info.kind.to_string(),
                    inputs: info.input_type.to_string(),
                    output: info.output_type.to_string(),
                    params: info.num_params(),
                });
            }
        }
        crate::summary::table(
            "MultiLayerNetwork",
            &rows,
            self.num_params(),
            &self.conf.global,
        )
    }

    /// Ids of this network's workspaces (all-layers activations, working memory, then the
    /// activation pool: two for a chain).
    pub fn workspace_ids(&self) -> Vec<String> {
        self.engine()
            .ws
            .ids()
            .into_iter()
            .map(str::to_string)
            .collect()
    }
}

fn arrays_batch<'a, T: DataType>(x: ArrayView<'a, T>, y: ArrayView<'a, T>) -> Batch<'a, T> {
    Batch {
        features: Arrays::One(x),
        features_masks: Masks::None,
        labels: Arrays::One(y),
        labels_masks: Masks::None,
    }
}

impl<T: DataType> HasCore<T> for MultiLayerNetwork<T> {
    fn core(&self) -> &Core<T> {
        &self.core
    }
    fn core_mut(&mut self) -> &mut Core<T> {
        &mut self.core
    }
}

macro_rules! impl_model_common {
    () => {
        fn global_conf(&self) -> &GlobalConf {
            &self.core.engine.global
        }
        fn num_params(&self) -> usize {
            self.core.engine.num_params()
        }
        fn params(&self) -> &NdArray<T> {
            &self.core.engine.store.params
        }
        fn set_params(&mut self, params: &ArrayView<'_, T>) -> Result<(), NnError> {
            self.core.engine.set_flat(params, true)
        }
        fn gradients(&self) -> &NdArray<T> {
            &self.core.engine.store.grads
        }
        fn updater_state(&self) -> &NdArray<T> {
            &self.core.engine.store.updater_state
        }
        fn gradients_mut(&mut self) -> &mut NdArray<T> {
            &mut self.core.engine.store.grads
        }
        fn compute_gradient_multi(
            &mut self,
            data: &dl4rs_data::MultiDataSet<T>,
        ) -> Result<f64, NnError> {
            self.core
                .engine
                .compute_gradient_and_score(&crate::model::multi_batch(data))
        }
        fn compute_gradient_data_set(&mut self, data: &DataSet<T>) -> Result<f64, NnError> {
            self.core
                .engine
                .compute_gradient_and_score(&crate::model::data_set_batch(data))
        }
        fn apply_gradients(&mut self, batch_size: usize) -> Result<(), NnError> {
            crate::model::apply_gradients(self, batch_size)
        }
        fn apply_gradients_part(
            &mut self,
            batch_size: usize,
            part: std::ops::Range<usize>,
        ) -> Result<(), NnError> {
            crate::model::apply_gradients_part(self, batch_size, part)
        }
        fn apply_averaged_gradients_part(
            &mut self,
            part: std::ops::Range<usize>,
            contributors: usize,
            own: Option<usize>,
            others: &[T],
            scale: T,
        ) -> Result<(), NnError> {
            self.core
                .engine
                .apply_averaged_update_part(part, (contributors, own, others, scale))
        }
        fn set_updater_state(&mut self, state: &ArrayView<'_, T>) -> Result<(), NnError> {
            self.core.engine.set_flat(state, false)
        }
        fn param_table(&self) -> &[ParamEntry] {
            self.core.engine.store.entries()
        }
        fn layer_states(&self) -> Vec<(String, Vec<T>)> {
            self.core.engine.layer_states()
        }
        fn set_layer_state(&mut self, name: &str, values: &[T]) -> Result<(), NnError> {
            self.core.engine.set_layer_state(name, values)
        }
        fn iteration_count(&self) -> u64 {
            self.core.engine.iteration
        }
        fn epoch_count(&self) -> u64 {
            self.core.engine.epoch
        }
        fn set_counters(&mut self, iteration: u64, epoch: u64) {
            self.core.engine.iteration = iteration;
            self.core.engine.epoch = epoch;
        }
        fn last_score(&self) -> f64 {
            self.core.engine.score
        }
        fn fit_data_set(&mut self, data: &DataSet<T>) -> Result<(), NnError> {
            crate::model::fit_batch(self, &crate::model::data_set_batch(data))
        }
        fn fit_multi_data_set(
            &mut self,
            data: &dl4rs_data::MultiDataSet<T>,
        ) -> Result<(), NnError> {
            crate::model::fit_batch(self, &crate::model::multi_batch(data))
        }
        fn fit_iter(
            &mut self,
            iterator: &mut dyn DataSetIterator<T>,
            epochs: usize,
        ) -> Result<(), NnError> {
            crate::model::fit_iter(self, iterator, epochs)
        }
        fn do_evaluation(
            &mut self,
            iterator: &mut dyn DataSetIterator<T>,
            evaluations: &mut [&mut dyn IEvaluation<T>],
        ) -> Result<(), NnError> {
            crate::model::do_evaluation(&mut self.core, iterator, evaluations)
        }
        fn score_data_set(&mut self, data: &DataSet<T>) -> Result<f64, NnError> {
            self.core
                .engine
                .score_batch(&crate::model::data_set_batch(data))
        }
        fn output_arrays(
            &mut self,
            inputs: &[ArrayView<'_, T>],
            train: bool,
        ) -> Result<Vec<NdArray<T>>, NnError> {
            let mut out = Vec::with_capacity(self.core.engine.outputs.len());
            self.core.engine.output_into(
                &crate::model::engine::Arrays::Views(inputs),
                &crate::model::engine::Masks::None,
                train,
                false,
                &mut out,
            )?;
            Ok(out)
        }
        fn output_arrays_masked(
            &mut self,
            inputs: &[ArrayView<'_, T>],
            masks: &[Option<NdArray<T>>],
            train: bool,
        ) -> Result<Vec<NdArray<T>>, NnError> {
            if masks.len() != inputs.len() {
                return Err(NnError::Input(format!(
                    "output: {} inputs but {} masks; expected one mask (or None) per input",
                    inputs.len(),
                    masks.len()
                )));
            }
            let mut out = Vec::with_capacity(self.core.engine.outputs.len());
            self.core.engine.output_into(
                &crate::model::engine::Arrays::Views(inputs),
                &crate::model::engine::Masks::Owned(masks),
                train,
                false,
                &mut out,
            )?;
            Ok(out)
        }
        fn add_listener(&mut self, listener: Box<dyn TrainingListener<T>>) {
            self.core.listeners.push(listener);
        }
        fn take_listeners(&mut self) -> Vec<Box<dyn TrainingListener<T>>> {
            std::mem::take(&mut self.core.listeners)
        }
        fn params_mut(&mut self) -> &mut NdArray<T> {
            &mut self.core.engine.store.params
        }
        fn updater_state_mut(&mut self) -> &mut NdArray<T> {
            &mut self.core.engine.store.updater_state
        }
        fn increment_epoch(&mut self) {
            self.core.engine.epoch += 1;
        }
        fn input_types(&self) -> Vec<(String, InputType)> {
            let e = &self.core.engine;
            e.input_names
                .iter()
                .cloned()
                .zip(e.input_types.iter().copied())
                .collect()
        }
        fn output_types(&self) -> Vec<(String, InputType)> {
            let e = &self.core.engine;
            e.outputs
                .iter()
                .map(|&v| (e.meta[v].name.clone(), e.meta[v].out_type))
                .collect()
        }
        fn workspace_ids(&self) -> Vec<String> {
            self.core
                .engine
                .ws
                .ids()
                .into_iter()
                .map(str::to_string)
                .collect()
        }
        fn output_loss(&self, k: usize) -> Option<crate::loss::LossFunction> {
            self.core.engine.output_loss(k)
        }
    };
}
pub(crate) use impl_model_common;

impl<T: DataType> Model<T> for MultiLayerNetwork<T> {
    impl_model_common!();

    fn kind(&self) -> ModelKind {
        ModelKind::MultiLayerNetwork
    }
    fn conf_json(&self) -> Result<String, NnError> {
        self.conf.to_json()
    }
    fn summary(&self) -> String {
        MultiLayerNetwork::summary(self)
    }
}
