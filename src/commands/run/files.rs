//! A task's files: host files and directories copied into the container before it runs
//! (one archive, owned by the container's user), and container paths collected after it,
//! bounded, into `<results dir>/<id>/`.

use std::path::{Path, PathBuf};

use crate::credentials::identity::Identity;
use crate::engine::archive::{self, Bounds, Entry, ExtractError, Refused};
use crate::engine::{Engine, EngineError};
use crate::secret::Secret;

use super::tasks::FileIn;

/// How long collecting one path may take.
const COLLECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{}: {error}", .path.display())]
    Host {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("copying files in: {0}")]
    Engine(#[from] EngineError),
    #[error("collecting {path}: {error}")]
    Collect {
        path: String,
        error: Box<ExtractError>,
    },
    #[error("collecting {path}: {what} (the bound for one task's collect)\n  hint: what was collected before it is kept; raise the bound with `claunch run {hint}` if the task's output is meant to be that large")]
    Bound {
        path: String,
        what: String,
        hint: &'static str,
    },
    #[error("collecting {path}: no such file or directory in the container")]
    Missing { path: String },
}

/// The archive entries that put `files` in place for `user`, and the host entries left
/// out (links, devices).
pub fn entries_in(
    files: &[FileIn],
    user: &Identity,
) -> Result<(Vec<Entry>, Vec<String>), FilesError> {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        add(&file.source, &file.target, user, &mut entries, &mut skipped)?;
    }
    Ok((entries, skipped))
}

fn add(
    source: &Path,
    target: &str,
    user: &Identity,
    entries: &mut Vec<Entry>,
    skipped: &mut Vec<String>,
) -> Result<(), FilesError> {
    use std::os::unix::fs::PermissionsExt as _;
    let host = |error| FilesError::Host {
        path: source.to_path_buf(),
        error,
    };
    let meta = std::fs::symlink_metadata(source).map_err(host)?;
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_file() {
        let contents = std::fs::read(source).map_err(host)?;
        entries.push(Entry::File {
            path: target.to_string(),
            uid: user.uid,
            gid: user.gid,
            mode: mode & 0o777,
            contents: Secret::new(contents),
        });
    } else if meta.is_dir() {
        entries.push(Entry::Dir {
            path: target.to_string(),
            uid: user.uid,
            gid: user.gid,
            mode: mode & 0o777,
        });
        let mut children: Vec<_> = std::fs::read_dir(source)
            .map_err(host)?
            .collect::<Result<_, _>>()
            .map_err(host)?;
        children.sort_by_key(std::fs::DirEntry::file_name);
        for child in children {
            let name = child.file_name().to_string_lossy().into_owned();
            let inner = format!("{}/{name}", target.trim_end_matches('/'));
            add(&child.path(), &inner, user, entries, skipped)?;
        }
    } else {
        skipped.push(source.display().to_string());
    }
    Ok(())
}

/// The parents of `targets` missing in the container, shallow first: made for the
/// container's user, as the engine would make them root's.
pub async fn missing_parents(
    engine: &Engine,
    id: &str,
    targets: &[&str],
    user: &Identity,
) -> Result<Vec<Entry>, EngineError> {
    let mut missing: Vec<String> = Vec::new();
    for target in targets {
        let mut dir = parent(target);
        let mut chain = Vec::new();
        while let Some(d) = dir {
            if missing.iter().any(|m| m == d) || engine.path_exists(id, d).await? {
                break;
            }
            chain.push(d.to_string());
            dir = parent(d);
        }
        chain.reverse();
        missing.extend(chain);
    }
    missing.sort_by_key(|d| d.matches('/').count());
    missing.dedup();
    Ok(missing
        .into_iter()
        .map(|path| Entry::Dir {
            path,
            uid: user.uid,
            gid: user.gid,
            mode: 0o755,
        })
        .collect())
}

fn parent(path: &str) -> Option<&str> {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => None,
        Some((p, _)) => Some(p),
    }
}

/// Copies `files` into container `id` for `user`; returns the host entries left out.
pub async fn copy_in(
    engine: &Engine,
    id: &str,
    files: &[FileIn],
    user: &Identity,
) -> Result<Vec<String>, FilesError> {
    let (entries, skipped) = {
        let files = files.to_vec();
        let user = user.clone();
        tokio::task::spawn_blocking(move || entries_in(&files, &user))
            .await
            .map_err(|e| FilesError::Host {
                path: PathBuf::new(),
                error: std::io::Error::other(e.to_string()),
            })??
    };
    let targets: Vec<&str> = files.iter().map(|f| f.target.as_str()).collect();
    let mut all = missing_parents(engine, id, &targets, user).await?;
    all.extend(entries);
    let tar = archive::build(&all);
    engine.upload_archive(id, "/", tar.to_vec()).await?;
    Ok(skipped)
}

/// What a task's `collect` brought out, and what it left out: recorded on its line.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Collected {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
}

/// What was refused, each named as it would have landed under `<results>/<id>/` and
/// with the container path it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefusedEntry {
    pub from: String,
    pub path: String,
    pub why: String,
}

impl std::fmt::Display for RefusedEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.from, self.path, self.why)
    }
}

fn refused(from: &str, r: Refused) -> RefusedEntry {
    RefusedEntry {
        from: from.to_string(),
        path: r.path,
        why: r.why,
    }
}

/// Copies each of `paths` out of container `id` into `dest` (made fresh), as
/// `docker cp` names them (`/work/out` arrives as `dest/out`), within `bounds` for the
/// whole task. Returns what was collected and what was left out; on an error, what was
/// collected and refused until then goes with it.
pub async fn collect(
    engine: &Engine,
    id: &str,
    paths: &[String],
    dest: &Path,
    bounds: Bounds,
) -> Result<(Collected, Vec<RefusedEntry>), (FilesError, Collected, Vec<RefusedEntry>)> {
    let mut got = Collected::default();
    let mut skipped = Vec::new();
    match collect_into(engine, id, paths, dest, bounds, &mut got, &mut skipped).await {
        Ok(()) => Ok((got, skipped)),
        Err(e) => Err((e, got, skipped)),
    }
}

async fn collect_into(
    engine: &Engine,
    id: &str,
    paths: &[String],
    dest: &Path,
    bounds: Bounds,
    got: &mut Collected,
    skipped: &mut Vec<RefusedEntry>,
) -> Result<(), FilesError> {
    let host = |error| FilesError::Host {
        path: dest.to_path_buf(),
        error,
    };
    // An earlier attempt's files go: what is there is this attempt's.
    match std::fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(dest).map_err(host)?,
        Ok(_) => std::fs::remove_file(dest).map_err(host)?,
        Err(_) => {}
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(host)?;
    }
    for path in paths {
        let stream = engine.download_archive(id, path);
        // The bounds hold for the task, not for each path.
        let left = Bounds {
            bytes: bounds.bytes.saturating_sub(got.bytes),
            entries: bounds
                .entries
                .saturating_sub(got.files + got.dirs + skipped.len() as u64),
        };
        match archive::extract_bounded(stream, dest, left, COLLECT_TIMEOUT).await {
            Ok(done) => {
                got.files += done.files;
                got.dirs += done.dirs;
                got.bytes += done.bytes;
                skipped.extend(done.skipped.into_iter().map(|s| refused(path, s)));
            }
            Err(ExtractError::Read(archive::ReadBackError::Missing)) => {
                return Err(FilesError::Missing { path: path.clone() })
            }
            Err(ExtractError::TooLarge { .. }) => {
                return Err(FilesError::Bound {
                    path: path.clone(),
                    what: format!("more than {} bytes of files", bounds.bytes),
                    hint: "--collect-max-bytes",
                })
            }
            Err(ExtractError::Read(archive::ReadBackError::TooLarge { limit })) => {
                return Err(FilesError::Bound {
                    path: path.clone(),
                    what: format!(
                        "an archive of more than {limit} bytes (at most {} bytes of files in {} entries)",
                        bounds.bytes, bounds.entries
                    ),
                    hint: "--collect-max-bytes or --collect-max-entries",
                })
            }
            Err(ExtractError::TooManyEntries { .. }) => {
                return Err(FilesError::Bound {
                    path: path.clone(),
                    what: format!("more than {} entries", bounds.entries),
                    hint: "--collect-max-entries",
                })
            }
            Err(error) => {
                return Err(FilesError::Collect {
                    path: path.clone(),
                    error: Box::new(error),
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_goes_in_whole_owned_by_the_user_without_its_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("b.txt"), "b").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let user = Identity {
            uid: 1000,
            gid: 1000,
            home: "/home/agent".into(),
            config_dir: "/home/agent/.claude".into(),
        };
        let files = [FileIn {
            source: dir.path().to_path_buf(),
            target: "/work/in".into(),
        }];
        let (entries, skipped) = entries_in(&files, &user).unwrap();
        let paths: Vec<String> = entries
            .iter()
            .map(|e| match e {
                Entry::Dir { path, uid, .. } | Entry::File { path, uid, .. } => {
                    assert_eq!(*uid, 1000);
                    path.clone()
                }
            })
            .collect();
        assert_eq!(
            paths,
            [
                "/work/in",
                "/work/in/b.txt",
                "/work/in/sub",
                "/work/in/sub/a.txt"
            ]
        );
        assert_eq!(skipped, [dir.path().join("link").display().to_string()]);
    }
}
