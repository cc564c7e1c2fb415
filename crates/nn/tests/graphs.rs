//! ComputationGraph behaviour: a chain graph trains bit-identically to the same
//! MultiLayerNetwork; every vertex type trains bit-identically with workspaces on and off;
//! inference memory follows liveness; bad graphs are one clear error naming the vertex;
//! DL4J behaviours 47, 48 and 50 for graphs; model files for graphs; masks.

use dl4rs_array::{AsView, NdArray};
use dl4rs_data::{DataSet, InMemoryMultiDataSetIterator, MultiDataSet};
use dl4rs_memory::{
    WorkspaceConfig, allocation_report, get_and_activate_workspace, scope_out_of_workspaces,
};
use dl4rs_nn::*;

fn rand(shape: &[usize], seed: u64) -> NdArray<f32> {
    NdArray::<f32>::rand_uniform(shape, -1.0, 1.0, seed).unwrap()
}

fn onehot(batch: usize, n: usize, seed: usize) -> NdArray<f32> {
    let mut y = vec![0f32; batch * n];
    for r in 0..batch {
        y[r * n + (r * 7 + seed) % n] = 1.0;
    }
    NdArray::from_slice(&[batch, n], &y).unwrap()
}

fn global(mode: WorkspaceMode) -> NeuralNetConfiguration {
    NeuralNetConfiguration::builder()
        .seed(42)
        .updater(Updater::adam(1e-2))
        .l2(1e-4)
        .training_workspace_mode(mode)
        .inference_workspace_mode(mode)
}

fn layers() -> Vec<LayerConf> {
    vec![
        LayerConf::dense(16).activation(Activation::Relu).build(),
        LayerConf::batch_norm(),
        LayerConf::dropout(0.8),
        LayerConf::dense(8).activation(Activation::Tanh).build(),
        LayerConf::output(LossFunction::Mcxent, 4)
            .activation(Activation::Softmax)
            .build(),
    ]
}

/// `layers()` as a network.
fn chain_network(mode: WorkspaceMode) -> MultiLayerConfiguration {
    let mut list = global(mode)
        .list()
        .set_input_type(InputType::feed_forward(6));
    for l in layers() {
        list = list.layer(l);
    }
    list.build().unwrap()
}

/// `layers()` as a chain graph.
fn chain_graph(mode: WorkspaceMode) -> ComputationGraphConfiguration {
    let mut b = global(mode)
        .graph_builder()
        .add_inputs(&["in"])
        .set_input_types(&[InputType::feed_forward(6)]);
    let mut prev = "in".to_string();
    for (i, l) in layers().into_iter().enumerate() {
        let name = format!("l{i}");
        b = b.add_layer(&name, l, &[&prev]);
        prev = name;
    }
    b.set_outputs(&[&prev]).build().unwrap()
}

#[test]
fn a_chain_graph_trains_bit_identically_to_the_same_network() {
    for mode in [WorkspaceMode::Enabled, WorkspaceMode::None] {
        let mut mln = MultiLayerNetwork::<f32>::new(chain_network(mode)).unwrap();
        let mut graph = ComputationGraph::<f32>::new(chain_graph(mode)).unwrap();
        assert_eq!(
            graph.params().to_vec().unwrap(),
            mln.params().to_vec().unwrap(),
            "same initialization"
        );
        let x = rand(&[10, 6], 1);
        let y = onehot(10, 4, 2);
        for _ in 0..12 {
            mln.fit_arrays(&x, &y).unwrap();
            graph.fit_arrays(&[x.view()], &[y.view()]).unwrap();
        }
        assert_eq!(
            graph.params().to_vec().unwrap(),
            mln.params().to_vec().unwrap(),
            "{mode:?}"
        );
        assert_eq!(
            graph.output(&[x.view()], false).unwrap()[0]
                .to_vec()
                .unwrap(),
            mln.output(&x, false).unwrap().to_vec().unwrap()
        );
        assert_eq!(graph.last_score(), mln.last_score());
    }
}

/// Two inputs, a merge, a skip connection, every vertex type, two outputs.
fn every_vertex(mode: WorkspaceMode) -> ComputationGraphConfiguration {
    let dense = |n| LayerConf::dense(n).activation(Activation::Tanh).build();
    global(mode)
        .graph_builder()
        .add_inputs(&["a", "b"])
        .set_input_types(&[InputType::feed_forward(5), InputType::recurrent(3)])
        .add_layer("da", dense(6), &["a"])
        .add_layer("db", dense(6), &["b"]) // RnnToFeedForward inserted: rows per step
        .add_vertex(
            "fold",
            VertexConf::preprocessor(InputPreProcessor::FeedForwardToRnn),
            &["db"],
        )
        .add_vertex(
            "flat",
            VertexConf::preprocessor(InputPreProcessor::RnnToFeedForward),
            &["fold"],
        )
        .add_vertex("u0", VertexConf::unstack(0, 2), &["flat"])
        .add_vertex("u1", VertexConf::unstack(1, 2), &["flat"])
        .add_vertex(
            "avg",
            VertexConf::element_wise(ElementWiseOp::Average),
            &["u0", "u1"],
        )
        .add_vertex("merge", VertexConf::merge(), &["da", "avg"])
        .add_layer("dm", dense(6), &["merge"])
        .add_vertex(
            "skip",
            VertexConf::element_wise(ElementWiseOp::Add),
            &["dm", "da"],
        )
        .add_vertex(
            "prod",
            VertexConf::element_wise(ElementWiseOp::Product),
            &["skip", "da"],
        )
        .add_vertex(
            "max",
            VertexConf::element_wise(ElementWiseOp::Max),
            &["prod", "dm"],
        )
        .add_vertex(
            "sub",
            VertexConf::element_wise(ElementWiseOp::Subtract),
            &["max", "da"],
        )
        .add_vertex("subset", VertexConf::subset(1, 4), &["sub"])
        .add_vertex("scale", VertexConf::scale(0.5), &["subset"])
        .add_vertex("shift", VertexConf::shift(0.1), &["scale"])
        .add_vertex("norm", VertexConf::l2_normalize(), &["shift"])
        .add_vertex("stack", VertexConf::stack(), &["norm", "norm"])
        .add_vertex("half", VertexConf::unstack(1, 2), &["stack"])
        .add_layer(
            "class",
            LayerConf::output(LossFunction::Mcxent, 3).activation(Activation::Softmax),
            &["half"],
        )
        .add_layer(
            "reg",
            LayerConf::output(LossFunction::Mse, 2).activation(Activation::Identity),
            &["skip"],
        )
        .set_outputs(&["class", "reg"])
        .build()
        .unwrap()
}

fn every_vertex_data() -> MultiDataSet<f32> {
    MultiDataSet::new(
        vec![rand(&[8, 5], 3), rand(&[8, 3, 2], 4)],
        vec![onehot(8, 3, 1), rand(&[8, 2], 5)],
    )
    .unwrap()
}

#[test]
fn every_vertex_trains_bit_identically_with_workspaces_on_and_off() {
    let data = every_vertex_data();
    let run = |mode| {
        let mut g = ComputationGraph::<f32>::new(every_vertex(mode)).unwrap();
        for _ in 0..10 {
            g.fit(&data).unwrap();
        }
        let out: Vec<Vec<f32>> = g
            .output_multi(&data, false)
            .unwrap()
            .iter()
            .map(|a| a.to_vec().unwrap())
            .collect();
        (g.params().to_vec().unwrap(), out, g.last_score())
    };
    let (p_on, out_on, s_on) = run(WorkspaceMode::Enabled);
    let (p_off, out_off, s_off) = run(WorkspaceMode::None);
    assert_eq!(p_on, p_off);
    assert_eq!(out_on, out_off);
    assert_eq!(s_on, s_off);
    assert!(s_on.is_finite());
}

#[test]
fn graphs_learn_from_iterators_and_evaluate_per_output() {
    let data = every_vertex_data();
    let mut g = ComputationGraph::<f32>::new(every_vertex(WorkspaceMode::Enabled)).unwrap();
    let before = g.score(&data).unwrap();
    let mut it = InMemoryMultiDataSetIterator::new(data.dup().unwrap(), 4).unwrap();
    g.fit_multi_iter(&mut it, 30).unwrap();
    let after = g.score(&data).unwrap();
    assert!(after < before, "{before} -> {after}");
    let mut class = dl4rs_eval::Evaluation::new(3);
    let mut reg = dl4rs_eval::RegressionEvaluation::new(2);
    g.do_evaluation_multi(&mut it, &mut [(0, &mut class), (1, &mut reg)])
        .unwrap();
    assert_eq!(class.num_examples(), 8);
    assert!(reg.average_mean_squared_error().is_finite());
    let err = g
        .do_evaluation_multi(&mut it, &mut [(2, &mut class)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("output 2") && err.contains("2 output(s)"),
        "{err}"
    );
}

fn residual_chain(blocks: usize, width: usize) -> ComputationGraphConfiguration {
    let mut b = global(WorkspaceMode::Enabled)
        .graph_builder()
        .add_inputs(&["in"])
        .set_input_types(&[InputType::feed_forward(width)])
        .add_layer(
            "stem",
            LayerConf::dense(width).activation(Activation::Relu),
            &["in"],
        );
    let mut x = "stem".to_string();
    for i in 0..blocks {
        let (d1, d2, add) = (format!("b{i}_d1"), format!("b{i}_d2"), format!("b{i}_add"));
        b = b
            .add_layer(
                &d1,
                LayerConf::dense(width).activation(Activation::Relu),
                &[&x],
            )
            .add_layer(
                &d2,
                LayerConf::dense(width).activation(Activation::Identity),
                &[&d1],
            )
            .add_vertex(
                &add,
                VertexConf::element_wise(ElementWiseOp::Add),
                &[&d2, &x],
            );
        x = add;
    }
    b.add_layer(
        "out",
        LayerConf::output(LossFunction::Mcxent, 10).activation(Activation::Softmax),
        &[&x],
    )
    .set_outputs(&["out"])
    .build()
    .unwrap()
}

#[test]
fn inference_memory_follows_liveness_not_depth() {
    let (blocks, width, batch) = (20, 64, 32);
    let mut g = ComputationGraph::<f32>::new(residual_chain(blocks, width)).unwrap();
    // 61 activations in all; at most three are alive at once (x, the branch, the sum).
    let (peak, _) = g.inference_pool();
    assert_eq!(peak, 3);
    let x = rand(&[batch, width], 9);
    for _ in 0..(3 * blocks + 4) {
        g.output(&[x.view()], false).unwrap();
    }
    let ids = g.workspace_ids();
    let report = allocation_report();
    let pool_bytes: usize = report
        .workspaces
        .iter()
        .filter(|w| ids.contains(&w.id) && w.id.starts_with("WS_LAYER_ACT_"))
        .map(|w| w.block_bytes)
        .sum();
    let activation = batch * width * size_of::<f32>();
    let liveness_minimum = 3 * activation;
    println!(
        "residual chain of {blocks} blocks: pool {pool_bytes} B vs liveness minimum \
         {liveness_minimum} B (all activations: {} B)",
        (3 * blocks + 1) * activation
    );
    assert!(pool_bytes >= liveness_minimum, "{pool_bytes}");
    // Alignment and 2 % overallocation per workspace at most.
    assert!(
        pool_bytes <= liveness_minimum * 11 / 10,
        "pool {pool_bytes} B > 1.1 x liveness minimum {liveness_minimum} B"
    );
}

#[test]
fn bad_graphs_are_one_error_naming_the_vertex() {
    let b = || {
        NeuralNetConfiguration::builder()
            .graph_builder()
            .add_inputs(&["in"])
            .set_input_types(&[InputType::feed_forward(4)])
    };
    let out = || LayerConf::output(LossFunction::Mse, 2);
    let err = b()
        .add_layer("a", LayerConf::dense(3), &["c"])
        .add_layer("c", LayerConf::dense(3), &["a"])
        .add_vertex("m", VertexConf::merge(), &["in", "c"])
        .add_layer("out", out(), &["m"])
        .set_outputs(&["out"])
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vertex \"a\"") && err.contains("cycle"),
        "{err}"
    );
    let err = b()
        .add_layer("a", LayerConf::dense(3), &["nope"])
        .add_layer("out", out(), &["a"])
        .set_outputs(&["out"])
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vertex \"a\"") && err.contains("unknown input \"nope\""),
        "{err}"
    );
    let err = b()
        .add_layer("a", LayerConf::dense(3), &["in"])
        .add_layer("b", LayerConf::dense(5), &["in"])
        .add_vertex(
            "sum",
            VertexConf::element_wise(ElementWiseOp::Add),
            &["a", "b"],
        )
        .add_layer("out", out(), &["sum"])
        .set_outputs(&["out"])
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vertex \"sum\" (ElementWiseVertex)") && err.contains("equal types"),
        "{err}"
    );
    let err = b()
        .add_layer("a", LayerConf::dense(3), &["in"])
        .add_layer("unused", LayerConf::dense(3), &["in"])
        .add_layer("out", out(), &["a"])
        .set_outputs(&["out"])
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vertex \"unused\"") && err.contains("no output depends"),
        "{err}"
    );
    let err = b()
        .add_layer("a", LayerConf::dense(3), &["in"])
        .add_layer("out", out(), &["a"])
        .set_outputs(&["missing"])
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("output \"missing\""), "{err}");
    let err = b()
        .add_layer("a", LayerConf::dense(3).n_in(7), &["in"])
        .add_layer("out", out(), &["a"])
        .set_outputs(&["out"])
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vertex \"a\"") && err.contains("n_in = 7"),
        "{err}"
    );
    // Unknown vertex type in JSON.
    let good = b()
        .add_layer("a", LayerConf::dense(3), &["in"])
        .add_layer("out", out(), &["a"])
        .set_outputs(&["out"])
        .build()
        .unwrap()
        .to_json()
        .unwrap();
    let bad = good.replace("\"LayerVertex\"", "\"TeleportVertex\"");
    let err = ComputationGraphConfiguration::from_json(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vertex \"a\"") && err.contains("TeleportVertex"),
        "{err}"
    );
    // Run time: wrong number of inputs, wrong shape.
    let mut g =
        ComputationGraph::<f32>::new(ComputationGraphConfiguration::from_json(&good).unwrap())
            .unwrap();
    let err = g.output(&[], false).unwrap_err().to_string();
    assert!(
        err.contains("1 input(s)") && err.contains("0 feature array(s)"),
        "{err}"
    );
    let err = g
        .output(&[rand(&[2, 5], 1).view()], false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("network input \"in\": expected shape [batch, 4]"),
        "{err}"
    );
}

#[test]
fn behaviours_47_48_output_workspaces_for_graphs() {
    let mut g = ComputationGraph::<f32>::new(every_vertex(WorkspaceMode::Enabled)).unwrap();
    let data = every_vertex_data();
    let inputs = [data.features[0].view(), data.features[1].view()];
    let cfg = WorkspaceConfig::default();
    let mut outs = Vec::new();
    {
        let scope = get_and_activate_workspace(&cfg, "USER_OUT").unwrap();
        let ws = scope.workspace().unwrap().clone();
        g.output_in(&inputs, false, &ws, &mut outs).unwrap();
        assert_eq!(outs.len(), 2);
        for o in &outs {
            assert_eq!(
                o.workspace_id(),
                Some("USER_OUT"),
                "47: attached to the user workspace"
            );
        }
        drop(scope);
        assert!(
            !ws.is_scope_active(),
            "47: inactive once the user closes it"
        );
    }
    assert!(outs.iter().all(|o| !o.is_valid()), "their cycle ended");
    // 48: inside an external workspace with scope-out, output() is detached.
    let _ext = get_and_activate_workspace(&cfg, "EXTERNAL").unwrap();
    let _out = scope_out_of_workspaces();
    let detached = g.output(&inputs, false).unwrap();
    assert!(detached.iter().all(|o| !o.is_attached()));
    // Mode None plus an output workspace is an error.
    let mut none = ComputationGraph::<f32>::new(every_vertex(WorkspaceMode::None)).unwrap();
    let scope = get_and_activate_workspace(&cfg, "USER_OUT2").unwrap();
    let ws = scope.workspace().unwrap().clone();
    let err = none
        .output_in(&inputs, false, &ws, &mut outs)
        .unwrap_err()
        .to_string();
    assert!(err.contains("inference_workspace_mode Enabled"), "{err}");
}

#[test]
fn behaviour_50_preprocessors_in_every_mode() {
    // A network whose preprocessors reshape sequences to rows and back trains to the same
    // bits with workspaces on and off, and its outputs are detached copies.
    let run = |mode| {
        let conf = global(mode)
            .list()
            .layer(LayerConf::dense(5).activation(Activation::Tanh))
            .layer(LayerConf::activation(Activation::Relu))
            .layer(LayerConf::output(LossFunction::Mse, 2))
            .input_preprocessor(1, InputPreProcessor::FeedForwardToRnn)
            .input_preprocessor(2, InputPreProcessor::RnnToFeedForward)
            .set_input_type(InputType::recurrent(3))
            .build()
            .unwrap();
        let json = conf.to_json().unwrap();
        assert!(json.contains("FeedForwardToRnn") && json.contains("RnnToFeedForward"));
        assert_eq!(MultiLayerConfiguration::from_json(&json).unwrap(), conf);
        let mut net = MultiLayerNetwork::<f32>::new(conf).unwrap();
        let x = rand(&[4, 3, 5], 7);
        let y = rand(&[20, 2], 8);
        for _ in 0..5 {
            net.fit_arrays(&x, &y).unwrap();
        }
        let out = net.output(&x, false).unwrap();
        assert!(!out.is_attached());
        (net.params().to_vec().unwrap(), out.to_vec().unwrap())
    };
    assert_eq!(run(WorkspaceMode::Enabled), run(WorkspaceMode::None));
}

#[test]
fn graph_model_files_and_dl4j_keys() {
    let dir = std::env::temp_dir().join(format!("dl4rs-graph-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("graph.safetensors");
    let data = every_vertex_data();
    let mut g = ComputationGraph::<f32>::new(every_vertex(WorkspaceMode::Enabled)).unwrap();
    for _ in 0..3 {
        g.fit(&data).unwrap();
    }
    ModelSerializer::write_model(&g, &path, true).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let w = st.tensor("da_W").unwrap();
    assert_eq!(
        w.shape(),
        &[5, 6],
        "weights by DL4J key in their natural shape"
    );
    assert_eq!(st.tensor("class_b").unwrap().shape(), &[3]);
    match ModelSerializer::restore::<f32>(&path, true).unwrap() {
        RestoredModel::Graph(mut back) => {
            assert_eq!(back.conf(), g.conf());
            assert_eq!(
                back.params().to_vec().unwrap(),
                g.params().to_vec().unwrap()
            );
            g.fit(&data).unwrap();
            back.fit(&data).unwrap();
            assert_eq!(
                back.params().to_vec().unwrap(),
                g.params().to_vec().unwrap(),
                "the updater state resumes exactly"
            );
        }
        RestoredModel::MultiLayer(_) => panic!("a graph was restored as a network"),
    }
    let err = ModelSerializer::restore_multi_layer_network::<f32>(&path, true)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("holds a ComputationGraph"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn label_masks_remove_examples_from_loss_and_gradients() {
    // No regularization: its term is not per example.
    let conf = NeuralNetConfiguration::builder()
        .seed(42)
        .list()
        .layer(LayerConf::dense(5).n_in(4).activation(Activation::Tanh))
        .layer(LayerConf::output(LossFunction::Mcxent, 3).activation(Activation::Softmax))
        .build()
        .unwrap();
    let x = rand(&[6, 4], 3);
    let y = onehot(6, 3, 0);
    let mask = NdArray::<f32>::from_slice(&[6, 1], &[1., 1., 0., 1., 0., 1.]).unwrap();
    let mut a = MultiLayerNetwork::<f32>::new(conf.clone()).unwrap();
    let masked = DataSet::new(x.dup().unwrap(), y.dup().unwrap())
        .unwrap()
        .with_masks(None, Some(mask))
        .unwrap();
    let score_masked = a.compute_gradient_and_score_data_set(&masked).unwrap();
    let g_masked = a.gradients().to_vec().unwrap();
    // The same rows without the masked ones: the loss is a sum over the batch divided by
    // its size (DL4J), so the masked batch of 6 is the kept 4 scaled by 4/6.
    let keep = [0usize, 1, 3, 5];
    let xs = dl4rs_array::ops::gather_rows(&x, &keep).unwrap();
    let ys = dl4rs_array::ops::gather_rows(&y, &keep).unwrap();
    let mut b = MultiLayerNetwork::<f32>::new(conf).unwrap();
    let score_kept = b.compute_gradient_and_score(&xs, &ys).unwrap();
    let g_kept = b.gradients().to_vec().unwrap();
    assert!((score_masked - score_kept * 4.0 / 6.0).abs() < 1e-5);
    for (m, k) in g_masked.iter().zip(&g_kept) {
        assert!((m - k * 4.0 / 6.0).abs() < 1e-5, "{m} vs {k}");
    }
}

/// A source that asks to be prefetched (an in-memory iterator would not be wrapped).
struct WantsPrefetch(InMemoryMultiDataSetIterator<f32>);

impl dl4rs_data::MultiDataSetIterator<f32> for WantsPrefetch {
    fn next(&mut self) -> Option<Result<MultiDataSet<f32>, dl4rs_data::DataError>> {
        self.0.next()
    }
    fn has_next(&self) -> bool {
        self.0.has_next()
    }
    fn reset(&mut self) -> Result<(), dl4rs_data::DataError> {
        self.0.reset()
    }
    fn reset_supported(&self) -> bool {
        true
    }
    fn async_supported(&self) -> bool {
        true
    }
    fn batch(&self) -> usize {
        self.0.batch()
    }
    fn total_examples(&self) -> Option<usize> {
        self.0.total_examples()
    }
}

#[test]
fn prefetched_graph_training_is_bit_identical_to_direct_training() {
    let data = every_vertex_data();
    let mut direct = ComputationGraph::<f32>::new(every_vertex(WorkspaceMode::Enabled)).unwrap();
    let mut it = InMemoryMultiDataSetIterator::new(data.dup().unwrap(), 4).unwrap();
    direct.fit_multi_iter(&mut it, 5).unwrap();
    let mut prefetched =
        ComputationGraph::<f32>::new(every_vertex(WorkspaceMode::Enabled)).unwrap();
    let source = WantsPrefetch(InMemoryMultiDataSetIterator::new(data, 4).unwrap());
    prefetched.fit_prefetched(Box::new(source), 5).unwrap();
    assert_eq!(
        prefetched.params().to_vec().unwrap(),
        direct.params().to_vec().unwrap()
    );
    assert_eq!(prefetched.iteration_count(), 10);
}

#[test]
fn with_params_builds_the_same_network_without_initializing_it() {
    let conf = chain_network(WorkspaceMode::Enabled);
    let mut mln = MultiLayerNetwork::<f32>::new(conf.clone()).unwrap();
    let (x, y) = (rand(&[10, 6], 3), onehot(10, 4, 1));
    for _ in 0..3 {
        mln.fit_arrays(&x, &y).unwrap();
    }
    let mut copy = MultiLayerNetwork::<f32>::with_params(conf.clone(), mln.params()).unwrap();
    assert_eq!(
        copy.params().to_vec().unwrap(),
        mln.params().to_vec().unwrap()
    );
    assert_eq!(copy.iteration_count(), 0);
    assert!(
        copy.updater_state()
            .to_vec()
            .unwrap()
            .iter()
            .all(|&v| v == 0.0)
    );
    // Batch-norm statistics are layer state, not parameters.
    for (name, values) in Model::layer_states(&mln) {
        Model::set_layer_state(&mut copy, &name, &values).unwrap();
    }
    assert_eq!(
        copy.output(&x, false).unwrap().to_vec().unwrap(),
        mln.output(&x, false).unwrap().to_vec().unwrap()
    );
    let short = NdArray::<f32>::zeros(&[3]).unwrap();
    match MultiLayerNetwork::<f32>::with_params(conf, &short) {
        Err(e) => assert!(e.to_string().contains("expected"), "{e}"),
        Ok(_) => panic!("3 values for a larger network must be an error"),
    }

    let gconf = chain_graph(WorkspaceMode::Enabled);
    let mut graph = ComputationGraph::<f32>::new(gconf.clone()).unwrap();
    graph.fit_arrays(&[x.view()], &[y.view()]).unwrap();
    let mut gcopy = ComputationGraph::<f32>::with_params(gconf, graph.params()).unwrap();
    for (name, values) in Model::layer_states(&graph) {
        Model::set_layer_state(&mut gcopy, &name, &values).unwrap();
    }
    assert_eq!(
        gcopy.output(&[x.view()], false).unwrap()[0]
            .to_vec()
            .unwrap(),
        graph.output(&[x.view()], false).unwrap()[0]
            .to_vec()
            .unwrap()
    );
}
