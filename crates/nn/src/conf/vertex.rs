//! What a vertex of a [`ComputationGraphConfiguration`](super::ComputationGraphConfiguration)
//! is: [`VertexConf`], a layer or one of DL4J's graph vertices (merge, element-wise, subset,
//! scale, shift, stack, unstack, L2 normalize, last time step, duplicate to time series, a
//! preprocessor), with its constructors, its kind's name and how many inputs it takes; and
//! [`ElementWiseOp`]. The graph's validation of shapes is in `graph.rs`.

use serde::{Deserialize, Serialize};

use super::layer::LayerConf;
use crate::input_type::InputType;
use crate::preprocessor::InputPreProcessor;

/// How an [`VertexConf::ElementWise`] vertex combines its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElementWiseOp {
    /// `a + b + ...`.
    Add,
    /// `a - b` (exactly two inputs).
    Subtract,
    /// `a * b * ...`.
    Product,
    /// `(a + b + ...) / n`.
    Average,
    /// Element-wise maximum (the gradient goes to the first input holding it).
    Max,
}

/// A graph vertex: a layer, or one of DL4J's parameterless vertices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum VertexConf {
    /// A layer (one input).
    #[serde(rename = "LayerVertex")]
    Layer {
        /// The layer.
        layer: LayerConf,
        /// The preprocessor in front of it (explicit, or inserted by validation).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preprocessor: Option<InputPreProcessor>,
    },
    /// Concatenation along the feature / channel axis (axis 1).
    #[serde(rename = "MergeVertex")]
    Merge,
    /// Element-wise combination of equally shaped inputs.
    #[serde(rename = "ElementWiseVertex")]
    ElementWise {
        /// The operation.
        op: ElementWiseOp,
    },
    /// Features `from..=to` (inclusive, as DL4J) along axis 1.
    #[serde(rename = "SubsetVertex")]
    Subset {
        /// First index kept.
        from: usize,
        /// Last index kept (inclusive).
        to: usize,
    },
    /// `x * factor`.
    #[serde(rename = "ScaleVertex")]
    Scale {
        /// The factor.
        factor: f64,
    },
    /// `x + shift`.
    #[serde(rename = "ShiftVertex")]
    Shift {
        /// The shift.
        shift: f64,
    },
    /// Stacks equally shaped inputs along the batch axis.
    #[serde(rename = "StackVertex")]
    Stack,
    /// Part `from` of `stack_size` equal parts along the batch axis (undoes a stack).
    #[serde(rename = "UnstackVertex")]
    Unstack {
        /// Which part.
        from: usize,
        /// Number of parts.
        stack_size: usize,
    },
    /// Each example divided by its L2 norm (at least `eps`).
    #[serde(rename = "L2NormalizeVertex")]
    L2Normalize {
        /// Lower bound of the norm (DL4J default 1e-8).
        #[serde(default = "default_l2_eps")]
        eps: f64,
    },
    /// Each example's last unmasked time step: `[batch, n, time]` → `[batch, n]`.
    #[serde(rename = "LastTimeStepVertex")]
    LastTimeStep,
    /// Rows (input 0) repeated at every step of a reference sequence (input 1).
    #[serde(rename = "DuplicateToTimeSeriesVertex")]
    DuplicateToTimeSeries,
    /// A preprocessor as a vertex.
    #[serde(rename = "PreprocessorVertex")]
    Preprocessor {
        /// The preprocessor.
        preprocessor: InputPreProcessor,
    },
}

fn default_l2_eps() -> f64 {
    1e-8
}

impl VertexConf {
    /// A merge (concatenation) vertex.
    pub fn merge() -> VertexConf {
        VertexConf::Merge
    }
    /// An element-wise vertex.
    pub fn element_wise(op: ElementWiseOp) -> VertexConf {
        VertexConf::ElementWise { op }
    }
    /// Features `from..=to`.
    pub fn subset(from: usize, to: usize) -> VertexConf {
        VertexConf::Subset { from, to }
    }
    /// `x * factor`.
    pub fn scale(factor: f64) -> VertexConf {
        VertexConf::Scale { factor }
    }
    /// `x + shift`.
    pub fn shift(shift: f64) -> VertexConf {
        VertexConf::Shift { shift }
    }
    /// Stack along the batch axis.
    pub fn stack() -> VertexConf {
        VertexConf::Stack
    }
    /// Part `from` of `stack_size`.
    pub fn unstack(from: usize, stack_size: usize) -> VertexConf {
        VertexConf::Unstack { from, stack_size }
    }
    /// L2 normalization with DL4J's eps.
    pub fn l2_normalize() -> VertexConf {
        VertexConf::L2Normalize {
            eps: default_l2_eps(),
        }
    }
    /// Each example's last unmasked time step.
    pub fn last_time_step() -> VertexConf {
        VertexConf::LastTimeStep
    }

    /// Rows (first input) repeated at every step of the sequence given as second input.
    pub fn duplicate_to_time_series() -> VertexConf {
        VertexConf::DuplicateToTimeSeries
    }

    /// A preprocessor vertex.
    pub fn preprocessor(preprocessor: InputPreProcessor) -> VertexConf {
        VertexConf::Preprocessor { preprocessor }
    }

    /// DL4J's class name.
    pub fn kind(&self) -> &'static str {
        match self {
            VertexConf::Layer { layer, .. } => layer.kind(),
            VertexConf::Merge => "MergeVertex",
            VertexConf::ElementWise { .. } => "ElementWiseVertex",
            VertexConf::Subset { .. } => "SubsetVertex",
            VertexConf::Scale { .. } => "ScaleVertex",
            VertexConf::Shift { .. } => "ShiftVertex",
            VertexConf::Stack => "StackVertex",
            VertexConf::Unstack { .. } => "UnstackVertex",
            VertexConf::L2Normalize { .. } => "L2NormalizeVertex",
            VertexConf::Preprocessor { .. } => "PreprocessorVertex",
            VertexConf::LastTimeStep => "LastTimeStepVertex",
            VertexConf::DuplicateToTimeSeries => "DuplicateToTimeSeriesVertex",
        }
    }

    /// The layer, for layer vertices.
    pub fn layer(&self) -> Option<&LayerConf> {
        match self {
            VertexConf::Layer { layer, .. } => Some(layer),
            _ => None,
        }
    }

    /// (min, max) number of inputs.
    pub(super) fn arity(&self) -> (usize, usize) {
        match self {
            VertexConf::Merge | VertexConf::Stack => (1, usize::MAX),
            VertexConf::ElementWise {
                op: ElementWiseOp::Subtract,
            } => (2, 2),
            VertexConf::ElementWise { .. } => (1, usize::MAX),
            VertexConf::DuplicateToTimeSeries => (2, 2),
            _ => (1, 1),
        }
    }

    /// Output type from the input types, or why they don't fit.
    pub(crate) fn output_type(&self, inputs: &[InputType]) -> Result<InputType, String> {
        let first = inputs[0];
        let same_kind = |a: &InputType, b: &InputType| {
            std::mem::discriminant(&a.with_axis1(1)) == std::mem::discriminant(&b.with_axis1(1))
        };
        match self {
            VertexConf::Layer { .. } => Err("layers are inferred by the graph".into()),
            VertexConf::Merge => {
                let mut total = 0;
                for t in inputs {
                    if !same_kind(t, &first) || t.with_axis1(1) != first.with_axis1(1) {
                        return Err(format!(
                            "merges along axis 1, so every input must match except there: \
                             found {first} and {t}"
                        ));
                    }
                    total = usize::checked_add(total, t.axis1())
                        .ok_or_else(|| format!("the merged size overflows (inputs {inputs:?})"))?;
                }
                Ok(first.with_axis1(total))
            }
            VertexConf::ElementWise { .. } | VertexConf::Stack => {
                for t in inputs {
                    let (a, b) = (t.with_axis1(t.axis1()), first.with_axis1(first.axis1()));
                    if a != b {
                        return Err(format!(
                            "inputs must have equal types, found {first} and {t}"
                        ));
                    }
                }
                Ok(first.with_axis1(first.axis1()))
            }
            VertexConf::Subset { from, to } => {
                let n = first.axis1();
                if from > to || *to >= n {
                    return Err(format!(
                        "subset {from}..={to} is outside the input's {n} features ({first}): \
                         expected from <= to < {n}"
                    ));
                }
                Ok(first.with_axis1(to - from + 1))
            }
            VertexConf::Unstack { from, stack_size } => {
                if *stack_size == 0 || from >= stack_size {
                    return Err(format!(
                        "part {from} of {stack_size} does not exist: expected from < stack_size"
                    ));
                }
                Ok(first.with_axis1(first.axis1()))
            }
            VertexConf::L2Normalize { eps } => {
                if !(*eps > 0.0 && eps.is_finite()) {
                    return Err(format!("eps must be finite and > 0, found {eps}"));
                }
                Ok(first.with_axis1(first.axis1()))
            }
            VertexConf::Scale { factor: v } | VertexConf::Shift { shift: v } => {
                if !v.is_finite() {
                    return Err(format!("the value must be finite, found {v}"));
                }
                Ok(first.with_axis1(first.axis1()))
            }
            VertexConf::Preprocessor { preprocessor } => preprocessor.output_type(&first),
            VertexConf::LastTimeStep => match first {
                InputType::Recurrent { size, .. } => Ok(InputType::feed_forward(size)),
                other => Err(format!("reads a sequence [batch, n, time], found {other}")),
            },
            VertexConf::DuplicateToTimeSeries => match (first, inputs[1]) {
                (
                    InputType::FeedForward { size },
                    InputType::Recurrent {
                        time_series_length, ..
                    },
                ) => Ok(InputType::Recurrent {
                    size,
                    time_series_length,
                }),
                (a, b) => Err(format!(
                    "reads rows [batch, n] and a reference sequence [batch, m, time], found {a} \
                     and {b}"
                )),
            },
        }
    }
}
