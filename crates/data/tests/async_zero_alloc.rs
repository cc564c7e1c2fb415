//! Steady state of the async iterator makes no heap allocation on either thread: once the ring
//! has learned the batch size, moving a batch from the source through the ring and the queue
//! to the consumer allocates nothing. Measured process-wide (all threads) with the counting
//! allocator; this file holds one test so nothing else runs in the process meanwhile.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use dl4rs_array::NdArray;
use dl4rs_data::{AsyncDataSetIterator, DataSet, DataSetIterator, InMemoryDataSetIterator};
use dl4rs_memory::CountingAllocator;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

const INPUTS: usize = 64;
const BATCH: usize = 32;
const BATCHES: usize = 320;

fn data() -> DataSet {
    let n = BATCH * BATCHES;
    let f: Vec<f32> = (0..n * INPUTS).map(|i| i as f32).collect();
    let l: Vec<f32> = (0..n * 10).map(|i| (i % 10) as f32).collect();
    DataSet::new(
        NdArray::from_slice_detached(&[n, INPUTS], &f).unwrap(),
        NdArray::from_slice_detached(&[n, 10], &l).unwrap(),
    )
    .unwrap()
}

/// Takes batch `k`, checks every value (without allocating) and drops it.
fn step(it: &mut AsyncDataSetIterator, k: usize) {
    assert!(it.has_next());
    let batch = it.next().unwrap().unwrap();
    let read = batch.features.read().unwrap();
    let values = read.as_slice().unwrap();
    assert_eq!(values.len(), BATCH * INPUTS);
    let first = k * BATCH * INPUTS;
    for (i, &v) in values.iter().enumerate() {
        assert_eq!(v, (first + i) as f32);
    }
    drop(read);
    let read = batch.labels.read().unwrap();
    for (i, &v) in read.as_slice().unwrap().iter().enumerate() {
        assert_eq!(v, (i % 10) as f32);
    }
}

#[test]
fn steady_state_allocates_nothing_on_either_thread() {
    // fit's queue length (2) and DL4J's default (8), each with its own iterator.
    for prefetch in [2, 8] {
        PRODUCED.store(0, SeqCst);
        let source = Recording(InMemoryDataSetIterator::new(data(), BATCH).unwrap());
        let mut it = AsyncDataSetIterator::new(Box::new(source), prefetch).unwrap();
        // Warm-up: the ring learns from batch 0 (which spills) and the channel's waiters and
        // the thread-local state of both threads are set up.
        for k in 0..40 {
            step(&mut it, k);
        }
        // Wait until the producer has filled the queue and is blocked sending the next batch:
        // the first time a thread blocks on the channel, std's mpsc allocates that thread's
        // waiter context once (2-3 allocations), which belongs to the warm-up.
        let start = std::time::Instant::now();
        while PRODUCED.load(SeqCst) < 40 + prefetch as u64 + 1 {
            assert!(start.elapsed().as_secs() < 10, "the producer stalled");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        // The same once-per-thread cost on the consumer side: make this thread block on a
        // channel once (std caches the waiter context per thread, across channels), in case the
        // producer was always ahead during the warm-up.
        let (wake, wait) = std::sync::mpsc::sync_channel::<()>(0);
        let waker = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            wake.send(()).unwrap();
        });
        wait.recv().unwrap();
        waker.join().unwrap();
        let before = ALLOC.allocations();
        let before_here = ALLOC.thread_allocations();
        // The producer's count is sampled at its calls of next(): what it allocated after its
        // last call before the window (its first blocking send, say) shows up at its next call.
        // Start its window a few batches in, once it has called next() inside ours; the
        // process-wide count covers the whole window.
        for k in 40..45 {
            step(&mut it, k);
        }
        // Wait for a next() call that began after those steps, and take the producer's
        // count from it.
        let produced = PRODUCED.load(SeqCst);
        let start = std::time::Instant::now();
        while PRODUCED.load(SeqCst) <= produced && start.elapsed().as_secs() < 10 {
            std::thread::yield_now();
        }
        let before_producer = PRODUCER_ALLOCATIONS.load(SeqCst);
        for k in 45..240 {
            step(&mut it, k);
        }
        let here = ALLOC.thread_allocations() - before_here;
        let all = ALLOC.allocations() - before;
        let producer = PRODUCER_ALLOCATIONS.load(SeqCst) - before_producer;
        eprintln!(
            "200 batches, prefetch {prefetch}: heap allocations: consumer {here}, prefetch \
             thread {producer}, process {all}"
        );
        assert_eq!(
            producer, 0,
            "prefetch-thread heap allocations in 195 batches"
        );
        assert_eq!(
            here, 0,
            "consumer-thread heap allocations in 200 next() calls"
        );
        assert_eq!(
            all, 0,
            "process-wide heap allocations in 200 batches (prefetch {prefetch})"
        );
        // The producer really ran in the window: it is ahead of the consumer, not behind.
        for k in 240..BATCHES {
            step(&mut it, k);
        }
        assert!(it.next().is_none());
        // Control: the counter does see allocations.
        let control = std::hint::black_box(vec![1u8; 10]);
        assert!(ALLOC.allocations() > before);
        drop(control);
    }

    // Control for the other thread: a source that allocates once per batch on the prefetch
    // thread is seen by the process-wide count.
    let source = Allocating(InMemoryDataSetIterator::new(data(), BATCH).unwrap());
    let mut it = AsyncDataSetIterator::new(Box::new(source), 2).unwrap();
    for k in 0..40 {
        step(&mut it, k);
    }
    let before = ALLOC.allocations();
    for k in 40..240 {
        step(&mut it, k);
    }
    // The prefetch thread runs at most prefetch + 1 batches ahead, so it made at least 197
    // next() calls in the window.
    assert!(ALLOC.allocations() - before >= 197);
}

/// Calls of the source's `next()` so far.
static PRODUCED: AtomicU64 = AtomicU64::new(0);

/// The prefetch thread's allocation count, as seen at its latest call to `next()`.
static PRODUCER_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Delegates to an in-memory source, recording its thread's allocation count (which makes no
/// allocation).
struct Recording(InMemoryDataSetIterator);

impl DataSetIterator for Recording {
    fn next(&mut self) -> Option<Result<DataSet, dl4rs_data::DataError>> {
        PRODUCER_ALLOCATIONS.store(ALLOC.thread_allocations(), SeqCst);
        PRODUCED.fetch_add(1, SeqCst);
        self.0.next()
    }
    fn has_next(&self) -> bool {
        self.0.has_next()
    }
    fn reset(&mut self) -> Result<(), dl4rs_data::DataError> {
        self.0.reset()
    }
    fn reset_supported(&self) -> bool {
        true
    }
    fn async_supported(&self) -> bool {
        true
    }
    fn batch(&self) -> usize {
        self.0.batch()
    }
    fn total_outcomes(&self) -> usize {
        self.0.total_outcomes()
    }
    fn input_columns(&self) -> usize {
        self.0.input_columns()
    }
    fn total_examples(&self) -> Option<usize> {
        self.0.total_examples()
    }
}

/// Delegates to an in-memory source, with one heap allocation per batch.
struct Allocating(InMemoryDataSetIterator);

impl DataSetIterator for Allocating {
    fn next(&mut self) -> Option<Result<DataSet, dl4rs_data::DataError>> {
        drop(std::hint::black_box(Box::new(0u64)));
        self.0.next()
    }
    fn has_next(&self) -> bool {
        self.0.has_next()
    }
    fn reset(&mut self) -> Result<(), dl4rs_data::DataError> {
        self.0.reset()
    }
    fn reset_supported(&self) -> bool {
        true
    }
    fn async_supported(&self) -> bool {
        true
    }
    fn batch(&self) -> usize {
        self.0.batch()
    }
    fn total_outcomes(&self) -> usize {
        self.0.total_outcomes()
    }
    fn input_columns(&self) -> usize {
        self.0.input_columns()
    }
    fn total_examples(&self) -> Option<usize> {
        self.0.total_examples()
    }
}
