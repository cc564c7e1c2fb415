//! A custom layer: a parameterless "scale by 2" layer that places its arrays through the
//! `LayerWorkspaceMgr` by array type, plugged into a network with `set_layer`. Returning an
//! array from the wrong place would be reported with the layer's index, name and workspaces.
//!
//! `cargo run --release -p dl4rs --example custom_layer`

use dl4rs::array::ops::{self, BinaryOp};
use dl4rs::array::{ArrayView, ArrayViewMut};
use dl4rs::nn::{Epsilon, Layer, NnError, ParamSpec, StepContext};
use dl4rs::prelude::*;

struct Double {
    n: usize,
}

impl Layer<f32> for Double {
    fn kind(&self) -> &'static str {
        "Double"
    }
    fn name(&self) -> Option<&str> {
        Some("double")
    }
    fn n_in(&self) -> usize {
        self.n
    }
    fn n_out(&self) -> usize {
        self.n
    }
    fn param_specs(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn init_params(&self, _params: &mut [f32], _seed: u64) {}

    fn activate(
        &mut self,
        input: &ArrayView<'_, f32>,
        _params: &ArrayView<'_, f32>,
        _ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<NdArray<f32>, NnError> {
        // Activations go where the network says activations go (ArrayType::Activations).
        let mut out = mgr.dup(ArrayType::Activations, input)?;
        ops::scalar_assign(BinaryOp::Mul, &mut out, 2.0)?;
        Ok(out)
    }

    fn backprop_gradient(
        &mut self,
        _input: &ArrayView<'_, f32>,
        _output: &ArrayView<'_, f32>,
        epsilon: Epsilon<'_, f32>,
        _params: &ArrayView<'_, f32>,
        _grads: &mut ArrayViewMut<'_, f32>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<f32>>, NnError> {
        let Epsilon::Gradient(g) = epsilon else {
            return Err(NnError::Input("Double is not an output layer".into()));
        };
        if !ctx.need_input_gradient {
            return Ok(None);
        }
        // The input gradient goes to ArrayType::ActivationGrad.
        let mut dx = mgr.dup(ArrayType::ActivationGrad, &g)?;
        ops::scalar_assign(BinaryOp::Mul, &mut dx, 2.0)?;
        Ok(Some(dx))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let conf = NeuralNetConfiguration::builder()
        .seed(1)
        .list()
        .layer(LayerConf::dense(16).n_in(4).activation(Activation::Tanh))
        .layer(LayerConf::activation(Activation::Identity)) // placeholder of the right shape
        .layer(LayerConf::output(LossFunction::Mse, 2).activation(Activation::Identity))
        .build()?;
    let mut net = MultiLayerNetwork::<f32>::new(conf)?;
    net.set_layer(1, Box::new(Double { n: 16 }))?;
    let x = NdArray::<f32>::rand_uniform(&[8, 4], -1.0, 1.0, 2)?;
    let y = NdArray::<f32>::rand_uniform(&[8, 2], -1.0, 1.0, 3)?;
    let before = net.score_arrays(&x, &y)?;
    for _ in 0..50 {
        net.fit_arrays(&x, &y)?;
    }
    println!("loss {before:.4} -> {:.4}", net.score_arrays(&x, &y)?);
    Ok(())
}
