//! gemm against a naive triple loop: random shapes, layouts, transposes, alpha/beta, every
//! dispatch path this CPU has, 1 and 2 threads; plus bit-exactness across thread counts and
//! slice offsets, and error cases.

// Reference loops index (i, j, p) like the math they check; the helpers take a full case.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

mod common;
use common::*;

use dl4rs_kernels::{
    Dispatch, Float, KernelError, MatMut, MatRef, Parallelism, available_dispatches, gemm,
    gemm_scratch_len, set_dispatch,
};
use proptest::prelude::*;

/// Storage layouts for an operand: how a logical rows x cols matrix is laid out.
#[derive(Debug, Clone, Copy)]
enum Layout {
    RowMajor,
    ColMajor,
    /// Row-major with padded rows and a column stride of 2.
    Strided,
    /// Stored as the transpose (cols x rows row-major), viewed through `.t()`.
    Transposed,
}

/// Owns the storage for one operand plus how to view it.
struct Operand<T> {
    data: Vec<T>,
    rows: usize,
    cols: usize,
    layout: Layout,
}

impl<T: Float> Operand<T> {
    fn new(rows: usize, cols: usize, layout: Layout, seed: u64) -> Self {
        let len = match layout {
            Layout::Strided => rows * (2 * cols + 3) + 1,
            _ => rows * cols,
        };
        Operand {
            data: fill(len, seed),
            rows,
            cols,
            layout,
        }
    }
    fn strides(&self) -> (usize, usize) {
        match self.layout {
            Layout::RowMajor => (self.cols, 1),
            Layout::ColMajor | Layout::Transposed => (1, self.rows),
            Layout::Strided => (2 * self.cols + 3, 2),
        }
    }
    fn view(&self) -> MatRef<'_, T> {
        match self.layout {
            Layout::Transposed => MatRef::row_major(&self.data, self.cols, self.rows)
                .unwrap()
                .t(),
            _ => {
                let (rs, cs) = self.strides();
                MatRef::new(&self.data, self.rows, self.cols, rs, cs).unwrap()
            }
        }
    }
    fn view_mut(&mut self) -> MatMut<'_, T> {
        let (rs, cs) = self.strides();
        MatMut::new(&mut self.data, self.rows, self.cols, rs, cs).unwrap()
    }
    fn get(&self, i: usize, j: usize) -> T {
        self.view().get(i, j).unwrap()
    }
}

fn layout(i: u8) -> Layout {
    [
        Layout::RowMajor,
        Layout::ColMajor,
        Layout::Strided,
        Layout::Transposed,
    ][i as usize % 4]
}

fn run_gemm<T: Float>(
    alpha: T,
    a: &Operand<T>,
    b: &Operand<T>,
    beta: T,
    c: &mut Operand<T>,
    threads: usize,
) -> Result<(), KernelError> {
    let par = if threads == 1 {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    };
    let mut scratch = vec![T::ZERO; gemm_scratch_len::<T>(a.rows, b.cols, a.cols, par)];
    let call = |c: &mut Operand<T>, s: &mut [T]| {
        gemm(alpha, a.view(), b.view(), beta, c.view_mut(), s, par)
    };
    if threads == 1 {
        call(c, &mut scratch)
    } else {
        pool2().install(|| call(c, &mut scratch))
    }
}

/// Checks C against the f64 reference with an error bound growing with k.
fn check<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    la: u8,
    lb: u8,
    lc: u8,
    alpha: f64,
    beta: f64,
    threads: usize,
) -> Result<(), TestCaseError> {
    let a = Operand::<T>::new(m, k, layout(la), 1 + m as u64);
    let b = Operand::<T>::new(k, n, layout(lb), 2 + n as u64);
    // Transposed storage is not a MatMut layout, so C uses the other three.
    let mut c = Operand::<T>::new(m, n, layout(lc % 3), 3 + k as u64);
    if beta == 0.0 {
        c.data.iter_mut().for_each(|v| *v = T::from_f64(f64::NAN));
    }
    let c0: Vec<Vec<f64>> = (0..m)
        .map(|i| (0..n).map(|j| c.get(i, j).to_f64()).collect())
        .collect();
    run_gemm(
        T::from_f64(alpha),
        &a,
        &b,
        T::from_f64(beta),
        &mut c,
        threads,
    )
    .unwrap();
    let eps = T::EPSILON.to_f64();
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0;
            let mut mag = 0.0;
            for p in 0..k {
                let t = a.get(i, p).to_f64() * b.get(p, j).to_f64();
                s += t;
                mag += t.abs();
            }
            let (want, bound) = if beta == 0.0 {
                (alpha * s, (k as f64 + 2.0) * eps * alpha.abs() * mag)
            } else {
                (
                    alpha * s + beta * c0[i][j],
                    (k as f64 + 2.0) * eps * (alpha.abs() * mag + (beta * c0[i][j]).abs()),
                )
            };
            let got = c.get(i, j).to_f64();
            prop_assert!(
                (got - want).abs() <= bound + 1e-30,
                "C[{i},{j}] = {got}, want {want} (bound {bound}), m={m} n={n} k={k}"
            );
        }
    }
    Ok(())
}

const ALPHAS: [f64; 4] = [1.0, -0.5, 2.0, 0.0];
const BETAS: [f64; 4] = [0.0, 1.0, -0.75, 0.0];

fn each_dispatch(f: impl Fn() -> Result<(), TestCaseError>) -> Result<(), TestCaseError> {
    let _g = lock();
    for &d in available_dispatches() {
        set_dispatch(d).unwrap();
        let r = f();
        set_dispatch(Dispatch::Auto).unwrap();
        r?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn small_shapes_f32(m in 0usize..24, n in 0usize..40, k in 0usize..40, la in 0u8..4, lb in 0u8..4,
                        lc in 0u8..3, ai in 0usize..4, bi in 0usize..4, threads in 1usize..3) {
        each_dispatch(|| check::<f32>(m, n, k, la, lb, lc, ALPHAS[ai], BETAS[bi], threads))?;
    }

    #[test]
    fn small_shapes_f64(m in 0usize..24, n in 0usize..40, k in 0usize..40, la in 0u8..4, lb in 0u8..4,
                        lc in 0u8..3, ai in 0usize..4, bi in 0usize..4, threads in 1usize..3) {
        each_dispatch(|| check::<f64>(m, n, k, la, lb, lc, ALPHAS[ai], BETAS[bi], threads))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Large enough to cross KC/MC blocks and the threading threshold.
    #[test]
    fn large_shapes(m in 1usize..300, n in 1usize..300, k in 200usize..700, la in 0u8..4, lb in 0u8..4,
                    lc in 0u8..3, bi in 0usize..3, threads in 1usize..3) {
        each_dispatch(|| {
            check::<f32>(m, n, k, la, lb, lc, 1.0, BETAS[bi], threads)?;
            check::<f64>(m, n, k, la, lb, lc, 1.0, BETAS[bi], threads)
        })?;
    }
}

#[test]
fn vector_shapes_and_w1_transposes() {
    let shapes = [
        (1, 256, 784),
        (1, 10, 128),
        (1, 128, 10),
        (128, 1, 10),
        (5, 1, 300),
        (1, 1, 1),
        (1, 300, 3),
    ];
    let _ = each_dispatch(|| {
        for &(m, n, k) in &shapes {
            for la in 0..4 {
                for lb in 0..4 {
                    for threads in [1, 2] {
                        check::<f32>(m, n, k, la, lb, 0, 1.0, 0.5, threads)?;
                        check::<f64>(m, n, k, la, lb, 1, -1.0, 0.0, threads)?;
                    }
                }
            }
        }
        Ok(())
    })
    .map_err(|e| panic!("{e}"));
}

/// Runs one product and returns C's storage.
fn product<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    la: Layout,
    lb: Layout,
    threads: usize,
    off: usize,
    beta: T,
) -> Vec<T> {
    let a = Operand::<T>::new(m, k, la, 11);
    let b = Operand::<T>::new(k, n, lb, 12);
    // Copy into buffers shifted by `off` elements, so alignment differs.
    let mut abuf = vec![T::ZERO; off + a.data.len()];
    abuf[off..].copy_from_slice(&a.data);
    let mut bbuf = vec![T::ZERO; off + b.data.len()];
    bbuf[off..].copy_from_slice(&b.data);
    let a2 = Operand {
        data: abuf[off..].to_vec(),
        ..a
    };
    let b2 = Operand {
        data: bbuf[off..].to_vec(),
        ..b
    };
    let _ = (a2.data.len(), b2.data.len());
    let view = |buf: &'static [T], o: &Operand<T>| -> MatRef<'static, T> {
        match o.layout {
            Layout::Transposed => MatRef::row_major(buf, o.cols, o.rows).unwrap().t(),
            _ => {
                let (rs, cs) = o.strides();
                MatRef::new(buf, o.rows, o.cols, rs, cs).unwrap()
            }
        }
    };
    // Leaking keeps the offset slices alive for 'static views; tests only.
    let abuf: &'static [T] = Vec::leak(abuf);
    let bbuf: &'static [T] = Vec::leak(bbuf);
    let av = view(&abuf[off..], &a2);
    let bv = view(&bbuf[off..], &b2);
    let mut cbuf = vec![T::ZERO; off + m * n];
    let c_init = fill::<T>(m * n, 13);
    cbuf[off..].copy_from_slice(&c_init);
    let par = if threads == 1 {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    };
    let mut scratch = vec![T::ZERO; gemm_scratch_len::<T>(m, n, k, par) + off];
    let mut go = || {
        gemm(
            T::ONE,
            av,
            bv,
            beta,
            MatMut::row_major(&mut cbuf[off..], m, n).unwrap(),
            &mut scratch[off..],
            par,
        )
        .unwrap()
    };
    if threads == 1 {
        go()
    } else {
        pool2().install(go)
    }
    cbuf[off..].to_vec()
}

#[test]
fn bit_identical_across_threads_and_offsets() {
    let shapes = [
        (128, 256, 784),
        (131, 67, 257),
        (7, 1000, 300),
        (300, 5, 300),
        (1, 700, 784),
        (128, 10, 128),
        (64, 64, 64),
    ];
    let layouts = [
        (Layout::RowMajor, Layout::RowMajor),
        (Layout::Transposed, Layout::RowMajor),
        (Layout::RowMajor, Layout::Transposed),
        (Layout::Strided, Layout::ColMajor),
    ];
    let _g = lock();
    for &d in available_dispatches() {
        set_dispatch(d).unwrap();
        for &(m, n, k) in &shapes {
            for &(la, lb) in &layouts {
                let base = bits(&product::<f32>(m, n, k, la, lb, 1, 0, 0.5));
                for (threads, off) in [(2, 0), (1, 1), (2, 3), (1, 7)] {
                    let got = bits(&product::<f32>(m, n, k, la, lb, threads, off, 0.5));
                    assert!(
                        base == got,
                        "{d:?} f32 {m}x{n}x{k} {la:?}/{lb:?} threads={threads} off={off}"
                    );
                }
                let base = bits(&product::<f64>(m, n, k, la, lb, 1, 0, 0.0));
                for (threads, off) in [(2, 0), (2, 1), (1, 3)] {
                    let got = bits(&product::<f64>(m, n, k, la, lb, threads, off, 0.0));
                    assert!(
                        base == got,
                        "{d:?} f64 {m}x{n}x{k} {la:?}/{lb:?} threads={threads} off={off}"
                    );
                }
            }
        }
    }
    set_dispatch(Dispatch::Auto).unwrap();
}

/// Shapes that take the driver's shortcuts: narrow n computed as `Cᵀ = Bᵀ·Aᵀ`, A read in
/// place (row-major A, with edge rows and across KC and MC blocks), B read in place (row-major
/// B under at most two row tiles), and narrow k; each against the reference, every layout,
/// every dispatch path, 1 and 2 threads, f32 and f64.
#[test]
fn narrow_transposed_and_unpacked_paths_match_reference() {
    let shapes = [
        (128, 10, 128),
        (300, 5, 300),
        (50, 2, 7),
        (17, 15, 33),
        (128, 128, 10),
        (37, 300, 300),
        (12, 100, 600),
        (7, 33, 20),
        (13, 40, 9),
        (300, 20, 700),
        (131, 67, 257),
    ];
    let _ = each_dispatch(|| {
        for &(m, n, k) in &shapes {
            for la in 0..4 {
                for lb in 0..4 {
                    for threads in [1, 2] {
                        check::<f32>(m, n, k, la, lb, (la + lb) % 3, 1.0, 0.5, threads)?;
                        check::<f64>(m, n, k, la, lb, (la + 2 * lb) % 3, -1.0, 0.0, threads)?;
                    }
                }
            }
        }
        Ok(())
    })
    .map_err(|e| panic!("{e}"));
}

/// Two-thread products whose split runs in guided blocks (1/2, 1/4, 1/8, 1/8 of the tiles):
/// along n an even tile count, an odd one (9 tiles: blocks of 5, 2, 1, 1), two tiles (empty
/// blocks), a long n, and the W1 forward shape (guided only with row-major A, read in place;
/// 51 MFLOP keeps the even split otherwise); along m the W1 `Aᵀ·B` gradient shape and an
/// odd one. Every layout against the reference and bit-identical to one thread, f32 and
/// f64, every dispatch path.
#[test]
fn guided_two_thread_split_matches_reference_and_one_thread() {
    let shapes = [
        (128, 256, 784),
        (100, 130, 300),
        (300, 20, 400),
        (96, 1000, 40),
        (256, 128, 128),
        (131, 67, 257),
    ];
    let layouts = [
        (Layout::RowMajor, Layout::RowMajor),
        (Layout::RowMajor, Layout::Transposed),
        (Layout::Transposed, Layout::RowMajor),
    ];
    let _ = each_dispatch(|| {
        for &(m, n, k) in &shapes {
            for la in [0, 3] {
                for lb in 0..4 {
                    check::<f32>(m, n, k, la, lb, lb % 3, 1.0, -0.5, 2)?;
                    check::<f64>(m, n, k, la, lb, (lb + 1) % 3, 2.0, 0.0, 2)?;
                }
            }
            for &(la, lb) in &layouts {
                let one = bits(&product::<f32>(m, n, k, la, lb, 1, 0, 0.5));
                let two = bits(&product::<f32>(m, n, k, la, lb, 2, 1, 0.5));
                prop_assert!(one == two, "f32 {m}x{n}x{k} {la:?}/{lb:?}");
                let one = bits(&product::<f64>(m, n, k, la, lb, 1, 0, 0.0));
                let two = bits(&product::<f64>(m, n, k, la, lb, 2, 3, 0.0));
                prop_assert!(one == two, "f64 {m}x{n}x{k} {la:?}/{lb:?}");
            }
        }
        Ok(())
    })
    .map_err(|e| panic!("{e}"));
}

/// The same logical operands stored as `layout`.
fn stored<T: Float>(vals: &[T], rows: usize, cols: usize, layout: Layout) -> Operand<T> {
    let mut o = Operand::<T>::new(rows, cols, layout, 0);
    let (rs, cs) = o.strides();
    for i in 0..rows {
        for j in 0..cols {
            o.data[i * rs + j * cs] = vals[i * cols + j];
        }
    }
    o
}

/// Reading an operand in place and packing it perform the same arithmetic: C's bits do not
/// depend on how A and B are stored (m >= 2; m == 1 is the separate gemv path).
#[test]
fn bit_identical_across_operand_layouts() {
    let shapes = [
        (128, 256, 300),
        (128, 10, 128),
        (12, 100, 600),
        (7, 33, 20),
        (131, 67, 257),
        (300, 5, 40),
    ];
    let layouts = [
        Layout::RowMajor,
        Layout::ColMajor,
        Layout::Strided,
        Layout::Transposed,
    ];
    fn one<T: Float>(m: usize, n: usize, k: usize, layouts: &[Layout]) {
        let av = fill::<T>(m * k, 21);
        let bv = fill::<T>(k * n, 22);
        let cv = fill::<T>(m * n, 23);
        let mut base: Option<Vec<u64>> = None;
        for &la in layouts {
            for &lb in layouts {
                for threads in [1, 2] {
                    let a = stored(&av, m, k, la);
                    let b = stored(&bv, k, n, lb);
                    let mut c = stored(&cv, m, n, Layout::RowMajor);
                    run_gemm(T::ONE, &a, &b, T::from_f64(0.5), &mut c, threads).unwrap();
                    let got = bits(&c.data);
                    match &base {
                        None => base = Some(got),
                        Some(want) => assert!(
                            *want == got,
                            "{m}x{n}x{k} A {la:?} B {lb:?} threads={threads}"
                        ),
                    }
                }
            }
        }
    }
    let _g = lock();
    for &d in available_dispatches() {
        set_dispatch(d).unwrap();
        for &(m, n, k) in &shapes {
            one::<f32>(m, n, k, &layouts);
            one::<f64>(m, n, k, &layouts);
        }
    }
    set_dispatch(Dispatch::Auto).unwrap();
}

#[test]
fn errors_name_expected_and_found() {
    let a = vec![0.0f32; 128 * 784];
    let b = vec![0.0f32; 785 * 256];
    let mut c = vec![0.0f32; 128 * 256];
    let av = MatRef::row_major(&a, 128, 784).unwrap();
    let bv = MatRef::row_major(&b, 785, 256).unwrap();
    let e = gemm(
        1.0,
        av,
        bv,
        0.0,
        MatMut::row_major(&mut c, 128, 256).unwrap(),
        &mut [],
        Parallelism::None,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "gemm: A is 128x784 but B is 785x256: inner dimensions must match"
    );

    let bv = MatRef::row_major(&b[..784 * 256], 784, 256).unwrap();
    let e = gemm(
        1.0,
        av,
        bv,
        0.0,
        MatMut::row_major(&mut c[..128 * 255], 128, 255).unwrap(),
        &mut [],
        Parallelism::None,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "gemm: C is 128x255 but the product is 128x256"
    );

    let need = gemm_scratch_len::<f32>(128, 256, 784, Parallelism::None);
    let mut s = vec![0.0f32; need - 1];
    let e = gemm(
        1.0,
        av,
        bv,
        0.0,
        MatMut::row_major(&mut c, 128, 256).unwrap(),
        &mut s,
        Parallelism::None,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "gemm: scratch has {} elements but {need} are needed (ask gemm_scratch_len)",
            need - 1
        )
    );

    let e = MatRef::new(&a[..10], 3, 4, 4, 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "matrix view: 3x4 with strides (4, 1) needs 12 elements but the slice has 10"
    );
    let e = MatMut::new(&mut c[..10], 2, 2, 0, 1).unwrap_err();
    assert!(e.to_string().contains("overlap"), "{e}");
    let e = MatRef::row_major(&a[..11], 3, 4).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MatRef::row_major: data has length 11 but 12 was expected"
    );
}

#[test]
fn alpha_zero_does_not_read_a_or_b() {
    let a = vec![f32::NAN; 6];
    let b = vec![f32::NAN; 6];
    let mut c = vec![2.0f32; 4];
    let mut s = vec![0.0; gemm_scratch_len::<f32>(2, 2, 3, Parallelism::None)];
    gemm(
        0.0,
        MatRef::row_major(&a, 2, 3).unwrap(),
        MatRef::row_major(&b, 3, 2).unwrap(),
        0.5,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        &mut s,
        Parallelism::None,
    )
    .unwrap();
    assert_eq!(c, [1.0; 4]);
}

#[test]
fn forcing_a_missing_path_fails() {
    let _g = lock();
    for d in [Dispatch::Avx2, Dispatch::Avx512] {
        if !available_dispatches().contains(&d) {
            let e = set_dispatch(d).unwrap_err();
            assert!(e.to_string().starts_with("dispatch:"), "{e}");
        }
    }
    set_dispatch(Dispatch::Auto).unwrap();
}
