//! Property: a random sequence of operations gives bit-identical results whether its arrays
//! live on the heap or in a workspace (or a workspace in SpillEverything debug mode), for f32
//! and f64. Storage must never change a result.

use dl4rs_array::ops::{self, BinaryOp, Unary};
use dl4rs_array::*;
use dl4rs_memory::{DebugMode, WorkspaceConfig, get_and_activate_workspace, set_debug_mode};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    MatmulRight(usize, bool),
    AddRow,
    MulCol,
    Unary(u8),
    Softmax,
    LogSoftmax,
    ReduceThenBroadcast(bool),
    Gather(Vec<usize>),
    ConcatSelf,
    Transposed,
    Scalar(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..40usize, any::<bool>()).prop_map(|(n, t)| Op::MatmulRight(n, t)),
        Just(Op::AddRow),
        Just(Op::MulCol),
        (0u8..8).prop_map(Op::Unary),
        Just(Op::Softmax),
        Just(Op::LogSoftmax),
        any::<bool>().prop_map(Op::ReduceThenBroadcast),
        proptest::collection::vec(0..64usize, 1..12).prop_map(Op::Gather),
        Just(Op::ConcatSelf),
        Just(Op::Transposed),
        (0u8..4).prop_map(Op::Scalar),
    ]
}

fn unary_of<T: DataType>(i: u8) -> Unary<T> {
    match i {
        0 => Unary::Relu,
        1 => Unary::Tanh,
        2 => Unary::Sigmoid,
        3 => Unary::Exp,
        4 => Unary::Gelu,
        5 => Unary::Softplus,
        6 => Unary::Abs,
        _ => Unary::LeakyRelu(T::from_f64(0.01)),
    }
}

/// Applies the program to a seeded input and returns the final values.
fn run<T: DataType>(rows: usize, cols: usize, seed: u64, program: &[Op]) -> Vec<T> {
    let lo = T::from_f64(-1.0);
    let hi = T::from_f64(1.0);
    let mut x = NdArray::<T>::rand_uniform(&[rows, cols], lo, hi, seed).unwrap();
    for (step, op) in program.iter().enumerate() {
        let (r, c) = (x.shape()[0], x.shape()[1]);
        if r * c > 20_000 {
            break;
        }
        let s = seed + step as u64 + 1;
        x = match op {
            Op::MatmulRight(n, transposed) => {
                if *transposed {
                    let w = NdArray::<T>::rand_uniform(&[*n, c], lo, hi, s).unwrap();
                    x.matmul(&w.view().t()).unwrap()
                } else {
                    let w = NdArray::<T>::rand_uniform(&[c, *n], lo, hi, s).unwrap();
                    x.matmul(&w).unwrap()
                }
            }
            Op::AddRow => x
                .add(&NdArray::<T>::rand_uniform(&[c], lo, hi, s).unwrap())
                .unwrap(),
            Op::MulCol => x
                .mul(&NdArray::<T>::rand_uniform(&[r, 1], lo, hi, s).unwrap())
                .unwrap(),
            Op::Unary(i) => x.map(unary_of(*i)).unwrap(),
            Op::Softmax => x.softmax(1).unwrap(),
            Op::LogSoftmax => x.log_softmax(0).unwrap(),
            Op::ReduceThenBroadcast(mean) => {
                let how = if *mean {
                    Reduction::Mean
                } else {
                    Reduction::Sum
                };
                let red = x.reduce(how, 0).unwrap();
                x.sub(&red).unwrap()
            }
            Op::Gather(idx) => {
                let idx: Vec<usize> = idx.iter().map(|i| i % r).collect();
                x.gather_rows(&idx).unwrap()
            }
            Op::ConcatSelf => ops::concat(&[x.view(), x.view()], 0).unwrap(),
            Op::Transposed => x.view().t().dup().unwrap(),
            Op::Scalar(i) => {
                let op = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div][*i as usize];
                x.scalar_op(op, T::from_f64(1.5)).unwrap()
            }
        };
    }
    x.to_vec().unwrap()
}

fn bits_equal<T: DataType>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits())
}

fn check<T: DataType>(rows: usize, cols: usize, seed: u64, program: &[Op]) {
    let heap = run::<T>(rows, cols, seed, program);
    let config = WorkspaceConfig::default();
    let in_workspace = {
        // Twice, so the second pass runs from the learned block, not spills.
        for _ in 0..2 {
            let _ws = get_and_activate_workspace(&config, "EQUIV").unwrap();
            let v = run::<T>(rows, cols, seed, program);
            assert!(bits_equal(&heap, &v), "workspace result differs from heap");
        }
        set_debug_mode(DebugMode::SpillEverything);
        let _ws = get_and_activate_workspace(&config, "EQUIV").unwrap();
        let v = run::<T>(rows, cols, seed, program);
        set_debug_mode(DebugMode::Disabled);
        v
    };
    assert!(
        bits_equal(&heap, &in_workspace),
        "spilled result differs from heap"
    );
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn heap_and_workspace_are_bit_identical(
        rows in 1..40usize,
        cols in 1..40usize,
        seed in any::<u32>(),
        program in proptest::collection::vec(op(), 1..8),
    ) {
        check::<f32>(rows, cols, u64::from(seed), &program);
        check::<f64>(rows, cols, u64::from(seed), &program);
    }
}
