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

/// Reads the host's credentials file.
pub fn read(path: &Path) -> Result<Credentials, CredentialsError> {
    Credentials::read_file(path)
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
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};
    use std::sync::Arc;

    use super::*;

    const BASE: i64 = 1_768_800_000_000;

    fn login(expires_at: i64, tag: &str) -> Secret {
        Secret::from(format!(
            r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-{tag}","refreshToken":"sk-ant-ort01-{tag}","expiresAt":{expires_at},"scopes":["user:inference"]}},"mcpOAuth":{{}}}}"#
        ))
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn expiry(path: &Path) -> i64 {
        read(path).unwrap().summary.expires_at_ms.unwrap()
    }

    fn temps(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".claunch-"))
            .collect()
    }

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".credentials.json");
        (dir, path)
    }

    #[test]
    fn a_first_write_creates_a_private_file_and_lock_without_a_backup() {
        let (dir, path) = setup();
        let out = write_atomic(&path, &login(BASE, "A"), None).unwrap();
        assert_eq!(out, WriteOutcome::Written);
        assert_eq!(read(&path).unwrap().raw(), &login(BASE, "A"));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join(".credentials.json.lock")), 0o600);
        assert!(!dir.path().join(".credentials.json.bak").exists());
        assert!(temps(dir.path()).is_empty());
    }

    #[test]
    fn a_newer_login_replaces_the_file_and_the_old_one_becomes_the_backup() {
        let (dir, path) = setup();
        fs::write(&path, login(BASE, "A").expose()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let out = write_atomic(&path, &login(BASE + 1, "B"), None).unwrap();
        assert_eq!(out, WriteOutcome::Written);
        assert_eq!(expiry(&path), BASE + 1);
        assert_eq!(mode(&path), 0o600, "a lax mode is not carried over");
        let backup = dir.path().join(".credentials.json.bak");
        assert_eq!(read(&backup).unwrap().raw(), &login(BASE, "A"));
        assert_eq!(mode(&backup), 0o600);
    }

    #[test]
    fn an_older_or_identical_login_leaves_the_file_alone() {
        let (_dir, path) = setup();
        write_atomic(&path, &login(BASE, "A"), None).unwrap();
        let out = write_atomic(&path, &login(BASE - 1, "B"), None).unwrap();
        assert_eq!(out, WriteOutcome::KeptNewer);
        let out = write_atomic(&path, &login(BASE, "A"), None).unwrap();
        assert_eq!(out, WriteOutcome::Unchanged);
        assert_eq!(read(&path).unwrap().raw(), &login(BASE, "A"));
    }

    #[test]
    fn expect_current_makes_a_compare_and_swap() {
        let (_dir, path) = setup();
        write_atomic(&path, &login(BASE, "A"), None).unwrap();
        let judged_against = read(&path).unwrap();
        // The user's own claude refreshes in between.
        write_atomic(&path, &login(BASE + 5, "H"), None).unwrap();
        let out = write_atomic(&path, &login(BASE + 9, "B"), Some(&judged_against)).unwrap();
        assert_eq!(out, WriteOutcome::ChangedMeanwhile);
        assert_eq!(expiry(&path), BASE + 5);
        let now_current = read(&path).unwrap();
        let out = write_atomic(&path, &login(BASE + 9, "B"), Some(&now_current)).unwrap();
        assert_eq!(out, WriteOutcome::Written);
    }

    #[test]
    fn a_blanked_file_is_replaced_but_a_foreign_one_is_not() {
        let (dir, path) = setup();
        fs::write(
            &path,
            r#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0}}"#,
        )
        .unwrap();
        let judged = Credentials::parse(login(BASE - 9, "Z")).unwrap();
        let out = write_atomic(&path, &login(BASE, "A"), Some(&judged)).unwrap();
        assert_eq!(out, WriteOutcome::Written);
        assert_eq!(expiry(&path), BASE);
        assert!(
            !dir.path().join(".credentials.json.bak").exists(),
            "a blanked file is no login worth a backup"
        );

        let other = dir.path().join("id_ed25519");
        fs::write(&other, "-----BEGIN OPENSSH PRIVATE KEY----- sk-ant-LEAK").unwrap();
        let err = write_atomic(&other, &login(BASE, "A"), None).unwrap_err();
        assert!(matches!(err, StoreError::NotCredentials { .. }), "{err}");
        assert!(!err.to_string().contains("LEAK"));
        assert!(fs::read_to_string(&other).unwrap().contains("OPENSSH"));
    }

    #[test]
    fn invalid_new_content_is_refused_without_quoting_it() {
        let (_dir, path) = setup();
        write_atomic(&path, &login(BASE, "A"), None).unwrap();
        let bad = Secret::from(r#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":9e15}} sk-ant-LEAK"#.to_string());
        let err = write_atomic(&path, &bad, None).unwrap_err();
        assert!(matches!(err, StoreError::InvalidNew { .. }));
        assert!(!err.to_string().contains("LEAK"));
        assert_eq!(expiry(&path), BASE);
    }

    #[test]
    fn concurrent_writers_leave_the_newest_login() {
        let (dir, path) = setup();
        let path = Arc::new(path);
        // Interleaved order, so that older writers often come after newer ones.
        let offsets = [7, 2, 15, 0, 11, 4, 9, 13, 1, 6, 14, 3, 10, 8, 12, 5];
        let threads: Vec<_> = offsets
            .iter()
            .map(|&i| {
                let path = Arc::clone(&path);
                std::thread::spawn(move || {
                    for round in 0..5 {
                        let at = BASE + i * 10 + round;
                        write_atomic(&path, &login(at, &format!("{i}-{round}")), None).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(expiry(&path), BASE + 154);
        assert_eq!(mode(&path), 0o600);
        let backup = dir.path().join(".credentials.json.bak");
        assert!(expiry(&backup) < BASE + 154);
        assert_eq!(mode(&backup), 0o600);
        assert!(temps(dir.path()).is_empty());
    }

    #[test]
    fn a_killed_writers_temp_file_is_ignored_then_cleaned() {
        let (dir, path) = setup();
        write_atomic(&path, &login(BASE, "A"), None).unwrap();
        let stale = dir.path().join(".credentials.json.claunch-99999-3.tmp");
        let fresh = dir.path().join(".credentials.json.claunch-99999-4.tmp");
        let unrelated = dir.path().join(".credentials.json.claunch-notes.tmp");
        for f in [&stale, &fresh, &unrelated] {
            fs::write(f, r#"{"claudeAiOauth":{"accessTo"#).unwrap();
        }
        let old = std::time::SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(5);
        for f in [&stale, &unrelated] {
            File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        // A killed writer never renamed its temp file: the login is intact.
        assert_eq!(expiry(&path), BASE);
        write_atomic(&path, &login(BASE + 1, "B"), None).unwrap();
        assert_eq!(expiry(&path), BASE + 1);
        assert!(!stale.exists(), "a stale temp file is removed");
        assert!(fresh.exists(), "a young one may belong to a live writer");
        assert!(unrelated.exists(), "only our own name pattern is touched");
    }

    #[test]
    fn a_held_lock_times_out_with_a_clear_error() {
        let (dir, path) = setup();
        write_atomic(&path, &login(BASE, "A"), None).unwrap();
        let holder = File::open(dir.path().join(".credentials.json.lock")).unwrap();
        holder.lock().unwrap();
        let started = Instant::now();
        let err = write_atomic_within(
            &path,
            &login(BASE + 1, "B"),
            None,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(matches!(err, StoreError::LockTimeout { .. }));
        assert!(err.to_string().starts_with("another claunch is writing "));
        assert_eq!(expiry(&path), BASE);
        drop(holder);
        write_atomic(&path, &login(BASE + 1, "B"), None).unwrap();
        assert_eq!(expiry(&path), BASE + 1);
    }

    #[test]
    fn a_symlinked_file_is_replaced_behind_the_link() {
        let (dir, _) = setup();
        let real = dir.path().join("real.json");
        let link = dir.path().join(".credentials.json");
        fs::write(&real, login(BASE, "A").expose()).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, &login(BASE + 1, "B"), None).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(expiry(&real), BASE + 1);
        assert!(dir.path().join("real.json.bak").exists());
        assert!(dir.path().join("real.json.lock").exists());
    }

    const CHILD_ENV: &str = "CLAUNCH_TEST_STORE_CHILD";

    /// Not a test on its own: the body of the child process that
    /// `a_writer_killed_at_any_moment_leaves_a_whole_private_file` kills.
    #[test]
    fn child_writer_until_killed() {
        let Some(path) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        let path = PathBuf::from(path);
        // Bounded, so that an orphan stops by itself.
        for i in 1..200_000 {
            write_atomic(&path, &login(BASE + i, &format!("child-{i}")), None).unwrap();
        }
    }

    #[test]
    fn a_writer_killed_at_any_moment_leaves_a_whole_private_file() {
        let (dir, path) = setup();
        let exe = std::env::current_exe().unwrap();
        for (round, delay_ms) in [3_u64, 11, 29].into_iter().enumerate() {
            let mut child = Command::new(&exe)
                .args([
                    "credentials::store::tests::child_writer_until_killed",
                    "--exact",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while read(&path).map_or(true, |c| c.summary.expires_at_ms < Some(BASE + 3)) {
                assert!(Instant::now() < deadline, "the child never wrote");
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(delay_ms));
            child.kill().unwrap();
            child.wait().unwrap();

            let reached = expiry(&path);
            assert_eq!(mode(&path), 0o600, "round {round}");
            let backup = dir.path().join(".credentials.json.bak");
            assert!(expiry(&backup) <= reached);
            assert_eq!(mode(&backup), 0o600);
            // The kernel dropped the dead writer's lock: the next write goes through at once.
            let out = write_atomic_within(
                &path,
                &login(BASE + 1_000_000, "after"),
                None,
                Duration::from_millis(500),
            )
            .unwrap();
            assert_eq!(out, WriteOutcome::Written);
            assert_eq!(expiry(&path), BASE + 1_000_000);
            // Start the next child from below again.
            fs::remove_file(&path).unwrap();
        }
    }
}
