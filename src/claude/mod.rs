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

#[cfg(test)]
mod tests {
    use super::claude_print_argv;

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
}
