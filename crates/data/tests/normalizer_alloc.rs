//! `transform` (and the CSV iterator's `next()`) make no heap allocation per batch inside a
//! warmed-up workspace.

use dl4rs_data::DataSetIterator;
use dl4rs_data::normalizer::{
    DataNormalization, ImagePreProcessingScaler, Normalizer, NormalizerMinMaxScaler,
    NormalizerStandardize, PreProcessedIterator,
};
use dl4rs_data::records::{CsvRecordReader, RecordReaderDataSetIterator};
use dl4rs_memory::{CountingAllocator, WorkspaceConfig, get_and_activate_workspace};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

fn iterator() -> RecordReaderDataSetIterator<f32> {
    let mut text = String::new();
    for i in 0..500 {
        let row: Vec<String> = (0..20)
            .map(|j| format!("{}", (i * 7 + j * 3) % 97))
            .collect();
        text.push_str(&row.join(","));
        text.push_str(&format!(",{}\n", i % 4));
    }
    let mut r = CsvRecordReader::new(0, ',');
    r.initialize_str("alloc.csv", &text).unwrap();
    RecordReaderDataSetIterator::classification(r, 32, 20, 4)
        .unwrap()
        .with_shuffle(3)
}

fn step(it: &mut dyn DataSetIterator<f32>, cfg: &WorkspaceConfig) -> f32 {
    if !it.has_next() {
        it.reset().unwrap();
    }
    let _cycle = get_and_activate_workspace(cfg, "NORM_ZERO_ALLOC").unwrap();
    let batch = it.next().unwrap().unwrap();
    let x = batch.features.get(&[0, 0]).unwrap();
    drop(batch);
    x
}

#[test]
fn transform_and_csv_batches_allocate_nothing_in_steady_state() {
    let cfg = WorkspaceConfig::default();
    let mut normalizers: Vec<Normalizer> = vec![
        NormalizerStandardize::new().into(),
        NormalizerMinMaxScaler::new().fit_labels(true).into(),
        ImagePreProcessingScaler::new().into(),
    ];
    for n in &mut normalizers {
        let mut raw = iterator();
        n.fit(&mut raw).unwrap();
        let mut it = PreProcessedIterator::new(raw, n.clone());
        let mut total = 0.0;
        for _ in 0..3 {
            total += step(&mut it, &cfg);
        }
        let before = ALLOC.thread_allocations();
        for _ in 0..40 {
            total += step(&mut it, &cfg);
        }
        let after = ALLOC.thread_allocations();
        assert_eq!(
            after - before,
            0,
            "{}: heap allocations in 40 normalized next() calls",
            n.name()
        );
        assert!(total.is_finite());
        // Direct transform of a workspace batch, measured alone.
        let mut raw = iterator();
        let _cycle = get_and_activate_workspace(&cfg, "NORM_ZERO_ALLOC").unwrap();
        let mut batch = raw.next().unwrap().unwrap();
        let before = ALLOC.thread_allocations();
        n.transform(&mut batch).unwrap();
        n.revert(&mut batch).unwrap();
        n.transform_features(&mut batch.features).unwrap();
        assert_eq!(ALLOC.thread_allocations() - before, 0, "{}", n.name());
    }
    // Control: the counter sees heap allocations on this thread.
    let before = ALLOC.thread_allocations();
    let control = std::hint::black_box(vec![1u8; 10]);
    assert!(ALLOC.thread_allocations() > before);
    drop(control);
}
