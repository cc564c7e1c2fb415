//! Data-parallel training across processes: one replica per rank, one fused allreduce per
//! round, on an existing engine (MPI) rather than a protocol of our own.
//!
//! [`DistributedTrainer`] holds the logic (rank-strided shards of one iterator, gradient
//! sharing or parameter averaging, failure and end-of-epoch agreement carried in the fused
//! buffer); it is written against [`Collective`], implemented by [`MpiCollective`] (feature
//! `mpi`: `mpiexec -n 2 dl4rs train --distributed`) and by [`LocalGroup`] (ranks as threads of
//! one process, always built: it tests the logic without MPI). Rank 0 is the root: it
//! broadcasts the initial model, prints, evaluates and writes model files.
//!
//! ```
//! use std::time::Duration;
//! use dl4rs_distributed::{Collective, LocalGroup};
//!
//! let group = LocalGroup::<f32>::new(2, 4, Duration::from_secs(5)).unwrap();
//! let sums: Vec<Vec<f32>> = std::thread::scope(|s| {
//!     let handles: Vec<_> = group
//!         .into_iter()
//!         .map(|mut rank| {
//!             s.spawn(move || {
//!                 let mine = [rank.rank() as f32 + 1.0; 2];
//!                 let mut sum = [0.0; 2];
//!                 rank.all_reduce_sum(&mine, &mut sum).unwrap();
//!                 sum.to_vec()
//!             })
//!         })
//!         .collect();
//!     handles.into_iter().map(|h| h.join().unwrap()).collect()
//! });
//! assert_eq!(sums, vec![vec![3.0, 3.0], vec![3.0, 3.0]]);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod collective;
mod error;
mod local;
#[cfg(feature = "mpi")]
mod mpi_backend;
mod trainer;

pub use collective::Collective;
pub use error::DistributedError;
pub use local::LocalGroup;
#[cfg(feature = "mpi")]
pub use mpi_backend::MpiCollective;
pub use trainer::{
    DEFAULT_COLLECTIVE_TIMEOUT, DistributedTrainer, DistributedTrainerBuilder, TrainerStats,
    TrainingMode,
};
