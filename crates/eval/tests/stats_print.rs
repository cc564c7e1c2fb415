//! Prints every report (run with `--nocapture` to look at them); checks they are non-empty.

mod common;

use common::*;
use dl4rs_eval::{Evaluation, EvaluationBinary, RegressionEvaluation, Roc, RocMultiClass};

#[test]
fn reports_render() {
    let labels = one_hot::<f32>(3, &[0, 0, 0, 0, 1, 1, 2, 2, 2, 2]);
    let preds = outputs::<f32>(3, &[0, 0, 0, 1, 0, 1, 0, 1, 2, 2]);
    let mut ev = Evaluation::with_labels(["cat", "dog", "bird"]).with_top_n(2);
    ev.eval(&labels, &preds, None).unwrap();
    let mut reg = RegressionEvaluation::new(3);
    reg.eval(&labels, &preds, None).unwrap();
    let mut bin = EvaluationBinary::new(3);
    bin.eval(&labels, &preds, None).unwrap();
    let mut multi = RocMultiClass::new(3);
    multi.eval(&labels, &preds, None).unwrap();
    let mut roc = Roc::with_threshold_steps(10);
    roc.eval(
        &mat::<f32>(4, 1, &[1.0, 1.0, 0.0, 0.0]),
        &mat::<f32>(4, 1, &[0.8, 0.5, 0.5, 0.2]),
        None,
    )
    .unwrap();
    for s in [
        ev.stats(),
        reg.stats(),
        bin.stats(),
        multi.stats(),
        roc.stats(),
    ] {
        println!("{s}\n");
        assert!(s.lines().count() > 1);
    }
}
