//! ND4J's workspace behaviours (shared/reference/dl4j-workspaces.md §6, items 1–22 and 32–46
//! as they apply at this level), ported with our alignment of 64 bytes where ND4J had 16.
//! Each test names the ND4J test it ports.

use dl4rs_memory::*;

const A: usize = ALIGN;

fn align(n: usize) -> usize {
    n.div_ceil(A) * A
}

fn stats(ws: &Workspace) -> WorkspaceStats {
    ws.stats().unwrap()
}

fn f64s(n: usize) -> Buffer<f64> {
    Buffer::<f64>::zeros(n).unwrap()
}

/// Item 1: No current workspace: arrays are detached, and current is none after all scopes close.
#[test]
fn b01_no_workspace_means_detached() {
    assert!(!f64s(10).is_attached());
    {
        let _s = get_and_activate_workspace(&WorkspaceConfig::default(), "B01").unwrap();
        assert!(f64s(10).is_attached());
    }
    assert!(current_workspace().is_none());
    assert!(!f64s(10).is_attached());
}

/// Item 2: testLoops3: FIRST_LOOP with initial size 0: cycle 1 spills and the size stays 0; after
/// the close the block is the peak (STRICT).
#[test]
fn b02_first_loop_learns_peak() {
    let cfg = WorkspaceConfig::builder()
        .policy_allocation(AllocationPolicy::Strict)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B02").unwrap();
    {
        let _s = ws.notify_scope_entered().unwrap();
        let a = f64s(100);
        assert!(a.is_attached());
        assert_eq!(stats(&ws).block_bytes, 0);
        assert_eq!(stats(&ws).spilled_bytes, align(800));
    }
    assert_eq!(stats(&ws).block_bytes, align(800));
    assert_eq!(stats(&ws).spilled_bytes, 0);
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(100);
        assert_eq!(stats(&ws).offset, align(800));
        assert_eq!(stats(&ws).spilled_bytes, 0);
    }
}

/// Item 3: testOverallocation2: FIRST_LOOP + OVERALLOCATE 1.0 with 100 doubles.
#[test]
fn b03_overallocation_after_first_loop() {
    let cfg = WorkspaceConfig::builder()
        .overallocation_limit(1.0)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B03").unwrap();
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(100);
    }
    assert_eq!(stats(&ws).block_bytes, 2 * align(800));
}

/// Item 4: testOverallocation1: learning NONE, initial 1024, overallocation 1.0 → 2048 at creation.
#[test]
fn b04_initial_size_overallocated() {
    let cfg = WorkspaceConfig::builder()
        .initial_size(1024)
        .overallocation_limit(1.0)
        .policy_learning(LearningPolicy::None)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B04").unwrap();
    assert_eq!(stats(&ws).block_bytes, 2048);
}

/// Item 5: testOverallocation3: OVER_TIME with 0 cycles never initializes by itself; a manual
/// initialize gives peak × (1 + limit).
#[test]
fn b05_over_time_zero_cycles_needs_manual_init() {
    let cfg = WorkspaceConfig::builder()
        .policy_learning(LearningPolicy::OverTime)
        .overallocation_limit(1.0)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B05").unwrap();
    for _ in 0..5 {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(100);
    }
    assert_eq!(stats(&ws).block_bytes, 0);
    ws.initialize_workspace().unwrap();
    assert_eq!(stats(&ws).block_bytes, 2 * align(800));
}

/// Item 6: testNestedWorkspaces9: OVER_TIME with 3 cycles: size 0 until the close of cycle 3.
#[test]
fn b06_over_time_initializes_after_n_cycles() {
    let cfg = WorkspaceConfig::builder()
        .policy_learning(LearningPolicy::OverTime)
        .cycles_before_initialization(3)
        .policy_allocation(AllocationPolicy::Strict)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B06").unwrap();
    for cycle in 1..=3 {
        {
            let _s = ws.notify_scope_entered().unwrap();
            let _a = f64s(100 * cycle);
        }
        let expected = if cycle < 3 { 0 } else { align(2400) };
        assert_eq!(stats(&ws).block_bytes, expected, "after cycle {cycle}");
    }
}

/// Item 7: testReallocate2 / testNestedWorkspaces8: REALLOCATE grows after each larger cycle;
/// EXTERNAL never grows.
#[test]
fn b07_reallocate_grows_external_does_not() {
    for (spill, id) in [
        (SpillPolicy::Reallocate, "B07R"),
        (SpillPolicy::External, "B07E"),
    ] {
        let cfg = WorkspaceConfig::builder()
            .policy_allocation(AllocationPolicy::Strict)
            .policy_spill(spill)
            .build()
            .unwrap();
        let ws = get_workspace_for_current_thread(&cfg, id).unwrap();
        for i in 1..=5 {
            {
                let _s = ws.notify_scope_entered().unwrap();
                let _a = f64s(100 * i);
            }
            let expected = match spill {
                SpillPolicy::Reallocate => align(800 * i),
                _ => align(800),
            };
            assert_eq!(
                stats(&ws).block_bytes,
                expected,
                "{spill:?} after cycle {i}"
            );
        }
    }
}

/// Item 8: testReallocate1/3: after a bigger cycle, a REALLOCATE workspace's size is the max cycle.
#[test]
fn b08_reallocate_size_is_max_cycle() {
    let cfg = WorkspaceConfig::builder()
        .initial_size(1024)
        .policy_allocation(AllocationPolicy::Strict)
        .policy_spill(SpillPolicy::Reallocate)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B08").unwrap();
    assert_eq!(stats(&ws).block_bytes, 1024);
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(128);
        let _b = f64s(256); // spills
        assert_eq!(stats(&ws).spilled_bytes, 2048);
    }
    ws.initialize_workspace().unwrap();
    let s = stats(&ws);
    assert_eq!(s.block_bytes, s.max_cycle_bytes);
    assert_eq!(s.block_bytes, 3072);
}

/// Item 9: testMinSize1: a 10 MiB floor applies after learning.
#[test]
fn b09_min_size_floor() {
    let cfg = WorkspaceConfig::builder()
        .min_size(10 << 20)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B09").unwrap();
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(100);
        assert_eq!(stats(&ws).block_bytes, 0);
    }
    assert_eq!(stats(&ws).block_bytes, 10 << 20);
}

fn fixed(id: &str, bytes: usize) -> Workspace {
    let cfg = WorkspaceConfig::builder()
        .initial_size(bytes)
        .policy_allocation(AllocationPolicy::Strict)
        .policy_learning(LearningPolicy::None)
        .build()
        .unwrap();
    get_workspace_for_current_thread(&cfg, id).unwrap()
}

/// Item 10: testAllocation1/2/3/5: the offset advances by the aligned size; blocks and allocations
/// are 64-byte aligned.
#[test]
fn b10_offsets_are_aligned() {
    let ws = fixed("B10", 1 << 20);
    let _s = ws.notify_scope_entered().unwrap();
    let a = f64s(5);
    assert_eq!(stats(&ws).offset, 64);
    let b = Buffer::<f32>::zeros(17).unwrap();
    assert_eq!(stats(&ws).offset, 64 + 128);
    assert_eq!(a.read().unwrap().as_ptr() as usize % ALIGN, 0);
    assert_eq!(b.read().unwrap().as_ptr() as usize % ALIGN, 0);
}

/// Item 11: testAllocation5/6: dup() allocates in the current workspace.
#[test]
fn b11_dup_allocates_in_current() {
    let ws = fixed("B11", 1 << 20);
    let _s = ws.notify_scope_entered().unwrap();
    let a = Buffer::<f64>::from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    let offset = stats(&ws).offset;
    let b = a.dup().unwrap();
    assert!(b.is_attached());
    assert_eq!(stats(&ws).offset, 2 * offset);
    assert_eq!(b.to_vec().unwrap(), a.to_vec().unwrap());
}

/// Item 12: testAllocation4: with SpillPolicy::Fail an overflow is an error, the offset is
/// unchanged, and later small allocations still work.
#[test]
fn b12_fail_spill() {
    let cfg = WorkspaceConfig::builder()
        .initial_size(1024)
        .policy_allocation(AllocationPolicy::Strict)
        .policy_learning(LearningPolicy::None)
        .policy_spill(SpillPolicy::Fail)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B12").unwrap();
    let _s = ws.notify_scope_entered().unwrap();
    let _a = f64s(8);
    let err = Buffer::<f64>::zeros(1000).unwrap_err();
    assert!(matches!(
        err,
        WorkspaceError::WorkspaceFull {
            requested: 8000,
            offset: 64,
            capacity: 1024,
            ..
        }
    ));
    assert_eq!(stats(&ws).offset, 64);
    let b = f64s(8);
    assert!(b.is_attached());
    assert_eq!(stats(&ws).offset, 128);
}

/// Item 13: testLoop4/testLoops1/2: BLOCK_LEFT resets the offset at close and on re-entry.
#[test]
fn b13_block_left_resets() {
    let ws = fixed("B13", 1 << 16);
    for _ in 0..3 {
        let _s = ws.notify_scope_entered().unwrap();
        assert_eq!(stats(&ws).offset, 0);
        let _a = f64s(100);
        assert_eq!(stats(&ws).offset, align(800));
    }
    assert_eq!(stats(&ws).offset, 0);
}

/// Item 14: testToggle1: toggled-off allocations bypass the block and are not learned.
#[test]
fn b14_toggle_workspace_use() {
    let cfg = WorkspaceConfig::builder()
        .policy_allocation(AllocationPolicy::Strict)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B14").unwrap();
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(100);
        ws.toggle_workspace_use(false).unwrap();
        let b = f64s(100);
        assert!(b.is_attached(), "bypassed allocations are still tracked");
        ws.toggle_workspace_use(true).unwrap();
        let _c = f64s(100);
    }
    assert_eq!(stats(&ws).block_bytes, 2 * align(800));
}

/// Item 15: testNestedWorkspaces1/3/4: nested different workspaces keep separate offsets, and
/// closing the inner one restores the outer one as current.
#[test]
fn b15_nested_workspaces_are_independent() {
    let outer = fixed("B15_OUT", 1 << 16);
    let inner = fixed("B15_IN", 1 << 16);
    let _o = outer.notify_scope_entered().unwrap();
    let _a = f64s(10);
    {
        let _i = inner.notify_scope_entered().unwrap();
        let b = f64s(20);
        assert_eq!(b.workspace_id(), Some("B15_IN"));
        assert_eq!(stats(&inner).offset, align(160));
        assert_eq!(stats(&outer).offset, align(80));
    }
    assert_eq!(current_workspace().unwrap().id(), "B15_OUT");
    let c = f64s(10);
    assert_eq!(c.workspace_id(), Some("B15_OUT"));
    assert_eq!(stats(&outer).offset, 2 * align(80));
}

/// Item 16: testNestedWorkspaces5: re-entering the current open workspace accumulates (no reset,
/// no new generation).
#[test]
fn b16_reentry_accumulates() {
    let ws = fixed("B16", 1 << 16);
    let _s = ws.notify_scope_entered().unwrap();
    let a = Buffer::<f64>::from_slice(&[7.0; 200]).unwrap();
    let generation = ws.generation();
    {
        let _again = ws.notify_scope_entered().unwrap();
        let _b = f64s(100);
        assert_eq!(stats(&ws).offset, align(1600) + align(800));
    }
    assert_eq!(ws.generation(), generation);
    assert!(ws.is_scope_active());
    assert_eq!(a.read().unwrap()[199], 7.0);
}

/// Item 17: testNestedWorkspacesOverlap2/7: borrowing outer A inside B puts new arrays in A and
/// grows A's offset; B is current again afterwards.
#[test]
fn b17_borrow_outer() {
    let a = fixed("B17_A", 1 << 16);
    let b = fixed("B17_B", 1 << 16);
    let _sa = a.notify_scope_entered().unwrap();
    let _sb = b.notify_scope_entered().unwrap();
    let kept = {
        let _borrow = a.notify_scope_borrowed().unwrap();
        let x = f64s(10);
        assert_eq!(x.workspace_id(), Some("B17_A"));
        assert_eq!(stats(&a).offset, align(80));
        x
    };
    assert_eq!(current_workspace().unwrap().id(), "B17_B");
    drop(_sb);
    assert!(
        kept.is_valid(),
        "arrays borrowed into A live as long as A's cycle"
    );
}

/// Item 18: Borrowing an already borrowed workspace is an error.
#[test]
fn b18_double_borrow_is_error() {
    let a = fixed("B18_A", 1 << 12);
    let b = fixed("B18_B", 1 << 12);
    let _sa = a.notify_scope_entered().unwrap();
    let _sb = b.notify_scope_entered().unwrap();
    let _first = a.notify_scope_borrowed().unwrap();
    let err = a.notify_scope_borrowed().unwrap_err();
    assert!(
        matches!(err, WorkspaceError::AlreadyBorrowed { .. }),
        "{err}"
    );
}

fn current_id() -> Option<String> {
    current_workspace().map(|w| w.id().to_string())
}

/// Item 19: testWorkspaceOrder_1: the current workspace under borrow and scope-out.
#[test]
fn b19_workspace_order() {
    let outer = fixed("B19_OUT", 1 << 12);
    let inner = fixed("B19_IN", 1 << 12);
    let mut seen = Vec::new();
    {
        let _o = outer.notify_scope_entered().unwrap();
        seen.push(current_id());
        {
            let _out = scope_out_of_workspaces();
            seen.push(current_id());
            {
                let _borrow = outer.notify_scope_borrowed().unwrap();
                seen.push(current_id());
            }
            {
                let _i = inner.notify_scope_entered().unwrap();
                seen.push(current_id());
            }
        }
        seen.push(current_id());
    }
    seen.push(current_id());
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        seen,
        vec![
            s("B19_OUT"),
            None,
            s("B19_OUT"),
            s("B19_IN"),
            s("B19_OUT"),
            None
        ]
    );
}

/// Item 20: testOutOfScope1: scope-out gives detached arrays, leaves the offset, restores current.
#[test]
fn b20_scope_out() {
    let ws = fixed("B20", 1 << 12);
    let _s = ws.notify_scope_entered().unwrap();
    let _a = f64s(4);
    let offset = stats(&ws).offset;
    {
        let _out = scope_out_of_workspaces();
        let b = f64s(4);
        assert!(!b.is_attached());
    }
    assert_eq!(stats(&ws).offset, offset);
    assert_eq!(current_id().as_deref(), Some("B20"));
}

/// Item 21: testBreakout1/2: a panic inside a scope still restores the manager (DL4J #5423); an
/// array that escaped a closed scope stays attached but is refused.
#[test]
fn b21_panic_restores_scopes() {
    let ws = fixed("B21", 1 << 12);
    let result = std::panic::catch_unwind(|| {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(4);
        panic!("boom");
    });
    assert!(result.is_err());
    assert!(current_workspace().is_none());
    assert!(!ws.is_scope_active());
    assert!(!any_workspace_active_for_current_thread());
    let escaped = {
        let _s = ws.notify_scope_entered().unwrap();
        f64s(4)
    };
    assert!(escaped.is_attached());
    assert!(!escaped.is_valid());
}

/// Item 22: testScope1/2: in scope inside, not after close, always when detached.
#[test]
fn b22_is_in_scope() {
    let ws = fixed("B22", 1 << 12);
    let attached = {
        let _s = ws.notify_scope_entered().unwrap();
        let a = f64s(4);
        assert!(a.is_valid());
        a
    };
    assert!(!attached.is_valid());
    assert!(f64s(4).is_valid());
}

/// Item 32: testMultithreading1 / testNewWorkspace1: threads get distinct workspaces of the same
/// name; one thread gets the same one twice.
#[test]
fn b32_workspaces_are_per_thread() {
    let cfg = WorkspaceConfig::default();
    let mine = get_workspace_for_current_thread(&cfg, "B32").unwrap();
    let again = get_workspace_for_current_thread(&cfg, "B32").unwrap();
    assert_eq!(mine, again);
    let handles: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(|| {
                let ws =
                    get_workspace_for_current_thread(&WorkspaceConfig::default(), "B32").unwrap();
                let _s = ws.notify_scope_entered().unwrap();
                let buf = Buffer::<f32>::zeros(3).unwrap();
                (buf, ws.stats().unwrap().generation)
            })
        })
        .collect();
    let buffers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // Each thread's cycle ended when its scope dropped: every buffer is stale.
    assert!(buffers.iter().all(|(b, _)| !b.is_valid()));
    let ptrs: std::collections::HashSet<_> =
        buffers.iter().map(|(b, _)| format!("{b:?}")).collect();
    assert!(!ptrs.is_empty());
}

/// Item 33: checkIfWorkspaceExists: false before the first get, true after.
#[test]
fn b33_exists() {
    assert!(!check_if_workspace_exists("B33"));
    let ws = get_workspace_for_current_thread(&WorkspaceConfig::default(), "B33").unwrap();
    assert!(check_if_workspace_exists("B33"));
    assert!(!check_if_workspace_exists_and_active("B33"));
    let _s = ws.notify_scope_entered().unwrap();
    assert!(check_if_workspace_exists_and_active("B33"));
}

fn ring(limit: f64) -> WorkspaceConfigBuilder {
    WorkspaceConfig::builder()
        .policy_reset(ResetPolicy::EndOfBuffer)
        .overallocation_limit(limit)
}

/// Item 34: testVariableInput1 / testCircularLearning1: ring sizing after the first loop.
#[test]
fn b34_ring_learning() {
    let ws = get_workspace_for_current_thread(&ring(3.0).build().unwrap(), "B34").unwrap();
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(100);
    }
    let slot = align((align(800) as f64 * 1.3).ceil() as usize);
    let s = stats(&ws);
    assert_eq!(s.initial_block_bytes, slot);
    assert_eq!(s.block_bytes, slot * 4);
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(100);
    }
    assert_eq!(stats(&ws).offset, slot, "one cycle = one slot");
}

/// Item 35: testUnboundedLoop1: a STRICT ring with a fixed size advances without reset until full,
/// then wraps.
#[test]
fn b35_ring_advances_until_full() {
    let cfg = WorkspaceConfig::builder()
        .policy_reset(ResetPolicy::EndOfBuffer)
        .policy_allocation(AllocationPolicy::Strict)
        .policy_learning(LearningPolicy::None)
        .initial_size(80 * 768)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B35").unwrap();
    for cycle in 1..=80 {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(96); // 768 bytes
        drop(_a);
        assert_eq!(stats(&ws).offset, cycle * 768);
    }
    let _s = ws.notify_scope_entered().unwrap();
    let _a = f64s(96);
    assert_eq!(stats(&ws).offset, 768, "wrapped to the start");
}

/// Item 36: testUnboundedLoop2: ring OVER_TIME with 5 cycles and limit 4.
#[test]
fn b36_ring_over_time() {
    let cfg = ring(4.0)
        .policy_learning(LearningPolicy::OverTime)
        .cycles_before_initialization(5)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B36").unwrap();
    for cycle in 1..=5 {
        {
            let _s = ws.notify_scope_entered().unwrap();
            let _a = f64s(100);
        }
        let expected = if cycle < 5 {
            0
        } else {
            5 * align((align(800) as f64 * 1.3).ceil() as usize)
        };
        assert_eq!(stats(&ws).block_bytes, expected, "after cycle {cycle}");
    }
}

/// Item 37: testVariableInput1: a step (ring lap) passes every limit + 1 closes.
#[test]
fn b37_steps() {
    let ws = get_workspace_for_current_thread(&ring(3.0).build().unwrap(), "B37").unwrap();
    let mut steps = Vec::new();
    for _ in 0..9 {
        {
            let _s = ws.notify_scope_entered().unwrap();
            let _a = f64s(100);
        }
        steps.push(stats(&ws).steps);
    }
    assert_eq!(steps, vec![0, 0, 0, 0, 1, 1, 1, 1, 2]);
}

/// Item 38: testVariableTimeSeries1: an oversize cycle in a ring pins its allocation (offsets
/// unchanged); pinned memory is released two steps later.
#[test]
fn b38_ring_oversize_pins() {
    let ws = get_workspace_for_current_thread(&ring(1.0).build().unwrap(), "B38").unwrap();
    for _ in 0..2 {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(100);
    }
    let before = stats(&ws).offset;
    {
        let _s = ws.notify_scope_entered().unwrap();
        let big = f64s(1000);
        assert!(big.is_attached());
        let s = stats(&ws);
        assert_eq!(s.pinned_bytes, 8000);
        assert_eq!(s.offset, before);
    }
    let mut released_after = None;
    for cycle in 1..=10 {
        {
            let _s = ws.notify_scope_entered().unwrap();
            let _a = f64s(100);
        }
        if stats(&ws).pinned_bytes == 0 {
            released_after = Some(cycle);
            break;
        }
    }
    let cycles = released_after.expect("pinned memory is released");
    assert!(cycles >= 2, "released after {cycles} cycles");
    assert_eq!(
        stats(&ws).block_bytes,
        2 * align((align(800) as f64 * 1.3).ceil() as usize),
        "EXTERNAL: the ring never grows"
    );
}

/// Item 39: testVariableTimeSeries2: with REALLOCATE repeated oversize cycles rebuild the ring,
/// and spilled and pinned memory go to zero.
#[test]
fn b39_ring_reallocate_rebuilds() {
    let cfg = ring(1.0)
        .policy_spill(SpillPolicy::Reallocate)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B39").unwrap();
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(100);
    }
    let small = stats(&ws).block_bytes;
    for _ in 0..8 {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(1000);
    }
    let s = stats(&ws);
    assert!(
        s.block_bytes > small,
        "ring grew: {} -> {}",
        small,
        s.block_bytes
    );
    assert!(s.initial_block_bytes >= 8000);
    for _ in 0..6 {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(1000);
    }
    let s = stats(&ws);
    assert_eq!((s.spilled_bytes, s.pinned_bytes, s.pinned_count), (0, 0, 0));
}

/// Item 40: testCircularBufferReset1: the first cycle's spill stays until the ring wraps.
#[test]
fn b40_ring_first_spill_lives_until_wrap() {
    let ws = get_workspace_for_current_thread(&ring(1.0).build().unwrap(), "B40").unwrap();
    let first = {
        let _s = ws.notify_scope_entered().unwrap();
        Buffer::<f64>::from_slice(&[3.0; 100]).unwrap()
    };
    assert_eq!(stats(&ws).spilled_bytes, align(800));
    let mut cycles = 0;
    while stats(&ws).spilled_bytes > 0 {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(100);
        cycles += 1;
        assert!(cycles < 10);
    }
    assert!(
        cycles >= 2,
        "spill released after the ring wrapped ({cycles} cycles)"
    );
    // A ring's spill is never reused, so the array itself stays readable.
    assert_eq!(first.read().unwrap()[99], 3.0);
}

/// Item 41: DebugModeTests: SPILL_EVERYTHING keeps offsets at 0, spills, stays attached, learns
/// nothing, and releases spills at the next cycle.
#[test]
fn b41_spill_everything() {
    set_debug_mode(DebugMode::SpillEverything);
    let ws = get_workspace_for_current_thread(&WorkspaceConfig::default(), "B41").unwrap();
    {
        let _s = ws.notify_scope_entered().unwrap();
        let a = f64s(100);
        assert!(a.is_attached());
        let s = stats(&ws);
        assert_eq!((s.offset, s.spilled_bytes), (0, align(800)));
    }
    assert_eq!(stats(&ws).block_bytes, 0);
    {
        let _s = ws.notify_scope_entered().unwrap();
        assert_eq!(stats(&ws).spilled_bytes, 0);
    }
    set_debug_mode(DebugMode::Disabled);
}

/// Item 42: testBypassMode_1: BYPASS_EVERYTHING makes arrays detached.
#[test]
fn b42_bypass_everything() {
    set_debug_mode(DebugMode::BypassEverything);
    {
        let _s = get_and_activate_workspace(&WorkspaceConfig::default(), "B42").unwrap();
        assert!(!f64s(10).is_attached());
    }
    assert!(!check_if_workspace_exists("B42"));
    set_debug_mode(DebugMode::Disabled);
}

/// Item 43: testWorkspacesSerde1–3: data read into a buffer inside a workspace lands there, inside
/// scope-out it does not.
#[test]
fn b43_read_into_workspace() {
    let ws = fixed("B43", 1 << 12);
    let _s = ws.notify_scope_entered().unwrap();
    let loaded = Buffer::<f32>::from_slice(&[1.0, 2.0]).unwrap();
    assert_eq!(loaded.workspace_id(), Some("B43"));
    let _out = scope_out_of_workspaces();
    assert!(
        !Buffer::<f32>::from_slice(&[1.0, 2.0])
            .unwrap()
            .is_attached()
    );
}

/// Item 44: testMmap1 / testDeleteMappedFile: memory-mapped workspaces keep data across cycles in
/// the file, reject learning, and a temporary file is gone by destroy (dl4rs: as soon as it is
/// mapped).
#[test]
fn b44_mmap() {
    let dir = std::env::temp_dir().join(format!("dl4rs-b44-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ws.bin");
    let cfg = WorkspaceConfig::builder()
        .initial_size(1 << 16)
        .policy_learning(LearningPolicy::None)
        .policy_location(LocationPolicy::Mmap(Some(path.clone())))
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "B44").unwrap();
    assert_eq!(
        stats(&ws).block_bytes,
        1 << 16,
        "no overallocation for mmap"
    );
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = Buffer::<f64>::from_slice(&[42.0; 8]).unwrap();
    }
    {
        let _s = ws.notify_scope_entered().unwrap();
        let again = Buffer::<f64>::uninitialized(8).unwrap();
        assert_eq!(
            again.read().unwrap()[7],
            42.0,
            "cycle 1's data is still in the file"
        );
    }
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(f64::from_ne_bytes(bytes[..8].try_into().unwrap()), 42.0);
    ws.destroy().unwrap();
    std::fs::remove_file(&path).unwrap();

    let learning = WorkspaceConfig::builder()
        .initial_size(1 << 16)
        .policy_location(LocationPolicy::Mmap(None))
        .build();
    assert!(learning.is_err());

    let temp_cfg = WorkspaceConfig::builder()
        .initial_size(4096)
        .policy_learning(LearningPolicy::None)
        .policy_location(LocationPolicy::Mmap(None))
        .build()
        .unwrap();
    let before: std::collections::HashSet<_> = temp_files();
    let temp = get_workspace_for_current_thread(&temp_cfg, "B44_TEMP").unwrap();
    let created: Vec<_> = temp_files().difference(&before).cloned().collect();
    // dl4rs unlinks the temporary file as soon as it is mapped (Unix), so it is gone before
    // destroy and never left behind, even by a killed process; elsewhere it goes with the
    // mapping.
    if cfg!(unix) {
        assert!(created.is_empty(), "unlinked once mapped: {created:?}");
    }
    destroy_all_workspaces_for_current_thread();
    assert!(temp.is_destroyed());
    assert!(
        created.iter().all(|p| !p.exists()),
        "temporary file deleted after destroy"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn temp_files() -> std::collections::HashSet<std::path::PathBuf> {
    let prefix = format!("dl4rs-ws-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect()
}

/// Item 45: CudaWorkspaceTests.testWorkspaceReuse: zeros() in a reused workspace is zero.
#[test]
fn b45_reused_memory_is_zeroed() {
    let ws = fixed("B45", 1 << 12);
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = Buffer::<f32>::from_slice(&[9.0; 64]).unwrap();
    }
    let _s = ws.notify_scope_entered().unwrap();
    let z = Buffer::<f32>::zeros(64).unwrap();
    assert!(z.read().unwrap().iter().all(|&v| v == 0.0));
}

/// Item 46: testNestedWorkspaces2: last cycle bytes are the aligned bytes of the last cycle.
#[test]
fn b46_last_cycle_bytes() {
    let ws = fixed("B46", 1 << 12);
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(5);
        let _b = f64s(10);
    }
    assert_eq!(stats(&ws).last_cycle_bytes, align(40) + align(80));
}

/// Item 27 at this level: the parent of the current workspace is the one current before it.
#[test]
fn parent_workspace_is_the_previous_current() {
    let a = fixed("P_A", 1 << 12);
    let b = fixed("P_B", 1 << 12);
    assert!(parent_workspace().is_none());
    let _sa = a.notify_scope_entered().unwrap();
    assert!(parent_workspace().is_none());
    let _sb = b.notify_scope_entered().unwrap();
    assert_eq!(parent_workspace().unwrap().id(), "P_A");
    let _again = b.notify_scope_entered().unwrap();
    assert_eq!(
        parent_workspace().unwrap().id(),
        "P_A",
        "re-entry keeps the parent"
    );
    let _out = scope_out_of_workspaces();
    assert!(parent_workspace().is_none());
}

/// Beyond ND4J: an OverTime workspace whose first N cycles allocated nothing still learns at
/// the first later cycle that allocates (ND4J would spill forever).
#[test]
fn over_time_learns_after_empty_cycles() {
    let cfg = WorkspaceConfig::builder()
        .policy_learning(LearningPolicy::OverTime)
        .cycles_before_initialization(2)
        .policy_allocation(AllocationPolicy::Strict)
        .build()
        .unwrap();
    let ws = get_workspace_for_current_thread(&cfg, "OT_EMPTY").unwrap();
    for _ in 0..3 {
        let _s = ws.notify_scope_entered().unwrap();
    }
    assert_eq!(stats(&ws).block_bytes, 0);
    {
        let _s = ws.notify_scope_entered().unwrap();
        let _a = f64s(100);
    }
    assert_eq!(stats(&ws).block_bytes, align(800));
}
