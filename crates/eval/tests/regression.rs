//! `RegressionEvaluation`: metrics against direct formulas, numerical care, masks, merge,
//! stats and bad input.

mod common;

use common::*;
use dl4rs_eval::{EvalError, IEvaluation, RegressionEvaluation};
use proptest::prelude::*;

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Two-pass reference values: (mse, mae, rse, pearson, r2).
fn direct(y: &[f64], p: &[f64]) -> (f64, f64, f64, f64, f64) {
    let n = y.len() as f64;
    let (my, mp) = (mean(y), mean(p));
    let sse: f64 = y.iter().zip(p).map(|(a, b)| (b - a) * (b - a)).sum();
    let sae: f64 = y.iter().zip(p).map(|(a, b)| (b - a).abs()).sum();
    let sst: f64 = y.iter().map(|a| (a - my) * (a - my)).sum();
    let spp: f64 = p.iter().map(|b| (b - mp) * (b - mp)).sum();
    let syp: f64 = y.iter().zip(p).map(|(a, b)| (a - my) * (b - mp)).sum();
    (
        sse / n,
        sae / n,
        sse / sst,
        syp / (sst * spp).sqrt(),
        1.0 - sse / sst,
    )
}

fn columns(data: &[f64], cols: usize, c: usize) -> Vec<f64> {
    data.iter().skip(c).step_by(cols).copied().collect()
}

#[test]
fn hand_computed_two_columns() {
    // Column 0: y = 1 2 3 4, p = 1 2 3 5. Column 1: y = 0 0 1 1, p = 0.5 0 1 0.5.
    let y = [1.0, 0.0, 2.0, 0.0, 3.0, 1.0, 4.0, 1.0];
    let p = [1.0, 0.5, 2.0, 0.0, 3.0, 1.0, 5.0, 0.5];
    let mut ev = RegressionEvaluation::new(2);
    ev.eval(&mat::<f32>(4, 2, &y), &mat::<f32>(4, 2, &p), None)
        .unwrap();
    assert_eq!(ev.count(0), 4);
    assert_close(ev.mean_squared_error(0), 0.25);
    assert_close(ev.mean_absolute_error(0), 0.25);
    assert_close(ev.root_mean_squared_error(0), 0.5);
    assert_close(ev.relative_squared_error(0), 1.0 / 5.0);
    assert_close(ev.r_squared(0), 0.8);
    // Column 1: errors 0.5 0 0 -0.5; SSE 0.5, SST 1.
    assert_close(ev.mean_squared_error(1), 0.125);
    assert_close(ev.mean_absolute_error(1), 0.25);
    assert_close(ev.r_squared(1), 0.5);
    assert_close(ev.relative_squared_error(1), 0.5);
    for c in 0..2 {
        let (mse, mae, rse, pc, r2) = direct(&columns(&y, 2, c), &columns(&p, 2, c));
        assert_close(ev.mean_squared_error(c), mse);
        assert_close(ev.mean_absolute_error(c), mae);
        assert_close(ev.relative_squared_error(c), rse);
        assert_close(ev.pearson_correlation(c), pc);
        assert_close(ev.r_squared(c), r2);
    }
    assert_close(ev.average_mean_squared_error(), 0.1875);
    assert_close(ev.average_r_squared(), 0.65);
    assert_close(
        ev.average_pearson_correlation(),
        (ev.pearson_correlation(0) + ev.pearson_correlation(1)) / 2.0,
    );
}

#[test]
fn large_mean_small_spread_stays_accurate() {
    // Raw sums of y² would cancel catastrophically here.
    let y: Vec<f64> = (0..1000).map(|i| 1e9 + (i % 7) as f64 * 0.25).collect();
    let p: Vec<f64> = y
        .iter()
        .enumerate()
        .map(|(i, v)| v + ((i % 3) as f64 - 1.0) * 0.1)
        .collect();
    let mut ev = RegressionEvaluation::new(1);
    for chunk in 0..10 {
        let r = chunk * 100..(chunk + 1) * 100;
        ev.eval(
            &mat::<f64>(100, 1, &y[r.clone()]),
            &mat::<f64>(100, 1, &p[r]),
            None,
        )
        .unwrap();
    }
    let (mse, _, _, pc, r2) = direct(&y, &p);
    assert!(close(ev.mean_squared_error(0), mse, 1e-6));
    assert!(
        close(ev.r_squared(0), r2, 1e-6),
        "{} vs {r2}",
        ev.r_squared(0)
    );
    assert!(
        close(ev.pearson_correlation(0), pc, 1e-6),
        "{} vs {pc}",
        ev.pearson_correlation(0)
    );
}

proptest! {
    #[test]
    fn merge_equals_eval_on_concatenation(
        data in prop::collection::vec((-10.0f64..10.0, -10.0f64..10.0), 4..60),
        split in 1usize..3,
    ) {
        let n = data.len();
        let cut = n * split / 3;
        let y: Vec<f64> = data.iter().map(|d| d.0).collect();
        let p: Vec<f64> = data.iter().map(|d| d.1).collect();
        let mut whole = RegressionEvaluation::new(1);
        whole.eval(&mat::<f64>(n, 1, &y), &mat::<f64>(n, 1, &p), None).unwrap();
        let mut a = RegressionEvaluation::new(1);
        a.eval(&mat::<f64>(cut, 1, &y[..cut]), &mat::<f64>(cut, 1, &p[..cut]), None).unwrap();
        let mut b = RegressionEvaluation::new(1);
        b.eval(&mat::<f64>(n - cut, 1, &y[cut..]), &mat::<f64>(n - cut, 1, &p[cut..]), None).unwrap();
        a.merge(&b).unwrap();
        prop_assert_eq!(a.count(0), n as u64);
        for (x, w) in [
            (a.mean_squared_error(0), whole.mean_squared_error(0)),
            (a.mean_absolute_error(0), whole.mean_absolute_error(0)),
            (a.r_squared(0), whole.r_squared(0)),
            (a.pearson_correlation(0), whole.pearson_correlation(0)),
        ] {
            prop_assert!(close(x, w, 1e-9), "{} vs {}", x, w);
        }
        let (mse, mae, rse, pc, r2) = direct(&y, &p);
        prop_assert!(close(whole.mean_squared_error(0), mse, 1e-9));
        prop_assert!(close(whole.mean_absolute_error(0), mae, 1e-9));
        prop_assert!(close(whole.relative_squared_error(0), rse, 1e-9));
        prop_assert!(close(whole.pearson_correlation(0), pc, 1e-9));
        prop_assert!(close(whole.r_squared(0), r2, 1e-9));
    }
}

#[test]
fn masks_ignore_masked_entries() {
    let y = [1.0, 10.0, 2.0, 20.0, 3.0, 30.0];
    let p = [1.5, 99.0, 2.0, 21.0, 2.0, 29.0];
    // Per output: drop (0, 1) only.
    let mask = mat::<f32>(3, 2, &[1.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    let mut ev = RegressionEvaluation::new(2);
    ev.eval(
        &mat::<f32>(3, 2, &y),
        &mat::<f32>(3, 2, &p),
        Some(&mask.view()),
    )
    .unwrap();
    assert_eq!((ev.count(0), ev.count(1)), (3, 2));
    assert_close(ev.mean_absolute_error(1), 1.0);
    assert_close(ev.mean_squared_error(0), (0.25 + 0.0 + 1.0) / 3.0);
    // Per example: drop row 2.
    let mut ev = RegressionEvaluation::new(2);
    ev.eval(
        &mat::<f64>(3, 2, &y),
        &mat::<f64>(3, 2, &p),
        Some(&vec1::<f64>(&[1.0, 1.0, 0.0]).view()),
    )
    .unwrap();
    assert_eq!((ev.count(0), ev.count(1)), (2, 2));
    assert_close(ev.mean_absolute_error(0), 0.25);
}

use dl4rs_array::AsView;

#[test]
fn degenerate_columns_are_nan() {
    let ev = RegressionEvaluation::new(2);
    assert!(ev.mean_squared_error(0).is_nan());
    assert!(ev.r_squared(1).is_nan());
    let mut ev = RegressionEvaluation::new(1);
    ev.eval(
        &mat::<f32>(3, 1, &[2.0, 2.0, 2.0]),
        &mat::<f32>(3, 1, &[1.0, 2.0, 3.0]),
        None,
    )
    .unwrap();
    assert!(ev.pearson_correlation(0).is_nan());
    assert!(ev.r_squared(0).is_infinite() || ev.r_squared(0).is_nan());
    assert!(ev.mean_squared_error(5).is_nan(), "out of range column");
}

#[test]
fn stats_columns_sizing_and_errors() {
    let mut ev = RegressionEvaluation::with_column_names(["price", "volume"]);
    ev.eval(
        &mat::<f32>(4, 2, &[1.0, 0.0, 2.0, 0.0, 3.0, 1.0, 4.0, 1.0]),
        &mat::<f32>(4, 2, &[1.0, 0.5, 2.0, 0.0, 3.0, 1.0, 5.0, 0.5]),
        None,
    )
    .unwrap();
    let s = ev.stats();
    for needle in [
        "MSE",
        "MAE",
        "RMSE",
        "RSE",
        "R^2",
        "price",
        "volume",
        "2.50000e-1",
        "0.8000",
        "Average",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in\n{s}");
    }
    let dynamic: &dyn IEvaluation<f32> = &ev;
    assert_eq!(dynamic.stats(), s);

    let mut unsized_ev = RegressionEvaluation::new(0);
    unsized_ev
        .eval(
            &mat::<f64>(1, 3, &[1.0, 2.0, 3.0]),
            &mat::<f64>(1, 3, &[1.0, 2.0, 3.0]),
            None,
        )
        .unwrap();
    assert_eq!(unsized_ev.num_columns(), 3);

    let err = ev
        .eval(
            &mat::<f32>(1, 3, &[0.0; 3]),
            &mat::<f32>(1, 3, &[0.0; 3]),
            None,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "RegressionEvaluation::eval: inputs have shape [1, 3] (3 columns) but this evaluation \
         has 2 columns: expected [batch, 2]"
    );
    let err = ev
        .eval(
            &mat::<f32>(2, 2, &[0.0; 4]),
            &mat::<f32>(1, 2, &[0.0; 2]),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, EvalError::ShapeMismatch { .. }));
    let err = ev.merge(&RegressionEvaluation::new(3)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "RegressionEvaluation::merge: this evaluation has 2 columns but the other has 3: \
         expected equal column counts"
    );
    let err = ev
        .eval(
            &mat::<f32>(2, 2, &[0.0; 4]),
            &mat::<f32>(2, 2, &[0.0; 4]),
            Some(&vec1::<f32>(&[1.0, 1.0, 1.0]).view()),
        )
        .unwrap_err();
    assert!(matches!(err, EvalError::MaskShape { .. }), "{err}");
    ev.reset();
    assert_eq!(ev.count(0), 0);
}
