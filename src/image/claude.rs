//! The host's `claude`: finding it (`--claude`, else `PATH`, through the native
//! installer's symlinks), asking its version, and fingerprinting it.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ClaudeError {
    #[error("no `claude` on PATH\n  hint: install Claude Code (https://claude.ai/install.sh) or pass --claude PATH; examples/demo/fetch-claude.sh fetches the CLI from PyPI with no registry")]
    NotOnPath,
    #[error("--claude {}: {reason}\n  hint: pass the path of the claude executable (the native installer puts it in ~/.local/bin/claude)", path.display())]
    Unusable { path: PathBuf, reason: String },
    #[error("{}: `claude --version` {reason}\n  hint: the binary must run on this host to be versioned; pass --tag to name the image yourself", path.display())]
    Version { path: PathBuf, reason: String },
}

/// The executable to pack: `given`, else the first `claude` on `path_var`; symlinks
/// followed, so the image gets the binary and not a link into the host's home.
pub fn locate(given: Option<&Path>, path_var: Option<&OsStr>) -> Result<PathBuf, ClaudeError> {
    let candidate = match given {
        Some(p) => p.to_path_buf(),
        None => path_var
            .into_iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("claude"))
            .find(|p| is_executable(p))
            .ok_or(ClaudeError::NotOnPath)?,
    };
    let unusable = |reason: String| ClaudeError::Unusable {
        path: candidate.clone(),
        reason,
    };
    let real = candidate
        .canonicalize()
        .map_err(|e| unusable(e.to_string().to_lowercase()))?;
    if !real.is_file() {
        return Err(unusable("not a file".into()));
    }
    if !is_executable(&real) {
        return Err(unusable(format!(
            "{} is not executable (chmod +x it)",
            real.display()
        )));
    }
    Ok(real)
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `claude --version`, e.g. `2.1.332 (Claude Code)` (it needs no login and sends nothing).
pub async fn version_output(claude: &Path) -> Result<String, ClaudeError> {
    let fail = |reason: String| ClaudeError::Version {
        path: claude.to_path_buf(),
        reason,
    };
    let run = tokio::process::Command::new(claude)
        .arg("--version")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .map_err(|_| fail("did not answer within 60s".into()))?
        .map_err(|e| fail(format!("could not run: {}", e.to_string().to_lowercase())))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!("failed ({}): {}", out.status, said.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The SHA-256 of a file, hex, read in a blocking thread (claude is 400 MB).
pub async fn sha256(path: &Path) -> std::io::Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        let mut file = std::fs::File::open(&path)?;
        std::io::copy(&mut file, &mut hasher)?;
        let hex = hasher.finalize().iter().fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
        Ok(hex)
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn executable(path: &Path) {
        std::fs::write(path, "#!/bin/sh\necho '9.9.9 (Claude Code)'\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn path_lookup_follows_the_native_installers_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let versions = dir.path().join("share/claude/versions");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&versions).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        executable(&versions.join("2.1.332"));
        symlink(versions.join("2.1.332"), bin.join("claude")).unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let path = std::env::join_paths([&empty, &bin]).unwrap();
        let found = locate(None, Some(&path)).unwrap();
        assert_eq!(found, versions.join("2.1.332").canonicalize().unwrap());
    }

    #[test]
    fn neither_flag_nor_path_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = locate(None, Some(dir.path().as_os_str()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no `claude` on PATH")
                && err.contains("--claude")
                && err.contains("fetch-claude.sh"),
            "{err}"
        );
        let err = locate(Some(&dir.path().join("nope")), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--claude ") && err.contains("no such file"),
            "{err}"
        );
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let err = locate(Some(&plain), None).unwrap_err().to_string();
        assert!(err.contains("not executable"), "{err}");
        // A non-executable `claude` on PATH is skipped, as a shell would.
        std::fs::write(dir.path().join("claude"), "x").unwrap();
        assert!(matches!(
            locate(None, Some(dir.path().as_os_str())),
            Err(ClaudeError::NotOnPath)
        ));
    }

    #[tokio::test]
    async fn the_version_and_digest_come_from_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let claude = dir.path().join("claude");
        executable(&claude);
        assert_eq!(
            version_output(&claude).await.unwrap(),
            "9.9.9 (Claude Code)"
        );
        let digest = sha256(&claude).await.unwrap();
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, sha256(&claude).await.unwrap());
    }
}
