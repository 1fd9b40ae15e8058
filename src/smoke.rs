//! Telling why a `claude -p` failed, from its exit code and output, with the one-line fix
//! (after the guide's troubleshooting list and the real CLI's own messages).

use serde::Serialize;

/// The outcome of running claude in a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    /// Exit 126/127 or the runtime could not find the executable.
    ClaudeMissing,
    /// `Not logged in · Please run /login`: no file, an unreadable one, or one claude rejects.
    NotLoggedIn,
    /// The API answered 401, or a refresh failed: the token is expired or revoked.
    TokenRejected,
    TimedOut {
        secs: u64,
    },
    /// The container's main process exited while claude ran in it.
    ContainerStopped {
        exit_code: Option<i64>,
        /// The command that shows why, e.g. `claunch logs research-planner-1`.
        logs: String,
    },
    Failed {
        exit_code: i64,
        last_lines: Vec<String>,
    },
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Self::Passed)
    }

    /// What went wrong, in a few words.
    pub fn describe(&self) -> String {
        match self {
            Self::Passed => "passed".into(),
            Self::ClaudeMissing => "`claude` is not in the image".into(),
            Self::NotLoggedIn => {
                "claude is not logged in (credentials file missing, unreadable or not accepted)"
                    .into()
            }
            Self::TokenRejected => {
                "the OAuth token was rejected or expired and could not be refreshed".into()
            }
            Self::TimedOut { secs } => format!("no answer within {secs}s"),
            Self::ContainerStopped { exit_code, logs } => format!(
                "the container stopped during its smoke test (its command exited{}): see `{logs}`",
                exit_code.map_or_else(String::new, |c| format!(" with code {c}"))
            ),
            Self::Failed { exit_code, .. } => format!("claude exited with code {exit_code}"),
        }
    }

    /// The fix, in one line.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Self::Passed => return None,
            Self::ClaudeMissing => "install Claude Code in the image, or build one with `claunch image build`",
            Self::NotLoggedIn => "run `claude login` on the host, check `credentials:` in claunch.yaml, then `claunch up --force-recreate`",
            Self::TokenRejected => "run `claude login` on the host to get a fresh login, then `claunch up --force-recreate`",
            Self::TimedOut { .. } => "check that the container reaches the API (ANTHROPIC_BASE_URL, proxy, DNS) or raise smoke.timeout",
            Self::ContainerStopped { .. } => "the image's command must keep running: fix what stopped it, then `claunch up`",
            Self::Failed { .. } => "see the output above; `claunch logs` shows the agent's own output",
        })
    }
}

/// `claude -p OPTIONS... -- PROMPT`. The prompt comes after `--`, so a prompt that looks
/// like an option (`--version`, `--dangerously-skip-permissions`) is still taken as text;
/// `None` when the prompt goes on stdin.
pub fn claude_print_argv(
    options: impl IntoIterator<Item = String>,
    prompt: Option<&str>,
) -> Vec<String> {
    let mut argv = vec!["claude".to_string(), "-p".to_string()];
    argv.extend(options);
    if let Some(prompt) = prompt {
        argv.extend(["--".to_string(), prompt.to_string()]);
    }
    argv
}

/// Classifies a finished run from its exit code and combined output.
pub fn classify(exit_code: i64, output: &str) -> Verdict {
    if exit_code == 0 {
        return Verdict::Passed;
    }
    let lower = output.to_lowercase();
    if exit_code == 126
        || exit_code == 127
        || lower.contains("executable file not found")
        || lower.contains("no such file or directory") && lower.contains("exec")
    {
        return Verdict::ClaudeMissing;
    }
    if lower.contains("not logged in") || lower.contains("please run /login") {
        return Verdict::NotLoggedIn;
    }
    if lower.contains("401")
        || lower.contains("failed to authenticate")
        || lower.contains("oauth token has expired")
        || lower.contains("could not be refreshed")
        || lower.contains("invalid_grant")
    {
        return Verdict::TokenRejected;
    }
    Verdict::Failed {
        exit_code,
        last_lines: last_lines(output, 5),
    }
}

fn last_lines(output: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_clis_messages_are_classified() {
        assert_eq!(classify(0, "Hello!"), Verdict::Passed);
        assert_eq!(
            classify(126, "OCI runtime exec failed: exec failed: unable to start container process: exec: \"claude\": executable file not found in $PATH: unknown"),
            Verdict::ClaudeMissing
        );
        assert_eq!(
            classify(1, "Not logged in · Please run /login\n"),
            Verdict::NotLoggedIn
        );
        assert_eq!(
            classify(1, "Failed to authenticate. API Error: 401 OAuth token has expired. Please obtain a new token or refresh your existing token."),
            Verdict::TokenRejected
        );
        assert_eq!(
            classify(
                1,
                "Failed to authenticate: OAuth session expired and could not be refreshed"
            ),
            Verdict::TokenRejected
        );
        assert_eq!(
            classify(3, "a\nb\n\nc\nd\ne\nf\n"),
            Verdict::Failed {
                exit_code: 3,
                last_lines: vec!["b".into(), "c".into(), "d".into(), "e".into(), "f".into()]
            }
        );
    }

    #[test]
    fn the_prompt_comes_last_after_double_dash_and_never_as_an_option() {
        let options = || ["--max-turns".to_string(), "1".to_string()];
        for prompt in [
            "Say hello",
            "--version",
            "-h",
            "--dangerously-skip-permissions",
            "--model=x",
            "--",
            "-",
            "",
        ] {
            assert_eq!(
                claude_print_argv(options(), Some(prompt)),
                ["claude", "-p", "--max-turns", "1", "--", prompt],
                "{prompt:?}"
            );
        }
        // On stdin: nothing after the options, so claude reads its prompt from stdin.
        assert_eq!(
            claude_print_argv(options(), None),
            ["claude", "-p", "--max-turns", "1"]
        );
        assert_eq!(
            claude_print_argv([], Some("-h")),
            ["claude", "-p", "--", "-h"]
        );
        assert_eq!(claude_print_argv([], None), ["claude", "-p"]);
    }

    #[test]
    fn every_failure_has_a_hint() {
        for v in [
            Verdict::ClaudeMissing,
            Verdict::NotLoggedIn,
            Verdict::TokenRejected,
            Verdict::TimedOut { secs: 1 },
        ] {
            assert!(v.hint().is_some(), "{v:?}");
        }
    }
}
