//! `update::averaged_step`, the mean of several updater steps from the same parameters and
//! state, gives on every dispatch path the bits of stepping a copy per gradient with the
//! in-place passes (`l1_l2`, the updater, `weight_decay`) and averaging the copies: the first
//! as it is, the others added in order, the sum scaled. Every updater, with and without the
//! regularization, 1 to 3 gradients, lengths around the tile and the vector widths; bad
//! arguments are errors. The only test here sets the dispatch.

mod common;
use common::*;

use dl4rs_kernels::update::{
    Step, adagrad, adam, averaged_step, l1_l2, nesterovs, rmsprop, sgd, weight_decay,
};
use dl4rs_kernels::{Dispatch, available_dispatches, set_dispatch};

/// Parameters and the two state arrays.
type Arrays = (Vec<f32>, Vec<f32>, Vec<f32>);

/// One in-place step of `step` on copies of `(p, s0, s1)` with gradient `g`.
fn stepped(
    step: Step<f32>,
    reg: (Option<(f32, f32)>, Option<f32>),
    g: &[f32],
    (p, s0, s1): (&[f32], &[f32], &[f32]),
) -> Arrays {
    let (mut p, mut s0, mut s1, mut g) = (p.to_vec(), s0.to_vec(), s1.to_vec(), g.to_vec());
    if let Some((l1, l2)) = reg.0 {
        l1_l2(l1, l2, &p, &mut g).unwrap();
    }
    match step {
        Step::Sgd { lr } => sgd(lr, &g, &mut p).unwrap(),
        Step::Nesterovs { lr, mu } => nesterovs(lr, mu, &g, &mut s0, &mut p).unwrap(),
        Step::Adam { alpha, b1, b2, eps } => {
            adam(alpha, b1, b2, eps, &g, &mut s0, &mut s1, &mut p).unwrap()
        }
        Step::RmsProp { lr, decay, eps } => rmsprop(lr, decay, eps, &g, &mut s0, &mut p).unwrap(),
        Step::AdaGrad { lr, eps } => adagrad(lr, eps, &g, &mut s0, &mut p).unwrap(),
        Step::NoOp => {}
    }
    if let Some(k) = reg.1 {
        weight_decay(k, &mut p);
    }
    (p, s0, s1)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn the_averaged_step_is_the_mean_of_the_in_place_steps_on_every_path() {
    let steps = [
        Step::Sgd { lr: 0.1 },
        Step::Nesterovs { lr: 0.1, mu: 0.9 },
        Step::Adam {
            alpha: 0.01,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
        },
        Step::RmsProp {
            lr: 0.01,
            decay: 0.95,
            eps: 1e-8,
        },
        Step::AdaGrad {
            lr: 0.01,
            eps: 1e-6,
        },
        Step::NoOp,
    ];
    let regs = [
        (None, None),
        (Some((0.001, 0.01)), None),
        (None, Some(0.003)),
        (Some((0.001, 0.01)), Some(0.003)),
    ];
    for &d in available_dispatches() {
        set_dispatch(d).unwrap();
        for n in [1, 15, 63, 64, 65, 200, 256, 257, 600] {
            let p = fill_scaled::<f32>(n, 1, 1.0);
            let grads: Vec<Vec<f32>> = (0..3).map(|c| fill_scaled(n, 10 + c, 0.5)).collect();
            for step in steps {
                let states = step.states();
                let s0: Vec<f32> = if states > 0 {
                    fill_scaled::<f32>(n, 2, 0.1)
                        .iter()
                        .map(|x| x.abs())
                        .collect()
                } else {
                    Vec::new()
                };
                let s1: Vec<f32> = if states > 1 {
                    fill_scaled::<f32>(n, 3, 0.1)
                        .iter()
                        .map(|x| x.abs())
                        .collect()
                } else {
                    Vec::new()
                };
                for reg in regs {
                    for count in 1..=3 {
                        let scale = 1.0 / count as f32;
                        let copies: Vec<_> = grads[..count]
                            .iter()
                            .map(|g| stepped(step, reg, g, (&p, &s0, &s1)))
                            .collect();
                        let mean = |pick: fn(&Arrays) -> &Vec<f32>| {
                            let len = pick(&copies[0]).len();
                            (0..len)
                                .map(|i| {
                                    let sum = copies[1..]
                                        .iter()
                                        .fold(pick(&copies[0])[i], |a, c| a + pick(c)[i]);
                                    scale * sum
                                })
                                .collect::<Vec<f32>>()
                        };
                        let (mut q, mut t0, mut t1) = (p.clone(), s0.clone(), s1.clone());
                        let grad = |c: usize| &grads[c][..];
                        averaged_step(
                            step, reg.0, reg.1, count, grad, scale, &mut q, &mut t0, &mut t1,
                        )
                        .unwrap();
                        let what = format!("{d:?} n={n} {step:?} {reg:?} count={count}");
                        assert_eq!(bits(&q), bits(&mean(|c| &c.0)), "params, {what}");
                        assert_eq!(bits(&t0), bits(&mean(|c| &c.1)), "state 0, {what}");
                        assert_eq!(bits(&t1), bits(&mean(|c| &c.2)), "state 1, {what}");
                    }
                }
            }
        }
    }
    set_dispatch(Dispatch::Auto).unwrap();

    // Bad arguments.
    let adam = Step::Adam {
        alpha: 0.01,
        b1: 0.9,
        b2: 0.999,
        eps: 1e-8,
    };
    let g = [0.0f32; 4];
    let (mut p, mut m, mut v) = ([0.0f32; 4], [0.0f32; 4], [0.0f32; 4]);
    let e = averaged_step(adam, None, None, 0, |_| &g[..], 1.0, &mut p, &mut m, &mut v);
    assert!(e.unwrap_err().to_string().contains("at least one gradient"));
    let e = averaged_step(
        adam,
        None,
        None,
        1,
        |_| &g[..3],
        1.0,
        &mut p,
        &mut m,
        &mut v,
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "averaged_step: gradient has length 3 but 4 was expected"
    );
    let e = averaged_step(
        adam,
        None,
        None,
        1,
        |_| &g[..],
        1.0,
        &mut p,
        &mut [],
        &mut v,
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "averaged_step: s0 has length 0 but 4 was expected"
    );
}
