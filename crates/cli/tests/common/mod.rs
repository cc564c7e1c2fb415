//! Shared by the `dl4rs` integration tests that run the binary: running it, paths in the
//! repository and in a per-test-binary temporary directory, reading a figure off its output,
//! and the one-line-error check.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `dl4rs args`: (exit code, stdout, stderr).
pub fn dl4rs(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dl4rs"))
        .args(args)
        .output()
        .expect("run dl4rs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `path` in the repository.
pub fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .to_string_lossy()
        .into_owned()
}

/// `name` in a temporary directory of this test binary and process.
pub fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dl4rs-{}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The number after `prefix` on the first line that starts with it (a trailing `%` dropped).
pub fn value(stdout: &str, prefix: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| {
            v.split_whitespace()
                .next()
                .map(|s| s.trim_end_matches(['%', ',']))
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{stdout}"))
}

/// `dl4rs args` fails with exit code 2 and one line on stderr holding every `expect`.
pub fn fails(args: &[&str], expect: &[&str]) {
    let (code, stdout, stderr) = dl4rs(args);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    for e in expect {
        assert!(stderr.contains(e), "expected {e:?} in: {stderr}");
    }
}

/// Trains on the bundled sequences (`data/sequences/fashion-rows`, 2 product threads) with
/// `extra` arguments, saving to `model`; returns stdout.
pub fn train_sequences(extra: &[&str], model: &Path) -> String {
    let data = repo("data/sequences/fashion-rows");
    let mut args = vec![
        "train",
        "--data",
        &data,
        "--out",
        model.to_str().unwrap(),
        "--threads",
        "2",
    ];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = dl4rs(&args);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    assert!(model.is_file(), "model saved");
    stdout
}
