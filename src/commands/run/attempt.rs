//! One attempt of a task in one container: files in, `claude -p … -- PROMPT` as the
//! container's user under a shell that notes its pid (so claunch can stop it there), the
//! stream-json read as it comes, and claude stopped in the container when the attempt is
//! given up (timeout, interrupt, a pause of its login).

use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::claude::{claude_print_argv, Event};
use crate::engine::{self, Engine, EngineError, Lines, Output};

use super::judge::{judge, Judgement, Seen};
use super::tasks::Task;

/// Runs claude in `sh`, which writes its pid to `$1` first and then becomes claude.
const PID_WRAPPER: &str = r#"echo $$ >"$1" 2>/dev/null; shift; exec "$@""#;

/// Stops the process whose pid is in `$1` and its children: an exec is the leader of a
/// process group of its own, so the group gets TERM, then KILL after 5 s.
const KILLER: &str = r#"p=$(cat "$1" 2>/dev/null) || exit 0; rm -f "$1"; [ -n "$p" ] || exit 0; g="-$p"; kill -TERM "$g" 2>/dev/null || { g="$p"; kill -TERM "$p" 2>/dev/null; } || exit 0; i=0; while kill -0 "$g" 2>/dev/null; do i=$((i+1)); if [ $i -ge 50 ]; then kill -KILL "$g" 2>/dev/null; exit 0; fi; sleep 0.1; done"#;

/// Why an attempt was given up before claude ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Timeout,
    /// Interrupted, or the run was stopped: nothing is written for it.
    Abort,
    /// Its login paused at a usage limit: the task goes back to the queue.
    Paused,
}

/// How an attempt ended.
#[derive(Debug)]
pub enum Ended {
    /// claude ran to its end.
    Judged {
        exit_code: i64,
        seen: Box<Seen>,
        judgement: Judgement,
    },
    /// Given up and claude stopped in the container.
    Stopped { why: Stop, seen: Box<Seen> },
    /// The engine failed under it.
    Engine(EngineError),
}

/// The options every task of a run shares.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub max_turns: Option<u32>,
    pub timeout: Option<Duration>,
    /// After `--` on claunch's command line: for every task, before the task's own.
    pub claude_args: Vec<String>,
}

/// `claude -p --output-format stream-json --verbose [--max-turns N] [ARGS…] -- PROMPT`.
pub fn claude_argv(task: &Task, defaults: &Defaults) -> Vec<String> {
    let mut options: Vec<String> = ["--output-format", "stream-json", "--verbose"]
        .map(str::to_string)
        .to_vec();
    if let Some(n) = task.max_turns.or(defaults.max_turns) {
        options.extend(["--max-turns".to_string(), n.to_string()]);
    }
    options.extend(defaults.claude_args.iter().cloned());
    options.extend(task.args.iter().cloned());
    claude_print_argv(options, Some(&task.prompt))
}

/// Where the shell notes claude's pid for task `id`.
pub fn pid_file(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let hex = digest[..8].iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    });
    format!("/tmp/claunch-task-{hex}.pid")
}

/// The argv of an attempt: claude under the pid-noting shell when the image has one.
pub fn exec_argv(task: &Task, defaults: &Defaults, shell: bool) -> Vec<String> {
    let claude = claude_argv(task, defaults);
    if !shell {
        return claude;
    }
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        PID_WRAPPER.to_string(),
        "claunch-task".to_string(),
        pid_file(&task.id),
    ];
    argv.extend(claude);
    argv
}

/// Stops task `id`'s claude in container `container` and waits until it is gone.
pub async fn kill(engine: &Engine, container: &str, id: &str) -> Result<(), EngineError> {
    let argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        KILLER.to_string(),
        "claunch-kill".to_string(),
        pid_file(id),
    ];
    engine::exec_streaming(
        engine,
        container,
        argv,
        None,
        Some(Duration::from_secs(30)),
        |_| {},
    )
    .await
    .map(|_| ())
}

/// Runs one attempt of `task` in container `container` (with or without a `shell` to
/// stop claude by). `stop` ends it early; `on_event` hears each stream-json event and
/// `on_line` each line worth showing, as they come.
#[allow(clippy::too_many_arguments)]
pub async fn attempt(
    engine: &Engine,
    container: &str,
    shell: bool,
    task: &Task,
    defaults: &Defaults,
    stop: impl Future<Output = Stop> + Send,
    mut on_event: impl FnMut(&Event) + Send,
    mut on_line: impl FnMut(&str) + Send,
) -> Ended {
    let argv = exec_argv(task, defaults, shell);
    let timeout = task.timeout.or(defaults.timeout);
    let stop = async {
        tokio::select! {
            why = stop => why,
            () = async {
                match timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            } => Stop::Timeout,
        }
    };
    let mut seen = Seen::default();
    let (mut out, mut err) = (Lines::default(), Lines::default());
    let mut take = |line: &str, seen: &mut Seen| {
        if let Some(event) = seen.line(line) {
            on_event(&event);
            if let Some(shown) = event.describe() {
                on_line(&shown);
            }
        } else if !line.trim().is_empty() {
            on_line(line);
        }
    };
    let result = engine::exec_streaming_until(
        engine,
        container,
        argv,
        task.workdir.as_deref(),
        None,
        stop,
        |chunk| match chunk {
            Output::Stdout(b) => out.push(b, |l| take(l, &mut seen)),
            Output::Stderr(b) => err.push(b, |l| take(l, &mut seen)),
        },
    )
    .await;
    out.finish(|l| take(l, &mut seen));
    err.finish(|l| take(l, &mut seen));
    match result {
        Err(e) => Ended::Engine(e),
        Ok((finished, Some(why))) => {
            drop(finished);
            if shell {
                // Best effort: the container may be gone already.
                let _ = kill(engine, container, &task.id).await;
            }
            Ended::Stopped {
                why,
                seen: Box::new(seen),
            }
        }
        Ok((finished, None)) => {
            let exit_code = finished.exit_code.unwrap_or(-1);
            if seen.result.is_none() && seen.plain.is_empty() {
                seen.plain.clone_from(&finished.tail);
            }
            let judgement = judge(exit_code, &seen);
            Ended::Judged {
                exit_code,
                seen: Box::new(seen),
                judgement,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_prompt_comes_last_after_the_options() {
        let text = r#"{"id":"t 1","prompt":"--version","max_turns":2,"args":["--model","sonnet"]}"#;
        let task = super::super::tasks::parse(text.as_bytes(), "t", Path::new("/"))
            .unwrap()
            .remove(0);
        let defaults = Defaults {
            max_turns: Some(9),
            timeout: None,
            claude_args: vec!["--permission-mode".into(), "plan".into()],
        };
        assert_eq!(
            claude_argv(&task, &defaults),
            [
                "claude",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--max-turns",
                "2",
                "--permission-mode",
                "plan",
                "--model",
                "sonnet",
                "--",
                "--version"
            ]
        );
        let argv = exec_argv(&task, &defaults, true);
        assert_eq!(argv[..3], ["sh", "-c", PID_WRAPPER]);
        assert_eq!(argv[4], pid_file("t 1"));
        assert!(argv[4].starts_with("/tmp/claunch-task-") && !argv[4].contains(' '));
        assert_eq!(argv[5..], claude_argv(&task, &defaults)[..]);
    }
}
