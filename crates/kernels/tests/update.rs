//! The updaters of `dl4rs_kernels::update` on every dispatch path the CPU has give the bits of
//! the plain scalar formulas (what the nn crate's loops computed before they moved here), on
//! lengths around every vector width; bad lengths are errors. State decaying under a zero
//! gradient is flushed to 0 instead of turning subnormal, with the parameters' bits
//! unchanged. Only one test sets the dispatch, so nothing in this binary races with it.

mod common;
use common::*;

use dl4rs_kernels::update::{adagrad, adam, l1_l2, nesterovs, rmsprop, sgd, weight_decay};
use dl4rs_kernels::{Dispatch, KernelError, available_dispatches, set_dispatch};

fn data(n: usize, seed: u64) -> Vec<f32> {
    fill_scaled(n, seed, 0.5)
}

const LR: f32 = 0.1;
const MU: f32 = 0.9;
const B1: f32 = 0.9;
const B2: f32 = 0.999;
const EPS: f32 = 1e-8;

/// Fills its first argument with every updater's results from (g, s, t, p).
type Updaters = dyn Fn(&mut Vec<Vec<f32>>, &[f32], &[f32], &[f32], &[f32]);

/// Each updater's results, computed by `f` from the same starting slices.
fn results(n: usize, f: &Updaters) -> Vec<Vec<f32>> {
    let (g, s, t, p) = (data(n, 1), data(n, 2), data(n, 3), data(n, 4));
    let t: Vec<f32> = t.iter().map(|x| x.abs()).collect();
    let mut out = Vec::new();
    f(&mut out, &g, &s, &t, &p);
    out
}

/// One step of the plain formulas, in place.
fn plain_nesterovs(g: &[f32], v: &mut [f32], p: &mut [f32]) {
    for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
        let prev = *v;
        *v = MU * prev - LR * g;
        *p += -MU * prev + (1.0 + MU) * *v;
    }
}

fn plain_adam(g: &[f32], m: &mut [f32], v: &mut [f32], p: &mut [f32]) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m = B1 * *m + (1.0 - B1) * g;
        *v = B2 * *v + (1.0 - B2) * g * g;
        *p -= LR * *m / (v.sqrt() + EPS);
    }
}

fn plain_rmsprop(g: &[f32], c: &mut [f32], p: &mut [f32]) {
    for ((p, &g), c) in p.iter_mut().zip(g).zip(c.iter_mut()) {
        *c = MU * *c + (1.0 - MU) * g * g;
        *p -= LR * g / (*c + EPS).sqrt();
    }
}

fn scalar(out: &mut Vec<Vec<f32>>, g0: &[f32], s0: &[f32], t0: &[f32], p0: &[f32]) {
    let mut p = p0.to_vec();
    p.iter_mut().zip(g0).for_each(|(p, &g)| *p -= LR * g);
    out.push(p);
    let (mut p, mut v) = (p0.to_vec(), s0.to_vec());
    plain_nesterovs(g0, &mut v, &mut p);
    out.extend([p, v]);
    let (mut p, mut m, mut v) = (p0.to_vec(), s0.to_vec(), t0.to_vec());
    plain_adam(g0, &mut m, &mut v, &mut p);
    out.extend([p, m, v]);
    let (mut p, mut c) = (p0.to_vec(), t0.to_vec());
    plain_rmsprop(g0, &mut c, &mut p);
    out.extend([p, c]);
    let (mut p, mut h) = (p0.to_vec(), t0.to_vec());
    for ((p, &g), h) in p.iter_mut().zip(g0).zip(h.iter_mut()) {
        *h += g * g;
        *p -= LR * g / (h.sqrt() + EPS);
    }
    out.extend([p, h]);
    let mut g = g0.to_vec();
    for (g, &p) in g.iter_mut().zip(p0) {
        let sign = if p > 0.0 {
            1.0
        } else if p < 0.0 {
            -1.0
        } else {
            0.0
        };
        *g += 0.01 * p + 0.001 * sign;
    }
    out.push(g);
    let mut p = p0.to_vec();
    p.iter_mut().for_each(|p| *p -= 0.05 * *p);
    out.push(p);
}

fn kernels(out: &mut Vec<Vec<f32>>, g0: &[f32], s0: &[f32], t0: &[f32], p0: &[f32]) {
    let mut p = p0.to_vec();
    sgd(LR, g0, &mut p).unwrap();
    out.push(p);
    let (mut p, mut v) = (p0.to_vec(), s0.to_vec());
    nesterovs(LR, MU, g0, &mut v, &mut p).unwrap();
    out.extend([p, v]);
    let (mut p, mut m, mut v) = (p0.to_vec(), s0.to_vec(), t0.to_vec());
    adam(LR, B1, B2, EPS, g0, &mut m, &mut v, &mut p).unwrap();
    out.extend([p, m, v]);
    let (mut p, mut c) = (p0.to_vec(), t0.to_vec());
    rmsprop(LR, MU, EPS, g0, &mut c, &mut p).unwrap();
    out.extend([p, c]);
    let (mut p, mut h) = (p0.to_vec(), t0.to_vec());
    adagrad(LR, EPS, g0, &mut h, &mut p).unwrap();
    out.extend([p, h]);
    let mut g = g0.to_vec();
    l1_l2(0.001, 0.01, p0, &mut g).unwrap();
    out.push(g);
    let mut p = p0.to_vec();
    weight_decay(0.05, &mut p);
    out.push(p);
}

#[test]
fn every_path_gives_the_scalar_formulas_bits() {
    for n in [0usize, 1, 7, 16, 33, 257] {
        let want = results(n, &scalar);
        for &d in available_dispatches() {
            set_dispatch(d).unwrap();
            let got = results(n, &kernels);
            assert_eq!(want.len(), got.len());
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                assert_eq!(bits(w), bits(g), "{d:?} n={n}: result {i} differs");
            }
        }
        set_dispatch(Dispatch::Auto).unwrap();
    }
    // State decaying through the subnormals (gradient 0), on every path.
    let want = decayed(&mut |_, _, _, _, _| {});
    let plain = decayed_plain();
    for &d in available_dispatches() {
        set_dispatch(d).unwrap();
        let got = decayed(&mut |m, v, nv, c, step| {
            for (what, xs) in [
                ("adam m", m),
                ("adam v", v),
                ("nesterovs v", nv),
                ("rmsprop c", c),
            ] {
                assert!(
                    xs.iter().all(|x| !x.is_subnormal()),
                    "{d:?} step {step}: {what} holds a subnormal"
                );
            }
        });
        set_dispatch(Dispatch::Auto).unwrap();
        // The parameters have the bits of the plain formulas, which kept the subnormals:
        // what the flush drops is far below a parameter's rounding.
        for i in 0..3 {
            assert_eq!(
                bits(&got[i]),
                bits(&plain[i]),
                "{d:?}: parameters {i} differ"
            );
        }
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(
                bits(w),
                bits(g),
                "{d:?}: decayed result {i} differs between paths"
            );
        }
        // Momentum-like state (factor 0.9 a step) ended at exactly 0; Adam's v (0.999) is
        // still normal.
        for xs in [&got[3], &got[5], &got[6]] {
            assert!(xs.iter().all(|&x| x == 0.0), "{d:?}: {xs:?}");
        }
    }
}

const DECAY_STEPS: usize = 2500;

/// Sees Adam's m and v, Nesterovs' v and RmsProp's cache after a step (the step's index last).
type StateCheck<'a> = dyn FnMut(&[f32], &[f32], &[f32], &[f32], usize) + 'a;

/// Starting states from 1e-3 down to 1e-35 (33 values, lengths past every vector width).
fn decay_start() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let s: Vec<f32> = (0..33).map(|i| 10f32.powi(-3 - i)).collect();
    let p: Vec<f32> = (0..33).map(|i| 0.5 - 0.01 * i as f32).collect();
    (vec![0.0; 33], s, p)
}

/// Adam, Nesterovs and RmsProp for `DECAY_STEPS` steps of gradient 0; `check` sees the
/// states after each step. Returns the three parameter vectors, then the states.
fn decayed(check: &mut StateCheck<'_>) -> Vec<Vec<f32>> {
    let (g, s, p0) = decay_start();
    let (mut pa, mut m, mut v) = (p0.clone(), s.clone(), s.clone());
    let (mut pn, mut nv) = (p0.clone(), s.clone());
    let (mut pr, mut c) = (p0, s);
    for step in 0..DECAY_STEPS {
        adam(LR, B1, B2, EPS, &g, &mut m, &mut v, &mut pa).unwrap();
        nesterovs(LR, MU, &g, &mut nv, &mut pn).unwrap();
        rmsprop(LR, MU, EPS, &g, &mut c, &mut pr).unwrap();
        check(&m, &v, &nv, &c, step);
    }
    vec![pa, pn, pr, m, v, nv, c]
}

/// The parameters of [`decayed`] from the plain formulas, subnormals kept.
fn decayed_plain() -> Vec<Vec<f32>> {
    let (g, s, p0) = decay_start();
    let (mut pa, mut m, mut v) = (p0.clone(), s.clone(), s.clone());
    let (mut pn, mut nv) = (p0.clone(), s.clone());
    let (mut pr, mut c) = (p0, s);
    for _ in 0..DECAY_STEPS {
        plain_adam(&g, &mut m, &mut v, &mut pa);
        plain_nesterovs(&g, &mut nv, &mut pn);
        plain_rmsprop(&g, &mut c, &mut pr);
    }
    vec![pa, pn, pr]
}

#[test]
fn mismatched_lengths_are_errors() {
    let (g, mut p, mut v) = ([0.0f32; 3], [0.0f32; 4], [0.0f32; 4]);
    assert!(matches!(
        sgd(0.1, &g, &mut p),
        Err(KernelError::Length {
            expected: 4,
            found: 3,
            ..
        })
    ));
    assert!(nesterovs(0.1, 0.9, &[0.0; 4], &mut v[..2], &mut p).is_err());
    assert!(l1_l2(0.1, 0.1, &[0.0; 2], &mut p).is_err());
}
