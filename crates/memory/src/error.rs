//! The one error type of the memory crate. Every misuse message names the workspace, the cycle
//! (generation) the memory was born in and the current one, the workspaces open on the calling
//! thread, and the fix. `docs/workspace-errors.md` catalogues each variant with an example; the
//! tests in `tests/error_catalogue.rs` trigger each one and check its text.

use std::fmt;

use thiserror::Error;

use crate::config::WorkspaceConfig;

/// The workspaces open on the thread that hit an error, innermost last.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenWorkspaces(pub Vec<String>);

impl fmt::Display for OpenWorkspaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("[] (none)");
        }
        f.write_str("[")?;
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "\"{id}\"")?;
        }
        f.write_str("]")
    }
}

/// Everything that can go wrong in the workspace system.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum WorkspaceError {
    /// An attached array was used after the cycle it was born in ended.
    #[error(
        "stale array: {len} x {elem} in workspace \"{workspace}\" was born in cycle (generation) \
         {born}, but the workspace {state} (current generation {current}); its memory belongs \
         to a later cycle, so it can't be read or written.\nOpen workspaces on this thread: \
         {open}\nFix: call detach() before the scope ends to keep a copy on the heap, \
         leverage_to(\"<id>\") to copy it into an enclosing open workspace, or only use the \
         array inside the scope that created it."
    )]
    StaleArray {
        /// The array's workspace.
        workspace: String,
        /// Elements in the array's buffer.
        len: usize,
        /// Element type name.
        elem: &'static str,
        /// Generation the array was born in.
        born: u64,
        /// The workspace's generation now.
        current: u64,
        /// "has closed that cycle" / "was closed and reopened since".
        state: &'static str,
        /// Workspaces open on the calling thread.
        open: OpenWorkspaces,
    },

    /// An array in a cyclic workspace (ring) was used after the ring wrote over its slot.
    #[error(
        "stale array: {len} x {elem} in cyclic workspace \"{workspace}\" was written at ring \
         position {position} (ring of {ring_bytes} bytes), and the ring has since written up to \
         position {write_end}, over its slot.\nOpen workspaces on this thread: {open}\nFix: use \
         a data set from an async iterator before the next call to next(), or detach() what you \
         keep."
    )]
    StaleRingSlot {
        /// The ring's workspace id.
        workspace: String,
        /// Elements in the array's buffer.
        len: usize,
        /// Element type name.
        elem: &'static str,
        /// Linear ring position the array was written at.
        position: u64,
        /// Linear position the ring has written up to.
        write_end: u64,
        /// Ring size in bytes.
        ring_bytes: usize,
        /// Workspaces open on the calling thread.
        open: OpenWorkspaces,
    },

    /// An attached array outlived the destruction of its workspace.
    #[error(
        "stale array: {len} x {elem} in workspace \"{workspace}\" (born in generation {born}) \
         can't be used: the workspace was destroyed (destroy() or \
         destroy_all_workspaces_for_current_thread()).\nOpen workspaces on this thread: {open}\n\
         Fix: detach() arrays you keep before destroying their workspace."
    )]
    WorkspaceDestroyed {
        /// The destroyed workspace.
        workspace: String,
        /// Elements in the array's buffer.
        len: usize,
        /// Element type name.
        elem: &'static str,
        /// Generation the array was born in.
        born: u64,
        /// Workspaces open on the calling thread.
        open: OpenWorkspaces,
    },

    /// A cycle ended while arrays of that cycle were still borrowed (`read()`/`write()` guards
    /// alive). The block was retired instead of reused, so no data was overwritten.
    #[error(
        "workspace \"{workspace}\" ended cycle {generation} while {borrows} borrow(s) of its \
         arrays were still alive; the block was retired (not reused) and a new one will be \
         allocated, which costs memory and allocator traffic.\nOpen workspaces on this thread: \
         {open}\nFix: drop read()/write() guards before the scope ends, or detach() the data \
         you need afterwards."
    )]
    BorrowedAtCycleEnd {
        /// The workspace.
        workspace: String,
        /// Generation of the cycle that ended.
        generation: u64,
        /// Borrow guards alive at that moment.
        borrows: usize,
        /// Workspaces open on the calling thread.
        open: OpenWorkspaces,
    },

    /// An allocation did not fit and the spill policy is `Fail`.
    #[error(
        "can't allocate memory: workspace \"{workspace}\" is full: {requested} bytes requested \
         at offset {offset} of a {capacity}-byte block (SpillPolicy::Fail).\nFix: raise \
         initial_size, or use SpillPolicy::External / Reallocate."
    )]
    WorkspaceFull {
        /// The workspace.
        workspace: String,
        /// Bytes requested (aligned).
        requested: usize,
        /// Current offset.
        offset: usize,
        /// Block size.
        capacity: usize,
    },

    /// A workspace id was registered again with another configuration (DL4J silently ignored
    /// the new one, issue #4337).
    #[error(
        "workspace \"{workspace}\" already exists on this thread with a different \
         configuration:\n  existing:  {existing:?}\n  requested: {requested:?}\nFix: use a \
         distinct id per configuration (e.g. prefix it with the owning network), or destroy the \
         existing workspace first."
    )]
    ConfigMismatch {
        /// The workspace id.
        workspace: String,
        /// Its configuration.
        existing: Box<WorkspaceConfig>,
        /// The configuration asked for.
        requested: Box<WorkspaceConfig>,
    },

    /// A configuration contradicts itself.
    #[error("invalid workspace configuration: {field}: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What was expected, what was found.
        reason: String,
    },

    /// `notify_scope_borrowed` on a workspace that is already borrowed.
    #[error(
        "workspace \"{workspace}\": can't borrow from a borrowed workspace: it is already \
         borrowed by an open scope.\nOpen workspaces on this thread: {open}\nFix: allocate \
         through the existing borrow scope, or close it first."
    )]
    AlreadyBorrowed {
        /// The workspace.
        workspace: String,
        /// Workspaces open on the calling thread.
        open: OpenWorkspaces,
    },

    /// Allocation into, or a borrow of, a workspace that is not open.
    #[error(
        "workspace \"{workspace}\" is not open, so nothing can be allocated in it or borrowed \
         from it.\nOpen workspaces on this thread: {open}\nFix: allocate inside a scope of it \
         (notify_scope_entered / get_and_activate_workspace), or use a workspace that is open."
    )]
    NotOpen {
        /// The workspace.
        workspace: String,
        /// Workspaces open on the calling thread.
        open: OpenWorkspaces,
    },

    /// Entering a workspace that is open but not current (it would reset memory its outer
    /// scope still uses).
    #[error(
        "workspace \"{workspace}\" is already open further out (current workspace: {current}); \
         entering it again would start a new cycle under arrays its outer scope still uses.\n\
         Open workspaces on this thread: {open}\nFix: use notify_scope_borrowed() to allocate \
         into the outer workspace, or close the inner scopes first."
    )]
    AlreadyOpen {
        /// The workspace.
        workspace: String,
        /// The current workspace.
        current: String,
        /// Workspaces open on the calling thread.
        open: OpenWorkspaces,
    },

    /// A workspace id that does not exist on this thread.
    #[error(
        "no workspace \"{workspace}\" exists on this thread (workspaces are per thread); \
         existing: {existing}.\nFix: create it with get_workspace_for_current_thread(&config, \
         id) on this thread, or check the id."
    )]
    NoSuchWorkspace {
        /// The id asked for.
        workspace: String,
        /// Ids that exist on this thread.
        existing: OpenWorkspaces,
    },

    /// A [`crate::Workspace`] handle used after its workspace was destroyed.
    #[error(
        "the handle refers to workspace \"{workspace}\", which was destroyed; {now}.\nExisting \
         on this thread: {existing}\nFix: get a new handle (find_workspace_for_current_thread or \
         get_workspace_for_current_thread) after creating a workspace again; old handles and \
         their arrays stay invalid."
    )]
    DestroyedHandle {
        /// The id of the destroyed workspace.
        workspace: String,
        /// Whether a workspace with that id exists now: "a new workspace with that id exists
        /// on this thread, but this handle is not it" or "no workspace with that id exists now".
        now: &'static str,
        /// Ids that exist on this thread.
        existing: OpenWorkspaces,
    },

    /// A size computation overflowed.
    #[error(
        "allocation of {len} x {elem} overflows the address space: expected at most {max} bytes"
    )]
    SizeOverflow {
        /// Elements requested.
        len: usize,
        /// Element type name.
        elem: &'static str,
        /// Largest allocation supported.
        max: usize,
    },

    /// The operating system refused memory.
    #[error("out of memory: the system refused {bytes} bytes for workspace \"{workspace}\"")]
    OutOfMemory {
        /// The workspace (or "heap").
        workspace: String,
        /// Bytes requested.
        bytes: usize,
    },

    /// The file of a memory-mapped workspace is already mapped by another workspace (on any
    /// thread of this process, or by another process): two mappings would alias one memory.
    #[error(
        "memory-mapped workspace \"{workspace}\": {path} is already mapped by {held_by}; a \
         second mapping would make two workspaces' arrays alias the same memory, so it is \
         refused.\nFix: give each workspace its own file, or release the holder first (destroy \
         it and drop its arrays: its mapping ends when the last one drops), or use \
         LocationPolicy::Mmap(None) for a private temporary file."
    )]
    MmapInUse {
        /// The workspace that asked for the mapping.
        workspace: String,
        /// The file (canonical path).
        path: String,
        /// Who holds it: a workspace and thread of this process, or another process.
        held_by: String,
    },

    /// A memory-mapped workspace's block was retired at a cycle end because arrays of it were
    /// still borrowed, those borrows are still alive, and `SpillPolicy::Fail` forbids serving
    /// the allocation from the heap meanwhile.
    #[error(
        "memory-mapped workspace \"{workspace}\" can't allocate: its mapping was retired at an \
         earlier cycle end because arrays of it were borrowed, and {borrows} borrow(s) are still \
         alive, so the file can't serve this cycle yet (SpillPolicy::Fail forbids the heap).\n\
         Fix: drop read()/write() guards before their scope ends (see BorrowedAtCycleEnd), or \
         use SpillPolicy::External to spill meanwhile."
    )]
    MappedBlockBorrowed {
        /// The workspace.
        workspace: String,
        /// Borrows of the retired mapping still alive.
        borrows: usize,
    },

    /// A memory-mapped workspace's file could not be created or mapped.
    #[error("memory-mapped workspace \"{workspace}\": {path}: {message}")]
    Mmap {
        /// The workspace.
        workspace: String,
        /// The file.
        path: String,
        /// The operating system's message.
        message: String,
    },
}
