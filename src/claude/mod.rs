//! Speaking to the `claude` CLI in a container: the argv of a headless run (the prompt
//! always after `--`), and reading its `--output-format stream-json` lines. The smoke test,
//! `exec` and `run` share both.

mod stream;

pub use stream::{Event, ResultDetails, Usage};

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
