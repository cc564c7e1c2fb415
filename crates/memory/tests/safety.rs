//! The safety model beyond ND4J: validity across threads, no reuse while borrowed, rings that
//! refuse overwritten slots, destroy with live arrays, non-LIFO closes, config mismatches,
//! shrinking, poisoning. Includes a cross-thread stress test of the borrow handshake.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dl4rs_memory::*;

fn fixed(id: &str, bytes: usize) -> Workspace {
    let cfg = WorkspaceConfig::builder()
        .initial_size(bytes)
        .policy_allocation(AllocationPolicy::Strict)
        .policy_learning(LearningPolicy::None)
        .build()
        .unwrap();
    get_workspace_for_current_thread(&cfg, id).unwrap()
}

#[test]
fn stale_arrays_are_refused_by_read_write_and_copies() {
    let ws = fixed("S_STALE", 1 << 12);
    let mut stale = {
        let _s = ws.notify_scope_entered().unwrap();
        Buffer::<f32>::from_slice(&[1.0; 8]).unwrap()
    };
    // The next cycle reuses the memory with other data.
    let _s = ws.notify_scope_entered().unwrap();
    let fresh = Buffer::<f32>::from_slice(&[2.0; 8]).unwrap();
    assert!(matches!(
        stale.read(),
        Err(WorkspaceError::StaleArray {
            born: 0,
            current: 1,
            ..
        })
    ));
    assert!(stale.write().is_err());
    assert!(stale.detach().is_err());
    assert!(stale.dup().is_err());
    assert!(stale.to_vec().is_err());
    assert!(stale.copy_to(&ws).is_err());
    assert_eq!(fresh.to_vec().unwrap(), vec![2.0; 8]);
}

#[test]
fn borrowed_block_is_retired_not_reused() {
    let ws = fixed("S_RETIRE", 1 << 12);
    let scope = ws.notify_scope_entered().unwrap();
    let a = Buffer::<f64>::from_slice(&[5.0; 16]).unwrap();
    let guard = a.read().unwrap();
    let err = scope.close().unwrap_err();
    assert!(
        matches!(
            err,
            WorkspaceError::BorrowedAtCycleEnd {
                borrows: 1,
                generation: 0,
                ..
            }
        ),
        "{err}"
    );
    // The next cycle writes elsewhere; the guard still sees its own data.
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _b = Buffer::<f64>::from_slice(&[9.0; 16]).unwrap();
        assert!(guard.iter().all(|&v| v == 5.0));
    }
    drop(guard);
    assert!(!a.is_valid());
    let stats = ws.stats().unwrap();
    assert_eq!(stats.retired_blocks, 1);
    assert!(stats.last_misuse.unwrap().contains("S_RETIRE"));
}

#[test]
fn readers_on_other_threads_are_checked() {
    let ws = fixed("S_THREADS", 1 << 12);
    let scope = ws.notify_scope_entered().unwrap();
    let a = Arc::new(Buffer::<u64>::from_slice(&[7; 32]).unwrap());
    let reader = {
        let a = a.clone();
        std::thread::spawn(move || a.read().map(|d| d[31]).map_err(|e| e.to_string()))
    };
    assert_eq!(reader.join().unwrap(), Ok(7));
    drop(scope);
    let reader = std::thread::spawn(move || a.read().map(|d| d[31]).map_err(|e| e.to_string()));
    let err = reader.join().unwrap().unwrap_err();
    assert!(err.contains("S_THREADS") && err.contains("stale"), "{err}");
}

/// A reader thread hammers `read()` on a buffer of the current cycle while the owner cycles
/// and overwrites the workspace. Every successful read must see its own cycle's value, never
/// a later cycle's data: the handshake either refuses the read or retires the block. Every
/// 10th cycle the owner waits for the reader, so both outcomes are exercised whatever the
/// scheduler does (valgrind serializes threads).
#[test]
fn stress_owner_cycles_while_other_thread_reads() {
    let cfg = WorkspaceConfig::builder()
        .initial_size(1 << 14)
        .policy_learning(LearningPolicy::None)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "S_STRESS").unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Arc<Buffer<u64>>)>(1);
    let done = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let reader = {
        let (done, attempts, reads, refused) = (
            done.clone(),
            attempts.clone(),
            reads.clone(),
            refused.clone(),
        );
        std::thread::spawn(move || {
            let mut current: Option<(u64, Arc<Buffer<u64>>)> = None;
            while !done.load(Ordering::SeqCst) {
                if let Ok(next) = rx.try_recv() {
                    current = Some(next);
                }
                if let Some((value, buf)) = &current {
                    match buf.read() {
                        Ok(data) => {
                            for &v in data.iter() {
                                assert_eq!(v, *value, "read another cycle's data");
                            }
                            reads.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    attempts.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::yield_now();
            }
        })
    };
    let wait_for_attempts = |n: u64| {
        let target = attempts.load(Ordering::SeqCst) + n;
        while attempts.load(Ordering::SeqCst) < target {
            std::thread::yield_now();
        }
    };
    for cycle in 0..2000u64 {
        {
            let _s = ws.notify_scope_entered().unwrap();
            let buf = Arc::new(Buffer::<u64>::from_slice(&[cycle; 256]).unwrap());
            let sent = cycle % 10 == 0;
            if sent {
                tx.send((cycle, buf)).unwrap();
                wait_for_attempts(2); // at least one read entirely inside the cycle
            } else {
                let _ = tx.try_send((cycle, buf));
            }
            // Fill the rest of the block so the next cycle's data covers the old slot.
            let _filler = Buffer::<u64>::from_slice(&[u64::MAX; 512]).unwrap();
        }
        if cycle % 10 == 0 {
            wait_for_attempts(2); // at least one read entirely after the cycle ended
        }
    }
    done.store(true, Ordering::SeqCst);
    reader.join().unwrap();
    assert!(reads.load(Ordering::SeqCst) >= 200);
    assert!(refused.load(Ordering::SeqCst) >= 200);
}

#[test]
fn ring_slots_go_stale_when_overwritten() {
    let cfg = WorkspaceConfig::builder()
        .policy_reset(ResetPolicy::EndOfBuffer)
        .policy_allocation(AllocationPolicy::Strict)
        .policy_learning(LearningPolicy::None)
        .initial_size(4096)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "S_RING").unwrap();
    let mut kept = Vec::new();
    for i in 0..8u64 {
        let _s = ws.notify_scope_entered().unwrap();
        kept.push(Buffer::<u64>::from_slice(&[i; 128]).unwrap()); // 1 KiB each
    }
    // The ring holds 4 KiB: the last four are valid, the first four were written over.
    for (i, b) in kept.iter().enumerate() {
        if i < 4 {
            let err = b.read().unwrap_err();
            assert!(matches!(err, WorkspaceError::StaleRingSlot { .. }), "{err}");
        } else {
            assert_eq!(b.read().unwrap()[0], i as u64);
        }
    }
}

#[test]
fn ring_skips_a_borrowed_slot() {
    let cfg = WorkspaceConfig::builder()
        .policy_reset(ResetPolicy::EndOfBuffer)
        .policy_allocation(AllocationPolicy::Strict)
        .policy_learning(LearningPolicy::None)
        .initial_size(4096)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "S_RING_BORROW").unwrap();
    let first = {
        let _s = ws.notify_scope_entered().unwrap();
        Buffer::<u64>::from_slice(&[1; 128]).unwrap()
    };
    let guard = first.read().unwrap();
    for _ in 0..5 {
        let _s = ws.notify_scope_entered().unwrap();
        let b = Buffer::<u64>::from_slice(&[2; 128]).unwrap();
        assert!(b.is_attached());
    }
    assert!(
        guard.iter().all(|&v| v == 1),
        "a borrowed slot is never overwritten"
    );
    assert!(ws.stats().unwrap().ring_conflicts >= 1);
    drop(guard);
    assert!(!first.is_valid());
}

#[test]
fn destroy_invalidates_live_arrays() {
    let ws = fixed("S_DESTROY", 1 << 12);
    let _s = ws.notify_scope_entered().unwrap();
    let a = Buffer::<f32>::zeros(4).unwrap();
    destroy_all_workspaces_for_current_thread();
    let err = a.read().unwrap_err();
    assert!(
        matches!(err, WorkspaceError::WorkspaceDestroyed { .. }),
        "{err}"
    );
    assert!(current_workspace().is_none());
    assert!(ws.stats().is_err());
    drop(_s); // closing a scope of a destroyed workspace is a no-op
    let again = fixed("S_DESTROY", 1 << 12);
    assert_ne!(again, ws, "a new workspace with the same id");
}

#[test]
fn non_lifo_close() {
    let a = fixed("S_PING", 1 << 12);
    let b = fixed("S_PONG", 1 << 12);
    let sa = a.notify_scope_entered().unwrap();
    let x = Buffer::<f32>::zeros(4).unwrap();
    let sb = b.notify_scope_entered().unwrap();
    let y = Buffer::<f32>::zeros(4).unwrap();
    drop(sa); // close the outer one first, as the inference ping-pong does
    assert!(!x.is_valid());
    assert!(y.is_valid());
    assert_eq!(current_workspace().unwrap().id(), "S_PONG");
    drop(sb);
    assert!(current_workspace().is_none());
}

#[test]
fn entering_an_outer_open_workspace_is_an_error() {
    let a = fixed("S_OUTER", 1 << 12);
    let b = fixed("S_INNER", 1 << 12);
    let _sa = a.notify_scope_entered().unwrap();
    let _sb = b.notify_scope_entered().unwrap();
    let err = a.notify_scope_entered().unwrap_err();
    assert!(matches!(err, WorkspaceError::AlreadyOpen { .. }), "{err}");
}

#[test]
fn same_id_different_config_is_an_error() {
    let first = WorkspaceConfig::default();
    let second = WorkspaceConfig::builder()
        .initial_size(1024)
        .build()
        .unwrap();
    get_workspace_for_current_thread(&first, "S_CFG").unwrap();
    let err = get_workspace_for_current_thread(&second, "S_CFG").unwrap_err();
    assert!(
        matches!(err, WorkspaceError::ConfigMismatch { .. }),
        "{err}"
    );
    assert!(get_workspace_for_current_thread(&first, "S_CFG").is_ok());
}

#[test]
fn allocating_into_a_closed_workspace_is_an_error() {
    let ws = fixed("S_CLOSED", 1 << 12);
    let err = Buffer::<f32>::zeros_in(&ws, 4).unwrap_err();
    assert!(matches!(err, WorkspaceError::NotOpen { .. }), "{err}");
}

#[test]
fn shrink_policy_gives_memory_back() {
    let cfg = WorkspaceConfig::builder()
        .policy_allocation(AllocationPolicy::Strict)
        .policy_spill(SpillPolicy::Reallocate)
        .shrink(ShrinkPolicy {
            after_cycles: 3,
            below_fraction: 0.5,
        })
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "S_SHRINK").unwrap();
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _big = Buffer::<u8>::zeros(1 << 20).unwrap();
    }
    assert_eq!(ws.stats().unwrap().block_bytes, 1 << 20);
    for cycle in 1..=3 {
        {
            let _s = ws.notify_scope_entered().unwrap();
            let _small = Buffer::<u8>::zeros(1000 * cycle).unwrap();
        }
    }
    let s = ws.stats().unwrap();
    assert_eq!(s.shrinks, 1);
    assert_eq!(s.block_bytes, 3008, "shrunk to the largest recent cycle");
    // It serves that cycle size from the block again.
    let _s = ws.notify_scope_entered().unwrap();
    let _again = Buffer::<u8>::zeros(3000).unwrap();
    assert_eq!(ws.stats().unwrap().spilled_bytes, 0);
}

#[test]
fn poison_on_reset_shows_unwritten_memory() {
    set_debug_mode(DebugMode::PoisonOnReset);
    let ws = fixed("S_POISON", 1 << 12);
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = Buffer::<f32>::from_slice(&[1.0; 16]).unwrap();
    }
    {
        let _s = ws.notify_scope_entered().unwrap();
        let unwritten = Buffer::<f32>::uninitialized(16).unwrap();
        assert!(unwritten.read().unwrap().iter().all(|v| v.is_nan()));
        let zeros = Buffer::<f64>::zeros(4).unwrap();
        assert!(zeros.read().unwrap().iter().all(|&v| v == 0.0));
    }
    set_debug_mode(DebugMode::Disabled);
}

#[test]
fn allocation_report_lists_workspaces() {
    let ws = fixed("S_REPORT", 1 << 12);
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = Buffer::<f32>::zeros(10).unwrap();
    }
    let report = allocation_report();
    let entry = report.get("S_REPORT").unwrap();
    assert_eq!(entry.block_bytes, 4096);
    assert_eq!(entry.cycles, 1);
    let text = report.to_string();
    assert!(
        text.contains("S_REPORT") && text.contains("4.00 KiB"),
        "{text}"
    );
}

#[test]
fn empty_buffers_are_never_attached() {
    let ws = fixed("S_EMPTY", 1 << 12);
    let _s = ws.notify_scope_entered().unwrap();
    let e = Buffer::<f32>::zeros(0).unwrap();
    assert!(!e.is_attached());
    assert!(e.read().unwrap().is_empty());
}

#[test]
fn huge_sizes_are_errors_not_panics() {
    let err = Buffer::<f64>::zeros(usize::MAX / 4).unwrap_err();
    assert!(matches!(err, WorkspaceError::SizeOverflow { .. }), "{err}");
}

/// Buffers may cross threads (the prefetch ring needs it); workspaces and scopes may not
/// (compile_fail doc tests on `Workspace` and `WorkspaceScope` prove the latter).
#[test]
fn buffers_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Buffer<f32>>();
    assert_send_sync::<Buffer<f64>>();
}
