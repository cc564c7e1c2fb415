//! The collectives a data-parallel trainer needs: an element-wise sum of one buffer over every
//! rank (allreduce) and a broadcast from one rank. [`Collective`] is what the trainer is written
//! against; the MPI backend (feature `mpi`) and the in-process [`crate::LocalGroup`] implement
//! it with the same semantics, so the trainer's logic is tested in every build and the MPI
//! backend stays a thin adapter over `MPI_Iallreduce` / `MPI_Ibcast`.
//!
//! Contract, for every implementation:
//! - every rank calls the same collectives in the same order with buffers of the same length;
//! - `all_reduce_sum` leaves the *same bits* in `recv` on every rank (a fixed reduction order),
//!   so replicas that apply the same reduced gradient stay identical;
//! - a collective that cannot complete within the group's timeout fails (or, where the
//!   backend cannot fail cleanly, ends the process with the reason) instead of hanging.

use dl4rs_array::DataType;

use crate::error::DistributedError;

/// A group of ranks that can sum and broadcast buffers.
pub trait Collective<T: DataType> {
    /// This rank, `0..size()`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// `recv[i] = sum over ranks of send[i]`, on every rank; `send` and `recv` have the same
    /// length, and it is the same on every rank.
    fn all_reduce_sum(&mut self, send: &[T], recv: &mut [T]) -> Result<(), DistributedError>;
    /// Copies `buf` of rank `root` into `buf` of every other rank.
    fn broadcast(&mut self, buf: &mut [T], root: usize) -> Result<(), DistributedError>;
    /// A short name for reports ("mpi", "local").
    fn backend(&self) -> &'static str;
}
