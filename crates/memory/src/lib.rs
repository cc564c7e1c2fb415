//! # dl4rs-memory: workspaces
//!
//! Training and inference are loops that allocate the same buffers every iteration. A
//! **workspace** is a memory arena for such a loop: it *learns* how much one cycle needs, then
//! serves every later cycle from one block by bumping an offset, so the steady state makes no
//! allocator calls, takes no page faults and holds a stable amount of memory. This is the
//! system ND4J/Deeplearning4j introduced; this crate implements it for Rust, with one addition
//! DL4J never had: **misuse is always caught**.
//!
//! ```
//! use dl4rs_memory::{Buffer, WorkspaceConfig, get_and_activate_workspace, allocation_report};
//!
//! let cfg = WorkspaceConfig::default();
//! let mut kept = None;
//! for i in 0..3 {
//!     let _cycle = get_and_activate_workspace(&cfg, "TRAIN_LOOP").unwrap();
//!     let mut activations = Buffer::<f32>::zeros(1024).unwrap();
//!     activations.write().unwrap()[0] = i as f32;
//!     // Everything allocated in the cycle dies with it; detach() copies out.
//!     kept = Some(activations.detach().unwrap());
//! }
//! assert_eq!(kept.unwrap().read().unwrap()[0], 2.0);
//! let report = allocation_report();
//! assert!(report.get("TRAIN_LOOP").unwrap().block_bytes >= 4096);
//! ```
//!
//! ## Concepts
//! - [`WorkspaceConfig`]: ND4J's knobs (initial/min/max size, overallocation, learning, spill,
//!   reset and location policies) plus a shrink policy.
//! - A **cycle** is one outermost scope of a workspace ([`get_and_activate_workspace`],
//!   [`Workspace::notify_scope_entered`]). Its end bumps the workspace's **generation**.
//! - [`Buffer<T>`] is an allocation: attached to the current workspace, or detached on the heap
//!   when none is current (or under [`scope_out_of_workspaces`]).
//! - A **cyclic** workspace ([`ResetPolicy::EndOfBuffer`]) is a ring for producer/consumer
//!   prefetch: allocations stay valid until the ring writes over them.
//!
//! ## The safety model
//! Every access to a buffer goes through [`Buffer::read`] / [`Buffer::write`], which check
//! that its cycle is still current (or its ring slot not yet overwritten) and hold a counted
//! borrow while the guard lives. The workspace invalidates before it reuses and checks the
//! borrow counters after, so memory is never reused while borrowed: a cycle that ends with
//! borrows outstanding retires its block instead ([`WorkspaceError::BorrowedAtCycleEnd`]).
//! Memory is reference counted, so even a stale buffer never points at freed memory. Scopes and
//! workspace handles are `!Send`: a workspace belongs to its thread. Buffers are `Send + Sync`
//! and stay checked on any thread. Every misuse error names the workspace, the generations, the
//! open workspaces and the fix (see `docs/workspace-errors.md`).
//!
//! `unsafe` is confined to this crate, each block with its `SAFETY` argument: `chunk.rs`
//! owns raw memory (allocation, the file mapping, the unsafe `fill`/`slice` primitives);
//! `buffer.rs` calls `slice` once a checked borrow is held, and `workspace.rs` calls `fill`
//! to zero or poison memory the handshake proved unborrowed; `element.rs` declares the
//! `unsafe` [`Element`] trait (plain numbers only); `counting.rs` implements `GlobalAlloc`.
//! `mapped.rs` (which files are mapped, and by whom) has none.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod buffer;
mod chunk;
mod config;
mod counting;
mod debug;
mod element;
mod error;
mod manager;
mod mapped;
mod registry;
mod stats;
mod workspace;

pub use buffer::{BufMut, BufRef, Buffer};
pub use chunk::ALIGN;
pub use config::{
    AllocationPolicy, LearningPolicy, LocationPolicy, ResetPolicy, ShrinkPolicy, SpillPolicy,
    WorkspaceConfig, WorkspaceConfigBuilder,
};
pub use counting::CountingAllocator;
pub use debug::DebugMode;
pub use element::Element;
pub use error::{OpenWorkspaces, WorkspaceError};
pub use manager::{
    Workspace, WorkspaceScope, all_workspace_ids_for_current_thread, allocation_report,
    any_workspace_active_for_current_thread, check_if_workspace_exists,
    check_if_workspace_exists_and_active, current_workspace, debug_mode,
    destroy_all_workspaces_for_current_thread, find_workspace_for_current_thread,
    get_and_activate_workspace, get_workspace_for_current_thread, open_workspaces,
    parent_workspace, scope_out_of_workspaces, set_debug_mode,
};
pub use registry::{CycleSnapshot, ProcessWorkspace, process_workspaces, process_workspaces_into};
pub use stats::{AllocationReport, WorkspaceStats, human_bytes};
