//! Misuse made visible (issue 15): a scope dropped while arrays of its cycle are borrowed is a
//! warning in the report, an error from `close()`, and a panic under
//! `DebugMode::PanicOnBorrowedDrop`; poison mode reaches rings; a destroyed handle says so.

use std::panic::{AssertUnwindSafe, catch_unwind};

use dl4rs_memory::*;

fn fixed(id: &str, bytes: usize) -> Workspace {
    let cfg = WorkspaceConfig::builder()
        .initial_size(bytes)
        .policy_learning(LearningPolicy::None)
        .build()
        .unwrap();
    get_workspace_for_current_thread(&cfg, id).unwrap()
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn dropped_borrowed_scope_is_a_warning_in_the_report() {
    let ws = fixed("WARN_DROP", 4096);
    assert!(allocation_report().warnings().is_empty());
    let scope = ws.notify_scope_entered().unwrap();
    let a = Buffer::<f32>::zeros(8).unwrap();
    let guard = a.read().unwrap();
    drop(scope); // no error reaches anyone ...
    assert_eq!(
        guard[0], 0.0,
        "still safe: the block was retired, not reused"
    );
    drop(guard);
    let stats = ws.stats().unwrap();
    assert_eq!(stats.retired_blocks, 1);
    assert_eq!(stats.dropped_while_borrowed, 1);
    assert!(stats.has_warnings());
    // ... so the report says it.
    let report = allocation_report();
    let warnings = report.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("WARN_DROP: warning: 1 cycle end(s) with arrays still borrowed (1 of them in a scope that was dropped, not close()d"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("ended cycle 0 while 1 borrow(s)"));
    let table = report.to_string();
    assert!(table.contains("  ! warning: 1 cycle end(s)"), "{table}");

    // close() returns the error instead, and is counted as retired but not as dropped.
    let scope = ws.notify_scope_entered().unwrap();
    let b = Buffer::<f32>::zeros(8).unwrap();
    let guard = b.read().unwrap();
    let err = scope.close().unwrap_err();
    assert!(matches!(err, WorkspaceError::BorrowedAtCycleEnd { .. }));
    drop(guard);
    let stats = ws.stats().unwrap();
    assert_eq!((stats.retired_blocks, stats.dropped_while_borrowed), (2, 1));
    ws.destroy().unwrap();
}

#[test]
fn clean_cycles_have_no_warning() {
    let ws = fixed("WARN_CLEAN", 4096);
    for _ in 0..3 {
        let scope = ws.notify_scope_entered().unwrap();
        let a = Buffer::<f32>::zeros(8).unwrap();
        assert_eq!(a.read().unwrap()[0], 0.0);
        scope.close().unwrap();
    }
    assert!(!ws.stats().unwrap().has_warnings());
    assert!(!allocation_report().to_string().contains('!'));
    ws.destroy().unwrap();
}

#[test]
fn panic_on_borrowed_drop_panics_at_the_drop() {
    set_debug_mode(DebugMode::PanicOnBorrowedDrop);
    let ws = fixed("PANIC_DROP", 4096);
    let scope = ws.notify_scope_entered().unwrap();
    let a = Buffer::<f32>::zeros(8).unwrap();
    let guard = a.read().unwrap();
    let payload = catch_unwind(AssertUnwindSafe(move || drop(scope))).unwrap_err();
    let text = panic_text(payload);
    assert!(
        text.contains("workspace scope dropped while arrays of its cycle were borrowed (DebugMode::PanicOnBorrowedDrop)"),
        "{text}"
    );
    assert!(
        text.contains("\"PANIC_DROP\" ended cycle 0 while 1 borrow(s)"),
        "{text}"
    );
    assert_eq!(guard[0], 0.0, "memory stayed safe");
    drop(guard);
    // The manager is consistent after the panic: the cycle ended, the next one works.
    assert!(!ws.is_scope_active());
    assert!(current_workspace().is_none());
    {
        let _s = ws.notify_scope_entered().unwrap();
        let b = Buffer::<f32>::zeros(8).unwrap();
        assert!(b.is_in(&ws));
    } // no borrow: no panic
    // close() still reports an error rather than panicking.
    let scope = ws.notify_scope_entered().unwrap();
    let c = Buffer::<f32>::zeros(8).unwrap();
    let guard = c.read().unwrap();
    assert!(scope.close().is_err());
    drop(guard);
    set_debug_mode(DebugMode::Disabled);
    ws.destroy().unwrap();
}

#[test]
fn panic_on_borrowed_drop_never_panics_while_unwinding() {
    set_debug_mode(DebugMode::PanicOnBorrowedDrop);
    let ws = fixed("PANIC_UNWIND", 4096);
    let w = ws.clone();
    let payload = catch_unwind(AssertUnwindSafe(move || {
        let scope = w.notify_scope_entered().unwrap();
        let a = Buffer::<f32>::zeros(8).unwrap();
        let _guard = a.read().unwrap();
        let _late = scope; // declared last: dropped first while unwinding, guard still alive
        panic!("the original panic");
    }))
    .unwrap_err();
    // One panic (a second one in Drop would have aborted the process), and it is the first.
    assert_eq!(panic_text(payload), "the original panic");
    assert!(!ws.is_scope_active());
    assert_eq!(ws.stats().unwrap().dropped_while_borrowed, 1);
    set_debug_mode(DebugMode::Disabled);
    ws.destroy().unwrap();
}

#[test]
fn debug_mode_from_env_value() {
    assert_eq!(
        DebugMode::from_env_value("panic_on_borrowed_drop"),
        DebugMode::PanicOnBorrowedDrop
    );
}

fn ring(id: &str) -> Workspace {
    let cfg = WorkspaceConfig::builder()
        .policy_reset(ResetPolicy::EndOfBuffer)
        .policy_allocation(AllocationPolicy::Strict)
        .policy_learning(LearningPolicy::None)
        .initial_size(1024)
        .build()
        .unwrap();
    get_workspace_for_current_thread(&cfg, id).unwrap()
}

/// Formerly: in a ring, an `uninitialized` allocation after the wrap read the previous lap's
/// values under PoisonOnReset, although the docs promise NaN.
#[test]
fn poison_reaches_ring_slots() {
    set_debug_mode(DebugMode::PoisonOnReset);
    let r = ring("POISON_RING");
    for lap in 0..6 {
        let _s = r.notify_scope_entered().unwrap();
        let fresh = Buffer::<f32>::uninitialized(128).unwrap(); // 512 bytes: 2 slots per lap
        assert!(
            fresh.read().unwrap().iter().all(|v| v.is_nan()),
            "lap {lap}: uninitialized ring memory must read NaN"
        );
        let mut kept = Buffer::<f64>::uninitialized(64).unwrap();
        assert!(kept.read().unwrap().iter().all(|v| v.is_nan()));
        kept.write().unwrap().fill(lap as f64);
        drop(kept);
    }
    // Poisoning never touches a valid allocation: the previous slot's data survive the next
    // allocation until the ring passes over them.
    let s = r.notify_scope_entered().unwrap();
    let mut a = Buffer::<f32>::uninitialized(64).unwrap(); // 256 bytes
    a.write().unwrap().fill(3.0);
    let z = Buffer::<f32>::zeros(64).unwrap();
    assert!(z.read().unwrap().iter().all(|&v| v == 0.0));
    let _p = Buffer::<f32>::uninitialized(64).unwrap();
    assert!(a.read().unwrap().iter().all(|&v| v == 3.0));
    drop(s);
    set_debug_mode(DebugMode::Disabled);
    // Without poison, the ring's uninitialized memory shows an earlier lap's values (allowed:
    // "unspecified but initialized").
    r.destroy().unwrap();
}
