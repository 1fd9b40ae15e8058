//! Claude Code's `.credentials.json`: reading it, checking its shape, and describing it
//! (expiry, scopes, which tokens it holds) without ever exposing a token.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::secret::Secret;

pub(crate) mod deliver;
pub mod family;
pub(crate) mod holder;
pub(crate) mod identity;
pub(crate) mod login;
mod role;
pub mod sources;
pub(crate) mod store;
pub(crate) mod sync;
pub(crate) mod watcher;

pub use role::Role;

/// The name of the one login that `credentials:` makes: how the run's usage-limit gates,
/// its events and the metrics call it (keyed by name, so that more logins slot in).
pub const DEFAULT_LOGIN: &str = "default";

/// A real credentials file is a few hundred bytes; anything past this is not one.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// What the credentials say about themselves, with no token in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `claudeAiOauth.expiresAt`, epoch milliseconds.
    pub expires_at_ms: Option<i64>,
    pub has_access_token: bool,
    pub has_refresh_token: bool,
    pub scopes: Option<Vec<String>>,
    pub subscription_type: Option<String>,
}

impl Summary {
    /// Milliseconds until the access token expires (negative once expired).
    pub fn expires_in_ms(&self, now_ms: i64) -> Option<i64> {
        self.expires_at_ms.map(|at| at - now_ms)
    }
}

/// A parsed credentials file: the exact bytes (other keys such as `mcpOAuth` kept intact)
/// and their [`Summary`].
#[derive(Debug, Clone)]
pub struct Credentials {
    raw: Secret,
    pub summary: Summary,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("is empty")]
    Empty,
    #[error("is not JSON ({0})")]
    NotJson(String),
    #[error("is not a Claude Code credentials file: {0}")]
    Shape(String),
    #[error(
        "holds a login that was blanked (empty tokens), as claude leaves it after a failed refresh"
    )]
    Blanked,
    #[error("has neither a refreshToken nor scopes, so claude treats it as logged out")]
    NoRefreshNoScopes,
}

impl ShapeError {
    pub fn hint(&self) -> &'static str {
        match self {
            Self::NoRefreshNoScopes => "add \"scopes\": [\"user:inference\"] to claudeAiOauth for an access-only token, or run `claude login` again",
            _ => "run `claude login` again to write a fresh ~/.claude/.credentials.json",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{}: no credentials file\n  hint: run `claude login` on this machine, or set `credentials.file` in claunch.yaml", path.display())]
    Missing { path: PathBuf },
    #[error("{}: is a directory, not a credentials file\n  hint: point `credentials.file` at the .credentials.json inside it", path.display())]
    Directory { path: PathBuf },
    #[error("{}: cannot read: {error}\n  hint: check the file's owner and mode (chmod 600)", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: is not a regular file ({kind})\n  hint: point `credentials.file` at the .credentials.json that `claude login` writes", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: is {size} bytes, too large for a credentials file (at most {MAX_FILE_BYTES})", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{}: {error}\n  hint: {}", path.display(), error.hint())]
    Invalid { path: PathBuf, error: ShapeError },
}

impl Credentials {
    /// Parses and checks credentials; the error never quotes the input.
    pub fn parse(raw: Secret) -> Result<Self, ShapeError> {
        let summary = summarize(raw.expose())?;
        Ok(Self { raw, summary })
    }

    /// Reads a credentials file from the host, bounded in size.
    pub fn read_file(path: &Path) -> Result<Self, CredentialsError> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CredentialsError::Missing { path: path.into() })
            }
            Err(error) => {
                return Err(CredentialsError::Read {
                    path: path.into(),
                    error,
                })
            }
        };
        if meta.is_dir() {
            return Err(CredentialsError::Directory { path: path.into() });
        }
        // A FIFO blocks the read forever, /dev/zero never ends.
        if !meta.is_file() {
            use std::os::unix::fs::FileTypeExt;
            let t = meta.file_type();
            let kind = if t.is_fifo() {
                "a FIFO"
            } else if t.is_char_device() {
                "a character device"
            } else if t.is_block_device() {
                "a block device"
            } else if t.is_socket() {
                "a socket"
            } else {
                "not a file"
            };
            return Err(CredentialsError::NotRegular {
                path: path.into(),
                kind,
            });
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(CredentialsError::TooLarge {
                path: path.into(),
                size: meta.len(),
            });
        }
        let read_err = |error| CredentialsError::Read {
            path: path.into(),
            error,
        };
        // Bounded again: the file may have grown since the metadata was read.
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(
                std::fs::File::open(path).map_err(read_err)?,
                MAX_FILE_BYTES + 1,
            ),
            &mut bytes,
        )
        .map_err(read_err)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(CredentialsError::TooLarge {
                path: path.into(),
                size: bytes.len() as u64,
            });
        }
        Self::parse(Secret::new(bytes)).map_err(|error| CredentialsError::Invalid {
            path: path.into(),
            error,
        })
    }

    pub fn raw(&self) -> &Secret {
        &self.raw
    }
}

/// Whether a file's mode lets others than its owner read it (the guide asks for 0600).
#[cfg(unix)]
pub fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

fn summarize(bytes: &[u8]) -> Result<Summary, ShapeError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ShapeError::Empty);
    }
    // serde_json's messages quote offending values; keep only the position so that
    // no fragment of a token can reach an error message.
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ShapeError::NotJson(format!(
            "syntax error at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    let Some(root) = value.as_object() else {
        return Err(ShapeError::Shape(
            "the top level must be a JSON object".into(),
        ));
    };
    let Some(oauth) = root.get("claudeAiOauth") else {
        return Err(ShapeError::Shape("no `claudeAiOauth` object".into()));
    };
    let Some(oauth) = oauth.as_object() else {
        return Err(ShapeError::Shape(
            "`claudeAiOauth` must be an object".into(),
        ));
    };
    let token = |key: &str| -> Result<Option<bool>, ShapeError> {
        match oauth.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(!s.is_empty())),
            Some(_) => Err(ShapeError::Shape(format!(
                "`claudeAiOauth.{key}` must be a string"
            ))),
        }
    };
    let access = token("accessToken")?;
    let refresh = token("refreshToken")?;
    let expires_at_ms = match oauth.get("expiresAt") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .or_else(|| v.as_f64().map(millis_from_float))
                .ok_or_else(|| {
                    ShapeError::Shape(
                        "`claudeAiOauth.expiresAt` must be a number (epoch milliseconds)".into(),
                    )
                })?,
        ),
    };
    let scopes = match oauth.get("scopes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ShapeError::Shape("`claudeAiOauth.scopes` must be a list of strings".into())
                })?,
        ),
        Some(_) => {
            return Err(ShapeError::Shape(
                "`claudeAiOauth.scopes` must be a list of strings".into(),
            ))
        }
    };
    let subscription_type = oauth
        .get("subscriptionType")
        .and_then(Value::as_str)
        .map(str::to_string);
    let summary = Summary {
        expires_at_ms,
        has_access_token: access == Some(true),
        has_refresh_token: refresh == Some(true),
        scopes,
        subscription_type,
    };
    if access.is_none() {
        return Err(ShapeError::Shape("no `claudeAiOauth.accessToken`".into()));
    }
    if !summary.has_access_token && !summary.has_refresh_token {
        return Err(ShapeError::Blanked);
    }
    if !summary.has_refresh_token && summary.scopes.is_none() {
        return Err(ShapeError::NoRefreshNoScopes);
    }
    Ok(summary)
}

/// Some writers store `expiresAt` as a float; whole milliseconds are all that matter.
#[allow(clippy::cast_possible_truncation)]
fn millis_from_float(f: f64) -> i64 {
    f as i64
}

/// Now, in epoch milliseconds.
///
/// Debug builds (the tests') take `CLAUNCH_NOW_MS` instead when it is set, so a test can
/// pin the clock that expiry and uptime are judged by; release builds never read it.
pub fn now_ms() -> i64 {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("CLAUNCH_NOW_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return ms;
    }
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A short human form of a remaining time: `7h12m`, `3m`, `expired 2h ago`.
pub fn describe_remaining(ms: i64) -> String {
    let (past, ms) = if ms < 0 { (true, -ms) } else { (false, ms) };
    let mins = ms / 60_000;
    let text = match (mins / (60 * 24), (mins / 60) % 24, mins % 60) {
        (d, h, _) if d > 0 => format!("{d}d{h}h"),
        (_, h, m) if h > 0 => format!("{h}h{m:02}m"),
        (_, _, m) => format!("{m}m"),
    };
    if past {
        format!("expired {text} ago")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Summary, ShapeError> {
        Credentials::parse(Secret::from(s.to_string())).map(|c| c.summary)
    }

    #[test]
    fn a_full_login_is_summarized_without_tokens() {
        let s = parse(r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-A","refreshToken":"sk-ant-ort01-B","expiresAt":1768838897263,"scopes":["user:inference"],"subscriptionType":"pro"},"mcpOAuth":{}}"#).unwrap();
        assert_eq!(s.expires_at_ms, Some(1_768_838_897_263));
        assert!(s.has_access_token && s.has_refresh_token);
        assert_eq!(s.subscription_type.as_deref(), Some("pro"));
        assert!(!format!("{s:?}").contains("sk-ant"));
    }

    #[test]
    fn bad_shapes_are_told_apart_and_never_quote_the_input() {
        assert_eq!(parse("  \n"), Err(ShapeError::Empty));
        let not_json = parse("sk-ant-oat01-secret").unwrap_err();
        assert!(matches!(not_json, ShapeError::NotJson(_)));
        assert!(!not_json.to_string().contains("secret"));
        assert!(matches!(
            parse(r#""sk-ant-oat01-x""#),
            Err(ShapeError::Shape(_))
        ));
        assert!(matches!(parse(r#"{"other":1}"#), Err(ShapeError::Shape(_))));
        assert!(matches!(
            parse(r#"{"claudeAiOauth":{"accessToken":5}}"#),
            Err(ShapeError::Shape(_))
        ));
        assert_eq!(
            parse(r#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0}}"#),
            Err(ShapeError::Blanked)
        );
        assert_eq!(
            parse(r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-x","expiresAt":1}}"#),
            Err(ShapeError::NoRefreshNoScopes)
        );
        assert!(parse(
            r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-x","scopes":["user:inference"]}}"#
        )
        .is_ok());
    }

    #[test]
    fn remaining_time_reads_naturally() {
        assert_eq!(describe_remaining(7 * 3_600_000 + 12 * 60_000), "7h12m");
        assert_eq!(describe_remaining(3 * 60_000 + 5), "3m");
        assert_eq!(describe_remaining(-2 * 3_600_000), "expired 2h00m ago");
        assert_eq!(describe_remaining(3 * 86_400_000), "3d0h");
    }
}
