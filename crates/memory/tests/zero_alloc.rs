//! Steady state allocates nothing: once a workspace has learned its cycle, a cycle of mixed
//! allocations, writes, reads and scope changes makes 0 heap allocations (counted by a
//! counting global allocator, per thread so parallel tests don't disturb each other).

use dl4rs_memory::*;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

fn cycle(cfg: &WorkspaceConfig, inner: &WorkspaceConfig) -> f32 {
    let _outer = get_and_activate_workspace(cfg, "Z_ITER").unwrap();
    let mut total = 0.0;
    for (i, len) in [1usize, 100, 4096, 33, 100_000, 7].into_iter().enumerate() {
        let mut a = Buffer::<f32>::uninitialized(len).unwrap();
        a.write().unwrap().fill(i as f32);
        let b = Buffer::<f64>::zeros(len / 2 + 1).unwrap();
        total += a.read().unwrap()[len - 1] + b.read().unwrap()[0] as f32;
        let _layer = get_and_activate_workspace(inner, "Z_LAYER").unwrap();
        let scratch = a.dup().unwrap();
        total += scratch.read().unwrap()[0];
        {
            let _out = scope_out_of_workspaces();
        }
    }
    total
}

#[test]
fn steady_state_cycles_make_no_heap_allocations() {
    let cfg = WorkspaceConfig::default();
    let inner = WorkspaceConfig::builder()
        .policy_spill(SpillPolicy::Reallocate)
        .build()
        .unwrap();
    for _ in 0..3 {
        cycle(&cfg, &inner);
    }
    let before = ALLOC.thread_allocations();
    let mut total = 0.0;
    for _ in 0..10 {
        total += cycle(&cfg, &inner);
    }
    let after = ALLOC.thread_allocations();
    assert_eq!(
        after - before,
        0,
        "heap allocations in 10 steady-state cycles"
    );
    assert!(total > 0.0);
    let stats = find_workspace_for_current_thread("Z_ITER")
        .unwrap()
        .stats()
        .unwrap();
    assert_eq!(stats.spilled_bytes, 0);
    // Control: the counter does see heap allocations on this thread.
    let control = std::hint::black_box(vec![1u8; 10]);
    assert!(ALLOC.thread_allocations() > after);
    drop(control);
}

#[test]
fn ring_steady_state_makes_no_heap_allocations() {
    let cfg = WorkspaceConfig::builder()
        .policy_reset(ResetPolicy::EndOfBuffer)
        .overallocation_limit(3.0)
        .policy_spill(SpillPolicy::Reallocate)
        .build()
        .unwrap();
    let ring = get_workspace_for_current_thread(&cfg, "Z_RING").unwrap();
    let run = |n: usize| {
        for i in 0..n {
            let _s = ring.notify_scope_entered().unwrap();
            let mut x = Buffer::<f32>::uninitialized(128 * 784).unwrap();
            x.write().unwrap()[0] = i as f32;
            let _y = Buffer::<f32>::zeros(128 * 10).unwrap();
        }
    };
    run(5);
    let before = ALLOC.thread_allocations();
    run(50);
    assert_eq!(ALLOC.thread_allocations() - before, 0);
}
