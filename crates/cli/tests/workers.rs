//! `dl4rs train --workers N`: the main job (and a `--config` graph) through ParallelWrapper:
//! trained to the main job's accuracy, the trainers' workspaces listed per thread, zero heap
//! allocations per steady-state round on all threads; `--workers 1` is one clear line, exit 2.

mod common;
use common::dl4rs;

fn accuracy(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("test accuracy: "))
        .and_then(|v| v.trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in:\n{stdout}"))
}

#[test]
fn the_main_job_and_a_graph_train_through_parallel_wrapper() {
    let dir = std::env::temp_dir().join(format!("dl4rs-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("model.safetensors");
    let model_s = model.to_str().unwrap();

    let (code, stdout, stderr) = dl4rs(&[
        "train",
        "--data",
        "bundled",
        "--workers",
        "2",
        "--out",
        model_s,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("ParallelWrapper: 2 trainer threads"),
        "{stdout}"
    );
    assert!(accuracy(&stdout) >= 82.0, "{stdout}");
    for t in ["dl4rs trainer 0", "dl4rs trainer 1"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(t) && l.contains("workspaces")),
            "{t} in\n{stdout}"
        );
    }
    assert!(
        stdout.contains("heap allocations per steady-state round, all threads: 0 "),
        "{stdout}"
    );
    let (code, stdout, _) = dl4rs(&["evaluate", "--model", model_s, "--data", "bundled"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Accuracy"), "{stdout}");

    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/configs/residual.json"
    );
    let (code, stdout, stderr) = dl4rs(&[
        "train",
        "--data",
        "bundled",
        "--config",
        config,
        "--epochs",
        "2",
        "--workers",
        "2",
        "--out",
        model_s,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(accuracy(&stdout) >= 75.0, "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn one_worker_is_a_clear_error() {
    let (code, _, stderr) = dl4rs(&["train", "--data", "bundled", "--workers", "1"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--workers 1") && stderr.contains("at least 2"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn bench_parallel_reports_every_configuration_and_the_waits() {
    // The smallest run: the baseline and SharedGradients, 2 epochs (the first is warm-up).
    let (code, stdout, stderr) = dl4rs(&[
        "bench",
        "parallel",
        "--epochs",
        "2",
        "--runs",
        "1",
        "--only",
        "SharedGradients",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name:?} in:\n{stdout}"))
            .to_string()
    };
    let base = row("1 model, 1 product thread");
    let shared = row("2 workers x 1 thread, SharedGradients");
    assert!(!stdout.contains("Averaging"), "--only filters:\n{stdout}");
    // Columns: examples/s, CPU ms/1k, accuracy, allocations per round, peak heap, then the
    // ratios (whole fit; after epoch 1).
    for r in [&base, &shared] {
        let cols: Vec<&str> = r.split_whitespace().collect();
        let accuracy = cols.iter().position(|c| c.ends_with('%'));
        let allocs = accuracy.and_then(|k| cols.get(k + 1)).copied();
        assert_eq!(allocs, Some("0"), "allocations per steady-state round: {r}");
        assert!(r.contains("after epoch 1 "), "no steady-state ratio: {r}");
    }
    assert!(base.ends_with("(1.00x; after epoch 1 1.00x)"), "{base}");
    let waits = stdout
        .lines()
        .find(|l| l.contains("parks per round: coordinator"))
        .unwrap_or_else(|| panic!("no wait statistics in:\n{stdout}"));
    assert!(waits.contains("at the barrier"), "{waits}");
    let gradients = stdout
        .lines()
        .find(|l| l.contains("gradient per batch: fastest trainer"))
        .unwrap_or_else(|| panic!("no gradient times in:\n{stdout}"));
    assert!(gradients.contains(" us, slowest "), "{gradients}");
    assert!(
        gradients.contains("batches prepared while waiting at a barrier: "),
        "{gradients}"
    );
}
