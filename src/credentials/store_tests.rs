//! Tests of the atomic, locked store: concurrent writers, older-over-newer refusals, a
//! writer killed mid-write, lock timeouts.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

use super::*;

fn read(path: &Path) -> Result<Credentials, CredentialsError> {
    Credentials::read_file(path)
}

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
    let bad = Secret::from(
        r#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":9e15}} sk-ant-LEAK"#
            .to_string(),
    );
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
/// `a_writer_killed_at_any_moment_leaves_a_whole_private_file` runs and kills, as
/// `<test binary> credentials::store::tests::child_writer_until_killed --exact --ignored`
/// with `CLAUNCH_TEST_STORE_CHILD=<file>`.
#[test]
#[ignore = "the child process of a_writer_killed_at_any_moment_leaves_a_whole_private_file"]
fn child_writer_until_killed() {
    let path = std::env::var_os(CHILD_ENV)
        .unwrap_or_else(|| panic!("{CHILD_ENV} names the file this child writes to"));
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
                "--ignored",
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
