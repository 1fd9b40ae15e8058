//! What every part of building a [`Spec`](super::Spec) shares: the file and its text for
//! locating errors, the environment, and the rule that anchors host paths.

use std::path::{Component, Path, PathBuf};

use super::error::ConfigError;
use super::locate::{locate, render, Seg};
use super::sourcemap::SourceMap;

/// What building needs besides the parsed file.
pub(crate) struct Ctx<'a> {
    /// As the user gave it, for messages.
    pub file: &'a Path,
    pub absolute: &'a Path,
    /// The config's directory, absolute: relative paths start here.
    pub dir: &'a Path,
    /// The file as written, before interpolation.
    pub source: &'a str,
    /// The interpolated text, in which keys are located.
    pub text: &'a str,
    pub map: &'a SourceMap,
    /// The process environment only (`HOME`, `CLAUDE_CONFIG_DIR`).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The process environment, then `.env`.
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
}

pub(super) fn key(name: &str) -> Seg {
    Seg::Key(name.to_owned())
}

pub(super) fn under(base: &[Seg], more: &[Seg]) -> Vec<Seg> {
    [base, more].concat()
}

impl Ctx<'_> {
    /// An error at the `nth` occurrence of the key path, located best effort.
    pub(super) fn invalid(
        &self,
        segs: &[Seg],
        nth: usize,
        message: String,
        hint: Option<&str>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.file.to_owned(),
            line: self.line_of(segs, nth),
            key_path: render(segs),
            message,
            hint: hint.map(str::to_owned),
        }
    }

    /// The line in the file of the `nth` occurrence of the key path, if found.
    pub(super) fn line_of(&self, segs: &[Seg], nth: usize) -> Option<usize> {
        // nth 0: the value did not come from the file, so there is no line.
        (nth > 0)
            .then(|| locate(self.text, segs, nth))
            .flatten()
            .map(|(line, column)| self.map.to_source(line, column).0)
    }

    /// Expands a leading `~` to the host HOME and anchors relative paths at
    /// the config's directory, so that the spec does not depend on the cwd.
    pub(super) fn host_path(&self, raw: &str, segs: &[Seg]) -> Result<PathBuf, ConfigError> {
        let path = if let Some(rest) = raw.strip_prefix('~') {
            if !(rest.is_empty() || rest.starts_with('/')) {
                let message = format!("cannot expand {raw:?}: only `~` and `~/` are supported");
                return Err(self.invalid(segs, 1, message, Some("write the full path")));
            }
            let home = (self.env)("HOME")
                .filter(|home| !home.is_empty())
                .ok_or_else(|| {
                    let message = "HOME is not set, so `~` cannot be expanded".to_owned();
                    self.invalid(segs, 1, message, Some("write the full path"))
                })?;
            let rest = rest.trim_start_matches('/');
            let home = PathBuf::from(home);
            if rest.is_empty() {
                home
            } else {
                home.join(rest)
            }
        } else if raw.trim().is_empty() {
            return Err(self.invalid(segs, 1, "path must not be empty".to_owned(), None));
        } else {
            PathBuf::from(raw)
        };
        let joined = self.dir.join(path);
        Ok(joined
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect())
    }
}
