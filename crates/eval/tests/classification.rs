//! `Evaluation`: metrics against hand-computed values, averaging, MCC, top-N, masks, merge,
//! stats and bad input.

mod common;

use common::*;
use dl4rs_array::{AsView, DataType, NdArray};
use dl4rs_eval::{Averaging, EvalError, Evaluation, IEvaluation};

/// The worked example: 10 examples, 3 classes.
///
/// ```text
/// actual \ predicted   0  1  2
///          0           3  1  0
///          1           1  1  0
///          2           1  1  2
/// ```
const ACTUAL: [usize; 10] = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2];
const PREDICTED: [usize; 10] = [0, 0, 0, 1, 0, 1, 0, 1, 2, 2];

fn worked<T: DataType>() -> Evaluation {
    let mut ev = Evaluation::new(3);
    ev.eval(
        &one_hot::<T>(3, &ACTUAL),
        &outputs::<T>(3, &PREDICTED),
        None,
    )
    .unwrap();
    ev
}

fn check_worked(ev: &Evaluation) {
    let cm = ev.confusion_matrix();
    let expected = [[3, 1, 0], [1, 1, 0], [1, 1, 2]];
    for (a, row) in expected.iter().enumerate() {
        for (p, &n) in row.iter().enumerate() {
            assert_eq!(cm.count(a, p), n, "cm[{a}][{p}]");
        }
    }
    assert_eq!(ev.num_examples(), 10);
    assert_close(ev.accuracy(), 0.6);
    // Class 0: TP 3, FP 2, FN 1, TN 4.
    assert_eq!(
        (
            ev.true_positives(0),
            ev.false_positives(0),
            ev.false_negatives(0),
            ev.true_negatives(0)
        ),
        (3, 2, 1, 4)
    );
    assert_close(ev.precision(0), 0.6);
    assert_close(ev.recall(0), 0.75);
    assert_close(ev.f1(0), 2.0 * 0.6 * 0.75 / (0.6 + 0.75));
    assert_close(ev.false_positive_rate(0), 2.0 / 6.0);
    assert_close(ev.false_negative_rate(0), 0.25);
    // Class 1: TP 1, FP 2, FN 1, TN 6.
    assert_close(ev.precision(1), 1.0 / 3.0);
    assert_close(ev.recall(1), 0.5);
    assert_close(ev.f1(1), 0.4);
    assert_close(ev.false_positive_rate(1), 2.0 / 8.0);
    // Class 2: TP 2, FP 0, FN 2, TN 6.
    assert_close(ev.precision(2), 1.0);
    assert_close(ev.recall(2), 0.5);
    assert_close(ev.f1(2), 2.0 / 3.0);
    assert_close(ev.false_positive_rate(2), 0.0);

    // Macro weighs classes equally, micro weighs examples equally: they differ here.
    assert_close(
        ev.precision_averaged(Averaging::Macro),
        (0.6 + 1.0 / 3.0 + 1.0) / 3.0,
    );
    assert_close(
        ev.recall_averaged(Averaging::Macro),
        (0.75 + 0.5 + 0.5) / 3.0,
    );
    assert_close(
        ev.f1_averaged(Averaging::Macro),
        (2.0 / 3.0 + 0.4 + 2.0 / 3.0) / 3.0,
    );
    // Single-label: micro precision = micro recall = micro F1 = accuracy.
    assert_close(ev.precision_averaged(Averaging::Micro), 0.6);
    assert_close(ev.recall_averaged(Averaging::Micro), 0.6);
    assert_close(ev.f1_averaged(Averaging::Micro), 0.6);
    assert!((ev.precision_averaged(Averaging::Macro) - 0.6).abs() > 0.04);
    // Micro FPR: FP = 4 of FP + TN = 4 + 16.
    assert_close(
        ev.false_positive_rate_averaged(Averaging::Micro),
        4.0 / 20.0,
    );
    assert_close(
        ev.false_positive_rate_averaged(Averaging::Macro),
        (2.0 / 6.0 + 2.0 / 8.0 + 0.0) / 3.0,
    );
}

#[test]
fn three_class_example_by_hand_f32() {
    check_worked(&worked::<f32>());
}

#[test]
fn three_class_example_by_hand_f64() {
    let ev = worked::<f64>();
    check_worked(&ev);
    assert_eq!(ev, worked::<f32>());
}

/// Textbook MCC from the four counts.
fn textbook_mcc(tp: f64, fp: f64, fn_: f64, tn: f64) -> f64 {
    (tp * tn - fp * fn_) / ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt()
}

#[test]
fn matthews_correlation_matches_textbook_formula() {
    let ev = worked::<f32>();
    assert_close(ev.matthews_correlation(0), textbook_mcc(3.0, 2.0, 1.0, 4.0));
    assert_close(ev.matthews_correlation(0), 10.0 / 600f64.sqrt());
    assert_close(ev.matthews_correlation(1), textbook_mcc(1.0, 2.0, 1.0, 6.0));
    assert_close(ev.matthews_correlation(2), textbook_mcc(2.0, 0.0, 2.0, 6.0));
    // Gorodkin: c = 6, s = 10, p = (5, 3, 2), t = (4, 2, 4).
    assert_close(
        ev.matthews_correlation_multiclass(),
        (6.0 * 10.0 - 34.0) / ((100.0f64 - 38.0) * (100.0 - 36.0)).sqrt(),
    );
    let macro_mcc = (textbook_mcc(3.0, 2.0, 1.0, 4.0)
        + textbook_mcc(1.0, 2.0, 1.0, 6.0)
        + textbook_mcc(2.0, 0.0, 2.0, 6.0))
        / 3.0;
    assert_close(
        ev.matthews_correlation_averaged(Averaging::Macro),
        macro_mcc,
    );
    assert_close(
        ev.matthews_correlation_averaged(Averaging::Micro),
        textbook_mcc(6.0, 4.0, 4.0, 16.0),
    );
}

#[test]
fn binary_multiclass_mcc_equals_binary_mcc() {
    let actual = [0, 0, 1, 1, 1, 0, 1];
    let predicted = [0, 1, 1, 1, 0, 0, 1];
    let mut ev = Evaluation::new(2);
    ev.eval(
        &one_hot::<f64>(2, &actual),
        &outputs::<f64>(2, &predicted),
        None,
    )
    .unwrap();
    let (tp, fp, fn_, tn) = (3.0, 1.0, 1.0, 2.0);
    assert_close(ev.matthews_correlation(1), textbook_mcc(tp, fp, fn_, tn));
    assert_close(
        ev.matthews_correlation_multiclass(),
        textbook_mcc(tp, fp, fn_, tn),
    );
}

#[test]
fn undefined_metrics_are_nan_and_excluded_from_macro() {
    // Class 2 never predicted and never present; class 1 present but never predicted.
    let mut ev = Evaluation::new(3);
    ev.eval(
        &one_hot::<f32>(3, &[0, 0, 1]),
        &outputs::<f32>(3, &[0, 0, 0]),
        None,
    )
    .unwrap();
    assert!(ev.precision(1).is_nan());
    assert_eq!(ev.recall(1), 0.0);
    assert_eq!(ev.f1(1), 0.0);
    assert!(ev.precision(2).is_nan() && ev.recall(2).is_nan() && ev.f1(2).is_nan());
    assert_close(ev.precision_averaged(Averaging::Macro), 2.0 / 3.0); // class 0 only
    assert_close(ev.recall_averaged(Averaging::Macro), 0.5); // (1 + 0) / 2
    assert_close(ev.f1_averaged(Averaging::Macro), (0.8 + 0.0) / 2.0);
    assert!(ev.precision(7).is_nan(), "out of range class");
    assert!(Evaluation::new(3).accuracy().is_nan());
    let stats = ev.stats();
    assert!(stats.contains("never predicted"), "{stats}");
}

#[test]
fn argmax_of_probability_labels_and_ties() {
    let labels = mat::<f32>(2, 3, &[0.2, 0.5, 0.3, 0.4, 0.4, 0.2]);
    let preds = mat::<f32>(2, 3, &[0.1, 0.8, 0.1, 0.3, 0.3, 0.4]);
    let mut ev = Evaluation::new(3);
    ev.eval(&labels, &preds, None).unwrap();
    assert_eq!(ev.confusion_matrix().count(1, 1), 1);
    assert_eq!(
        ev.confusion_matrix().count(0, 2),
        1,
        "first index wins ties"
    );
}

#[test]
fn top_n_accuracy() {
    // True classes 0, 1, 2, 3; true class ranks 1st, 2nd, 3rd, 2nd (tied with another).
    let labels = one_hot::<f64>(4, &[0, 1, 2, 3]);
    let preds = mat::<f64>(
        4,
        4,
        &[
            0.4, 0.3, 0.2, 0.1, //
            0.5, 0.3, 0.1, 0.1, //
            0.5, 0.3, 0.15, 0.05, //
            0.4, 0.2, 0.1, 0.3, //
        ],
    );
    let mut ev = Evaluation::new(4).with_top_n(2);
    ev.eval(&labels, &preds, None).unwrap();
    assert_eq!(ev.accuracy(), 0.25);
    assert_eq!(ev.top_n_accuracy(), 0.75);
    let mut ev3 = Evaluation::new(4).with_top_n(3);
    ev3.eval(&labels, &preds, None).unwrap();
    assert_eq!(ev3.top_n_accuracy(), 1.0);
    assert!(
        ev.stats().contains("Top 2 Accuracy:  0.7500"),
        "{}",
        ev.stats()
    );
    assert_eq!(Evaluation::new(4).with_top_n(0).top_n(), 1);
}

#[test]
fn per_example_mask_ignores_masked_rows() {
    let actual = [0, 1, 2, 1];
    let predicted = [0, 2, 2, 1];
    let labels = one_hot::<f32>(3, &actual);
    let preds = outputs::<f32>(3, &predicted);
    for mask in [
        vec1::<f32>(&[1.0, 0.0, 1.0, 1.0]),
        mat::<f32>(4, 1, &[1.0, 0.0, 1.0, 1.0]),
    ] {
        let mut masked = Evaluation::new(3);
        masked.eval(&labels, &preds, Some(&mask.view())).unwrap();
        let mut expected = Evaluation::new(3);
        expected
            .eval(
                &one_hot::<f32>(3, &[0, 2, 1]),
                &outputs::<f32>(3, &[0, 2, 1]),
                None,
            )
            .unwrap();
        assert_eq!(masked, expected);
        assert_eq!(masked.accuracy(), 1.0);
    }
    // A per-output mask that is constant along rows acts per example.
    let mask = mat::<f32>(4, 3, &[1., 1., 1., 0., 0., 0., 1., 1., 1., 1., 1., 1.]);
    let mut ev = Evaluation::new(3);
    ev.eval(&labels, &preds, Some(&mask.view())).unwrap();
    assert_eq!(ev.num_examples(), 3);
    assert_eq!(ev.accuracy(), 1.0);
}

#[test]
fn partially_masked_row_is_an_error_and_changes_nothing() {
    let labels = one_hot::<f32>(3, &[0, 1]);
    let preds = outputs::<f32>(3, &[0, 1]);
    let mask = mat::<f32>(2, 3, &[1., 1., 1., 1., 0., 1.]);
    let mut ev = Evaluation::new(3);
    let err = ev.eval(&labels, &preds, Some(&mask.view())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Evaluation::eval: mask row 1 keeps output 0 but not output 1: expected a per-output \
         mask to be constant along each row (an example is one decision), or a [batch] mask"
    );
    assert_eq!(ev.num_examples(), 0);
}

#[test]
fn strided_views_read_correctly() {
    // Transposed storage: build [3, n] and view its transpose as [n, 3].
    let labels = one_hot::<f64>(3, &ACTUAL);
    let preds = outputs::<f64>(3, &PREDICTED);
    let lt = labels.view().t().dup().unwrap();
    let pt = preds.view().t().dup().unwrap();
    let mut ev = Evaluation::new(3);
    ev.eval(&lt.view().t(), &pt.view().t(), None).unwrap();
    check_worked(&ev);
    // A row slice (offset view).
    let mut part = Evaluation::new(3);
    part.eval(
        &labels.view().slice_axis(0, 4, 10, 1).unwrap(),
        &preds.view().slice_axis(0, 4, 10, 1).unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(part.num_examples(), 6);
    assert_eq!(part.confusion_matrix().count(2, 2), 2);
}

#[test]
fn merge_equals_eval_on_concatenation() {
    let mut a = Evaluation::new(3);
    a.eval(
        &one_hot::<f32>(3, &ACTUAL[..4]),
        &outputs::<f32>(3, &PREDICTED[..4]),
        None,
    )
    .unwrap();
    let mut b = Evaluation::new(3);
    b.eval(
        &one_hot::<f32>(3, &ACTUAL[4..]),
        &outputs::<f32>(3, &PREDICTED[4..]),
        None,
    )
    .unwrap();
    a.merge(&b).unwrap();
    assert_eq!(a, worked::<f32>());
    // Unsized merges take the other's size.
    let mut empty = Evaluation::new(0);
    empty.merge(&a).unwrap();
    assert_eq!(empty, a);
    // Class counts must match.
    let err = a.merge(&Evaluation::new(4)).unwrap_err();
    assert!(matches!(err, EvalError::Merge { .. }));
    assert_eq!(
        err.to_string(),
        "Evaluation::merge: this evaluation has 3 classes but the other has 4: expected equal \
         class counts"
    );
    let err = a.merge(&Evaluation::new(3).with_top_n(2)).unwrap_err();
    assert!(err.to_string().contains("expected equal top_n"), "{err}");
}

#[test]
fn class_count_from_first_batch() {
    let mut ev = Evaluation::new(0);
    assert_eq!(ev.num_classes(), 0);
    ev.eval(
        &one_hot::<f32>(3, &ACTUAL),
        &outputs::<f32>(3, &PREDICTED),
        None,
    )
    .unwrap();
    assert_eq!(ev.num_classes(), 3);
    check_worked(&ev);
    let err = ev
        .eval(&one_hot::<f32>(4, &[0]), &outputs::<f32>(4, &[0]), None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Evaluation::eval: inputs have shape [1, 4] (4 classes) but this evaluation has 3 \
         classes: expected [batch, 3]"
    );
}

#[test]
fn reset_forgets_examples() {
    let mut ev = worked::<f32>();
    ev.reset();
    assert_eq!(ev.num_examples(), 0);
    assert_eq!(ev.num_classes(), 3);
}

#[test]
fn stats_contains_key_numbers_and_names() {
    let mut ev = Evaluation::with_labels(["cat", "dog", "bird"]);
    ev.eval(
        &one_hot::<f32>(3, &ACTUAL),
        &outputs::<f32>(3, &PREDICTED),
        None,
    )
    .unwrap();
    let s = ev.stats();
    for needle in [
        "# of classes:    3",
        "# of examples:   10",
        "Accuracy:        0.6000",
        "Precision:       0.6444",
        "Recall:          0.5833",
        "F1 Score:        0.5778",
        "Micro F1:        0.6000",
        "cat",
        "bird",
        "| 2 = bird",
        "Confusion Matrix",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in\n{s}");
    }
    assert_eq!(ev.class_name(1), "dog");
    let table = ev.confusion_matrix().to_string();
    assert!(table.contains(" 3 1 0 | 0"), "{table}");
    // Through the trait object too.
    let dynamic: &dyn IEvaluation<f32> = &ev;
    assert_eq!(dynamic.stats(), s);
    assert!(dynamic.as_any().downcast_ref::<Evaluation>().is_some());
}

#[test]
fn bad_input_is_an_error_with_a_message() {
    let mut ev = Evaluation::new(10);
    let l = NdArray::<f32>::zeros(&[64, 10]).unwrap();
    let p9 = NdArray::<f32>::zeros(&[64, 9]).unwrap();
    assert_eq!(
        ev.eval(&l, &p9, None).unwrap_err().to_string(),
        "Evaluation::eval: labels have shape [64, 10] but predictions have shape [64, 9]: \
         expected equal shapes"
    );
    let r1 = NdArray::<f32>::zeros(&[64]).unwrap();
    assert_eq!(
        ev.eval(&r1, &r1, None).unwrap_err().to_string(),
        "Evaluation::eval: labels have shape [64] (rank 1): expected rank 2, [batch, classes]"
    );
    let r3 = NdArray::<f32>::zeros(&[2, 4, 10]).unwrap();
    assert!(matches!(
        ev.eval(&l, &r3, None).unwrap_err(),
        EvalError::Rank {
            what: "predictions",
            rank: 3,
            ..
        }
    ));
    let p11 = NdArray::<f32>::zeros(&[64, 11]).unwrap();
    assert_eq!(
        ev.eval(&p11, &p11, None).unwrap_err().to_string(),
        "Evaluation::eval: inputs have shape [64, 11] (11 classes) but this evaluation has 10 \
         classes: expected [batch, 10]"
    );
    let bad_mask = NdArray::<f32>::ones(&[32]).unwrap();
    assert_eq!(
        ev.eval(&l, &l, Some(&bad_mask.view()))
            .unwrap_err()
            .to_string(),
        "Evaluation::eval: mask has shape [32] but labels have shape [64, 10]: expected [64] or \
         [64, 1] (per example) or [64, 10] (per output)"
    );
    let bad_mask2 = NdArray::<f32>::ones(&[64, 3]).unwrap();
    assert!(matches!(
        ev.eval(&l, &l, Some(&bad_mask2.view())).unwrap_err(),
        EvalError::MaskShape { .. }
    ));
    assert_eq!(ev.num_examples(), 0, "failed batches change nothing");
}

#[test]
fn stale_workspace_array_is_an_error() {
    use dl4rs_memory::{WorkspaceConfig, get_and_activate_workspace};
    let cfg = WorkspaceConfig::default();
    let stale = {
        let _ws = get_and_activate_workspace(&cfg, "EVAL_STALE").unwrap();
        NdArray::<f32>::zeros(&[2, 3]).unwrap()
    };
    // Start the next cycle so the old array's memory is reclaimed.
    let _ws = get_and_activate_workspace(&cfg, "EVAL_STALE").unwrap();
    let ok = NdArray::<f32>::zeros(&[2, 3]).unwrap();
    let err = Evaluation::new(3).eval(&stale, &ok, None).unwrap_err();
    assert!(
        matches!(err, EvalError::Array { what: "labels", .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("Evaluation::eval: cannot read labels: "),
        "{err}"
    );
}

#[test]
fn serde_round_trip() {
    let ev = worked::<f32>();
    let json = serde_json::to_string(&ev).unwrap();
    let back: Evaluation = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ev);
}
