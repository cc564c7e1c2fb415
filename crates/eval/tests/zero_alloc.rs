//! Steady-state evaluation makes no heap allocation: after a warm-up batch, 20 more `eval`
//! calls on [128, 10] batches allocate nothing on the calling thread, for every evaluation
//! (Roc exact only with enough capacity reserved), also through `dyn IEvaluation` and on
//! workspace-backed inputs.

use dl4rs_array::{AsView, NdArray};
use dl4rs_eval::{
    Evaluation, EvaluationBinary, IEvaluation, RegressionEvaluation, Roc, RocMultiClass,
};
use dl4rs_memory::{CountingAllocator, WorkspaceConfig, get_and_activate_workspace};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

const BATCH: usize = 128;

/// A named evaluation with its labels and predictions.
type Case<'a> = (
    &'a str,
    &'a mut dyn IEvaluation<f32>,
    &'a NdArray<f32>,
    &'a NdArray<f32>,
);
const STEPS: usize = 20;

/// Labels (one-hot for 10 columns, 0/1 otherwise), uniform predictions and a per-example
/// mask, all created before any counting starts.
fn inputs(cols: usize, seed: u64) -> (NdArray<f32>, NdArray<f32>, NdArray<f32>) {
    let noise = NdArray::<f32>::rand_uniform(&[BATCH, cols], 0.0, 1.0, seed)
        .unwrap()
        .to_vec()
        .unwrap();
    let labels: Vec<f32> = (0..BATCH * cols)
        .map(|i| {
            let (row, col) = (i / cols, i % cols);
            let on = if cols == 10 {
                col == row % cols
            } else {
                noise[i] > 0.5
            };
            if on { 1.0 } else { 0.0 }
        })
        .collect();
    let labels = NdArray::from_slice_detached(&[BATCH, cols], &labels).unwrap();
    let preds = NdArray::<f32>::rand_uniform(&[BATCH, cols], 0.0, 1.0, seed + 1).unwrap();
    let mask: Vec<f32> = (0..BATCH)
        .map(|i| if i % 5 == 0 { 0.0 } else { 1.0 })
        .collect();
    let mask = NdArray::<f32>::from_slice_detached(&[BATCH], &mask).unwrap();
    (labels, preds, mask)
}

/// Runs a warm-up batch, then counts allocations over `STEPS` batches.
fn steady_state_allocations(
    e: &mut dyn IEvaluation<f32>,
    labels: &NdArray<f32>,
    preds: &NdArray<f32>,
    mask: Option<&NdArray<f32>>,
) -> u64 {
    let mask_view = mask.map(|m| m.view());
    e.eval(&labels.view(), &preds.view(), mask_view.as_ref())
        .unwrap();
    let before = ALLOC.thread_allocations();
    for _ in 0..STEPS {
        e.eval(&labels.view(), &preds.view(), mask_view.as_ref())
            .unwrap();
    }
    ALLOC.thread_allocations() - before
}

#[test]
fn every_evaluation_is_allocation_free_per_batch() {
    let (l10, p10, mask) = inputs(10, 1);
    let (l2, p2, _) = inputs(2, 7);
    let (l1, p1, _) = inputs(1, 9);

    let mut evaluation = Evaluation::new(10).with_top_n(3);
    let mut unsized_evaluation = Evaluation::new(0);
    let mut regression = RegressionEvaluation::new(10);
    let mut binary = EvaluationBinary::new(10);
    let mut roc_thresholded = Roc::with_threshold_steps(100);
    let mut roc_exact = Roc::with_capacity((STEPS + 1) * BATCH);
    let mut roc_exact_1col = Roc::with_capacity((STEPS + 1) * BATCH);
    let mut roc_multi = RocMultiClass::with_threshold_steps(10, 50);
    let mut roc_multi_exact = RocMultiClass::with_capacity(10, (STEPS + 1) * BATCH);

    let cases: [Case<'_>; 9] = [
        ("Evaluation", &mut evaluation, &l10, &p10),
        (
            "Evaluation (sized by first batch)",
            &mut unsized_evaluation,
            &l10,
            &p10,
        ),
        ("RegressionEvaluation", &mut regression, &l10, &p10),
        ("EvaluationBinary", &mut binary, &l10, &p10),
        ("Roc thresholded", &mut roc_thresholded, &l2, &p2),
        ("Roc exact with capacity", &mut roc_exact, &l2, &p2),
        (
            "Roc exact with capacity, [batch, 1]",
            &mut roc_exact_1col,
            &l1,
            &p1,
        ),
        ("RocMultiClass thresholded", &mut roc_multi, &l10, &p10),
        (
            "RocMultiClass exact with capacity",
            &mut roc_multi_exact,
            &l10,
            &p10,
        ),
    ];
    for (name, e, labels, preds) in cases {
        assert_eq!(
            steady_state_allocations(e, labels, preds, None),
            0,
            "{name}"
        );
    }
    assert_eq!(evaluation.num_examples(), ((STEPS + 1) * BATCH) as u64);
    assert_eq!(roc_exact.num_examples(), ((STEPS + 1) * BATCH) as u64);

    // With a per-example mask.
    let mut masked = Evaluation::new(10);
    assert_eq!(
        steady_state_allocations(&mut masked, &l10, &p10, Some(&mask)),
        0
    );
    let mut masked_reg = RegressionEvaluation::new(10);
    assert_eq!(
        steady_state_allocations(&mut masked_reg, &l10, &p10, Some(&mask)),
        0
    );

    // Control: the counter sees allocations on this thread, e.g. an exact Roc without room.
    let mut growing = Roc::new();
    assert!(steady_state_allocations(&mut growing, &l2, &p2, None) > 0);
}

#[test]
fn several_evaluations_in_one_pass_on_workspace_inputs() {
    let cfg = WorkspaceConfig::default();
    let mut evaluation = Evaluation::new(10);
    let mut binary = EvaluationBinary::new(10);
    let mut regression = RegressionEvaluation::new(10);
    let mut run = |iterations: usize| {
        for i in 0..iterations {
            let _ws = get_and_activate_workspace(&cfg, "EVAL_LOOP").unwrap();
            let labels = NdArray::<f32>::rand_uniform(&[BATCH, 10], 0.0, 1.0, i as u64).unwrap();
            let preds = NdArray::<f32>::rand_uniform(&[BATCH, 10], 0.0, 1.0, 99).unwrap();
            let mut evals: [&mut dyn IEvaluation<f32>; 3] =
                [&mut evaluation, &mut binary, &mut regression];
            for e in evals.iter_mut() {
                e.eval(&labels.view(), &preds.view(), None).unwrap();
            }
        }
    };
    run(3);
    let before = ALLOC.thread_allocations();
    run(STEPS);
    assert_eq!(ALLOC.thread_allocations() - before, 0);
}
