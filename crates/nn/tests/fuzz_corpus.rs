//! Replays the committed fuzz corpora of the dl4rs-nn readers (`fuzz/corpus/<target>/*`, which
//! includes every input that once crashed a target, named `crash-*`) through the same harness
//! the fuzzers run (`fuzz/harness/nn.rs`), so a regression in any reader fails `cargo test`.
//! `cargo test --test fuzz_corpus -- --ignored write_seeds` writes the seed inputs again.

include!("../../../fuzz/harness/nn.rs");

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn replay(target: &str, run: fn(&[u8])) {
    let dir = corpus(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(outcome.is_ok(), "{target}: {} panicked", file.display());
    }
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn model_file_corpus() {
    replay("model_file", fuzz_model_file);
}

#[test]
fn mln_json_corpus() {
    replay("mln_json", fuzz_mln_json);
}

#[test]
fn graph_json_corpus() {
    replay("graph_json", fuzz_graph_json);
}

mod seeds {
    use dl4rs_nn::*;

    fn global() -> NeuralNetConfiguration {
        NeuralNetConfiguration::builder()
            .seed(7)
            .updater(Updater::adam(1e-2))
            .l2(1e-4)
    }

    pub fn mlns() -> Vec<MultiLayerConfiguration> {
        let small = global()
            .list()
            .layer(
                LayerConf::dense(3)
                    .n_in(4)
                    .activation(Activation::Relu)
                    .build(),
            )
            .layer(
                LayerConf::output(LossFunction::Mcxent, 2)
                    .activation(Activation::Softmax)
                    .build(),
            )
            .build()
            .unwrap();
        let mixed = global()
            .list()
            .set_input_type(InputType::feed_forward(6))
            .layer(LayerConf::dense(5).activation(Activation::Tanh).build())
            .layer(LayerConf::batch_norm())
            .layer(LayerConf::dropout(0.8))
            .layer(LayerConf::activation(Activation::Sigmoid))
            .layer(
                LayerConf::output(LossFunction::Mse, 2)
                    .activation(Activation::Identity)
                    .build(),
            )
            .build()
            .unwrap();
        let image = NeuralNetConfiguration::builder()
            .updater(Updater::sgd(0.1))
            .list()
            .set_input_type(InputType::convolutional_flat(2, 3, 1))
            .layer(LayerConf::dense(4).build())
            .layer(LayerConf::output(LossFunction::Mcxent, 3).build())
            .build()
            .unwrap();
        let rnn = NeuralNetConfiguration::builder()
            .list()
            .set_input_type(InputType::recurrent(3))
            .layer(LayerConf::dense(2).build())
            .layer(LayerConf::loss(LossFunction::Mse, Activation::Identity))
            .build()
            .unwrap();
        vec![small, mixed, image, rnn]
    }

    pub fn graphs() -> Vec<ComputationGraphConfiguration> {
        let dense = |n| LayerConf::dense(n).activation(Activation::Tanh).build();
        let chain = global()
            .graph_builder()
            .add_inputs(&["in"])
            .set_input_types(&[InputType::feed_forward(4)])
            .add_layer("d", dense(3), &["in"])
            .add_layer("bn", LayerConf::batch_norm(), &["d"])
            .add_layer(
                "out",
                LayerConf::output(LossFunction::Mcxent, 2).activation(Activation::Softmax),
                &["bn"],
            )
            .set_outputs(&["out"])
            .build()
            .unwrap();
        let vertices = global()
            .graph_builder()
            .add_inputs(&["a", "b"])
            .set_input_types(&[InputType::feed_forward(5), InputType::recurrent(3)])
            .add_layer("da", dense(4), &["a"])
            .add_layer("db", dense(4), &["b"])
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
            .add_layer("dm", dense(4), &["merge"])
            .add_vertex(
                "skip",
                VertexConf::element_wise(ElementWiseOp::Add),
                &["dm", "da"],
            )
            .add_vertex("subset", VertexConf::subset(1, 3), &["skip"])
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
            .unwrap();
        vec![chain, vertices]
    }
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus"]
fn write_seeds() {
    use dl4rs_nn::*;
    let write = |target: &str, name: String, bytes: &[u8]| {
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for (i, conf) in seeds::mlns().into_iter().enumerate() {
        write(
            "mln_json",
            format!("seed-{i}.json"),
            conf.to_json().unwrap().as_bytes(),
        );
        let net = MultiLayerNetwork::<f32>::new(conf).unwrap();
        for updater in [false, true] {
            let bytes = ModelSerializer::to_bytes(&net, updater).unwrap();
            write(
                "model_file",
                format!("seed-mln-{i}-{updater}.safetensors"),
                &bytes,
            );
        }
    }
    for (i, conf) in seeds::graphs().into_iter().enumerate() {
        write(
            "graph_json",
            format!("seed-{i}.json"),
            conf.to_json().unwrap().as_bytes(),
        );
        let net = ComputationGraph::<f32>::new(conf).unwrap();
        let bytes = ModelSerializer::to_bytes(&net, true).unwrap();
        write("model_file", format!("seed-graph-{i}.safetensors"), &bytes);
    }
}

/// The hand-written `adv-*` inputs claim sizes whose products or sums overflow `usize`: each
/// is a configuration error naming the overflow (before the fix: "attempt to multiply with
/// overflow" panics in `InputType::flat_size`, the preprocessors, `LayerConf::num_params`,
/// and "attempt to add with overflow" in the merge vertex).
#[test]
fn sizes_that_overflow_are_configuration_errors() {
    use dl4rs_nn::{ComputationGraphConfiguration, MultiLayerConfiguration};
    let mut checked = 0;
    for (target, parse) in [
        (
            "mln_json",
            (|s| MultiLayerConfiguration::from_json(s).err()) as fn(&str) -> _,
        ),
        ("graph_json", |s| {
            ComputationGraphConfiguration::from_json(s).err()
        }),
    ] {
        for entry in std::fs::read_dir(corpus(target)).unwrap() {
            let path = entry.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("adv-")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let err = parse(&text).unwrap_or_else(|| panic!("{}: accepted", path.display()));
            assert!(
                err.to_string().contains("overflow"),
                "{}: {err}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 7, "{checked} adversarial inputs");
}
