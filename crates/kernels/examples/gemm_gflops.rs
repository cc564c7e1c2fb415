//! GFLOP/s of dl4rs-kernels' gemm (on rayon and on a `KernelTeam`) vs `matrixmultiply` and
//! the `gemm` crate on the 8 f32 products of one MLP training step (W1: 784-256-128-10,
//! batch 128) and on batch-1 inference, at 1 and 2 threads. Median of 7 rounds; each round times the four
//! implementations back to back, so a busy spell of the machine hits all of them alike.
//!
//! `cargo run --release -p dl4rs-kernels --example gemm_gflops`
//!
//! matrixmultiply reads its thread count once per process from `MATMUL_NUM_THREADS`, so this
//! program re-runs itself with that variable set to measure all three at 1 and 2 threads.
//!
//! `-- --per-product`: the W1 step (31 rounds of 3 passes) and each product alone (31
//! rounds), the three interleaved, "median / best" GFLOP/s at 1 and 2 threads.
//! `-- --paths`: per dispatch path (Portable, AVX2, AVX-512 where the CPU has them): the
//! microkernel's peak in L1 (f32, f64), and the W1 step and batch 1 at 1 thread, 2 rayon
//! tasks and a 2-thread `KernelTeam`, the three interleaved in each of 15 rounds (medians
//! and best). `-- --paths --per-product`: each W1 product alone too.
//! `-- --l1`: only the L1 peaks, per path.
//! `-- --gap-us N`: the W1 step with the caller busy N µs between products (the element-wise
//! work a network does between them), 1 thread vs rayon vs team, interleaved, 31 rounds.
//! `-- --wake`: how long an idle rayon worker takes to pick up a `join` (2-thread pool) after
//! the caller has run alone for 0 .. 1000 µs.

use std::process::Command;
use std::time::Instant;

use dl4rs_kernels::{
    Dispatch, KernelTeam, MatMut, MatRef, Parallelism, available_dispatches, current_dispatch,
    gemm, gemm_scratch_len, microkernel_l1_run, set_dispatch,
};

/// (m, n, k, A stored transposed, B stored transposed)
const W1: [(usize, usize, usize, bool, bool); 8] = [
    (128, 256, 784, false, false),
    (128, 128, 256, false, false),
    (128, 10, 128, false, false),
    (784, 256, 128, true, false),
    (256, 128, 128, true, false),
    (128, 10, 128, true, false),
    (128, 128, 10, false, true),
    (128, 256, 128, false, true),
];
const B1: [(usize, usize, usize, bool, bool); 3] = [
    (1, 256, 784, false, false),
    (1, 128, 256, false, false),
    (1, 10, 128, false, false),
];

struct Prob {
    m: usize,
    n: usize,
    k: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    /// (row stride, col stride) of A and B as seen by the product
    sa: (usize, usize),
    sb: (usize, usize),
}

fn probs(set: &[(usize, usize, usize, bool, bool)]) -> Vec<Prob> {
    set.iter()
        .map(|&(m, n, k, ta, tb)| Prob {
            m,
            n,
            k,
            a: (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
                .collect(),
            b: (0..k * n)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0)
                .collect(),
            c: vec![0.0; m * n],
            sa: if ta { (1, m) } else { (k, 1) },
            sb: if tb { (1, k) } else { (n, 1) },
        })
        .collect()
}

fn flops(set: &[(usize, usize, usize, bool, bool)]) -> f64 {
    set.iter()
        .map(|&(m, n, k, _, _)| 2.0 * (m * n * k) as f64)
        .sum()
}

#[derive(Clone, Copy, PartialEq)]
enum Imp {
    Ours,
    OursTeam,
    Mm,
    GemmCrate,
}

fn run_once(imp: Imp, ps: &mut [Prob], threads: usize, scratch: &mut [f32]) {
    for p in ps.iter_mut() {
        match imp {
            Imp::Ours | Imp::OursTeam => {
                let par = match (threads > 1, imp == Imp::OursTeam) {
                    (false, _) => Parallelism::None,
                    (true, false) => Parallelism::Rayon(threads),
                    (true, true) => Parallelism::Team(team2()),
                };
                let a = MatRef::new(&p.a, p.m, p.k, p.sa.0, p.sa.1).unwrap();
                let b = MatRef::new(&p.b, p.k, p.n, p.sb.0, p.sb.1).unwrap();
                let c = MatMut::row_major(&mut p.c, p.m, p.n).unwrap();
                gemm(1.0, a, b, 0.0, c, scratch, par).unwrap();
            }
            // SAFETY: pointers and strides describe the Vecs above, sized m*k, k*n, m*n.
            Imp::Mm => unsafe {
                matrixmultiply::sgemm(
                    p.m,
                    p.k,
                    p.n,
                    1.0,
                    p.a.as_ptr(),
                    p.sa.0 as isize,
                    p.sa.1 as isize,
                    p.b.as_ptr(),
                    p.sb.0 as isize,
                    p.sb.1 as isize,
                    0.0,
                    p.c.as_mut_ptr(),
                    p.n as isize,
                    1,
                )
            },
            // SAFETY: as above; the gemm crate computes dst = alpha*dst + beta*lhs*rhs.
            Imp::GemmCrate => unsafe {
                gemm::gemm(
                    p.m,
                    p.n,
                    p.k,
                    p.c.as_mut_ptr(),
                    1,
                    p.n as isize,
                    false,
                    p.a.as_ptr(),
                    p.sa.1 as isize,
                    p.sa.0 as isize,
                    p.b.as_ptr(),
                    p.sb.1 as isize,
                    p.sb.0 as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    if threads > 1 {
                        gemm::Parallelism::Rayon(threads)
                    } else {
                        gemm::Parallelism::None
                    },
                )
            },
        }
    }
}

/// Median GFLOP/s over 7 rounds of `reps` passes, the four implementations interleaved
/// within each round (ours, matrixmultiply, gemm).
fn measure_all(set: &[(usize, usize, usize, bool, bool)], threads: usize, reps: usize) -> [f64; 4] {
    measure_rounds(set, threads, reps, 7).map(|(med, _)| med)
}

/// (median, best) GFLOP/s over `rounds` rounds of `reps` passes, interleaved as above.
fn measure_rounds(
    set: &[(usize, usize, usize, bool, bool)],
    threads: usize,
    reps: usize,
    rounds: usize,
) -> [(f64, f64); 4] {
    let imps = [Imp::Ours, Imp::OursTeam, Imp::Mm, Imp::GemmCrate];
    let mut ps: Vec<Vec<Prob>> = imps.iter().map(|_| probs(set)).collect();
    let len = set
        .iter()
        .map(|&(m, n, k, _, _)| gemm_scratch_len::<f32>(m, n, k, Parallelism::Rayon(threads)))
        .max()
        .unwrap();
    let mut scratch = vec![0.0f32; len];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        for (i, &imp) in imps.iter().enumerate() {
            for _ in 0..reps.div_ceil(4) {
                run_once(imp, &mut ps[i], threads, &mut scratch);
            }
        }
        let mut rates: [Vec<f64>; 4] = Default::default();
        for _ in 0..rounds {
            for (i, &imp) in imps.iter().enumerate() {
                let t = Instant::now();
                for _ in 0..reps {
                    run_once(imp, &mut ps[i], threads, &mut scratch);
                }
                rates[i].push(flops(set) * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
            }
        }
        rates.map(|mut r| {
            r.sort_by(f64::total_cmp);
            (r[r.len() / 2], r[r.len() - 1])
        })
    })
}

/// How a path measurement runs the products.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Par {
    One,
    Rayon2,
    Team2,
}

fn team2() -> &'static KernelTeam {
    static TEAM: std::sync::OnceLock<KernelTeam> = std::sync::OnceLock::new();
    TEAM.get_or_init(|| KernelTeam::new(2))
}

fn spin_us(us: u64) {
    if us > 0 {
        let t = Instant::now();
        while t.elapsed().as_micros() < us as u128 {}
    }
}

/// One pass over `ps` with `par`, the caller spinning `gap_us` before each product.
fn pass(ps: &mut [Prob], par: Par, scratch: &mut [f32], gap_us: u64) {
    let p = match par {
        Par::One => Parallelism::None,
        Par::Rayon2 => Parallelism::Rayon(2),
        Par::Team2 => Parallelism::Team(team2()),
    };
    for pr in ps.iter_mut() {
        spin_us(gap_us);
        let a = MatRef::new(&pr.a, pr.m, pr.k, pr.sa.0, pr.sa.1).unwrap();
        let b = MatRef::new(&pr.b, pr.k, pr.n, pr.sb.0, pr.sb.1).unwrap();
        let c = MatMut::row_major(&mut pr.c, pr.m, pr.n).unwrap();
        gemm(1.0, a, b, 0.0, c, scratch, p).unwrap();
    }
}

/// (median, best) GFLOP/s (of the products alone: gap time excluded) for each of `pars`,
/// interleaved within each of `rounds` rounds of `reps` passes; before each timed block
/// the caller sleeps 3 ms, so every mechanism starts with its workers idle (the team's
/// blocktime, 2 ms, is over, and rayon's workers are asleep) and none is slowed by
/// another's spinning worker.
fn measure_pars(
    set: &[(usize, usize, usize, bool, bool)],
    pars: &[Par],
    reps: usize,
    rounds: usize,
    gap_us: u64,
) -> Vec<(f64, f64)> {
    let mut ps: Vec<Vec<Prob>> = pars.iter().map(|_| probs(set)).collect();
    let len = set
        .iter()
        .map(|&(m, n, k, _, _)| gemm_scratch_len::<f32>(m, n, k, Parallelism::Rayon(2)))
        .max()
        .unwrap();
    let mut scratch = vec![0.0f32; len];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| {
        for (i, &par) in pars.iter().enumerate() {
            for _ in 0..reps.div_ceil(4) {
                pass(&mut ps[i], par, &mut scratch, gap_us);
            }
        }
        let mut rates = vec![Vec::new(); pars.len()];
        let gap_s = (gap_us * set.len() as u64 * reps as u64) as f64 * 1e-6;
        for _ in 0..rounds {
            for (i, &par) in pars.iter().enumerate() {
                std::thread::sleep(std::time::Duration::from_millis(3));
                let t = Instant::now();
                for _ in 0..reps {
                    pass(&mut ps[i], par, &mut scratch, gap_us);
                }
                let secs = t.elapsed().as_secs_f64() - gap_s;
                rates[i].push(flops(set) * reps as f64 / secs / 1e9);
            }
        }
        rates
            .into_iter()
            .map(|mut r| {
                r.sort_by(f64::total_cmp);
                (r[r.len() / 2], r[r.len() - 1])
            })
            .collect()
    })
}

/// (median, best) GFLOP/s of the current path's microkernel in L1 over 7 runs.
fn l1_peak<T: dl4rs_kernels::Float>() -> (f64, f64, usize, usize) {
    let kc = 128;
    let mut buf = vec![T::from_f64(1e-3); 64 * kc + 512];
    let reps = 20_000;
    let (_, mr, nr) = microkernel_l1_run::<T>(kc, 100, &mut buf);
    let mut r: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            let (fl, _, _) = microkernel_l1_run::<T>(kc, reps, &mut buf);
            fl as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    r.sort_by(f64::total_cmp);
    (r[3], r[6], mr, nr)
}

fn paths(per_product: bool) {
    let pars = [Par::One, Par::Rayon2, Par::Team2];
    println!(
        "per dispatch path; f32 unless said; GFLOP/s median / best; W1 and batch 1: 15 rounds, \
         1 thread, 2 rayon tasks, 2-thread KernelTeam interleaved"
    );
    println!(
        "| path | L1 peak f32 (tile) | L1 peak f64 (tile) | W1 1 thr | W1 rayon 2 | W1 team 2 | batch 1, 1 thr | batch 1, team 2 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for &d in available_dispatches() {
        set_dispatch(d).unwrap();
        let (f32m, f32b, mr, nr) = l1_peak::<f32>();
        let (f64m, f64b, mr64, nr64) = l1_peak::<f64>();
        let w = measure_pars(&W1, &pars, 10, 15, 0);
        let b = measure_pars(&B1, &[Par::One, Par::Team2], 3000, 15, 0);
        println!(
            "| {d:?} | {f32m:.1} / {f32b:.1} ({mr}x{nr}) | {f64m:.1} / {f64b:.1} ({mr64}x{nr64}) | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} |",
            w[0].0, w[0].1, w[1].0, w[1].1, w[2].0, w[2].1, b[0].0, b[0].1, b[1].0, b[1].1
        );
        if per_product {
            for p in W1.iter() {
                let one = [*p];
                let reps = (4e6 / flops(&one)) as usize + 1;
                let r = measure_pars(&one, &pars, reps, 15, 0);
                println!(
                    "|   {d:?} {:?} | | | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | | |",
                    p, r[0].0, r[0].1, r[1].0, r[1].1, r[2].0, r[2].1
                );
            }
        }
    }
    set_dispatch(Dispatch::Auto).unwrap();
}

/// Each product's time inside the W1 step, per (dispatch path, threading): median over 120
/// steps (40 rounds of 4 back-to-back steps, the first of each not counted), the variants
/// interleaved round by round, the caller sleeping 3 ms before each variant's steps (so a
/// team's spinning worker never competes with the next variant).
fn breakdown() {
    let mut vs = Vec::new();
    for &d in available_dispatches() {
        for par in [Par::One, Par::Rayon2, Par::Team2] {
            vs.push((d, par));
        }
    }
    let len = W1
        .iter()
        .map(|&(m, n, k, _, _)| gemm_scratch_len::<f32>(m, n, k, Parallelism::Rayon(2)))
        .max()
        .unwrap();
    let mut scratch = vec![0.0f32; len];
    let mut ps: Vec<Vec<Prob>> = vs.iter().map(|_| probs(&W1)).collect();
    let mut times = vec![vec![Vec::new(); W1.len() + 1]; vs.len()];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| {
        for step in 0..43 {
            for (vi, &(d, par)) in vs.iter().enumerate() {
                set_dispatch(d).unwrap();
                let p = match par {
                    Par::One => Parallelism::None,
                    Par::Rayon2 => Parallelism::Rayon(2),
                    Par::Team2 => Parallelism::Team(team2()),
                };
                std::thread::sleep(std::time::Duration::from_millis(3));
                // 4 steps back to back, the first not recorded (its workers start idle).
                for rep in 0..4 {
                    let t0 = Instant::now();
                    for (i, pr) in ps[vi].iter_mut().enumerate() {
                        let t = Instant::now();
                        let a = MatRef::new(&pr.a, pr.m, pr.k, pr.sa.0, pr.sa.1).unwrap();
                        let b = MatRef::new(&pr.b, pr.k, pr.n, pr.sb.0, pr.sb.1).unwrap();
                        let c = MatMut::row_major(&mut pr.c, pr.m, pr.n).unwrap();
                        gemm(1.0, a, b, 0.0, c, &mut scratch, p).unwrap();
                        if step >= 3 && rep > 0 {
                            times[vi][i].push(t.elapsed().as_secs_f64() * 1e6);
                        }
                    }
                    if step >= 3 && rep > 0 {
                        times[vi][W1.len()].push(t0.elapsed().as_secs_f64() * 1e6);
                    }
                }
            }
        }
    });
    set_dispatch(Dispatch::Auto).unwrap();
    println!(
        "W1 step, each product's µs inside the step (GFLOP/s), median of 120 steps (steady state); 1 = one thread, R = 2 rayon tasks, T = 2-thread KernelTeam"
    );
    let head: Vec<String> = vs
        .iter()
        .map(|(d, p)| {
            let t = match p {
                Par::One => "1",
                Par::Rayon2 => "R",
                Par::Team2 => "T",
            };
            format!("{d:?} {t}")
        })
        .collect();
    println!("| product | {} |", head.join(" | "));
    println!("|---|{}", "---:|".repeat(vs.len()));
    for (i, p) in W1.iter().map(Some).chain([None]).enumerate() {
        let cells: Vec<String> = times
            .iter_mut()
            .map(|t| {
                t[i].sort_by(f64::total_cmp);
                let f = p.map_or_else(|| flops(&W1), |p| flops(&[*p]));
                let med = t[i][t[i].len() / 2];
                format!("{med:.0} ({:.0})", f / med / 1e3)
            })
            .collect();
        let name = p.map_or_else(
            || "**W1 step**".to_string(),
            |&(m, n, k, ta, tb)| {
                let t = if ta {
                    ", Aᵀ"
                } else if tb {
                    ", Bᵀ"
                } else {
                    ""
                };
                format!("{m}x{n}x{k}{t}")
            },
        );
        println!("| {name} | {} |", cells.join(" | "));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--l1") {
        println!("| path | f32 tile | f32 GFLOP/s in L1 | f64 tile | f64 GFLOP/s in L1 |");
        println!("|---|---|---:|---|---:|");
        for &d in available_dispatches() {
            set_dispatch(d).unwrap();
            let (a, b, mr, nr) = l1_peak::<f32>();
            let (c, e, mr2, nr2) = l1_peak::<f64>();
            println!("| {d:?} | {mr}x{nr} | {a:.1} / {b:.1} | {mr2}x{nr2} | {c:.1} / {e:.1} |");
        }
        set_dispatch(Dispatch::Auto).unwrap();
        return;
    }
    if args.get(1).map(String::as_str) == Some("--paths") {
        paths(args.get(2).map(String::as_str) == Some("--per-product"));
        return;
    }
    if args.get(1).map(String::as_str) == Some("--breakdown") {
        breakdown();
        return;
    }
    if args.get(1).map(String::as_str) == Some("--gap-us") {
        let gaps: Vec<u64> = args[2..].iter().map(|a| a.parse().unwrap()).collect();
        println!(
            "W1 step, the caller busy G µs before each product (dispatch {:?}); GFLOP/s of the products, median / best of 31 rounds",
            current_dispatch()
        );
        println!("| gap µs | 1 thread | rayon 2 | team 2 |");
        println!("|---:|---:|---:|---:|");
        for g in gaps {
            let r = measure_pars(&W1, &[Par::One, Par::Rayon2, Par::Team2], 5, 31, g);
            println!(
                "| {g} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} |",
                r[0].0, r[0].1, r[1].0, r[1].1, r[2].0, r[2].1
            );
            println!("|   | team: {:?} |", team2().take_stats());
        }
        return;
    }
    let (w1_reps, b1_reps) = (10, 3000);
    if args.get(1).map(String::as_str) == Some("--child") {
        let t: usize = std::env::var("MATMUL_NUM_THREADS")
            .unwrap()
            .parse()
            .unwrap();
        let (w, b) = (measure_all(&W1, t, w1_reps), measure_all(&B1, t, b1_reps));
        let v: Vec<String> = (0..4)
            .flat_map(|i| [w[i], b[i]])
            .map(|x| x.to_string())
            .collect();
        println!("{}", v.join(" "));
        return;
    }
    if args.get(1).map(String::as_str) == Some("--per-product-child") {
        let t: usize = std::env::var("MATMUL_NUM_THREADS")
            .unwrap()
            .parse()
            .unwrap();
        let w1 = measure_rounds(&W1, t, 3, 31);
        println!(
            "{t} thr W1 step (median / best): ours {:.1} / {:.1}, ours (team) {:.1} / {:.1}, matrixmultiply {:.1} / {:.1}, gemm {:.1} / {:.1}",
            w1[0].0, w1[0].1, w1[1].0, w1[1].1, w1[2].0, w1[2].1, w1[3].0, w1[3].1
        );
        for p in W1.iter().chain(&B1) {
            let one = [*p];
            let reps = (1e7 / flops(&one)) as usize + 1;
            let r = measure_rounds(&one, t, reps, 31);
            println!(
                "{t} thr {:?}: ours {:.1} / {:.1}, ours (team) {:.1} / {:.1}, matrixmultiply {:.1} / {:.1}, gemm {:.1} / {:.1}",
                p, r[0].0, r[0].1, r[1].0, r[1].1, r[2].0, r[2].1, r[3].0, r[3].1
            );
        }
        return;
    }
    if args.get(1).map(String::as_str) == Some("--wake") {
        // The caller spins `gap_us`, then joins a 100 µs job with one that records when it
        // started: that delay is the time the worker needs to wake up and steal it (100 µs
        // or more: it never came, and the caller ran the job itself).
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            for gap_us in [0u64, 10, 50, 200, 1000] {
                let mut lat = vec![];
                for _ in 0..200 {
                    let t0 = Instant::now();
                    while t0.elapsed().as_micros() < gap_us as u128 {}
                    let start = Instant::now();
                    let (_, d) = rayon::join(
                        || {
                            let t = Instant::now();
                            while t.elapsed().as_micros() < 100 {}
                        },
                        || start.elapsed().as_secs_f64() * 1e6,
                    );
                    lat.push(d);
                }
                lat.sort_by(f64::total_cmp);
                println!(
                    "rayon: gap {gap_us} us: steal latency med {:.1} us, q90 {:.1}, max {:.1}",
                    lat[100], lat[180], lat[199]
                );
            }
        });
        // The same for a 2-thread KernelTeam (blocktime 2 ms): the time from posting a
        // region to its worker starting task 1 (task 0 waits up to 300 µs for that; a
        // worker later than that is cancelled and counted as 300).
        let team = team2();
        for gap_us in [0u64, 10, 50, 200, 1000, 5000] {
            let mut lat = vec![];
            for _ in 0..200 {
                spin_us(gap_us);
                let started = std::sync::atomic::AtomicU64::new(u64::MAX);
                let start = Instant::now();
                team.run(2, |i| {
                    if i == 1 {
                        let ns = start.elapsed().as_nanos() as u64;
                        started.store(ns, std::sync::atomic::Ordering::Release);
                    } else {
                        while started.load(std::sync::atomic::Ordering::Acquire) == u64::MAX
                            && start.elapsed().as_micros() < 300
                        {
                            std::hint::spin_loop();
                        }
                    }
                });
                lat.push((started.into_inner().min(300_000)) as f64 / 1e3);
            }
            lat.sort_by(f64::total_cmp);
            println!(
                "team: gap {gap_us} us: start latency med {:.2} us, q90 {:.2}, max {:.1}",
                lat[100], lat[180], lat[199]
            );
        }
        return;
    }
    if args.get(1).map(String::as_str) == Some("--per-product") {
        // Tuning aid: each product alone, the three implementations interleaved, at 1 and
        // 2 threads (one child process per thread count, for matrixmultiply).
        for t in [1, 2] {
            let out = Command::new(&args[0])
                .arg("--per-product-child")
                .env("MATMUL_NUM_THREADS", t.to_string())
                .output()
                .expect("re-running self");
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
        return;
    }
    // [ours, matrixmultiply, gemm] x (W1, batch 1) at t threads, from a child process.
    let at = |t: usize| -> Vec<f64> {
        let out = Command::new(&args[0])
            .arg("--child")
            .env("MATMUL_NUM_THREADS", t.to_string())
            .output()
            .expect("re-running self");
        let s = String::from_utf8_lossy(&out.stdout);
        s.split_whitespace().map(|x| x.parse().unwrap()).collect()
    };
    println!(
        "f32 GFLOP/s, median of 7 (dispatch {:?}, {} cores); W1 = 8 products of one MLP step ({} MFLOP), batch 1 = 3 forward products",
        current_dispatch(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        flops(&W1) / 1e6
    );
    println!(
        "| implementation | W1, 1 thread | W1, 2 threads | batch 1, 1 thread | batch 1, 2 threads |"
    );
    println!("|---|---:|---:|---:|---:|");
    let (r1, r2) = (at(1), at(2));
    for (i, name) in [
        "dl4rs-kernels, rayon",
        "dl4rs-kernels, KernelTeam",
        "matrixmultiply 0.3",
        "gemm 0.19",
    ]
    .iter()
    .enumerate()
    {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r1[2 * i],
            r2[2 * i],
            r1[2 * i + 1],
            r2[2 * i + 1]
        );
    }
}
