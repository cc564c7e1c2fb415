//! A custom layer: a parameterless "scale by 2" layer that places its arrays through the
//! `LayerWorkspaceMgr` by array type, plugged into a network with `set_layer`. Returning an
//! array from the wrong place would be reported with the layer's index, name and workspaces.
//!
//! `cargo run --release -p dl4rs --example custom_layer`

use dl4rs::array::ops::{self, BinaryOp};
use dl4rs::array::{ArrayView, ArrayViewMut};
use dl4rs::nn::{
    Epsilon, Forward, InputType, Layer, LayerInfo, LayerInput, NnError, Saved, StepContext,
};
use dl4rs::prelude::*;

/// `y = 2x` over rows of width `n`: it says once what it reads and writes, then computes.
struct Double {
    info: LayerInfo,
}

impl Double {
    fn new(n: usize) -> Self {
        let rows = InputType::feed_forward(n);
        Double {
            info: LayerInfo::new("Double", rows, rows).named(Some("double".into())),
        }
    }
}

impl Layer<f32> for Double {
    fn info(&self) -> &LayerInfo {
        &self.info
    }

    fn init_params(&self, _params: &mut [f32], _seed: u64) {}

    fn forward(
        &mut self,
        input: &LayerInput<'_, f32>,
        _params: &ArrayView<'_, f32>,
        _ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Forward<f32>, NnError> {
        // Activations go where the network says activations go (ArrayType::Activations).
        let mut out = mgr.dup(ArrayType::Activations, &input.activations)?;
        ops::scalar_assign(BinaryOp::Mul, &mut out, 2.0)?;
        Ok(Forward::new(out))
    }

    fn backward(
        &self,
        _saved: &Saved<'_, f32>,
        epsilon: Epsilon<'_, f32>,
        _params: &ArrayView<'_, f32>,
        _grads: &mut ArrayViewMut<'_, f32>,
        ctx: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<f32>>, NnError> {
        let g = epsilon.gradient("Double")?;
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
    net.set_layer(1, Box::new(Double::new(16)))?;
    let x = NdArray::<f32>::rand_uniform(&[8, 4], -1.0, 1.0, 2)?;
    let y = NdArray::<f32>::rand_uniform(&[8, 2], -1.0, 1.0, 3)?;
    let before = net.score_arrays(&x, &y)?;
    for _ in 0..50 {
        net.fit_arrays(&x, &y)?;
    }
    println!("loss {before:.4} -> {:.4}", net.score_arrays(&x, &y)?);
    Ok(())
}
