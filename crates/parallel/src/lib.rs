//! # dl4rs-parallel
//!
//! DL4J's `ParallelWrapper` and `ParallelInference` on threads: each trainer (or inference
//! worker) is a named thread that owns a replica of the network and, because the workspace
//! manager is thread-local, its own workspaces ("each of the trainer threads will use a
//! separate workspace"); the memory report (`process_workspaces`) lists them per thread.
//!
//! - [`ParallelWrapper`]: batches from one (prefetching) iterator handed out round-robin;
//!   [`TrainingMode::Averaging`] (parameters and updater state averaged every `f` rounds) or
//!   [`TrainingMode::SharedGradients`] (a dense allreduce of the gradients before every
//!   updater step, or DL4J's threshold encoding with residuals, [`ThresholdEncoding`]). A
//!   steady-state round allocates nothing on any thread.
//! - **Each trainer steps its part.** SharedGradients, and averaging every round (the
//!   replicas then start every round equal), cut the parameters into one part per trainer:
//!   a trainer reduces its part of the gradients, steps the updater there (averaging: the
//!   mean of every replica's step, in one kernel pass) and shares the part's parameters, so
//!   it moves about 8 parameter-sized arrays per round instead of 12 to 20. The results are
//!   those of stepping every replica whole, bit for bit with 2 trainers; a replica's updater
//!   state is current on its part only until the end of each `fit` gathers it.
//! - [`ParallelInference`]: `output` from many threads, requests queued and batched.
//!
//! Workers share the cores: a worker's matrix products use `cores / workers` threads
//! (`threads.rs`).
//!
//! **A round costs one wake-up.** The coordinator (the caller's thread) posts each trainer its
//! batch on a shared board (`board.rs`) and parks; the trainers finish the round among
//! themselves — gradient or parameters into the exchange, a barrier, the combined result
//! back, the updater step — and the last one to finish wakes the coordinator, which runs the
//! listeners and posts the next round. Trainers wait for their next job and at the barrier by
//! spinning briefly, then parking (`rendezvous.rs`, OpenMP's blocktime): on a VM a sleeping
//! hand-off costs tens of microseconds against a W1 round of ~1 ms, and the first version's
//! eight hand-offs per round held two workers to 1.23x one. [`RoundStats`] counts the waits
//! that parked. Design notes: `docs/design.md`, "Data-parallel training".

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod batch;
mod board;
mod builder;
mod encoding;
mod error;
mod exchange;
mod inference;
mod mailbox;
mod rendezvous;
mod replica;
mod rounds;
mod threads;
mod worker;
mod wrapper;

pub use batch::BATCH_WORKSPACE;
pub use board::RoundStats;
pub use builder::{DEFAULT_PREFETCH_BUFFER, ParallelWrapperBuilder, TrainingMode};
pub use encoding::ThresholdEncoding;
pub use error::ParallelError;
pub use inference::{InferenceMode, ParallelInference, ParallelInferenceBuilder};
pub use replica::{AsModel, copy_state, replicate};
pub use wrapper::{ParallelWrapper, ROUND_WORKSPACE};
