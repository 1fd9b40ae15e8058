//! `claunch exec`: run a prompt with claude in one agent or many, streaming the answer as
//! it arrives. One target passes claude's bytes and exit code straight through; several
//! run in parallel with every line prefixed by its container.

use crate::commands::ExitStatus;
use std::io::{IsTerminal as _, Write};
use std::time::Duration;

use anyhow::bail;
use futures::stream::{self, StreamExt};

use serde_json::json;

use super::{members, Global, Member};
use crate::claude::Event;
use crate::engine::{self, Engine, Lines, Output};
use crate::fleet::Backend as _;
use crate::report;

/// claude's `--output-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
    StreamJson,
}

impl OutputFormat {
    fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
            Self::StreamJson => "stream-json",
        }
    }
}

/// Where claude's prompt comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// claude's last argument, after `--`: any text, one that looks like an option included.
    Text(String),
    /// claunch's own stdin, given to claude's (`PROMPT` `-`).
    Stdin,
}

#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// `None` with `all`.
    pub target: Option<String>,
    pub all: bool,
    pub prompt: Prompt,
    pub max_turns: Option<u32>,
    pub output_format: OutputFormat,
    pub timeout: Option<Duration>,
    pub extra: Vec<String>,
    /// claunch's own JSON lines around claude's output.
    pub json: bool,
}

/// claude's argv; the prompt goes through stdin when it was read from stdin, else after `--`.
pub fn claude_argv(o: &ExecOptions) -> Vec<String> {
    let mut options = Vec::new();
    if let Some(n) = o.max_turns {
        options.extend(["--max-turns".to_string(), n.to_string()]);
    }
    options.extend([
        "--output-format".to_string(),
        o.output_format.as_str().to_string(),
    ]);
    if o.output_format == OutputFormat::StreamJson && !o.extra.iter().any(|a| a == "--verbose") {
        options.push("--verbose".to_string());
    }
    options.extend(o.extra.iter().cloned());
    let prompt = match &o.prompt {
        Prompt::Text(text) => Some(text.as_str()),
        Prompt::Stdin => None,
    };
    crate::claude::claude_print_argv(options, prompt)
}

/// "90s", "10m", "1h30m": a timeout as the user would write it.
fn describe_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

pub async fn exec(global: &Global, o: ExecOptions) -> anyhow::Result<ExitStatus> {
    let project = super::project_name(global)?;
    let engine = super::connect(global).await?;
    let all = members(&engine, &project).await?;
    let targets: Vec<Member> = match &o.target {
        None => all.iter().filter(|m| m.running()).cloned().collect(),
        Some(t) => super::select(&project, &all, t)?
            .into_iter()
            .cloned()
            .collect(),
    };
    if targets.is_empty() {
        bail!("project `{project}` has no running containers\n  hint: run `claunch up` first");
    }
    if let Some(stopped) = targets.iter().find(|m| !m.running()) {
        bail!(
            "{} is {}, not running\n  hint: `claunch up` starts it again",
            stopped.name,
            stopped.state
        );
    }
    let stdin = match o.prompt {
        Prompt::Stdin => Some(super::read_stdin_prompt()?),
        Prompt::Text(_) => None,
    };
    let argv = claude_argv(&o);
    if let ([one], false) = (targets.as_slice(), o.json) {
        // Through the backend: on a cluster, the engine of the member's own node.
        let reach = engine.engine_for(one)?;
        // Someone watching a text answer: ask claude for its events, to show its retries
        // while it waits and then print its answer as text mode would.
        let watched = o.output_format == OutputFormat::Text
            && std::io::stdout().is_terminal()
            && std::io::stderr().is_terminal();
        if watched {
            let events = ExecOptions {
                output_format: OutputFormat::StreamJson,
                ..o.clone()
            };
            let argv = claude_argv(&events);
            return single(reach, one, argv, stdin.as_deref(), o.timeout, true).await;
        }
        return single(reach, one, argv, stdin.as_deref(), o.timeout, false).await;
    }
    let results: Vec<(String, Result<Option<i64>, String>)> = stream::iter(targets)
        .map(|m| {
            let (engine, argv, stdin) = (engine.clone(), argv.clone(), stdin.clone());
            async move {
                let r = match engine.engine_for(&m) {
                    Ok(reach) => {
                        prefixed(reach, &m, argv, stdin.as_deref(), o.timeout, o.json).await
                    }
                    Err(e) => Err(format!("{e:#}")),
                };
                if o.json {
                    report::json_line(&match &r {
                        Ok(Some(code)) => json!({"event": "exited", "container": m.name, "exit_code": code}),
                        Ok(None) => json!({"event": "timed_out", "container": m.name, "timeout_secs": o.timeout.map(|t| t.as_secs())}),
                        Err(e) => json!({"event": "failed", "container": m.name, "message": e}),
                    });
                }
                (m.name, r)
            }
        })
        .buffer_unordered(global.parallel)
        .collect()
        .await;
    let mut failures = Vec::new();
    for (name, r) in &results {
        match r {
            Ok(Some(0)) => {}
            Ok(Some(code)) => failures.push(format!("{name} (exit {code})")),
            Ok(None) => failures.push(format!(
                "{name} (timed out after {})",
                o.timeout.map_or_else(String::new, describe_duration)
            )),
            Err(e) => failures.push(format!("{name} ({e})")),
        }
    }
    if o.json {
        // Each container's end was its own line; the exit code says the rest.
    } else if failures.is_empty() {
        eprintln!("{} containers: all succeeded", results.len());
    } else {
        eprintln!(
            "{} containers: {} succeeded, {} failed: {}",
            results.len(),
            results.len() - failures.len(),
            failures.len(),
            failures.join(", ")
        );
    }
    Ok(ExitStatus::failed_if(!failures.is_empty()))
}

async fn single(
    engine: &Engine,
    m: &Member,
    argv: Vec<String>,
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
    events: bool,
) -> anyhow::Result<ExitStatus> {
    // claude may be silent for minutes (it retries an API it cannot reach): say it is awaited.
    let mut waiting = report::Waiting::start(&format!("waiting for claude in {}", m.name));
    let mut lines = Lines::default();
    let finished = engine::exec_streaming(engine, &m.id, argv, stdin, timeout, |chunk| {
        if let (true, Output::Stdout(b)) = (events, chunk) {
            lines.push(b, |l| show_event(&mut waiting, &m.name, l));
            return;
        }
        waiting.stop();
        // Flush each chunk so the answer shows as it streams, not when claude ends.
        let _ = match chunk {
            Output::Stdout(b) => {
                let mut out = std::io::stdout().lock();
                out.write_all(b).and_then(|()| out.flush())
            }
            Output::Stderr(b) => {
                let mut err = std::io::stderr().lock();
                err.write_all(b).and_then(|()| err.flush())
            }
        };
    })
    .await?;
    lines.finish(|l| show_event(&mut waiting, &m.name, l));
    waiting.stop();
    match finished.exit_code {
        Some(code) => Ok(ExitStatus::Passed(u8::try_from(code).unwrap_or(1))),
        None => {
            eprintln!(
                "claunch: {} did not finish within the timeout ({})",
                m.name,
                timeout.map_or_else(String::new, describe_duration)
            );
            Ok(ExitStatus::TimedOut)
        }
    }
}

/// One line of claude's stream-json for someone watching a text answer: retries go to the
/// waiting line, the result is printed as text mode prints it, anything else as it came.
fn show_event(waiting: &mut report::Waiting, name: &str, line: &str) {
    match Event::parse(line) {
        Some(event @ Event::ApiRetry { .. }) => {
            if let Some(said) = event.describe() {
                waiting.say(&format!("claude in {name}: {said}"));
            }
        }
        Some(Event::Result { text, .. }) => {
            waiting.stop();
            println!("{text}");
        }
        Some(_) => {}
        None => {
            waiting.stop();
            println!("{line}");
        }
    }
}

async fn prefixed(
    engine: &Engine,
    m: &Member,
    argv: Vec<String>,
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
    json: bool,
) -> Result<Option<i64>, String> {
    let (mut out, mut err) = (Lines::default(), Lines::default());
    let name = &m.name;
    let print = |stream: &str, line: &str| {
        if json {
            report::json_line(
                &json!({"event": "output", "container": name, "stream": stream, "line": line}),
            );
        } else if stream == "stdout" {
            println!("{name} | {line}");
        } else {
            eprintln!("{name} | {line}");
        }
    };
    let result = engine::exec_streaming(engine, &m.id, argv, stdin, timeout, |chunk| match chunk {
        Output::Stdout(b) => out.push(b, |l| print("stdout", l)),
        Output::Stderr(b) => err.push(b, |l| print("stderr", l)),
    })
    .await;
    out.finish(|l| print("stdout", l));
    err.finish(|l| print("stderr", l));
    result.map(|f| f.exit_code).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(prompt: Prompt, extra: &[&str]) -> ExecOptions {
        ExecOptions {
            target: Some("t".into()),
            all: false,
            prompt,
            max_turns: Some(1),
            output_format: OutputFormat::StreamJson,
            timeout: None,
            extra: extra.iter().map(|s| (*s).to_string()).collect(),
            json: false,
        }
    }

    #[test]
    fn a_hostile_prompt_is_claudes_last_argument_after_double_dash() {
        for hostile in [
            "--version",
            "-h",
            "--dangerously-skip-permissions",
            "--model=x",
            "-",
        ] {
            assert_eq!(
                claude_argv(&options(
                    Prompt::Text(hostile.into()),
                    &["--model", "sonnet"]
                )),
                [
                    "claude",
                    "-p",
                    "--max-turns",
                    "1",
                    "--output-format",
                    "stream-json",
                    "--verbose",
                    "--model",
                    "sonnet",
                    "--",
                    hostile
                ]
            );
        }
        assert_eq!(
            claude_argv(&options(Prompt::Stdin, &[])),
            [
                "claude",
                "-p",
                "--max-turns",
                "1",
                "--output-format",
                "stream-json",
                "--verbose"
            ],
            "on stdin: no `--` and no prompt argument"
        );
    }
}
