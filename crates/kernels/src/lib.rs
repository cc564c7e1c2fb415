//! # dl4rs-kernels
//!
//! The numeric core of dl4rs: matrix multiply, element-wise maps, reductions, softmax,
//! im2col and pooling, on plain slices. This crate knows nothing of workspaces, arrays or autograd; the
//! array crate above it decides shapes and memory, this crate does the arithmetic.
//!
//! Three rules hold for every function here:
//!
//! * **No allocation.** Outputs and temporaries are caller-provided slices. The one kernel
//!   that needs temporaries, [`gemm`], takes a `scratch: &mut [T]` sized by
//!   [`gemm_scratch_len`] (the faer convention), so the caller can take it from an arena.
//!   That includes the multi-threaded path: each rayon or team task carves its packing
//!   buffers out of the scratch, `rayon::join` stack jobs allocate nothing on pool threads,
//!   and a [`KernelTeam`] region allocates nothing at all.
//! * **No panics on bad input.** Shape and length mismatches return [`KernelError`], whose
//!   message names what was expected and what was found.
//! * **Determinism.** For a given [`Dispatch`] path, results depend only on the values of the
//!   inputs: not on the thread count, nor on the alignment or offset of the slices. Reductions
//!   run in fixed-size lanes from index 0 with a scalar tail; gemm never splits the inner
//!   dimension and fixes each element's summation order.
//!
//! SIMD: AVX2+FMA and AVX-512F microkernels are selected at run time (once, cached); a
//! portable path serves everything else. [`set_dispatch`] forces a path for testing.
//!
//! Threads: [`Parallelism::Rayon`] uses the current rayon pool; [`Parallelism::Team`] a
//! [`KernelTeam`], whose workers spin for a blocktime between products instead of sleeping,
//! so the products of a training step start on all threads at once (and a worker that is
//! not there in time is simply not waited for). Same bits either way.
//!
//! `unsafe` is confined to the gemm microkernels, packing and driver, the team's hand-off and
//! the split of an output into disjoint parts for a team (`parts.rs`: im2col, col2im,
//! pooling), each block with a `SAFETY:` comment; views ([`MatRef`], [`MatMut`]) are
//! bounds-checked at construction.
//!
//! ```
//! use dl4rs_kernels::{gemm, gemm_scratch_len, softmax_rows, MatMut, MatRef, Parallelism};
//! // logits = x · W for a batch of 2 inputs with 3 features and 4 classes
//! let x = [1.0f32, 0.0, 2.0, 0.5, 1.0, 0.0];
//! let w = [0.1f32; 12];
//! let mut logits = [0.0f32; 8];
//! let mut scratch = vec![0.0; gemm_scratch_len::<f32>(2, 4, 3, Parallelism::None)];
//! gemm(1.0, MatRef::row_major(&x, 2, 3)?, MatRef::row_major(&w, 3, 4)?, 0.0,
//!      MatMut::row_major(&mut logits, 2, 4)?, &mut scratch, Parallelism::None)?;
//! let mut probs = [0.0f32; 8];
//! softmax_rows(&logits, 2, 4, &mut probs)?;
//! assert!((probs[..4].iter().sum::<f32>() - 1.0).abs() < 1e-6);
//! # Ok::<(), dl4rs_kernels::KernelError>(())
//! ```
#![deny(missing_docs)]

mod conv;
mod conv_packed;
mod conv_products;
mod dispatch;
mod elementwise;
mod error;
mod float;
mod gemm;
mod mat;
mod parts;
mod pool;
mod recurrent;
mod reduce;
mod team;
pub mod update;

pub use conv::{Conv2dGeometry, col2im, col2im_batch, im2col, im2col_batch};
pub use conv_packed::{im2col_packed, im2col_packed_len, im2col_packed_t, im2col_packed_t_len};
pub use conv_products::{
    conv2d_forward, conv2d_forward_scratch_len, conv2d_input_grad, conv2d_input_grad_scratch_len,
    conv2d_weight_grad, conv2d_weight_grad_scratch_len, to_channel_major,
};
pub use dispatch::{Dispatch, available_dispatches, current_dispatch, set_dispatch};
pub use elementwise::{
    BinaryOp, GradFrom, Unary, axpy, bias_act, binary, binary_assign, binary_col,
    binary_col_assign, binary_row, binary_row_assign, binary_scalar, binary_scalar_assign, scale,
    scale_into, unary, unary_assign, unary_grad, unary_grad_assign,
};
pub use error::KernelError;
pub use float::Float;
pub use gemm::{
    PackInfo, PackedB, Parallelism, gemm, gemm_bias_act, gemm_packed_b, gemm_prepacked,
    gemm_prepacked_scratch_len, gemm_scratch_len, microkernel_l1_run, pack_b, packed_b_len,
    reads_packed_b,
};
pub use mat::{MatMut, MatRef, Transpose, copy_mat};
pub use pool::{PoolOp, pool2d, pool2d_backward};
pub use recurrent::{
    gru_cell_backward, gru_cell_forward, lstm_cell_backward, lstm_cell_forward, rnn_cell_backward,
    rnn_cell_forward,
};
pub use reduce::{
    argmax, argmax_cols, argmax_rows, dot, log_softmax_rows, log_softmax_rows_backward, max,
    max_cols, max_rows, softmax_rows, softmax_rows_backward, sum, sum_cols, sum_rows,
};
pub use team::{DEFAULT_BLOCKTIME, KernelTeam, TeamStats};
