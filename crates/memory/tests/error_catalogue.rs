//! One test per entry of docs/workspace-errors.md: each triggers the error with the minimal
//! example given there and checks the message names what the catalogue promises (workspace,
//! generations, open workspaces, fix).

use dl4rs_memory::*;

fn fixed(id: &str, bytes: usize) -> Workspace {
    let cfg = WorkspaceConfig::builder()
        .initial_size(bytes)
        .policy_learning(LearningPolicy::None)
        .build()
        .unwrap();
    get_workspace_for_current_thread(&cfg, id).unwrap()
}

fn assert_contains(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "expected {part:?} in:\n{message}");
    }
}

#[test]
fn stale_array() {
    let cfg = WorkspaceConfig::default();
    let _outer = get_and_activate_workspace(&cfg, "EPOCH").unwrap();
    let kept = {
        let _cycle = get_and_activate_workspace(&cfg, "ITERATION").unwrap();
        Buffer::<f32>::zeros(128).unwrap()
    };
    let err = kept.read().unwrap_err();
    assert!(matches!(err, WorkspaceError::StaleArray { .. }));
    assert_contains(
        &err.to_string(),
        &[
            "stale array: 128 x f32 in workspace \"ITERATION\"",
            "born in cycle (generation) 0",
            "has closed that cycle (current generation 1)",
            "Open workspaces on this thread: [\"EPOCH\"]",
            "Fix: call detach()",
            "leverage_to",
        ],
    );
    // Reopened since: the message says so.
    let _again = get_and_activate_workspace(&cfg, "ITERATION").unwrap();
    assert_contains(
        &kept.read().unwrap_err().to_string(),
        &[
            "was closed and reopened since",
            "[\"EPOCH\", \"ITERATION\"]",
        ],
    );
}

#[test]
fn stale_ring_slot() {
    let cfg = WorkspaceConfig::builder()
        .policy_reset(ResetPolicy::EndOfBuffer)
        .policy_allocation(AllocationPolicy::Strict)
        .policy_learning(LearningPolicy::None)
        .initial_size(1024)
        .build()
        .unwrap();
    let ring = get_workspace_for_current_thread(&cfg, "PREFETCH_RING").unwrap();
    let first = {
        let _s = ring.notify_scope_entered().unwrap();
        Buffer::<f32>::zeros(128).unwrap() // 512 bytes
    };
    for _ in 0..2 {
        let _s = ring.notify_scope_entered().unwrap();
        let _next = Buffer::<f32>::zeros(128).unwrap();
    }
    let err = first.read().unwrap_err();
    assert!(matches!(err, WorkspaceError::StaleRingSlot { .. }));
    assert_contains(
        &err.to_string(),
        &[
            "cyclic workspace \"PREFETCH_RING\"",
            "ring position 0 (ring of 1024 bytes)",
            "written up to position 1536",
            "before the next call to next()",
            "detach()",
        ],
    );
}

#[test]
fn workspace_destroyed() {
    let ws = fixed("SCRATCH", 4096);
    let _s = ws.notify_scope_entered().unwrap();
    let a = Buffer::<f64>::zeros(3).unwrap();
    destroy_all_workspaces_for_current_thread();
    let err = a.read().unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "3 x f64 in workspace \"SCRATCH\" (born in generation 0)",
            "the workspace was destroyed",
            "Fix: detach()",
        ],
    );
}

#[test]
fn borrowed_at_cycle_end() {
    let ws = fixed("LAYER_WORKING_MEM", 4096);
    let scope = ws.notify_scope_entered().unwrap();
    let a = Buffer::<f32>::zeros(8).unwrap();
    let guard = a.read().unwrap();
    let err = scope.close().unwrap_err();
    drop(guard);
    assert_contains(
        &err.to_string(),
        &[
            "workspace \"LAYER_WORKING_MEM\" ended cycle 0 while 1 borrow(s)",
            "the block was retired (not reused)",
            "Fix: drop read()/write() guards",
        ],
    );
}

#[test]
fn workspace_full() {
    let cfg = WorkspaceConfig::builder()
        .initial_size(1024)
        .policy_allocation(AllocationPolicy::Strict)
        .policy_learning(LearningPolicy::None)
        .policy_spill(SpillPolicy::Fail)
        .build()
        .unwrap();
    let _s = get_and_activate_workspace(&cfg, "FIXED").unwrap();
    let err = Buffer::<f32>::zeros(1000).unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "workspace \"FIXED\" is full: 4032 bytes requested at offset 0 of a 1024-byte block",
            "SpillPolicy::Fail",
            "Fix: raise initial_size",
        ],
    );
}

#[test]
fn config_mismatch() {
    get_workspace_for_current_thread(&WorkspaceConfig::default(), "WS_ALL_LAYERS_ACT").unwrap();
    let other = WorkspaceConfig::builder()
        .overallocation_limit(0.05)
        .build()
        .unwrap();
    let err = get_workspace_for_current_thread(&other, "WS_ALL_LAYERS_ACT").unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "workspace \"WS_ALL_LAYERS_ACT\" already exists on this thread with a different configuration",
            "overallocation_limit: 0.3",
            "overallocation_limit: 0.05",
            "Fix: use a distinct id",
        ],
    );
}

#[test]
fn invalid_config() {
    let err = WorkspaceConfig::builder()
        .initial_size(1 << 20)
        .policy_location(LocationPolicy::Mmap(None))
        .build()
        .unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "invalid workspace configuration: policy_learning",
            "can't learn: use LearningPolicy::None (found FirstLoop)",
        ],
    );
}

#[test]
fn already_borrowed() {
    let outer = fixed("OUTER", 4096);
    let inner = fixed("INNER", 4096);
    let _o = outer.notify_scope_entered().unwrap();
    let _i = inner.notify_scope_entered().unwrap();
    let _b = outer.notify_scope_borrowed().unwrap();
    let err = outer.notify_scope_borrowed().unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "workspace \"OUTER\": can't borrow from a borrowed workspace",
            "[\"OUTER\", \"INNER\"]",
            "Fix: allocate through the existing borrow scope",
        ],
    );
}

#[test]
fn not_open() {
    let ws = fixed("CLOSED", 4096);
    let err = Buffer::<f32>::zeros_in(&ws, 4).unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "workspace \"CLOSED\" is not open",
            "Open workspaces on this thread: [] (none)",
            "Fix: allocate inside a scope of it",
        ],
    );
    assert!(matches!(
        ws.notify_scope_borrowed(),
        Err(WorkspaceError::NotOpen { .. })
    ));
}

#[test]
fn already_open() {
    let outer = fixed("ACT_1", 4096);
    let inner = fixed("ACT_2", 4096);
    let _o = outer.notify_scope_entered().unwrap();
    let _i = inner.notify_scope_entered().unwrap();
    let err = outer.notify_scope_entered().unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "workspace \"ACT_1\" is already open further out (current workspace: ACT_2)",
            "Fix: use notify_scope_borrowed()",
        ],
    );
}

#[test]
fn no_such_workspace() {
    fixed("KNOWN", 4096);
    let err = find_workspace_for_current_thread("UNKNOWN").unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "no workspace \"UNKNOWN\" exists on this thread",
            "existing: [\"KNOWN\"]",
            "Fix: create it",
        ],
    );
}

#[test]
fn destroyed_handle() {
    let ws = fixed("GONE", 4096);
    ws.destroy().unwrap();
    let err = ws.stats().unwrap_err();
    assert!(matches!(err, WorkspaceError::DestroyedHandle { .. }));
    assert_contains(
        &err.to_string(),
        &[
            "the handle refers to workspace \"GONE\", which was destroyed",
            "no workspace with that id exists on this thread now",
            "Existing on this thread: [] (none)",
            "Fix: get a new handle",
        ],
    );
    // Created again under the same id: the old handle's message says so, and doesn't claim
    // that no workspace "GONE" exists while listing it.
    let fresh = fixed("GONE", 4096);
    let err = ws.notify_scope_entered().unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "workspace \"GONE\", which was destroyed",
            "a new workspace with that id exists on this thread, but this handle refers to the \
             destroyed one",
            "Existing on this thread: [\"GONE\"]",
        ],
    );
    assert!(!err.to_string().contains("no workspace \"GONE\" exists"));
    assert!(fresh.stats().is_ok());
}

#[test]
fn size_overflow() {
    let err = Buffer::<f64>::zeros(usize::MAX / 2).unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "allocation of 9223372036854775807 x f64 overflows",
            "expected at most",
        ],
    );
}

#[test]
fn out_of_memory() {
    let err = Buffer::<u8>::zeros_detached(1 << 62).unwrap_err();
    assert_contains(
        &err.to_string(),
        &["out of memory: the system refused 4611686018427387904 bytes for workspace \"heap\""],
    );
}

#[test]
fn mmap_failure() {
    let cfg = WorkspaceConfig::builder()
        .initial_size(4096)
        .policy_learning(LearningPolicy::None)
        .policy_location(LocationPolicy::Mmap(Some("/nonexistent-dir/ws.bin".into())))
        .build()
        .unwrap();
    let err = get_workspace_for_current_thread(&cfg, "MAPPED").unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "memory-mapped workspace \"MAPPED\": /nonexistent-dir/ws.bin:",
            "No such file",
        ],
    );
}

fn mapped_config(path: &std::path::Path, bytes: usize) -> WorkspaceConfig {
    WorkspaceConfig::builder()
        .initial_size(bytes)
        .policy_learning(LearningPolicy::None)
        .policy_location(LocationPolicy::Mmap(Some(path.to_path_buf())))
        .build()
        .unwrap()
}

#[test]
fn mmap_in_use() {
    let dir = std::env::temp_dir().join(format!("dl4rs-cat-inuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shared.bin");
    let first = get_workspace_for_current_thread(&mapped_config(&path, 4096), "MAPPED_A").unwrap();
    let err =
        get_workspace_for_current_thread(&mapped_config(&path, 4096), "MAPPED_B").unwrap_err();
    assert!(matches!(err, WorkspaceError::MmapInUse { .. }));
    let canonical = std::fs::canonicalize(&path).unwrap();
    assert_contains(
        &err.to_string(),
        &[
            "memory-mapped workspace \"MAPPED_B\":",
            &format!(
                "{} is already mapped by workspace \"MAPPED_A\" on thread",
                canonical.display()
            ),
            "of this process",
            "alias the same memory, so it is refused",
            "Fix: give each workspace its own file",
        ],
    );
    first.destroy().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn mapped_block_borrowed() {
    let dir = std::env::temp_dir().join(format!("dl4rs-cat-retired-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = WorkspaceConfig::builder()
        .initial_size(4096)
        .policy_learning(LearningPolicy::None)
        .policy_spill(SpillPolicy::Fail)
        .policy_location(LocationPolicy::Mmap(Some(dir.join("ws.bin"))))
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "MAPPED_FAIL").unwrap();
    let scope = ws.notify_scope_entered().unwrap();
    let a = Buffer::<f32>::zeros(8).unwrap();
    let guard = a.read().unwrap();
    assert!(scope.close().is_err()); // BorrowedAtCycleEnd: the mapping is retired
    let _s = ws.notify_scope_entered().unwrap();
    let err = Buffer::<f32>::zeros(8).unwrap_err();
    assert!(matches!(err, WorkspaceError::MappedBlockBorrowed { .. }));
    assert_contains(
        &err.to_string(),
        &[
            "memory-mapped workspace \"MAPPED_FAIL\" can't allocate",
            "1 borrow(s) are still alive",
            "SpillPolicy::Fail",
            "Fix: drop read()/write() guards",
        ],
    );
    drop(guard);
    // Borrow over: the mapping serves again.
    let b = Buffer::<f32>::zeros(8).unwrap();
    assert!(b.is_attached());
    drop(_s);
    ws.destroy().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
