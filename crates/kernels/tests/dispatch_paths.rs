//! Every dispatch path forced by name (`Portable`, `Avx2`, `Avx512`) and `Auto`, on the
//! shapes that sit on the tile boundaries of each path (6x8 portable... 6x32 AVX-512 f32,
//! 6x16 AVX-512 f64, the 128- and 64-wide m == 1 loops), f32 and f64, 1 and 2 threads,
//! alpha/beta, C with a column stride, A and B transposed or strided. Checks:
//!
//! * each path against an f64 reference;
//! * each path bit-identical across thread counts and slice offsets;
//! * `Auto` resolves to the best path the CPU has (AVX-512 on an AVX-512F machine) and gives
//!   exactly that path's bits;
//! * the SIMD paths agree bit for bit with each other: every element is the same chain of
//!   fused multiply-adds whatever the vector width or tile shape, so an AVX-512 result that
//!   differs from the AVX2 one in a single bit is a bug in one of them.
//!
//! A path the CPU lacks is reported and skipped (it cannot be forced).

#![allow(clippy::too_many_arguments)]

mod common;
use common::*;

use dl4rs_kernels::{
    Dispatch, Float, MatMut, MatRef, Parallelism, available_dispatches, current_dispatch, gemm,
    gemm_packed_b, gemm_scratch_len, pack_b, packed_b_len, set_dispatch,
};

/// How the product is run: threads and the threading mechanism.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Run {
    One,
    Rayon2,
    Team2,
}

const RUNS: [Run; 3] = [Run::One, Run::Rayon2, Run::Team2];

/// Operand layouts: 0 row-major, 1 stored transposed (`.t()`), 2 strided (padded rows,
/// column stride 2).
fn view<T: Float>(buf: &[T], rows: usize, cols: usize, lay: u8) -> MatRef<'_, T> {
    match lay {
        0 => MatRef::row_major(&buf[..rows * cols], rows, cols).unwrap(),
        1 => MatRef::row_major(&buf[..rows * cols], cols, rows)
            .unwrap()
            .t(),
        _ => MatRef::new(buf, rows, cols, 2 * cols + 1, 2).unwrap(),
    }
}

fn storage_len(rows: usize, cols: usize) -> usize {
    rows * (2 * cols + 1) + 1
}

/// One product on operands shifted by `off` elements (B packed first with `packed`, for
/// `gemm_packed_b`); returns C's logical elements (row-major) and checks them against the
/// f64 reference.
fn run<T: Float>(
    (m, n, k): (usize, usize, usize),
    (la, lb, c_strided): (u8, u8, bool),
    (alpha, beta): (f64, f64),
    how: Run,
    off: usize,
    check: bool,
    packed: bool,
) -> Vec<T> {
    let a0 = fill::<T>(storage_len(m, k), 31 + m as u64);
    let b0 = fill::<T>(storage_len(k, n), 37 + n as u64);
    let c0 = fill::<T>(m * (2 * n + 1) + 1, 41 + k as u64);
    let mut abuf = vec![T::ZERO; off + a0.len()];
    abuf[off..].copy_from_slice(&a0);
    let mut bbuf = vec![T::ZERO; off + b0.len()];
    bbuf[off..].copy_from_slice(&b0);
    let mut cbuf = vec![T::ZERO; off + c0.len()];
    cbuf[off..].copy_from_slice(&c0);
    if beta == 0.0 {
        cbuf.iter_mut().for_each(|v| *v = T::from_f64(f64::NAN));
    }
    let c_init: Vec<T> = cbuf.clone();
    let av = view(&abuf[off..], m, k, la);
    let bv = view(&bbuf[off..], k, n, lb);
    let (rs_c, cs_c) = if c_strided { (2 * n + 1, 2) } else { (n, 1) };
    let c_len = if m * n == 0 {
        0
    } else {
        (m - 1) * rs_c + (n - 1) * cs_c + 1
    };
    let par = match how {
        Run::One => Parallelism::None,
        Run::Rayon2 => Parallelism::Rayon(2),
        Run::Team2 => Parallelism::Team(team2()),
    };
    let mut scratch = vec![T::ZERO; gemm_scratch_len::<T>(m, n, k, par) + off];
    {
        let cv = MatMut::new(&mut cbuf[off..off + c_len], m, n, rs_c, cs_c).unwrap();
        let mut pbuf = vec![T::ZERO; packed_b_len::<T>(k, n) + off];
        let go = || {
            let (alpha, beta, scratch) =
                (T::from_f64(alpha), T::from_f64(beta), &mut scratch[off..]);
            if packed {
                let pb = pack_b(bv, &mut pbuf[off..]).unwrap();
                gemm_packed_b(alpha, av, bv, &pb, beta, cv, scratch, par).unwrap()
            } else {
                gemm(alpha, av, bv, beta, cv, scratch, par).unwrap()
            }
        };
        if how == Run::Rayon2 {
            pool2().install(go)
        } else {
            go()
        }
    }
    let mut out = Vec::with_capacity(m * n);
    let eps = T::EPSILON.to_f64();
    for i in 0..m {
        for j in 0..n {
            let got = cbuf[off + i * rs_c + j * cs_c];
            out.push(got);
            if !check {
                continue;
            }
            let (mut s, mut mag) = (0.0, 0.0);
            for p in 0..k {
                let t = av.get(i, p).unwrap().to_f64() * bv.get(p, j).unwrap().to_f64();
                s += t;
                mag += t.abs();
            }
            let cij = c_init[off + i * rs_c + j * cs_c].to_f64();
            let (want, bound) = if beta == 0.0 {
                (alpha * s, (k as f64 + 2.0) * eps * alpha.abs() * mag)
            } else {
                (
                    alpha * s + beta * cij,
                    (k as f64 + 2.0) * eps * (alpha.abs() * mag + (beta * cij).abs()),
                )
            };
            let got = got.to_f64();
            assert!(
                (got - want).abs() <= bound + 1e-30,
                "{:?} {}: C[{i},{j}] = {got}, want {want}; {m}x{n}x{k} layouts {la}/{lb} \
                 c_strided={c_strided} alpha={alpha} beta={beta} {how:?} off={off}",
                current_dispatch(),
                std::any::type_name::<T>(),
            );
        }
    }
    // The parts of C's storage outside the view are untouched.
    for (idx, (&now, &was)) in cbuf[off..].iter().zip(&c_init[off..]).enumerate() {
        let inside = idx < c_len && (idx % rs_c) % cs_c == 0 && (idx % rs_c) / cs_c < n;
        if !inside {
            assert!(
                now.to_f64().to_bits() == was.to_f64().to_bits(),
                "{:?}: wrote outside C at storage index {idx} ({m}x{n}x{k})",
                current_dispatch()
            );
        }
    }
    out
}

/// Shapes around every path's tile and loop widths: MR = 4/6, NR = 8/16/32, the m == 1
/// loops of 64/128 (f32) and 32/64 (f64) columns, the narrow (`Cᵀ = Bᵀ·Aᵀ`) path, KC
/// blocks (k > 256) and the W1 shapes.
const SHAPES: [(usize, usize, usize); 30] = [
    (1, 1, 1),
    (1, 17, 5),
    (1, 31, 40),
    (1, 33, 9),
    (1, 63, 20),
    (1, 65, 33),
    (1, 127, 64),
    (1, 129, 70),
    (1, 200, 300),
    (2, 1, 30),
    (2, 2, 1),
    (5, 31, 17),
    (6, 32, 64),
    (7, 33, 3),
    (6, 64, 1),
    (12, 64, 257),
    (13, 65, 31),
    (11, 16, 80),
    (19, 48, 33),
    (25, 95, 12),
    (64, 10, 64),
    (40, 15, 50),
    (100, 3, 20),
    (30, 31, 300),
    (48, 97, 40),
    (128, 10, 128),
    (128, 128, 10),
    (97, 130, 45),
    (130, 33, 90),
    (37, 300, 270),
];

const LAYOUTS: [(u8, u8, bool); 5] = [
    (0, 0, false),
    (1, 0, false),
    (0, 1, false),
    (2, 2, true),
    (1, 1, true),
];

const SCALARS: [(f64, f64); 3] = [(1.0, 0.0), (-0.5, 1.0), (2.0, -0.75)];

/// Forces `d`; false (and a note) when the CPU lacks it.
fn force(d: Dispatch) -> bool {
    match set_dispatch(d) {
        Ok(()) => {
            assert_eq!(current_dispatch(), d);
            true
        }
        Err(e) => {
            eprintln!("skipping {d:?}: {e}");
            false
        }
    }
}

/// Per path: reference check, and bits identical for 1 thread, 2 rayon tasks, a 2-thread
/// team and shifted slices, and B packed beforehand (`gemm_packed_b`) or not.
fn path_checks<T: Float>(d: Dispatch) {
    for (si, &shape) in SHAPES.iter().enumerate() {
        for (li, &lay) in LAYOUTS.iter().enumerate() {
            let sc = SCALARS[(si + li) % SCALARS.len()];
            let base = bits(&run::<T>(shape, lay, sc, Run::One, 0, true, false));
            for (ri, &how) in RUNS.iter().enumerate() {
                let off = (si + li + ri) % 5;
                for packed in [false, true] {
                    let got = bits(&run::<T>(shape, lay, sc, how, off, ri != 0, packed));
                    assert!(
                        base == got,
                        "{d:?} {}: {shape:?} {lay:?} {how:?} off={off} packed={packed} differs \
                         from 1 thread unpacked",
                        std::any::type_name::<T>()
                    );
                }
            }
        }
    }
}

#[test]
fn portable_forced() {
    let _g = lock();
    if force(Dispatch::Portable) {
        path_checks::<f32>(Dispatch::Portable);
        path_checks::<f64>(Dispatch::Portable);
    }
    set_dispatch(Dispatch::Auto).unwrap();
}

#[test]
fn avx2_forced() {
    let _g = lock();
    if force(Dispatch::Avx2) {
        path_checks::<f32>(Dispatch::Avx2);
        path_checks::<f64>(Dispatch::Avx2);
    }
    set_dispatch(Dispatch::Auto).unwrap();
}

#[test]
fn avx512_forced() {
    let _g = lock();
    if force(Dispatch::Avx512) {
        path_checks::<f32>(Dispatch::Avx512);
        path_checks::<f64>(Dispatch::Avx512);
    }
    set_dispatch(Dispatch::Auto).unwrap();
}

#[test]
fn auto_is_the_best_path_and_gives_its_bits() {
    let _g = lock();
    set_dispatch(Dispatch::Auto).unwrap();
    let best = *available_dispatches().last().unwrap();
    assert_eq!(current_dispatch(), best);
    #[cfg(target_arch = "x86_64")]
    {
        let want = if std::arch::is_x86_feature_detected!("avx512f") {
            Dispatch::Avx512
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            Dispatch::Avx2
        } else {
            Dispatch::Portable
        };
        assert_eq!(best, want);
        eprintln!("Auto = {best:?} on this CPU");
    }
    fn both<T: Float>(best: Dispatch) {
        for &shape in &SHAPES {
            for &lay in &LAYOUTS[..3] {
                set_dispatch(Dispatch::Auto).unwrap();
                let auto = bits(&run::<T>(shape, lay, (1.0, 0.5), Run::Team2, 1, true, true));
                set_dispatch(best).unwrap();
                let forced = bits(&run::<T>(shape, lay, (1.0, 0.5), Run::One, 0, false, false));
                assert!(auto == forced, "Auto vs {best:?}: {shape:?} {lay:?}");
            }
        }
    }
    both::<f32>(best);
    both::<f64>(best);
    set_dispatch(Dispatch::Auto).unwrap();
}

/// The SIMD paths (AVX2, AVX-512) compute every element as the same fma chain, so their
/// results agree bit for bit on every shape and layout, threaded or not.
#[test]
fn simd_paths_agree_bit_for_bit() {
    let _g = lock();
    let simd: Vec<Dispatch> = available_dispatches()
        .iter()
        .copied()
        .filter(|&d| d != Dispatch::Portable)
        .collect();
    if simd.len() < 2 {
        eprintln!("fewer than two SIMD paths on this CPU: {simd:?}");
        return;
    }
    fn agree<T: Float>(simd: &[Dispatch]) {
        for (si, &shape) in SHAPES.iter().enumerate() {
            for &lay in &LAYOUTS {
                let sc = SCALARS[si % SCALARS.len()];
                set_dispatch(simd[0]).unwrap();
                let want = bits(&run::<T>(shape, lay, sc, Run::One, 0, false, false));
                for &d in &simd[1..] {
                    set_dispatch(d).unwrap();
                    let got = bits(&run::<T>(shape, lay, sc, Run::Rayon2, 2, false, true));
                    assert!(want == got, "{:?} vs {d:?}: {shape:?} {lay:?}", simd[0]);
                }
            }
        }
    }
    agree::<f32>(&simd);
    agree::<f64>(&simd);
    set_dispatch(Dispatch::Auto).unwrap();
}
