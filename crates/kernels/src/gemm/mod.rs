//! General matrix multiply, `C = alpha * A·B + beta * C`, BLIS style.
//!
//! Loop nest (outermost first): NC columns of B, KC-deep slices of the inner dimension (B
//! packed into `kc x nc` panels), MC rows of A (packed into `mc x kc` panels), then NR and MR
//! tiles computed by a register-blocked microkernel. All packing buffers live in the caller's
//! scratch (see [`gemm_scratch_len`]); nothing is allocated. Two shortcuts skip work that
//! does not pay: full tiles of an operand the kernel can read where it lies are not packed
//! (row-major A always, row-major B when at most two row tiles reuse it; see `direct`), and
//! a narrow product (n below the tile width, e.g. the 10 classes of a classifier) is
//! computed as `Cᵀ = Bᵀ·Aᵀ`, which wastes fewer tile lanes (see `transposed`).
//!
//! Threads split C into a grid of disjoint blocks, aligned to the tile grid, claimed
//! dynamically, each task carving its own packing region out of the scratch. A two-task
//! split along one dimension is cut in halving blocks (1/2, 1/4, 1/8, 1/8) when that costs
//! no or little repacking, so a worker that wakes late still takes a share. The inner
//! dimension is never split and KC depends on k alone, so every element of C is computed by
//! the same sequence of operations whatever the thread count, the block it falls in, or the
//! address of the operands: results are bit-identical across 1..n threads and across
//! differently aligned copies of the inputs (for a fixed [`Dispatch`](crate::Dispatch) path).

mod epilogue;
mod gemv;
pub(crate) mod kernels;
mod packed;

use epilogue::Epilogue;
pub use epilogue::gemm_bias_act;
use gemv::{GemvJob, gemv_range, run_gemv};
pub(crate) use packed::packed_layout;
pub use packed::{
    PackInfo, PackedB, gemm_packed_b, gemm_prepacked, gemm_prepacked_scratch_len, pack_b,
    packed_b_len, reads_packed_b,
};

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::dispatch::isa;
use crate::{Float, KernelError, KernelTeam, MatMut, MatRef};
use kernels::{GemmSpec, all_specs};

/// How many threads a kernel may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallelism<'t> {
    /// Run on the calling thread.
    None,
    /// At most this many tasks in the current rayon pool (`Rayon(0)` and `Rayon(1)` mean
    /// one). Small problems use fewer: below a work threshold a product runs on one thread,
    /// so batch-1 inference never pays for waking a worker.
    Rayon(usize),
    /// The threads of a [`KernelTeam`] (the caller plus its workers), which stay awake
    /// between products (see [`KernelTeam`]): a product starts on all threads at once, and
    /// one whose worker is not there in time runs on the caller alone. Smaller products
    /// are split than with rayon (the hand-off costs ~1 µs instead of tens). Same bits as
    /// every other `Parallelism`.
    Team(&'t KernelTeam),
}

impl Parallelism<'_> {
    fn tasks(self) -> usize {
        match self {
            Parallelism::None => 1,
            Parallelism::Rayon(n) => n.max(1),
            Parallelism::Team(t) => t.threads(),
        }
    }

    /// Work (flops) a general-path task must have to be worth a hand-off.
    fn min_flops_per_task(self) -> usize {
        match self {
            Parallelism::Team(_) => TEAM_MIN_FLOPS_PER_TASK,
            _ => MIN_FLOPS_PER_TASK,
        }
    }

    /// Elements of B a m == 1 task must stream to be worth a hand-off.
    fn gemv_min_elems_per_task(self) -> usize {
        match self {
            Parallelism::Team(_) => TEAM_GEMV_MIN_ELEMS_PER_TASK,
            _ => GEMV_MIN_ELEMS_PER_TASK,
        }
    }
}

const ALIGN_BYTES: usize = 64;
/// Work (flops) a general-path task must have to be worth a rayon hand-off (~10 µs).
const MIN_FLOPS_PER_TASK: usize = 1 << 21;
/// Blocks per thread in the general path (see `gemm`).
const BLOCKS_PER_TASK: usize = 1;
/// Blocks of a guided two-task split (see `gemm`): halving sizes, the last two equal.
const GUIDED_PARTS: usize = 4;
/// Below this many flops a guided split is worth repacking a shared operand per block.
const GUIDED_REPACK_FLOPS: usize = 1 << 25;
/// Elements of B a m == 1 task must stream to be worth a hand-off.
const GEMV_MIN_ELEMS_PER_TASK: usize = 1 << 17;
/// `MIN_FLOPS_PER_TASK` for a [`KernelTeam`], whose spinning workers start in ~1 µs.
const TEAM_MIN_FLOPS_PER_TASK: usize = 1 << 19;
/// `GEMV_MIN_ELEMS_PER_TASK` for a [`KernelTeam`].
const TEAM_GEMV_MIN_ELEMS_PER_TASK: usize = 1 << 15;
/// Columns of a m == 1 chunk claimed by a team task (a multiple of 64, see `run_gemv`).
const TEAM_GEMV_CHUNK: usize = 256;

fn align_elems<T>() -> usize {
    ALIGN_BYTES / size_of::<T>()
}

/// Depth of a packed block: at most `spec_kc`, balanced so the blocks of k are near equal
/// (784 becomes 4 x 196 rather than 3 x 256 + 16). Depends on k only, never on threads.
fn balanced_kc(spec_kc: usize, k: usize) -> usize {
    if k == 0 {
        return 0;
    }
    k.div_ceil(k.div_ceil(spec_kc))
}

/// (A panel, B panel) elements one task needs, each rounded to a whole 64-byte line.
fn task_regions<T: Float>(spec: &GemmSpec<T>, m: usize, n: usize, k: usize) -> (usize, usize) {
    let kc = balanced_kc(spec.kc, k);
    let mc = spec.mc.min(m.div_ceil(spec.mr) * spec.mr);
    let nc = spec.nc.min(n.div_ceil(spec.nr) * spec.nr);
    let al = align_elems::<T>();
    ((mc * kc).div_ceil(al) * al, (kc * nc).div_ceil(al) * al)
}

/// Whether to compute `Cᵀ = Bᵀ·Aᵀ` instead: when n is narrow and m is not, the transposed
/// product covers C with far fewer padded tile lanes (128x10 runs as 10x128: 12 x 128 lanes
/// on a 6x16 tile instead of 132 x 16). Each element still gets the same sequence of fmas
/// (an fma's two factors commute exactly), and the choice depends on the shape and the
/// path alone, never on threads or addresses.
fn transposed<T: Float>(spec: &GemmSpec<T>, m: usize, n: usize) -> bool {
    let lanes = |rows: usize, cols: usize| {
        rows.div_ceil(spec.mr) * spec.mr * cols.div_ceil(spec.nr) * spec.nr
    };
    // Transposed tiles store C with a non-unit column stride (the slower edge path), so ask
    // for a clear gain. n >= 2 keeps m == 1 problems off the transposed path.
    n >= 2 && n < spec.nr && 5 * lanes(n, m) < 4 * lanes(m, n)
}

/// A task's scratch elements for the larger of the two orientations of the problem.
fn per_task_len<T: Float>(m: usize, n: usize, k: usize) -> usize {
    all_specs::<T>()
        .iter()
        .map(|s| {
            let (a, b) = task_regions(s, m, n, k);
            let (at, bt) = task_regions(s, n, m, k);
            (a + b).max(at + bt)
        })
        .max()
        .unwrap_or(0)
}

/// Scratch elements [`gemm`] needs for an `m x k` by `k x n` product with `par`.
///
/// Covers every dispatch path and `par`'s full task count, plus 64 bytes of slack so the
/// packing buffers can start on a cache line whatever the scratch's own alignment. Zero when
/// no packing happens (an empty product or m == 1, which streams B without packing).
pub fn gemm_scratch_len<T: Float>(m: usize, n: usize, k: usize, par: Parallelism<'_>) -> usize {
    if m <= 1 {
        return 0;
    }
    tile_scratch_len::<T>(m, n, k, par)
}

/// The scratch of a product that runs on the tiles whatever m is (see `gemm_prepacked`).
fn tile_scratch_len<T: Float>(m: usize, n: usize, k: usize, par: Parallelism<'_>) -> usize {
    if m == 0 || n == 0 || k == 0 {
        return 0;
    }
    par.tasks() * per_task_len::<T>(m, n, k) + align_elems::<T>()
}

/// Benchmark aid, not API: runs the current path's tile kernel `reps` times on one packed
/// `MR x kc` sliver of A and `kc x NR` sliver of B carved from `buf` (L1-resident for a
/// small `kc`), accumulating into a tile of C also in `buf`. Returns the flops performed
/// and the tile `(MR, NR)`; no flops when `buf` is too small (it needs
/// `(MR + NR) * kc + MR * NR` elements, at most `38 * kc + 192`, plus 64 bytes: the slivers
/// start on a cache line).
#[doc(hidden)]
pub fn microkernel_l1_run<T: Float>(
    kc: usize,
    reps: usize,
    buf: &mut [T],
) -> (usize, usize, usize) {
    let spec = T::gemm_spec(isa());
    let (mr, nr) = (spec.mr, spec.nr);
    let need = (mr + nr) * kc + mr * nr;
    // Start on a cache line, as gemm's packed panels do.
    let off = buf.as_ptr().align_offset(ALIGN_BYTES).min(buf.len());
    let buf = &mut buf[off..];
    if buf.len() < need || kc == 0 {
        return (0, mr, nr);
    }
    let (ab, c) = buf.split_at_mut((mr + nr) * kc);
    let (a, b) = ab.split_at(mr * kc);
    for _ in 0..reps {
        // SAFETY: a holds MR*kc elements read at i + p*MR, b holds kc*NR read at p*NR + j,
        // c holds MR*NR written at i*NR + j: the packed layouts the kernel expects.
        unsafe {
            (spec.kernel)(
                kc,
                a.as_ptr(),
                1,
                mr,
                b.as_ptr(),
                nr,
                T::ONE,
                T::ONE,
                c.as_mut_ptr(),
                nr,
                1,
                mr,
                nr,
            );
        }
    }
    (2 * mr * nr * kc * reps, mr, nr)
}

/// `C = alpha * A·B + beta * C`, with BLAS semantics: when `beta == 0`, C is not read (NaN or
/// garbage in C is overwritten); when `alpha == 0` or k == 0, A and B are not read.
///
/// Any strides are accepted (transposes are views: `a.t()`). `scratch` must hold at least
/// [`gemm_scratch_len`]`(m, n, k, par)` elements; its contents on entry do not matter.
///
/// ```
/// use dl4rs_kernels::{gemm, gemm_scratch_len, MatMut, MatRef, Parallelism};
/// let a = [1.0f32, 2.0, 3.0, 4.0]; // 2x2
/// let b = [5.0f32, 6.0, 7.0, 8.0]; // 2x2, used transposed
/// let mut c = [f32::NAN; 4];
/// let par = Parallelism::None;
/// let mut scratch = vec![0.0; gemm_scratch_len::<f32>(2, 2, 2, par)];
/// gemm(
///     1.0,
///     MatRef::row_major(&a, 2, 2)?,
///     MatRef::row_major(&b, 2, 2)?.t(),
///     0.0,
///     MatMut::row_major(&mut c, 2, 2)?,
///     &mut scratch,
///     par,
/// )?;
/// assert_eq!(c, [17.0, 23.0, 39.0, 53.0]);
/// # Ok::<(), dl4rs_kernels::KernelError>(())
/// ```
pub fn gemm<T: Float>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
    scratch: &mut [T],
    par: Parallelism<'_>,
) -> Result<(), KernelError> {
    gemm_impl(alpha, a, b, BSource::View, beta, c, scratch, par, None)
}

/// How [`gemm_impl`] may read B.
#[derive(Clone, Copy)]
enum BSource<'p, 'a, T> {
    /// Only as the view `b` (packing it as it goes).
    View,
    /// Packed, with `b` (the matrix it was packed from) for the paths that read B unpacked.
    PackedWithView(&'p PackedB<'a, T>),
    /// Packed only: `b` is a stand-in of the right shape that is never read, so every path,
    /// m == 1 included, takes the tiles (see [`packed::gemm_prepacked`]).
    PackedOnly(&'p PackedB<'a, T>),
}

/// The product, with B optionally pre-packed and an optional epilogue (see `epilogue.rs`):
/// applied by each task to its blocks of C after their last depth block, or, where the
/// product is not computed in blocks of C as laid out (m == 1, k == 0, the transposed
/// product), over all of C afterwards. Either way each element gets the same operations.
#[allow(clippy::too_many_arguments)]
fn gemm_impl<T: Float>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    source: BSource<'_, '_, T>,
    beta: T,
    mut c: MatMut<'_, T>,
    scratch: &mut [T],
    par: Parallelism<'_>,
    epi: Option<&Epilogue<T>>,
) -> Result<(), KernelError> {
    const OP: &str = "gemm";
    if a.cols() != b.rows() {
        return Err(KernelError::InnerDimension {
            op: OP,
            a_rows: a.rows(),
            a_cols: a.cols(),
            b_rows: b.rows(),
            b_cols: b.cols(),
        });
    }
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    if c.rows() != m || c.cols() != n {
        return Err(KernelError::OutputShape {
            op: OP,
            rows: m,
            cols: n,
            c_rows: c.rows(),
            c_cols: c.cols(),
        });
    }
    let needed = match source {
        BSource::PackedOnly(_) => tile_scratch_len::<T>(m, n, k, par),
        _ => gemm_scratch_len::<T>(m, n, k, par),
    };
    if scratch.len() < needed {
        return Err(KernelError::ScratchTooSmall {
            op: OP,
            needed,
            found: scratch.len(),
        });
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let (rs_c, cs_c) = (c.row_stride(), c.col_stride());
    let cp = CPtr(c.as_mut_ptr());
    if k == 0 || alpha == T::ZERO {
        // SAFETY: the view was checked in bounds and non-aliasing at construction.
        unsafe {
            scale_c(beta, cp.0, m, n, rs_c, cs_c);
            // SAFETY: all of C, computed; the epilogue's caller checked unit column stride.
            if let Some(e) = epi {
                e.apply(cp.0, rs_c, (0, 0), (m, n));
            }
        }
        return Ok(());
    }
    let spec = T::gemm_spec(isa());
    let threads = par.tasks();
    let (packed, packed_only) = match source {
        BSource::View => (None, false),
        BSource::PackedWithView(p) => (Some(p), false),
        BSource::PackedOnly(p) => (Some(p), true),
    };
    if m == 1 && !packed_only {
        let tasks = threads.min((k * n / par.gemv_min_elems_per_task()).max(1));
        let job = GemvJob {
            spec: &spec,
            alpha,
            a,
            b,
            beta,
            c: cp,
            cs_c,
        };
        match par {
            Parallelism::Team(team) if tasks > 1 => {
                // Chunks claimed dynamically, so a late worker leaves nothing waiting.
                let next = AtomicUsize::new(0);
                team.run(tasks, |_| {
                    loop {
                        let j0 = next.fetch_add(1, Ordering::Relaxed) * TEAM_GEMV_CHUNK;
                        if j0 >= n {
                            return;
                        }
                        gemv_range(&job, j0, (j0 + TEAM_GEMV_CHUNK).min(n));
                    }
                });
            }
            _ => run_gemv(&job, 0, n, tasks),
        }
        if let Some(e) = epi {
            // SAFETY: the one row of C, computed.
            unsafe { e.apply(cp.0, rs_c, (0, 0), (1, n)) };
        }
        return Ok(());
    }
    // Packed B stays B: the transposed product would make it the left operand.
    let packed = packed.map(|p| PackedPtr(p.data.as_ptr()));
    let (m0, n0, rs_c0) = (m, n, rs_c);
    let is_transposed = packed.is_none() && transposed(&spec, m, n);
    let (a, b, m, n, rs_c, cs_c) = if is_transposed {
        (b.t(), a.t(), n, m, cs_c, rs_c)
    } else {
        (a, b, m, n, rs_c, cs_c)
    };
    let flops = 2 * m * n * k;
    let tasks = threads.min((flops / par.min_flops_per_task()).max(1));
    // Blocks are claimed dynamically, so a worker that wakes late (a halted vCPU can take a
    // few hundred µs) never leaves its block waiting. More blocks than threads would let it
    // still take a share, but each block repacks its operands: 1 per thread measured best.
    let blocks = if tasks > 1 {
        tasks * BLOCKS_PER_TASK
    } else {
        1
    };
    let (tm, tn) = grid(&spec, (m, n, k), (a.col_stride(), b.col_stride()), blocks);
    let tasks = tasks.min(tm * tn);
    // Two tasks splitting C along one dimension: cut it into guided blocks (1/2, 1/4, 1/8,
    // 1/8). The caller claims the half at once; a worker that wakes late (20 - 150 µs on
    // this kind of VM, about what one thread needs for 8 MFLOP) still takes a share
    // instead of leaving the caller waiting on an untouched half. Each extra
    // block repacks the operand the blocks share unless it is read in place, so a large
    // product, where the wake-up is a small fraction, keeps the even split then.
    let (da, db) = direct(&spec, a.col_stride(), b.col_stride(), m);
    let shared_direct = if tm == 1 { da } else { db };
    let guided = tasks == 2 && tm * tn == 2 && (shared_direct || flops < GUIDED_REPACK_FLOPS);
    let (tm, tn) = match (guided, tm) {
        (false, _) => (tm, tn),
        (true, 1) => (1, GUIDED_PARTS),
        (true, _) => (GUIDED_PARTS, 1),
    };
    let per = per_task_len::<T>(m, n, k);
    let off = scratch
        .as_ptr()
        .align_offset(ALIGN_BYTES)
        .min(align_elems::<T>());
    let region = &mut scratch[off..off + tasks * per];
    let (abuf_len, _) = task_regions(&spec, m, n, k);
    let job = Job {
        spec: &spec,
        kc: balanced_kc(spec.kc, k),
        alpha,
        a,
        b,
        beta,
        c: cp,
        rs_c,
        cs_c,
        tm,
        tn,
        guided,
        per,
        abuf_len,
        packed,
        epi: if is_transposed { None } else { epi },
        next: AtomicUsize::new(0),
    };
    match par {
        Parallelism::Team(team) if tasks > 1 => run_team(&job, team, tasks, region),
        _ => run_tasks(&job, 0, tasks, region),
    }
    if let (true, Some(e)) = (is_transposed, epi) {
        // SAFETY: all of C, computed, in its own orientation (unit column stride).
        unsafe { e.apply(cp.0, rs_c0, (0, 0), (m0, n0)) };
    }
    Ok(())
}

/// The start of a [`PackedB`]'s data, shared by tasks that only read it.
#[derive(Clone, Copy)]
struct PackedPtr<T>(*const T);
// SAFETY: tasks only read through it, while the `PackedB` borrow it came from is alive (the
// whole `gemm_impl` call).
unsafe impl<T: Sync> Send for PackedPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for PackedPtr<T> {}

/// A raw pointer to C that tasks may share: each writes only its own block of C.
#[derive(Clone, Copy)]
struct CPtr<T>(*mut T);
// SAFETY: the driver hands each task a disjoint set of C elements (blocks of a grid over a
// view checked non-aliasing at construction), so concurrent writes never touch one location.
unsafe impl<T: Send> Send for CPtr<T> {}
// SAFETY: as above; a shared CPtr is only used to derive pointers to disjoint blocks.
unsafe impl<T: Send> Sync for CPtr<T> {}

/// `C = beta * C` (beta == 0 writes zeros without reading).
///
/// # Safety
/// `c[i*rs + j*cs]` is writable for i < m, j < n.
unsafe fn scale_c<T: Float>(beta: T, c: *mut T, m: usize, n: usize, rs: usize, cs: usize) {
    for i in 0..m {
        for j in 0..n {
            // SAFETY: inside the view, per the caller.
            unsafe {
                let p = c.add(i * rs + j * cs);
                *p = if beta == T::ZERO { T::ZERO } else { beta * *p };
            }
        }
    }
}

/// Whether full tiles of A and B are read in place rather than packed, for a block of `m`
/// rows (edge tiles are always packed; the arithmetic is the same either way, only the
/// addresses differ):
/// * A with unit column stride (row-major `X·W`): the kernel streams MR rows, each read
///   sequentially, so packing would only copy it once more.
/// * B with unit column stride when at most two row tiles use each B sliver: packing pays
///   off as soon as a packed panel is reused from L1 (rows of B 512 or 1024 bytes apart
///   fall into a few L1 sets).
fn direct<T>(spec: &GemmSpec<T>, cs_a: usize, cs_b: usize, m: usize) -> (bool, bool) {
    (cs_a == 1, cs_b == 1 && m <= 2 * spec.mr)
}

/// Picks a `tm x tn` grid of `tasks` blocks minimizing the critical path: the largest
/// block's compute plus its packing of A rows and B columns (weighted as ~16 flops per
/// packed element; operands read in place cost nothing).
fn grid<T: Float>(
    spec: &GemmSpec<T>,
    (m, n, k): (usize, usize, usize),
    (cs_a, cs_b): (usize, usize),
    tasks: usize,
) -> (usize, usize) {
    let mt = m.div_ceil(spec.mr);
    let nt = n.div_ceil(spec.nr);
    let mut best = (1, 1);
    let mut best_cost = usize::MAX;
    for tm in 1..=tasks {
        if !tasks.is_multiple_of(tm) {
            continue;
        }
        let tn = tasks / tm;
        if tm > mt || tn > nt {
            continue;
        }
        let bm = mt.div_ceil(tm) * spec.mr;
        let bn = nt.div_ceil(tn) * spec.nr;
        let (da, db) = direct(spec, cs_a, cs_b, bm);
        let cost = k * (2 * bm * bn + 16 * (usize::from(!da) * bm + usize::from(!db) * bn));
        if cost < best_cost {
            best_cost = cost;
            best = (tm, tn);
        }
    }
    if best_cost == usize::MAX {
        // Fewer tiles than tasks in both directions: split along the longer one.
        if mt >= nt {
            (tasks.min(mt), 1)
        } else {
            (1, tasks.min(nt))
        }
    } else {
        best
    }
}

/// Start of part `i` of `parts` when `tiles` tiles of `tile` elements are split evenly (or,
/// `guided`, in halving parts: 1/2, 1/4, ..., the last two equal), clamped to `len`.
/// Boundaries fall on the tile grid, which keeps edge tiles where a one-thread run has them.
fn part_start(
    i: usize,
    parts: usize,
    tiles: usize,
    tile: usize,
    len: usize,
    guided: bool,
) -> usize {
    let t = if !guided || parts == 1 {
        i * tiles / parts
    } else if i >= parts {
        tiles
    } else {
        tiles - (tiles >> i)
    };
    (t * tile).min(len)
}

struct Job<'s, 'a, T> {
    spec: &'s GemmSpec<T>,
    kc: usize,
    alpha: T,
    a: MatRef<'a, T>,
    b: MatRef<'a, T>,
    beta: T,
    c: CPtr<T>,
    rs_c: usize,
    cs_c: usize,
    tm: usize,
    tn: usize,
    /// Whether the split dimension is cut in halving parts (see `part_start`).
    guided: bool,
    per: usize,
    abuf_len: usize,
    /// B already packed ([`PackedB`] for this spec and kc), read instead of packing.
    packed: Option<PackedPtr<T>>,
    /// Applied to each block after its last depth block.
    epi: Option<&'s Epilogue<T>>,
    /// Next unclaimed block of the `tm x tn` grid.
    next: AtomicUsize,
}

/// Runs tasks `lo..hi` on `region` (their scratch, `per` elements each); each task claims
/// blocks until none is left. `rayon::join` runs
/// its closures as stack jobs: on a pool worker thread it allocates nothing, which is what
/// keeps a warmed-up threaded gemm allocation-free.
fn run_tasks<T: Float>(job: &Job<'_, '_, T>, lo: usize, hi: usize, region: &mut [T]) {
    if hi - lo == 1 {
        // Which thread computes a block does not change its bits: blocks sit on the tile grid.
        loop {
            let b = job.next.fetch_add(1, Ordering::Relaxed);
            if b >= job.tm * job.tn {
                return;
            }
            run_block(job, b, region);
        }
    }
    let mid = lo + (hi - lo) / 2;
    let (r1, r2) = region.split_at_mut((mid - lo) * job.per);
    rayon::join(
        || run_tasks(job, lo, mid, r1),
        || run_tasks(job, mid, hi, r2),
    );
}

/// The scratch of a team region, shared by its tasks, each using its own `per` elements.
struct Regions<T>(*mut T, usize);
// SAFETY: tasks derive disjoint sub-slices from it (task i: [i*per, (i+1)*per)), and the
// team runs each task index exactly once.
unsafe impl<T: Send> Sync for Regions<T> {}

/// `run_tasks` on a [`KernelTeam`]: task i uses region i and claims blocks until none is
/// left. A worker that has not started when the caller runs out of blocks is cancelled (its
/// task runs on the caller and finds nothing to claim), so the caller never waits for one.
fn run_team<T: Float>(job: &Job<'_, '_, T>, team: &KernelTeam, tasks: usize, region: &mut [T]) {
    debug_assert!(region.len() >= tasks * job.per);
    let regions = Regions(region.as_mut_ptr(), job.per);
    team.run(tasks, |i| {
        let regions = &regions;
        // SAFETY: i < tasks, so [i*per, (i+1)*per) is inside `region` (tasks*per elements);
        // each index runs once, so no two live slices overlap; `region` outlives the run.
        let mine =
            unsafe { core::slice::from_raw_parts_mut(regions.0.add(i * regions.1), regions.1) };
        loop {
            let b = job.next.fetch_add(1, Ordering::Relaxed);
            if b >= job.tm * job.tn {
                return;
            }
            run_block(job, b, mine);
        }
    });
}

fn run_block<T: Float>(job: &Job<'_, '_, T>, task: usize, scratch: &mut [T]) {
    let spec = job.spec;
    let (m, n) = (job.a.rows(), job.b.cols());
    let (ti, tj) = (task / job.tn, task % job.tn);
    let mt = m.div_ceil(spec.mr);
    let nt = n.div_ceil(spec.nr);
    let r0 = part_start(ti, job.tm, mt, spec.mr, m, job.guided);
    let r1 = part_start(ti + 1, job.tm, mt, spec.mr, m, job.guided);
    let c0 = part_start(tj, job.tn, nt, spec.nr, n, job.guided);
    let c1 = part_start(tj + 1, job.tn, nt, spec.nr, n, job.guided);
    if r0 == r1 || c0 == c1 {
        return;
    }
    let a = job.a.sub(r0, r1, 0, job.a.cols());
    let b = job.b.sub(0, job.b.rows(), c0, c1);
    let (abuf, bbuf) = scratch.split_at_mut(job.abuf_len);
    // SAFETY: the block [r0, r1) x [c0, c1) is inside C and disjoint from other tasks'
    // blocks; the scratch halves were sized by task_regions for this spec and problem.
    unsafe {
        let c = job.c.0.add(r0 * job.rs_c + c0 * job.cs_c);
        // Packed B: the slivers of columns c0.. (see `PackedB`'s layout).
        let n_pad = n.div_ceil(spec.nr) * spec.nr;
        let packed = job.packed.map(|p| (p.0, n_pad, c0));
        let epi = job.epi.map(|e| (e, r0, c0));
        gemm_block(
            spec, job.kc, job.alpha, a, b, packed, job.beta, c, job.rs_c, job.cs_c, abuf, bbuf, epi,
        );
    }
}

/// The BLIS loop nest over one block of C.
///
/// # Safety
/// `c[i*rs_c + j*cs_c]` is writable for i < a.rows(), j < b.cols(); abuf/bbuf hold the
/// panels that `task_regions` sizes for this spec and a problem at least this large; with an
/// epilogue, `cs_c == 1` and the block starts at (r0, c0) of the epilogue's C.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_block<T: Float>(
    spec: &GemmSpec<T>,
    kc: usize,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    packed: Option<(*const T, usize, usize)>,
    beta: T,
    c: *mut T,
    rs_c: usize,
    cs_c: usize,
    abuf: &mut [T],
    bbuf: &mut [T],
    epi: Option<(&Epilogue<T>, usize, usize)>,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let (rs_a, cs_a, rs_b, cs_b) = (
        a.row_stride(),
        a.col_stride(),
        b.row_stride(),
        b.col_stride(),
    );
    let (ap, bp) = (a.data().as_ptr(), b.data().as_ptr());
    let (mr, nr) = (spec.mr, spec.nr);
    let (abuf, bbuf) = (abuf.as_mut_ptr(), bbuf.as_mut_ptr());
    let (a_direct, b_direct) = direct(spec, cs_a, cs_b, m);
    let mut jc = 0;
    while jc < n {
        let ncb = spec.nc.min(n - jc);
        let nfull = if b_direct && packed.is_none() {
            ncb / nr * nr
        } else {
            0
        };
        let mut pc = 0;
        while pc < k {
            let kcb = kc.min(k - pc);
            // SAFETY: the packed ranges are inside the views (checked at construction) and
            // the buffers (sized by task_regions); direct slivers are full MR x kcb / kcb x NR
            // tiles inside the views; tiles are inside this block of C. A pre-packed B holds
            // k * n_pad elements laid out as `PackedB` says, so its slivers of columns
            // c0 + jc .. c0 + jc + ncb at depth pc are inside it.
            unsafe {
                let b0 = bp.add(pc * rs_b + jc * cs_b);
                let bbuf = match packed {
                    Some((p, n_pad, c0)) => p.add(pc * n_pad + (c0 + jc) * kcb),
                    None => {
                        if nfull < ncb {
                            (spec.pack_b)(kcb, ncb - nfull, b0.add(nfull * cs_b), rs_b, cs_b, bbuf);
                        }
                        bbuf.cast_const()
                    }
                };
                let beta_eff = if pc == 0 { beta } else { T::ONE };
                let mut ic = 0;
                while ic < m {
                    let mcb = spec.mc.min(m - ic);
                    let a0 = ap.add(ic * rs_a + pc * cs_a);
                    let mfull = if a_direct { mcb / mr * mr } else { 0 };
                    if mfull < mcb {
                        (spec.pack_a)(mcb - mfull, kcb, a0.add(mfull * rs_a), rs_a, cs_a, abuf);
                    }
                    let mut jr = 0;
                    while jr < ncb {
                        let nrb = nr.min(ncb - jr);
                        let (bs, ldb) = if jr < nfull {
                            (b0.add(jr), rs_b)
                        } else {
                            (bbuf.add((jr - nfull) * kcb), nr)
                        };
                        let mut ir = 0;
                        while ir < mcb {
                            let mrb = mr.min(mcb - ir);
                            let (as_, rsa, csa) = if ir < mfull {
                                (a0.add(ir * rs_a), rs_a, cs_a)
                            } else {
                                (abuf.add((ir - mfull) * kcb).cast_const(), 1, mr)
                            };
                            (spec.kernel)(
                                kcb,
                                as_,
                                rsa,
                                csa,
                                bs,
                                ldb,
                                alpha,
                                beta_eff,
                                c.add((ic + ir) * rs_c + (jc + jr) * cs_c),
                                rs_c,
                                cs_c,
                                mrb,
                                nrb,
                            );
                            ir += mr;
                        }
                        jr += nr;
                    }
                    if let (Some((e, r0, c0)), true) = (epi, pc + kcb == k) {
                        // The block's rows ic.. and columns jc.. are final and still in L2.
                        e.apply(c.add(ic * rs_c + jc), rs_c, (r0 + ic, c0 + jc), (mcb, ncb));
                    }
                    ic += mcb;
                }
            }
            pc += kcb;
        }
        jc += ncb;
    }
}
