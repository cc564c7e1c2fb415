//! The recurrent networks the CLI builds: the built-in sequence classifier of `dl4rs train
//! --model lstm`, and W3's network for `dl4rs bench rnn` with the spec's PyTorch weights mapped
//! onto our LSTM's parameter layout.
//!
//! Our LSTM (`dl4rs_nn::layers::LstmLayer`, DL4J's layout) stores `W [n_in, 4H]`,
//! `RW [H, 4H]` and one bias `b [4H]`, each with the gate column blocks in DL4J's order
//! a (block input, tanh), f, o, i. PyTorch stores `W_ih [4H, n_in]`, `W_hh [4H, H]` (rows in
//! the order i, f, g, o, where g is the block input) and two biases that are always added
//! together. So PyTorch's row `p * H + h` of a weight is our column `ours(p) * H + h`, with
//! `ours = [i -> 3, f -> 1, g -> 0, o -> 2]`, and our bias is `b_ih + b_hh` in the same order.
//!
//! Two biases are not one under training, though: each of `b_ih` and `b_hh` gets the gradient
//! `g` of their sum, so one SGD step moves the sum by `2 * lr * g`. [`W3Trainer`] reproduces
//! PyTorch's run exactly by doubling our bias's gradient before the update (256 values); a
//! plain `fit` trains the single-bias model DL4J defines, whose W3 run ends 1.1e-4 lower
//! (1.585860 against 1.585973; an f64 run and an independent f64 two-bias reference agree
//! with each figure to 1e-7).

use std::ops::Range;

use dl4rs::array::NdArray;
use dl4rs::data::DataSet;
use dl4rs::nn::{
    Activation, BackpropType, InputType, LayerConf, LossFunction, Model, MultiLayerNetwork,
    NeuralNetConfiguration, Updater, WeightInit, WorkspaceMode,
};

use super::CliError;
use super::rnn_bench::{BATCH, CLASSES, HIDDEN, INPUTS, W3Init};
use super::train::{Mode, TrainArgs};

/// Units of the built-in classifier's LSTM.
pub const LSTM_UNITS: usize = 64;

/// For PyTorch's gate block `p` (i, f, g, o), our block (a, f, o, i).
const TORCH_TO_OURS: [usize; 4] = [3, 1, 0, 2];

/// `dl4rs train --model lstm`: LSTM 64 (tanh, sigmoid gates, forget-gate bias 1), the last
/// unmasked step of each sequence, a softmax output of `classes`; Adam, Xavier-uniform
/// weights unless `--weight-init` says otherwise. With `--tbptt K` the head is an
/// `RnnOutputLayer` instead (truncated BPTT cuts labels along time, so they must be per step:
/// each sequence's label on its last step, the label mask elsewhere 0), trained in segments
/// of K steps.
pub fn lstm_classifier(
    args: &TrainArgs,
    channels: usize,
    classes: usize,
) -> Result<Box<dyn Model<f32>>, CliError> {
    let mode = WorkspaceMode::from(args.workspaces.unwrap_or(Mode::Enabled));
    let init = args
        .weight_init
        .map_or(WeightInit::XavierUniform, Into::into);
    let list = NeuralNetConfiguration::builder()
        .seed(args.seed)
        .updater(Updater::adam(args.lr))
        .weight_init(init)
        .training_workspace_mode(mode)
        .inference_workspace_mode(mode)
        .list();
    let lstm = LayerConf::lstm(LSTM_UNITS).name("lstm");
    let list = match args.tbptt {
        None => list.layer(LayerConf::last_time_step(lstm)).layer(
            LayerConf::output(LossFunction::Mcxent, classes)
                .activation(Activation::Softmax)
                .name("output"),
        ),
        Some(k) => list
            .layer(lstm)
            .layer(
                LayerConf::rnn_output(LossFunction::Mcxent, classes)
                    .activation(Activation::Softmax)
                    .name("output"),
            )
            .backprop_type(BackpropType::TruncatedBptt)
            .tbptt_forward_length(k)
            .tbptt_backward_length(k),
    };
    let conf = list
        .set_input_type(InputType::recurrent(channels))
        .build()?;
    Ok(Box::new(MultiLayerNetwork::<f32>::new(conf)?))
}

/// W3's network (LSTM 32 -> 64 read at its last step, dense 64 -> 5 softmax + cross-entropy,
/// SGD 0.1) with the spec's initial weights.
pub fn w3_network() -> Result<MultiLayerNetwork<f32>, CliError> {
    let conf = NeuralNetConfiguration::builder()
        .seed(0)
        .updater(Updater::sgd(0.1))
        .list()
        .layer(LayerConf::last_time_step(LayerConf::lstm(HIDDEN)))
        .layer(LayerConf::output(LossFunction::Mcxent, CLASSES).activation(Activation::Softmax))
        .set_input_type(InputType::recurrent(INPUTS))
        .build()?;
    let mut net = MultiLayerNetwork::<f32>::new(conf)?;
    let params = w3_params(&W3Init::new());
    if params.len() != net.num_params() {
        return Err(CliError::Usage(format!(
            "W3: the network has {} parameters but the spec's weights are {} values: the LSTM's \
             parameter layout is not the documented W, RW, b",
            net.num_params(),
            params.len()
        )));
    }
    net.set_params(&NdArray::from_slice_detached(&[params.len()], &params)?)?;
    Ok(net)
}

/// W3's training step as PyTorch takes it (see the module docs): gradient, the LSTM bias's
/// gradient doubled (PyTorch's `b_ih` and `b_hh` each get it), SGD update. Allocation-free
/// like `fit`.
pub struct W3Trainer {
    /// The network ([`w3_network`]).
    pub net: MultiLayerNetwork<f32>,
    bias: Range<usize>,
}

impl W3Trainer {
    /// The network with the spec's weights.
    pub fn new() -> Result<Self, CliError> {
        let net = w3_network()?;
        let bias = net
            .param_table()
            .iter()
            .find(|e| e.key == "0_b")
            .map(|e| e.range.clone())
            .filter(|r| r.len() == 4 * HIDDEN)
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "W3: no LSTM bias \"0_b\" of {} values in the parameter table",
                    4 * HIDDEN
                ))
            })?;
        Ok(W3Trainer { net, bias })
    }

    /// One training iteration on `data`.
    pub fn step(&mut self, data: &DataSet) -> Result<(), CliError> {
        self.net.compute_gradient_data_set(data)?;
        {
            let mut g = self.net.gradients_mut().write()?;
            let g = g.as_slice_mut().ok_or_else(|| {
                CliError::Usage("W3: the gradient array is not contiguous".into())
            })?;
            for v in &mut g[self.bias.clone()] {
                *v += *v;
            }
        }
        self.net.apply_gradients(BATCH)?;
        Ok(())
    }

    /// The loss of the latest step.
    pub fn last_loss(&self) -> f64 {
        self.net.last_score()
    }
}

/// The spec's weights in our flat layout: LSTM `W [32][256]`, `RW [64][256]`, `b [256]`, then
/// the head's `W [64][5]` and `b [5]`.
pub fn w3_params(init: &W3Init) -> Vec<f32> {
    let g = 4 * HIDDEN;
    let mut params = Vec::with_capacity(INPUTS * g + HIDDEN * g + g + HIDDEN * CLASSES + CLASSES);
    // PyTorch's weight `[4H][n]` (row p*H + h) to ours `[n][4H]` (column ours(p)*H + h).
    let transpose = |torch: &[f32], n: usize, out: &mut Vec<f32>| {
        let start = out.len();
        out.resize(start + n * g, 0.0);
        for (p, &o) in TORCH_TO_OURS.iter().enumerate() {
            for h in 0..HIDDEN {
                for k in 0..n {
                    out[start + k * g + o * HIDDEN + h] = torch[(p * HIDDEN + h) * n + k];
                }
            }
        }
    };
    transpose(&init.w_ih, INPUTS, &mut params);
    transpose(&init.w_hh, HIDDEN, &mut params);
    let start = params.len();
    params.resize(start + g, 0.0);
    for (p, &o) in TORCH_TO_OURS.iter().enumerate() {
        for h in 0..HIDDEN {
            params[start + o * HIDDEN + h] = init.bias[p * HIDDEN + h];
        }
    }
    params.extend_from_slice(&init.head_w);
    params.extend_from_slice(&init.head_b);
    params
}

#[cfg(test)]
mod tests {
    use super::*;
    use dl4rs::array::AsView;

    #[test]
    fn torch_gates_land_in_our_blocks() {
        let init = W3Init::new();
        let p = w3_params(&init);
        let g = 4 * HIDDEN;
        assert_eq!(
            p.len(),
            INPUTS * g + HIDDEN * g + g + HIDDEN * CLASSES + CLASSES
        );
        // PyTorch's input gate i, unit 5, input 7 -> our block 3 (i), row 7.
        assert_eq!(p[7 * g + 3 * HIDDEN + 5], init.w_ih[(5) * INPUTS + 7]);
        // PyTorch's g (block input), unit 2, input 0 -> our block 0 (a).
        assert_eq!(p[2], init.w_ih[(2 * HIDDEN + 2) * INPUTS]);
        // PyTorch's o, recurrent from unit 9 into unit 1 -> RW row 9, our block 2 (o).
        let rw = INPUTS * g;
        assert_eq!(
            p[rw + 9 * g + 2 * HIDDEN + 1],
            init.w_hh[(3 * HIDDEN + 1) * HIDDEN + 9]
        );
        // Forget-gate bias, unit 4: block 1 in both.
        let b = rw + HIDDEN * g;
        assert_eq!(p[b + HIDDEN + 4], init.bias[HIDDEN + 4]);
    }

    /// The whole W3 run (108 iterations): with PyTorch's two biases, the last loss is
    /// PyTorch's 1.585973; with one bias (plain `fit`), the single-bias model's 1.585860.
    #[test]
    fn w3_last_loss_matches_pytorch() {
        let batches = super::super::rnn_bench::w3_data_sets().unwrap();
        let mut two_biases = W3Trainer::new().unwrap();
        let mut one_bias = w3_network().unwrap();
        for k in 0..108 {
            let data = &batches[k % 4];
            two_biases.step(data).unwrap();
            one_bias
                .fit_arrays(&data.features.view(), &data.labels.view())
                .unwrap();
        }
        let loss = two_biases.last_loss();
        let peer = super::super::rnn_bench::PEER_LOSS;
        assert!(
            (loss - peer).abs() < 2e-5,
            "last loss {loss}, PyTorch {peer}"
        );
        let single = one_bias.last_score();
        assert!(
            (single - 1.585860).abs() < 2e-5,
            "single-bias last loss {single}"
        );
    }
}
