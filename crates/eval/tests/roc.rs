//! `Roc` and `RocMultiClass`: exact AUROC against a brute-force pairwise count (ties ½),
//! AUPRC against a step-wise reference, thresholded mode, curves, masks, merge, bad input.

mod common;

use common::*;
use dl4rs_array::AsView;
use dl4rs_eval::{EvalError, IEvaluation, Roc, RocMultiClass};
use proptest::prelude::*;

/// P(score of a random positive > score of a random negative), ties ½, by counting pairs.
fn brute_auc(scores: &[f64], positive: &[bool]) -> f64 {
    let (mut num, mut pairs) = (0.0, 0.0);
    for (i, &sp) in scores.iter().enumerate() {
        if !positive[i] {
            continue;
        }
        for (j, &sn) in scores.iter().enumerate() {
            if positive[j] {
                continue;
            }
            pairs += 1.0;
            if sp > sn {
                num += 1.0;
            } else if sp == sn {
                num += 0.5;
            }
        }
    }
    num / pairs
}

/// Σ (Rₖ − Rₖ₋₁)·Pₖ over distinct thresholds, each point computed by counting from scratch.
fn stepwise_auprc(scores: &[f64], positive: &[bool]) -> f64 {
    let mut thresholds: Vec<f64> = scores.to_vec();
    thresholds.sort_by(|a, b| b.partial_cmp(a).unwrap());
    thresholds.dedup();
    let total_pos = positive.iter().filter(|&&p| p).count() as f64;
    let mut prev_recall = 0.0;
    let mut area = 0.0;
    for t in thresholds {
        let tp = scores
            .iter()
            .zip(positive)
            .filter(|(s, p)| **s >= t && **p)
            .count() as f64;
        let fp = scores
            .iter()
            .zip(positive)
            .filter(|(s, p)| **s >= t && !**p)
            .count() as f64;
        let recall = tp / total_pos;
        area += (recall - prev_recall) * (tp / (tp + fp));
        prev_recall = recall;
    }
    area
}

fn labels_col(positive: &[bool]) -> Vec<f64> {
    positive
        .iter()
        .map(|&p| if p { 1.0 } else { 0.0 })
        .collect()
}

fn data() -> impl Strategy<Value = (Vec<f64>, Vec<bool>)> {
    // Scores on a coarse grid so ties are common; make sure both classes occur.
    prop::collection::vec((0u32..=20, any::<bool>()), 2..80).prop_map(|v| {
        let mut scores: Vec<f64> = v.iter().map(|(s, _)| *s as f64 / 20.0).collect();
        let mut pos: Vec<bool> = v.iter().map(|(_, p)| *p).collect();
        pos[0] = true;
        pos[1] = false;
        scores.truncate(pos.len());
        (scores, pos)
    })
}

proptest! {
    #[test]
    fn exact_auc_and_auprc_match_references((scores, pos) in data()) {
        let n = scores.len();
        let mut roc = Roc::new();
        roc.eval(&mat::<f64>(n, 1, &labels_col(&pos)), &mat::<f64>(n, 1, &scores), None).unwrap();
        prop_assert!(close(roc.calculate_auc(), brute_auc(&scores, &pos), 1e-12));
        prop_assert!(close(roc.calculate_auprc(), stepwise_auprc(&scores, &pos), 1e-12));

        // Two-column form, f32, same answer (the grid values are exact in f32 comparisons).
        let two_l: Vec<f64> = pos.iter().flat_map(|&p| if p { [0.0, 1.0] } else { [1.0, 0.0] }).collect();
        let two_p: Vec<f64> = scores.iter().flat_map(|&s| [1.0 - s, s]).collect();
        let mut roc2 = Roc::with_capacity(n);
        roc2.eval(&mat::<f32>(n, 2, &two_l), &mat::<f32>(n, 2, &two_p), None).unwrap();
        prop_assert!(close(roc2.calculate_auc(), roc.calculate_auc(), 1e-12));

        // Scores on the threshold grid: the histogram loses nothing.
        let mut coarse = Roc::with_threshold_steps(20);
        coarse.eval(&mat::<f32>(n, 1, &labels_col(&pos)), &mat::<f32>(n, 1, &scores), None).unwrap();
        prop_assert!(close(coarse.calculate_auc(), roc.calculate_auc(), 1e-12),
            "{} vs {}", coarse.calculate_auc(), roc.calculate_auc());
        prop_assert!(close(coarse.calculate_auprc(), roc.calculate_auprc(), 1e-12));
    }

    #[test]
    fn merge_equals_eval_on_concatenation((scores, pos) in data(), cut in 0usize..80) {
        let n = scores.len();
        let cut = cut.min(n);
        let l = labels_col(&pos);
        for make in [Roc::new as fn() -> Roc, || Roc::with_threshold_steps(20)] {
            let mut whole = make();
            whole.eval(&mat::<f64>(n, 1, &l), &mat::<f64>(n, 1, &scores), None).unwrap();
            let mut a = make();
            a.eval(&mat::<f64>(cut, 1, &l[..cut]), &mat::<f64>(cut, 1, &scores[..cut]), None).unwrap();
            let mut b = make();
            b.eval(&mat::<f64>(n - cut, 1, &l[cut..]), &mat::<f64>(n - cut, 1, &scores[cut..]), None).unwrap();
            a.merge(&b).unwrap();
            prop_assert_eq!(a.calculate_auc(), whole.calculate_auc());
            prop_assert_eq!(a.calculate_auprc(), whole.calculate_auprc());
            prop_assert_eq!(a.num_examples(), n as u64);
        }
    }
}

#[test]
fn hand_computed_auc_with_ties() {
    // Positives 0.8, 0.5; negatives 0.5, 0.2: pairs 1 + 1 + 0.5 + 1 = 3.5 of 4.
    let mut roc = Roc::new();
    roc.eval(
        &mat::<f32>(4, 1, &[1.0, 1.0, 0.0, 0.0]),
        &mat::<f32>(4, 1, &[0.8, 0.5, 0.5, 0.2]),
        None,
    )
    .unwrap();
    assert_eq!(roc.calculate_auc(), 0.875);
    // AUPRC: at 0.8 R=½ P=1; at 0.5 R=1 P=2/3 → ½ + ½·⅔.
    assert_close(roc.calculate_auprc(), 0.5 + 1.0 / 3.0);
    let curve = roc.roc_curve();
    assert_eq!(curve.len(), 4);
    assert_eq!(curve[0].threshold, f64::INFINITY);
    assert_eq!(
        (curve[1].false_positive_rate, curve[1].true_positive_rate),
        (0.0, 0.5)
    );
    assert_eq!(
        (curve[2].false_positive_rate, curve[2].true_positive_rate),
        (0.5, 1.0)
    );
    assert_eq!(
        (curve[3].false_positive_rate, curve[3].true_positive_rate),
        (1.0, 1.0)
    );
    let pr = roc.precision_recall_curve();
    assert_eq!(pr.len(), 3);
    assert_close(pr[1].precision, 2.0 / 3.0);
    assert_eq!(pr[1].recall, 1.0);
    assert_eq!(
        (roc.count_actual_positive(), roc.count_actual_negative()),
        (2, 2)
    );
    let s = roc.stats();
    assert!(
        s.contains("AUC (Area under ROC Curve):                0.8750"),
        "{s}"
    );
    assert!(s.contains("0.8333"), "{s}");
}

#[test]
fn thresholded_mode_buckets_and_curve() {
    let mut roc = Roc::with_threshold_steps(10);
    assert_eq!(roc.threshold_steps(), Some(10));
    // f32 0.7 must meet threshold 0.7; values outside [0, 1] clamp.
    roc.eval(
        &mat::<f32>(4, 1, &[1.0, 0.0, 1.0, 0.0]),
        &mat::<f32>(4, 1, &[0.7, 0.69, 1.5, -0.2]),
        None,
    )
    .unwrap();
    let curve = roc.roc_curve();
    assert_eq!(curve.len(), 12, "start point + 11 thresholds");
    let at = |t: f64| {
        curve
            .iter()
            .find(|p| (p.threshold - t).abs() < 1e-12)
            .copied()
            .unwrap()
    };
    assert_eq!(at(0.7).true_positive_rate, 1.0);
    assert_eq!(at(0.7).false_positive_rate, 0.0);
    assert_eq!(at(0.6).false_positive_rate, 0.5);
    assert_eq!(roc.calculate_auc(), 1.0);
    assert!(roc.stats().contains("thresholded with 10 steps"));
    assert_eq!(Roc::with_threshold_steps(0).threshold_steps(), Some(1));
}

#[test]
fn undefined_without_both_classes() {
    let mut roc = Roc::new();
    assert!(roc.calculate_auc().is_nan());
    roc.eval(
        &mat::<f32>(2, 1, &[1.0, 1.0]),
        &mat::<f32>(2, 1, &[0.3, 0.6]),
        None,
    )
    .unwrap();
    assert!(roc.calculate_auc().is_nan());
    assert_eq!(roc.calculate_auprc(), 1.0);
}

#[test]
fn masks_ignore_masked_examples() {
    let labels = mat::<f64>(4, 1, &[1.0, 0.0, 1.0, 0.0]);
    let scores = mat::<f64>(4, 1, &[0.9, 0.95, 0.4, 0.1]);
    let mut roc = Roc::new();
    roc.eval(
        &labels,
        &scores,
        Some(&vec1::<f64>(&[1.0, 0.0, 1.0, 1.0]).view()),
    )
    .unwrap();
    assert_eq!(roc.num_examples(), 3);
    assert_eq!(roc.calculate_auc(), 1.0);
    let mut roc = Roc::new();
    roc.eval(
        &labels,
        &scores,
        Some(&mat::<f64>(4, 1, &[1.0, 1.0, 0.0, 1.0]).view()),
    )
    .unwrap();
    assert_eq!(roc.calculate_auc(), 0.5);
}

#[test]
fn bad_input() {
    let mut roc = Roc::with_capacity(16);
    let err = roc
        .eval(
            &mat::<f32>(2, 3, &[0.0; 6]),
            &mat::<f32>(2, 3, &[0.0; 6]),
            None,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Roc::eval: inputs have shape [2, 3] (3 columns) but this evaluation has 2 columns: \
         expected [batch, 2]"
    );
    let err = roc
        .eval(
            &mat::<f32>(2, 1, &[0.0, 1.0]),
            &mat::<f32>(2, 1, &[0.5, f64::NAN]),
            None,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Roc::eval: prediction [1, 0] is NaN: expected a probability (the batch was not counted)"
    );
    assert_eq!(roc.num_examples(), 0);
    let err = roc
        .eval(
            &mat::<f32>(2, 1, &[0.0, 1.0]),
            &mat::<f32>(3, 1, &[0.5; 3]),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, EvalError::ShapeMismatch { .. }));
    let err = roc.merge(&Roc::with_threshold_steps(10)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Roc::merge: this ROC is exact but the other is thresholded with 10 steps: expected the \
         same mode (both exact, or both with the same threshold steps)"
    );
    let err = Roc::with_threshold_steps(5)
        .merge(&Roc::with_threshold_steps(10))
        .unwrap_err();
    assert!(
        err.to_string().contains("thresholded with 5 steps"),
        "{err}"
    );
}

#[test]
fn multiclass_one_vs_all() {
    let actual = [0, 1, 2, 2, 1];
    let labels = one_hot::<f32>(3, &actual);
    let preds = mat::<f32>(
        5,
        3,
        &[
            0.6, 0.3, 0.1, //
            0.2, 0.5, 0.3, //
            0.1, 0.6, 0.3, //
            0.2, 0.2, 0.6, //
            0.3, 0.4, 0.3, //
        ],
    );
    for mut roc in [RocMultiClass::new(3), RocMultiClass::with_capacity(0, 64)] {
        roc.eval(&labels, &preds, None).unwrap();
        assert_eq!(roc.num_classes(), 3);
        for c in 0..3 {
            let scores: Vec<f64> = (0..5).map(|i| preds.get(&[i, c]).unwrap() as f64).collect();
            let pos: Vec<bool> = actual.iter().map(|&a| a == c).collect();
            assert_close(roc.calculate_auc(c), brute_auc(&scores, &pos));
            assert_close(roc.calculate_auprc(c), stepwise_auprc(&scores, &pos));
        }
        let avg = (0..3).map(|c| roc.calculate_auc(c)).sum::<f64>() / 3.0;
        assert_close(roc.calculate_average_auc(), avg);
        assert!(roc.calculate_auc(3).is_nan());
        assert!(roc.stats().contains("Average"));
    }
    // Per-output mask drops single (example, class) entries.
    let mut roc = RocMultiClass::with_threshold_steps(3, 10).with_labels(["a", "b", "c"]);
    let mut m = vec![1.0; 15];
    m[2 * 3 + 1] = 0.0; // example 2, class 1
    roc.eval(&labels, &preds, Some(&mat::<f32>(5, 3, &m).view()))
        .unwrap();
    assert_eq!(roc.roc(1).unwrap().num_examples(), 4);
    assert_eq!(roc.roc(0).unwrap().num_examples(), 5);
    assert!(roc.stats().contains('b'));
    let mut other = RocMultiClass::with_threshold_steps(3, 10);
    other.eval(&labels, &preds, None).unwrap();
    roc.merge(&other).unwrap();
    assert_eq!(roc.roc(1).unwrap().num_examples(), 9);
    let before = roc.clone();
    let err = roc.merge(&RocMultiClass::new(3)).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "RocMultiClass::merge: this ROC is thresholded with 10 steps but the other is exact"
        ),
        "{err}"
    );
    assert_eq!(roc, before, "a failed merge changes nothing");
    let err = roc.merge(&RocMultiClass::new(4)).unwrap_err();
    assert!(
        err.to_string().contains("3 classes but the other has 4"),
        "{err}"
    );
    let err = roc
        .eval(&one_hot::<f32>(2, &[0]), &one_hot::<f32>(2, &[0]), None)
        .unwrap_err();
    assert!(matches!(
        err,
        EvalError::ColumnCount {
            expected: 3,
            found: 2,
            ..
        }
    ));
    let dynamic: &dyn IEvaluation<f32> = &roc;
    assert!(dynamic.as_any().downcast_ref::<RocMultiClass>().is_some());
}
