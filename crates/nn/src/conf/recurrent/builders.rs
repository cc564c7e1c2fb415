//! Builders of the recurrent family's configurations (`LayerConf::lstm(n).…build()` and the
//! like): setters for what each configuration leaves optional.

use super::{GruConf, LstmConf, RnnOutputConf, SimpleRnnConf};
use crate::activation::Activation;
use crate::conf::LayerConf;
use crate::weight_init::WeightInit;

/// Builder for an LSTM.
#[derive(Debug, Clone)]
pub struct LstmBuilder(pub(super) LstmConf);

impl LstmBuilder {
    /// Sets the name.
    pub fn name(mut self, name: &str) -> Self {
        self.0.name = Some(name.to_string());
        self
    }
    /// Sets the number of inputs per step (otherwise inferred).
    pub fn n_in(mut self, n_in: usize) -> Self {
        self.0.n_in = Some(n_in);
        self
    }
    /// Sets the block-input and cell activation (tanh).
    pub fn activation(mut self, activation: Activation) -> Self {
        self.0.activation = Some(activation);
        self
    }
    /// Sets the gate activation (sigmoid).
    pub fn gate_activation(mut self, activation: Activation) -> Self {
        self.0.gate_activation = activation;
        self
    }
    /// Sets the weight initialization.
    pub fn weight_init(mut self, init: WeightInit) -> Self {
        self.0.weight_init = Some(init);
        self
    }
    /// Sets the forget gate's initial bias (1.0).
    pub fn forget_gate_bias_init(mut self, bias: f64) -> Self {
        self.0.forget_gate_bias_init = bias;
        self
    }
    /// The layer configuration.
    pub fn build(self) -> LayerConf {
        LayerConf::Lstm(self.0)
    }
}

/// Builder for a GRU.
#[derive(Debug, Clone)]
pub struct GruBuilder(pub(super) GruConf);

impl GruBuilder {
    /// Sets the name.
    pub fn name(mut self, name: &str) -> Self {
        self.0.name = Some(name.to_string());
        self
    }
    /// Sets the number of inputs per step (otherwise inferred).
    pub fn n_in(mut self, n_in: usize) -> Self {
        self.0.n_in = Some(n_in);
        self
    }
    /// Sets the candidate activation (tanh).
    pub fn activation(mut self, activation: Activation) -> Self {
        self.0.activation = Some(activation);
        self
    }
    /// Sets the gate activation (sigmoid).
    pub fn gate_activation(mut self, activation: Activation) -> Self {
        self.0.gate_activation = activation;
        self
    }
    /// Sets the weight initialization.
    pub fn weight_init(mut self, init: WeightInit) -> Self {
        self.0.weight_init = Some(init);
        self
    }
    /// The layer configuration.
    pub fn build(self) -> LayerConf {
        LayerConf::Gru(self.0)
    }
}

impl From<GruBuilder> for LayerConf {
    fn from(b: GruBuilder) -> LayerConf {
        b.build()
    }
}

/// Builder for a simple recurrent layer.
#[derive(Debug, Clone)]
pub struct SimpleRnnBuilder(pub(super) SimpleRnnConf);

impl SimpleRnnBuilder {
    /// Sets the name.
    pub fn name(mut self, name: &str) -> Self {
        self.0.name = Some(name.to_string());
        self
    }
    /// Sets the number of inputs per step (otherwise inferred).
    pub fn n_in(mut self, n_in: usize) -> Self {
        self.0.n_in = Some(n_in);
        self
    }
    /// Sets the activation (tanh).
    pub fn activation(mut self, activation: Activation) -> Self {
        self.0.activation = Some(activation);
        self
    }
    /// Sets the weight initialization.
    pub fn weight_init(mut self, init: WeightInit) -> Self {
        self.0.weight_init = Some(init);
        self
    }
    /// The layer configuration.
    pub fn build(self) -> LayerConf {
        LayerConf::SimpleRnn(self.0)
    }
}

impl From<SimpleRnnBuilder> for LayerConf {
    fn from(b: SimpleRnnBuilder) -> LayerConf {
        b.build()
    }
}

/// Builder for an RNN output layer.
#[derive(Debug, Clone)]
pub struct RnnOutputBuilder(pub(super) RnnOutputConf);

impl RnnOutputBuilder {
    /// Sets the name.
    pub fn name(mut self, name: &str) -> Self {
        self.0.name = Some(name.to_string());
        self
    }
    /// Sets the number of inputs per step (otherwise inferred).
    pub fn n_in(mut self, n_in: usize) -> Self {
        self.0.n_in = Some(n_in);
        self
    }
    /// Sets the activation.
    pub fn activation(mut self, activation: Activation) -> Self {
        self.0.activation = Some(activation);
        self
    }
    /// Sets the weight initialization.
    pub fn weight_init(mut self, init: WeightInit) -> Self {
        self.0.weight_init = Some(init);
        self
    }
    /// Sets the initial bias.
    pub fn bias_init(mut self, bias: f64) -> Self {
        self.0.bias_init = bias;
        self
    }
    /// The layer configuration.
    pub fn build(self) -> LayerConf {
        LayerConf::RnnOutput(self.0)
    }
}

impl From<LstmBuilder> for LayerConf {
    fn from(b: LstmBuilder) -> LayerConf {
        b.build()
    }
}

impl From<RnnOutputBuilder> for LayerConf {
    fn from(b: RnnOutputBuilder) -> LayerConf {
        b.build()
    }
}
