//! The soak, CI-sized: the driver of `dl4rs bench soak` (shared source,
//! `crates/cli/src/commands/soak_driver.rs`) run through the library crates directly, with a
//! reduced count. Resident memory after warm-up must stay within 2 %. The full run
//! (10^6 workspace cycles, 10^5 training iterations) is `dl4rs bench soak`; `SOAK_CYCLES` and
//! `SOAK_ITERATIONS` override the counts here.
//!
//! The test runs the soak in a child process (this binary again) with `SOAK_MALLOC_ENV`
//! (one malloc arena, no heap trimming: see its docs), so resident memory is the heap's
//! high-water mark and the 2 % bound is about the library, not the allocator's policy.

use dl4rs_array as dl_array;
use dl4rs_data as dl_data;
use dl4rs_memory as dl_memory;
use dl4rs_nn as dl_nn;

include!("../../cli/src/commands/soak_driver.rs");

#[global_allocator]
static ALLOC: dl_memory::CountingAllocator = dl_memory::CountingAllocator::new();

fn count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn resident_memory_stays_flat_under_mixed_workload_training_and_evaluation() {
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "resident_memory_stays_flat_under_mixed_workload_training_and_evaluation",
                "--nocapture",
                "--test-threads=1",
            ])
            .envs(SOAK_MALLOC_ENV)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprint!("{stderr}");
        assert!(out.status.success(), "the soak child failed");
        assert!(
            stderr.contains("RSS after warm-up"),
            "the soak child did not run"
        );
        return;
    }
    let config = SoakConfig {
        cycles: count("SOAK_CYCLES", 200_000),
        iterations: count("SOAK_ITERATIONS", 20_000),
        rounds: 30,
        warmup_rounds: 10,
        tolerance: 0.02,
    };
    let report = soak(&config, Some(&|| ALLOC.live_bytes()), &mut |s| {
        eprintln!(
            "round {:>3}: {:>8} cycles {:>7} iterations  RSS {:>7} KiB  live heap {:>6} KiB  \
             accuracy {:.3}  {:.1} s",
            s.round,
            s.cycles,
            s.iterations,
            s.rss_bytes / 1024,
            s.live_heap_bytes / 1024,
            s.accuracy,
            s.seconds
        );
    })
    .unwrap();
    eprint!("{}", report.summary());
    assert_eq!(report.samples.last().unwrap().cycles, config.cycles);
    assert_eq!(report.samples.last().unwrap().iterations, config.iterations);
    assert_eq!(report.evaluations, u64::from(config.rounds));
    assert!(report.baseline_rss > 0, "no /proc/self/statm");
    assert!(report.within_tolerance(), "{}", report.summary());
    // The heap the program holds (counted by the global allocator) does not grow either.
    assert!(report.baseline_live_heap > 0);
    assert!(
        report.max_live_heap as f64 <= report.baseline_live_heap as f64 * (1.0 + config.tolerance),
        "{}",
        report.summary()
    );
    // The network learned something on the way (4 classes: chance is 0.25).
    assert!(
        report.samples.last().unwrap().accuracy > 0.5,
        "{}",
        report.summary()
    );
}
