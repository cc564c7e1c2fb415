//! In steady state, `next()` inside a workspace makes no heap allocation: the batch's arrays
//! come from the workspace and the example order is shuffled in place.

use dl4rs_array::NdArray;
use dl4rs_data::{DataSet, DataSetIterator, InMemoryDataSetIterator};
use dl4rs_memory::{CountingAllocator, WorkspaceConfig, get_and_activate_workspace};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

fn data(n: usize, inputs: usize) -> DataSet {
    let f: Vec<f32> = (0..n * inputs).map(|i| i as f32).collect();
    let l: Vec<f32> = (0..n * 10).map(|i| (i % 10 == 0) as u8 as f32).collect();
    DataSet::new(
        NdArray::from_slice_detached(&[n, inputs], &f).unwrap(),
        NdArray::from_slice_detached(&[n, 10], &l).unwrap(),
    )
    .unwrap()
}

fn step(it: &mut dyn DataSetIterator, cfg: &WorkspaceConfig) -> f32 {
    if !it.has_next() {
        it.reset().unwrap();
    }
    let _cycle = get_and_activate_workspace(cfg, "DATA_ZERO_ALLOC").unwrap();
    let batch = it.next().unwrap().unwrap();
    let x = batch.features.get(&[0, 0]).unwrap();
    drop(batch);
    x
}

#[test]
fn next_in_a_workspace_allocates_nothing_in_steady_state() {
    let cfg = WorkspaceConfig::default();
    // 1000 examples in batches of 64 with a partial last batch, reshuffled every epoch: 50
    // batches cross three epoch boundaries (resets) and partial batches.
    let mut it = InMemoryDataSetIterator::new(data(1000, 784), 64)
        .unwrap()
        .with_shuffle(7);
    let mut total = 0.0;
    for _ in 0..3 {
        total += step(&mut it, &cfg);
    }
    let before = ALLOC.thread_allocations();
    for _ in 0..50 {
        total += step(&mut it, &cfg);
    }
    let after = ALLOC.thread_allocations();
    assert_eq!(
        after - before,
        0,
        "heap allocations in 50 steady-state next() calls"
    );
    assert!(it.epoch() >= 2, "the measured batches crossed resets");
    assert!(total > 0.0);
    // Control: the counter does see heap allocations on this thread.
    let control = std::hint::black_box(vec![1u8; 10]);
    assert!(ALLOC.thread_allocations() > after);
    drop(control);
}
