//! Criterion: dl4rs-kernels gemm vs `matrixmultiply` and the `gemm` crate on the 8 f32
//! products of one MLP training step (W1) and on batch-1 inference, 1 and 2 threads.
//! Throughput is in FLOP (criterion prints it as elements/s, read G elem/s as GFLOP/s).
//!
//! `cargo bench -p dl4rs-kernels --bench gemm`
//!
//! matrixmultiply's thread count comes from `MATMUL_NUM_THREADS`, read once per process; it is
//! benchmarked at whatever that variable says (see `examples/gemm_gflops.rs` for both).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dl4rs_kernels::{MatMut, MatRef, Parallelism, gemm, gemm_scratch_len};

type Shape = (usize, usize, usize, bool, bool);

const W1: [Shape; 8] = [
    (128, 256, 784, false, false),
    (128, 128, 256, false, false),
    (128, 10, 128, false, false),
    (784, 256, 128, true, false),
    (256, 128, 128, true, false),
    (128, 10, 128, true, false),
    (128, 128, 10, false, true),
    (128, 256, 128, false, true),
];
const B1: [Shape; 3] = [
    (1, 256, 784, false, false),
    (1, 128, 256, false, false),
    (1, 10, 128, false, false),
];

struct Prob {
    s: Shape,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

impl Prob {
    fn new(s: Shape) -> Self {
        let (m, n, k, _, _) = s;
        Prob {
            s,
            a: vec![0.5; m * k],
            b: vec![0.25; k * n],
            c: vec![0.0; m * n],
        }
    }
    /// (rs_a, cs_a, rs_b, cs_b)
    fn strides(&self) -> (usize, usize, usize, usize) {
        let (m, n, k, ta, tb) = self.s;
        let (ra, ca) = if ta { (1, m) } else { (k, 1) };
        let (rb, cb) = if tb { (1, k) } else { (n, 1) };
        let _ = n;
        (ra, ca, rb, cb)
    }
}

fn flops(set: &[Shape]) -> u64 {
    set.iter()
        .map(|&(m, n, k, _, _)| 2 * (m * n * k) as u64)
        .sum()
}

fn ours(ps: &mut [Prob], par: Parallelism, scratch: &mut [f32]) {
    for p in ps {
        let (m, n, k, _, _) = p.s;
        let (ra, ca, rb, cb) = p.strides();
        let a = MatRef::new(&p.a, m, k, ra, ca).unwrap();
        let b = MatRef::new(&p.b, k, n, rb, cb).unwrap();
        gemm(
            1.0,
            a,
            b,
            0.0,
            MatMut::row_major(&mut p.c, m, n).unwrap(),
            scratch,
            par,
        )
        .unwrap();
    }
}

fn mm(ps: &mut [Prob]) {
    for p in ps {
        let (m, n, k, _, _) = p.s;
        let (ra, ca, rb, cb) = p.strides();
        // SAFETY: pointers and strides describe the Vecs of this problem.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                p.a.as_ptr(),
                ra as isize,
                ca as isize,
                p.b.as_ptr(),
                rb as isize,
                cb as isize,
                0.0,
                p.c.as_mut_ptr(),
                n as isize,
                1,
            )
        }
    }
}

fn gemm_crate(ps: &mut [Prob], threads: usize) {
    for p in ps {
        let (m, n, k, _, _) = p.s;
        let (ra, ca, rb, cb) = p.strides();
        let par = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: as above; the gemm crate computes dst = alpha*dst + beta*lhs*rhs.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                p.c.as_mut_ptr(),
                1,
                n as isize,
                false,
                p.a.as_ptr(),
                ca as isize,
                ra as isize,
                p.b.as_ptr(),
                cb as isize,
                rb as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            )
        }
    }
}

fn bench_set(c: &mut Criterion, name: &str, set: &[Shape]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(flops(set)));
    group.sample_size(20);
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let par = if threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        let len = set
            .iter()
            .map(|&(m, n, k, _, _)| gemm_scratch_len::<f32>(m, n, k, par))
            .max()
            .unwrap();
        let mut scratch = vec![0.0f32; len];
        let mut ps: Vec<Prob> = set.iter().map(|&s| Prob::new(s)).collect();
        group.bench_function(format!("dl4rs-kernels/{threads}t"), |b| {
            pool.install(|| b.iter(|| ours(&mut ps, par, &mut scratch)))
        });
        group.bench_function(format!("gemm-crate/{threads}t"), |b| {
            pool.install(|| b.iter(|| gemm_crate(&mut ps, threads)))
        });
    }
    let mut ps: Vec<Prob> = set.iter().map(|&s| Prob::new(s)).collect();
    group.bench_function("matrixmultiply/MATMUL_NUM_THREADS", |b| {
        b.iter(|| mm(&mut ps))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_set(c, "w1_train_step_f32", &W1);
    bench_set(c, "batch1_forward_f32", &B1);
}

criterion_group!(gemm_benches, benches);
criterion_main!(gemm_benches);
