//! `dl4rs train` on sequence data in DL4J's CSV sequence layout: the built-in LSTM
//! classifier (`--model lstm`) and a JSON configuration (`examples/configs/lstm.json`), both
//! sized from the files, train a real LSTM on the bundled Fashion-MNIST rows (variable
//! lengths, masks, async prefetch) well above chance, with zero heap allocations per
//! steady-state iteration; bad sequence directories are one-line errors naming the file.

mod common;

use std::path::PathBuf;

use common::{dl4rs, fails, repo, temp, train_sequences, value};

/// Trains with `extra` arguments on the bundled sequences, saving to `model` in the
/// temporary directory; returns stdout.
fn train(extra: &[&str], model: &str) -> String {
    train_sequences(extra, &temp(model))
}

#[test]
fn builtin_lstm_learns_the_bundled_sequences() {
    let out = train(
        &[
            "--model", "lstm", "--epochs", "3", "--lr", "0.005", "--batch", "32",
        ],
        "lstm.safetensors",
    );
    assert!(
        out.contains("3000 train / 1000 test, 28 channels per step, 8..28 steps, 10 classes"),
        "{out}"
    );
    // LSTM 28 -> 64 (4 gates x 64 x (28 + 64 + 1) parameters) read at its last step.
    assert!(
        out.contains("LastTimeStep") && out.contains("23808"),
        "{out}"
    );
    // Chance is 10 %.
    let accuracy = value(&out, "test accuracy: ");
    assert!(accuracy > 55.0, "test accuracy {accuracy}%\n{out}");
    assert!(
        out.contains("heap allocations per steady-state training iteration: 0 "),
        "{out}"
    );
    // The evaluation prints the Fashion-MNIST class names for the bundled set.
    assert!(out.contains("Ankle boot"), "{out}");
    // The saved model (with its normalizer) evaluates to the same accuracy.
    let model = temp("lstm.safetensors");
    let data = repo("data/sequences/fashion-rows");
    let (code, again, err) = dl4rs(&[
        "evaluate",
        "--model",
        model.to_str().unwrap(),
        "--data",
        &data,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        again.contains("normalizer standardize (from the model)"),
        "{again}"
    );
    assert_eq!(value(&again, "test accuracy: "), accuracy, "{again}");
}

#[test]
fn lstm_configuration_is_sized_from_the_sequences() {
    let config = repo("examples/configs/lstm.json");
    let out = train(
        &["--config", &config, "--epochs", "3", "--batch", "32"],
        "lstm-config.safetensors",
    );
    // Two stacked LSTMs, the second read at its last step, sized from the 28 channels.
    assert!(out.contains("Recurrent(size=28)"), "{out}");
    assert!(
        out.contains("lstm2") && out.contains("LastTimeStep"),
        "{out}"
    );
    let accuracy = value(&out, "test accuracy: ");
    assert!(accuracy > 55.0, "test accuracy {accuracy}%\n{out}");
}

#[test]
fn per_step_output_trains_on_aligned_labels_and_evaluates_the_last_steps() {
    // DL4J's classic sequence classifier: an RnnOutputLayer, labels [batch, classes, time]
    // with the label mask on each sequence's last step (AlignEnd); the evaluation counts the
    // unmasked steps: one per test sequence.
    let config = temp("per-step.json");
    std::fs::write(
        &config,
        r#"{
          "seed": 7,
          "updater": { "Adam": { "learning_rate": 0.005, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8 } },
          "weight_init": "XavierUniform",
          "layers": [
            { "type": "LSTM", "n_out": 32 },
            { "type": "RnnOutputLayer", "activation": "Softmax", "loss": "Mcxent" }
          ]
        }"#,
    )
    .unwrap();
    let out = train(
        &[
            "--config",
            config.to_str().unwrap(),
            "--epochs",
            "3",
            "--batch",
            "32",
        ],
        "per-step.safetensors",
    );
    assert!(out.contains("RnnOutputLayer"), "{out}");
    let accuracy = value(&out, "test accuracy: ");
    assert!(accuracy > 50.0, "test accuracy {accuracy}%\n{out}");
    // Every test sequence counted exactly once: the "# actual" column sums to 1000.
    let actual: usize = out
        .lines()
        .skip_while(|l| !l.contains("# actual"))
        .skip(1)
        .take(10)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f[f.len() - 2].parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(actual, 1000, "{out}");
}

#[test]
fn the_report_draws_a_sequence_run() {
    let html = temp("report/run.html");
    let out = train(
        &[
            "--model",
            "lstm",
            "--epochs",
            "1",
            "--report",
            html.to_str().unwrap(),
        ],
        "report.safetensors",
    );
    let accuracy = value(&out, "test accuracy: ");
    let page = std::fs::read_to_string(&html).unwrap();
    // The page's test accuracy is the one printed (the test split as one padded data set).
    assert!(page.contains(&format!("{accuracy:.2} %")), "{accuracy}");
    assert!(page.contains("WS_RNN_LOOP_WORKING_MEM"));
    assert!(html.with_file_name("run.stats.jsonl").is_file());
}

/// `dir/train` and `dir/test` with `n` sequences each of one step, one channel.
fn tiny(tag: &str, n: usize) -> PathBuf {
    let dir = temp(tag);
    let _ = std::fs::remove_dir_all(&dir);
    for split in ["train", "test"] {
        for kind in ["features", "labels"] {
            std::fs::create_dir_all(dir.join(split).join(kind)).unwrap();
        }
        for i in 0..n {
            std::fs::write(
                dir.join(split).join(format!("features/{i}.csv")),
                "0.5\n1.5\n",
            )
            .unwrap();
            std::fs::write(
                dir.join(split).join(format!("labels/{i}.csv")),
                format!("{}\n", i % 2),
            )
            .unwrap();
        }
    }
    dir
}

#[test]
fn bad_sequence_directories_are_one_line_errors_naming_the_file() {
    let dir = tiny("bad-line", 3);
    std::fs::write(dir.join("train/features/1.csv"), "0.5\nabc\n").unwrap();
    let d = dir.to_string_lossy().into_owned();
    fails(
        &["train", "--model", "lstm", "--data", &d, "--epochs", "1"],
        &["train/features/1.csv", "line 2"],
    );

    let dir = tiny("no-test", 3);
    std::fs::remove_dir_all(dir.join("test")).unwrap();
    let d = dir.to_string_lossy().into_owned();
    fails(
        &["train", "--model", "lstm", "--data", &d, "--epochs", "1"],
        &["test", "features/"],
    );

    let dir = tiny("gap", 3);
    std::fs::remove_file(dir.join("train/labels/1.csv")).unwrap();
    let d = dir.to_string_lossy().into_owned();
    fails(
        &["train", "--model", "lstm", "--data", &d, "--epochs", "1"],
        &["train/labels", "expected 1.csv"],
    );

    let dir = tiny("class", 3);
    std::fs::write(dir.join("test/labels/2.csv"), "one\n").unwrap();
    let d = dir.to_string_lossy().into_owned();
    fails(
        &["train", "--model", "lstm", "--data", &d, "--epochs", "1"],
        &["test/labels/2.csv", "line 1"],
    );

    let dir = tiny("flags", 3);
    let d = dir.to_string_lossy().into_owned();
    fails(
        &[
            "train",
            "--data",
            &d,
            "--label-column",
            "0",
            "--classes",
            "2",
        ],
        &["drop --label-column"],
    );
    fails(
        &["train", "--model", "lenet", "--data", &d],
        &["--model lenet reads images"],
    );

    fails(
        &[
            "train",
            "--model",
            "lstm",
            "--data",
            "/nonexistent-dl4rs-dir",
        ],
        &["/nonexistent-dl4rs-dir", "not sequence data"],
    );
}
