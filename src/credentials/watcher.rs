//! Whether a `claunch creds sync --watch` keeps a project's login alive: the watcher holds
//! an exclusive lock on a file named after the project for as long as it runs, so others
//! can tell (and a second watcher of one project, a second refresher, is refused). The lock
//! goes with the process, also when it is killed.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;

/// Where the lock of `project` lives: the user's runtime directory, else the temp one.
fn lock_path(project: &str) -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!("claunch-sync-{project}.lock"))
}

/// Held by a running watcher; dropping it releases the lock.
#[derive(Debug)]
pub struct WatchGuard {
    _file: File,
}

/// Who watches a project, as far as can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watching {
    /// A watcher runs; its pid as it wrote it.
    Yes {
        pid: Option<u32>,
    },
    No,
}

/// Becomes the project's watcher, or says which process already is (its pid, if known).
pub fn acquire(project: &str) -> std::io::Result<Result<WatchGuard, Option<u32>>> {
    let path = lock_path(project);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            write!(file, "{}", std::process::id())?;
            file.flush()?;
            Ok(Ok(WatchGuard { _file: file }))
        }
        Err(TryLockError::WouldBlock) => Ok(Err(read_pid(&mut file))),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Whether a watcher runs for `project` (without becoming one).
pub fn watching(project: &str) -> Watching {
    let Ok(mut file) = File::open(lock_path(project)) else {
        return Watching::No;
    };
    match file.try_lock_shared() {
        Ok(()) => Watching::No,
        Err(_) => Watching::Yes {
            pid: read_pid(&mut file),
        },
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

impl Watching {
    /// How a follower's access token is kept fresh, in words.
    pub fn describe(&self) -> String {
        match self {
            Self::Yes { pid: Some(pid) } => {
                format!("kept fresh by the `claunch creds sync --watch` running (pid {pid})")
            }
            Self::Yes { pid: None } => {
                "kept fresh by the `claunch creds sync --watch` running".to_string()
            }
            Self::No => "no `claunch creds sync --watch` runs for this project to keep it fresh (start one, or run `claunch creds sync` from cron)".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_watcher_per_project_and_others_can_tell() {
        let project = format!("unit-{}", std::process::id());
        assert_eq!(watching(&project), Watching::No);
        let guard = acquire(&project).unwrap().unwrap();
        assert_eq!(
            watching(&project),
            Watching::Yes {
                pid: Some(std::process::id())
            }
        );
        assert_eq!(
            acquire(&project).unwrap().unwrap_err(),
            Some(std::process::id())
        );
        drop(guard);
        assert_eq!(watching(&project), Watching::No);
        let _ = std::fs::remove_file(lock_path(&project));
    }
}
