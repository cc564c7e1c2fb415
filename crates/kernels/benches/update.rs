//! Criterion: the updater kernels on W1's 235,146 parameters (MLP 784-256-128-10, Adam):
//! one whole Adam step (`adam`, what one model does per batch) against ParallelWrapper's
//! averaging every round, where each of two trainers computes the mean of the contributors'
//! steps on its half (`averaged_step` with 2 gradients; with 3, the tile loops).
//!
//! `cargo bench -p dl4rs-kernels --bench update`

use criterion::{Criterion, criterion_group, criterion_main};
use dl4rs_kernels::update::{Step, adam, averaged_step};

const W1_PARAMS: usize = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10;

fn wave(n: usize, f: f32, scale: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * f).sin() * scale).collect()
}

fn bench(c: &mut Criterion) {
    let n = W1_PARAMS;
    let half = n / 2;
    let mut p = wave(n, 0.001, 1.0);
    let mut m = vec![0.01f32; n];
    let mut v = vec![0.001f32; n];
    let grads: Vec<Vec<f32>> = (0..3)
        .map(|k| wave(n, 0.003 + k as f32 * 0.002, 0.01))
        .collect();
    let step = Step::Adam {
        alpha: 1e-3,
        b1: 0.9,
        b2: 0.999,
        eps: 1e-8,
    };
    let mut g = c.benchmark_group("update W1");
    g.bench_function("adam, whole", |b| {
        b.iter(|| adam(1e-3, 0.9, 0.999, 1e-8, &grads[0], &mut m, &mut v, &mut p).unwrap())
    });
    for count in [2usize, 3] {
        g.bench_function(format!("averaged_step, half, {count} gradients"), |b| {
            b.iter(|| {
                averaged_step(
                    step,
                    None,
                    None,
                    count,
                    |k| &grads[k][..half],
                    1.0 / count as f32,
                    &mut p[..half],
                    &mut m[..half],
                    &mut v[..half],
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
