//! Debug modes, per thread: ways to take the workspace arena out of the picture (spill or
//! bypass everything, for valgrind and for bisecting a suspected workspace bug) or to make
//! reads of unwritten memory visible (poison on reset). Set with
//! [`crate::set_debug_mode`]; a thread starts in the mode named by the environment variable
//! `DL4RS_WORKSPACES_DEBUG` (`SPILL_EVERYTHING`, `BYPASS_EVERYTHING`, `POISON_ON_RESET`,
//! `PANIC_ON_BORROWED_DROP`), else `Disabled`.

/// How the calling thread's workspaces behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DebugMode {
    /// Normal operation.
    #[default]
    Disabled,
    /// Every allocation takes the spill path: individually allocated, still attached (so
    /// validity checks still apply), no learning. Use with valgrind to check each array's
    /// bounds separately.
    SpillEverything,
    /// Workspaces are ignored: every array is detached (heap). Use to rule workspaces out.
    BypassEverything,
    /// At each cycle end a scoped block is filled with 0xFF bytes (NaN for f32 and f64), and
    /// in a cyclic workspace (ring) every `uninitialized` allocation is filled with them as its
    /// slot is handed out, so an `uninitialized` array read before it is written shows NaN
    /// instead of an earlier cycle's (or lap's) values. (A scoped block's first cycle holds
    /// zeros, and spills are fresh zeroed memory.)
    PoisonOnReset,
    /// A [`crate::WorkspaceScope`] dropped while arrays of its cycle are still borrowed
    /// panics in its `Drop`, with the `BorrowedAtCycleEnd` message, so the bug is found where
    /// it is. (Memory stays safe either way: the block is retired, not reused. Without this
    /// mode the event is a warning in `allocation_report()`; `WorkspaceScope::close` returns
    /// it as an error.) No panic while the thread is already panicking.
    PanicOnBorrowedDrop,
}

impl DebugMode {
    /// Parses the `DL4RS_WORKSPACES_DEBUG` value; unknown values mean `Disabled`.
    pub fn from_env_value(value: &str) -> DebugMode {
        match value.trim().to_ascii_uppercase().as_str() {
            "SPILL_EVERYTHING" => DebugMode::SpillEverything,
            "BYPASS_EVERYTHING" => DebugMode::BypassEverything,
            "POISON_ON_RESET" => DebugMode::PoisonOnReset,
            "PANIC_ON_BORROWED_DROP" => DebugMode::PanicOnBorrowedDrop,
            _ => DebugMode::Disabled,
        }
    }

    pub(crate) fn from_env() -> DebugMode {
        std::env::var("DL4RS_WORKSPACES_DEBUG")
            .map(|v| DebugMode::from_env_value(&v))
            .unwrap_or_default()
    }
}
