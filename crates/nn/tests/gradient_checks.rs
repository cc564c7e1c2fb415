//! Gradient checks in f64: for every layer, loss and activation, the analytic gradient from
//! backprop matches central differences of the score, parameter by parameter.

use dl4rs_array::{AsView, NdArray};
use dl4rs_nn::*;

mod common;

fn data(
    batch: usize,
    n_in: usize,
    n_out: usize,
    loss: LossFunction,
    seed: u64,
) -> (NdArray<f64>, NdArray<f64>) {
    let x = NdArray::<f64>::rand_uniform(&[batch, n_in], -1.0, 1.0, seed).unwrap();
    let mut y = vec![0.0; batch * n_out];
    for r in 0..batch {
        match loss {
            LossFunction::Mcxent | LossFunction::NegativeLogLikelihood => {
                y[r * n_out + (r * 7 + 3) % n_out] = 1.0;
            }
            LossFunction::Xent => {
                for c in 0..n_out {
                    y[r * n_out + c] = ((r + c) % 2) as f64;
                }
            }
            _ => {
                for c in 0..n_out {
                    y[r * n_out + c] = ((r * 13 + c * 7) % 11) as f64 / 11.0 - 0.5;
                }
            }
        }
    }
    (x, NdArray::from_slice(&[batch, n_out], &y).unwrap())
}

/// Checks every parameter's gradient; returns the number checked.
fn check(conf: MultiLayerConfiguration, loss: LossFunction, label: &str) -> usize {
    let n_in = conf.n_in();
    let n_out = conf.n_out();
    let mut net = MultiLayerNetwork::<f64>::new(conf).unwrap();
    let (x, y) = data(6, n_in, n_out, loss, 11);
    net.compute_gradient_and_score(&x, &y).unwrap();
    let analytic = net.gradients().to_vec().unwrap();
    let largest = analytic.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(
        largest > 1e-4,
        "{label}: the gradient is (near) zero: nothing to check"
    );
    let original = net.params().to_vec().unwrap();
    let n = original.len();
    common::check_gradients(
        &analytic,
        &original,
        |p| {
            net.set_params(&NdArray::from_slice(&[n], p).unwrap())
                .unwrap();
            net.compute_gradient_and_score(&x, &y).unwrap()
        },
        label,
    );
    n
}

fn mlp(hidden: Activation, out_act: Activation, loss: LossFunction) -> MultiLayerConfiguration {
    NeuralNetConfiguration::builder()
        .seed(3)
        .list()
        .layer(
            LayerConf::dense(5)
                .n_in(4)
                .activation(hidden)
                .bias_init(0.1),
        )
        .layer(LayerConf::output(loss, 3).activation(out_act))
        .build()
        .unwrap()
}

#[test]
fn every_activation_in_a_dense_layer() {
    for act in [
        Activation::Identity,
        Activation::Relu,
        Activation::leaky_relu(),
        Activation::elu(),
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softmax,
        Activation::Softplus,
        Activation::Gelu,
    ] {
        let n = check(
            mlp(act, Activation::Softmax, LossFunction::Mcxent),
            LossFunction::Mcxent,
            &format!("{act:?}"),
        );
        assert_eq!(n, 4 * 5 + 5 + 5 * 3 + 3);
    }
}

#[test]
fn every_loss_with_its_activations() {
    let cases = [
        (LossFunction::Mcxent, Activation::Softmax),
        (LossFunction::NegativeLogLikelihood, Activation::Softmax),
        (LossFunction::Mcxent, Activation::Sigmoid),
        (LossFunction::Xent, Activation::Sigmoid),
        (LossFunction::Mse, Activation::Identity),
        (LossFunction::Mse, Activation::Tanh),
        (LossFunction::L1, Activation::Identity),
        (LossFunction::Xent, Activation::Softmax),
    ];
    for (loss, act) in cases {
        check(
            mlp(Activation::Tanh, act, loss),
            loss,
            &format!("{loss:?} + {act:?}"),
        );
    }
}

#[test]
fn loss_activation_dropout_and_batchnorm_layers() {
    let conf = NeuralNetConfiguration::builder()
        .seed(5)
        .list()
        .layer(LayerConf::dense(6).n_in(4).activation(Activation::Identity))
        .layer(LayerConf::batch_norm())
        .layer(LayerConf::activation(Activation::Tanh))
        .layer(LayerConf::dropout(0.7))
        .layer(LayerConf::dense(3).activation(Activation::Identity))
        .layer(LayerConf::loss(LossFunction::Mcxent, Activation::Softmax))
        .build()
        .unwrap();
    check(
        conf,
        LossFunction::Mcxent,
        "dense/bn/activation/dropout/dense/loss",
    );
    let conf = NeuralNetConfiguration::builder()
        .seed(6)
        .list()
        .layer(LayerConf::dense(3).n_in(4).activation(Activation::Sigmoid))
        .layer(LayerConf::loss(LossFunction::Mse, Activation::Identity))
        .build()
        .unwrap();
    check(conf, LossFunction::Mse, "dense + MSE loss layer");
}

#[test]
fn gradients_are_independent_of_workspace_mode() {
    let build = |mode| {
        NeuralNetConfiguration::builder()
            .seed(9)
            .training_workspace_mode(mode)
            .list()
            .layer(LayerConf::dense(5).n_in(4).activation(Activation::Relu))
            .layer(LayerConf::output(LossFunction::Mcxent, 3).activation(Activation::Softmax))
            .build()
            .unwrap()
    };
    let (x, y) = data(6, 4, 3, LossFunction::Mcxent, 2);
    let mut a = MultiLayerNetwork::<f64>::new(build(WorkspaceMode::Enabled)).unwrap();
    let mut b = MultiLayerNetwork::<f64>::new(build(WorkspaceMode::None)).unwrap();
    assert_eq!(
        a.compute_gradient_and_score(&x, &y).unwrap(),
        b.compute_gradient_and_score(&x, &y).unwrap()
    );
    assert_eq!(
        a.gradients().view().to_vec().unwrap(),
        b.gradients().view().to_vec().unwrap()
    );
}
