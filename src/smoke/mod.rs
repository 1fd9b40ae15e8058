//! The smoke test: one real `claude -p` in a container, read as it streams (claude's
//! stream-json events, so a person waiting sees its retries), classified with its fix, and
//! its verdict kept in the container ([`record`]).

pub mod record;
mod verdict;

use std::time::Duration;

pub use verdict::{classify, Verdict};

use crate::claude::{claude_print_argv, Event};
use crate::config::SmokeSpec;
use crate::engine::retry::retry;
use crate::engine::{self, Engine, Lines, Output};
use crate::report::{Reporter, Step};

/// Runs the smoke test `spec` in container `id` (named `name` for the reporter) as the
/// container's user: `claude -p --max-turns N --output-format stream-json --verbose --
/// PROMPT`. Each event worth reading goes to the reporter as it comes.
pub async fn smoke_test(
    engine: &Engine,
    id: &str,
    name: &str,
    spec: &SmokeSpec,
    r: &dyn Reporter,
) -> Verdict {
    let argv = claude_print_argv(
        [
            "--max-turns".to_string(),
            spec.max_turns.to_string(),
            "--output-format".to_string(),
            "stream-json".to_string(),
            "--verbose".to_string(),
        ],
        Some(&spec.prompt),
    );
    // An engine error is retried like any other step's: a smoke test may run twice.
    let result = retry(
        |_| r.step(name, Step::Retry),
        || {
            let argv = argv.clone();
            async move {
                let mut seen = Seen::default();
                let (mut out, mut err) = (Lines::default(), Lines::default());
                let result =
                    engine::exec_streaming(engine, id, argv, None, Some(spec.timeout), |chunk| {
                        match chunk {
                            Output::Stdout(b) => out.push(b, |l| seen.line(l, name, r)),
                            Output::Stderr(b) => err.push(b, |l| seen.line(l, name, r)),
                        }
                    })
                    .await;
                out.finish(|l| seen.line(l, name, r));
                err.finish(|l| seen.line(l, name, r));
                result.map(|finished| (finished, seen))
            }
        },
    )
    .await;
    let verdict = match result {
        Ok((
            engine::Finished {
                exit_code: Some(code),
                tail,
            },
            seen,
        )) => seen.verdict(code, &tail),
        Ok((
            engine::Finished {
                exit_code: None, ..
            },
            seen,
        )) => Verdict::TimedOut {
            secs: spec.timeout.as_secs(),
            last_report: seen.last_report.clone(),
        },
        Err(e) if e.is_conflict() => Verdict::Failed {
            exit_code: -1,
            last_lines: vec![format!(
                "the container stopped before its smoke test ({e}): its command exited; see `claunch logs {name}`"
            )],
        },
        Err(e) => Verdict::Failed {
            exit_code: -1,
            last_lines: vec![e.to_string()],
        },
    };
    if verdict.passed() {
        return verdict;
    }
    // Its main process exited under the smoke test: say so, not just claude's exit code.
    // claude killed by a signal (or its stream cut) may mean the container is stopping,
    // which the engine takes a moment to report.
    let killed =
        matches!(verdict, Verdict::Failed { exit_code, .. } if !(0..128).contains(&exit_code));
    for _ in 0..20 {
        match engine.inspect_container(id).await {
            Ok(i) if !i.state.running => {
                return Verdict::ContainerStopped {
                    exit_code: i.state.exit_code,
                    logs: format!("claunch logs {name}"),
                };
            }
            Ok(_) if killed => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => break,
        }
    }
    verdict
}

/// What one smoke run has said so far.
#[derive(Default)]
struct Seen {
    /// Plain lines (not stream-json) and the result's text: what the classifier reads.
    human: String,
    /// The last thing worth telling a person, for a timeout's message.
    last_report: Option<String>,
    /// The result event's HTTP status of a failed API call.
    api_error_status: Option<u64>,
}

impl Seen {
    fn line(&mut self, line: &str, name: &str, r: &dyn Reporter) {
        match Event::parse(line) {
            Some(event) => {
                if let Event::Result {
                    text,
                    api_error_status,
                    ..
                } = &event
                {
                    self.human.push_str(text);
                    self.human.push('\n');
                    self.api_error_status = *api_error_status;
                }
                if let Some(shown) = event.describe() {
                    r.output(name, &shown);
                    self.last_report = Some(shown);
                }
            }
            None => {
                r.output(name, line);
                self.human.push_str(line);
                self.human.push('\n');
                if !line.trim().is_empty() {
                    self.last_report = Some(line.to_string());
                }
            }
        }
    }

    /// The verdict of a run that ended with `exit_code`: from the result's structured
    /// fields where they say, else from what claude printed.
    fn verdict(&self, exit_code: i64, tail: &str) -> Verdict {
        if exit_code != 0 && self.api_error_status == Some(401) {
            return Verdict::TokenRejected;
        }
        let text = if self.human.trim().is_empty() {
            tail
        } else {
            &self.human
        };
        classify(exit_code, text)
    }
}
