//! Memory-mapped workspaces never alias: one file, one mapping, across workspaces, threads,
//! links and processes; the file's size and lifetime are what `LocationPolicy::Mmap` says; and
//! a mapping retired at a borrowed cycle end comes back instead of being replaced by the heap.

use std::path::{Path, PathBuf};
use std::process::Command;

use dl4rs_memory::*;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dl4rs-mmapx-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cfg(path: &Path, bytes: usize) -> WorkspaceConfig {
    WorkspaceConfig::builder()
        .initial_size(bytes)
        .policy_learning(LearningPolicy::None)
        .policy_location(LocationPolicy::Mmap(Some(path.to_path_buf())))
        .build()
        .unwrap()
}

fn in_use(err: &WorkspaceError) -> &str {
    match err {
        WorkspaceError::MmapInUse { held_by, .. } => held_by,
        other => panic!("expected MmapInUse, got {other}"),
    }
}

/// The corpus program that used to alias: two workspaces on one file, a write through one
/// showing up in a valid array of the other. Now the second workspace is refused.
#[test]
fn same_thread_second_workspace_is_refused() {
    let d = dir("same");
    let path = d.join("ws.bin");
    let a = get_workspace_for_current_thread(&cfg(&path, 4096), "X_A").unwrap();
    let err = get_workspace_for_current_thread(&cfg(&path, 4096), "X_B").unwrap_err();
    assert!(in_use(&err).contains("workspace \"X_A\""), "{err}");
    // A smaller second workspace (the SIGBUS case: it would have truncated the file) too.
    let err = get_workspace_for_current_thread(&cfg(&path, 64), "X_C").unwrap_err();
    assert!(matches!(err, WorkspaceError::MmapInUse { .. }), "{err}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        4096,
        "file not resized"
    );
    // The holder is untouched and works.
    {
        let _s = a.notify_scope_entered().unwrap();
        let mut b = Buffer::<f32>::zeros(16).unwrap();
        b.write().unwrap()[0] = 1.0;
        assert!(b.is_in(&a));
    }
    a.destroy().unwrap();
    // Released (no array left): the file can be mapped again.
    let again = get_workspace_for_current_thread(&cfg(&path, 4096), "X_B").unwrap();
    again.destroy().unwrap();
    std::fs::remove_dir_all(&d).ok();
}

#[cfg(unix)]
#[test]
fn links_to_the_same_file_are_one_file() {
    let d = dir("links");
    let path = d.join("ws.bin");
    let soft = d.join("soft.bin");
    let hard = d.join("hard.bin");
    let a = get_workspace_for_current_thread(&cfg(&path, 4096), "L_A").unwrap();
    std::os::unix::fs::symlink(&path, &soft).unwrap();
    std::fs::hard_link(&path, &hard).unwrap();
    for (id, p) in [("L_SOFT", &soft), ("L_HARD", &hard)] {
        let err = get_workspace_for_current_thread(&cfg(p, 4096), id).unwrap_err();
        assert!(in_use(&err).contains("\"L_A\""), "{id}: {err}");
    }
    // A relative spelling of the path, too.
    let err = get_workspace_for_current_thread(
        &cfg(
            &d.join(".")
                .join("..")
                .join(d.file_name().unwrap())
                .join("ws.bin"),
            4096,
        ),
        "L_DOTS",
    )
    .unwrap_err();
    assert!(matches!(err, WorkspaceError::MmapInUse { .. }));
    a.destroy().unwrap();
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn other_thread_is_refused_and_named() {
    let d = dir("thread");
    let path = d.join("ws.bin");
    let a = get_workspace_for_current_thread(&cfg(&path, 4096), "T_MAIN").unwrap();
    let p = path.clone();
    let err = std::thread::Builder::new()
        .name("second-mapper".into())
        .spawn(move || {
            // The same id on another thread is another workspace (workspaces are per thread).
            get_workspace_for_current_thread(&cfg(&p, 4096), "T_MAIN").unwrap_err()
        })
        .unwrap()
        .join()
        .unwrap();
    let holder = in_use(&err);
    assert!(holder.contains("workspace \"T_MAIN\" on thread"), "{err}");
    let me = std::thread::current();
    if let Some(name) = me.name() {
        assert!(holder.contains(name), "holder names the thread: {err}");
    }
    a.destroy().unwrap();
    std::fs::remove_dir_all(&d).ok();
}

/// Two threads racing to map one file: exactly one wins.
#[test]
fn racing_threads_one_wins() {
    let d = dir("race");
    let path = d.join("ws.bin");
    for round in 0..20 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (p, b) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    let id = format!("R{round}_{t}");
                    let got = get_workspace_for_current_thread(&cfg(&p, 4096), &id);
                    let won = got.is_ok();
                    if let Err(e) = &got {
                        assert!(matches!(e, WorkspaceError::MmapInUse { .. }), "{e}");
                    }
                    // Hold the mapping until every thread has tried.
                    b.wait();
                    destroy_all_workspaces_for_current_thread();
                    won
                })
            })
            .collect();
        let winners = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&w| w)
            .count();
        assert_eq!(winners, 1, "round {round}");
    }
    std::fs::remove_dir_all(&d).ok();
}

const CHILD_ENV: &str = "DL4RS_MMAP_CHILD_PATH";

/// Runs only as the child of `other_process_is_refused`: tries to map the file and reports.
#[test]
fn child_maps_shared_file() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // an ordinary test run: nothing to do
    };
    match get_workspace_for_current_thread(&cfg(Path::new(&path), 4096), "CHILD") {
        Ok(ws) => {
            let _s = ws.notify_scope_entered().unwrap();
            let b = Buffer::<u8>::uninitialized(8).unwrap();
            println!("CHILD_RESULT: mapped, first byte {}", b.read().unwrap()[0]);
        }
        Err(e) => println!("CHILD_RESULT: {}", e.to_string().replace('\n', " | ")),
    }
}

fn run_child(path: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_maps_shared_file",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("CHILD_RESULT: ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no result from the child: {stdout}"))
        .to_string()
}

#[test]
fn other_process_is_refused() {
    let d = dir("process");
    let path = d.join("ws.bin");
    let ws = get_workspace_for_current_thread(&cfg(&path, 4096), "P_PARENT").unwrap();
    {
        let _s = ws.notify_scope_entered().unwrap();
        let mut b = Buffer::<u8>::zeros(8).unwrap();
        b.write().unwrap()[0] = 7;
    }
    let refused = run_child(&path);
    assert!(
        refused.contains("is already mapped by another process (it holds an exclusive lock"),
        "{refused}"
    );
    assert!(
        refused.contains("memory-mapped workspace \"CHILD\""),
        "{refused}"
    );
    // Released: the child maps it and sees the parent's data (kept in the file).
    ws.destroy().unwrap();
    let mapped = run_child(&path);
    assert_eq!(mapped, "mapped, first byte 7");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn mapping_is_released_when_the_last_array_drops() {
    let d = dir("release");
    let path = d.join("ws.bin");
    let ws = get_workspace_for_current_thread(&cfg(&path, 4096), "REL_A").unwrap();
    let scope = ws.notify_scope_entered().unwrap();
    let stale = Buffer::<f32>::zeros(4).unwrap();
    let guard = stale.read().unwrap();
    drop(scope); // borrowed at the cycle end: retired, the guard still reads the mapping
    ws.destroy().unwrap();
    let err = get_workspace_for_current_thread(&cfg(&path, 4096), "REL_B").unwrap_err();
    let holder = in_use(&err);
    assert!(holder.contains("\"REL_A\""), "{err}");
    assert!(
        holder.contains("destroyed: its mapping is released when the last array of it drops"),
        "{err}"
    );
    assert_eq!(guard[0], 0.0, "the borrowed array still reads its memory");
    drop(guard);
    // Not borrowed, but still referenced: still held.
    assert!(get_workspace_for_current_thread(&cfg(&path, 4096), "REL_B").is_err());
    assert!(matches!(
        stale.read(),
        Err(WorkspaceError::WorkspaceDestroyed { .. })
    ));
    drop(stale);
    let b = get_workspace_for_current_thread(&cfg(&path, 4096), "REL_B").unwrap();
    b.destroy().unwrap();
    assert!(path.exists(), "a user's file is never deleted");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn existing_files_are_extended_never_truncated() {
    let d = dir("sizes");
    // Longer than initial_size: kept whole, only the first bytes mapped, contents kept.
    let long = d.join("long.bin");
    let mut content = vec![0u8; 8192];
    content[0] = 5;
    content[8191] = 9;
    std::fs::write(&long, &content).unwrap();
    let ws = get_workspace_for_current_thread(&cfg(&long, 4096), "S_LONG").unwrap();
    {
        let _s = ws.notify_scope_entered().unwrap();
        let b = Buffer::<u8>::uninitialized(64).unwrap();
        assert_eq!(b.read().unwrap()[0], 5, "existing contents are mapped");
    }
    ws.destroy().unwrap();
    let after = std::fs::read(&long).unwrap();
    assert_eq!(after.len(), 8192, "never truncated");
    assert_eq!(after[8191], 9);

    // Shorter: extended with zeros to initial_size, existing bytes kept.
    let short = d.join("short.bin");
    std::fs::write(&short, [3u8; 100]).unwrap();
    let ws = get_workspace_for_current_thread(&cfg(&short, 4096), "S_SHORT").unwrap();
    ws.destroy().unwrap();
    let after = std::fs::read(&short).unwrap();
    assert_eq!(after.len(), 4096, "extended to initial_size");
    assert!(after[..100].iter().all(|&b| b == 3) && after[100..].iter().all(|&b| b == 0));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn temporary_file_leaves_nothing_behind() {
    let prefix = format!("dl4rs-ws-{}-", std::process::id());
    let count = || {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count()
    };
    let before = count();
    let temp = WorkspaceConfig::builder()
        .initial_size(4096)
        .policy_learning(LearningPolicy::None)
        .policy_location(LocationPolicy::Mmap(None))
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&temp, "TEMP_MAP").unwrap();
    let kept = {
        let _s = ws.notify_scope_entered().unwrap();
        let mut b = Buffer::<f64>::zeros(4).unwrap();
        b.write().unwrap()[0] = 2.5;
        b
    };
    if cfg!(unix) {
        assert_eq!(count(), before, "unlinked as soon as mapped");
    }
    ws.destroy().unwrap();
    drop(kept);
    assert_eq!(count(), before);
}

/// Formerly: after a retirement the mmap workspace silently continued on a heap block, so
/// data no longer went to the file. Now the mapping comes back once unborrowed.
#[test]
fn retired_mapping_comes_back_instead_of_the_heap() {
    let d = dir("retired");
    let path = d.join("ws.bin");
    let ws = get_workspace_for_current_thread(&cfg(&path, 4096), "RET").unwrap();
    let scope = ws.notify_scope_entered().unwrap();
    let mut first = Buffer::<u8>::zeros(8).unwrap();
    first.write().unwrap()[0] = 11;
    let guard = first.read().unwrap();
    assert!(matches!(
        scope.close(),
        Err(WorkspaceError::BorrowedAtCycleEnd { .. })
    ));
    {
        // Still borrowed: this cycle spills (visible in the statistics), the file is untouched.
        let _s = ws.notify_scope_entered().unwrap();
        let mut spilled = Buffer::<u8>::zeros(8).unwrap();
        spilled.write().unwrap()[0] = 99;
        let st = ws.stats().unwrap();
        assert_eq!(st.block_bytes, 0);
        assert_eq!(st.spilled_count, 1);
        assert_eq!(guard[0], 11, "the borrowed array is not overwritten");
    }
    drop(guard);
    {
        let _s = ws.notify_scope_entered().unwrap();
        assert_eq!(ws.stats().unwrap().block_bytes, 4096, "the mapping is back");
        let mut again = Buffer::<u8>::uninitialized(8).unwrap();
        assert_eq!(
            again.read().unwrap()[0],
            11,
            "the file's data, not a fresh heap block"
        );
        again.write().unwrap()[1] = 22;
    }
    ws.destroy().unwrap();
    drop(first);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..2], &[11, 22], "writes went to the file");
    std::fs::remove_dir_all(&d).ok();
}
