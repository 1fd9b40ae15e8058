//! `claunch up`: converge the fleet. Plan in plain data, then create, deliver credentials,
//! start and smoke-test each replica, several at a time, reporting as it goes.

use crate::commands::ExitStatus;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::{bail, Context as _};
use futures::stream::{self, StreamExt};
use tokio::sync::OnceCell;

mod leader;
mod prepare;
mod replica;

use leader::leader_first;
use prepare::{ensure_networks_and_volumes, prepare};
use replica::converge;

use super::{members, Global, Member};
use crate::config::{AgentSpec, Spec};
use crate::credentials::deliver::{self, Layout, Payload};
use crate::credentials::login::Login;
use crate::engine::Engine;
use crate::interrupt::Interrupt;

use crate::credentials::sources;
use crate::engine::retry::retry;
use crate::fleet;
use crate::plan::{self, Desired, Removal, RemoveReason};
use crate::report::{Outcome, Reporter, Step, Summary};
use crate::smoke;

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub agents: Vec<String>,
    pub scale: Vec<String>,
    pub no_smoke: bool,
    pub force_recreate: bool,
    pub remove_orphans: bool,
}

/// Which kind of work a replica had, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkKind {
    Create,
    Recreate,
    Start,
    Retest,
}

impl WorkKind {
    fn of(work: &plan::Work) -> Self {
        match work {
            plan::Work::Create { .. } => Self::Create,
            plan::Work::Recreate { .. } => Self::Recreate,
            plan::Work::Start { .. } => Self::Start,
            plan::Work::Retest { .. } => Self::Retest,
        }
    }
}

/// How one container's part of `up` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Done,
    Failed,
    /// Interrupted before it began: nothing was made.
    NotStarted,
}

/// What `up` knows about one declared agent before touching containers.
struct Prepared {
    agent: AgentSpec,
    hash: String,
    /// The image's own user and env, merged with the agent's, as the container will have.
    user: Option<String>,
    env: Vec<String>,
    files: Vec<Payload>,
    needs: deliver::Needs,
    /// Worked out once from the first container made, then reused by its replicas.
    layout: OnceCell<Layout>,
}

struct Shared {
    engine: Engine,
    spec: Spec,
    reporter: Arc<dyn Reporter>,
    /// The login; a leader's refresh during `up` replaces it before followers are made.
    login: RwLock<Login>,
    agents: HashMap<String, Arc<Prepared>>,
    /// Each network's id by name: containers join by id, so a duplicate made by a racing
    /// `up` can never make their network ambiguous.
    networks: HashMap<String, String>,
    smoke: bool,
    interrupt: Arc<Interrupt>,
}

pub async fn up(
    global: &Global,
    options: UpOptions,
    reporter: Arc<dyn Reporter>,
) -> anyhow::Result<ExitStatus> {
    let started = Instant::now();
    let mut spec = super::load_spec(global)?;
    apply_scale(&mut spec, &options.scale)?;
    for name in &options.agents {
        if spec.agent(name).is_none() {
            bail!(
                "no agent `{name}` in {}\n  hint: the agents are {}",
                spec.file.display(),
                agent_names(&spec)
            );
        }
    }
    let login = sources::fetch(&spec, reporter.as_ref()).await?;
    let engine = super::connect(global).await?;

    let selected: Vec<AgentSpec> = spec
        .agents
        .iter()
        .filter(|a| options.agents.is_empty() || options.agents.contains(&a.name))
        .cloned()
        .collect();
    let mut agents = HashMap::new();
    for agent in selected {
        let prepared = prepare(&engine, &spec, agent, &login).await?;
        agents.insert(prepared.agent.name.clone(), Arc::new(prepared));
    }

    let mut observed: Vec<Member> = members(&engine, &spec.project).await?;
    if !options.no_smoke {
        read_smoke_records(&engine, &mut observed, &agents, global.parallel).await;
    }
    let desired: Vec<Desired> = spec
        .agents
        .iter()
        .filter_map(|a| agents.get(&a.name))
        .map(|p| Desired {
            agent: p.agent.name.clone(),
            replicas: p.agent.replicas,
            config_hash: p.hash.clone(),
            smoke: p
                .agent
                .smoke
                .as_ref()
                .filter(|_| !options.no_smoke)
                .map(smoke::record::spec_hash),
        })
        .collect();
    let plan_options = plan::Options {
        force_recreate: options.force_recreate,
        remove_orphans: options.remove_orphans,
        only_declared: !options.agents.is_empty(),
        rotating: login.rotating(),
    };
    let plan = plan::plan(&desired, &observed, plan_options);
    for orphan in &plan.orphans {
        reporter.warn(&format!(
            "found container {} of agent `{}`, which is not in {}: `claunch up --remove-orphans` removes it",
            orphan.name,
            orphan.agent,
            spec.file.display()
        ));
    }

    let networks = ensure_networks_and_volumes(
        &engine,
        &spec,
        agents.values().map(|p| &p.agent),
        &*reporter,
    )
    .await?;

    let shared = Arc::new(Shared {
        engine,
        spec,
        reporter: reporter.clone(),
        login: RwLock::new(login),
        agents,
        networks,
        smoke: !options.no_smoke,
        interrupt: Interrupt::listen(),
    });

    let plan::Plan {
        removals,
        keeps,
        work: mut tasks,
        ..
    } = plan;
    let parallel = global.parallel.max(1);
    let kinds: HashMap<String, WorkKind> = tasks
        .iter()
        .map(|w| {
            let name = fleet::container_name(&shared.spec.project, w.agent(), w.replica());
            (name, WorkKind::of(w))
        })
        .collect();
    let mut results: Vec<(String, Status)> = stream::iter(removals)
        .map(|a| remove(shared.clone(), a))
        .buffer_unordered(parallel)
        .collect()
        .await;
    let kept = keeps.len();
    for existing in keeps {
        reporter.finished(
            &existing.name,
            &Outcome::Done {
                detail: "up to date".into(),
            },
        );
        results.push((existing.name, Status::Done));
    }
    let mut changed = leader_first(&shared, &mut tasks, &observed).await;
    let rest: Vec<(String, Status)> = stream::iter(tasks)
        .map(|a| converge(shared.clone(), a))
        .buffer_unordered(parallel)
        .collect()
        .await;
    changed.extend(rest);
    let count = |want: Status| changed.iter().filter(|(_, s)| *s == want).count();
    let not_started: Vec<&str> = changed
        .iter()
        .filter(|(_, s)| *s == Status::NotStarted)
        .map(|(n, _)| n.as_str())
        .collect();
    let done_as = |kind: WorkKind| {
        changed
            .iter()
            .filter(|(n, s)| *s == Status::Done && kinds.get(n) == Some(&kind))
            .count()
    };
    let removed = results.iter().filter(|(_, s)| *s == Status::Done).count() - kept;
    reporter.summary(&Summary {
        project: shared.spec.project.clone(),
        created: done_as(WorkKind::Create),
        recreated: done_as(WorkKind::Recreate),
        started: done_as(WorkKind::Start),
        retested: done_as(WorkKind::Retest),
        removed,
        unchanged: kept,
        failed: count(Status::Failed)
            + results.iter().filter(|(_, s)| *s == Status::Failed).count(),
        not_started: count(Status::NotStarted),
        seconds: started.elapsed().as_secs_f64(),
    });
    if shared.interrupt.is_set() {
        reporter.info(&format!(
            "interrupted: {} not started ({}); every running container has its credentials; run `claunch up` again to finish",
            not_started.len(),
            if not_started.is_empty() { "none".to_string() } else { not_started.join(", ") }
        ));
        return Ok(ExitStatus::Interrupted);
    }
    results.extend(changed.iter().cloned());
    Ok(ExitStatus::failed_if(
        results.iter().any(|(_, s)| *s != Status::Done),
    ))
}

fn agent_names(spec: &Spec) -> String {
    spec.agents
        .iter()
        .map(|a| a.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies `--scale AGENT=N` over the file's `replicas:`.
pub fn apply_scale(spec: &mut Spec, scale: &[String]) -> anyhow::Result<()> {
    for item in scale {
        let Some((name, count)) = item.split_once('=') else {
            bail!("--scale {item}: expected AGENT=N, e.g. --scale planner=3");
        };
        let count: u32 = count.trim().parse().with_context(|| {
            format!("--scale {item}: `{count}` is not a whole number of replicas")
        })?;
        let names = agent_names(spec);
        let Some(agent) = spec.agents.iter_mut().find(|a| a.name == name.trim()) else {
            bail!("--scale {item}: no agent `{name}` in the config (the agents are {names})");
        };
        agent.replicas = count;
    }
    Ok(())
}

async fn remove(shared: Arc<Shared>, Removal { existing, reason }: Removal) -> (String, Status) {
    let r = &shared.reporter;
    r.step(&existing.name, Step::Remove);
    match retry(
        |_| r.as_ref().step(&existing.name, Step::Retry),
        || shared.engine.remove_container(&existing.id),
    )
    .await
    {
        Ok(()) => {
            let why = match reason {
                RemoveReason::ScaledDown => "removed (scaled down)",
                RemoveReason::Duplicate => "removed (duplicate replica)",
                RemoveReason::Orphan => "removed (agent no longer declared)",
            };
            r.finished(&existing.name, &Outcome::Done { detail: why.into() });
            (existing.name, Status::Done)
        }
        Err(e) => {
            r.finished(&existing.name, &failed(&e.to_string(), None));
            (existing.name, Status::Failed)
        }
    }
}

/// Reads the smoke verdict of each running container of the agents being converged.
async fn read_smoke_records(
    engine: &Engine,
    observed: &mut [Member],
    agents: &HashMap<String, Arc<Prepared>>,
    parallel: usize,
) {
    stream::iter(
        observed
            .iter_mut()
            .filter(|m| m.running() && agents.contains_key(&m.agent)),
    )
    .for_each_concurrent(parallel, |m| async move {
        m.smoke = smoke::record::read(engine, &m.id).await;
    })
    .await;
}

fn failed(message: &str, hint: Option<&str>) -> Outcome {
    Outcome::Failed {
        message: message.to_string(),
        hint: hint.map(str::to_string),
    }
}
