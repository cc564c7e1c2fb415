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

#[cfg(feature = "distributed")]
#[test]
fn two_ranks_train_the_main_job_in_both_modes() {
    let dir = std::env::temp_dir().join(format!("dl4rs-dist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for mode in ["shared-gradients", "averaging"] {
        let model = dir.join(format!("{mode}.safetensors"));
        let out = Command::new("mpiexec")
            .args(["-n", "2"])
            .arg(env!("CARGO_BIN_EXE_dl4rs"))
            .args(["train", "--distributed", "--training-mode", mode])
            .args(["--data", "bundled", "--epochs", "3", "--threads", "1"])
            .arg("--out")
            .arg(&model)
            .output()
            .expect("mpiexec (install MPICH)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // One report: rank 0's.
        assert_eq!(text.matches("test accuracy:").count(), 1, "{text}");
        assert!(text.contains("distributed: 2 ranks over MPI"), "{text}");
        assert!(text.contains("allreduce: "), "{text}");
        let accuracy: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("test accuracy: "))
            .and_then(|v| v.trim_end_matches('%').parse().ok())
            .unwrap();
        assert!(accuracy > 78.0, "{mode}: {accuracy}");
        assert!(
            text.contains("heap allocations per steady-state training iteration: 0 "),
            "{text}"
        );
        assert!(model.exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Variable-length masked sequences over two ranks: the built-in LSTM.
#[cfg(feature = "distributed")]
#[test]
fn two_ranks_train_the_builtin_lstm_on_sequences() {
    let dir = std::env::temp_dir().join(format!("dl4rs-dist-seq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("lstm.safetensors");
    let out = Command::new("mpiexec")
        .args(["-n", "2"])
        .arg(env!("CARGO_BIN_EXE_dl4rs"))
        .args(["train", "--distributed", "--model", "lstm"])
        .args([
            "--epochs",
            "3",
            "--lr",
            "0.005",
            "--batch",
            "32",
            "--threads",
            "1",
        ])
        .arg("--out")
        .arg(&model)
        .output()
        .expect("mpiexec (install MPICH)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("test accuracy:").count(), 1, "{text}");
    assert!(text.contains("distributed: 2 ranks over MPI"), "{text}");
    assert!(text.contains("8..28 steps"), "{text}");
    let accuracy: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("test accuracy: "))
        .and_then(|v| v.trim_end_matches('%').parse().ok())
        .unwrap();
    // Chance is 10 %.
    assert!(accuracy > 45.0, "{accuracy}");
    assert!(
        text.contains("heap allocations per steady-state training iteration: 0 "),
        "{text}"
    );
    assert!(model.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
