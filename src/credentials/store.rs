//! The host's credentials file: written under a lock, never replaced by an older login,
//! and swapped in atomically with a backup, so that a writer killed at any moment leaves
//! the old file or the new one, complete and 0600.
//!
//! Everything here blocks (a lock wait, fsyncs): call it from `spawn_blocking` in async code.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Credentials, CredentialsError, ShapeError};
use crate::secret::Secret;

/// How long a writer waits for another one. A write takes milliseconds, so a lock held
/// this long belongs to a stuck process, and the user should hear about it.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A temporary file this old was left by a killed writer: live ones last milliseconds.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

const LOCK_POLL: Duration = Duration::from_millis(20);

/// Makes temporary names unique between threads of one process; the pid separates processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What [`write_atomic`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The new file is in place (and the previous login, if any, is `PATH.bak`).
    Written,
    /// The file already held exactly these bytes.
    Unchanged,
    /// The file holds a newer login (larger `expiresAt`) than the one offered: kept.
    KeptNewer,
    /// The file no longer holds the login the caller judged against (another writer, or
    /// the user's own claude, changed it): nothing written. Read it again and re-judge.
    ChangedMeanwhile,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("another claunch is writing {} (waited {}s for {})\n  hint: retry when it is done; if no claunch is running, find what holds the lock with `fuser {}`", path.display(), waited.as_secs(), lock.display(), lock.display())]
    LockTimeout {
        path: PathBuf,
        lock: PathBuf,
        waited: Duration,
    },
    #[error("{}: cannot {step}: {error}\n  hint: check that you own {} and that its disk is not full", path.display(), dir.display())]
    Io {
        path: PathBuf,
        dir: PathBuf,
        step: &'static str,
        error: io::Error,
    },
    #[error("{}: refusing to write credentials that {error}\n  hint: the file was left as it was", path.display())]
    InvalidNew { path: PathBuf, error: ShapeError },
    #[error("{}: {reason}; not overwriting it\n  hint: move it away, or point `credentials.file` at the right file", path.display())]
    NotCredentials { path: PathBuf, reason: String },
}

/// Replaces the credentials file at `path` with `new`, unless that would lose something.
///
/// Under an exclusive lock on the sibling `PATH.lock` (so that concurrent syncs take
/// turns), the current file is read again and the write is skipped if it holds a newer
/// login ([`WriteOutcome::KeptNewer`]) or the same bytes. With `expect_current`, the
/// write is also skipped if the file holds a usable login other than that one
/// ([`WriteOutcome::ChangedMeanwhile`]): a compare-and-swap for callers that judged `new`
/// against what they read earlier. A missing, empty or blanked file (claude blanks its
/// file after a failed refresh) is always replaced, as that only restores a login.
///
/// The previous login, if any, is kept as `PATH.bak`. Both files are written to a fresh
/// 0600 temporary file in the same directory, fsynced and renamed into place, and the
/// directory is fsynced. A symlink at `path` is followed, and its target replaced.
pub fn write_atomic(
    path: &Path,
    new: &Secret,
    expect_current: Option<&Credentials>,
) -> Result<WriteOutcome, StoreError> {
    write_atomic_within(path, new, expect_current, LOCK_TIMEOUT)
}

fn write_atomic_within(
    path: &Path,
    new: &Secret,
    expect_current: Option<&Credentials>,
    lock_timeout: Duration,
) -> Result<WriteOutcome, StoreError> {
    let new_creds = Credentials::parse(new.clone()).map_err(|error| StoreError::InvalidNew {
        path: path.into(),
        error,
    })?;
    let target = Target::resolve(path)?;
    let _lock = target.lock(lock_timeout)?;
    target.remove_stale_temps();

    let current = target.read_current()?;
    if let Some(cur) = &current {
        let expiry = |c: &Credentials| c.summary.expires_at_ms.unwrap_or(i64::MIN);
        if expiry(cur) > expiry(&new_creds) {
            return Ok(WriteOutcome::KeptNewer);
        }
        if cur.raw() == new {
            return Ok(WriteOutcome::Unchanged);
        }
        if expect_current.is_some_and(|e| e.raw() != cur.raw()) {
            return Ok(WriteOutcome::ChangedMeanwhile);
        }
        target.replace(&target.backup, cur.raw())?;
    }
    target.replace(&target.path, new)?;
    target.sync_dir()?;
    Ok(WriteOutcome::Written)
}

/// The real file behind a path, and the names around it.
struct Target {
    path: PathBuf,
    dir: PathBuf,
    name: String,
    backup: PathBuf,
    lock: PathBuf,
}

impl Target {
    fn resolve(path: &Path) -> Result<Self, StoreError> {
        // Renaming over a symlink would replace the link itself, cutting the user's
        // login off from wherever it points; writers through either name must also
        // agree on one lock.
        let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        let real = if is_link {
            fs::canonicalize(path).map_err(|error| StoreError::Io {
                path: path.into(),
                dir: path.parent().unwrap_or(Path::new(".")).into(),
                step: "follow the symlink",
                error,
            })?
        } else {
            path.to_path_buf()
        };
        let Some(name) = real
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            return Err(StoreError::NotCredentials {
                path: path.into(),
                reason: "does not name a file".into(),
            });
        };
        let dir = match real.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(Self {
            backup: dir.join(format!("{name}.bak")),
            lock: dir.join(format!("{name}.lock")),
            path: real,
            dir,
            name,
        })
    }

    fn io(&self, path: &Path, step: &'static str) -> impl FnOnce(io::Error) -> StoreError {
        let (path, dir) = (path.to_path_buf(), self.dir.clone());
        move |error| StoreError::Io {
            path,
            dir,
            step,
            error,
        }
    }

    /// Holds the lock until the returned file is dropped. The kernel releases it when
    /// the process dies, so a killed writer never leaves a stale lock; the lock file
    /// itself stays, as deleting it would let two writers lock two different files.
    fn lock(&self, timeout: Duration) -> Result<File, StoreError> {
        let file = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock)
            .map_err(self.io(&self.lock, "open the lock file"))?;
        let deadline = Instant::now() + timeout;
        loop {
            // std's blocking lock() has no timeout: poll, so a stuck holder is reported.
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(self.io(&self.lock, "lock")(e)),
            }
            if Instant::now() >= deadline {
                return Err(StoreError::LockTimeout {
                    path: self.path.clone(),
                    lock: self.lock.clone(),
                    waited: timeout,
                });
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    /// The login in the file now, or `None` if there is nothing worth keeping.
    fn read_current(&self) -> Result<Option<Credentials>, StoreError> {
        let not_credentials = |reason: String| StoreError::NotCredentials {
            path: self.path.clone(),
            reason,
        };
        match Credentials::read_file(&self.path) {
            Ok(c) => Ok(Some(c)),
            // Nothing there, or what claude itself leaves behind or treats as logged
            // out: nothing to lose.
            Err(
                CredentialsError::Missing { .. }
                | CredentialsError::Invalid {
                    error: ShapeError::Empty | ShapeError::Blanked | ShapeError::NoRefreshNoScopes,
                    ..
                },
            ) => Ok(None),
            // Something that was never a login (a wrong path in claunch.yaml): not ours.
            Err(CredentialsError::Invalid { error, .. }) => Err(not_credentials(error.to_string())),
            Err(CredentialsError::Directory { .. }) => {
                Err(not_credentials("is a directory".into()))
            }
            Err(CredentialsError::TooLarge { size, .. }) => Err(not_credentials(format!(
                "is {size} bytes, too large for a credentials file"
            ))),
            Err(CredentialsError::Read { error, .. }) => Err(self.io(&self.path, "read")(error)),
            Err(CredentialsError::NotRegular { kind, .. }) => {
                Err(not_credentials(format!("is not a regular file ({kind})")))
            }
        }
    }

    /// Puts `bytes` at `dest` through a fresh temporary file, so `dest` is never seen
    /// partly written, and is 0600 from the moment it exists.
    fn replace(&self, dest: &Path, bytes: &Secret) -> Result<(), StoreError> {
        let (temp, mut file) = self.create_temp()?;
        let written = file
            .write_all(bytes.expose())
            .and_then(|()| file.sync_all())
            .map_err(self.io(&temp, "write a temporary file"));
        drop(file);
        let renamed =
            written.and_then(|()| fs::rename(&temp, dest).map_err(self.io(dest, "replace")));
        if renamed.is_err() {
            let _ = fs::remove_file(&temp);
        }
        renamed
    }

    fn create_temp(&self) -> Result<(PathBuf, File), StoreError> {
        let pid = std::process::id();
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp = self
                .dir
                .join(format!("{}{pid}-{n}.tmp", self.temp_prefix()));
            // create_new: a reused pid may meet a killed writer's leftover; never write
            // through it (or through a symlink planted under that name).
            match private_options().write(true).create_new(true).open(&temp) {
                Ok(file) => return Ok((temp, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(self.io(&temp, "create a temporary file")(e)),
            }
        }
    }

    fn temp_prefix(&self) -> String {
        format!("{}.claunch-", self.name)
    }

    /// Best effort: a leftover holds an old login, and the write goes ahead regardless.
    fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let prefix = self.temp_prefix();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if !is_temp_suffix(rest) {
                continue;
            }
            // Regular files only (DirEntry::metadata does not follow symlinks).
            let stale = entry.metadata().is_ok_and(|m| {
                m.is_file()
                    && m.modified()
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_TEMP_AGE)
            });
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Makes the renames themselves survive a power loss.
    fn sync_dir(&self) -> Result<(), StoreError> {
        #[cfg(unix)]
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(self.io(&self.dir, "sync the directory"))?;
        Ok(())
    }
}

/// `PID-N.tmp`, the part of a temporary name after the prefix.
fn is_temp_suffix(rest: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    rest.strip_suffix(".tmp")
        .and_then(|r| r.split_once('-'))
        .is_some_and(|(pid, n)| digits(pid) && digits(n))
}

/// Files that only their owner may read, from creation on (a chmod afterwards would
/// leave a window where the umask's mode applies).
fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

#[cfg(all(test, unix))]
#[path = "store_tests.rs"]
mod tests;
