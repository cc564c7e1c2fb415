//! `ComputationGraph`: a DAG of layers and vertices with several inputs and outputs, run on
//! the shared engine (`crate::model`). Training keeps the activations backprop needs in the
//! all-layers workspace for one iteration and frees each activation gradient as soon as every
//! consumer has taken it; inference pools activation workspaces by liveness, so memory follows
//! the widest point of the graph, not its depth (DL4J's ComputationGraph, reference §2.6).

use dl4rs_array::{ArrayView, AsView, DataType, NdArray};
use dl4rs_data::{
    AsyncMultiDataSetIterator, DataSet, DataSetIterator, MultiDataSet, MultiDataSetIterator,
};
use dl4rs_eval::IEvaluation;
use dl4rs_memory::Workspace;

use crate::conf::{ComputationGraphConfiguration, GlobalConf, Source, VertexConf};
use crate::error::NnError;
use crate::input_type::InputType;
use crate::layers::Layer;
use crate::listeners::TrainingListener;
use crate::model::engine::{Arrays, Batch, Engine, Masks, NodeSpec, Op, PREPROCESSOR_SUFFIX};
use crate::model::workspaces::Src;
use crate::model::{self, Core, HasCore, Model, ModelKind, ParamEntry};
use crate::multi_layer::impl_model_common;

/// A network of named layers and vertices (DL4J's `ComputationGraph`).
///
/// ```
/// use dl4rs_nn::*;
/// use dl4rs_array::{AsView, NdArray};
///
/// // A residual block: out = dense(x) + x.
/// let conf = NeuralNetConfiguration::builder()
///     .updater(Updater::sgd(0.1))
///     .graph_builder()
///     .add_inputs(&["x"])
///     .set_input_types(&[InputType::feed_forward(4)])
///     .add_layer("d", LayerConf::dense(4).activation(Activation::Tanh), &["x"])
///     .add_vertex("res", VertexConf::element_wise(ElementWiseOp::Add), &["d", "x"])
///     .add_layer("out", LayerConf::output(LossFunction::Mse, 1), &["res"])
///     .set_outputs(&["out"])
///     .build()?;
/// let mut graph = ComputationGraph::<f32>::new(conf)?;
/// let x = NdArray::from_slice(&[2, 4], &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])?;
/// let y = NdArray::from_slice(&[2, 1], &[1.0, -1.0])?;
/// let before = graph.score_arrays(&[x.view()], &[y.view()])?;
/// for _ in 0..50 {
///     graph.fit_arrays(&[x.view()], &[y.view()])?;
/// }
/// assert!(graph.score_arrays(&[x.view()], &[y.view()])? < before);
/// let out = graph.output(&[x.view()], false)?; // one array per output, detached
/// assert_eq!(out[0].shape(), &[2, 1]);
/// # Ok::<(), NnError>(())
/// ```
pub struct ComputationGraph<T: DataType = f32> {
    conf: ComputationGraphConfiguration,
    core: Core<T>,
    /// Engine vertex of each configured vertex (by insertion index).
    node_of: Vec<usize>,
}

impl<T: DataType> ComputationGraph<T> {
    /// Builds and initializes a graph (DL4J `new ComputationGraph(conf); init()`).
    pub fn new(conf: ComputationGraphConfiguration) -> Result<Self, NnError> {
        let mut graph = Self::build(conf)?;
        graph.core.engine.init_from_seed()?;
        Ok(graph)
    }

    /// Builds a graph with the given parameters (a `[num_params]` array, or any shape with
    /// that many values) instead of random ones (DL4J `init(params, true)`): no weight
    /// initialization is run. Updater state and counters start at zero.
    pub fn with_params(
        conf: ComputationGraphConfiguration,
        params: &impl AsView<T>,
    ) -> Result<Self, NnError> {
        let mut graph = Self::build(conf)?;
        graph.set_params(params)?;
        Ok(graph)
    }

    /// The graph's structure, parameters zero.
    fn build(conf: ComputationGraphConfiguration) -> Result<Self, NnError> {
        let conf = conf.validated()?;
        let plan = conf.plan()?;
        let n = conf.vertices.len();
        let mut layer_ordinal = vec![0; n];
        let mut count = 0;
        for (v, vc) in conf.vertices.iter().enumerate() {
            layer_ordinal[v] = count;
            if vc.vertex.layer().is_some() {
                count += 1;
            }
        }
        let mut node_of = vec![usize::MAX; n];
        let mut nodes: Vec<NodeSpec<T>> = Vec::with_capacity(2 * n);
        for &v in &plan.order {
            let vc = &conf.vertices[v];
            let inputs: Vec<Src> = plan.sources[v]
                .iter()
                .map(|s| match *s {
                    Source::Input(k) => Src::Input(k),
                    Source::Vertex(u) => Src::Node(node_of[u]),
                })
                .collect();
            match &vc.vertex {
                VertexConf::Layer {
                    layer,
                    preprocessor,
                } => {
                    let mut input = inputs[0];
                    let mut t = plan.in_types[v][0];
                    if let Some(p) = preprocessor {
                        t = p.output_type(&t).map_err(NnError::Config)?;
                        nodes.push(NodeSpec {
                            name: format!("{}{PREPROCESSOR_SUFFIX}", vc.name),
                            param_prefix: format!("{}{PREPROCESSOR_SUFFIX}", vc.name),
                            inputs: vec![input],
                            op: Op::Vertex(VertexConf::preprocessor(*p)),
                            layer_index: layer_ordinal[v],
                            out_type: t,
                        });
                        input = Src::Node(nodes.len() - 1);
                    }
                    node_of[v] = nodes.len();
                    nodes.push(NodeSpec {
                        name: vc.name.clone(),
                        param_prefix: vc.name.clone(),
                        inputs: vec![input],
                        op: Op::Layer(layer.build::<T>(&t)?),
                        layer_index: layer_ordinal[v],
                        out_type: plan.out_types[v],
                    });
                }
                other => {
                    node_of[v] = nodes.len();
                    nodes.push(NodeSpec {
                        name: vc.name.clone(),
                        param_prefix: vc.name.clone(),
                        inputs,
                        op: Op::Vertex(other.clone()),
                        layer_index: layer_ordinal[v],
                        out_type: plan.out_types[v],
                    });
                }
            }
        }
        let outputs = plan.outputs.iter().map(|&v| node_of[v]).collect();
        let engine = Engine::new(
            conf.global.clone(),
            nodes,
            conf.inputs.clone(),
            conf.input_types.clone(),
            outputs,
        )?;
        Ok(ComputationGraph {
            conf,
            core: Core::new(engine),
            node_of,
        })
    }

    /// The configuration.
    pub fn conf(&self) -> &ComputationGraphConfiguration {
        &self.conf
    }

    /// The layer of vertex `name`, if it is a layer vertex.
    pub fn layer(&self, name: &str) -> Option<&dyn Layer<T>> {
        let v = self.conf.vertices.iter().position(|vc| vc.name == name)?;
        self.core.engine.layer(self.node_of[v])
    }

    /// The parameters of vertex `name` (a flat view; empty for parameterless vertices).
    pub fn vertex_params(&self, name: &str) -> Result<ArrayView<'_, T>, NnError> {
        let v = self
            .conf
            .vertices
            .iter()
            .position(|vc| vc.name == name)
            .ok_or_else(|| NnError::Input(format!("no vertex named {name:?}")))?;
        let r = &self.core.engine.meta[self.node_of[v]].params;
        Ok(self
            .core
            .engine
            .store
            .params
            .view()
            .slice_axis(0, r.start, r.end, 1)?)
    }

    /// Number of graph inputs.
    pub fn num_inputs(&self) -> usize {
        self.conf.inputs.len()
    }

    /// Number of graph outputs.
    pub fn num_outputs(&self) -> usize {
        self.conf.outputs.len()
    }

    /// One training iteration on a multi data set (several inputs and outputs; the losses of
    /// the outputs are summed).
    pub fn fit(&mut self, data: &MultiDataSet<T>) -> Result<(), NnError> {
        model::fit_batch(self, &model::multi_batch(data))
    }

    /// One training iteration on a data set, for graphs with one input and one output.
    pub fn fit_data_set(&mut self, data: &DataSet<T>) -> Result<(), NnError> {
        model::fit_batch(self, &model::data_set_batch(data))
    }

    /// One training iteration on arrays: one feature array per input, one label array per
    /// output.
    pub fn fit_arrays(
        &mut self,
        features: &[ArrayView<'_, T>],
        labels: &[ArrayView<'_, T>],
    ) -> Result<(), NnError> {
        model::fit_batch(self, &views_batch(features, labels))
    }

    /// `epochs` passes over `iterator`, each batch fetched inside the iteration's workspace.
    pub fn fit_multi_iter(
        &mut self,
        iterator: &mut dyn MultiDataSetIterator<T>,
        epochs: usize,
    ) -> Result<(), NnError> {
        model::fit_multi_iter(self, iterator, epochs)
    }

    /// `epochs` passes over a data set iterator (one-input, one-output graphs).
    pub fn fit_iter(
        &mut self,
        iterator: &mut dyn DataSetIterator<T>,
        epochs: usize,
    ) -> Result<(), NnError> {
        model::fit_iter(self, iterator, epochs)
    }

    /// `epochs` passes over an owned `source`, prefetched on a background thread when it says
    /// so (DL4J's `fit(MultiDataSetIterator)` wraps it in an `AsyncMultiDataSetIterator` of 2).
    /// The prefetch thread is joined before this returns.
    pub fn fit_prefetched(
        &mut self,
        source: Box<dyn MultiDataSetIterator<T> + Send>,
        epochs: usize,
    ) -> Result<(), NnError> {
        let mut iterator = AsyncMultiDataSetIterator::wrap_if_supported(source, 2)?;
        self.fit_multi_iter(iterator.as_mut(), epochs)
    }

    /// The outputs for `inputs` (one array per graph input), each detached.
    pub fn output(
        &mut self,
        inputs: &[ArrayView<'_, T>],
        train: bool,
    ) -> Result<Vec<NdArray<T>>, NnError> {
        let mut out = Vec::with_capacity(self.num_outputs());
        self.core.engine.output_into(
            &Arrays::Views(inputs),
            &Masks::None,
            train,
            false,
            &mut out,
        )?;
        Ok(out)
    }

    /// The outputs placed in the caller's open `workspace` (DL4J's `output(train,
    /// outputWorkspace, inputs)`), pushed onto `outputs` (cleared first). Pass the same `Vec`
    /// every call: in steady state nothing is allocated on the heap.
    pub fn output_in(
        &mut self,
        inputs: &[ArrayView<'_, T>],
        train: bool,
        workspace: &Workspace,
        outputs: &mut Vec<NdArray<T>>,
    ) -> Result<(), NnError> {
        outputs.clear();
        self.core.engine.set_user_workspace(workspace)?;
        self.core
            .engine
            .output_into(&Arrays::Views(inputs), &Masks::None, train, true, outputs)
    }

    /// The outputs of a multi data set's features (with their masks), detached.
    pub fn output_multi(
        &mut self,
        data: &MultiDataSet<T>,
        train: bool,
    ) -> Result<Vec<NdArray<T>>, NnError> {
        let mut out = Vec::with_capacity(self.num_outputs());
        self.core.engine.output_into(
            &Arrays::Owned(&data.features),
            &Masks::Owned(&data.features_masks),
            train,
            false,
            &mut out,
        )?;
        Ok(out)
    }

    /// Every vertex's activations by name, detached (DL4J's `feedForward`).
    pub fn feed_forward(
        &mut self,
        inputs: &[ArrayView<'_, T>],
        train: bool,
    ) -> Result<Vec<(String, NdArray<T>)>, NnError> {
        let mut acts = self
            .core
            .engine
            .feed_forward(&Arrays::Views(inputs), train)?;
        let mut out = Vec::with_capacity(self.node_of.len());
        for (v, vc) in self.conf.vertices.iter().enumerate() {
            if let Some(a) = acts[self.node_of[v]].take() {
                out.push((vc.name.clone(), a));
            }
        }
        Ok(out)
    }

    /// The loss of a multi data set in inference mode (plus regularization).
    pub fn score(&mut self, data: &MultiDataSet<T>) -> Result<f64, NnError> {
        self.core.engine.score_batch(&model::multi_batch(data))
    }

    /// The loss of arrays in inference mode.
    pub fn score_arrays(
        &mut self,
        features: &[ArrayView<'_, T>],
        labels: &[ArrayView<'_, T>],
    ) -> Result<f64, NnError> {
        self.core.engine.score_batch(&views_batch(features, labels))
    }

    /// Gradient and score of a multi data set without updating (gradient checks).
    pub fn compute_gradient_and_score(&mut self, data: &MultiDataSet<T>) -> Result<f64, NnError> {
        self.core
            .engine
            .compute_gradient_and_score(&model::multi_batch(data))
    }

    /// Runs over `iterator` once, updating each `(output index, evaluation)` pair (DL4J's
    /// `doEvaluation` per output); allocation-free in steady state.
    pub fn do_evaluation_multi(
        &mut self,
        iterator: &mut dyn MultiDataSetIterator<T>,
        evaluations: &mut [(usize, &mut dyn IEvaluation<T>)],
    ) -> Result<(), NnError> {
        model::do_evaluation_multi(&mut self.core, iterator, evaluations)
    }

    /// Runs over a data set iterator once, updating each evaluation with output 0.
    pub fn do_evaluation(
        &mut self,
        iterator: &mut dyn DataSetIterator<T>,
        evaluations: &mut [&mut dyn IEvaluation<T>],
    ) -> Result<(), NnError> {
        model::do_evaluation(&mut self.core, iterator, evaluations)
    }

    /// Adds a training listener.
    pub fn add_listener(&mut self, listener: Box<dyn TrainingListener<T>>) {
        self.core.listeners.push(listener);
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.core.engine.num_params()
    }

    /// The flat parameter array.
    pub fn params(&self) -> &NdArray<T> {
        &self.core.engine.store.params
    }

    /// Replaces the parameters.
    pub fn set_params(&mut self, params: &impl AsView<T>) -> Result<(), NnError> {
        self.core.engine.set_flat(&params.view(), true)
    }

    /// The flat gradient array of the last iteration.
    pub fn gradients(&self) -> &NdArray<T> {
        &self.core.engine.store.grads
    }

    /// Iterations done.
    pub fn iteration_count(&self) -> u64 {
        self.core.engine.iteration
    }

    /// The score of the last training iteration.
    pub fn last_score(&self) -> f64 {
        self.core.engine.score
    }

    /// A table of the vertices: name, type, inputs, output type, parameters.
    pub fn summary(&self) -> String {
        let e = &self.core.engine;
        let rows: Vec<crate::summary::Row> = self
            .conf
            .vertices
            .iter()
            .enumerate()
            .map(|(v, vc)| {
                let node = self.node_of[v];
                let kind = match &vc.vertex {
                    VertexConf::Layer {
                        preprocessor: Some(p),
                        layer,
                    } => format!("{} (+{})", layer.kind(), p.kind()),
                    other => other.kind().to_string(),
                };
                crate::summary::Row {
                    index: v.to_string(),
                    name: vc.name.clone(),
                    kind,
                    inputs: vc.inputs.join(", "),
                    output: e.meta[node].out_type.to_string(),
                    params: e.meta[node].params.len(),
                }
            })
            .collect();
        crate::summary::table("ComputationGraph", &rows, self.num_params(), &e.global)
    }

    /// Ids of this graph's workspaces (all-layers activations, working memory, the pool).
    pub fn workspace_ids(&self) -> Vec<String> {
        self.core
            .engine
            .ws
            .ids()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// The most activation workspaces inference holds open at once (the liveness width of
    /// the graph), and how many the pool has.
    pub fn inference_pool(&self) -> (usize, usize) {
        (
            self.core.engine.schedule.infer_peak,
            self.core.engine.schedule.slots,
        )
    }
}

fn views_batch<'a, T: DataType>(
    x: &'a [ArrayView<'a, T>],
    y: &'a [ArrayView<'a, T>],
) -> Batch<'a, T> {
    Batch {
        features: Arrays::Views(x),
        features_masks: Masks::None,
        labels: Arrays::Views(y),
        labels_masks: Masks::None,
    }
}

impl<T: DataType> HasCore<T> for ComputationGraph<T> {
    fn core(&self) -> &Core<T> {
        &self.core
    }
    fn core_mut(&mut self) -> &mut Core<T> {
        &mut self.core
    }
}

impl<T: DataType> Model<T> for ComputationGraph<T> {
    impl_model_common!();

    fn kind(&self) -> ModelKind {
        ModelKind::ComputationGraph
    }
    fn conf_json(&self) -> Result<String, NnError> {
        self.conf.to_json()
    }
    fn summary(&self) -> String {
        ComputationGraph::summary(self)
    }
}
