//! # dl4rs
//!
//! Deep learning in Rust on *workspaces*: memory arenas that learn how much one training or
//! inference cycle needs and then serve every later cycle from one block, with every misuse
//! (an array used after its cycle) caught and explained instead of reading garbage.
//!
//! This crate is the facade: `use dl4rs::prelude::*` brings in what a user needs. Each part
//! lives in its own crate and is re-exported here: [`memory`] (workspaces), [`kernels`] (gemm and SIMD loops), [`array`]
//! (NdArray), [`data`] (data sets and iterators), [`eval`] (evaluation), [`nn`] (layers and
//! networks), [`parallel`] (ParallelWrapper, ParallelInference), [`distributed`] (training
//! across processes; its MPI backend behind the feature `mpi`). The command-line program is the `dl4rs-cli` crate (binary `dl4rs`), so this
//! library pulls no argument parser or progress bars into its users' builds.
//!
//! ```
//! use dl4rs::prelude::*;
//!
//! let conf = NeuralNetConfiguration::builder()
//!     .seed(1)
//!     .updater(Updater::adam(1e-3))
//!     .list()
//!     .layer(LayerConf::dense(16).n_in(4).activation(Activation::Relu))
//!     .layer(LayerConf::output(LossFunction::Mcxent, 3).activation(Activation::Softmax))
//!     .build()?;
//! let mut net = MultiLayerNetwork::<f32>::new(conf)?;
//! let x = NdArray::<f32>::rand_uniform(&[8, 4], 0.0, 1.0, 7)?;
//! let y = NdArray::<f32>::from_slice(&[8, 3], &[1., 0., 0., 0., 1., 0., 0., 0., 1., 1., 0., 0.,
//!                                             0., 1., 0., 0., 0., 1., 1., 0., 0., 0., 1., 0.])?;
//! net.fit(&DataSet::new(x.dup()?, y)?)?;
//! let probabilities = net.output(&x, false)?;
//! assert_eq!(probabilities.shape(), &[8, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use dl4rs_array as array;
pub use dl4rs_data as data;
pub use dl4rs_distributed as distributed;
pub use dl4rs_eval as eval;
pub use dl4rs_kernels as kernels;
pub use dl4rs_memory as memory;
pub use dl4rs_nn as nn;
pub use dl4rs_parallel as parallel;

/// The names most programs need.
pub mod prelude {
    pub use dl4rs_array::{ArrayOps, AsView, NdArray};
    pub use dl4rs_data::{
        DataSet, DataSetIterator, InMemoryDataSetIterator, InMemoryMultiDataSetIterator,
        MultiDataSet, MultiDataSetIterator,
    };
    pub use dl4rs_eval::{Evaluation, IEvaluation, RegressionEvaluation, Roc};
    pub use dl4rs_memory::{
        Buffer, DebugMode, LearningPolicy, ResetPolicy, SpillPolicy, Workspace, WorkspaceConfig,
        WorkspaceError, WorkspaceScope, allocation_report,
        destroy_all_workspaces_for_current_thread, get_and_activate_workspace,
        get_workspace_for_current_thread, scope_out_of_workspaces,
    };
    pub use dl4rs_nn::{
        Activation, ArrayType, ComputationGraph, ComputationGraphConfiguration, ElementWiseOp,
        InputPreProcessor, InputType, LayerConf, LayerWorkspaceMgr, LossFunction, Model,
        ModelSerializer, MultiLayerConfiguration, MultiLayerNetwork, NeuralNetConfiguration,
        Updater, VertexConf, WeightInit, WorkspaceMode,
    };
}
