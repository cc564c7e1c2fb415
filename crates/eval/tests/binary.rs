//! `EvaluationBinary`: per-output counts and metrics, thresholds, masks, merge, stats, errors.

mod common;

use common::*;
use dl4rs_array::AsView;
use dl4rs_eval::{EvalError, EvaluationBinary, IEvaluation};

// 3 outputs, 4 examples.
const Y: [f64; 12] = [
    1.0, 0.0, 1.0, //
    0.0, 1.0, 1.0, //
    1.0, 1.0, 0.0, //
    0.0, 0.0, 0.0, //
];
const P: [f64; 12] = [
    0.9, 0.2, 0.5, //
    0.6, 0.8, 0.7, //
    0.3, 0.4, 0.1, //
    0.1, 0.6, 0.2, //
];

#[test]
fn counts_and_metrics_by_hand() {
    let mut ev = EvaluationBinary::new(3);
    ev.eval(&mat::<f32>(4, 3, &Y), &mat::<f32>(4, 3, &P), None)
        .unwrap();
    // Output 0: y 1 0 1 0, predicted 1 1 0 0 → TP 1, FP 1, FN 1, TN 1.
    assert_eq!(
        (
            ev.true_positives(0),
            ev.false_positives(0),
            ev.false_negatives(0),
            ev.true_negatives(0)
        ),
        (1, 1, 1, 1)
    );
    // Output 1: y 0 1 1 0, predicted 0 1 0 1 → TP 1, FP 1, FN 1, TN 1.
    // Output 2: y 1 1 0 0, predicted 0 (0.5 is not > 0.5) 1 0 0 → TP 1, FN 1, TN 2.
    assert_eq!(
        (
            ev.true_positives(2),
            ev.false_positives(2),
            ev.false_negatives(2),
            ev.true_negatives(2)
        ),
        (1, 0, 1, 2)
    );
    assert_eq!(ev.accuracy(0), 0.5);
    assert_eq!(ev.precision(0), 0.5);
    assert_eq!(ev.recall(0), 0.5);
    assert_eq!(ev.f1(0), 0.5);
    assert_eq!(ev.accuracy(2), 0.75);
    assert_eq!(ev.precision(2), 1.0);
    assert_eq!(ev.recall(2), 0.5);
    assert_close(ev.f1(2), 2.0 / 3.0);
    assert_eq!(ev.false_positive_rate(2), 0.0);
    assert_close(
        ev.matthews_correlation(2),
        (2.0 - 0.0) / (1.0f64 * 2.0 * 2.0 * 3.0).sqrt(),
    );
    assert_eq!(ev.total_count(1), 4);
    assert_close(ev.average_accuracy(), (0.5 + 0.5 + 0.75) / 3.0);
    assert_close(ev.average_f1(), (0.5 + 0.5 + 2.0 / 3.0) / 3.0);
    assert!(ev.precision(9).is_nan());
}

#[test]
fn configurable_thresholds() {
    let mut ev = EvaluationBinary::with_thresholds([0.95, 0.5, 0.45]);
    ev.eval(&mat::<f64>(4, 3, &Y), &mat::<f64>(4, 3, &P), None)
        .unwrap();
    assert_eq!(ev.true_positives(0), 0, "0.9 is below 0.95");
    assert_eq!(ev.true_positives(2), 2, "0.5 is above 0.45");
    assert_eq!(ev.threshold(0), 0.95);
    let mut all = EvaluationBinary::new(0).with_threshold(0.05);
    all.eval(&mat::<f64>(4, 3, &Y), &mat::<f64>(4, 3, &P), None)
        .unwrap();
    assert_eq!(all.num_outputs(), 3);
    assert_eq!(all.recall(0), 1.0);
    assert_eq!(all.threshold(2), 0.05);
}

#[test]
fn masks_ignore_masked_entries() {
    let mut m = [1.0; 12];
    m[0] = 0.0; // example 0, output 0
    let mut ev = EvaluationBinary::new(3);
    ev.eval(
        &mat::<f32>(4, 3, &Y),
        &mat::<f32>(4, 3, &P),
        Some(&mat::<f32>(4, 3, &m).view()),
    )
    .unwrap();
    assert_eq!(ev.total_count(0), 3);
    assert_eq!(ev.true_positives(0), 0);
    assert_eq!(ev.total_count(1), 4);
    let mut ev = EvaluationBinary::new(3);
    ev.eval(
        &mat::<f32>(4, 3, &Y),
        &mat::<f32>(4, 3, &P),
        Some(&vec1::<f32>(&[0.0, 1.0, 1.0, 0.0]).view()),
    )
    .unwrap();
    assert_eq!(ev.total_count(2), 2);
}

#[test]
fn merge_equals_concatenation_and_errors() {
    let mut whole = EvaluationBinary::new(3);
    whole
        .eval(&mat::<f32>(4, 3, &Y), &mat::<f32>(4, 3, &P), None)
        .unwrap();
    let mut a = EvaluationBinary::new(3);
    a.eval(&mat::<f32>(1, 3, &Y[..3]), &mat::<f32>(1, 3, &P[..3]), None)
        .unwrap();
    let mut b = EvaluationBinary::new(3);
    b.eval(&mat::<f32>(3, 3, &Y[3..]), &mat::<f32>(3, 3, &P[3..]), None)
        .unwrap();
    a.merge(&b).unwrap();
    assert_eq!(a, whole);
    let err = a.merge(&EvaluationBinary::new(2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "EvaluationBinary::merge: this evaluation has 3 outputs but the other has 2: expected \
         equal output counts"
    );
    let err = a
        .merge(&EvaluationBinary::new(3).with_threshold(0.2))
        .unwrap_err();
    assert!(
        err.to_string().contains("expected equal thresholds"),
        "{err}"
    );
    let err = a
        .eval(
            &mat::<f32>(1, 2, &[0.0; 2]),
            &mat::<f32>(1, 2, &[0.0; 2]),
            None,
        )
        .unwrap_err();
    assert!(matches!(
        err,
        EvalError::ColumnCount {
            expected: 3,
            found: 2,
            ..
        }
    ));
}

#[test]
fn stats_contains_key_numbers() {
    let mut ev = EvaluationBinary::new(3).with_labels(["spam", "urgent", "personal"]);
    ev.eval(&mat::<f32>(4, 3, &Y), &mat::<f32>(4, 3, &P), None)
        .unwrap();
    let s = ev.stats();
    for needle in [
        "Accuracy",
        "Precision",
        "spam",
        "personal",
        "0.7500",
        "0.6667",
        "Average",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in\n{s}");
    }
    let dynamic: &dyn IEvaluation<f32> = &ev;
    assert_eq!(dynamic.stats(), s);
    ev.reset();
    assert_eq!(ev.total_count(0), 0);
}
