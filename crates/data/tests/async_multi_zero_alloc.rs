//! Steady state of the async multi iterator: handing batches over allocates nothing on either
//! thread. A `MultiDataSet` keeps its arrays in `Vec`s, so a source necessarily allocates
//! those few small `Vec`s (not the arrays' data, which live in the ring) for every batch it
//! makes; the test counts the source's own allocations apart and checks that
//! - the consumer thread makes no allocation at all in the `has_next()`/`next()` calls of the window
//!   (dropping a batch frees its `Vec`s, which is no allocation);
//! - the prefetch thread makes none outside the source's `next()`;
//! - process-wide, every allocation in the window is one of the source's.
//!
//! Measured with the counting allocator; this file holds one test so nothing else runs in the
//! process meanwhile.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use dl4rs_array::NdArray;
use dl4rs_data::{
    AsyncMultiDataSetIterator, DataError, InMemoryMultiDataSetIterator, MultiDataSet,
    MultiDataSetIterator,
};
use dl4rs_memory::CountingAllocator;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

const BATCH: usize = 32;
const BATCHES: usize = 320;
/// Widths of the two feature arrays and the two label arrays.
const WIDTHS: [usize; 4] = [64, 7, 10, 3];

fn array(n: usize, width: usize, salt: usize) -> NdArray<f32> {
    let v: Vec<f32> = (0..n * width).map(|i| (i * 3 + salt) as f32).collect();
    NdArray::from_slice_detached(&[n, width], &v).unwrap()
}

fn data() -> MultiDataSet {
    let n = BATCH * BATCHES;
    MultiDataSet::new(
        vec![array(n, WIDTHS[0], 0), array(n, WIDTHS[1], 1)],
        vec![array(n, WIDTHS[2], 2), array(n, WIDTHS[3], 3)],
    )
    .unwrap()
    .with_masks(
        vec![Some(array(n, 1, 4)), None],
        vec![None, Some(array(n, WIDTHS[3], 5))],
    )
    .unwrap()
}

fn check(a: &NdArray<f32>, k: usize, width: usize, salt: usize) {
    assert_eq!(a.shape(), [BATCH, width]);
    let read = a.read().unwrap();
    let first = k * BATCH * width;
    for (i, &v) in read.as_slice().unwrap().iter().enumerate() {
        assert_eq!(v, ((first + i) * 3 + salt) as f32);
    }
}

/// Takes batch `k`, checks every value of every array and mask (without allocating) and drops
/// it.
fn step(it: &mut AsyncMultiDataSetIterator, k: usize) {
    assert!(it.has_next());
    let m = it.next().unwrap().unwrap();
    check(&m.features[0], k, WIDTHS[0], 0);
    check(&m.features[1], k, WIDTHS[1], 1);
    check(&m.labels[0], k, WIDTHS[2], 2);
    check(&m.labels[1], k, WIDTHS[3], 3);
    check(m.features_masks[0].as_ref().unwrap(), k, 1, 4);
    assert!(m.features_masks[1].is_none() && m.labels_masks[0].is_none());
    check(m.labels_masks[1].as_ref().unwrap(), k, WIDTHS[3], 5);
}

/// Calls of the source's `next()` so far.
static PRODUCED: AtomicU64 = AtomicU64::new(0);
/// Allocations the source's `next()` made (all on the prefetch thread).
static SOURCE_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Allocations the prefetch thread made outside the source's `next()`, between two calls.
static MACHINERY_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Delegates to an in-memory source, counting its prefetch thread's allocations inside and
/// between the calls to `next()` (the counting itself allocates nothing).
struct Recording {
    inner: InMemoryMultiDataSetIterator,
    /// The thread's allocation count when the previous `next()` returned (this epoch).
    last: Option<u64>,
}

impl MultiDataSetIterator for Recording {
    fn next(&mut self) -> Option<Result<MultiDataSet, DataError>> {
        let before = ALLOC.thread_allocations();
        if let Some(last) = self.last {
            MACHINERY_ALLOCATIONS.fetch_add(before - last, SeqCst);
        }
        let batch = self.inner.next();
        let after = ALLOC.thread_allocations();
        SOURCE_ALLOCATIONS.fetch_add(after - before, SeqCst);
        self.last = Some(after);
        PRODUCED.fetch_add(1, SeqCst);
        batch
    }
    fn has_next(&self) -> bool {
        self.inner.has_next()
    }
    fn reset(&mut self) -> Result<(), DataError> {
        self.last = None;
        self.inner.reset()
    }
    fn reset_supported(&self) -> bool {
        true
    }
    fn async_supported(&self) -> bool {
        true
    }
    fn batch(&self) -> usize {
        self.inner.batch()
    }
    fn total_examples(&self) -> Option<usize> {
        self.inner.total_examples()
    }
}

/// Waits until the prefetch thread has made `n` batches, then a little more so that it is
/// blocked sending the last one (the queue is full).
fn wait_for_producer(n: u64) {
    let start = Instant::now();
    while PRODUCED.load(SeqCst) < n {
        assert!(start.elapsed().as_secs() < 10, "the producer stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn steady_state_hand_over_allocates_nothing() {
    for prefetch in [2, 8] {
        PRODUCED.store(0, SeqCst);
        let source = Recording {
            inner: InMemoryMultiDataSetIterator::new(data(), BATCH).unwrap(),
            last: None,
        };
        let mut it = AsyncMultiDataSetIterator::new(Box::new(source), prefetch).unwrap();
        // Warm-up: the ring learns from batch 0, the channel's waiters and thread-locals of
        // both threads are set up (see async_zero_alloc.rs).
        for k in 0..40 {
            step(&mut it, k);
        }
        wait_for_producer(40 + prefetch as u64 + 1);
        // std's mpsc allocates a thread's waiter context the first time it blocks: make this
        // thread block once, in case the producer was always ahead during the warm-up.
        let (wake, wait) = std::sync::mpsc::sync_channel::<()>(0);
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            wake.send(()).unwrap();
        });
        wait.recv().unwrap();
        waker.join().unwrap();

        let before = ALLOC.allocations();
        let before_here = ALLOC.thread_allocations();
        let before_source = SOURCE_ALLOCATIONS.load(SeqCst);
        let before_produced = PRODUCED.load(SeqCst);
        step(&mut it, 40);
        // The machinery count is sampled at the producer's calls of next(): what it allocated
        // after its last call before the window (its first blocking send) would show up at its
        // next call. Take its baseline from a call made inside the window; the process-wide and
        // source counts above start at the settled producer, where they agree.
        let waited = std::time::Instant::now();
        while PRODUCED.load(SeqCst) <= before_produced && waited.elapsed().as_secs() < 10 {
            std::thread::yield_now();
        }
        let before_machinery = MACHINERY_ALLOCATIONS.load(SeqCst);
        for k in 41..240 {
            step(&mut it, k);
        }
        let here = ALLOC.thread_allocations() - before_here;
        // Let the producer settle (blocked in send again) so the counts are final.
        wait_for_producer(240 + prefetch as u64 + 1);
        let all = ALLOC.allocations() - before;
        let source = SOURCE_ALLOCATIONS.load(SeqCst) - before_source;
        let machinery = MACHINERY_ALLOCATIONS.load(SeqCst) - before_machinery;
        let produced = PRODUCED.load(SeqCst) - before_produced;
        eprintln!(
            "200 batches, prefetch {prefetch}: heap allocations: consumer {here}, prefetch \
             thread outside the source {machinery}, source {source} ({produced} batches made), \
             process {all}"
        );
        assert_eq!(
            here, 0,
            "consumer-thread heap allocations in 200 next() calls"
        );
        assert_eq!(
            machinery, 0,
            "prefetch-thread allocations outside the source"
        );
        assert_eq!(
            all, source,
            "process-wide allocations other than the source's (prefetch {prefetch})"
        );
        // The source's are only the MultiDataSet's four Vecs per batch.
        assert!(
            source <= 4 * produced,
            "{source} allocations for {produced} batches"
        );
        for k in 240..BATCHES {
            step(&mut it, k);
        }
        assert!(it.next().is_none());
        // Control: the counter does see allocations.
        let control = std::hint::black_box(vec![1u8; 10]);
        assert!(ALLOC.allocations() > before);
        drop(control);
    }
}
