//! Network behaviour: workspace-mode equivalence for every layer type, DL4J behaviours 47–49,
//! independence of networks on one thread, JSON and model-file round trips with their errors,
//! and the workspace validation of a custom layer.

use dl4rs_array::{ArrayView, ArrayViewMut, AsView, NdArray};
use dl4rs_memory::{
    WorkspaceConfig, get_and_activate_workspace, get_workspace_for_current_thread,
    scope_out_of_workspaces,
};
use dl4rs_nn::*;

fn labels(batch: usize, classes: usize, seed: u64) -> NdArray<f32> {
    let mut y = vec![0f32; batch * classes];
    for r in 0..batch {
        y[r * classes
            + (dl4rs_array::random::splitmix(seed, r as u64) % classes as u64) as usize] = 1.0;
    }
    NdArray::from_slice_detached(&[batch, classes], &y).unwrap()
}

fn conf_with(
    mode: WorkspaceMode,
    updater: Updater,
    layers: &[LayerConf],
) -> MultiLayerConfiguration {
    let mut list = NeuralNetConfiguration::builder()
        .seed(1234)
        .updater(updater)
        .l2(1e-4)
        .training_workspace_mode(mode)
        .inference_workspace_mode(mode)
        .list();
    for l in layers {
        list = list.layer(l.clone());
    }
    list.build().unwrap()
}

fn all_layer_types() -> Vec<LayerConf> {
    vec![
        LayerConf::dense(32)
            .n_in(20)
            .activation(Activation::Relu)
            .build(),
        LayerConf::batch_norm(),
        LayerConf::dropout(0.8),
        LayerConf::dense(16).activation(Activation::Gelu).build(),
        LayerConf::activation(Activation::Tanh),
        LayerConf::output(LossFunction::Mcxent, 5)
            .activation(Activation::Softmax)
            .build(),
    ]
}

fn train(conf: MultiLayerConfiguration, iterations: usize) -> Vec<f32> {
    let mut net = MultiLayerNetwork::<f32>::new(conf).unwrap();
    let x = NdArray::<f32>::rand_uniform(&[64, 20], -1.0, 1.0, 5).unwrap();
    let y = labels(64, 5, 6);
    for i in 0..iterations {
        let rows: Vec<usize> = (0..16).map(|r| (i * 16 + r) % 64).collect();
        let (bx, by) = {
            let _heap = scope_out_of_workspaces();
            (x.gather_rows(&rows).unwrap(), y.gather_rows(&rows).unwrap())
        };
        net.fit_arrays(&bx, &by).unwrap();
    }
    net.params().to_vec().unwrap()
}

trait Gather {
    fn gather_rows(&self, rows: &[usize]) -> Result<NdArray<f32>, dl4rs_array::ArrayError>;
}
impl Gather for NdArray<f32> {
    fn gather_rows(&self, rows: &[usize]) -> Result<NdArray<f32>, dl4rs_array::ArrayError> {
        dl4rs_array::ops::gather_rows(self, rows)
    }
}

#[test]
fn workspace_modes_train_bit_identically() {
    for updater in [
        Updater::sgd(0.1),
        Updater::adam(1e-3),
        Updater::nesterovs(0.05),
        Updater::rmsprop(1e-3),
        Updater::adagrad(0.01),
    ] {
        let layers = all_layer_types();
        let enabled = train(conf_with(WorkspaceMode::Enabled, updater, &layers), 12);
        let none = train(conf_with(WorkspaceMode::None, updater, &layers), 12);
        assert_eq!(enabled.len(), none.len());
        let same = enabled
            .iter()
            .zip(&none)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same,
            "{updater:?}: parameters differ between workspace modes"
        );
    }
    // Each layer type alone behind a dense layer, and the loss layer.
    let singles: Vec<Vec<LayerConf>> = vec![
        vec![
            LayerConf::dense(8).n_in(20).build(),
            LayerConf::output(LossFunction::Mse, 5)
                .activation(Activation::Identity)
                .build(),
        ],
        vec![
            LayerConf::dense(5).n_in(20).build(),
            LayerConf::loss(LossFunction::Xent, Activation::Sigmoid),
        ],
        vec![
            LayerConf::dense(8).n_in(20).build(),
            LayerConf::batch_norm(),
            LayerConf::output(LossFunction::L1, 5).build(),
        ],
    ];
    for layers in singles {
        let a = train(
            conf_with(WorkspaceMode::Enabled, Updater::sgd(0.05), &layers),
            6,
        );
        let b = train(
            conf_with(WorkspaceMode::None, Updater::sgd(0.05), &layers),
            6,
        );
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{layers:?}"
        );
    }
}

#[test]
fn training_is_reproducible_with_a_seed() {
    let layers = all_layer_types();
    let a = train(
        conf_with(WorkspaceMode::Enabled, Updater::adam(1e-3), &layers),
        5,
    );
    let b = train(
        conf_with(WorkspaceMode::Enabled, Updater::adam(1e-3), &layers),
        5,
    );
    assert_eq!(a, b);
}

fn small_net(mode: WorkspaceMode) -> MultiLayerNetwork<f32> {
    MultiLayerNetwork::new(conf_with(
        mode,
        Updater::sgd(0.1),
        &[
            LayerConf::dense(8)
                .n_in(6)
                .activation(Activation::Relu)
                .build(),
            LayerConf::dense(7).activation(Activation::Tanh).build(),
            LayerConf::output(LossFunction::Mcxent, 3)
                .activation(Activation::Softmax)
                .build(),
        ],
    ))
    .unwrap()
}

/// Behaviour 47 (testOutputWorkspace): output into the caller's workspace is attached there,
/// and that workspace is closed by the caller.
#[test]
fn b47_output_into_user_workspace() {
    let mut net = small_net(WorkspaceMode::Enabled);
    let x = NdArray::<f32>::rand_uniform(&[4, 6], 0.0, 1.0, 1).unwrap();
    let expected = net.output(&x, false).unwrap().to_vec().unwrap();
    let cfg = WorkspaceConfig::default();
    let ws = get_workspace_for_current_thread(&cfg, "USER_OUT").unwrap();
    let kept = {
        let _scope = ws.notify_scope_entered().unwrap();
        let out = net.output_in(&x, false, &ws).unwrap();
        assert_eq!(out.workspace_id(), Some("USER_OUT"));
        assert_eq!(out.to_vec().unwrap(), expected);
        out
    };
    assert!(!ws.is_scope_active());
    assert!(!kept.is_valid());
    // A closed workspace is refused.
    let err = net.output_in(&x, false, &ws).unwrap_err().to_string();
    assert!(err.contains("\"USER_OUT\" is not open"), "{err}");
    // Mode None can't output into a workspace.
    let mut none = small_net(WorkspaceMode::None);
    let _scope = ws.notify_scope_entered().unwrap();
    assert!(none.output_in(&x, false, &ws).is_err());
}

/// Behaviour 48 (checkScoreScopeOut): output() and score inside a user's workspace, and under
/// scope-out, return detached results.
#[test]
fn b48_output_inside_external_workspace_is_detached() {
    let mut net = small_net(WorkspaceMode::Enabled);
    let x = NdArray::<f32>::rand_uniform(&[4, 6], 0.0, 1.0, 1).unwrap();
    let y = labels(4, 3, 2);
    let _outer = get_and_activate_workspace(&WorkspaceConfig::default(), "EXTERNAL").unwrap();
    let out = net.output(&x, false).unwrap();
    assert!(!out.is_attached());
    let score = net.score_arrays(&x, &y).unwrap();
    assert!(score.is_finite());
    let _out = scope_out_of_workspaces();
    assert!(!net.output(&x, false).unwrap().is_attached());
}

/// Behaviour 49 (testWorkspaceIndependence, DL4J #4337): a None-mode network used after an
/// Enabled one on the same thread works, and two networks used alternately train exactly as
/// each does alone.
#[test]
fn b49_networks_on_one_thread_are_independent() {
    let x = NdArray::<f32>::rand_uniform(&[8, 6], 0.0, 1.0, 3).unwrap();
    let y = labels(8, 3, 4);
    let alone = |mode| {
        let mut n = small_net(mode);
        for _ in 0..5 {
            n.fit_arrays(&x, &y).unwrap();
        }
        n.params().to_vec().unwrap()
    };
    let (ref_a, ref_b) = (alone(WorkspaceMode::Enabled), alone(WorkspaceMode::None));
    let mut a = small_net(WorkspaceMode::Enabled);
    let mut b = small_net(WorkspaceMode::None);
    let mut c = small_net(WorkspaceMode::Enabled);
    for _ in 0..5 {
        a.fit_arrays(&x, &y).unwrap();
        b.fit_arrays(&x, &y).unwrap();
        c.fit_arrays(&x, &y).unwrap();
        b.output(&x, false).unwrap();
    }
    assert_eq!(a.params().to_vec().unwrap(), ref_a);
    assert_eq!(b.params().to_vec().unwrap(), ref_b);
    assert_eq!(c.params().to_vec().unwrap(), ref_a);
    assert_ne!(
        a.workspace_ids()[0],
        c.workspace_ids()[0],
        "each network owns its workspaces"
    );
}

#[test]
fn inference_matches_between_modes_and_feed_forward() {
    let mut a = small_net(WorkspaceMode::Enabled);
    let mut b = small_net(WorkspaceMode::None);
    let x = NdArray::<f32>::rand_uniform(&[5, 6], 0.0, 1.0, 9).unwrap();
    let oa = a.output(&x, false).unwrap().to_vec().unwrap();
    assert_eq!(oa, b.output(&x, false).unwrap().to_vec().unwrap());
    let all = a.feed_forward(&x, false).unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|a| !a.is_attached()));
    assert_eq!(all[3].to_vec().unwrap(), oa);
}

#[test]
fn json_round_trip_and_deprecated_modes() {
    let conf = conf_with(
        WorkspaceMode::Enabled,
        Updater::adam(1e-3),
        &all_layer_types(),
    );
    let json = conf.to_json().unwrap();
    assert_eq!(MultiLayerConfiguration::from_json(&json).unwrap(), conf);
    let legacy = json
        .replacen(
            "\"training_workspace_mode\": \"ENABLED\"",
            "\"training_workspace_mode\": \"SEPARATE\"",
            1,
        )
        .replacen(
            "\"inference_workspace_mode\": \"ENABLED\"",
            "\"inference_workspace_mode\": \"SINGLE\"",
            1,
        );
    assert_ne!(legacy, json);
    let parsed = MultiLayerConfiguration::from_json(&legacy).unwrap();
    assert_eq!(
        parsed.global.training_workspace_mode,
        WorkspaceMode::Enabled
    );
    assert_eq!(
        parsed.global.inference_workspace_mode,
        WorkspaceMode::Enabled
    );
    #[allow(deprecated)]
    let in_code = WorkspaceMode::Single;
    assert_eq!(in_code, WorkspaceMode::Enabled);
    let bad = json.replacen(
        "\"training_workspace_mode\": \"ENABLED\"",
        "\"training_workspace_mode\": \"SOMETIMES\"",
        1,
    );
    let err = MultiLayerConfiguration::from_json(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown workspace mode \"SOMETIMES\""),
        "{err}"
    );
}

#[test]
fn invalid_configurations_are_clear_errors() {
    let err = NeuralNetConfiguration::builder()
        .list()
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no layers"), "{err}");
    let err = NeuralNetConfiguration::builder()
        .list()
        .layer(LayerConf::dense(4))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("the first layer needs n_in"), "{err}");
    let err = NeuralNetConfiguration::builder()
        .list()
        .layer(LayerConf::dense(4).n_in(3))
        .layer(LayerConf::dense(2).n_in(5))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("layer 1 (DenseLayer) has n_in = 5 but its input has 4 features"),
        "{err}"
    );
    let err = NeuralNetConfiguration::builder()
        .list()
        .layer(LayerConf::output(LossFunction::Mse, 3).n_in(3))
        .layer(LayerConf::dense(2))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be the last layer"), "{err}");
    let err = NeuralNetConfiguration::builder()
        .updater(Updater::Adam {
            learning_rate: 1e-3,
            beta1: 1.5,
            beta2: 0.9,
            epsilon: 1e-8,
        })
        .list()
        .layer(LayerConf::dense(2).n_in(3))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("decays must lie in [0, 1)"), "{err}");
    let err = NeuralNetConfiguration::builder()
        .list()
        .layer(LayerConf::dense(2).n_in(3))
        .layer(LayerConf::dropout(1.5))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("retain probability must be in (0, 1]"),
        "{err}"
    );
    // Bad inputs at run time.
    let mut net = small_net(WorkspaceMode::Enabled);
    let err = net
        .output(&NdArray::<f32>::zeros(&[2, 5]).unwrap(), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected shape [batch, 6], found [2, 5]"),
        "{err}"
    );
    let err = net
        .fit_arrays(
            &NdArray::<f32>::zeros(&[2, 6]).unwrap(),
            &NdArray::<f32>::zeros(&[2, 4]).unwrap(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("labels: expected shape [2, 3]"), "{err}");
}

#[test]
fn model_file_round_trip_and_errors() {
    let dir = std::env::temp_dir().join(format!("dl4rs-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("net.dl4rs");
    let mut net = MultiLayerNetwork::<f32>::new(conf_with(
        WorkspaceMode::Enabled,
        Updater::adam(1e-2),
        &all_layer_types(),
    ))
    .unwrap();
    let x = NdArray::<f32>::rand_uniform(&[16, 20], -1.0, 1.0, 5).unwrap();
    let y = labels(16, 5, 6);
    for _ in 0..3 {
        net.fit_arrays(&x, &y).unwrap();
    }
    ModelSerializer::write_model(&net, &path, true).unwrap();
    let mut back = ModelSerializer::restore_multi_layer_network::<f32>(&path, true).unwrap();
    assert_eq!(back.conf(), net.conf());
    assert_eq!(
        back.params().to_vec().unwrap(),
        net.params().to_vec().unwrap()
    );
    assert_eq!(
        back.updater_state().to_vec().unwrap(),
        net.updater_state().to_vec().unwrap()
    );
    assert_eq!(back.iteration_count(), 3);
    // Inference uses the batch-norm running statistics: they were saved too.
    assert_eq!(
        back.output(&x, false).unwrap().to_vec().unwrap(),
        net.output(&x, false).unwrap().to_vec().unwrap()
    );
    // Resumed training continues exactly.
    net.fit_arrays(&x, &y).unwrap();
    back.fit_arrays(&x, &y).unwrap();
    assert_eq!(
        back.params().to_vec().unwrap(),
        net.params().to_vec().unwrap()
    );

    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.join("truncated.dl4rs");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = ModelSerializer::restore_multi_layer_network::<f32>(&truncated, true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("truncated.dl4rs") && err.contains("corrupt or truncated"),
        "{err}"
    );
    let garbage = dir.join("garbage.dl4rs");
    std::fs::write(&garbage, b"definitely not a model").unwrap();
    let err = ModelSerializer::restore_multi_layer_network::<f32>(&garbage, true)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a dl4rs model file"), "{err}");
    let err = ModelSerializer::restore_multi_layer_network::<f64>(&path, true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("stores f32 parameters but was restored as f64"),
        "{err}"
    );
    let err = ModelSerializer::restore_multi_layer_network::<f32>(dir.join("missing.dl4rs"), true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("missing.dl4rs: can't read the model file"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A custom layer that returns its activations on the heap instead of in
/// `ArrayType::Activations` is caught, with layer, type and workspaces named.
struct Misplaced(LayerInfo);

impl Misplaced {
    fn new() -> Self {
        let t = InputType::feed_forward(8);
        Misplaced(LayerInfo::new("MisplacedLayer", t, t).named(Some("custom".into())))
    }
}

impl Layer<f32> for Misplaced {
    fn info(&self) -> &LayerInfo {
        &self.0
    }
    fn init_params(&self, _: &mut [f32], _: u64) {}
    fn forward(
        &mut self,
        input: &LayerInput<'_, f32>,
        _: &ArrayView<'_, f32>,
        _: &StepContext,
        _: &LayerWorkspaceMgr,
    ) -> Result<Forward<f32>, NnError> {
        // Wrong: should be mgr.dup(ArrayType::Activations, input).
        Ok(Forward::new(input.activations.detach()?))
    }
    fn backward(
        &self,
        _: &Saved<'_, f32>,
        eps: Epsilon<'_, f32>,
        _: &ArrayView<'_, f32>,
        _: &mut ArrayViewMut<'_, f32>,
        _: &StepContext,
        mgr: &LayerWorkspaceMgr,
    ) -> Result<Option<NdArray<f32>>, NnError> {
        let g = eps.gradient("MisplacedLayer")?;
        Ok(Some(mgr.dup(ArrayType::ActivationGrad, &g)?))
    }
}

#[test]
fn custom_layer_in_the_wrong_workspace_is_an_error() {
    let mut net = small_net(WorkspaceMode::Enabled);
    let conf = conf_with(
        WorkspaceMode::Enabled,
        Updater::sgd(0.1),
        &[
            LayerConf::dense(8).n_in(6).build(),
            LayerConf::activation(Activation::Identity),
            LayerConf::output(LossFunction::Mcxent, 3)
                .activation(Activation::Softmax)
                .build(),
        ],
    );
    let _ = &mut net;
    let mut net = MultiLayerNetwork::<f32>::new(conf).unwrap();
    net.set_layer(1, Box::new(Misplaced::new())).unwrap();
    let x = NdArray::<f32>::zeros(&[2, 6]).unwrap();
    let err = net.output(&x, false).unwrap_err().to_string();
    assert!(err.contains("Output of layer (inference): array (Activations) workspace validation failed (layer 1 - layer name \"custom\" - type MisplacedLayer)"), "{err}");
    assert!(
        err.contains("expected workspace \"WS_LAYER_ACT_2#"),
        "{err}"
    );
    assert!(
        err.contains("found detached (heap)") || err.contains("found"),
        "{err}"
    );
    let err = net
        .fit_arrays(&x, &labels(2, 3, 1))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Feed forward to layer (training)") && err.contains("WS_ALL_LAYERS_ACT#"),
        "{err}"
    );
    assert!(
        net.set_layer(0, Box::new(Misplaced::new())).is_err(),
        "shape mismatch is refused"
    );
    let _unused = x.view();
}

fn csv_source(rows: usize) -> String {
    let mut text = String::new();
    for r in 0..rows {
        let label = r % 3;
        let values: Vec<String> = (0..6)
            .map(|c| {
                format!(
                    "{:.3}",
                    ((r * 7 + c * 13) % 17) as f64 / 17.0 * 0.3 + label as f64 * 0.6
                )
            })
            .collect();
        text.push_str(&format!("{},{}\n", values.join(","), label));
    }
    text
}

fn csv_iterator(rows: usize) -> Box<dyn dl4rs_data::DataSetIterator<f32> + Send> {
    let mut reader = dl4rs_data::records::CsvRecordReader::new(0, ',');
    reader
        .initialize_str("train.csv", &csv_source(rows))
        .unwrap();
    Box::new(
        dl4rs_data::records::RecordReaderDataSetIterator::<f32>::classification(reader, 8, 6, 3)
            .unwrap(),
    )
}

/// `fit_prefetched` (async prefetch on a cyclic workspace) trains exactly like `fit_iter`.
#[test]
fn prefetched_training_matches_direct_training() {
    let source = csv_iterator(100);
    assert!(source.async_supported());
    let mut direct = small_net(WorkspaceMode::Enabled);
    let mut it = csv_iterator(100);
    direct.fit_iter(it.as_mut(), 3).unwrap();
    let mut prefetched = small_net(WorkspaceMode::Enabled);
    prefetched.fit_prefetched(source, 3).unwrap();
    assert_eq!(
        prefetched.params().to_vec().unwrap(),
        direct.params().to_vec().unwrap()
    );
    assert_eq!(prefetched.iteration_count(), 3 * 13);
    assert_eq!(prefetched.epoch_count(), 3);
}

#[test]
fn model_file_stores_the_normalizer() {
    use dl4rs_data::normalizer::{DataNormalization, Normalizer};
    let dir = std::env::temp_dir().join(format!("dl4rs-norm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("with-normalizer.dl4rs");
    let mut normalizer = Normalizer::from_name("standardize").unwrap();
    normalizer.fit(csv_iterator(50).as_mut()).unwrap();
    let net = small_net(WorkspaceMode::Enabled);
    ModelSerializer::write_model_with_normalizer(&net, &path, false, &normalizer).unwrap();
    let back = ModelSerializer::restore_normalizer(&path)
        .unwrap()
        .expect("stored");
    assert_eq!(back.to_json().unwrap(), normalizer.to_json().unwrap());
    let plain = dir.join("plain.dl4rs");
    ModelSerializer::write_model(&net, &plain, false).unwrap();
    assert!(
        ModelSerializer::restore_normalizer(&plain)
            .unwrap()
            .is_none()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn listeners_score_performance_and_checkpoints() {
    use std::sync::{Arc, Mutex};
    let dir = std::env::temp_dir().join(format!("dl4rs-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let x = NdArray::<f32>::rand_uniform(&[8, 6], 0.0, 1.0, 3).unwrap();
    let y = labels(8, 3, 4);

    // Listeners live inside the network; share their findings through an Arc.
    struct Probe<L>(Arc<Mutex<L>>);
    impl<L: TrainingListener<f32>> TrainingListener<f32> for Probe<L> {
        fn iteration_done(
            &mut self,
            net: &dyn Model<f32>,
            info: &IterationInfo,
        ) -> Result<(), NnError> {
            self.0.lock().unwrap().iteration_done(net, info)
        }
    }
    let score = Arc::new(Mutex::new(ScoreIterationListener::collecting(2)));
    let perf = Arc::new(Mutex::new(PerformanceListener::new(2, false)));
    let ckpt = Arc::new(Mutex::new(CheckpointListener::new(&dir, 2, 2).unwrap()));
    let mut net = small_net(WorkspaceMode::Enabled);
    net.add_listener(Box::new(Probe(score.clone())));
    net.add_listener(Box::new(Probe(perf.clone())));
    net.add_listener(Box::new(Probe(ckpt.clone())));
    for _ in 0..7 {
        net.fit_arrays(&x, &y).unwrap();
    }
    let lines = score.lock().unwrap().lines().to_vec();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("Score at iteration 2 is "),
        "{lines:?}"
    );
    let p = perf.lock().unwrap().last().unwrap();
    assert_eq!(p.iteration, 6);
    assert!(p.examples_per_second > 0.0 && p.batches_per_second > 0.0);
    assert!(
        p.workspace_bytes > 0,
        "the network's workspaces are counted"
    );
    let saved = ckpt.lock().unwrap().saved().to_vec();
    assert_eq!(saved.len(), 2, "keeps the last 2: {saved:?}");
    assert!(
        saved[0].ends_with("checkpoint_iter_4.dl4rs")
            && saved[1].ends_with("checkpoint_iter_6.dl4rs")
    );
    assert!(
        !dir.join("checkpoint_iter_2.dl4rs").exists(),
        "older checkpoints are deleted"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "atomic writes leave no temporary files"
    );
    let restored = ModelSerializer::restore_multi_layer_network::<f32>(&saved[1], true).unwrap();
    assert_eq!(restored.iteration_count(), 6);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn evaluate_and_regression_over_iterators() {
    let mut net = small_net(WorkspaceMode::Enabled);
    let mut it = csv_iterator(60);
    net.fit_iter(it.as_mut(), 20).unwrap();
    let eval = net.evaluate(it.as_mut()).unwrap();
    assert_eq!(eval.num_examples(), 60);
    assert!(eval.accuracy() > 0.5, "{}", eval.stats());
    let roc = net.evaluate_roc_multi_class(it.as_mut()).unwrap();
    assert!(roc.calculate_average_auc() > 0.6);
    let reg = net.evaluate_regression(it.as_mut()).unwrap();
    assert!(reg.average_mean_squared_error() < 1.0);
    // Prefetched evaluation sees the same batches.
    let mut prefetched = dl4rs_eval::Evaluation::new(3);
    net.do_evaluation_prefetched(csv_iterator(60), &mut [&mut prefetched])
        .unwrap();
    assert_eq!(prefetched.confusion_matrix(), eval.confusion_matrix());
}

/// Model files of the first format (one flat "params" tensor, "layer{i}.{key}" state) still
/// load, with the same parameters and layer state.
#[test]
fn first_format_model_files_still_load() {
    use std::collections::HashMap;
    let mut net = MultiLayerNetwork::<f32>::new(conf_with(
        WorkspaceMode::Enabled,
        Updater::adam(1e-2),
        &all_layer_types(),
    ))
    .unwrap();
    let x = NdArray::<f32>::rand_uniform(&[16, 20], -1.0, 1.0, 5).unwrap();
    let y = labels(16, 5, 6);
    for _ in 0..3 {
        net.fit_arrays(&x, &y).unwrap();
    }
    let bytes_of = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let params = bytes_of(&net.params().to_vec().unwrap());
    let state = bytes_of(&net.updater_state().to_vec().unwrap());
    // The old format named layer state by layer index.
    let states: Vec<(String, Vec<u8>, usize)> = (0..net.num_layers())
        .flat_map(|i| {
            net.layer(i)
                .unwrap()
                .state()
                .into_iter()
                .map(move |(k, v)| (format!("layer{i}.{k}"), v))
        })
        .map(|(k, v)| (k, bytes_of(&v), v.len()))
        .collect();
    assert!(!states.is_empty(), "the test needs a layer with state");
    let mut tensors = vec![
        (
            "params".to_string(),
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                vec![net.num_params()],
                &params,
            )
            .unwrap(),
        ),
        (
            "updater_state".to_string(),
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                vec![state.len() / 4],
                &state,
            )
            .unwrap(),
        ),
    ];
    for (k, b, n) in &states {
        tensors.push((
            k.clone(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*n], b).unwrap(),
        ));
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "dl4rs-multilayer-network".to_string());
    meta.insert("version".to_string(), "1".to_string());
    meta.insert("dtype".to_string(), "f32".to_string());
    meta.insert("iteration".to_string(), "3".to_string());
    meta.insert("epoch".to_string(), "0".to_string());
    meta.insert("configuration".to_string(), net.conf().to_json().unwrap());
    let bytes = safetensors::serialize(tensors, Some(meta)).unwrap();
    let mut back = ModelSerializer::from_bytes::<f32>(&bytes, "old.dl4rs", true).unwrap();
    assert_eq!(
        back.params().to_vec().unwrap(),
        net.params().to_vec().unwrap()
    );
    assert_eq!(back.iteration_count(), 3);
    let x1 = NdArray::<f32>::rand_uniform(&[4, 20], -1.0, 1.0, 9).unwrap();
    assert_eq!(
        back.output(&x1, false).unwrap().to_vec().unwrap(),
        net.output(&x1, false).unwrap().to_vec().unwrap(),
        "batch-norm running statistics restored"
    );
    net.fit_arrays(&x, &y).unwrap();
    back.fit_arrays(&x, &y).unwrap();
    assert_eq!(
        back.params().to_vec().unwrap(),
        net.params().to_vec().unwrap()
    );
}

/// `fit` split in two (`compute_gradient_*`, then `apply_gradients`), as data-parallel trainers
/// use it, trains bit-identically to `fit`, for both network types.
#[test]
fn split_fit_equals_fit() {
    let x = NdArray::<f32>::rand_uniform(&[64, 20], -1.0, 1.0, 5).unwrap();
    let y = labels(64, 5, 6);
    let batches: Vec<dl4rs_data::DataSet<f32>> = (0..4)
        .map(|i| {
            let rows: Vec<usize> = (0..16).map(|r| i * 16 + r).collect();
            let _heap = scope_out_of_workspaces();
            dl4rs_data::DataSet::new(x.gather_rows(&rows).unwrap(), y.gather_rows(&rows).unwrap())
                .unwrap()
        })
        .collect();
    let conf = conf_with(
        WorkspaceMode::Enabled,
        Updater::adam(1e-3),
        &all_layer_types(),
    );
    let graph_conf = || {
        let mut b = NeuralNetConfiguration::builder()
            .seed(1234)
            .updater(Updater::adam(1e-3))
            .l2(1e-4)
            .graph_builder()
            .add_inputs(&["in"])
            .set_input_types(&[InputType::feed_forward(20)]);
        let mut prev = "in".to_string();
        for (i, l) in all_layer_types().into_iter().enumerate() {
            let name = format!("l{i}");
            b = b.add_layer(&name, l, &[&prev]);
            prev = name;
        }
        b.set_outputs(&[&prev]).build().unwrap()
    };
    type Boxed = Box<dyn Model<f32>>;
    let pairs: Vec<(Boxed, Boxed)> = vec![
        (
            Box::new(MultiLayerNetwork::<f32>::new(conf.clone()).unwrap()),
            Box::new(MultiLayerNetwork::<f32>::new(conf).unwrap()),
        ),
        (
            Box::new(ComputationGraph::<f32>::new(graph_conf()).unwrap()),
            Box::new(ComputationGraph::<f32>::new(graph_conf()).unwrap()),
        ),
    ];
    for (mut a, mut b) in pairs {
        for d in batches.iter().cycle().take(10) {
            a.fit_data_set(d).unwrap();
            let score = b.compute_gradient_data_set(d).unwrap();
            assert_eq!(score, b.last_score());
            b.apply_gradients(16).unwrap();
        }
        assert_eq!(a.iteration_count(), 10);
        assert_eq!(a.iteration_count(), b.iteration_count());
        assert_eq!(a.last_score(), b.last_score());
        assert_eq!(a.params().to_vec().unwrap(), b.params().to_vec().unwrap());
    }
}
