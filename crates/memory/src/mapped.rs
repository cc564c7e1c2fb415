//! Files of memory-mapped workspaces: opening, sizing and, above all, **exclusive ownership**.
//!
//! Two workspaces that map the same file would hand out two valid arrays over the same bytes,
//! so a `&mut [T]` and a `&[T]` could alias: undefined behaviour from safe code. This module
//! makes that impossible for every program that goes through dl4rs:
//!
//! * a process-wide registry of mapped files, keyed by the file's identity (device and inode on
//!   Unix, so two paths, symbolic or hard links to one file are one entry; the canonical path
//!   elsewhere), records which workspace (and thread) holds each file. A second mapping in the
//!   same process, on any thread, is refused with [`WorkspaceError::MmapInUse`] naming the path
//!   and the holder;
//! * an exclusive advisory lock (`flock` through [`std::fs::File::try_lock`]) on the file, held
//!   for as long as the mapping exists, refuses a mapping by another process.
//!
//! Both are released only when the mapping itself is released, which is when the last array
//! that references it drops (not at `destroy`): until then a borrowed array may still be
//! reading the mapped bytes. This module contains no `unsafe`; the mapping is made in
//! `chunk.rs`.
//!
//! [`WorkspaceError::MmapInUse`]: crate::WorkspaceError::MmapInUse

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use crate::chunk::WsShared;

/// What identifies one file, whatever path names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FileKey {
    /// Device and inode (Unix): catches hard links and symbolic links.
    #[cfg(unix)]
    Inode(u64, u64),
    /// Canonical path (other systems).
    #[cfg_attr(unix, allow(dead_code))]
    Path(PathBuf),
}

struct Holder {
    token: u64,
    workspace: Weak<WsShared>,
    id: String,
    thread: String,
}

static REGISTRY: LazyLock<Mutex<HashMap<FileKey, Holder>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn registry() -> std::sync::MutexGuard<'static, HashMap<FileKey, Holder>> {
    // A panic while the registry is locked can't leave it inconsistent (every update is one
    // insert or remove), so a poisoned lock is still usable.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a file could not be opened for mapping.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// Another workspace (of this process or another) holds the file.
    InUse { path: PathBuf, held_by: String },
    /// The operating system refused.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// An open, locked and registered file of a memory-mapped workspace. Dropping it unlocks the
/// file, removes the registry entry and, on systems where an open file can't be unlinked,
/// deletes a temporary file. It must be dropped after the mapping over it (see `chunk.rs`).
pub(crate) struct MappedFile {
    file: Option<File>,
    key: FileKey,
    token: u64,
    /// A temporary file still to delete at drop (only where it could not be unlinked at once).
    delete_at_drop: Option<PathBuf>,
}

impl MappedFile {
    pub(crate) fn file(&self) -> &File {
        self.file.as_ref().expect("the file is present until drop")
    }

    /// Unlinks a temporary file right after it was mapped (Unix): the mapping keeps the
    /// memory, no file is left behind even if the process is killed, and the disk space is
    /// returned when the mapping is released. Elsewhere the file is deleted at drop.
    pub(crate) fn unlink_temporary(&mut self, path: &Path) {
        if cfg!(unix) {
            let _ = std::fs::remove_file(path);
        } else {
            self.delete_at_drop = Some(path.to_path_buf());
        }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // The registry stays locked from closing the file to removing its entry. Closed, a
        // file already deleted frees its inode, and a file created meanwhile may get that
        // inode: a mapper of it that found our entry still there would be refused as if we
        // held its file (seen when one test deleted its mapped file while another created
        // one). Unlocking before the entry goes means a mapper of this process that finds no
        // entry never meets our lock and mistakes it for another process's.
        let mut reg = registry();
        if let Some(file) = self.file.take() {
            let _ = file.unlock();
            drop(file);
        }
        if let Some(path) = self.delete_at_drop.take() {
            let _ = std::fs::remove_file(path);
        }
        if reg.get(&self.key).is_some_and(|h| h.token == self.token) {
            reg.remove(&self.key);
        }
    }
}

fn thread_name() -> String {
    let current = std::thread::current();
    match current.name() {
        Some(name) => format!("thread \"{name}\""),
        None => format!("thread {:?}", current.id()),
    }
}

fn describe(holder: &Holder) -> String {
    let state = match holder.workspace.upgrade() {
        Some(ws) if ws.destroyed.load(SeqCst) => {
            ", destroyed: its mapping is released when the last array of it drops"
        }
        Some(_) => "",
        None => ", being released",
    };
    format!(
        "workspace \"{}\" on {} of this process{state}",
        holder.id, holder.thread
    )
}

#[cfg(unix)]
fn key_of(file: &File, _canonical: &Path) -> std::io::Result<FileKey> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok(FileKey::Inode(meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn key_of(_file: &File, canonical: &Path) -> std::io::Result<FileKey> {
    Ok(FileKey::Path(canonical.to_path_buf()))
}

/// Opens (creating it if needed) the file at `path` for a mapping of `len` bytes by the
/// workspace `ws`: registers it, takes the exclusive lock, and extends a shorter file to `len`
/// bytes (a longer one is left as it is: only its first `len` bytes are mapped). `temp` means a
/// new file dl4rs names itself, which must not exist yet.
pub(crate) fn open(
    path: &Path,
    len: usize,
    ws: &Arc<WsShared>,
    temp: bool,
) -> Result<MappedFile, OpenFailure> {
    let io = |error: std::io::Error| OpenFailure::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if temp {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    let file = options.open(path).map_err(io)?;
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let key = key_of(&file, &canonical).map_err(io)?;

    static TOKEN: AtomicU64 = AtomicU64::new(1);
    let token = TOKEN.fetch_add(1, SeqCst);
    {
        let mut reg = registry();
        if let Some(holder) = reg.get(&key) {
            return Err(OpenFailure::InUse {
                path: canonical,
                held_by: describe(holder),
            });
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(OpenFailure::InUse {
                    path: canonical,
                    held_by: "another process (it holds an exclusive lock on the file)".into(),
                });
            }
            Err(TryLockError::Error(error)) => return Err(io(error)),
        }
        reg.insert(
            key.clone(),
            Holder {
                token,
                workspace: Arc::downgrade(ws),
                id: ws.id.to_string(),
                thread: thread_name(),
            },
        );
    }
    // From here on the entry and the lock are ours; dropping `mapped` releases both.
    let mapped = MappedFile {
        file: Some(file),
        key,
        token,
        delete_at_drop: None,
    };
    let wanted = len as u64;
    let current = mapped.file().metadata().map_err(io)?.len();
    if current < wanted {
        mapped.file().set_len(wanted).map_err(io)?;
    }
    Ok(mapped)
}
