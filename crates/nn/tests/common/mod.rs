//! The f64 gradient check the test files share: central differences of the score, parameter by
//! parameter, against the analytic gradient backprop computed.

/// Step of the central difference.
pub const EPS: f64 = 1e-6;
/// Largest relative error accepted.
pub const MAX_REL_ERROR: f64 = 1e-5;
/// Absolute error below which a parameter passes whatever its relative error.
pub const MIN_ABS_ERROR: f64 = 1e-8;

/// Checks `analytic[i]` against `(score(p + EPS e_i) - score(p - EPS e_i)) / 2 EPS` for every
/// parameter of `original`; `score_at(p)` sets the parameters to `p` and returns the score.
/// Leaves the parameters set to `original`.
pub fn check_gradients(
    analytic: &[f64],
    original: &[f64],
    mut score_at: impl FnMut(&[f64]) -> f64,
    label: &str,
) {
    assert_eq!(
        analytic.len(),
        original.len(),
        "{label}: one gradient per parameter"
    );
    let mut p = original.to_vec();
    for i in 0..original.len() {
        p[i] = original[i] + EPS;
        let plus = score_at(&p);
        p[i] = original[i] - EPS;
        let minus = score_at(&p);
        p[i] = original[i];
        let numeric = (plus - minus) / (2.0 * EPS);
        let a = analytic[i];
        let abs = (a - numeric).abs();
        let rel = abs / (a.abs() + numeric.abs()).max(1e-300);
        assert!(
            abs < MIN_ABS_ERROR || rel < MAX_REL_ERROR,
            "{label}: parameter {i}: analytic {a:e} vs numeric {numeric:e} (relative error {rel:e})"
        );
    }
    score_at(original);
}
