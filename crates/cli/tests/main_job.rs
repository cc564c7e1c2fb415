//! The README's main job, end to end: `dl4rs train` on the bundled data reaches the stated
//! accuracy, reports zero heap allocations per steady-state iteration, saves a model that the
//! other subcommands read; bad paths are one clear line with exit code 2.

mod common;
use common::dl4rs;

#[test]
fn train_evaluate_predict_summary() {
    let dir = std::env::temp_dir().join(format!("dl4rs-main-job-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("model.safetensors");
    let model_s = model.to_str().unwrap();

    let (code, stdout, stderr) = dl4rs(&["train", "--data", "bundled", "--out", model_s]);
    assert_eq!(code, 0, "{stderr}");
    let accuracy: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("test accuracy: "))
        .and_then(|v| v.trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in:\n{stdout}"));
    assert!(
        accuracy >= 82.0,
        "test accuracy {accuracy}% < 82%\n{stdout}"
    );
    assert!(
        stdout.contains("heap allocations per steady-state training iteration: 0 "),
        "{stdout}"
    );
    assert!(
        stdout.contains("WS_ALL_LAYERS_ACT#") && stdout.contains("total block memory"),
        "{stdout}"
    );
    assert!(stdout.contains("Confusion Matrix"), "{stdout}");

    let (code, stdout, stderr) = dl4rs(&["evaluate", "--model", model_s, "--data", "bundled"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Accuracy"), "{stdout}");

    let (code, stdout, _) = dl4rs(&["summary", "--model", model_s]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("hidden1") && stdout.contains("total parameters: 235146"),
        "{stdout}"
    );

    let csv = dir.join("input.csv");
    let row = vec!["0.5"; 784].join(",");
    std::fs::write(&csv, format!("{row}\n{row}\n")).unwrap();
    let (code, stdout, stderr) = dl4rs(&[
        "predict",
        "--model",
        model_s,
        "--input",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");

    std::fs::write(&csv, "1,2,3\n").unwrap();
    let (code, _, stderr) = dl4rs(&[
        "predict",
        "--model",
        model_s,
        "--input",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("line 1: expected 784 values (the model's inputs), found 3"),
        "{stderr}"
    );
    let bad = format!("{row}\n{}x\n", "0,".repeat(783));
    std::fs::write(&csv, bad).unwrap();
    let (code, _, stderr) = dl4rs(&[
        "predict",
        "--model",
        model_s,
        "--input",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("line 2, column 784: \"x\" is not a number"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_paths_are_one_line_and_exit_code_2() {
    for args in [
        &["summary", "--model", "/nonexistent/model.safetensors"][..],
        &["evaluate", "--model", "/nonexistent/model.safetensors"][..],
        &["train", "--data", "/nonexistent-dir", "--epochs", "1"][..],
    ] {
        let (code, stdout, stderr) = dl4rs(args);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("dl4rs: ") && stderr.contains("/nonexistent"),
            "{stderr}"
        );
    }
}
