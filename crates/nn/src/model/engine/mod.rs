//! The executor every network runs on: vertices (layers, preprocessors, graph vertices) in
//! execution order, the flat parameter store, the workspaces and their pool schedule, and the
//! passes: training forward, loss, backprop and the updater step; inference into the pool;
//! feed-forward keeping every activation. A `MultiLayerNetwork` is a chain of vertices and a
//! `ComputationGraph` any DAG: both are this engine, so a chain graph trains bit-identically
//! to the same stack of layers.
//!
//! Per-iteration state (activations, caches, masks, epsilons) lives in vectors sized when the
//! network is built, so a steady-state step allocates nothing on the heap. The two passes are
//! in `forward.rs` and `backward.rs`; this file holds the engine, its inputs and the steps
//! built from the passes.

use std::ops::Range;

use dl4rs_array::{ArrayView, AsView, DataType, NdArray};
use dl4rs_memory::Workspace;

mod backward;
mod forward;
mod recurrent;

use super::params::ParamStore;
use super::workspaces::{NetWorkspaces, Schedule, Src};
use crate::conf::{BackpropType, GlobalConf, VertexConf, WorkspaceMode};
use crate::error::NnError;
use crate::input_type::InputType;
use crate::layers::{Layer, RecurrentMode, StepContext};
use crate::loss::LossFunction;
use crate::workspace_mgr::{ArrayType, LayerWorkspaceMgr};

/// What a vertex does.
pub(crate) enum Op<T: DataType> {
    Layer(Box<dyn Layer<T>>),
    Vertex(VertexConf),
}

/// A vertex as the engine runs it.
pub(crate) struct NodeSpec<T: DataType> {
    /// Name for errors (graph vertex name, or the MLN layer index).
    pub name: String,
    /// Prefix of its parameter keys ("0", "dense1").
    pub param_prefix: String,
    pub inputs: Vec<Src>,
    pub op: Op<T>,
    /// Ordinal among layers (its parameter seed stream).
    pub layer_index: usize,
    /// What it outputs.
    pub out_type: InputType,
}

pub(crate) struct NodeMeta {
    pub name: String,
    pub param_prefix: String,
    pub inputs: Vec<Src>,
    pub params: Range<usize>,
    pub out_type: InputType,
    /// Ordinal among layers (what `StepContext::index` says to a layer, so its random
    /// streams don't depend on the preprocessors around it).
    pub layer_index: usize,
}

/// Where a vertex's output mask comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MaskSrc {
    None,
    Input(usize),
    Node(usize),
}

/// A list of arrays handed to a pass, borrowed in whatever form the caller has.
#[derive(Clone, Copy)]
pub(crate) enum Arrays<'a, T: DataType> {
    One(ArrayView<'a, T>),
    Views(&'a [ArrayView<'a, T>]),
    Owned(&'a [NdArray<T>]),
}

impl<'a, T: DataType> Arrays<'a, T> {
    pub fn len(&self) -> usize {
        match self {
            Arrays::One(_) => 1,
            Arrays::Views(v) => v.len(),
            Arrays::Owned(v) => v.len(),
        }
    }
    pub fn get(&self, i: usize) -> Option<ArrayView<'a, T>> {
        match *self {
            Arrays::One(v) => (i == 0).then_some(v),
            Arrays::Views(v) => v.get(i).copied(),
            Arrays::Owned(v) => v.get(i).map(AsView::view),
        }
    }
}

/// Optional masks, one per array.
#[derive(Clone, Copy)]
pub(crate) enum Masks<'a, T: DataType> {
    None,
    One(Option<ArrayView<'a, T>>),
    Owned(&'a [Option<NdArray<T>>]),
}

impl<'a, T: DataType> Masks<'a, T> {
    pub fn get(&self, i: usize) -> Option<ArrayView<'a, T>> {
        match *self {
            Masks::None => None,
            Masks::One(m) => {
                if i == 0 {
                    m
                } else {
                    None
                }
            }
            Masks::Owned(v) => v.get(i).and_then(|m| m.as_ref().map(AsView::view)),
        }
    }
}

/// Features and labels of one step.
#[derive(Clone, Copy)]
pub(crate) struct Batch<'a, T: DataType> {
    pub features: Arrays<'a, T>,
    pub features_masks: Masks<'a, T>,
    pub labels: Arrays<'a, T>,
    pub labels_masks: Masks<'a, T>,
}

/// Which forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Everything in the all-layers workspace (the caller has it open).
    Train,
    /// Activations in the pool; outputs detached, or into the caller's workspace.
    Infer { into_user: bool },
    /// Every activation detached.
    Detached,
}

pub(crate) struct Engine<T: DataType> {
    pub global: GlobalConf,
    pub ops: Vec<Op<T>>,
    pub meta: Vec<NodeMeta>,
    pub input_names: Vec<String>,
    pub input_types: Vec<InputType>,
    pub outputs: Vec<usize>,
    pub store: ParamStore<T>,
    pub ws: NetWorkspaces,
    pub schedule: Schedule,
    pub acts: Vec<Option<NdArray<T>>>,
    caches: Vec<Option<NdArray<T>>>,
    masks: Vec<Option<NdArray<T>>>,
    mask_src: Vec<MaskSrc>,
    eps: Vec<Option<NdArray<T>>>,
    sink: Vec<Option<NdArray<T>>>,
    /// Whether each vertex's output needs a gradient (see `Schedule::new`).
    grad_needed: Vec<bool>,
    pub iteration: u64,
    pub epoch: u64,
    pub score: f64,
    /// What recurrent layers start from in the current pass (see [`RecurrentMode`]).
    pub rnn_mode: RecurrentMode,
}

impl<T: DataType> Engine<T> {
    /// Builds the engine and initializes parameters from the seed.
    pub fn new(
        global: GlobalConf,
        nodes: Vec<NodeSpec<T>>,
        input_names: Vec<String>,
        input_types: Vec<InputType>,
        outputs: Vec<usize>,
    ) -> Result<Self, NnError> {
        let inputs: Vec<Vec<Src>> = nodes.iter().map(|n| n.inputs.clone()).collect();
        // A vertex's output needs a gradient when it or anything before it has parameters.
        let mut grad_needed = vec![false; nodes.len()];
        for (v, node) in nodes.iter().enumerate() {
            let own = matches!(&node.op, Op::Layer(l) if l.info().num_params() > 0);
            grad_needed[v] = own
                || node
                    .inputs
                    .iter()
                    .any(|s| matches!(*s, Src::Node(u) if grad_needed[u]));
        }
        let schedule = Schedule::new(&inputs, &outputs, &grad_needed)?;
        let ws = NetWorkspaces::new(nodes.len(), schedule.slots)?;
        let layer_params: Vec<(String, Vec<crate::layers::ParamSpec>)> = nodes
            .iter()
            .map(|n| match &n.op {
                Op::Layer(l) => (n.param_prefix.clone(), l.info().params.clone()),
                Op::Vertex(_) => (n.param_prefix.clone(), Vec::new()),
            })
            .collect();
        let (store, ranges) = ParamStore::new(&layer_params, &global)?;
        let n = nodes.len();
        let max_inputs = nodes.iter().map(|n| n.inputs.len()).max().unwrap_or(1);
        let mut ops = Vec::with_capacity(n);
        let mut meta = Vec::with_capacity(n);
        for (node, range) in nodes.into_iter().zip(ranges) {
            ops.push(node.op);
            meta.push(NodeMeta {
                name: node.name,
                param_prefix: node.param_prefix,
                inputs: node.inputs,
                params: range,
                out_type: node.out_type,
                layer_index: node.layer_index,
            });
        }
        Ok(Engine {
            global,
            ops,
            meta,
            input_names,
            input_types,
            outputs,
            store,
            ws,
            schedule,
            acts: (0..n).map(|_| None).collect(),
            caches: (0..n).map(|_| None).collect(),
            masks: (0..n).map(|_| None).collect(),
            mask_src: vec![MaskSrc::None; n],
            eps: (0..n).map(|_| None).collect(),
            sink: (0..max_inputs).map(|_| None).collect(),
            grad_needed,
            iteration: 0,
            epoch: 0,
            score: f64::NAN,
            rnn_mode: RecurrentMode::Fresh,
        })
    }

    /// Initializes every layer's parameters from the global seed and the layer's index (what
    /// a new network starts from; `Engine::new` leaves them zero, for a network built with
    /// given parameters).
    pub fn init_from_seed(&mut self) -> Result<(), NnError> {
        let seeds: Vec<usize> = self.meta.iter().map(|m| m.layer_index).collect();
        self.init_params(&seeds)
    }

    fn init_params(&mut self, seeds: &[usize]) -> Result<(), NnError> {
        let mut w = self.store.params.write()?;
        let flat = w.as_slice_mut().unwrap_or_default();
        for ((op, meta), &seed_index) in self.ops.iter().zip(&self.meta).zip(seeds) {
            if let Op::Layer(layer) = op {
                let seed = dl4rs_array::random::splitmix(self.global.seed, seed_index as u64);
                layer.init_params(&mut flat[meta.params.clone()], seed);
            }
        }
        Ok(())
    }

    /// Re-initializes the parameters from the seed and clears gradients, updater state and
    /// counters.
    pub fn reinit(&mut self, seeds: &[usize]) -> Result<(), NnError> {
        self.store.grads.fill(T::ZERO)?;
        self.store.updater_state.fill(T::ZERO)?;
        self.iteration = 0;
        self.epoch = 0;
        self.init_params(seeds)
    }

    pub fn layer(&self, v: usize) -> Option<&dyn Layer<T>> {
        match self.ops.get(v) {
            Some(Op::Layer(l)) => Some(l.as_ref()),
            _ => None,
        }
    }

    pub fn layer_mut(&mut self, v: usize) -> Option<&mut Box<dyn Layer<T>>> {
        match self.ops.get_mut(v) {
            Some(Op::Layer(l)) => Some(l),
            _ => None,
        }
    }

    /// The loss of output `k`, if it is a loss layer.
    pub fn output_loss(&self, k: usize) -> Option<LossFunction> {
        self.outputs
            .get(k)
            .and_then(|&v| self.layer(v))
            .and_then(|l| l.info().loss)
    }

    fn label(&self, v: usize) -> String {
        let kind = match &self.ops[v] {
            Op::Layer(l) => l.info().kind,
            Op::Vertex(c) => c.kind(),
        };
        format!("vertex \"{}\" ({kind})", self.meta[v].name)
    }

    fn training_enabled(&self) -> bool {
        self.global.training_workspace_mode == WorkspaceMode::Enabled
    }

    pub fn inference_enabled(&self) -> bool {
        self.global.inference_workspace_mode == WorkspaceMode::Enabled
    }

    /// Checks the features against the input types; returns the mini-batch size.
    pub fn check_inputs(&self, x: &Arrays<'_, T>) -> Result<usize, NnError> {
        if x.len() != self.input_types.len() {
            return Err(NnError::Input(format!(
                "the network has {} input(s) {:?} but {} feature array(s) were given",
                self.input_types.len(),
                self.input_names,
                x.len()
            )));
        }
        let mut batch = None;
        for (k, t) in self.input_types.iter().enumerate() {
            let a = x
                .get(k)
                .ok_or_else(|| NnError::Input("missing input".into()))?;
            if !t.matches(a.shape()) {
                let reader = self
                    .meta
                    .iter()
                    .position(|m| m.inputs.contains(&Src::Input(k)))
                    .map(|v| format!(", read by {}", self.label(v)))
                    .unwrap_or_default();
                return Err(NnError::Input(format!(
                    "network input \"{}\": expected shape {}, found {:?} (input type {t}){reader}",
                    self.input_names[k],
                    t.shape_text(),
                    a.shape()
                )));
            }
            batch.get_or_insert(a.shape()[0]);
        }
        Ok(batch.unwrap_or(0))
    }

    fn check_labels(&self, batch: &Batch<'_, T>) -> Result<(), NnError> {
        if batch.labels.len() != self.outputs.len() {
            return Err(NnError::Input(format!(
                "the network has {} output(s) but {} label array(s) were given",
                self.outputs.len(),
                batch.labels.len()
            )));
        }
        for k in 0..self.outputs.len() {
            if self.output_loss(k).is_none() {
                return Err(NnError::config(format!(
                    "output {} must be an output or loss layer to train or score the network",
                    self.label(self.outputs[k])
                )));
            }
        }
        Ok(())
    }

    fn check_label_shape(&self, k: usize, labels: &ArrayView<'_, T>) -> Result<(), NnError> {
        let out = self.acts[self.outputs[k]]
            .as_ref()
            .ok_or_else(|| NnError::config("the output was not computed"))?;
        if labels.shape() != out.shape() {
            let steps = match (labels.shape(), out.shape()) {
                ([.., a], [_, _, b]) if labels.shape().len() == 3 && a != b => format!(
                    ": the labels have {a} time steps but the series has {b} (labels and \
                     features must be equally long; mask the steps without a label)"
                ),
                _ => String::new(),
            };
            return Err(NnError::Input(format!(
                "labels: expected shape {:?} (the shape of output {}), found {:?}{steps}",
                out.shape(),
                self.label(self.outputs[k]),
                labels.shape()
            )));
        }
        Ok(())
    }

    /// Prepares the manager that puts outputs into `workspace` (cached by id).
    pub fn set_user_workspace(&mut self, workspace: &Workspace) -> Result<(), NnError> {
        if !self.inference_enabled() {
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
        Ok(())
    }

    fn ctx(&self, training: bool, index: usize, batch: usize) -> StepContext {
        StepContext {
            training,
            iteration: self.iteration,
            seed: self.global.seed,
            index,
            batch,
            need_input_gradient: true,
            recurrent: self.rnn_mode,
        }
    }

    /// The loss of the outputs against `batch`'s labels (plus regularization), from the
    /// activations of the last forward pass.
    fn loss_score(&self, batch: &Batch<'_, T>) -> Result<f64, NnError> {
        let mut score = 0.0;
        for (k, &v) in self.outputs.iter().enumerate() {
            let labels = batch
                .labels
                .get(k)
                .ok_or_else(|| NnError::Input("missing labels".into()))?;
            self.check_label_shape(k, &labels)?;
            let loss = self
                .output_loss(k)
                .ok_or_else(|| NnError::config("the output has no loss"))?;
            let out = self.acts[v]
                .as_ref()
                .ok_or_else(|| NnError::config("the output was not computed"))?;
            // A loss per time step without a label mask uses the feature mask that reached
            // the output (as the layer's backward pass does).
            let mask = batch.labels_masks.get(k).or_else(|| {
                if out.shape().len() != 3 {
                    return None;
                }
                match self.mask_src[v] {
                    MaskSrc::None => None,
                    MaskSrc::Input(i) => batch.features_masks.get(i),
                    MaskSrc::Node(u) => self.masks[u].as_ref().map(AsView::view),
                }
            });
            score += loss.score(&labels, &out.view(), mask.as_ref())?.to_f64();
        }
        Ok(score + self.store.regularization_score(&self.global)?)
    }

    /// Forward (training mode), loss and backprop: fills the gradients; returns the score.
    /// With workspaces on, the caller has the all-layers-activations workspace open.
    pub fn gradient_and_score(&mut self, batch: &Batch<'_, T>) -> Result<f64, NnError> {
        self.check_labels(batch)?;
        let result = self
            .forward(&batch.features, &batch.features_masks, Pass::Train, true)
            .and_then(|()| self.loss_score(batch))
            .and_then(|score| self.backward(batch).map(|()| score));
        self.clear();
        result
    }

    /// Drops every per-iteration array.
    pub fn clear(&mut self) {
        for v in [
            &mut self.acts,
            &mut self.caches,
            &mut self.masks,
            &mut self.eps,
            &mut self.sink,
        ] {
            for a in v.iter_mut() {
                *a = None;
            }
        }
        self.mask_src.fill(MaskSrc::None);
    }

    /// One training step on `batch`: forward, loss, backprop, updater. Returns the score.
    pub fn fit_batch(&mut self, batch: &Batch<'_, T>) -> Result<f64, NnError> {
        if self.global.backprop_type == BackpropType::TruncatedBptt {
            let (f, b) = (
                self.global.tbptt_forward_length,
                self.global.tbptt_backward_length,
            );
            return self.fit_tbptt(batch, f, b);
        }
        let score = {
            let _all = if self.training_enabled() {
                Some(NetWorkspaces::scope(&self.ws.all_act)?)
            } else {
                None
            };
            self.gradient_and_score(batch)?
        };
        self.score = score;
        self.apply_update()?;
        Ok(score)
    }

    /// The updater step with the gradients now in the store (computed here, or summed across
    /// trainers), then the iteration counter.
    pub fn apply_update(&mut self) -> Result<(), NnError> {
        self.store.apply_updater(&self.global, self.iteration)?;
        self.iteration += 1;
        Ok(())
    }

    /// The mean of several updater steps on `part` (`Model::apply_averaged_gradients_part`);
    /// the iteration counter is the caller's to set (a round steps its part piece by piece).
    pub fn apply_averaged_update_part(
        &mut self,
        part: std::ops::Range<usize>,
        averaged: (usize, Option<usize>, &[T], T),
    ) -> Result<(), NnError> {
        self.store
            .apply_averaged_updater_part(&self.global, self.iteration, part, averaged)
    }

    /// [`Engine::apply_update`] on the elements `part` of the flat arrays only.
    pub fn apply_update_part(&mut self, part: std::ops::Range<usize>) -> Result<(), NnError> {
        self.store
            .apply_updater_part(&self.global, self.iteration, part)?;
        self.iteration += 1;
        Ok(())
    }

    /// Gradient and score without an update (gradient checks), in the all-layers workspace.
    pub fn compute_gradient_and_score(&mut self, batch: &Batch<'_, T>) -> Result<f64, NnError> {
        let _all = if self.training_enabled() {
            Some(NetWorkspaces::scope(&self.ws.all_act)?)
        } else {
            None
        };
        let score = self.gradient_and_score(batch)?;
        self.score = score;
        Ok(score)
    }

    /// Inference forward; the outputs (detached, or in the caller's workspace set with
    /// [`Engine::set_user_workspace`]) are pushed to `out`.
    pub fn output_into(
        &mut self,
        x: &Arrays<'_, T>,
        x_masks: &Masks<'_, T>,
        train: bool,
        into_user: bool,
        out: &mut Vec<NdArray<T>>,
    ) -> Result<(), NnError> {
        let result = self.forward(x, x_masks, Pass::Infer { into_user }, train);
        if result.is_ok() {
            for &o in &self.outputs {
                if let Some(a) = self.acts[o].take() {
                    out.push(a);
                }
            }
        }
        self.clear();
        result
    }

    /// The loss of a batch in inference mode (DL4J `score(DataSet)`), outputs placed in the
    /// all-layers workspace as scratch.
    pub fn score_batch(&mut self, batch: &Batch<'_, T>) -> Result<f64, NnError> {
        self.check_labels(batch)?;
        let enabled = self.inference_enabled();
        let scope = if enabled {
            Some(NetWorkspaces::scope(&self.ws.all_act)?)
        } else {
            None
        };
        if let Some(s) = &scope {
            let ws = s
                .workspace()
                .ok_or_else(|| NnError::config("all-layers workspace missing"))?
                .clone();
            self.set_user_workspace(&ws)?;
        }
        let result = self
            .forward(
                &batch.features,
                &batch.features_masks,
                Pass::Infer { into_user: enabled },
                false,
            )
            .and_then(|()| self.loss_score(batch));
        self.clear();
        result
    }

    /// Every vertex's activations, detached, in execution order.
    pub fn feed_forward(
        &mut self,
        x: &Arrays<'_, T>,
        train: bool,
    ) -> Result<Vec<Option<NdArray<T>>>, NnError> {
        let result = self.forward(x, &Masks::None, Pass::Detached, train);
        let acts = self.acts.iter_mut().map(Option::take).collect();
        self.clear();
        result.map(|()| acts)
    }

    /// Layer state of every layer, keyed `"{prefix}.{key}"`.
    pub fn layer_states(&self) -> Vec<(String, Vec<T>)> {
        let mut out = Vec::new();
        for (op, meta) in self.ops.iter().zip(&self.meta) {
            if let Op::Layer(l) = op {
                for (key, values) in l.state() {
                    out.push((format!("{}.{key}", meta.param_prefix), values));
                }
            }
        }
        out
    }

    /// Restores one state entry `"{prefix}.{key}"`.
    pub fn set_layer_state(&mut self, name: &str, values: &[T]) -> Result<(), NnError> {
        let (prefix, key) = name
            .rsplit_once('.')
            .ok_or_else(|| NnError::Input(format!("bad layer state name {name:?}")))?;
        let v = self
            .meta
            .iter()
            .position(|m| m.param_prefix == prefix && !m.name.ends_with(PREPROCESSOR_SUFFIX))
            .ok_or_else(|| NnError::Input(format!("no layer {prefix:?} for state {name:?}")))?;
        match self.layer_mut(v) {
            Some(l) => l.set_state(key, values),
            None => Err(NnError::Input(format!("{prefix:?} is not a layer"))),
        }
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.store.len()
    }

    /// `dst = src` for the flat arrays.
    pub fn set_flat(&mut self, src: &ArrayView<'_, T>, params: bool) -> Result<(), NnError> {
        self.store.copy_flat(src, params)
    }
}

/// Name suffix of the vertex a layer's preprocessor runs as.
pub(crate) const PREPROCESSOR_SUFFIX: &str = "-preprocessor";

/// DL4J's workspace validation after a vertex: the array must be where `ty` says.
fn validate<T: DataType>(
    op: &'static str,
    mgr: &LayerWorkspaceMgr,
    ty: ArrayType,
    index: usize,
    node: &NodeMeta,
    vertex: &Op<T>,
    array: &NdArray<T>,
) -> Result<(), NnError> {
    // As DL4J: the first vertex may hand back a detached array (e.g. its own input).
    mgr.validate_array_location(ty, array, index > 0)
        .map_err(|(expected, found)| NnError::WorkspaceValidation {
            op,
            array_type: ty,
            index,
            name: format!(
                " - layer name \"{}\"",
                match vertex {
                    Op::Layer(l) => l.info().name.as_deref().unwrap_or(&node.name),
                    Op::Vertex(_) => &node.name,
                }
            ),
            kind: match vertex {
                Op::Layer(l) => l.info().kind,
                Op::Vertex(c) => c.kind(),
            },
            expected,
            found,
        })
}
