//! Errors of a credentials source: which source, what went wrong in words the person can
//! act on, and the fix. No message quotes a secret or a child's stdout.

use std::fmt;

/// What kind of failure, so that callers (`doctor`, `creds export`) can react to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The program (the cloud CLI, the `command`) is not on PATH.
    NotInstalled,
    /// The cloud CLI has no usable login.
    NotLoggedIn,
    /// No such secret (or it has no value yet).
    NotFound,
    /// Creating a secret that exists.
    AlreadyExists,
    /// The login lacks the permission.
    Denied,
    /// Something to set in claunch.yaml or the CLI's config (a region, a project).
    Config,
    /// The store could not be reached.
    Unreachable,
    /// The child did not finish in time (`credentials.timeout`).
    TimedOut,
    /// The value is not Claude Code credentials.
    Invalid,
    /// The environment variable is not set.
    Unset,
    /// Anything else; the message carries the CLI's own words.
    Failed,
}

/// A failure of one source, shown as `SOURCE: MESSAGE` then `  hint: HINT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// The source as [`crate::config::CredentialsSpec::describe`] words it.
    pub source: String,
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

impl SourceError {
    pub fn new(source: &str, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            source: source.to_owned(),
            kind,
            message: message.into(),
            hint: None,
        }
    }

    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The message and hint without the source's name, for a line that already names it.
    pub fn detail(&self) -> String {
        match &self.hint {
            Some(hint) => format!("{}\n  hint: {hint}", self.message),
            None => self.message.clone(),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.detail())
    }
}

impl std::error::Error for SourceError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_source_message_and_hint() {
        let e = SourceError::new("aws_secret x", ErrorKind::NotFound, "no secret named x")
            .hint("create it");
        assert_eq!(
            e.to_string(),
            "aws_secret x: no secret named x\n  hint: create it"
        );
        assert_eq!(e.detail(), "no secret named x\n  hint: create it");
    }
}
