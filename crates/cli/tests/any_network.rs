//! `dl4rs train` trains any network on any data it reads, with defaults that work: JSON
//! configurations of both kinds (sized from the data), the bundled tabular sets with CSV
//! features standardized by default, regression targets standardized and reverted, and a
//! regression that beats a linear least-squares fit.

use std::path::{Path, PathBuf};

mod common;
use common::dl4rs;

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .to_string_lossy()
        .into_owned()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dl4rs-any-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn value(stdout: &str, prefix: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| {
            v.split_whitespace()
                .next()
                .map(|s| s.trim_end_matches('%'))
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{stdout}"))
}

#[test]
fn csv_classification_standardizes_by_default() {
    let wine = repo("data/tabular/wine.csv");
    let model = temp("wine.safetensors");
    let args = |extra: &'static [&'static str]| {
        let mut a = vec![
            "train",
            "--data",
            &wine,
            "--skip-lines",
            "1",
            "--label-column",
            "13",
            "--classes",
            "3",
            "--out",
            model.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, out, err) = dl4rs(&refs);
        assert_eq!(code, 0, "{err}");
        out
    };
    let default = run(args(&[]));
    assert!(default.contains("normalizer standardize"), "{default}");
    let plain = run(args(&["--normalizer", "none"]));
    let (a, b) = (
        value(&default, "test accuracy: "),
        value(&plain, "test accuracy: "),
    );
    println!("wine: {a}% standardized by default, {b}% with --normalizer none");
    assert!(a >= 95.0, "{default}");
    assert!(
        a > b,
        "standardizing must help on columns of very different scales"
    );
}

#[test]
fn csv_regression_standardizes_targets_and_beats_least_squares() {
    let data = repo("data/tabular/computers.csv");
    let model = temp("computers.safetensors");
    let (code, out, err) = dl4rs(&[
        "train",
        "--data",
        &data,
        "--skip-lines",
        "1",
        "--label-column",
        "9",
        "--regression",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(features and targets)"), "{out}");
    let r2 = value(&out, "test R²: ");
    let baseline = value(
        &out,
        "linear least-squares baseline (fitted on the same training rows): R² ",
    );
    println!("computers: R² {r2} vs least squares {baseline}");
    assert!(r2 > baseline, "{out}");
    // predict answers in dollars: the stored normalizer is applied and the targets reverted.
    let input = temp("computers-input.csv");
    std::fs::write(
        &input,
        "speed,hd,ram,screen,cd,multi,premium,ads,trend\n66,500,8,15,1,0,1,200,20\n",
    )
    .unwrap();
    let (code, out, err) = dl4rs(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let price: f64 = out
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        (900.0..6000.0).contains(&price),
        "a price in dollars: {out}"
    );
}

#[test]
fn json_configurations_of_both_kinds_train_on_the_bundled_data() {
    for (config, kind) in [
        ("examples/configs/mlp.json", "MultiLayerNetwork"),
        ("examples/configs/residual.json", "ComputationGraph"),
    ] {
        let model = temp(&format!("{kind}.safetensors"));
        let (code, out, err) = dl4rs(&[
            "train",
            "--data",
            "bundled",
            "--config",
            &repo(config),
            "--epochs",
            "2",
            "--out",
            model.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{config}: {err}");
        assert!(out.starts_with("data:") && out.contains(kind), "{out}");
        assert!(value(&out, "test accuracy: ") > 70.0, "{out}");
        assert!(
            out.contains("heap allocations per steady-state training iteration: 0 "),
            "{out}"
        );
        let (code, out, _) = dl4rs(&["summary", "--model", model.to_str().unwrap()]);
        assert_eq!(code, 0);
        assert!(out.contains(kind), "{out}");
        if kind == "ComputationGraph" {
            assert!(
                out.contains("ElementWiseVertex") && out.contains("block1_b, stem"),
                "the summary lists vertices with their inputs: {out}"
            );
        }
        let (code, out, err) = dl4rs(&[
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--data",
            "bundled",
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("Accuracy"), "{out}");
    }
}

#[test]
fn bad_configurations_are_one_line_and_exit_code_2() {
    let bad = temp("bad.json");
    std::fs::write(&bad, "{\"layers\": [}").unwrap();
    let (code, _, err) = dl4rs(&[
        "train",
        "--data",
        "bundled",
        "--config",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.json: not valid JSON"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // A graph whose vertex reads a missing input: the error names the vertex.
    let text = std::fs::read_to_string(repo("examples/configs/residual.json"))
        .unwrap()
        .replace("[\"block1_b\", \"stem\"]", "[\"block1_b\", \"stme\"]");
    std::fs::write(&bad, text).unwrap();
    let (code, _, err) = dl4rs(&[
        "train",
        "--data",
        "bundled",
        "--config",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("vertex \"block1\"") && err.contains("unknown input \"stme\""),
        "{err}"
    );
    // Sizes that contradict the data.
    let text = std::fs::read_to_string(repo("examples/configs/mlp.json"))
        .unwrap()
        .replace(
            "\"name\": \"hidden1\",",
            "\"name\": \"hidden1\", \"n_in\": 100,",
        );
    std::fs::write(&bad, text).unwrap();
    let (code, _, err) = dl4rs(&[
        "train",
        "--data",
        "bundled",
        "--config",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("784 values per example"), "{err}");
}

#[test]
fn lenet_trains_on_the_bundled_images() {
    let model = temp("lenet.safetensors");
    let (code, out, err) = dl4rs(&[
        "train",
        "--data",
        "bundled",
        "--model",
        "lenet",
        "--epochs",
        "2",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ConvolutionLayer") && out.contains("FeedForwardToCnn"),
        "{out}"
    );
    assert!(value(&out, "test accuracy: ") > 75.0, "{out}");
    assert!(
        out.contains("heap allocations per steady-state training iteration: 0 "),
        "{out}"
    );
}
