//! `gemm_bias_act` (the product with its bias + activation epilogue fused) against `gemm`
//! followed by `bias_act`, bit for bit, on every dispatch path the CPU has: shapes that take
//! each of the product's routes (m == 1, the transposed narrow product, several MC and KC
//! blocks, blocks split over threads), operands transposed or not, B pre-packed or not, 1
//! thread, 2 rayon tasks and a 2-thread team, with and without `pre`. Bad arguments are
//! errors.

use std::sync::{Mutex, MutexGuard, OnceLock};

use dl4rs_kernels::{
    Dispatch, Float, KernelError, KernelTeam, MatMut, MatRef, Parallelism, Unary,
    available_dispatches, bias_act, gemm, gemm_bias_act, gemm_scratch_len, pack_b, packed_b_len,
    set_dispatch,
};

static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn team2() -> &'static KernelTeam {
    static TEAM: OnceLock<KernelTeam> = OnceLock::new();
    TEAM.get_or_init(|| KernelTeam::new(2))
}

fn pool2() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
    })
}

fn fill<T: Float>(n: usize, seed: u64) -> Vec<T> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            T::from_f64((s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0)
        })
        .collect()
}

fn bits<T: Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

/// (m, k, n): m == 1, narrow n (computed transposed), KC-deep blocks (k > 256), several MC
/// blocks (m > 144), W1's layer shapes, and small edge tiles.
const SHAPES: [(usize, usize, usize); 9] = [
    (1, 200, 300),
    (7, 33, 3),
    (128, 128, 10),
    (37, 300, 270),
    (300, 40, 70),
    (128, 784, 256),
    (128, 256, 128),
    (13, 65, 31),
    (6, 1, 1),
];

fn acts<T: Float>() -> [Unary<T>; 5] {
    [
        Unary::Identity,
        Unary::Relu,
        Unary::Tanh,
        Unary::Sigmoid,
        Unary::LeakyRelu(T::from_f64(0.01)),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Run {
    One,
    Rayon2,
    Team2,
}

/// `(c, pre)` of the fused product with operands laid out as `(a_t, b_t)` say.
#[allow(clippy::too_many_arguments)]
fn fused<T: Float>(
    (m, k, n): (usize, usize, usize),
    (a_t, b_t): (bool, bool),
    act: Unary<T>,
    with_pre: bool,
    packed: bool,
    how: Run,
) -> (Vec<T>, Vec<T>) {
    let (a, b, bias) = (fill::<T>(m * k, 1), fill::<T>(k * n, 2), fill::<T>(n, 3));
    let av = if a_t {
        MatRef::row_major(&a, k, m).unwrap().t()
    } else {
        MatRef::row_major(&a, m, k).unwrap()
    };
    let bv = if b_t {
        MatRef::row_major(&b, n, k).unwrap().t()
    } else {
        MatRef::row_major(&b, k, n).unwrap()
    };
    let par = match how {
        Run::One => Parallelism::None,
        Run::Rayon2 => Parallelism::Rayon(2),
        Run::Team2 => Parallelism::Team(team2()),
    };
    let mut scratch = vec![T::ZERO; gemm_scratch_len::<T>(m, n, k, par)];
    let mut packing = vec![T::ZERO; packed_b_len::<T>(k, n)];
    let pb = packed.then(|| pack_b(bv, &mut packing).unwrap());
    // NaN in C and pre: the fused product must write every element without reading it.
    let (mut c, mut pre) = (
        vec![T::from_f64(f64::NAN); m * n],
        vec![T::from_f64(f64::NAN); m * n],
    );
    let mut go = || {
        let pre = with_pre.then(|| MatMut::row_major(&mut pre, m, n).unwrap());
        let cv = MatMut::row_major(&mut c, m, n).unwrap();
        gemm_bias_act(av, bv, pb.as_ref(), &bias, act, pre, cv, &mut scratch, par).unwrap();
    };
    match how {
        Run::Rayon2 => pool2().install(go),
        _ => go(),
    }
    (c, if with_pre { pre } else { Vec::new() })
}

/// The unfused reference: gemm, then bias_act.
fn unfused<T: Float>(
    (m, k, n): (usize, usize, usize),
    (a_t, b_t): (bool, bool),
    act: Unary<T>,
    with_pre: bool,
) -> (Vec<T>, Vec<T>) {
    let (a, b, bias) = (fill::<T>(m * k, 1), fill::<T>(k * n, 2), fill::<T>(n, 3));
    let av = if a_t {
        MatRef::row_major(&a, k, m).unwrap().t()
    } else {
        MatRef::row_major(&a, m, k).unwrap()
    };
    let bv = if b_t {
        MatRef::row_major(&b, n, k).unwrap().t()
    } else {
        MatRef::row_major(&b, k, n).unwrap()
    };
    let mut scratch = vec![T::ZERO; gemm_scratch_len::<T>(m, n, k, Parallelism::None)];
    let mut c = vec![T::ZERO; m * n];
    let cv = MatMut::row_major(&mut c, m, n).unwrap();
    gemm(T::ONE, av, bv, T::ZERO, cv, &mut scratch, Parallelism::None).unwrap();
    let mut pre = vec![T::ZERO; m * n];
    bias_act(&mut c, m, n, &bias, act, with_pre.then_some(&mut pre[..])).unwrap();
    (c, if with_pre { pre } else { Vec::new() })
}

fn path_checks<T: Float>(d: Dispatch) {
    for &shape in &SHAPES {
        for layout in [(false, false), (true, false), (false, true)] {
            for (ai, act) in acts::<T>().into_iter().enumerate() {
                let with_pre = ai % 2 == 1;
                let want = unfused::<T>(shape, layout, act, with_pre);
                for how in [Run::One, Run::Rayon2, Run::Team2] {
                    for packed in [false, true] {
                        let got = fused::<T>(shape, layout, act, with_pre, packed, how);
                        let same = bits(&got.0) == bits(&want.0) && bits(&got.1) == bits(&want.1);
                        assert!(
                            same,
                            "{d:?} {}: {shape:?} layout {layout:?} {act:?} pre={with_pre} \
                             {how:?} packed={packed}: fused differs from gemm + bias_act",
                            std::any::type_name::<T>()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn fused_equals_gemm_then_bias_act_on_every_path() {
    let _g = lock();
    for &d in available_dispatches() {
        set_dispatch(d).unwrap();
        path_checks::<f32>(d);
        path_checks::<f64>(d);
    }
    set_dispatch(Dispatch::Auto).unwrap();
}

#[test]
fn bad_arguments_are_errors() {
    let _g = lock();
    let (a, b) = (fill::<f32>(6, 1), fill::<f32>(6, 2));
    let av = MatRef::row_major(&a, 2, 3).unwrap();
    let bv = MatRef::row_major(&b, 3, 2).unwrap();
    let mut scratch = vec![0.0f32; gemm_scratch_len::<f32>(2, 2, 3, Parallelism::None)];
    let mut c = vec![0.0f32; 8];
    let par = Parallelism::None;
    // A bias of the wrong length.
    let cv = MatMut::row_major(&mut c[..4], 2, 2).unwrap();
    let err = gemm_bias_act(
        av,
        bv,
        None,
        &[0.0; 3],
        Unary::Relu,
        None,
        cv,
        &mut scratch,
        par,
    );
    assert!(
        matches!(
            err,
            Err(KernelError::Length {
                expected: 2,
                found: 3,
                ..
            })
        ),
        "{err:?}"
    );
    // C with a column stride.
    let cv = MatMut::new(&mut c, 2, 2, 4, 2).unwrap();
    let err = gemm_bias_act(
        av,
        bv,
        None,
        &[0.0; 2],
        Unary::Relu,
        None,
        cv,
        &mut scratch,
        par,
    );
    assert!(
        matches!(err, Err(KernelError::InvalidArgument { .. })),
        "{err:?}"
    );
    // pre of another shape.
    let mut pre = vec![0.0f32; 6];
    let (c4, _) = c.split_at_mut(4);
    let cv = MatMut::row_major(c4, 2, 2).unwrap();
    let pv = MatMut::row_major(&mut pre, 2, 3).unwrap();
    let err = gemm_bias_act(
        av,
        bv,
        None,
        &[0.0; 2],
        Unary::Relu,
        Some(pv),
        cv,
        &mut scratch,
        par,
    );
    assert!(
        matches!(err, Err(KernelError::OutputShape { .. })),
        "{err:?}"
    );
    // B packed from another matrix.
    let other = fill::<f32>(8, 3);
    let mut packing = vec![0.0f32; packed_b_len::<f32>(4, 2)];
    let pb = pack_b(MatRef::row_major(&other, 4, 2).unwrap(), &mut packing).unwrap();
    let cv = MatMut::row_major(&mut c[..4], 2, 2).unwrap();
    let err = gemm_bias_act(
        av,
        bv,
        Some(&pb),
        &[0.0; 2],
        Unary::Relu,
        None,
        cv,
        &mut scratch,
        par,
    );
    assert!(
        matches!(err, Err(KernelError::InvalidArgument { .. })),
        "{err:?}"
    );
}
