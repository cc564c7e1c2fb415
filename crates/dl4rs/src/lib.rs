//! # dl4rs
//!
//! Deep learning in Rust on *workspaces*: memory arenas that learn how much one training or
//! inference cycle needs and then serve every later cycle from one block, with every misuse
//! (an array used after its cycle) caught and explained instead of reading garbage.
//!
//! This crate is the facade: `use dl4rs::prelude::*` brings in what a user needs, and the
//! `dl4rs` binary is the command-line program. The parts live in their own crates:
//! [`memory`] (workspaces, `dl4rs-memory`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use dl4rs_memory as memory;

/// The names most programs need.
pub mod prelude {
    pub use dl4rs_memory::{
        Buffer, DebugMode, LearningPolicy, ResetPolicy, SpillPolicy, Workspace, WorkspaceConfig,
        WorkspaceError, WorkspaceScope, allocation_report,
        destroy_all_workspaces_for_current_thread, get_and_activate_workspace,
        get_workspace_for_current_thread, scope_out_of_workspaces,
    };
}
