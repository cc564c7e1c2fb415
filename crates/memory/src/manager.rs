//! The per-thread workspace manager: which workspaces exist on this thread, which scopes are
//! open, and so which workspace is *current* (where `Buffer::zeros` allocates).
//!
//! Scopes form a stack of frames: entering a workspace (a new cycle, or a re-entry of the
//! current one), borrowing an open workspace, or scoping out to the heap. Closing a frame
//! removes it wherever it is in the stack, so non-LIFO closes (DL4J's inference ping-pong)
//! work, and a panic that unwinds through guards leaves the stack consistent. The state lives
//! in a thread-local and is only touched by its thread: the handles ([`Workspace`],
//! [`WorkspaceScope`]) are `!Send`, so thread ownership is a compile-time property. This module
//! owns no memory; `workspace.rs` does.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::chunk::Attached;
use crate::chunk::{WsShared, align_up};
use crate::config::WorkspaceConfig;
use crate::debug::DebugMode;
use crate::error::{OpenWorkspaces, WorkspaceError};
use crate::stats::{AllocationReport, WorkspaceStats};
use crate::workspace::WorkspaceState;

thread_local! {
    static MANAGER: RefCell<Manager> = RefCell::new(Manager::new());
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    /// The outermost scope of a cycle.
    Enter,
    /// A nested scope of the workspace that was current: no new cycle.
    Reenter,
    /// Allocations go to an open outer workspace.
    Borrow,
    /// Allocations go to the heap.
    ScopeOut,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    token: u64,
    kind: FrameKind,
    uid: u64,
}

struct Manager {
    workspaces: Vec<WorkspaceState>,
    stack: Vec<Frame>,
    next_token: u64,
    debug: DebugMode,
}

impl Manager {
    fn new() -> Self {
        Manager {
            workspaces: Vec::new(),
            stack: Vec::new(),
            next_token: 1,
            debug: DebugMode::from_env(),
        }
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.workspaces.iter().position(|w| &*w.shared.id == id)
    }

    fn index_of_uid(&self, uid: u64) -> Option<usize> {
        self.workspaces.iter().position(|w| w.shared.uid == uid)
    }

    fn current(&self) -> Option<u64> {
        match self.stack.last() {
            Some(frame) if frame.kind != FrameKind::ScopeOut => Some(frame.uid),
            _ => None,
        }
    }

    fn id_of(&self, uid: u64) -> String {
        self.index_of_uid(uid).map_or_else(
            || "<destroyed>".to_string(),
            |i| self.workspaces[i].shared.id.to_string(),
        )
    }

    fn open_list(&self) -> OpenWorkspaces {
        OpenWorkspaces(
            self.stack
                .iter()
                .filter(|f| f.kind == FrameKind::Enter)
                .map(|f| self.id_of(f.uid))
                .collect(),
        )
    }

    fn existing(&self) -> OpenWorkspaces {
        OpenWorkspaces(
            self.workspaces
                .iter()
                .map(|w| w.shared.id.to_string())
                .collect(),
        )
    }

    fn no_such(&self, id: &str) -> WorkspaceError {
        WorkspaceError::NoSuchWorkspace {
            workspace: id.to_string(),
            existing: self.existing(),
        }
    }

    fn find(&self, ws: &Workspace) -> Result<usize, WorkspaceError> {
        self.index_of_uid(ws.uid()).ok_or_else(|| {
            // A handle is only ever made for an existing workspace of this thread (handles are
            // `!Send`), so a handle whose workspace is gone was destroyed.
            if ws.is_destroyed() {
                WorkspaceError::DestroyedHandle {
                    workspace: ws.id().to_string(),
                    now: if self.index_of(ws.id()).is_some() {
                        "a new workspace with that id exists on this thread, but this handle \
                         refers to the destroyed one"
                    } else {
                        "no workspace with that id exists on this thread now"
                    },
                    existing: self.existing(),
                }
            } else {
                self.no_such(ws.id())
            }
        })
    }

    fn push(&mut self, kind: FrameKind, uid: u64) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.stack.push(Frame { token, kind, uid });
        token
    }

    /// Closes the frame `token`. `dropped`: the guard was dropped rather than `close()`d, so
    /// a misuse detected at the cycle end reaches no caller; it is counted for the report.
    fn close_frame(&mut self, token: u64, dropped: bool) -> Result<(), WorkspaceError> {
        // Absent when destroy removed it first: nothing left to close.
        let Some(pos) = self.stack.iter().rposition(|f| f.token == token) else {
            return Ok(());
        };
        let frame = self.stack.remove(pos);
        let Some(idx) = self.index_of_uid(frame.uid) else {
            return Ok(());
        };
        match frame.kind {
            FrameKind::Enter => {
                // Nested frames of this workspace can't outlive its cycle.
                self.stack
                    .retain(|f| f.uid != frame.uid || f.kind == FrameKind::ScopeOut);
                let debug = self.debug;
                let result = self.workspaces[idx].close(debug);
                if dropped && matches!(result, Err(WorkspaceError::BorrowedAtCycleEnd { .. })) {
                    self.workspaces[idx].note_dropped_while_borrowed();
                }
                result.map_err(|mut err| {
                    if let WorkspaceError::BorrowedAtCycleEnd { open, .. } = &mut err {
                        *open = self.open_list();
                    }
                    err
                })
            }
            FrameKind::Borrow => {
                self.workspaces[idx].borrowed = false;
                Ok(())
            }
            FrameKind::Reenter | FrameKind::ScopeOut => Ok(()),
        }
    }
}

fn with<R>(f: impl FnOnce(&mut Manager) -> R) -> R {
    MANAGER.with(|m| f(&mut m.borrow_mut()))
}

/// A handle to one workspace of the calling thread. Cheap to clone; `!Send`, because a
/// workspace is created, entered and cycled only by its own thread. A handle outlives
/// `destroy`: its operations then fail with [`WorkspaceError::DestroyedHandle`], also after a
/// new workspace with the same id was created (get a new handle for that one).
///
/// A workspace can't be handed to another thread:
/// ```compile_fail
/// let ws = dl4rs_memory::get_workspace_for_current_thread(&Default::default(), "W").unwrap();
/// std::thread::spawn(move || ws.id().len());
/// ```
#[derive(Clone)]
pub struct Workspace {
    shared: Arc<WsShared>,
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("id", &self.id())
            .field("generation", &self.generation())
            .field("open", &self.is_scope_active())
            .finish()
    }
}

impl PartialEq for Workspace {
    fn eq(&self, other: &Self) -> bool {
        self.uid() == other.uid()
    }
}

impl Workspace {
    fn new(shared: Arc<WsShared>) -> Self {
        Workspace {
            shared,
            _not_send: PhantomData,
        }
    }

    /// The workspace's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    pub(crate) fn uid(&self) -> u64 {
        self.shared.uid
    }

    /// Opens a scope: a new cycle if the workspace is closed, a nested scope (no new cycle) if
    /// it is the current workspace. Entering a workspace that is open further out is an error
    /// ([`WorkspaceError::AlreadyOpen`]).
    pub fn notify_scope_entered(&self) -> Result<WorkspaceScope, WorkspaceError> {
        with(|m| {
            if m.debug == DebugMode::BypassEverything {
                return Ok(m.push(FrameKind::ScopeOut, 0));
            }
            let idx = m.find(self)?;
            if m.workspaces[idx].is_open() {
                if m.current() == Some(self.uid()) {
                    Ok(m.push(FrameKind::Reenter, self.uid()))
                } else {
                    Err(WorkspaceError::AlreadyOpen {
                        workspace: self.id().to_string(),
                        current: m
                            .current()
                            .map_or_else(|| "none (scoped out)".to_string(), |u| m.id_of(u)),
                        open: m.open_list(),
                    })
                }
            } else {
                m.workspaces[idx].enter();
                Ok(m.push(FrameKind::Enter, self.uid()))
            }
        })
        .map(|token| WorkspaceScope::new(token, Some(self.clone())))
    }

    /// Makes this open workspace current without starting a cycle: allocations in the scope
    /// go here (ND4J `notifyScopeBorrowed`). Closing the scope restores the previous current.
    pub fn notify_scope_borrowed(&self) -> Result<WorkspaceScope, WorkspaceError> {
        with(|m| {
            if m.debug == DebugMode::BypassEverything {
                return Ok(m.push(FrameKind::ScopeOut, 0));
            }
            let idx = m.find(self)?;
            if !m.workspaces[idx].is_open() {
                return Err(WorkspaceError::NotOpen {
                    workspace: self.id().to_string(),
                    open: m.open_list(),
                });
            }
            if m.workspaces[idx].borrowed {
                return Err(WorkspaceError::AlreadyBorrowed {
                    workspace: self.id().to_string(),
                    open: m.open_list(),
                });
            }
            m.workspaces[idx].borrowed = true;
            Ok(m.push(FrameKind::Borrow, self.uid()))
        })
        .map(|token| WorkspaceScope::new(token, Some(self.clone())))
    }

    /// Whether a scope of this workspace is open.
    pub fn is_scope_active(&self) -> bool {
        self.shared.open.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the workspace was destroyed.
    pub fn is_destroyed(&self) -> bool {
        self.shared
            .destroyed
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The current generation (bumped at every cycle end and at destroy).
    pub fn generation(&self) -> u64 {
        self.shared
            .generation
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut WorkspaceState) -> R) -> Result<R, WorkspaceError> {
        with(|m| {
            let idx = m.find(self)?;
            Ok(f(&mut m.workspaces[idx]))
        })
    }

    /// A snapshot of the workspace's statistics.
    pub fn stats(&self) -> Result<WorkspaceStats, WorkspaceError> {
        self.with_state(|w| w.stats())
    }

    /// The configuration it was created with.
    pub fn config(&self) -> Result<WorkspaceConfig, WorkspaceError> {
        self.with_state(|w| w.config.clone())
    }

    /// Allocates the block from what was learned so far (ND4J `initializeWorkspace`); the way
    /// to initialize an `OverTime` workspace with `cycles_before_initialization == 0`.
    pub fn initialize_workspace(&self) -> Result<(), WorkspaceError> {
        self.with_state(|w| w.initialize())?
    }

    /// Turns the block off (`false`: allocations bypass it and are not learned) or back on.
    /// Every cycle end turns it back on, as ND4J.
    pub fn toggle_workspace_use(&self, on: bool) -> Result<(), WorkspaceError> {
        self.with_state(|w| w.toggle_use(on))
    }

    /// Destroys the workspace: every array in it becomes invalid (reads give
    /// [`WorkspaceError::WorkspaceDestroyed`]), its scopes are closed, and its memory is freed
    /// as soon as the last array referencing it is dropped. For a memory-mapped workspace that
    /// is also when the mapping ends and the file is unlocked and free for another workspace
    /// (see [`crate::LocationPolicy::Mmap`]); drop or detach its arrays to release it now.
    pub fn destroy(&self) -> Result<(), WorkspaceError> {
        with(|m| {
            let idx = m.find(self)?;
            let mut state = m.workspaces.remove(idx);
            state.destroy();
            m.stack
                .retain(|f| f.uid != self.uid() || f.kind == FrameKind::ScopeOut);
            Ok(())
        })
    }
}

/// An open scope: a workspace cycle (or a nested, borrowed or scoped-out scope). Dropping it
/// closes the scope; [`WorkspaceScope::close`] does the same and reports misuse detected at the
/// cycle end. `!Send`:
/// ```compile_fail
/// let scope = dl4rs_memory::scope_out_of_workspaces();
/// std::thread::spawn(move || drop(scope));
/// ```
#[must_use = "the scope closes (and its cycle ends) when this guard is dropped: bind it with `let _scope = ...`"]
pub struct WorkspaceScope {
    token: u64,
    workspace: Option<Workspace>,
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for WorkspaceScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceScope")
            .field("workspace", &self.workspace.as_ref().map(Workspace::id))
            .finish()
    }
}

impl WorkspaceScope {
    fn new(token: u64, workspace: Option<Workspace>) -> Self {
        WorkspaceScope {
            token,
            workspace,
            _not_send: PhantomData,
        }
    }

    /// The workspace of this scope (`None` for a scope-out or bypass scope).
    pub fn workspace(&self) -> Option<&Workspace> {
        self.workspace.as_ref()
    }

    /// Closes the scope, returning [`WorkspaceError::BorrowedAtCycleEnd`] if the cycle ended
    /// while arrays of it were borrowed (the memory was retired, not reused).
    ///
    /// ```
    /// use dl4rs_memory::{
    ///     Buffer, LearningPolicy, WorkspaceConfig, WorkspaceError, get_and_activate_workspace,
    /// };
    ///
    /// let cfg = WorkspaceConfig::builder()
    ///     .initial_size(4096)
    ///     .policy_learning(LearningPolicy::None)
    ///     .build()
    ///     .unwrap();
    /// let scope = get_and_activate_workspace(&cfg, "CLOSE_DOC").unwrap();
    /// let a = Buffer::<f32>::zeros(4).unwrap();
    /// let guard = a.read().unwrap();
    /// let err = scope.close().unwrap_err(); // the guard is still alive
    /// assert!(matches!(err, WorkspaceError::BorrowedAtCycleEnd { .. }));
    /// assert_eq!(guard[0], 0.0); // still safe: the block was retired, not reused
    /// ```
    pub fn close(mut self) -> Result<(), WorkspaceError> {
        let token = std::mem::take(&mut self.token);
        with(|m| m.close_frame(token, false))
    }
}

impl Drop for WorkspaceScope {
    /// Closes the scope. A cycle that ends here with arrays still borrowed is safe (the block
    /// is retired, not reused) and is counted in the statistics and shown as a warning by
    /// [`allocation_report`]; under [`DebugMode::PanicOnBorrowedDrop`] it panics here, so the
    /// bug is found where it is (unless the thread is already panicking).
    fn drop(&mut self) {
        if self.token == 0 {
            return;
        }
        let token = self.token;
        // `try_with`/`try_borrow_mut`: during thread teardown the manager may already be gone,
        // and a guard must never turn an unwinding panic into an abort.
        let misuse = MANAGER
            .try_with(|m| {
                let Ok(mut m) = m.try_borrow_mut() else {
                    return None;
                };
                let result = m.close_frame(token, true);
                match result {
                    Err(err @ WorkspaceError::BorrowedAtCycleEnd { .. })
                        if m.debug == DebugMode::PanicOnBorrowedDrop =>
                    {
                        Some(err)
                    }
                    _ => None,
                }
            })
            .ok()
            .flatten();
        // The manager is consistent and released before the panic.
        if let Some(err) = misuse
            && !std::thread::panicking()
        {
            panic!(
                "workspace scope dropped while arrays of its cycle were borrowed (DebugMode::PanicOnBorrowedDrop): {err}"
            );
        }
    }
}

/// Where an allocation goes.
pub(crate) enum Target<'a> {
    /// The current workspace, or the heap when none is current.
    Current,
    /// A given (open) workspace.
    Workspace(&'a Workspace),
}

/// Allocates `bytes` in the target's workspace. `Ok(None)` means "use the heap": no workspace
/// is current, debug bypass, or an empty allocation (never attached, as ND4J).
pub(crate) fn allocate(
    target: Target<'_>,
    bytes: usize,
    zero: bool,
) -> Result<Option<Attached>, WorkspaceError> {
    let aligned = align_up(bytes).ok_or(WorkspaceError::SizeOverflow {
        len: bytes,
        elem: "u8",
        max: isize::MAX as usize,
    })?;
    with(|m| {
        if m.debug == DebugMode::BypassEverything {
            return Ok(None);
        }
        let idx = match target {
            Target::Current => match m.current() {
                Some(uid) => m.index_of_uid(uid).ok_or_else(|| m.no_such("<current>"))?,
                None => return Ok(None),
            },
            Target::Workspace(ws) => m.find(ws)?,
        };
        if !m.workspaces[idx].is_open() {
            return Err(WorkspaceError::NotOpen {
                workspace: m.workspaces[idx].shared.id.to_string(),
                open: m.open_list(),
            });
        }
        if bytes == 0 {
            // As ND4J: an empty array is never attached.
            return Ok(None);
        }
        let debug = m.debug;
        m.workspaces[idx].alloc(aligned, zero, debug).map(Some)
    })
}

/// Gets the workspace `id` of this thread, creating it with `config` if it does not exist.
/// An existing workspace with a *different* configuration is an error
/// ([`WorkspaceError::ConfigMismatch`]), not silently shared (DL4J issue #4337).
pub fn get_workspace_for_current_thread(
    config: &WorkspaceConfig,
    id: &str,
) -> Result<Workspace, WorkspaceError> {
    with(|m| {
        if let Some(idx) = m.index_of(id) {
            let ws = &m.workspaces[idx];
            if ws.config != *config {
                return Err(WorkspaceError::ConfigMismatch {
                    workspace: id.to_string(),
                    existing: Box::new(ws.config.clone()),
                    requested: Box::new(config.clone()),
                });
            }
            return Ok(Workspace::new(ws.shared.clone()));
        }
        let state = WorkspaceState::new(id, config.clone())?;
        let handle = Workspace::new(state.shared.clone());
        m.workspaces.push(state);
        Ok(handle)
    })
}

/// The existing workspace `id` of this thread.
pub fn find_workspace_for_current_thread(id: &str) -> Result<Workspace, WorkspaceError> {
    with(|m| {
        m.index_of(id)
            .map(|i| Workspace::new(m.workspaces[i].shared.clone()))
            .ok_or_else(|| m.no_such(id))
    })
}

/// Gets (or creates) the workspace `id` and opens a scope of it: the usual way to run one
/// cycle of a loop in a workspace.
///
/// ```
/// use dl4rs_memory::{Buffer, WorkspaceConfig, get_and_activate_workspace};
///
/// let cfg = WorkspaceConfig::default();
/// for _ in 0..3 {
///     let _cycle = get_and_activate_workspace(&cfg, "ITERATION").unwrap();
///     let a = Buffer::<f64>::zeros(100).unwrap(); // first cycle spills, then learned
///     assert!(a.is_attached());
/// }
/// ```
pub fn get_and_activate_workspace(
    config: &WorkspaceConfig,
    id: &str,
) -> Result<WorkspaceScope, WorkspaceError> {
    if debug_mode() == DebugMode::BypassEverything {
        config.validate()?;
        return Ok(scope_out_of_workspaces());
    }
    get_workspace_for_current_thread(config, id)?.notify_scope_entered()
}

/// Opens a scope in which allocations go to the heap (detached), whatever workspace is open.
/// Closing it restores the previous current workspace.
pub fn scope_out_of_workspaces() -> WorkspaceScope {
    let token = with(|m| m.push(FrameKind::ScopeOut, 0));
    WorkspaceScope::new(token, None)
}

/// Whether the workspace `id` exists on this thread.
pub fn check_if_workspace_exists(id: &str) -> bool {
    with(|m| m.index_of(id).is_some())
}

/// Whether the workspace `id` exists on this thread and a scope of it is open.
pub fn check_if_workspace_exists_and_active(id: &str) -> bool {
    with(|m| m.index_of(id).is_some_and(|i| m.workspaces[i].is_open()))
}

/// The current workspace: where `Buffer::zeros` allocates now (`None`: the heap).
pub fn current_workspace() -> Option<Workspace> {
    with(|m| {
        m.current()
            .and_then(|uid| m.index_of_uid(uid))
            .map(|i| Workspace::new(m.workspaces[i].shared.clone()))
    })
}

/// The workspace that was current before the current one was entered (ND4J's
/// `getParentWorkspace`): walking the scope stack down from the top, the first frame of another
/// workspace. `None` when there is no current workspace, or the frame below is a scope-out or
/// the bottom of the stack. `leverage()` copies into it.
pub fn parent_workspace() -> Option<Workspace> {
    with(|m| {
        let top = m.current()?;
        for frame in m.stack.iter().rev() {
            match frame.kind {
                FrameKind::ScopeOut => return None,
                _ if frame.uid == top => continue,
                _ => {
                    return m
                        .index_of_uid(frame.uid)
                        .map(|i| Workspace::new(m.workspaces[i].shared.clone()));
                }
            }
        }
        None
    })
}

/// Whether any workspace scope is open on this thread.
pub fn any_workspace_active_for_current_thread() -> bool {
    with(|m| m.workspaces.iter().any(|w| w.is_open()))
}

/// Ids of this thread's workspaces, in creation order.
pub fn all_workspace_ids_for_current_thread() -> Vec<String> {
    with(|m| m.existing().0)
}

/// The workspaces open on this thread, outermost first (as shown in error messages).
pub fn open_workspaces() -> OpenWorkspaces {
    MANAGER
        .try_with(|m| m.try_borrow().map(|m| m.open_list()).unwrap_or_default())
        .unwrap_or_default()
}

/// Destroys every workspace of this thread (see [`Workspace::destroy`]). Unlike ND4J this is
/// safe with live arrays: they become invalid, and their memory is freed when they drop.
pub fn destroy_all_workspaces_for_current_thread() {
    with(|m| {
        for mut state in m.workspaces.drain(..) {
            state.destroy();
        }
        m.stack.retain(|f| f.kind == FrameKind::ScopeOut);
    })
}

/// Statistics of every workspace of this thread.
pub fn allocation_report() -> AllocationReport {
    with(|m| AllocationReport {
        workspaces: m.workspaces.iter().map(|w| w.stats()).collect(),
    })
}

/// Sets this thread's debug mode (see [`DebugMode`]). Takes effect for the next allocation and
/// scope.
pub fn set_debug_mode(mode: DebugMode) {
    with(|m| m.debug = mode);
}

/// This thread's debug mode.
pub fn debug_mode() -> DebugMode {
    with(|m| m.debug)
}
