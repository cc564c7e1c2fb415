//! Network configuration: DL4J's builders (`NeuralNetConfiguration::builder()...list()` for a
//! [`MultiLayerConfiguration`], `...graph_builder()` for a [`ComputationGraphConfiguration`]),
//! layer and vertex configurations, workspace modes, type and size inference from
//! [`crate::InputType`]s, validation with clear errors, and a JSON round trip (serde). This
//! module owns no arrays; `crate::model` builds networks from these configurations.

pub(crate) mod conv;
mod feed_forward;
mod graph;
mod layer;
mod mode;
mod multi_layer;
mod recurrent;
mod spatial;
mod vertex;

pub(crate) use graph::Source;
pub use graph::{ComputationGraphConfiguration, GraphBuilder, GraphVertexConf};
pub use layer::{
    ActivationConf, BatchNormConf, BidirectionalConf, ConvolutionBuilder, ConvolutionConf,
    ConvolutionMode, CroppingConf, DenseBuilder, DenseConf, DepthwiseBuilder,
    DepthwiseConvolutionConf, DropoutConf, GlobalPoolingConf, GruBuilder, GruConf,
    LastTimeStepConf, LayerConf, LossConf, LstmBuilder, LstmConf, MaskZeroConf, OutputBuilder,
    OutputConf, PoolingType, RnnLossConf, RnnOutputBuilder, RnnOutputConf, SimpleRnnBuilder,
    SimpleRnnConf, SubsamplingBuilder, SubsamplingConf, TimeDistributedConf, UpsamplingConf,
    ZeroPaddingConf,
};
pub use mode::{BackpropType, GlobalConf, WorkspaceMode};
pub use multi_layer::{ListBuilder, MultiLayerConfiguration, NeuralNetConfiguration};
pub use vertex::{ElementWiseOp, VertexConf};
