//! Microkernels, packing routines and per-type blocking parameters.
//!
//! A microkernel computes one `MR x NR` tile of C from an `MR x kc` sliver of A and a
//! `kc x NR` sliver of B (packed, or read in place through strides), keeping the tile in
//! registers. The f32 AVX2 and AVX-512 paths pack a B whose columns are contiguous (`A·Bᵀ`)
//! with 8x8 in-register transposes. The element-wise summation order is fixed: `acc = fma(a[p], b[p], acc)` for p = 0..kc, then
//! `c = fma(alpha, acc, beta * c)` (or `alpha * acc` when beta == 0, so C is never read).
//! Edge tiles run the very same vector code on a stack copy of the tile, so an element's
//! value does not depend on whether it sits in a full or a partial tile; that is what makes
//! results independent of thread count and slice offset.

#![allow(clippy::too_many_arguments)] // the microkernel ABI: tile pointers, strides and sizes
use crate::Float;
use crate::dispatch::Isa;

/// One tile: `(kc, a, rs_a, cs_a, b, rs_b, alpha, beta, c, rs_c, cs_c, m, n)`.
///
/// A's sliver is read at `a[i*rs_a + p*cs_a]` (packed: `rs_a = 1, cs_a = MR`) and B's at
/// `b[p*rs_b + j]` (packed: `rs_b = NR`), so an operand that is already laid out that way
/// can skip packing. The kernel reads all MR rows of A and all NR columns of B.
pub type MicroKernel<T> = unsafe fn(
    usize,
    *const T,
    usize,
    usize,
    *const T,
    usize,
    T,
    T,
    *mut T,
    usize,
    usize,
    usize,
    usize,
);

/// Row vector times matrix with unit column stride in B:
/// `(k, n, x, incx, b, row_stride_b, alpha, beta, c, col_stride_c)`.
pub type GemvKernel<T> =
    unsafe fn(usize, usize, *const T, usize, *const T, usize, T, T, *mut T, usize);

/// Packs a `rows x cols` block read through strides into panels: `(rows, cols, src, rs, cs, dst)`.
pub type PackFn<T> = unsafe fn(usize, usize, *const T, usize, usize, *mut T);

/// Kernels and cache blocking for one (type, instruction set) pair.
pub struct GemmSpec<T> {
    /// Tile rows.
    pub mr: usize,
    /// Tile columns.
    pub nr: usize,
    /// Depth of one packed block (upper bound; the driver balances it over k).
    pub kc: usize,
    /// Rows of A packed at once (multiple of `mr`), sized for L2.
    pub mc: usize,
    /// Columns of B packed at once (multiple of `nr`), sized for L3.
    pub nc: usize,
    /// The tile kernel.
    pub kernel: MicroKernel<T>,
    /// The m == 1 kernel.
    pub gemv: GemvKernel<T>,
    /// Packs an A block (`mc x kc`) into `mr`-row panels.
    pub pack_a: PackFn<T>,
    /// Packs a B block (`kc x nc`) into `nr`-column panels.
    pub pack_b: PackFn<T>,
}

/// Packs `A[0..mc, 0..kc]` as panels of MR rows: panel r holds `a[r*MR + i, p]` at
/// `p*MR + i`, zero-padded to a full MR rows.
///
/// # Safety
/// Every `src[i*rs + j*cs]` for i < mc, j < kc is readable and `dst` has room for
/// `ceil(mc/MR)*MR*kc` elements.
pub unsafe fn pack_a<T: Float, const MR: usize>(
    mc: usize,
    kc: usize,
    src: *const T,
    rs: usize,
    cs: usize,
    dst: *mut T,
) {
    let mut d = dst;
    let mut r0 = 0;
    while r0 < mc {
        let rows = MR.min(mc - r0);
        // SAFETY: indices stay inside the region the caller vouched for; d advances exactly
        // MR*kc per panel, within the ceil(mc/MR)*MR*kc elements of dst.
        unsafe {
            let base = src.add(r0 * rs);
            if rows == MR && rs == 1 {
                // A column is contiguous: copy MR elements per step (the Aᵀ case).
                for p in 0..kc {
                    core::ptr::copy_nonoverlapping(base.add(p * cs), d.add(p * MR), MR);
                }
            } else if cs == 1 {
                // Rows are contiguous: read each row sequentially, scatter with stride MR.
                for i in 0..MR {
                    if i < rows {
                        let row = base.add(i * rs);
                        for p in 0..kc {
                            *d.add(p * MR + i) = *row.add(p);
                        }
                    } else {
                        for p in 0..kc {
                            *d.add(p * MR + i) = T::ZERO;
                        }
                    }
                }
            } else {
                for p in 0..kc {
                    for i in 0..MR {
                        *d.add(p * MR + i) = if i < rows {
                            *base.add(i * rs + p * cs)
                        } else {
                            T::ZERO
                        };
                    }
                }
            }
            d = d.add(MR * kc);
        }
        r0 += MR;
    }
}

/// Packs `B[0..kc, 0..nc]` as panels of NR columns: panel s holds `b[p, s*NR + j]` at
/// `p*NR + j`, zero-padded to a full NR columns.
///
/// # Safety
/// Every `src[i*rs + j*cs]` for i < kc, j < nc is readable and `dst` has room for
/// `kc*ceil(nc/NR)*NR` elements.
pub unsafe fn pack_b<T: Float, const NR: usize>(
    kc: usize,
    nc: usize,
    src: *const T,
    rs: usize,
    cs: usize,
    dst: *mut T,
) {
    let mut d = dst;
    let mut c0 = 0;
    while c0 < nc {
        let cols = NR.min(nc - c0);
        // SAFETY: as for pack_a, with the roles of rows and columns exchanged.
        unsafe {
            let base = src.add(c0 * cs);
            if cols == NR && cs == 1 {
                for p in 0..kc {
                    core::ptr::copy_nonoverlapping(base.add(p * rs), d.add(p * NR), NR);
                }
            } else if rs == 1 {
                // Columns are contiguous (the Bᵀ case): read down each column.
                for j in 0..NR {
                    if j < cols {
                        let col = base.add(j * cs);
                        for p in 0..kc {
                            *d.add(p * NR + j) = *col.add(p);
                        }
                    } else {
                        for p in 0..kc {
                            *d.add(p * NR + j) = T::ZERO;
                        }
                    }
                }
            } else {
                for p in 0..kc {
                    for j in 0..NR {
                        *d.add(p * NR + j) = if j < cols {
                            *base.add(p * rs + j * cs)
                        } else {
                            T::ZERO
                        };
                    }
                }
            }
            d = d.add(NR * kc);
        }
        c0 += NR;
    }
}

/// AVX2 packing of f32 B panels (NR = 16 for the AVX2 path, 32 for AVX-512, which has
/// AVX2 too): full panels of a B whose columns are contiguous (unit row stride, the `X·Wᵀ`
/// case) are transposed 8x8 at a time in registers; everything else goes through the
/// generic [`pack_b`]. Produces exactly the generic layout.
///
/// # Safety
/// As for [`pack_b`], and the CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_pack_b_f32<const NR: usize>(
    kc: usize,
    nc: usize,
    src: *const f32,
    rs: usize,
    cs: usize,
    dst: *mut f32,
) {
    use core::arch::x86_64::*;
    const { assert!(NR.is_multiple_of(8)) };
    if rs != 1 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { pack_b::<f32, NR>(kc, nc, src, rs, cs, dst) };
        return;
    }
    let mut c0 = 0;
    while c0 < nc {
        let cols = NR.min(nc - c0);
        // SAFETY: this panel reads columns c0..c0+cols, rows 0..kc of the source and writes
        // the NR*kc elements of panel c0/NR, all inside what the caller vouched for.
        unsafe {
            let base = src.add(c0 * cs);
            let d = dst.add(c0 * kc);
            if cols < NR {
                pack_b::<f32, NR>(kc, cols, base, rs, cs, d);
                break;
            }
            let mut p = 0;
            while p + 8 <= kc {
                for h in 0..NR / 8 {
                    let col = |j: usize| _mm256_loadu_ps(base.add((h * 8 + j) * cs + p));
                    let t0 = _mm256_unpacklo_ps(col(0), col(1));
                    let t1 = _mm256_unpackhi_ps(col(0), col(1));
                    let t2 = _mm256_unpacklo_ps(col(2), col(3));
                    let t3 = _mm256_unpackhi_ps(col(2), col(3));
                    let t4 = _mm256_unpacklo_ps(col(4), col(5));
                    let t5 = _mm256_unpackhi_ps(col(4), col(5));
                    let t6 = _mm256_unpacklo_ps(col(6), col(7));
                    let t7 = _mm256_unpackhi_ps(col(6), col(7));
                    // s[q] holds columns 0..4 (or 4..8 for s[q + 4]) of rows q and q + 4.
                    let s = [
                        _mm256_shuffle_ps::<0x44>(t0, t2),
                        _mm256_shuffle_ps::<0xEE>(t0, t2),
                        _mm256_shuffle_ps::<0x44>(t1, t3),
                        _mm256_shuffle_ps::<0xEE>(t1, t3),
                        _mm256_shuffle_ps::<0x44>(t4, t6),
                        _mm256_shuffle_ps::<0xEE>(t4, t6),
                        _mm256_shuffle_ps::<0x44>(t5, t7),
                        _mm256_shuffle_ps::<0xEE>(t5, t7),
                    ];
                    let o = d.add(p * NR + h * 8);
                    for q in 0..4 {
                        let lo = _mm256_permute2f128_ps::<0x20>(s[q], s[q + 4]);
                        let hi = _mm256_permute2f128_ps::<0x31>(s[q], s[q + 4]);
                        _mm256_storeu_ps(o.add(q * NR), lo);
                        _mm256_storeu_ps(o.add((q + 4) * NR), hi);
                    }
                }
                p += 8;
            }
            while p < kc {
                for j in 0..NR {
                    *d.add(p * NR + j) = *base.add(j * cs + p);
                }
                p += 1;
            }
        }
        c0 += NR;
    }
}

/// Portable tile kernel: plain multiply and add (no `mul_add`, which is a libm call without
/// hardware FMA), written over fixed-size arrays so LLVM keeps the tile in SSE registers.
///
/// # Safety
/// `a[i*rs_a + p*cs_a]` and `b[p*rs_b + j]` are readable for i < MR, j < NR, p < k;
/// `c[i*rs + j*cs]` is writable (and readable when beta != 0) for i < m <= MR, j < n <= NR.
unsafe fn portable_kernel<T: Float, const MR: usize, const NR: usize>(
    k: usize,
    a: *const T,
    rs_a: usize,
    cs_a: usize,
    b: *const T,
    rs_b: usize,
    alpha: T,
    beta: T,
    c: *mut T,
    rs: usize,
    cs: usize,
    m: usize,
    n: usize,
) {
    let mut acc = [[T::ZERO; NR]; MR];
    for p in 0..k {
        let mut ap = [T::ZERO; MR];
        let mut bp = [T::ZERO; NR];
        // SAFETY: p < k, i < MR, j < NR: inside what the caller vouched for.
        unsafe {
            for (i, v) in ap.iter_mut().enumerate() {
                *v = *a.add(i * rs_a + p * cs_a);
            }
            bp.copy_from_slice(core::slice::from_raw_parts(b.add(p * rs_b), NR));
        }
        for i in 0..MR {
            for j in 0..NR {
                acc[i][j] += ap[i] * bp[j];
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(m) {
        for (j, &v) in row.iter().enumerate().take(n) {
            // SAFETY: i < m, j < n, inside the tile the caller vouched for.
            unsafe {
                let p = c.add(i * rs + j * cs);
                *p = if beta == T::ZERO {
                    alpha * v
                } else {
                    alpha * v + beta * *p
                };
            }
        }
    }
}

/// Portable m == 1 kernel: columns in chunks of 64 accumulators, then a scalar tail that
/// performs the same operations per element.
///
/// # Safety
/// `x[p*incx]` for p < k, `b[p*rs_b + j]` for p < k, j < n are readable and `c[j*cs_c]` for
/// j < n is writable.
unsafe fn portable_gemv<T: Float>(
    k: usize,
    n: usize,
    x: *const T,
    incx: usize,
    b: *const T,
    rs_b: usize,
    alpha: T,
    beta: T,
    c: *mut T,
    cs_c: usize,
) {
    const W: usize = 64;
    let mut j0 = 0;
    while j0 < n {
        let w = W.min(n - j0);
        let mut acc = [T::ZERO; W];
        for p in 0..k {
            // SAFETY: p < k and j0 + w <= n, inside the caller's bounds.
            let (xp, row) = unsafe {
                (
                    *x.add(p * incx),
                    core::slice::from_raw_parts(b.add(p * rs_b + j0), w),
                )
            };
            for (acc, &bv) in acc.iter_mut().zip(row) {
                *acc += xp * bv;
            }
        }
        for (j, &v) in acc.iter().enumerate().take(w) {
            // SAFETY: j0 + j < n.
            unsafe {
                let p = c.add((j0 + j) * cs_c);
                *p = if beta == T::ZERO {
                    alpha * v
                } else {
                    alpha * v + beta * *p
                };
            }
        }
        j0 += w;
    }
}

/// Generates a SIMD tile kernel and an m == 1 kernel for one (type, instruction set).
/// AVX2 and AVX-512 instances are the same code with different vector width.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_kernels {
    (
        $kname:ident, $gname:ident, $t:ty, $feat:literal, $vt:ty, $lanes:expr, $mr:expr, $nv:expr,
        $zero:ident, $load:ident, $store:ident, $set1:ident, $fmadd:ident, $mul:ident
    ) => {
        /// # Safety
        /// As for the portable kernel, and the CPU supports the target features.
        #[target_feature(enable = $feat)]
        unsafe fn $kname(
            k: usize,
            a: *const $t,
            rs_a: usize,
            cs_a: usize,
            b: *const $t,
            rs_b: usize,
            alpha: $t,
            beta: $t,
            c: *mut $t,
            rs: usize,
            cs: usize,
            m: usize,
            n: usize,
        ) {
            use core::arch::x86_64::*;
            const MR: usize = $mr;
            const NV: usize = $nv;
            const L: usize = $lanes;
            const NR: usize = NV * L;
            let mut acc: [[$vt; NV]; MR] = [[$zero(); NV]; MR];
            // SAFETY: a[i*rs_a + p*cs_a] and b[p*rs_b + j] for i < MR, j < NR, p < k are
            // readable (packed panels or full tiles of the operands, per the driver); the tile
            // of C is inside the view for i < m, j < n; the stack buffer covers MR*NR elements.
            unsafe {
                // Rows are addressed from two bases, row 3i + r at `base[i] + r*rs_a`
                // (r < 3: one scaled-index address each), which keeps LLVM from chaining
                // the row addresses through one register per step.
                const HALF: usize = MR / 2;
                let mut base = [a, a.add(HALF * rs_a)];
                let mut bp = b;
                for _ in 0..k {
                    let mut bv: [$vt; NV] = [$zero(); NV];
                    for v in 0..NV {
                        bv[v] = $load(bp.add(v * L));
                    }
                    for i in 0..MR {
                        let ai = $set1(*base[i / HALF].add((i % HALF) * rs_a));
                        for v in 0..NV {
                            acc[i][v] = $fmadd(ai, bv[v], acc[i][v]);
                        }
                    }
                    base = [base[0].add(cs_a), base[1].add(cs_a)];
                    bp = bp.add(rs_b);
                }
                let va = $set1(alpha);
                let vb = $set1(beta);
                let read_c = beta != 0.0;
                if m == MR && n == NR && cs == 1 {
                    for i in 0..MR {
                        let row = c.add(i * rs);
                        for v in 0..NV {
                            let p = row.add(v * L);
                            let r = if read_c {
                                $fmadd(va, acc[i][v], $mul(vb, $load(p)))
                            } else {
                                $mul(va, acc[i][v])
                            };
                            $store(p, r);
                        }
                    }
                } else {
                    let mut buf = [0.0 as $t; MR * NR];
                    if read_c {
                        for i in 0..m {
                            for j in 0..n {
                                buf[i * NR + j] = *c.add(i * rs + j * cs);
                            }
                        }
                    }
                    let bptr = buf.as_mut_ptr();
                    for i in 0..MR {
                        for v in 0..NV {
                            let p = bptr.add(i * NR + v * L);
                            let r = if read_c {
                                $fmadd(va, acc[i][v], $mul(vb, $load(p)))
                            } else {
                                $mul(va, acc[i][v])
                            };
                            $store(p, r);
                        }
                    }
                    for i in 0..m {
                        for j in 0..n {
                            *c.add(i * rs + j * cs) = buf[i * NR + j];
                        }
                    }
                }
            }
        }

        /// # Safety
        /// As for the portable gemv, and the CPU supports the target features.
        #[target_feature(enable = $feat)]
        unsafe fn $gname(
            k: usize,
            n: usize,
            x: *const $t,
            incx: usize,
            b: *const $t,
            rs_b: usize,
            alpha: $t,
            beta: $t,
            c: *mut $t,
            cs_c: usize,
        ) {
            use core::arch::x86_64::*;
            const L: usize = $lanes;
            // 8 vector accumulators hide FMA latency; the loop is bound by reading B anyway.
            const NV: usize = 8;
            const W: usize = NV * L;
            let mut tmp = [0.0 as $t; W];
            let mut j0 = 0;
            // SAFETY: all reads are x[p*incx], b[p*rs_b + j] with p < k, j < n, and writes
            // c[j*cs_c] with j < n, which the caller vouched for; tmp holds W elements.
            unsafe {
                while j0 < n {
                    let w = if n - j0 >= W {
                        W
                    } else if n - j0 >= L {
                        L
                    } else {
                        n - j0
                    };
                    if w == W {
                        let mut acc: [$vt; NV] = [$zero(); NV];
                        for p in 0..k {
                            let xp = $set1(*x.add(p * incx));
                            let row = b.add(p * rs_b + j0);
                            for v in 0..NV {
                                acc[v] = $fmadd(xp, $load(row.add(v * L)), acc[v]);
                            }
                        }
                        for v in 0..NV {
                            $store(tmp.as_mut_ptr().add(v * L), acc[v]);
                        }
                    } else if w == L {
                        let mut acc = $zero();
                        for p in 0..k {
                            let xp = $set1(*x.add(p * incx));
                            acc = $fmadd(xp, $load(b.add(p * rs_b + j0)), acc);
                        }
                        $store(tmp.as_mut_ptr(), acc);
                    } else {
                        // Scalar fma performs exactly the per-lane operation of the vector
                        // path, so a column's result does not depend on where it falls.
                        for j in 0..w {
                            let mut acc: $t = 0.0;
                            for p in 0..k {
                                acc = (*x.add(p * incx)).mul_add(*b.add(p * rs_b + j0 + j), acc);
                            }
                            tmp[j] = acc;
                        }
                    }
                    for j in 0..w {
                        let p = c.add((j0 + j) * cs_c);
                        *p = if beta != 0.0 {
                            alpha.mul_add(tmp[j], beta * *p)
                        } else {
                            alpha * tmp[j]
                        };
                    }
                    j0 += w;
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
simd_kernels!(
    avx2_f32_kernel,
    avx2_f32_gemv,
    f32,
    "avx2,fma",
    __m256,
    8,
    6,
    2,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_mul_ps
);
#[cfg(target_arch = "x86_64")]
simd_kernels!(
    avx2_f64_kernel,
    avx2_f64_gemv,
    f64,
    "avx2,fma",
    __m256d,
    4,
    6,
    2,
    _mm256_setzero_pd,
    _mm256_loadu_pd,
    _mm256_storeu_pd,
    _mm256_set1_pd,
    _mm256_fmadd_pd,
    _mm256_mul_pd
);
#[cfg(target_arch = "x86_64")]
simd_kernels!(
    avx512_f32_kernel,
    avx512_f32_gemv,
    f32,
    "avx512f",
    __m512,
    16,
    6,
    2,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_mul_ps
);
#[cfg(target_arch = "x86_64")]
simd_kernels!(
    avx512_f64_kernel,
    avx512_f64_gemv,
    f64,
    "avx512f",
    __m512d,
    8,
    6,
    2,
    _mm512_setzero_pd,
    _mm512_loadu_pd,
    _mm512_storeu_pd,
    _mm512_set1_pd,
    _mm512_fmadd_pd,
    _mm512_mul_pd
);

const PORTABLE_MR: usize = 4;
const PORTABLE_NR: usize = 8;

fn portable_spec<T: Float>() -> GemmSpec<T> {
    GemmSpec {
        mr: PORTABLE_MR,
        nr: PORTABLE_NR,
        kc: 256,
        mc: 64,
        nc: 2048,
        kernel: portable_kernel::<T, PORTABLE_MR, PORTABLE_NR>,
        gemv: portable_gemv::<T>,
        pack_a: pack_a::<T, PORTABLE_MR>,
        pack_b: pack_b::<T, PORTABLE_NR>,
    }
}

/// The f32 kernels for a path. Only called with a path the CPU supports.
pub fn spec_f32(isa: Isa) -> GemmSpec<f32> {
    match isa {
        Isa::Portable => portable_spec(),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => GemmSpec {
            mr: 6,
            nr: 16,
            kc: 256,
            mc: 144,
            nc: 4096,
            kernel: avx2_f32_kernel,
            gemv: avx2_f32_gemv,
            pack_a: pack_a::<f32, 6>,
            pack_b: avx2_pack_b_f32::<16>,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => GemmSpec {
            mr: 6,
            nr: 32,
            kc: 256,
            mc: 144,
            nc: 4096,
            kernel: avx512_f32_kernel,
            gemv: avx512_f32_gemv,
            pack_a: pack_a::<f32, 6>,
            // AVX-512F CPUs have AVX2 (the dispatch checks it).
            pack_b: avx2_pack_b_f32::<32>,
        },
        #[cfg(not(target_arch = "x86_64"))]
        _ => portable_spec(),
    }
}

/// The f64 kernels for a path. Only called with a path the CPU supports.
pub fn spec_f64(isa: Isa) -> GemmSpec<f64> {
    match isa {
        Isa::Portable => portable_spec(),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => GemmSpec {
            mr: 6,
            nr: 8,
            kc: 256,
            mc: 72,
            nc: 2048,
            kernel: avx2_f64_kernel,
            gemv: avx2_f64_gemv,
            pack_a: pack_a::<f64, 6>,
            pack_b: pack_b::<f64, 8>,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => GemmSpec {
            mr: 6,
            nr: 16,
            kc: 256,
            mc: 72,
            nc: 2048,
            kernel: avx512_f64_kernel,
            gemv: avx512_f64_gemv,
            pack_a: pack_a::<f64, 6>,
            pack_b: pack_b::<f64, 16>,
        },
        #[cfg(not(target_arch = "x86_64"))]
        _ => portable_spec(),
    }
}

/// Every path's spec, for scratch sizing that holds whatever path is active at call time.
pub fn all_specs<T: Float>() -> [GemmSpec<T>; 3] {
    [
        T::gemm_spec(Isa::Portable),
        T::gemm_spec(Isa::Avx2),
        T::gemm_spec(Isa::Avx512),
    ]
}
