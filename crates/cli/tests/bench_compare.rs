//! `dl4rs bench compare`: dl4rs alone when no peer is set up, a peer's JSON lines paired with
//! dl4rs's per workload and thread count (a stand-in peer script, so no PyTorch is needed),
//! and a clear error for a `--python` that does not exist.

use std::process::Command;

fn compare(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dl4rs"))
        .args([
            "bench",
            "compare",
            "--workloads",
            "mm",
            "--threads",
            "1",
            "--rounds",
            "2",
        ])
        .args(args)
        .current_dir(dir)
        .env_remove("DL4RS_PEER_PYTHON")
        .output()
        .expect("run dl4rs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dl4rs-compare-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn without_a_peer_it_prints_dl4rs_alone_and_how_to_get_one() {
    let dir = temp_dir("alone");
    let (code, out, err) = compare(&[], &dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("benches/peers/pytorch.sh"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("mm"))
        .expect("an mm row");
    assert!(row.contains("GF"), "{row}");
    assert!(
        row.trim_end().ends_with("- / -"),
        "no peer figures expected: {row}"
    );
}

#[test]
fn a_peers_lines_are_paired_with_dl4rs_per_workload_and_threads() {
    let dir = temp_dir("fake");
    // A stand-in for the PyTorch script: the interpreter is /bin/sh, the "script" prints
    // what pytorch_workloads.py prints (it is called with --threads N --workloads mm).
    let script = dir.join("peer.sh");
    std::fs::write(
        &script,
        "echo '{\"peer\": \"fake 1.0\", \"workload\": \"mm\", \"threads\": 1, \"ms\": 1000.0, \
         \"loss\": null}'\n",
    )
    .unwrap();
    let script = script.to_str().unwrap();
    let (code, out, err) = compare(&["--python", "/bin/sh", "--script", script], &dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("fake 1.0 ms"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("mm"))
        .expect("an mm row");
    assert!(row.contains("1000.000 (1000.000-1000.000)"), "{row}");
    // dl4rs takes about a millisecond for the 8 products, so the peer is far slower.
    let ratio: f64 = row
        .split_whitespace()
        .find_map(|w| w.strip_suffix('x').and_then(|v| v.parse().ok()))
        .expect("a ratio");
    assert!(ratio > 10.0, "{row}");

    let (code, out, err) = compare(&["--python", "/bin/sh", "--script", script, "--json"], &dir);
    assert_eq!(code, 0, "{err}");
    let peers: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split("\"peer\":\"").nth(1))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert_eq!(peers, ["dl4rs", "fake 1.0", "dl4rs", "fake 1.0"], "{out}");
}

#[test]
fn a_missing_python_is_a_clear_error() {
    let dir = temp_dir("missing");
    let (code, _, err) = compare(&["--python", "/nonexistent/python"], &dir);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/python: no such file"), "{err}");
    assert!(err.contains("benches/peers/pytorch.sh"), "{err}");
}
