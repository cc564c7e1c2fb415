//! Sequence training modes and sequence prediction: `dl4rs train --tbptt K` (truncated BPTT,
//! the built-in LSTM with a per-step head, a recurrent `--config`), its errors (K = 0, a
//! feed-forward model, a one-vector-per-sequence head, with `--workers`), `dl4rs predict
//! --input DIR` on variable-length sequences (one class per sequence, agreeing with the
//! evaluation), and `dl4rs train --model lstm --workers 2` (ParallelWrapper on masked
//! variable-length batches).

mod common;

use std::path::Path;

use common::{dl4rs, fails, repo, temp, train_sequences as train, value};

/// `dl4rs predict` on the bundled test sequences: one line per sequence; returns the accuracy
/// against `test/labels` and checks the steps column against the files.
fn predict_accuracy(model: &Path) -> f64 {
    let test = repo("data/sequences/fashion-rows/test");
    let (code, out, err) = dl4rs(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--input",
        &test,
    ]);
    assert_eq!(code, 0, "{err}\n{out}");
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("sequence,steps,class,probability,name"),
        "{out}"
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 1000, "one line per test sequence");
    let mut correct = 0;
    let mut lengths = std::collections::BTreeSet::new();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], i.to_string());
        let steps: usize = r[1].parse().unwrap();
        let file = std::fs::read_to_string(format!("{test}/features/{i}.csv")).unwrap();
        assert_eq!(steps, file.lines().count(), "sequence {i}'s length");
        lengths.insert(steps);
        let p: f64 = r[3].parse().unwrap();
        assert!(p > 0.0 && p <= 1.0, "probability {p}");
        let label = std::fs::read_to_string(format!("{test}/labels/{i}.csv")).unwrap();
        if label.trim() == r[2] {
            correct += 1;
        }
    }
    assert!(lengths.len() > 10, "the test sequences vary in length");
    correct as f64 / 10.0
}

#[test]
fn tbptt_trains_the_builtin_lstm_with_a_per_step_head() {
    let model = temp("tbptt.safetensors");
    let out = train(
        &[
            "--model", "lstm", "--tbptt", "10", "--epochs", "2", "--lr", "0.005", "--batch", "32",
        ],
        &model,
    );
    assert!(
        out.contains("truncated BPTT: segments of 10 time steps"),
        "{out}"
    );
    // The head is an RnnOutputLayer (labels per step), not LastTimeStep + Output.
    assert!(
        out.contains("RnnOutputLayer") && !out.contains("LastTimeStep"),
        "{out}"
    );
    // Chance is 10 %; the gradient reaches only the last segment's <= 10 steps, so lower than
    // full BPTT's accuracy, but well above chance.
    let accuracy = value(&out, "test accuracy: ");
    assert!(accuracy > 35.0, "test accuracy {accuracy}%\n{out}");
    // The engine clears the carried state at the end of each batch; the LSTM keeps its state
    // arrays (h, c) for the next batch of the same size, so a steady-state iteration
    // allocates nothing.
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("heap allocations per steady-state training iteration: "))
        .unwrap_or_else(|| panic!("no allocation count in:\n{out}"));
    let median: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(median, 0, "{line}");
    // One iteration (updater step) per segment: batches of up to 28 steps are 2 or 3
    // segments of 10, so more than 2 iterations per batch on average (94 batches per epoch).
    let (code, summary, err) = dl4rs(&["summary", "--model", model.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let iterations = value(&summary, "trained iterations: ");
    assert!(
        iterations > 2.0 * 2.0 * 94.0 && iterations <= 3.0 * 2.0 * 94.0,
        "{summary}"
    );
    // Predictions read the per-step output at each sequence's last unmasked step: they agree
    // with the evaluation (batches of 256 against 500: padding differs, so allow 2 of 1000
    // near-ties to flip).
    let predicted = predict_accuracy(&model);
    assert!(
        (predicted - accuracy).abs() <= 0.2,
        "predict {predicted}% vs evaluation {accuracy}%"
    );
}

#[test]
fn tbptt_applies_to_a_recurrent_configuration() {
    // An LSTM with a per-step head (labels per step), shipped for truncated BPTT.
    let config = repo("examples/configs/lstm-per-step.json");
    let model = temp("tbptt-config.safetensors");
    let out = train(
        &[
            "--config", &config, "--tbptt", "7", "--epochs", "1", "--batch", "32",
        ],
        &model,
    );
    assert!(
        out.contains("truncated BPTT: segments of 7 time steps"),
        "{out}"
    );
    let accuracy = value(&out, "test accuracy: ");
    assert!(accuracy > 20.0, "test accuracy {accuracy}%\n{out}");
    // The saved configuration keeps the backprop type.
    let (code, summary, err) = dl4rs(&["summary", "--model", model.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(summary.contains("RnnOutputLayer"), "{summary}");
    let iterations = value(&summary, "trained iterations: ");
    // 94 batches of up to 28 steps: 4 or 5 segments of 7 each (1 epoch).
    assert!(iterations > 3.0 * 94.0, "{summary}");
}

#[test]
fn tbptt_errors_name_the_flag() {
    let data = repo("data/sequences/fashion-rows");
    fails(
        &["train", "--model", "lstm", "--tbptt", "0"],
        &["--tbptt 0", "at least 1 time step"],
    );
    // A feed-forward model on images.
    fails(
        &[
            "train", "--model", "mlp", "--data", "bundled", "--tbptt", "5",
        ],
        &["--tbptt 5", "not sequence data", "drop --tbptt"],
    );
    fails(
        &[
            "train",
            "--config",
            &repo("examples/configs/lenet.json"),
            "--data",
            "bundled",
            "--tbptt",
            "5",
        ],
        &["--tbptt 5", "lenet.json", "feed-forward"],
    );
    // A recurrent configuration whose head gives one vector per sequence.
    fails(
        &[
            "train",
            "--config",
            &repo("examples/configs/lstm.json"),
            "--data",
            &data,
            "--tbptt",
            "5",
        ],
        &["--tbptt 5", "outputs a sequence", "RnnOutputLayer"],
    );
    fails(
        &[
            "train",
            "--model",
            "lstm",
            "--data",
            &data,
            "--tbptt",
            "5",
            "--workers",
            "2",
        ],
        &["--tbptt 5", "--workers"],
    );
}

#[test]
fn predict_prints_one_class_per_sequence_agreeing_with_the_evaluation() {
    let model = temp("predict.safetensors");
    let out = train(
        &[
            "--model", "lstm", "--epochs", "1", "--lr", "0.005", "--batch", "32",
        ],
        &model,
    );
    let accuracy = value(&out, "test accuracy: ");
    let predicted = predict_accuracy(&model);
    assert!(
        (predicted - accuracy).abs() <= 0.2,
        "predict {predicted}% vs evaluation {accuracy}%"
    );

    // Errors: a directory without features/, sequences of the wrong width.
    let m = model.to_str().unwrap();
    let empty = temp("no-features");
    std::fs::create_dir_all(&empty).unwrap();
    fails(
        &["predict", "--model", m, "--input", empty.to_str().unwrap()],
        &["no-features", "features/0.csv"],
    );
    let narrow = temp("narrow");
    std::fs::create_dir_all(narrow.join("features")).unwrap();
    std::fs::write(narrow.join("features/0.csv"), "0.5,1\n1.5,2\n").unwrap();
    fails(
        &["predict", "--model", m, "--input", narrow.to_str().unwrap()],
        &["features/0.csv", "28 values", "2 values"],
    );
}

#[test]
fn the_builtin_lstm_trains_through_parallel_wrapper_on_variable_lengths() {
    let model = temp("workers.safetensors");
    let out = train(
        &[
            "--model",
            "lstm",
            "--workers",
            "2",
            "--epochs",
            "3",
            "--lr",
            "0.005",
            "--batch",
            "32",
        ],
        &model,
    );
    assert!(out.contains("ParallelWrapper: 2 trainer threads"), "{out}");
    assert!(out.contains("8..28 steps"), "{out}");
    for t in ["dl4rs trainer 0", "dl4rs trainer 1"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(t) && l.contains("workspaces")),
            "{t} in\n{out}"
        );
    }
    // Chance is 10 %; one model on this thread reaches about 60 % in 3 epochs.
    let accuracy = value(&out, "test accuracy: ");
    assert!(accuracy > 45.0, "test accuracy {accuracy}%\n{out}");
    // The batches' time lengths change from round to round; once the longest has been seen
    // (after the first epoch) a round allocates nothing on any thread.
    assert!(
        out.contains("heap allocations per steady-state round, all threads: 0 "),
        "{out}"
    );
    // The saved model predicts like any other.
    let predicted = predict_accuracy(&model);
    assert!(
        (predicted - accuracy).abs() <= 0.2,
        "predict {predicted}% vs evaluation {accuracy}%"
    );
}
