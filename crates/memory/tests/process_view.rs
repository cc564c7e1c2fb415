//! The process-wide view of every thread's workspaces: read from another thread while the
//! owner cycles, every snapshot is consistent (never torn), and a thread's workspaces leave the
//! view when it exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dl4rs_memory::{
    Buffer, LearningPolicy, WorkspaceConfig, get_and_activate_workspace, process_workspaces,
    process_workspaces_into,
};

/// Cycle `c` (1-based) allocates `(c % 7 + 1) * 64` bytes.
fn bytes_of_cycle(c: u64) -> u64 {
    (c % 7 + 1) * 64
}

#[test]
fn snapshots_read_while_cycling_are_consistent() {
    let stop = Arc::new(AtomicBool::new(false));
    let stop_worker = stop.clone();
    let cfg = WorkspaceConfig::builder()
        .initial_size(1 << 16)
        .policy_learning(LearningPolicy::None)
        .build()
        .unwrap();
    let worker = std::thread::Builder::new()
        .name("view-worker".into())
        .spawn(move || {
            let mut c = 0u64;
            while !stop_worker.load(Ordering::Relaxed) || c < 100 {
                c += 1;
                let _cycle = get_and_activate_workspace(&cfg, "VIEW_TEST").unwrap();
                let _a = Buffer::<u8>::zeros(bytes_of_cycle(c) as usize).unwrap();
            }
            c
        })
        .unwrap();
    let mut view = Vec::with_capacity(64);
    let mut seen = 0;
    let mut last_cycles = 0;
    let started = std::time::Instant::now();
    while (seen < 2_000 || last_cycles < 2_000) && started.elapsed().as_secs() < 20 {
        process_workspaces_into(&mut view);
        if let Some(w) = view
            .iter()
            .find(|w| &*w.thread == "view-worker" && &*w.id == "VIEW_TEST")
        {
            let s = w.snapshot;
            assert!(!w.cyclic);
            assert!(s.block_bytes >= 1 << 16);
            assert!(s.cycles >= last_cycles, "cycles go forward");
            last_cycles = s.cycles;
            if s.cycles > 0 {
                assert_eq!(
                    s.used_bytes,
                    bytes_of_cycle(s.cycles),
                    "torn snapshot: {s:?}"
                );
                seen += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let cycles = worker.join().unwrap();
    assert!(
        cycles >= 100 && seen > 0,
        "cycles {cycles}, snapshots {seen}"
    );
    assert!(
        process_workspaces()
            .iter()
            .all(|w| &*w.thread != "view-worker"),
        "an exited thread's workspaces leave the view"
    );
}

#[test]
fn destroyed_workspaces_leave_the_view_and_spills_show() {
    let cfg = WorkspaceConfig::default(); // learns the first cycle: it spills
    {
        let _cycle = get_and_activate_workspace(&cfg, "VIEW_SPILL").unwrap();
        let _a = Buffer::<f32>::zeros(1000).unwrap();
    }
    let find = || {
        process_workspaces()
            .into_iter()
            .find(|w| &*w.id == "VIEW_SPILL")
    };
    let first = find().unwrap().snapshot;
    assert_eq!((first.cycles, first.used_bytes), (1, 4032));
    assert_eq!(first.spilled_bytes, 4032, "the learning cycle spilled");
    assert!(first.block_bytes >= 4032, "learned at the cycle end");
    {
        let _cycle = get_and_activate_workspace(&cfg, "VIEW_SPILL").unwrap();
        let _a = Buffer::<f32>::zeros(1000).unwrap();
    }
    let second = find().unwrap().snapshot;
    assert_eq!((second.cycles, second.spilled_bytes), (2, 0));
    dl4rs_memory::find_workspace_for_current_thread("VIEW_SPILL")
        .unwrap()
        .destroy()
        .unwrap();
    assert!(find().is_none());
}
