//! # dl4rs-data: data sets and iterators for training on workspaces
//!
//! DL4J's data pipeline for Rust: a [`DataSet`] (features, labels, optional masks), the
//! [`DataSetIterator`] contract a network's `fit` loop pulls mini-batches from, an
//! [`InMemoryDataSetIterator`] over a data set held in memory, a reader for the [`idx`] files
//! of MNIST-style data sets, and [`fashion_mnist`], with the Fashion-MNIST test split bundled
//! in the crate so examples and tests run without a download.
//!
//! ```
//! use dl4rs_data::{fashion_mnist, DataSetIterator, InMemoryDataSetIterator};
//! use dl4rs_memory::{WorkspaceConfig, get_and_activate_workspace};
//!
//! let (train, _test) = fashion_mnist::bundled().unwrap();
//! let mut batches = InMemoryDataSetIterator::new(train, 128).unwrap().with_shuffle(42);
//! let cfg = WorkspaceConfig::default();
//! let mut seen = 0;
//! while batches.has_next() {
//!     // The fit loop opens its workspace first: the batch is allocated in it.
//!     let _cycle = get_and_activate_workspace(&cfg, "FIT").unwrap();
//!     let batch = batches.next().unwrap().unwrap();
//!     assert_eq!(batch.features.shape()[1], 784);
//!     seen += batch.num_examples();
//! }
//! assert_eq!(seen, 8000);
//! batches.reset().unwrap(); // next epoch, in a new order
//! ```
//!
//! ## Memory
//! Data sets you build or load live on the heap. An iterator's `next()` allocates the batch in
//! the caller's **current workspace**, so a training loop that opens its workspace before
//! `next()` gets its batches with no heap allocation in steady state, and they die with the
//! cycle (`detach()` a batch to keep it). Operations that make new arrays from a data set
//! (split, select, batch, merge) keep heap data on the heap.
//!
//! A consumer that hands batches to other threads can take them with `next_lazy()` instead:
//! an in-memory iterator then returns only which rows make the batch ([`Lazy::Rows`], no copy,
//! no allocation), and the thread that trains on it gathers it into *its* current workspace
//! (ParallelWrapper's trainers do; see [`Lazy`]).
//!
//! ## Several inputs and outputs
//! [`MultiDataSet`] holds several feature and label arrays (each with an optional mask) for
//! networks with several inputs or outputs; [`MultiDataSetIterator`] is its iterator contract
//! and [`InMemoryMultiDataSetIterator`] batches one held in memory.
//!
//! ## Prefetching
//! [`AsyncDataSetIterator`] and [`AsyncMultiDataSetIterator`] (DL4J's `AsyncDataSetIterator`
//! and `AsyncMultiDataSetIterator`) run a source's `next()` on a background thread, ahead of
//! the consumer, into a ring workspace of `prefetch + 3` batches: a batch stays valid until the
//! next call to `next()`, a batch kept longer is a
//! [`StaleRingSlot`](dl4rs_memory::WorkspaceError::StaleRingSlot) error (never another batch's
//! data), and handing batches over allocates nothing in steady state. Both share one private
//! implementation. `wrap_if_supported` wraps only sources whose `async_supported()` is true;
//! [`AsyncShieldDataSetIterator`] and [`AsyncShieldMultiDataSetIterator`] turn it off.
//!
//! ## Errors
//! Nothing here panics on bad input: bad files, shapes and arguments are [`DataError`]s whose
//! message names the file, what was expected and what was found.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod async_iter;
mod async_multi;
mod dataset;
mod error;
pub mod fashion_mnist;
pub mod idx;
mod iterator;
mod lazy;
mod multi;
pub mod normalizer;
pub mod records;
mod shield;

pub use async_iter::{
    AsyncDataSetIterator, DEFAULT_MIN_RING_BYTES, DEFAULT_PREFETCH, MAX_PREFETCH, MIN_PREFETCH,
    Source,
};
pub use async_multi::{AsyncMultiDataSetIterator, MultiSource};
pub use dataset::{DataSet, shuffle_indices};
pub use error::DataError;
pub use iterator::{DataSetIterator, InMemoryDataSetIterator};
pub use lazy::{GatherRows, Lazy, LazyDataSet, LazyMultiDataSet, RowBatch};
pub use multi::{InMemoryMultiDataSetIterator, MultiDataSet, MultiDataSetIterator};
pub use shield::{AsyncShieldDataSetIterator, AsyncShieldMultiDataSetIterator};
