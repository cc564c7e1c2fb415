//! Variable-length sequences through the async prefetch iterator: batches of a
//! `SequenceRecordReaderDataSetIterator` (AlignEnd, masks) whose time axis jumps from 4 to 30
//! steps make the prefetch ring grow to the longest batch, every batch arrives intact
//! (values, padding and masks), and once the ring has grown, handing batches over makes no
//! heap allocation on either thread. Counted process-wide with the counting allocator; one
//! test in this file so nothing else runs in the process meanwhile.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use dl4rs_data::records::{
    AlignmentMode, CsvSequenceRecordReader, SequenceRecordReaderDataSetIterator,
};
use dl4rs_data::{AsyncDataSetIterator, DataSet, DataSetIterator};
use dl4rs_memory::{CountingAllocator, process_workspaces};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

const BATCH: usize = 4;
const BATCHES: usize = 240;
const CHANNELS: usize = 2;
const CLASSES: usize = 3;

/// Length of every sequence of batch `k`: 4 steps for the first 10 batches (the ring learns
/// that size), then cycling 4, 30, 12, 20.
fn length(k: usize) -> usize {
    if k < 10 { 4 } else { [4, 30, 12, 20][k % 4] }
}

/// Sequence `id`, step `t`, channel `c` holds `id * 100 + t * 2 + c`; its class is `id % 3`.
fn source() -> SequenceRecordReaderDataSetIterator<f32> {
    let mut files = Vec::new();
    for id in 0..BATCH * BATCHES {
        let mut text = String::new();
        for t in 0..length(id / BATCH) {
            let row: Vec<String> = (0..CHANNELS)
                .map(|c| (id * 100 + t * 2 + c).to_string())
                .collect();
            text.push_str(&row.join(","));
            text.push('\n');
        }
        files.push((format!("f{id}.csv"), text, format!("{}\n", id % CLASSES)));
    }
    let mut features = CsvSequenceRecordReader::new(0, ',');
    let f: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t, _)| (n.as_str(), t.as_str()))
        .collect();
    features.initialize_strs(&f).unwrap();
    let mut labels = CsvSequenceRecordReader::new(0, ',');
    let l: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, _, l)| (n.as_str(), l.as_str()))
        .collect();
    labels.initialize_strs(&l).unwrap();
    SequenceRecordReaderDataSetIterator::classification(
        features,
        labels,
        BATCH,
        CLASSES,
        AlignmentMode::AlignEnd,
    )
    .unwrap()
}

/// Takes batch `k` and checks every value, padding and mask entry without allocating.
fn step(it: &mut AsyncDataSetIterator, k: usize) {
    assert!(it.has_next());
    let batch: DataSet = it.next().unwrap().unwrap();
    let len = length(k);
    assert_eq!(batch.features.shape(), [BATCH, CHANNELS, len], "batch {k}");
    assert_eq!(batch.labels.shape(), [BATCH, CLASSES, len], "batch {k}");
    let f = batch.features.read().unwrap();
    let f = f.as_slice().unwrap();
    let l = batch.labels.read().unwrap();
    let l = l.as_slice().unwrap();
    let m = batch.labels_mask.as_ref().unwrap().read().unwrap();
    let m = m.as_slice().unwrap();
    for r in 0..BATCH {
        let id = k * BATCH + r;
        for c in 0..CHANNELS {
            for t in 0..len {
                assert_eq!(
                    f[(r * CHANNELS + c) * len + t],
                    (id * 100 + t * 2 + c) as f32
                );
            }
        }
        for t in 0..len {
            assert_eq!(m[r * len + t], if t + 1 == len { 1.0 } else { 0.0 });
            for class in 0..CLASSES {
                let hot = t + 1 == len && class == id % CLASSES;
                assert_eq!(
                    l[(r * CLASSES + class) * len + t],
                    if hot { 1.0 } else { 0.0 }
                );
            }
        }
    }
}

fn ring_bytes(it: &AsyncDataSetIterator) -> u64 {
    process_workspaces()
        .iter()
        .find(|w| &*w.id == it.workspace_id())
        .map_or(0, |w| w.snapshot.block_bytes)
}

#[test]
fn growing_sequence_batches_then_no_allocation_on_either_thread() {
    PRODUCED.store(0, SeqCst);
    // No floor on the ring's size: it is sized from the batches alone, so it must grow.
    let mut it =
        AsyncDataSetIterator::with_min_ring_bytes(Box::new(Recording(source())), 2, 0).unwrap();
    for k in 0..8 {
        step(&mut it, k);
    }
    let short = ring_bytes(&it);
    // The longer batches arrive; the ring serves them from the heap, then grows (to about
    // 30 / 4 times its size: the batch bytes scale with the time axis).
    for k in 8..80 {
        step(&mut it, k);
    }
    let grown = ring_bytes(&it);
    assert!(short > 0, "the ring learned the 4-step batches");
    assert!(
        grown >= short * 6,
        "the ring grew with the 30-step batches: {short} -> {grown} bytes"
    );
    // As in async_zero_alloc.rs: let the producer fill the queue and block once (std's
    // channel allocates a thread's waiter context the first time it blocks), and make this
    // thread block on a channel once too.
    let start = std::time::Instant::now();
    while PRODUCED.load(SeqCst) < 80 + 2 + 1 {
        assert!(start.elapsed().as_secs() < 10, "the producer stalled");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (wake, wait) = std::sync::mpsc::sync_channel::<()>(0);
    let waker = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(5));
        wake.send(()).unwrap();
    });
    wait.recv().unwrap();
    waker.join().unwrap();

    let before = ALLOC.allocations();
    let before_here = ALLOC.thread_allocations();
    for k in 80..85 {
        step(&mut it, k);
    }
    let produced = PRODUCED.load(SeqCst);
    let start = std::time::Instant::now();
    while PRODUCED.load(SeqCst) <= produced && start.elapsed().as_secs() < 10 {
        std::thread::yield_now();
    }
    let before_producer = PRODUCER_ALLOCATIONS.load(SeqCst);
    for k in 85..230 {
        step(&mut it, k);
    }
    let here = ALLOC.thread_allocations() - before_here;
    let all = ALLOC.allocations() - before;
    let producer = PRODUCER_ALLOCATIONS.load(SeqCst) - before_producer;
    eprintln!(
        "150 variable-length batches: heap allocations: consumer {here}, prefetch thread \
         {producer}, process {all}; ring {short} -> {grown} bytes"
    );
    assert_eq!(producer, 0, "prefetch-thread heap allocations");
    assert_eq!(here, 0, "consumer-thread heap allocations");
    assert_eq!(all, 0, "process-wide heap allocations");
    assert_eq!(
        ring_bytes(&it),
        grown,
        "the ring did not need to grow again"
    );
    for k in 230..BATCHES {
        step(&mut it, k);
    }
    assert!(it.next().is_none());
    // Control: the counter does see allocations.
    let control = std::hint::black_box(vec![1u8; 10]);
    assert!(ALLOC.allocations() > before);
    drop(control);
}

/// Calls of the source's `next()` so far.
static PRODUCED: AtomicU64 = AtomicU64::new(0);

/// The prefetch thread's allocation count, as seen at its latest call to `next()`.
static PRODUCER_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Delegates to the sequence source, recording its thread's allocation count.
struct Recording(SequenceRecordReaderDataSetIterator<f32>);

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
