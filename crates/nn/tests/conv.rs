//! The convolutional family: convolution against a naive convolution on random shapes, f64
//! gradient checks for every layer and mode, workspaces Enabled vs None bit-identical for CNNs in
//! both network types, and clear errors for bad shapes and sizes.

use dl4rs_array::{AsView, NdArray};
use dl4rs_data::{DataSet, MultiDataSet};
use dl4rs_nn::*;

mod common;

fn rand(shape: &[usize], seed: u64) -> NdArray<f64> {
    NdArray::<f64>::rand_uniform(shape, -1.0, 1.0, seed).unwrap()
}

fn net(input: InputType, layers: Vec<LayerConf>, mode: WorkspaceMode) -> MultiLayerNetwork<f64> {
    let mut list = NeuralNetConfiguration::builder()
        .seed(11)
        .updater(Updater::sgd(0.05))
        .training_workspace_mode(mode)
        .inference_workspace_mode(mode)
        .list()
        .set_input_type(input);
    for l in layers {
        list = list.layer(l);
    }
    MultiLayerNetwork::new(list.build().unwrap()).unwrap()
}

/// Checks every parameter's gradient of `net` on `(x, y)` (with an optional label mask).
fn check(mut net: MultiLayerNetwork<f64>, data: &DataSet<f64>, label: &str) {
    net.compute_gradient_and_score_data_set(data).unwrap();
    let analytic = net.gradients().to_vec().unwrap();
    let largest = analytic.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(largest > 1e-5, "{label}: the gradient is (near) zero");
    let original = net.params().to_vec().unwrap();
    let n = original.len();
    common::check_gradients(
        &analytic,
        &original,
        |p| {
            net.set_params(&NdArray::from_slice(&[n], p).unwrap())
                .unwrap();
            net.compute_gradient_and_score_data_set(data).unwrap()
        },
        label,
    );
}

fn mse(n: usize) -> LayerConf {
    LayerConf::output(LossFunction::Mse, n)
        .activation(Activation::Identity)
        .build()
}

fn data(x: NdArray<f64>, n_out: usize, seed: u64) -> DataSet<f64> {
    let batch = x.shape()[0];
    DataSet::new(x, rand(&[batch, n_out], seed)).unwrap()
}

/// A direct convolution (the definition) for `[b, c, h, w]` input and `[oc, c, kh, kw]` weights.
#[allow(clippy::too_many_arguments)]
fn naive(
    x: &[f64],
    w: &[f64],
    bias: &[f64],
    [b, c, h, wd]: [usize; 4],
    [oc, kh, kw]: [usize; 3],
    [sh, sw]: [usize; 2],
    [pt, pl]: [usize; 2],
    [dh, dw]: [usize; 2],
    [oh, ow]: [usize; 2],
) -> Vec<f64> {
    let mut out = vec![0.0; b * oc * oh * ow];
    for n in 0..b {
        for o in 0..oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = bias.get(o).copied().unwrap_or(0.0);
                    for ci in 0..c {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let y = (oy * sh + ki * dh) as isize - pt as isize;
                                let xx = (ox * sw + kj * dw) as isize - pl as isize;
                                if y >= 0 && (y as usize) < h && xx >= 0 && (xx as usize) < wd {
                                    s += x[((n * c + ci) * h + y as usize) * wd + xx as usize]
                                        * w[((o * c + ci) * kh + ki) * kw + kj];
                                }
                            }
                        }
                    }
                    out[((n * oc + o) * oh + oy) * ow + ox] = s;
                }
            }
        }
    }
    out
}

#[test]
fn convolution_matches_a_naive_convolution_on_random_shapes() {
    let mut seed = 1u64;
    let mut next = |m: usize| {
        seed = dl4rs_array::random::splitmix(seed, 7);
        (seed % m as u64) as usize
    };
    for case in 0..24 {
        let (c, h, w) = (1 + next(3), 4 + next(6), 4 + next(6));
        let (kh, kw) = (1 + next(3), 1 + next(3));
        let (sh, sw) = (1 + next(2), 1 + next(2));
        let (dh, dw) = (1 + next(2), 1 + next(2));
        let (ph, pw) = (next(2), next(2));
        let oc = 1 + next(4);
        let mode = [ConvolutionMode::Truncate, ConvolutionMode::Same][case % 2];
        let has_bias = case % 3 != 0;
        let mut conv = LayerConf::convolution(oc, [kh, kw])
            .stride([sh, sw])
            .padding([ph, pw])
            .dilation([dh, dw])
            .mode(mode)
            .bias_init(0.3);
        if !has_bias {
            conv = conv.no_bias();
        }
        let conf = NeuralNetConfiguration::builder()
            .list()
            .layer(conv)
            .set_input_type(InputType::convolutional(h, w, c))
            .build();
        let Ok(conf) = conf else { continue }; // kernel larger than the padded input
        let out_type = {
            let n = MultiLayerNetwork::<f64>::new(conf.clone()).unwrap();
            n.layer(0).unwrap().info().output_type
        };
        let InputType::Convolutional {
            height: oh,
            width: ow,
            ..
        } = out_type
        else {
            panic!("{out_type:?}")
        };
        // Same mode's padding: the odd one at the end.
        let (pt, pl) = match mode {
            ConvolutionMode::Same => {
                let ph = ((oh - 1) * sh + dh * (kh - 1) + 1).saturating_sub(h);
                let pw = ((ow - 1) * sw + dw * (kw - 1) + 1).saturating_sub(w);
                (ph / 2, pw / 2)
            }
            _ => (ph, pw),
        };
        let mut net = MultiLayerNetwork::<f64>::new(conf).unwrap();
        let b = 2;
        let x = rand(&[b, c, h, w], case as u64);
        let p = net.params().to_vec().unwrap();
        let nw = oc * c * kh * kw;
        let bias = if has_bias {
            p[nw..].to_vec()
        } else {
            Vec::new()
        };
        let want = naive(
            &x.to_vec().unwrap(),
            &p[..nw],
            &bias,
            [b, c, h, w],
            [oc, kh, kw],
            [sh, sw],
            [pt, pl],
            [dh, dw],
            [oh, ow],
        );
        let got = net.output(&x, false).unwrap();
        assert_eq!(got.shape(), &[b, oc, oh, ow]);
        for (i, (g, e)) in got.to_vec().unwrap().iter().zip(&want).enumerate() {
            assert!(
                (g - e).abs() < 1e-12,
                "case {case} ({mode:?}): element {i}: {g} vs {e}"
            );
        }
    }
}

#[test]
fn convolution_gradients_in_every_mode() {
    let cases: Vec<(&str, LayerConf)> = vec![
        (
            "3x3",
            LayerConf::convolution(3, [3, 3])
                .activation(Activation::Tanh)
                .bias_init(0.1)
                .into(),
        ),
        (
            "stride 2, padding 1",
            LayerConf::convolution(2, [3, 3])
                .stride([2, 2])
                .padding([1, 1])
                .activation(Activation::Sigmoid)
                .into(),
        ),
        (
            "dilation 2",
            LayerConf::convolution(2, [2, 2])
                .dilation([2, 2])
                .activation(Activation::Relu)
                .bias_init(0.2)
                .into(),
        ),
        (
            "same, stride 2",
            LayerConf::convolution(2, [3, 2])
                .stride([2, 2])
                .mode(ConvolutionMode::Same)
                .activation(Activation::Tanh)
                .into(),
        ),
        (
            "no bias",
            LayerConf::convolution(2, [2, 3])
                .no_bias()
                .activation(Activation::Elu { alpha: 1.0 })
                .into(),
        ),
        (
            "depthwise",
            LayerConf::depthwise_convolution(2, [3, 3])
                .padding([1, 1])
                .activation(Activation::Tanh)
                .bias_init(0.1)
                .into(),
        ),
        (
            "depthwise same",
            LayerConf::depthwise_convolution(1, [2, 2])
                .mode(ConvolutionMode::Same)
                .stride([2, 2])
                .into(),
        ),
    ];
    for (label, layer) in cases {
        let n = net(
            InputType::convolutional(5, 6, 2),
            vec![layer, mse(3)],
            WorkspaceMode::Enabled,
        );
        check(n, &data(rand(&[3, 2, 5, 6], 3), 3, 4), label);
    }
}

fn stem() -> LayerConf {
    // Parameters in front of a parameterless layer make its backward pass checkable.
    LayerConf::convolution(2, [2, 2])
        .activation(Activation::Tanh)
        .bias_init(0.1)
        .into()
}

#[test]
fn pooling_gradients_for_every_type() {
    let sub = |p: PoolingType, k: usize, s: usize| LayerConf::subsampling(p, [k, k], [s, s]);
    let cases: Vec<(&str, LayerConf)> = vec![
        ("max 2x2", sub(PoolingType::Max, 2, 2).into()),
        (
            "max 3x3 stride 1 padding 1",
            sub(PoolingType::Max, 3, 1).padding([1, 1]).into(),
        ),
        ("avg 2x2", sub(PoolingType::Avg, 2, 2).into()),
        (
            "avg same",
            sub(PoolingType::Avg, 3, 2)
                .mode(ConvolutionMode::Same)
                .into(),
        ),
        ("pnorm 2", sub(PoolingType::Pnorm, 2, 1).into()),
        ("pnorm 3", sub(PoolingType::Pnorm, 2, 2).pnorm(3.0).into()),
        ("global max", LayerConf::global_pooling(PoolingType::Max)),
        ("global avg", LayerConf::global_pooling(PoolingType::Avg)),
        ("global sum", LayerConf::global_pooling(PoolingType::Sum)),
        (
            "global pnorm",
            LayerConf::global_pooling(PoolingType::Pnorm),
        ),
    ];
    for (label, layer) in cases {
        let n = net(
            InputType::convolutional(6, 7, 2),
            vec![stem(), layer, mse(2)],
            WorkspaceMode::Enabled,
        );
        check(n, &data(rand(&[3, 2, 6, 7], 5), 2, 6), label);
    }
}

#[test]
fn global_pooling_over_time_honours_masks() {
    for pooling in [
        PoolingType::Max,
        PoolingType::Avg,
        PoolingType::Sum,
        PoolingType::Pnorm,
    ] {
        let conf = NeuralNetConfiguration::builder()
            .seed(3)
            .graph_builder()
            .add_inputs(&["seq"])
            .set_input_types(&[InputType::recurrent(3)])
            .add_layer(
                "rows",
                LayerConf::dense(4).activation(Activation::Tanh),
                &["seq"],
            )
            .add_vertex(
                "back",
                VertexConf::preprocessor(InputPreProcessor::FeedForwardToRnn),
                &["rows"],
            )
            .add_layer("pool", LayerConf::global_pooling(pooling), &["back"])
            .add_layer("out", mse(2), &["pool"])
            .set_outputs(&["out"])
            .build()
            .unwrap();
        let x = rand(&[3, 3, 5], 7);
        let y = rand(&[3, 2], 8);
        let mask = NdArray::<f64>::from_slice(
            &[3, 5],
            &[1., 1., 1., 1., 1., 1., 1., 1., 0., 0., 1., 0., 0., 0., 0.],
        )
        .unwrap();
        let masked = MultiDataSet::new(vec![x.dup().unwrap()], vec![y.dup().unwrap()])
            .unwrap()
            .with_masks(vec![Some(mask)], vec![None])
            .unwrap();
        let mut g = ComputationGraph::<f64>::new(conf.clone()).unwrap();
        // Padded steps change nothing: overwrite them with garbage, same score and gradients.
        let mut garbage = x.to_vec().unwrap();
        for b in 0..3 {
            for f in 0..3 {
                for t in 0..5 {
                    let kept = [5, 3, 1][b];
                    if t >= kept {
                        garbage[(b * 3 + f) * 5 + t] = 100.0 + t as f64;
                    }
                }
            }
        }
        let noisy = MultiDataSet::new(
            vec![NdArray::from_slice(&[3, 3, 5], &garbage).unwrap()],
            vec![y.dup().unwrap()],
        )
        .unwrap()
        .with_masks(
            vec![Some(
                masked.features_masks[0].as_ref().unwrap().dup().unwrap(),
            )],
            vec![None],
        )
        .unwrap();
        let s1 = g.compute_gradient_and_score(&masked).unwrap();
        let g1 = g.gradients().to_vec().unwrap();
        let s2 = g.compute_gradient_and_score(&noisy).unwrap();
        assert_eq!(s1, s2, "{pooling:?}: masked steps must not count");
        assert_eq!(g1, g.gradients().to_vec().unwrap());
        // And the gradient is right.
        let original = g.params().to_vec().unwrap();
        common::check_gradients(
            &g1,
            &original,
            |p| {
                g.set_params(&NdArray::from_slice(&[p.len()], p).unwrap())
                    .unwrap();
                g.compute_gradient_and_score(&masked).unwrap()
            },
            &format!("{pooling:?}"),
        );
    }
}

#[test]
fn spatial_layers_and_batch_norm_gradients() {
    let cases: Vec<(&str, Vec<LayerConf>)> = vec![
        (
            "zero padding",
            vec![stem(), LayerConf::zero_padding([1, 0, 2, 1])],
        ),
        ("cropping", vec![stem(), LayerConf::cropping([1, 1, 0, 2])]),
        ("upsampling", vec![stem(), LayerConf::upsampling([2, 3])]),
        (
            "batch norm over channels",
            vec![stem(), LayerConf::batch_norm()],
        ),
    ];
    for (label, mut layers) in cases {
        layers.push(mse(2));
        let n = net(
            InputType::convolutional(5, 6, 2),
            layers,
            WorkspaceMode::Enabled,
        );
        check(n, &data(rand(&[4, 2, 5, 6], 9), 2, 10), label);
    }
}

fn lenet_like(mode: WorkspaceMode) -> Vec<LayerConf> {
    let _ = mode;
    vec![
        LayerConf::convolution(4, [3, 3])
            .activation(Activation::Relu)
            .into(),
        LayerConf::batch_norm(),
        LayerConf::subsampling(PoolingType::Max, [2, 2], [2, 2]).into(),
        LayerConf::depthwise_convolution(2, [2, 2])
            .padding([1, 1])
            .into(),
        LayerConf::zero_padding([1, 1, 1, 1]),
        LayerConf::cropping([1, 0, 0, 1]),
        LayerConf::upsampling([2, 2]),
        LayerConf::subsampling(PoolingType::Avg, [2, 2], [2, 2]).into(),
        LayerConf::dropout(0.8),
        LayerConf::dense(12).activation(Activation::Relu).into(),
        LayerConf::output(LossFunction::Mcxent, 3)
            .activation(Activation::Softmax)
            .into(),
    ]
}

#[test]
fn cnns_train_bit_identically_with_workspaces_on_and_off_in_both_network_types() {
    let x = NdArray::<f32>::rand_uniform(&[6, 1, 10, 10], 0.0, 1.0, 1).unwrap();
    let mut y = vec![0f32; 18];
    for r in 0..6 {
        y[r * 3 + r % 3] = 1.0;
    }
    let y = NdArray::<f32>::from_slice(&[6, 3], &y).unwrap();
    let run_mln = |mode| {
        let mut list = NeuralNetConfiguration::builder()
            .seed(4)
            .updater(Updater::adam(1e-2))
            .training_workspace_mode(mode)
            .inference_workspace_mode(mode)
            .list()
            .set_input_type(InputType::convolutional_flat(10, 10, 1));
        for l in lenet_like(mode) {
            list = list.layer(l);
        }
        let mut net = MultiLayerNetwork::<f32>::new(list.build().unwrap()).unwrap();
        let flat = x.dup().unwrap().reshape(&[6, 100]).unwrap();
        for _ in 0..8 {
            net.fit_arrays(&flat, &y).unwrap();
        }
        (
            net.params().to_vec().unwrap(),
            net.output(&flat, false).unwrap().to_vec().unwrap(),
        )
    };
    let run_graph = |mode| {
        let mut b = NeuralNetConfiguration::builder()
            .seed(4)
            .updater(Updater::adam(1e-2))
            .training_workspace_mode(mode)
            .inference_workspace_mode(mode)
            .graph_builder()
            .add_inputs(&["img"])
            .set_input_types(&[InputType::convolutional(10, 10, 1)]);
        let mut prev = "img".to_string();
        for (i, l) in lenet_like(mode).into_iter().enumerate() {
            let name = format!("l{i}");
            b = b.add_layer(&name, l, &[&prev]);
            prev = name;
        }
        let mut g = ComputationGraph::<f32>::new(b.set_outputs(&[&prev]).build().unwrap()).unwrap();
        for _ in 0..8 {
            g.fit_arrays(&[x.view()], &[y.view()]).unwrap();
        }
        (
            g.params().to_vec().unwrap(),
            g.output(&[x.view()], false).unwrap()[0].to_vec().unwrap(),
        )
    };
    let mln_on = run_mln(WorkspaceMode::Enabled);
    assert!(
        mln_on == run_mln(WorkspaceMode::None),
        "MultiLayerNetwork on/off"
    );
    let graph_on = run_graph(WorkspaceMode::Enabled);
    assert!(
        graph_on == run_graph(WorkspaceMode::None),
        "ComputationGraph on/off"
    );
    assert!(mln_on == graph_on, "the chain graph is the same network");
}

#[test]
fn bad_shapes_and_sizes_are_clear_errors() {
    // Kernel larger than the padded input.
    let err = NeuralNetConfiguration::builder()
        .list()
        .layer(
            LayerConf::convolution(2, [7, 7])
                .padding([1, 1])
                .name("big"),
        )
        .set_input_type(InputType::convolutional(4, 4, 1))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"big\"") && err.contains("larger than the padded input"),
        "{err}"
    );
    // Strict that does not divide.
    let err = NeuralNetConfiguration::builder()
        .list()
        .layer(
            LayerConf::convolution(2, [3, 3])
                .stride([2, 2])
                .mode(ConvolutionMode::Strict)
                .name("strict"),
        )
        .set_input_type(InputType::convolutional(8, 8, 1))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"strict\"") && err.contains("Strict requires"),
        "{err}"
    );
    // Explicit channels that contradict the input.
    let err = NeuralNetConfiguration::builder()
        .list()
        .layer(LayerConf::convolution(2, [3, 3]).n_in(3))
        .set_input_type(InputType::convolutional(8, 8, 1))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("n_in = 3 channels but its input has 1"),
        "{err}"
    );
    // A convolution after a dense layer: no image shape to go back to.
    let err = NeuralNetConfiguration::builder()
        .list()
        .layer(LayerConf::dense(8).n_in(4))
        .layer(LayerConf::convolution(2, [2, 2]))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("convolutional input") && err.contains("layer 1"),
        "{err}"
    );
    // Wrong channel count at run time.
    let mut n = net(
        InputType::convolutional(6, 6, 1),
        vec![LayerConf::convolution(2, [3, 3]).into(), mse(2)],
        WorkspaceMode::Enabled,
    );
    let err = n
        .output(&rand(&[2, 3, 6, 6], 1), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected shape [batch, 1, 6, 6], found [2, 3, 6, 6]"),
        "{err}"
    );
    // JSON round trip of every conv-family layer.
    let mut list = NeuralNetConfiguration::builder()
        .list()
        .set_input_type(InputType::convolutional(10, 10, 1));
    for l in lenet_like(WorkspaceMode::Enabled) {
        list = list.layer(l);
    }
    let conf = list.build().unwrap();
    let back = MultiLayerConfiguration::from_json(&conf.to_json().unwrap()).unwrap();
    assert_eq!(back, conf);
}
