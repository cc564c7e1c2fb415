//! `dl4rs bench conv --part gflops`, the child that times the convolutions' own operations
//! against the gemm of the same products: every part of both LeNet convolutions is reported
//! with finite rates, and no timed cycle of either side allocates on the heap. A part that
//! spilled out of its workspace (as the gemm reference once did, and the second layer's
//! parts did while the layers shared workspaces) would time the allocator, not the
//! arithmetic. Times are not asserted; allocation counts are.

use std::process::Command;

use serde_json::Value;

fn gflops(threads: usize) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dl4rs"))
        .args(["bench", "conv", "--part", "gflops", "--threads"])
        .arg(threads.to_string())
        .output()
        .expect("run dl4rs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn every_part_is_timed_without_a_heap_allocation() {
    for threads in [1, 2] {
        let r = gflops(threads);
        assert_eq!(r["threads"], threads, "{r}");
        assert_eq!(r["allocations"], 0, "{threads} thread(s): {r}");
        let rows = r["rows"].as_array().expect("rows");
        let parts: Vec<(String, String)> = rows
            .iter()
            .map(|row| {
                let layer = row[0].as_str().unwrap_or_default();
                let short = layer.split(' ').next().unwrap_or_default().to_string();
                (short, row[1].as_str().unwrap_or_default().to_string())
            })
            .collect();
        let want = [
            ("conv1", "forward"),
            ("conv1", "weight gradient"),
            ("conv2", "forward"),
            ("conv2", "weight gradient"),
            ("conv2", "input gradient"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(l, p)| (l.to_string(), p.to_string()))
            .collect();
        assert_eq!(parts, want, "{r}");
        for row in rows {
            for k in [2, 3] {
                let rate = row[k].as_f64().unwrap_or(f64::NAN);
                assert!(rate.is_finite() && rate > 0.0, "{row}");
            }
        }
    }
}
