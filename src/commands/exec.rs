//! `claunch exec`: run a prompt with claude in one agent or many, streaming the answer as
//! it arrives. One target passes claude's bytes and exit code straight through; several
//! run in parallel with every line prefixed by its container.

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use futures::stream::{self, StreamExt};

use super::{members, Global, Member};
use crate::engine::{self, Lines};
use crate::engine::{Engine, Output};

#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// `None` with `all`.
    pub target: Option<String>,
    pub all: bool,
    pub prompt: String,
    pub max_turns: Option<u32>,
    /// `text`, `json` or `stream-json`.
    pub output_format: String,
    pub timeout: Option<Duration>,
    pub extra: Vec<String>,
}

/// Exit code when a run did not finish within `--timeout` (as `timeout(1)` does).
pub const TIMED_OUT: i32 = 124;

/// claude's argv; the prompt goes through stdin when it was read from stdin.
pub fn claude_argv(o: &ExecOptions, prompt_on_stdin: bool) -> Vec<String> {
    let mut argv = vec!["claude".to_string(), "-p".to_string()];
    if !prompt_on_stdin {
        argv.push(o.prompt.clone());
    }
    if let Some(n) = o.max_turns {
        argv.extend(["--max-turns".to_string(), n.to_string()]);
    }
    argv.extend(["--output-format".to_string(), o.output_format.clone()]);
    if o.output_format == "stream-json" && !o.extra.iter().any(|a| a == "--verbose") {
        argv.push("--verbose".to_string());
    }
    argv.extend(o.extra.iter().cloned());
    argv
}

pub async fn run(global: &Global, o: ExecOptions) -> anyhow::Result<i32> {
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
    let stdin = super::read_prompt(&o.prompt)?;
    let argv = claude_argv(&o, stdin.is_some());
    if let [one] = targets.as_slice() {
        return single(&engine, one, argv, stdin.as_deref(), o.timeout).await;
    }
    let results: Vec<(String, Result<Option<i64>, String>)> = stream::iter(targets)
        .map(|m| {
            let (engine, argv, stdin) = (engine.clone(), argv.clone(), stdin.clone());
            async move {
                let r = prefixed(&engine, &m, argv, stdin.as_deref(), o.timeout).await;
                (m.name, r)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut failures = Vec::new();
    for (name, r) in &results {
        match r {
            Ok(Some(0)) => {}
            Ok(Some(code)) => failures.push(format!("{name} (exit {code})")),
            Ok(None) => failures.push(format!("{name} (timed out)")),
            Err(e) => failures.push(format!("{name} ({e})")),
        }
    }
    if failures.is_empty() {
        eprintln!("{} containers: all succeeded", results.len());
        Ok(0)
    } else {
        eprintln!(
            "{} containers: {} succeeded, {} failed: {}",
            results.len(),
            results.len() - failures.len(),
            failures.len(),
            failures.join(", ")
        );
        Ok(1)
    }
}

async fn single(
    engine: &Engine,
    m: &Member,
    argv: Vec<String>,
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
) -> anyhow::Result<i32> {
    let finished = engine::exec_streaming(engine, &m.id, argv, stdin, timeout, |chunk| {
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
    match finished.exit_code {
        Some(code) => Ok(i32::try_from(code).unwrap_or(1)),
        None => {
            eprintln!("claunch: {} did not finish within the timeout", m.name);
            Ok(TIMED_OUT)
        }
    }
}

async fn prefixed(
    engine: &Engine,
    m: &Member,
    argv: Vec<String>,
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<Option<i64>, String> {
    let (mut out, mut err) = (Lines::default(), Lines::default());
    let name = &m.name;
    let result = engine::exec_streaming(engine, &m.id, argv, stdin, timeout, |chunk| match chunk {
        Output::Stdout(b) => out.push(b, |l| println!("{name} | {l}")),
        Output::Stderr(b) => err.push(b, |l| eprintln!("{name} | {l}")),
    })
    .await;
    out.finish(|l| println!("{name} | {l}"));
    err.finish(|l| eprintln!("{name} | {l}"));
    result.map(|f| f.exit_code).map_err(|e| e.to_string())
}
