//! Zero allocation: after 3 warm-up cycles, one cycle of an MLP-shaped forward pass
//! (784 -> 256 -> 128 -> 10, batch 128 and batch 1: gemm + bias + activation + softmax + loss,
//! 24 ops) in a workspace makes 0 heap allocations, on 1 thread and on a 2-thread rayon pool.
//! One test in this binary, so the process-wide count sees only it.

use dl4rs_array::ops::{self, BinaryOp, Unary};
use dl4rs_array::*;
use dl4rs_memory::{CountingAllocator, WorkspaceConfig, get_and_activate_workspace};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

struct Mlp {
    w: [NdArray<f32>; 3],
    b: [NdArray<f32>; 3],
}

fn mlp() -> Mlp {
    let dims = [784, 256, 128, 10];
    let w = [0, 1, 2].map(|i| {
        let scale = (6.0 / dims[i] as f32).sqrt();
        NdArray::rand_uniform(&[dims[i], dims[i + 1]], -scale, scale, 101 + i as u64).unwrap()
    });
    let b = [0, 1, 2].map(|i| NdArray::zeros(&[dims[i + 1]]).unwrap());
    Mlp { w, b }
}

/// One forward + loss cycle; returns the loss so nothing is optimized away.
fn cycle(net: &Mlp, data: &NdArray<f32>, labels: &NdArray<f32>, rows: &[usize]) -> f32 {
    let config = WorkspaceConfig::default();
    let _ws = get_and_activate_workspace(&config, "MLP_FORWARD").unwrap();
    let x = data.gather_rows(rows).unwrap(); // 1
    let y = labels.gather_rows(rows).unwrap(); // 2
    let z1 = x.matmul(&net.w[0]).unwrap().add(&net.b[0]).unwrap(); // 3, 4
    let a1 = z1.relu().unwrap(); // 5
    let mut z2 = NdArray::create_uninitialized(&[rows.len(), 128]).unwrap(); // 6
    ops::gemm_into(1.0, &a1, &net.w[1], 0.0, &mut z2).unwrap(); // 7
    ops::binary_assign(BinaryOp::Add, &mut z2, &net.b[1]).unwrap(); // 8
    ops::unary_assign(Unary::Relu, &mut z2).unwrap(); // 9
    let z3 = z2.matmul(&net.w[2]).unwrap().add(&net.b[2]).unwrap(); // 10, 11
    let p = z3.softmax(1).unwrap(); // 12
    let logp = z3.log_softmax(1).unwrap(); // 13
    let picked = logp.mul(&y).unwrap(); // 14
    let per_example = picked.reduce(Reduction::Sum, 1).unwrap(); // 15
    let loss = -per_example
        .reduce(Reduction::Mean, 0)
        .unwrap()
        .sum()
        .unwrap(); // 16, 17
    let predictions = p.argmax(1).unwrap(); // 18
    let truth = y.argmax(1).unwrap(); // 19
    let diff = predictions.sub(&truth).unwrap().map(Unary::Abs).unwrap(); // 20, 21
    let grad = p
        .sub(&y)
        .unwrap()
        .scalar_op(BinaryOp::Div, rows.len() as f32)
        .unwrap(); // 22, 23
    let t = a1.tanh().unwrap().sigmoid().unwrap(); // 24, 25
    loss + diff.sum().unwrap() * 0.0 + grad.sum().unwrap() * 0.0 + t.sum().unwrap() * 0.0
}

fn measure(net: &Mlp, data: &NdArray<f32>, labels: &NdArray<f32>, rows: &[usize]) -> u64 {
    for _ in 0..3 {
        cycle(net, data, labels, rows);
    }
    let before = ALLOC.allocations();
    let loss = cycle(net, data, labels, rows);
    let after = ALLOC.allocations();
    assert!(loss.is_finite() && loss > 0.0, "loss {loss}");
    after - before
}

#[test]
fn mlp_forward_cycle_allocates_nothing() {
    let net = mlp();
    let n = 512;
    let data = NdArray::<f32>::rand_uniform(&[n, 784], 0.0, 1.0, 42).unwrap();
    let mut onehot = vec![0f32; n * 10];
    for r in 0..n {
        onehot[r * 10 + (dl4rs_array::random::splitmix(43, r as u64) % 10) as usize] = 1.0;
    }
    let labels = NdArray::from_slice(&[n, 10], &onehot).unwrap();
    let batch128: Vec<usize> = (0..128).map(|i| (i * 3) % n).collect();
    let batch1 = [7usize];

    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // Pool workers start asynchronously and allocate while setting up: let every one of them
    // run a job before anything is measured.
    one.broadcast(|_| ());
    two.broadcast(|_| ());
    for (threads, pool) in [(1, &one), (2, &two)] {
        for rows in [&batch128[..], &batch1[..]] {
            let allocations = pool.install(|| measure(&net, &data, &labels, rows));
            assert_eq!(
                allocations,
                0,
                "{allocations} heap allocations in a steady-state cycle (batch {}, {threads} thread(s))",
                rows.len()
            );
        }
    }
    // Control: outside a workspace the same cycle allocates on the heap.
    let before = ALLOC.allocations();
    let x = data.gather_rows(&batch128).unwrap();
    let _z = x.matmul(&net.w[0]).unwrap();
    assert!(ALLOC.allocations() - before >= 2);
}
