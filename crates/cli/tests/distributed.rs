//! `dl4rs train --distributed`. Without the `distributed` feature the flag is an error that
//! says how to build it; with it (`cargo test -p dl4rs-cli --features distributed`, MPICH
//! installed), `mpiexec -n 2 dl4rs train --distributed` trains the main job over two ranks in
//! both modes: one report (rank 0's), the accuracy of the one-process job, zero allocations.

use std::process::Command;

#[cfg(not(feature = "distributed"))]
#[test]
fn distributed_without_the_feature_says_how_to_build_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_dl4rs"))
        .args(["train", "--distributed", "--epochs", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features distributed"), "{err}");
    assert!(err.contains("mpiexec -n 2"), "{err}");
}

/// Runs `mpiexec -n 2 dl4rs train --distributed ARGS --out MODEL` (1 product thread per
/// rank); checks it succeeded with one report (rank 0's) over two ranks; returns stdout and the
/// test accuracy.
#[cfg(feature = "distributed")]
fn two_ranks(args: &[&str], model: &std::path::Path) -> (String, f64) {
    let out = Command::new("mpiexec")
        .args(["-n", "2"])
        .arg(env!("CARGO_BIN_EXE_dl4rs"))
        .args(["train", "--distributed", "--threads", "1"])
        .args(args)
        .arg("--out")
        .arg(model)
        .output()
        .expect("mpiexec (install MPICH)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One report: rank 0's.
    assert_eq!(text.matches("test accuracy:").count(), 1, "{text}");
    assert!(text.contains("distributed: 2 ranks over MPI"), "{text}");
    assert!(text.contains("allreduce: "), "{text}");
    assert!(
        text.contains("heap allocations per steady-state training iteration: 0 "),
        "{text}"
    );
    assert!(model.exists());
    let accuracy = text
        .lines()
        .find_map(|l| l.strip_prefix("test accuracy: "))
        .and_then(|v| v.trim_end_matches('%').parse().ok())
        .unwrap();
    (text, accuracy)
}

#[cfg(feature = "distributed")]
#[test]
fn two_ranks_train_the_main_job_in_both_modes() {
    let dir = std::env::temp_dir().join(format!("dl4rs-dist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for mode in ["shared-gradients", "averaging"] {
        let model = dir.join(format!("{mode}.safetensors"));
        let (_, accuracy) = two_ranks(
            &[
                "--training-mode",
                mode,
                "--data",
                "bundled",
                "--epochs",
                "3",
            ],
            &model,
        );
        assert!(accuracy > 78.0, "{mode}: {accuracy}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Variable-length masked sequences over two ranks: the built-in LSTM.
#[cfg(feature = "distributed")]
#[test]
fn two_ranks_train_the_builtin_lstm_on_sequences() {
    let dir = std::env::temp_dir().join(format!("dl4rs-dist-seq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (text, accuracy) = two_ranks(
        &[
            "--model", "lstm", "--epochs", "3", "--lr", "0.005", "--batch", "32",
        ],
        &dir.join("lstm.safetensors"),
    );
    assert!(text.contains("8..28 steps"), "{text}");
    // Chance is 10 %.
    assert!(accuracy > 45.0, "{accuracy}");
    let _ = std::fs::remove_dir_all(&dir);
}
