//! `claunch run TASKS`: a queue of prompts across the fleet, one task per container at a
//! time, each line of results fsynced as it finishes, passing failures retried, usage
//! limits waited out, the login kept alive throughout, and a rerun resuming where the
//! last one stopped.

mod attempt;
mod dispatch;
mod files;
mod judge;
mod queue;
mod results;
mod spans;
mod taskfile;
mod tasks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::stream::{self, StreamExt};

use super::creds::{self, SyncOptions};
use super::up::{self, UpOptions};
use super::{members, ExitStatus, Global, Member};
use crate::credentials::watcher;
use crate::interrupt::Interrupt;
use crate::report::{self, RunReporter, RunSummary};

use attempt::Defaults;
use dispatch::{Halt, Run, Worker};
use results::ResultsFile;
use taskfile::TaskFile;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The tasks file; `-` reads stdin.
    pub tasks: PathBuf,
    pub results: Option<PathBuf>,
    /// Only these agents' containers [default: all].
    pub agents: Vec<String>,
    pub retries: u32,
    pub timeout: Option<Duration>,
    pub max_turns: Option<u32>,
    /// What one task's `collect` may bring out.
    pub collect_bounds: crate::engine::archive::Bounds,
    /// `claunch up` first.
    pub up: bool,
    pub json: bool,
    /// Where to serve `GET /metrics` (`--metrics ADDR`).
    pub metrics: Option<String>,
    /// After `--`: for every task.
    pub claude_args: Vec<String>,
}

/// The containers that take tasks: the project's running ones, of `--agent`s if given;
/// every task's `agent` must have one.
fn fleet(
    project: &str,
    all: Vec<Member>,
    o: &RunOptions,
    tasks: &TaskFile,
) -> anyhow::Result<Vec<Member>> {
    for agent in &o.agents {
        if !all.iter().any(|m| &m.agent == agent) {
            let known: Vec<&str> = unique(all.iter().map(|m| m.agent.as_str()));
            bail!(
                "--agent {agent}: project `{project}` has no agent `{agent}` ({})\n  hint: `claunch ps` lists the containers",
                if known.is_empty() {
                    "it has no containers".to_string()
                } else {
                    format!("its agents are {}", known.join(", "))
                }
            );
        }
    }
    let chosen: Vec<Member> = all
        .into_iter()
        .filter(Member::running)
        .filter(|m| o.agents.is_empty() || o.agents.contains(&m.agent))
        .collect();
    if chosen.is_empty() {
        bail!(
            "project `{project}` has no running containers{}\n  hint: `claunch up` starts them, or pass --up",
            if o.agents.is_empty() {
                String::new()
            } else {
                format!(" of {}", o.agents.join(", "))
            }
        );
    }
    let agents: Vec<&str> = unique(chosen.iter().map(|m| m.agent.as_str()));
    for named in &tasks.agents {
        if !agents.contains(&named.name.as_str()) {
            bail!(
                "{}:{}:{}: agent: no running container of agent `{}` takes tasks here (running: {})",
                tasks.name,
                named.line,
                named.column,
                named.name,
                agents.join(", ")
            );
        }
    }
    Ok(chosen)
}

fn unique<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

pub async fn run(global: &Global, o: RunOptions) -> anyhow::Result<ExitStatus> {
    let started = Instant::now();
    // Before anything else, so that a busy port is said up front.
    let metrics_at = super::metrics::serve(o.metrics.as_deref())?;
    let tasks = TaskFile::open(&o.tasks)?;
    let results_path = match (&o.results, o.tasks == Path::new("-")) {
        (Some(path), _) => path.clone(),
        (None, false) => results::default_path(&o.tasks),
        (None, true) => bail!("reading the tasks from stdin needs --results FILE: there is no TASKS file to name the results after"),
    };
    let spec = super::load_spec(global)?;
    let engine = super::connect(global).await?;
    let reporter = report::pick_run(o.json);
    if let Some(addr) = metrics_at {
        reporter.info(&format!("metrics at http://{addr}/metrics"));
    }
    if o.up {
        let options = UpOptions {
            agents: o.agents.clone(),
            ..UpOptions::default()
        };
        let status = up::up(global, options, report::pick(o.json)).await?;
        if status != ExitStatus::Success {
            bail!("`claunch up` did not bring the whole fleet up: no task was run");
        }
    }
    let fleet = fleet(
        &spec.project,
        members(&engine, &spec.project).await?,
        &o,
        &tasks,
    )?;
    let (results, resume) = ResultsFile::open(&results_path)?;
    if let Some(bytes) = resume.repaired {
        reporter.warn(&format!(
            "{}: cut off a torn last line ({bytes} bytes) an interrupted run left",
            results_path.display()
        ));
    }
    let total = tasks.slots.len();
    let pending: Vec<usize> = (0..total)
        .filter(|i| !resume.ok.contains(&tasks.slots[*i].id))
        .collect();
    drop(resume);
    let skipped = (total - pending.len()) as u64;
    let mut summary = RunSummary {
        tasks: total as u64,
        skipped,
        results: results_path.display().to_string(),
        ..RunSummary::default()
    };
    if pending.is_empty() {
        summary.seconds = started.elapsed().as_secs_f64();
        reporter.run_summary(&summary);
        return Ok(ExitStatus::Success);
    }
    let workers = prepare_workers(&engine, fleet, global.parallel, reporter.as_ref()).await;
    let names: Vec<String> = workers.iter().map(|w| w.member.name.clone()).collect();
    reporter.begin(pending.len() as u64, &names);

    let run = Arc::new(Run::new(
        engine.clone(),
        tasks,
        pending.clone(),
        Defaults {
            max_turns: o.max_turns,
            timeout: o.timeout,
            claude_args: o.claude_args.clone(),
        },
        o.retries,
        results,
        results::collect_dir(&results_path),
        o.collect_bounds,
        global.parallel,
        reporter.clone(),
    ));
    let interrupt = Interrupt::listen();
    let on_interrupt = {
        let run = Arc::clone(&run);
        let interrupt = Arc::clone(&interrupt);
        tokio::spawn(async move {
            interrupt.wait().await;
            run.halt(Halt::Interrupted);
        })
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let work_started = Instant::now();
    let work = async {
        let finished = Arc::clone(&run).run_all(workers).await;
        let _ = done_tx.send(());
        finished
    };
    let (finished, ()) = tokio::join!(
        work,
        keep_login_alive(&engine, &spec, global.parallel, reporter.clone(), done_rx)
    );
    on_interrupt.abort();

    let c = &finished.counts;
    let ran = c.ok + c.failed + c.timeout;
    let seconds = work_started.elapsed().as_secs_f64();
    summary.ok = c.ok;
    summary.failed = c.failed;
    summary.timeout = c.timeout;
    summary.not_run = pending.len() as u64 - ran;
    summary.total_cost_usd = c.cost;
    summary.input_tokens = c.input_tokens;
    summary.output_tokens = c.output_tokens;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.tasks_per_min = report::per_minute(ran, seconds);
    reporter.run_summary(&summary);
    match finished.halt {
        Some(Halt::Interrupted) => Ok(ExitStatus::Interrupted),
        Some(Halt::Fatal(message)) => Err(anyhow::anyhow!(message)),
        None => Ok(ExitStatus::failed_if(c.ok != pending.len() as u64)),
    }
}

/// Checks each container for a shell (to stop claude by its pid), several at a time.
async fn prepare_workers(
    engine: &crate::engine::Engine,
    fleet: Vec<Member>,
    parallel: usize,
    r: &dyn RunReporter,
) -> Vec<Worker> {
    let checked: Vec<(Member, bool)> = stream::iter(fleet)
        .map(|m| async move {
            let shell = engine.path_exists(&m.id, "/bin/sh").await.unwrap_or(false);
            (m, shell)
        })
        .buffered(parallel.max(1))
        .collect()
        .await;
    checked
        .into_iter()
        .map(|(m, shell)| {
            if !shell {
                r.warn(&format!(
                    "{} has no /bin/sh: a task given up there (timeout, interrupt) cannot be stopped inside it",
                    m.name
                ));
            }
            Worker::new(m, shell)
        })
        .collect()
}

/// Keeps the login alive while the run lasts, with the very loop of `creds sync
/// --watch`, unless such a watcher already runs for the project.
async fn keep_login_alive(
    engine: &crate::engine::Engine,
    spec: &crate::config::Spec,
    parallel: usize,
    r: Arc<dyn RunReporter>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let _guard = match watcher::acquire(&spec.project) {
        Ok(Ok(guard)) => guard,
        Ok(Err(pid)) => {
            r.info(&format!(
                "the login is kept alive by the `claunch creds sync --watch` already running{}",
                pid.map_or_else(String::new, |p| format!(" (pid {p})"))
            ));
            return;
        }
        Err(e) => {
            r.warn(&format!(
                "cannot take the login watcher's lock ({e}): the login is not kept alive during this run"
            ));
            return;
        }
    };
    let o = SyncOptions {
        watch: true,
        ahead: Duration::from_secs(15 * 60),
        interval: Duration::from_secs(60),
        metrics: None,
    };
    let stopped = async {
        let _ = stop.await;
    };
    if let Err(e) = creds::watch_until(
        engine,
        spec,
        dispatch::LOGIN,
        &o,
        parallel,
        r.as_ref(),
        stopped,
    )
    .await
    {
        r.warn(&format!(
            "keeping the login alive failed: {e:#}; tasks may fail once the access token expires"
        ));
    }
}
