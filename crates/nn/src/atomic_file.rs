//! Crash-safe file replacement: the bytes go to a unique temporary file in the same directory,
//! which is synced, renamed over the target, and the directory synced, so after a crash the
//! path holds either the previous complete file or the new one, never a torn mix.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::NnError;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let unique = format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    path.with_file_name(unique)
}

/// Whether process `pid` is alive (Linux: `/proc/<pid>` exists; elsewhere it is assumed alive,
/// so nothing is removed).
fn process_alive(pid: u32) -> bool {
    !cfg!(target_os = "linux") || Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes the temporary files of `path` ([`temp_path`]'s names) that belong to processes
/// that are gone: a writer killed between creating its temporary file and the rename leaves
/// it behind, and without this every such kill would leave one more. Files of live processes
/// (possibly writing right now) are never touched; failures are ignored.
fn remove_stale_temps(path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        let Some(rest) = file
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let mut parts = rest.split('.');
        let (Some(pid), Some(counter), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), counter.parse::<u64>()) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `path` atomically: unique temporary file, fsync, rename, fsync of the
/// directory. The temporary file is removed if any step fails; temporary files left by
/// writers that were killed (processes that no longer exist) are removed first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NnError> {
    let err = |e: std::io::Error| NnError::File {
        path: path.display().to_string(),
        message: format!("can't write the file: {e}"),
    };
    remove_stale_temps(path);
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Persist the rename itself; directories can be opened read-only for fsync on Unix.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporaries() {
        let dir = std::env::temp_dir().join(format!("dl4rs-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.bin");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(write_atomic(&dir.join("missing").join("x"), b"z").is_err());
        // A temporary file of a dead process is removed by the next write; one of a live
        // process (this one's parent, pid 1 here: always alive) and unrelated names are kept.
        let stale = dir.join(".model.bin.4294967294.0.tmp");
        let live = dir.join(".model.bin.1.0.tmp");
        let other = dir.join(".model.bin.x.0.tmp");
        for p in [&stale, &live, &other] {
            std::fs::write(p, b"partial").unwrap();
        }
        write_atomic(&path, b"three").unwrap();
        assert!(!stale.exists());
        assert!(live.exists() && other.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
