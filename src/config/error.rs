//! The typed error for loading `claunch.yaml`, rendered as `FILE:LINE:COL: KEY.PATH: message`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while loading a config file.
///
/// Paths are kept as the user wrote them (a relative `-f` stays relative) so
/// that messages point at what they typed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The default `claunch.yaml` does not exist; `path` is where it was looked for.
    #[error("no claunch.yaml in {}: run `claunch init` to write one, or pass -f FILE", dir_of(.path))]
    NotFound { path: PathBuf },

    // `error`, not `source`: a `source` would also be printed by `{:#}` after the message.
    #[error("{}: cannot read: {error}", .path.display())]
    Read { path: PathBuf, error: io::Error },

    #[error("{}: is more than {limit} bytes, too large for a config file", .path.display())]
    TooLarge { path: PathBuf, limit: u64 },

    /// YAML syntax, unknown keys, wrong types and missing keys.
    #[error("{}", render(path, Some(*line), Some(*column), key_path, message, hint.as_deref()))]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        /// Empty for plain YAML syntax errors, which belong to no key.
        key_path: String,
        message: String,
        hint: Option<String>,
    },

    /// A `${VAR}` reference that cannot be expanded; the position is the `$`.
    #[error("{}", render(path, Some(*line), Some(*column), "", message, None))]
    Interpolation {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// The file parsed but breaks a rule (bad name, bad mode, no agents...).
    #[error("{}", render(path, *line, None, key_path, message, hint.as_deref()))]
    Invalid {
        path: PathBuf,
        /// Best effort: `None` when the value did not come from the file (e.g. `-p`).
        line: Option<usize>,
        key_path: String,
        message: String,
        hint: Option<String>,
    },

    /// A malformed line in the `.env` file beside the config file.
    #[error("{}:{line}: {message}", .path.display())]
    DotEnv {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl ConfigError {
    /// The config (or `.env`) file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::NotFound { path }
            | Self::Read { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Parse { path, .. }
            | Self::Interpolation { path, .. }
            | Self::Invalid { path, .. }
            | Self::DotEnv { path, .. } => path,
        }
    }
}

fn dir_of(path: &Path) -> String {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.display().to_string(),
        _ => ".".to_owned(),
    }
}

fn render(
    path: &Path,
    line: Option<usize>,
    column: Option<usize>,
    key_path: &str,
    message: &str,
    hint: Option<&str>,
) -> String {
    use fmt::Write as _;
    let mut out = path.display().to_string();
    if let Some(line) = line {
        let _ = write!(out, ":{line}");
        if let Some(column) = column {
            let _ = write!(out, ":{column}");
        }
    }
    out.push_str(": ");
    if !key_path.is_empty() {
        out.push_str(key_path);
        out.push_str(": ");
    }
    out.push_str(message);
    if let Some(hint) = hint {
        let _ = write!(out, "\n  hint: {hint}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_position_key_and_hint() {
        let err = ConfigError::Parse {
            path: "claunch.yaml".into(),
            line: 7,
            column: 5,
            key_path: "agents.planner.replica".into(),
            message: "unknown key `replica`".into(),
            hint: Some("did you mean `replicas`?".into()),
        };
        assert_eq!(
            err.to_string(),
            "claunch.yaml:7:5: agents.planner.replica: unknown key `replica`\n  hint: did you mean `replicas`?"
        );
    }

    #[test]
    fn renders_without_line_or_key() {
        let err = ConfigError::Invalid {
            path: "x/claunch.yaml".into(),
            line: None,
            key_path: "project".into(),
            message: "bad".into(),
            hint: None,
        };
        assert_eq!(err.to_string(), "x/claunch.yaml: project: bad");
        let err = ConfigError::NotFound {
            path: "claunch.yaml".into(),
        };
        assert_eq!(
            err.to_string(),
            "no claunch.yaml in .: run `claunch init` to write one, or pass -f FILE"
        );
    }
}
