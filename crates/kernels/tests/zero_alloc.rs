//! Kernels never allocate: a counting global allocator checks that warmed-up gemm calls
//! (1 thread, and 2 threads inside a 2-thread rayon pool) and the slice kernels make zero
//! heap allocations. One test function only, so no other test allocates concurrently.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use dl4rs_kernels::{
    KernelTeam, MatMut, MatRef, Parallelism, Unary, bias_act, gemm, gemm_scratch_len, softmax_rows,
    sum_cols,
};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs_during(f: impl FnOnce()) -> usize {
    let before = ALLOCS.load(Ordering::SeqCst);
    f();
    ALLOCS.load(Ordering::SeqCst) - before
}

#[test]
fn warmed_up_kernels_do_not_allocate() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // Worker threads start asynchronously and allocate while they set themselves up: wait
    // until every worker has run a job, so their start-up doesn't land in a measured window.
    pool.broadcast(|_| ());
    // A 2-thread team (threads == 1 below: called from this thread, not from the pool).
    let team = KernelTeam::new(2).leak();
    // Wait until the worker has run a task, so its start-up is over.
    let on_worker = AtomicUsize::new(0);
    let me = std::thread::current().id();
    while on_worker.load(Ordering::SeqCst) == 0 {
        team.run(2, |i| {
            if i == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            } else if std::thread::current().id() != me {
                on_worker.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    // (m, n, k, A transposed, B transposed): W1 products plus m == 1 shapes, one large enough
    // that the m == 1 path splits over threads.
    let shapes = [
        (128, 256, 784, false, false),
        (784, 256, 128, true, false),
        (128, 256, 128, false, true),
        (128, 10, 128, false, false),
        (1, 256, 784, false, false),
        (1, 1024, 512, false, false),
        (1, 128, 10, false, true),
    ];
    for &(m, n, k, ta, tb) in &shapes {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let av = if ta {
            MatRef::row_major(&a, k, m).unwrap().t()
        } else {
            MatRef::row_major(&a, m, k).unwrap()
        };
        let bv = if tb {
            MatRef::row_major(&b, n, k).unwrap().t()
        } else {
            MatRef::row_major(&b, k, n).unwrap()
        };
        for (threads, par) in [
            (1, Parallelism::None),
            (2, Parallelism::Rayon(2)),
            (1, Parallelism::Team(team)),
        ] {
            let mut scratch = vec![0.0f32; gemm_scratch_len::<f32>(m, n, k, par)];
            let mut call = || {
                let cv = MatMut::row_major(&mut c, m, n).unwrap();
                gemm(1.0, av, bv, 0.0, cv, &mut scratch, par).unwrap();
            };
            if threads == 1 {
                call();
                call();
                assert_eq!(allocs_during(&mut call), 0, "{m}x{n}x{k}, 1 thread");
            } else {
                // Inside the pool, rayon::join queues stack jobs on the worker's deque; the
                // only allocating path (injecting from outside the pool) is never taken.
                pool.install(|| {
                    call();
                    call();
                    assert_eq!(allocs_during(&mut call), 0, "{m}x{n}x{k}, 2 threads");
                });
            }
        }
    }

    let mut x = vec![0.1f32; 128 * 256];
    let mut out = vec![0.0f32; 128 * 256];
    let bias = vec![0.2f32; 256];
    let mut colsum = vec![0.0f32; 256];
    let n = allocs_during(|| {
        softmax_rows(&x, 128, 256, &mut out).unwrap();
        bias_act(&mut x, 128, 256, &bias, Unary::Gelu, Some(&mut out)).unwrap();
        sum_cols(&x, 128, 256, &mut colsum).unwrap();
    });
    assert_eq!(n, 0, "slice kernels");
}
