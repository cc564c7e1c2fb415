//! # dl4rs-nn: networks on workspaces
//!
//! The DL4J half of dl4rs: a layer API whose arrays are placed by a [`LayerWorkspaceMgr`]
//! according to their [`ArrayType`]; networks of every shape — [`MultiLayerNetwork`] (a stack
//! of layers) and [`ComputationGraph`] (a DAG with several inputs and outputs, merges and skip
//! connections) — on one engine whose training and inference run in workspaces by default
//! ([`WorkspaceMode::Enabled`]; `None` turns them off with bit-identical results); the three
//! array layouts as [`InputType`]s with the [`InputPreProcessor`]s between them; DL4J-style
//! configuration builders with a JSON round trip; updaters over flat parameter arrays;
//! listeners; and model files (configuration JSON plus one safetensors tensor per parameter).
//!
//! In steady state a training iteration allocates nothing on the heap: the batch,
//! activations and caches live in the all-layers workspace, scratch in the per-vertex working
//! memory, activation gradients in a pool of workspaces freed by liveness, and parameters,
//! gradients and updater state are preallocated flat arrays.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod activation;
pub mod atomic_file;
pub mod conf;
mod error;
mod graph;
mod input_type;
pub mod layers;
pub mod listeners;
pub mod loss;
mod model;
mod multi_layer;
pub mod preprocessor;
pub mod serializer;
pub mod stats;
mod summary;
pub mod updater;
mod vertex;
pub mod weight_init;
mod workspace_mgr;

pub use activation::Activation;
pub use conf::{
    BackpropType, ComputationGraphConfiguration, ConvolutionMode, ElementWiseOp, GlobalConf,
    GraphBuilder, LayerConf, MultiLayerConfiguration, NeuralNetConfiguration, PoolingType,
    VertexConf, WorkspaceMode,
};
pub use conf::{
    BidirectionalConf, GruBuilder, GruConf, LastTimeStepConf, LstmBuilder, LstmConf, MaskZeroConf,
    RnnLossConf, RnnOutputBuilder, RnnOutputConf, SimpleRnnBuilder, SimpleRnnConf,
    TimeDistributedConf,
};
pub use error::NnError;
pub use graph::ComputationGraph;
pub use input_type::{Accepts, InputType};
pub use layers::{
    BidirectionalLayer, BidirectionalMode, GruLayer, LastTimeStepLayer, LstmLayer, MaskZeroLayer,
    RnnOutputLayer, SimpleRnnLayer, TimeDistributedLayer,
};
pub use layers::{
    Epsilon, Forward, Layer, LayerInfo, LayerInput, MaskOut, ParamSpec, RecurrentMode,
    RnnStateSlot, Saved, StepContext,
};
pub use listeners::{
    CheckpointListener, IterationInfo, PerformanceListener, ScoreIterationListener,
    TrainingListener,
};
pub use loss::LossFunction;
pub use model::{Model, ModelKind, ParamEntry};
pub use multi_layer::MultiLayerNetwork;
pub use preprocessor::InputPreProcessor;
pub use serializer::{ModelSerializer, RestoredModel};
pub use stats::{StatsConfig, StatsFile, StatsHandle, StatsListener};
pub use updater::{Regularization, Updater};
pub use weight_init::WeightInit;
pub use workspace_mgr::{ArrayType, LayerWorkspaceMgr, LayerWorkspaceMgrBuilder};
