//! # dl4rs-nn: networks on workspaces
//!
//! The DL4J half of dl4rs: a layer API whose arrays are placed by a [`LayerWorkspaceMgr`]
//! according to their [`ArrayType`], networks ([`MultiLayerNetwork`]) whose training and
//! inference run in workspaces by default ([`WorkspaceMode::Enabled`]; `None` turns them off
//! with bit-identical results), a DL4J-style configuration builder with a JSON round trip,
//! updaters over flat parameter arrays, listeners, and model files (configuration JSON plus
//! safetensors).
//!
//! In steady state a training iteration allocates nothing on the heap: the batch,
//! activations and caches live in the all-layers workspace, scratch in the per-layer working
//! memory, activation gradients in two ping-pong workspaces, and parameters, gradients and
//! updater state are preallocated flat arrays.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod activation;
pub mod conf;
mod error;
pub mod layers;
pub mod listeners;
pub mod loss;
mod network;
pub mod serializer;
pub mod updater;
pub mod weight_init;
mod workspace_mgr;

pub use activation::Activation;
pub use conf::{LayerConf, MultiLayerConfiguration, NeuralNetConfiguration, WorkspaceMode};
pub use error::NnError;
pub use layers::{Epsilon, Layer, ParamSpec, StepContext};
pub use listeners::{
    CheckpointListener, IterationInfo, PerformanceListener, ScoreIterationListener,
    TrainingListener,
};
pub use loss::LossFunction;
pub use network::MultiLayerNetwork;
pub use serializer::ModelSerializer;
pub use updater::{Regularization, Updater};
pub use weight_init::WeightInit;
pub use workspace_mgr::{ArrayType, LayerWorkspaceMgr, LayerWorkspaceMgrBuilder};
