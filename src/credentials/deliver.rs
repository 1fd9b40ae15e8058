//! Putting credentials and files into a container through the archive endpoint, owned by
//! the user the container runs as, and reading them back. Never a bind mount, never an
//! environment variable, never argv.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::credentials::identity::{self, Identity, IdentityError};
use crate::engine::archive::{self, Entry, ReadBackError};
use crate::engine::retry::Transient;
use crate::engine::{Engine, EngineError};
use crate::secret::Secret;

/// How long a read-back of one small file may take before the container is judged stuck.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Identity(#[from] IdentityError),
    #[error("reading {path}: {error}")]
    ReadBack { path: String, error: ReadBackError },
}

impl Transient for DeliverError {
    fn transient(&self) -> bool {
        match self {
            Self::Engine(e) => e.is_transient(),
            Self::ReadBack { error, .. } => error.transient(),
            Self::Identity(_) => false,
        }
    }
}

/// A file to deliver: absolute or HOME-relative target, mode, contents.
#[derive(Debug, Clone)]
pub struct Payload {
    pub target: String,
    pub mode: u32,
    pub contents: Secret,
}

/// Where things go in one container, and which directories must be made for its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub identity: Identity,
    /// Directories under HOME (and HOME and the config dir) found missing.
    pub missing_dirs: BTreeSet<String>,
    /// Whether `~/.claude.json` exists (asked only for `onboarding`).
    pub claude_json_exists: bool,
    /// The container's own `settings.json` (read only for an API key login, to merge into).
    pub settings: Option<String>,
}

/// What a probe must find out beyond the user and the directories.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub onboarding: bool,
    pub settings: bool,
}

/// Reads one small file from a container, bounded; `Ok(None)` when it does not exist.
pub async fn read_back(
    engine: &Engine,
    id: &str,
    path: &str,
    limit: usize,
) -> Result<Option<Secret>, DeliverError> {
    match archive::read_single_file(engine.download_archive(id, path), limit, READ_TIMEOUT).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(ReadBackError::Missing) => Ok(None),
        Err(error) => Err(DeliverError::ReadBack {
            path: path.to_string(),
            error,
        }),
    }
}

/// Owner, mode and kind of `path` in a container, from the first header of a bounded
/// archive read (for a directory, the directory itself); `Ok(None)` when it does not exist.
pub async fn stat(
    engine: &Engine,
    id: &str,
    path: &str,
) -> Result<Option<archive::Meta>, DeliverError> {
    match archive::first_header(engine.download_archive(id, path), 64 * 1024, READ_TIMEOUT).await {
        Ok(meta) => Ok(Some(meta)),
        Err(ReadBackError::Missing) => Ok(None),
        Err(error) => Err(DeliverError::ReadBack {
            path: path.to_string(),
            error,
        }),
    }
}

fn text(secret: Option<Secret>) -> Option<String> {
    secret.map(|s| String::from_utf8_lossy(s.expose()).into_owned())
}

/// Finds out, from a created (not necessarily started) container, who it runs as and
/// which of the directories the payload needs already exist.
///
/// `user` and `env` are the container's own (`Config.User`, `Config.Env`).
pub async fn probe(
    engine: &Engine,
    id: &str,
    user: Option<&str>,
    env: &[String],
    file_targets: &[String],
    needs: Needs,
) -> Result<Layout, DeliverError> {
    const LIMIT: usize = 1 << 20;
    let passwd = text(read_back(engine, id, "/etc/passwd", LIMIT).await?);
    let needs_group = user
        .and_then(|u| u.split_once(':'))
        .is_some_and(|(_, g)| g.parse::<u32>().is_err());
    let group = if needs_group {
        text(read_back(engine, id, "/etc/group", LIMIT).await?)
    } else {
        None
    };
    let identity = identity::resolve(user, env, passwd.as_deref(), group.as_deref())?;
    let mut missing_dirs = BTreeSet::new();
    for dir in dirs_to_check(&identity, file_targets) {
        if !engine.path_exists(id, &dir).await? {
            missing_dirs.insert(dir);
        }
    }
    let claude_json_exists =
        needs.onboarding && engine.path_exists(id, &identity.claude_json_path()).await?;
    let settings = if needs.settings {
        let path = identity::join(
            &identity.config_dir,
            crate::credentials::login::SETTINGS_FILE,
        );
        text(read_back(engine, id, &path, 1 << 20).await?)
    } else {
        None
    };
    Ok(Layout {
        identity,
        missing_dirs,
        claude_json_exists,
        settings,
    })
}

/// HOME, the config dir, and every directory between HOME and each file's parent.
fn dirs_to_check(identity: &Identity, file_targets: &[String]) -> Vec<String> {
    let home = identity.home.trim_end_matches('/');
    let mut dirs = BTreeSet::new();
    if !home.is_empty() {
        dirs.insert(home.to_string());
    }
    let mut add_chain = |path: &str| {
        let mut dir = parent(path);
        while let Some(d) = dir {
            let under_home = home.is_empty() || d.starts_with(&format!("{home}/"));
            if !under_home || !dirs.insert(d.to_string()) {
                break;
            }
            dir = parent(d);
        }
    };
    add_chain(&identity.credentials_path());
    for target in file_targets {
        add_chain(&identity.resolve_target(target));
    }
    // Shallow first, so a created parent comes before its children in the archive.
    let mut dirs: Vec<String> = dirs.into_iter().collect();
    dirs.sort_by_key(|d| d.matches('/').count());
    dirs
}

fn parent(path: &str) -> Option<&str> {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => None,
        Some((p, _)) => Some(p),
    }
}

/// The archive entries that put `credentials` (and `files`) in place for `layout`.
///
/// An existing directory gets no entry, so it keeps its owner, mode and contents; a
/// missing one is made for the container's user (the config dir 0700).
pub fn entries(layout: &Layout, credentials: Option<&Secret>, files: &[Payload]) -> Vec<Entry> {
    let id = &layout.identity;
    let mut out: Vec<Entry> = layout
        .missing_dirs
        .iter()
        .map(|dir| Entry::Dir {
            path: dir.clone(),
            uid: id.uid,
            gid: id.gid,
            mode: if *dir == id.config_dir { 0o700 } else { 0o755 },
        })
        .collect();
    if let Some(credentials) = credentials {
        out.push(Entry::File {
            path: id.credentials_path(),
            uid: id.uid,
            gid: id.gid,
            mode: 0o600,
            contents: credentials.clone(),
        });
    }
    for f in files {
        out.push(Entry::File {
            path: id.resolve_target(&f.target),
            uid: id.uid,
            gid: id.gid,
            mode: f.mode,
            contents: f.contents.clone(),
        });
    }
    out
}

/// Uploads the payload in one archive, extracted at `/`.
pub async fn deliver(
    engine: &Engine,
    id: &str,
    layout: &Layout,
    credentials: Option<&Secret>,
    files: &[Payload],
) -> Result<(), DeliverError> {
    let tar = archive::build(&entries(layout, credentials, files));
    engine.upload_archive(id, "/", tar.to_vec()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Identity {
        Identity {
            uid: 1000,
            gid: 1000,
            home: "/home/agent".into(),
            config_dir: "/home/agent/.claude".into(),
        }
    }

    #[test]
    fn checks_home_config_dir_and_file_parents_under_home() {
        let dirs = dirs_to_check(&agent(), &["a/b/c.json".into(), "/etc/abs.json".into()]);
        assert_eq!(
            dirs,
            [
                "/home/agent",
                "/home/agent/.claude",
                "/home/agent/a",
                "/home/agent/a/b"
            ]
        );
    }

    #[test]
    fn missing_dirs_are_made_for_the_user_and_existing_ones_left_alone() {
        let layout = Layout {
            identity: agent(),
            missing_dirs: BTreeSet::from(["/home/agent/.claude".to_string()]),
            claude_json_exists: false,
            settings: None,
        };
        let creds = Secret::from("{}".to_string());
        let e = entries(&layout, Some(&creds), &[]);
        assert!(
            matches!(&e[0], Entry::Dir { path, uid: 1000, mode: 0o700, .. } if path == "/home/agent/.claude")
        );
        assert!(
            matches!(&e[1], Entry::File { path, mode: 0o600, .. } if path == "/home/agent/.claude/.credentials.json")
        );
        let layout = Layout {
            identity: agent(),
            missing_dirs: BTreeSet::new(),
            claude_json_exists: false,
            settings: None,
        };
        assert_eq!(entries(&layout, Some(&creds), &[]).len(), 1);
    }

    #[test]
    fn root_home_slash_is_never_recreated() {
        let id = Identity {
            uid: 4242,
            gid: 0,
            home: "/".into(),
            config_dir: "/.claude".into(),
        };
        assert_eq!(dirs_to_check(&id, &[]), ["/.claude"]);
    }
}
