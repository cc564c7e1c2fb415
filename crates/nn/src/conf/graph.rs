//! [`ComputationGraphConfiguration`]: a directed acyclic graph of layers and vertices with
//! named inputs and outputs, built as in DL4J (`graph_builder().add_inputs(..)
//! .add_layer(name, conf, inputs).add_vertex(name, vertex, inputs).set_outputs(..)`).
//! Validation finds cycles, unknown and unused inputs, vertices no output depends on, and shape
//! mismatches, each as one error naming the vertex; it infers every layer's size from the input
//! types and inserts the preprocessors layers need. The JSON round trip reads vertices one by one
//! so that an unknown vertex type is reported with the vertex's name.

use serde::{Deserialize, Serialize};

use super::layer::LayerConf;
use super::mode::GlobalConf;
use super::vertex::VertexConf;
use crate::error::NnError;
use crate::input_type::InputType;
use crate::preprocessor::{InputPreProcessor, preprocessor_for};

/// One named vertex and the names it reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphVertexConf {
    /// Its name (unique in the graph).
    pub name: String,
    /// Names of its inputs: graph inputs or other vertices.
    pub inputs: Vec<String>,
    /// What it is.
    pub vertex: VertexConf,
}

/// A validated configuration of a [`crate::ComputationGraph`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputationGraphConfiguration {
    /// Seed, updater, regularization, workspace modes, layer defaults.
    #[serde(flatten)]
    pub global: GlobalConf,
    /// Names of the graph's inputs, in the order arrays are passed.
    pub inputs: Vec<String>,
    /// Their types (inferred from the layers reading them when not set).
    pub input_types: Vec<InputType>,
    /// The vertices, in the order they were added.
    pub vertices: Vec<GraphVertexConf>,
    /// Names of the output vertices, in the order outputs (and labels) are given.
    pub outputs: Vec<String>,
}

/// Where a vertex reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Graph input `k`.
    Input(usize),
    /// Vertex `v` (index into `vertices`).
    Vertex(usize),
}

/// The graph resolved: sources by index, an execution order, and the types around every
/// vertex.
#[derive(Debug, Clone)]
pub(crate) struct GraphPlan {
    pub sources: Vec<Vec<Source>>,
    pub order: Vec<usize>,
    pub in_types: Vec<Vec<InputType>>,
    pub out_types: Vec<InputType>,
    pub outputs: Vec<usize>,
}

fn vertex_err(name: &str, kind: &str, message: impl std::fmt::Display) -> NnError {
    NnError::config(format!("vertex \"{name}\" ({kind}): {message}"))
}

#[derive(Deserialize)]
struct RawGraph {
    #[serde(flatten)]
    global: GlobalConf,
    inputs: Vec<String>,
    #[serde(default)]
    input_types: Vec<InputType>,
    vertices: Vec<RawVertex>,
    outputs: Vec<String>,
}

#[derive(Deserialize)]
struct RawVertex {
    name: String,
    #[serde(default)]
    inputs: Vec<String>,
    vertex: serde_json::Value,
}

impl ComputationGraphConfiguration {
    /// JSON text.
    pub fn to_json(&self) -> Result<String, NnError> {
        serde_json::to_string_pretty(self).map_err(|e| NnError::config(format!("JSON: {e}")))
    }

    /// Parses and validates JSON text; errors name the vertex they are about.
    pub fn from_json(json: &str) -> Result<ComputationGraphConfiguration, NnError> {
        let raw: RawGraph = serde_json::from_str(json).map_err(|e| {
            NnError::config(format!("can't read the graph configuration JSON: {e}"))
        })?;
        let mut vertices = Vec::with_capacity(raw.vertices.len());
        for v in raw.vertices {
            let vertex: VertexConf = serde_json::from_value(v.vertex)
                .map_err(|e| NnError::config(format!("vertex \"{}\": {e}", v.name)))?;
            vertices.push(GraphVertexConf {
                name: v.name,
                inputs: v.inputs,
                vertex,
            });
        }
        ComputationGraphConfiguration {
            global: raw.global,
            inputs: raw.inputs,
            input_types: raw.input_types,
            vertices,
            outputs: raw.outputs,
        }
        .validated()
    }

    /// The vertex called `name`.
    pub fn vertex(&self, name: &str) -> Option<&GraphVertexConf> {
        self.vertices.iter().find(|v| v.name == name)
    }

    /// Number of values per example of graph input `k`.
    pub fn n_in(&self, k: usize) -> usize {
        self.input_types.get(k).map_or(0, InputType::flat_size)
    }

    /// Number of values per example of output `k`.
    pub fn n_out(&self, k: usize) -> usize {
        self.plan()
            .ok()
            .and_then(|p| p.outputs.get(k).map(|&v| p.out_types[v].flat_size()))
            .unwrap_or(0)
    }

    /// Checks the graph, infers types and sizes, inserts preprocessors.
    pub fn validated(mut self) -> Result<ComputationGraphConfiguration, NnError> {
        self.global.validate()?;
        let plan = self.resolve()?;
        // Graph input types: set, or read off the layers that consume an input directly.
        if self.input_types.is_empty() {
            let mut types = Vec::with_capacity(self.inputs.len());
            for (k, name) in self.inputs.iter().enumerate() {
                let n_in = self.vertices.iter().enumerate().find_map(|(v, vc)| {
                    let reads = plan.sources[v].contains(&Source::Input(k));
                    match (&vc.vertex, reads) {
                        (VertexConf::Layer { layer, .. }, true) => layer.n_in(),
                        _ => None,
                    }
                });
                match n_in {
                    Some(n) => types.push(InputType::feed_forward(n)),
                    None => {
                        return Err(NnError::config(format!(
                            "graph input \"{name}\": its type is unknown: call \
                             set_input_types(..) (or set n_in on the layers reading it)"
                        )));
                    }
                }
            }
            self.input_types = types;
        } else if self.input_types.len() != self.inputs.len() {
            return Err(NnError::config(format!(
                "{} input types were set for {} graph inputs ({:?})",
                self.input_types.len(),
                self.inputs.len(),
                self.inputs
            )));
        }
        for (name, t) in self.inputs.iter().zip(&self.input_types) {
            super::multi_layer::check_sizes(t, &format!("graph input \"{name}\""))?;
        }
        let mut params = 0usize;
        let mut out_types: Vec<Option<InputType>> = vec![None; self.vertices.len()];
        for &v in &plan.order {
            let ins: Vec<InputType> = plan.sources[v]
                .iter()
                .map(|s| match *s {
                    Source::Input(k) => self.input_types[k],
                    Source::Vertex(u) => out_types[u].unwrap_or(InputType::feed_forward(0)),
                })
                .collect();
            let (activation, weight_init) = (self.global.activation, self.global.weight_init);
            let vc = &mut self.vertices[v];
            let (name, kind) = (vc.name.clone(), vc.vertex.kind());
            if let VertexConf::Layer { layer, .. } = &mut vc.vertex {
                // What a layer leaves open comes from the network (also for JSON files).
                layer.apply_defaults(activation, weight_init);
            }
            let out = match &mut vc.vertex {
                VertexConf::Layer {
                    layer,
                    preprocessor,
                } => {
                    let mut t = ins[0];
                    if preprocessor.is_none() {
                        *preprocessor = preprocessor_for(&t, layer.accepts())
                            .map_err(|e| vertex_err(&name, kind, e))?;
                    }
                    if let Some(p) = preprocessor {
                        t = p.output_type(&t).map_err(|e| vertex_err(&name, kind, e))?;
                    }
                    let label = format!("vertex \"{name}\" ({kind})");
                    super::multi_layer::check_sizes(&t, &label)?;
                    let out = layer.infer(&t, &label)?;
                    params = super::multi_layer::check_params(params, layer, &label)?;
                    out
                }
                other => other
                    .output_type(&ins)
                    .map_err(|e| vertex_err(&name, kind, e))?,
            };
            super::multi_layer::check_sizes(&out, &format!("vertex \"{name}\" ({kind})"))?;
            out_types[v] = Some(out);
        }
        for (v, vc) in self.vertices.iter().enumerate() {
            if let Some(layer) = vc.vertex.layer()
                && layer.is_output()
                && !plan.outputs.contains(&v)
            {
                return Err(vertex_err(
                    &vc.name,
                    vc.vertex.kind(),
                    "computes a loss, so it must be one of the graph's outputs (set_outputs)",
                ));
            }
        }
        Ok(self)
    }

    /// Names resolved to indices, arity, outputs, cycles and unused vertices checked, and a
    /// topological order (ties broken by insertion order, so a chain runs as it was added).
    fn resolve(&self) -> Result<GraphPlan, NnError> {
        if self.inputs.is_empty() {
            return Err(NnError::config(
                "the graph has no inputs: call add_inputs(..) first",
            ));
        }
        if self.vertices.is_empty() {
            return Err(NnError::config("the graph has no vertices: add a layer"));
        }
        let mut seen = std::collections::HashSet::new();
        for name in self
            .inputs
            .iter()
            .chain(self.vertices.iter().map(|v| &v.name))
        {
            if name.is_empty() {
                return Err(NnError::config("a graph input or vertex has an empty name"));
            }
            if !seen.insert(name.as_str()) {
                return Err(NnError::config(format!(
                    "the name \"{name}\" is used twice: every input and vertex needs its own"
                )));
            }
        }
        let lookup = |name: &str| -> Option<Source> {
            if let Some(k) = self.inputs.iter().position(|n| n == name) {
                return Some(Source::Input(k));
            }
            self.vertices
                .iter()
                .position(|v| v.name == name)
                .map(Source::Vertex)
        };
        let mut sources = Vec::with_capacity(self.vertices.len());
        for vc in &self.vertices {
            let kind = vc.vertex.kind();
            let (lo, hi) = vc.vertex.arity();
            if vc.inputs.len() < lo || vc.inputs.len() > hi {
                let want = if lo == hi {
                    format!("{lo}")
                } else {
                    format!("at least {lo}")
                };
                return Err(vertex_err(
                    &vc.name,
                    kind,
                    format!("expected {want} input(s), found {}", vc.inputs.len()),
                ));
            }
            let mut s = Vec::with_capacity(vc.inputs.len());
            for input in &vc.inputs {
                s.push(lookup(input).ok_or_else(|| {
                    vertex_err(
                        &vc.name,
                        kind,
                        format!(
                            "unknown input \"{input}\": it is neither a graph input {:?} nor a \
                             vertex",
                            self.inputs
                        ),
                    )
                })?);
            }
            sources.push(s);
        }
        if self.outputs.is_empty() {
            return Err(NnError::config(
                "the graph has no outputs: call set_outputs(..)",
            ));
        }
        let mut outputs = Vec::with_capacity(self.outputs.len());
        for name in &self.outputs {
            match lookup(name) {
                Some(Source::Vertex(v)) if !outputs.contains(&v) => outputs.push(v),
                Some(Source::Vertex(_)) => {
                    return Err(NnError::config(format!(
                        "output \"{name}\" is listed twice in set_outputs"
                    )));
                }
                Some(Source::Input(_)) => {
                    return Err(NnError::config(format!(
                        "output \"{name}\" is a graph input: outputs must be vertices"
                    )));
                }
                None => {
                    return Err(NnError::config(format!(
                        "output \"{name}\" is not a vertex of the graph"
                    )));
                }
            }
        }
        // Kahn's algorithm, smallest insertion index first.
        let n = self.vertices.len();
        let mut pending: Vec<usize> = sources
            .iter()
            .map(|s| s.iter().filter(|x| matches!(x, Source::Vertex(_))).count())
            .collect();
        let mut done = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while order.len() < n {
            let Some(v) = (0..n).find(|&v| !done[v] && pending[v] == 0) else {
                let stuck = (0..n).find(|&v| !done[v]).unwrap_or(0);
                let vc = &self.vertices[stuck];
                return Err(vertex_err(
                    &vc.name,
                    vc.vertex.kind(),
                    "is part of a cycle: a graph must be acyclic (follow its inputs back to it)",
                ));
            };
            done[v] = true;
            order.push(v);
            for (u, s) in sources.iter().enumerate() {
                pending[u] -= s.iter().filter(|&&x| x == Source::Vertex(v)).count();
            }
        }
        // Everything must feed an output.
        let mut used = vec![false; n];
        let mut used_inputs = vec![false; self.inputs.len()];
        for &o in &outputs {
            used[o] = true;
        }
        for &v in order.iter().rev() {
            if !used[v] {
                continue;
            }
            for s in &sources[v] {
                match *s {
                    Source::Vertex(u) => used[u] = true,
                    Source::Input(k) => used_inputs[k] = true,
                }
            }
        }
        if let Some(v) = (0..n).find(|&v| !used[v]) {
            let vc = &self.vertices[v];
            return Err(vertex_err(
                &vc.name,
                vc.vertex.kind(),
                "no output depends on it: connect it to an output or remove it",
            ));
        }
        if let Some(k) = used_inputs.iter().position(|u| !u) {
            return Err(NnError::config(format!(
                "graph input \"{}\" is not used by any vertex: remove it or connect it",
                self.inputs[k]
            )));
        }
        Ok(GraphPlan {
            sources,
            order,
            in_types: Vec::new(),
            out_types: Vec::new(),
            outputs,
        })
    }

    /// The resolved graph with every vertex's input and output types (validated config).
    pub(crate) fn plan(&self) -> Result<GraphPlan, NnError> {
        let mut plan = self.resolve()?;
        let n = self.vertices.len();
        let mut out_types = vec![InputType::feed_forward(0); n];
        let mut in_types = vec![Vec::new(); n];
        for &v in &plan.order {
            let ins: Vec<InputType> = plan.sources[v]
                .iter()
                .map(|s| match *s {
                    Source::Input(k) => self.input_types[k],
                    Source::Vertex(u) => out_types[u],
                })
                .collect();
            let vc = &self.vertices[v];
            out_types[v] = match &vc.vertex {
                VertexConf::Layer {
                    layer,
                    preprocessor,
                } => {
                    let mut t = ins[0];
                    if let Some(p) = preprocessor {
                        t = p.output_type(&t).map_err(NnError::Config)?;
                    }
                    layer.clone().infer(&t, &vc.name)?
                }
                other => other.output_type(&ins).map_err(NnError::Config)?,
            };
            in_types[v] = ins;
        }
        plan.in_types = in_types;
        plan.out_types = out_types;
        Ok(plan)
    }
}

/// Builder of a [`ComputationGraphConfiguration`] (from
/// [`crate::NeuralNetConfiguration::graph_builder`]).
///
/// ```
/// use dl4rs_nn::*;
///
/// let conf = NeuralNetConfiguration::builder()
///     .updater(Updater::adam(1e-3))
///     .graph_builder()
///     .add_inputs(&["a", "b"])
///     .set_input_types(&[InputType::feed_forward(4), InputType::feed_forward(3)])
///     .add_layer("da", LayerConf::dense(5).activation(Activation::Relu), &["a"])
///     .add_layer("db", LayerConf::dense(5).activation(Activation::Relu), &["b"])
///     .add_vertex("merge", VertexConf::merge(), &["da", "db"])
///     .add_layer("out", LayerConf::output(LossFunction::Mcxent, 2).activation(Activation::Softmax), &["merge"])
///     .set_outputs(&["out"])
///     .build()?;
/// assert_eq!(conf.vertex("out").unwrap().vertex.layer().unwrap().n_in(), Some(10));
/// let back = ComputationGraphConfiguration::from_json(&conf.to_json()?)?;
/// assert_eq!(back, conf);
/// # Ok::<(), NnError>(())
/// ```
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    conf: ComputationGraphConfiguration,
}

impl GraphBuilder {
    /// Standard backprop or truncated BPTT (DL4J's `backpropType`).
    pub fn backprop_type(mut self, backprop_type: super::mode::BackpropType) -> Self {
        self.conf.global.backprop_type = backprop_type;
        self
    }

    /// Truncated BPTT: time steps per segment (default 20).
    pub fn tbptt_forward_length(mut self, steps: usize) -> Self {
        self.conf.global.tbptt_forward_length = steps;
        self
    }

    /// Truncated BPTT: steps backprop goes back from a segment's end (default 20).
    pub fn tbptt_backward_length(mut self, steps: usize) -> Self {
        self.conf.global.tbptt_backward_length = steps;
        self
    }

    pub(crate) fn new(global: GlobalConf) -> GraphBuilder {
        GraphBuilder {
            conf: ComputationGraphConfiguration {
                global,
                inputs: Vec::new(),
                input_types: Vec::new(),
                vertices: Vec::new(),
                outputs: Vec::new(),
            },
        }
    }

    /// Declares graph inputs, in the order their arrays will be passed.
    pub fn add_inputs(mut self, names: &[&str]) -> Self {
        self.conf.inputs.extend(names.iter().map(|s| s.to_string()));
        self
    }

    /// The input types, one per input (sizes and preprocessors are inferred from them).
    pub fn set_input_types(mut self, types: &[InputType]) -> Self {
        self.conf.input_types = types.to_vec();
        self
    }

    /// Adds a layer reading `inputs` (one name; a merge vertex joins several).
    pub fn add_layer(self, name: &str, layer: impl Into<LayerConf>, inputs: &[&str]) -> Self {
        let mut layer = layer.into();
        layer.apply_defaults(self.conf.global.activation, self.conf.global.weight_init);
        self.push(
            name,
            VertexConf::Layer {
                layer,
                preprocessor: None,
            },
            inputs,
        )
    }

    /// Adds a layer with an explicit preprocessor in front of it.
    pub fn add_layer_with_preprocessor(
        mut self,
        name: &str,
        layer: impl Into<LayerConf>,
        preprocessor: InputPreProcessor,
        inputs: &[&str],
    ) -> Self {
        let mut layer = layer.into();
        layer.apply_defaults(self.conf.global.activation, self.conf.global.weight_init);
        self = self.push(
            name,
            VertexConf::Layer {
                layer,
                preprocessor: Some(preprocessor),
            },
            inputs,
        );
        self
    }

    /// Adds a vertex reading `inputs`.
    pub fn add_vertex(self, name: &str, vertex: VertexConf, inputs: &[&str]) -> Self {
        self.push(name, vertex, inputs)
    }

    fn push(mut self, name: &str, vertex: VertexConf, inputs: &[&str]) -> Self {
        self.conf.vertices.push(GraphVertexConf {
            name: name.to_string(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            vertex,
        });
        self
    }

    /// The output vertices, in the order outputs and labels are given.
    pub fn set_outputs(mut self, names: &[&str]) -> Self {
        self.conf.outputs = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<ComputationGraphConfiguration, NnError> {
        self.conf.validated()
    }
}
