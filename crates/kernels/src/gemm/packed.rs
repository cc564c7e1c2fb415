//! B packed once for many products ([`pack_b`], [`gemm_packed_b`]): what a recurrence that
//! multiplies by the same weights at every time step uses instead of packing them in every
//! product. The packed layout is the one [`gemm`](super::gemm)'s own B panels have, for the
//! dispatch path current at packing, so a packed product gives `gemm`'s bits.

use super::kernels::all_specs;
use super::{BSource, balanced_kc, gemm_impl};
use crate::dispatch::isa;
use crate::{Float, KernelError, MatMut, MatRef, Parallelism};

/// [`gemm`](super::gemm) with B also given packed ([`pack_b`]): the products of a recurrence that
/// multiply by the same weights at every step pack them once instead of once per step.
/// `b` must be the matrix `packed` was made from (checked: its shape); where the path would
/// not pack B anyway (one row of A, or a narrow B computed transposed) or the dispatch path
/// changed since packing, `b` is read as [`gemm`](super::gemm) reads it. Same bits as [`gemm`](super::gemm).
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed_b<T: Float>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    packed: &PackedB<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
    scratch: &mut [T],
    par: Parallelism<'_>,
) -> Result<(), KernelError> {
    if packed.info.shape() != (b.rows(), b.cols()) {
        return Err(KernelError::InvalidArgument {
            op: "gemm_packed_b",
            what: "the packed B must be packed from b (same rows and columns): pack b again",
        });
    }
    let source = if packed.usable() {
        BSource::PackedWithView(packed)
    } else {
        BSource::View
    };
    gemm_impl(alpha, a, b, source, beta, c, scratch, par, None)
}

/// `C = alpha * A·B + beta * C` with B given only packed: for a B that was written straight
/// into the packed layout and never existed as a matrix (a convolution's column matrix,
/// `im2col_packed`). The same bits as [`gemm`](super::gemm) of the matrix `packed` holds,
/// except for one row of A (m == 1), which runs on the tiles here instead of `gemm`'s
/// row-vector loop (same bits for any thread count either way). `scratch`: at least
/// [`gemm_prepacked_scratch_len`] elements. Errors when `packed` was
/// made for another dispatch path than the current one (pack it again).
pub fn gemm_prepacked<T: Float>(
    alpha: T,
    a: MatRef<'_, T>,
    packed: &PackedB<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
    scratch: &mut [T],
    par: Parallelism<'_>,
) -> Result<(), KernelError> {
    if packed.info.isa != isa() {
        return Err(KernelError::InvalidArgument {
            op: "gemm_prepacked",
            what: "B was packed for another dispatch path than the current one: pack it again",
        });
    }
    let (k, n) = packed.info.shape();
    // A stand-in for B of its shape over the packed data (k * n_pad >= k * n elements):
    // with `PackedOnly` the driver takes B's shape from it and reads the packed slivers.
    let b = MatRef::new(packed.data, k, n, n, 1)?;
    gemm_impl(
        alpha,
        a,
        b,
        BSource::PackedOnly(packed),
        beta,
        c,
        scratch,
        par,
        None,
    )
}

/// Scratch elements [`gemm_prepacked`] needs for an `m x k` by `k x n` product with `par`
/// ([`gemm_scratch_len`](super::gemm_scratch_len), and for m == 1 the tiles' scratch).
pub fn gemm_prepacked_scratch_len<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    par: Parallelism<'_>,
) -> usize {
    super::tile_scratch_len::<T>(m, n, k, par)
}

/// The packed layout of a `k x n` B on the current path: `(isa, nr, kc, n_pad)`. Element
/// `(r, j)` of B, in KC block `pc = r - r % kc`, lies at
/// `pc * n_pad + (j / nr) * nr * kcb + (r - pc) * nr + j % nr`, where `kcb` is that block's
/// depth (`kc`, or less for the last block); the lanes `n..n_pad` of the last sliver are 0.
pub(crate) fn packed_layout<T: Float>(
    k: usize,
    n: usize,
) -> (crate::dispatch::Isa, usize, usize, usize) {
    let path = isa();
    let nr = T::gemm_spec(path).nr;
    let kc = balanced_kc(T::gemm_spec(path).kc, k);
    (path, nr, kc, n.div_ceil(nr) * nr)
}

impl<'a, T: Float> PackedB<'a, T> {
    /// The packed matrix written by a kernel of this crate into `data` (its first
    /// `k * n_pad` elements) in [`packed_layout`] for path `isa`.
    pub(crate) fn written(data: &'a [T], k: usize, n: usize, isa: crate::dispatch::Isa) -> Self {
        PackedB {
            data,
            info: PackInfo { k, n, isa },
        }
    }
}

/// B (`k x n`) packed for the microkernel of the path current when it was packed: for each
/// KC-deep block of rows (the depths [`gemm`](super::gemm) uses for this k), the `kc x NR` slivers of
/// all n columns side by side, the last one zero-padded. Made by [`pack_b`]; an owner that
/// keeps the data between calls takes it apart ([`PackedB::info`]) and puts it back
/// together with [`PackedB::from_parts`].
#[derive(Debug, Clone, Copy)]
pub struct PackedB<'a, T> {
    pub(super) data: &'a [T],
    info: PackInfo,
}

/// What a [`PackedB`]'s data is: the shape packed and the dispatch path it was packed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackInfo {
    k: usize,
    n: usize,
    isa: crate::dispatch::Isa,
}

impl PackInfo {
    /// Rows and columns of the matrix packed.
    pub fn shape(&self) -> (usize, usize) {
        (self.k, self.n)
    }
}

impl<'a, T: Float> PackedB<'a, T> {
    /// Whether the current dispatch path reads this packing (the path it was packed for).
    pub(super) fn usable(&self) -> bool {
        self.info.isa == isa()
    }

    /// What the data is.
    pub fn info(&self) -> PackInfo {
        self.info
    }

    /// `data` (what [`pack_b`] wrote, kept by its owner) seen again as the packed matrix
    /// `info` describes. Errors when `data` is too short for it. Data that is not what
    /// [`pack_b`] wrote gives wrong numbers, never an out-of-bounds read.
    pub fn from_parts(data: &'a [T], info: PackInfo) -> Result<Self, KernelError> {
        let nr = T::gemm_spec(info.isa).nr;
        let needed = info.k * info.n.div_ceil(nr) * nr;
        if data.len() < needed {
            return Err(KernelError::ScratchTooSmall {
                op: "PackedB::from_parts",
                needed,
                found: data.len(),
            });
        }
        Ok(PackedB {
            data: &data[..needed],
            info,
        })
    }
}

/// Whether an `m x k` by `k x n` product on the current path reads a B given packed
/// ([`gemm_packed_b`]); where it does not (one row of A, or a narrow B computed
/// transposed), packing B beforehand is wasted work.
pub fn reads_packed_b<T: Float>(m: usize, n: usize) -> bool {
    m > 1 && !super::transposed(&T::gemm_spec(isa()), m, n)
}

/// Elements [`pack_b`] needs for a `k x n` matrix (on any dispatch path).
pub fn packed_b_len<T: Float>(k: usize, n: usize) -> usize {
    all_specs::<T>()
        .iter()
        .map(|s| k * n.div_ceil(s.nr) * s.nr)
        .max()
        .unwrap_or(0)
}

/// Packs `b` into `out` (at least [`packed_b_len`] elements) for [`gemm_packed_b`].
pub fn pack_b<'a, T: Float>(
    b: MatRef<'_, T>,
    out: &'a mut [T],
) -> Result<PackedB<'a, T>, KernelError> {
    let (k, n) = (b.rows(), b.cols());
    let needed = packed_b_len::<T>(k, n);
    if out.len() < needed {
        return Err(KernelError::ScratchTooSmall {
            op: "pack_b",
            needed,
            found: out.len(),
        });
    }
    let path = isa();
    let spec = T::gemm_spec(path);
    let kc = balanced_kc(spec.kc, k);
    let n_pad = n.div_ceil(spec.nr) * spec.nr;
    let (rs, cs) = (b.row_stride(), b.col_stride());
    let mut pc = 0;
    while pc < k {
        let kcb = kc.min(k - pc);
        let mut jc = 0;
        while jc < n {
            let ncb = spec.nc.min(n - jc);
            // SAFETY: rows pc..pc+kcb and columns jc..jc+ncb are inside the view (checked at
            // construction); the slivers written, [pc*n_pad + jc*kcb, + kcb*ceil(ncb/NR)*NR),
            // end at or before pc*n_pad + kcb*n_pad <= k*n_pad <= out.len().
            unsafe {
                let src = b.data().as_ptr().add(pc * rs + jc * cs);
                (spec.pack_b)(
                    kcb,
                    ncb,
                    src,
                    rs,
                    cs,
                    out.as_mut_ptr().add(pc * n_pad + jc * kcb),
                );
            }
            jc += ncb;
        }
        pc += kcb;
    }
    Ok(PackedB {
        data: &out[..k * n_pad],
        info: PackInfo { k, n, isa: path },
    })
}
