//! One MLP-shaped forward cycle (784 -> 256 -> 128 -> 10 with bias, ReLU and softmax, batch 128
//! and batch 1) with every intermediate array in a workspace vs on the heap.
//!
//! `cargo bench -p dl4rs-array --bench mlp_cycle`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dl4rs_array::{ArrayOps, AsView, NdArray};
use dl4rs_memory::{WorkspaceConfig, get_and_activate_workspace};

struct Mlp {
    w: Vec<NdArray<f32>>,
    b: Vec<NdArray<f32>>,
}

fn mlp() -> Mlp {
    let dims = [784, 256, 128, 10];
    Mlp {
        w: (0..3)
            .map(|i| NdArray::rand_uniform(&[dims[i], dims[i + 1]], -0.1, 0.1, i as u64).unwrap())
            .collect(),
        b: (0..3)
            .map(|i| NdArray::zeros(&[dims[i + 1]]).unwrap())
            .collect(),
    }
}

fn forward(net: &Mlp, x: &impl AsView<f32>) -> f32 {
    let a1 = x
        .matmul(&net.w[0])
        .unwrap()
        .add(&net.b[0])
        .unwrap()
        .relu()
        .unwrap();
    let a2 = a1
        .matmul(&net.w[1])
        .unwrap()
        .add(&net.b[1])
        .unwrap()
        .relu()
        .unwrap();
    let p = a2
        .matmul(&net.w[2])
        .unwrap()
        .add(&net.b[2])
        .unwrap()
        .softmax(1)
        .unwrap();
    p.get(&[0, 0]).unwrap()
}

fn bench(c: &mut Criterion) {
    let net = mlp();
    let data = NdArray::<f32>::rand_uniform(&[128, 784], 0.0, 1.0, 9).unwrap();
    let config = WorkspaceConfig::default();
    let mut group = c.benchmark_group("mlp_forward_cycle");
    for batch in [128usize, 1] {
        let x = data.view().slice_axis(0, 0, batch, 1).unwrap();
        group.bench_with_input(BenchmarkId::new("workspace", batch), &x, |b, x| {
            b.iter(|| {
                let _cycle = get_and_activate_workspace(&config, "MLP_BENCH").unwrap();
                std::hint::black_box(forward(&net, x))
            })
        });
        group.bench_with_input(BenchmarkId::new("heap", batch), &x, |b, x| {
            b.iter(|| std::hint::black_box(forward(&net, x)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
