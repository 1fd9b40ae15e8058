//! `claunch up`: converge the fleet. Plan in plain data, then create, deliver credentials,
//! start and smoke-test each replica, several at a time, reporting as it goes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::stream::{self, StreamExt};
use tokio::sync::OnceCell;

use super::{members, Global, Member};
use crate::config::{AgentSpec, CredentialsSpec, Spec};
use crate::credentials::{self, Credentials};
use crate::deliver::{self, Layout, Payload};
use crate::engine::{Engine, EngineError, Output};
use crate::fleet::{self, label};
use crate::plan::{self, Action, Desired, Observed, RemoveReason};
use crate::report::{Outcome, Reporter, Step};
use crate::run::{self, Lines};
use crate::secret::Secret;
use crate::smoke::{self, Verdict};

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub agents: Vec<String>,
    pub scale: Vec<String>,
    pub no_smoke: bool,
    pub parallel: usize,
    pub force_recreate: bool,
    pub remove_orphans: bool,
}

/// What `up` knows about one declared agent before touching containers.
struct Prepared {
    agent: AgentSpec,
    hash: String,
    /// The image's own user and env, merged with the agent's, as the container will have.
    user: Option<String>,
    env: Vec<String>,
    files: Vec<Payload>,
    /// Worked out once from the first container made, then reused by its replicas.
    layout: OnceCell<Layout>,
}

struct Shared {
    engine: Engine,
    spec: Spec,
    reporter: Arc<dyn Reporter>,
    credentials: Secret,
    agents: HashMap<String, Arc<Prepared>>,
    smoke: bool,
}

pub async fn run(
    global: &Global,
    options: UpOptions,
    reporter: Arc<dyn Reporter>,
) -> anyhow::Result<i32> {
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
    let credentials = read_credentials(&spec, reporter.as_ref())?;
    let engine = super::connect(global).await?;

    let selected: Vec<AgentSpec> = spec
        .agents
        .iter()
        .filter(|a| options.agents.is_empty() || options.agents.contains(&a.name))
        .cloned()
        .collect();
    let mut agents = HashMap::new();
    for agent in selected {
        let prepared = prepare(&engine, &spec, agent).await?;
        agents.insert(prepared.agent.name.clone(), Arc::new(prepared));
    }

    let observed: Vec<Observed> = members(&engine, &spec.project)
        .await?
        .into_iter()
        .map(observed)
        .collect();
    let desired: Vec<Desired> = spec
        .agents
        .iter()
        .filter_map(|a| agents.get(&a.name))
        .map(|p| Desired {
            agent: p.agent.name.clone(),
            replicas: p.agent.replicas,
            config_hash: p.hash.clone(),
        })
        .collect();
    let plan = plan::plan(
        &desired,
        &observed,
        options.force_recreate,
        options.remove_orphans,
        !options.agents.is_empty(),
    );
    for orphan in &plan.orphans {
        reporter.warn(&format!(
            "found container {} of agent `{}`, which is not in {}: `claunch up --remove-orphans` removes it",
            orphan.name,
            orphan.agent,
            spec.file.display()
        ));
    }

    ensure_networks_and_volumes(&engine, &spec, agents.values().map(|p| &p.agent)).await?;

    let shared = Arc::new(Shared {
        engine,
        spec,
        reporter: reporter.clone(),
        credentials,
        agents,
        smoke: !options.no_smoke,
    });

    let (removals, work): (Vec<Action>, Vec<Action>) = plan
        .actions
        .into_iter()
        .partition(|a| matches!(a, Action::Remove { .. }));
    let parallel = options.parallel.max(1);
    let mut results: Vec<(String, bool)> = stream::iter(removals)
        .map(|a| remove(shared.clone(), a))
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut kept = 0;
    let mut tasks = Vec::new();
    for action in work {
        if let Action::Keep { existing } = &action {
            kept += 1;
            reporter.finished(
                &existing.name,
                &Outcome::Done {
                    detail: "up to date".into(),
                },
            );
            results.push((existing.name.clone(), true));
        } else {
            tasks.push(action);
        }
    }
    let changed: Vec<(String, bool)> = stream::iter(tasks)
        .map(|a| converge(shared.clone(), a))
        .buffer_unordered(parallel)
        .collect()
        .await;
    let failed: Vec<&String> = changed
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n)
        .collect();
    let summary = format!(
        "{} containers: {} changed, {} up to date, {} failed ({:.1}s)",
        shared.spec.project,
        changed.len(),
        kept,
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    reporter.info(&summary);
    results.extend(changed.iter().cloned());
    Ok(i32::from(results.iter().any(|(_, ok)| !ok)))
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

fn read_credentials(spec: &Spec, reporter: &dyn Reporter) -> anyhow::Result<Secret> {
    let CredentialsSpec::File(path) = &spec.credentials;
    let creds = Credentials::read_file(path)?;
    if credentials::readable_by_others(path) {
        reporter.warn(&format!(
            "{} can be read by other users: run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    if let Some(left) = creds.summary.expires_in_ms(credentials::now_ms()) {
        if left <= 0 && !creds.summary.has_refresh_token {
            reporter.warn(&format!(
                "{}: the access token {} and there is no refresh token: run `claude login`",
                path.display(),
                credentials::describe_remaining(left)
            ));
        }
    }
    Ok(creds.raw().clone())
}

async fn prepare(engine: &Engine, spec: &Spec, agent: AgentSpec) -> anyhow::Result<Prepared> {
    let image = engine.inspect_image(&agent.image).await.map_err(|e| {
        if e.is_not_found() {
            anyhow::anyhow!(
                "agent `{}`: image `{}` is not on the engine\n  hint: build it (`claunch image build --tag {}`) or `docker pull` it",
                agent.name,
                agent.image,
                agent.image
            )
        } else {
            anyhow::Error::from(e).context(format!("agent `{}`", agent.name))
        }
    })?;
    let image_id = image.id.clone().unwrap_or_default();
    let config = image.config.unwrap_or_default();
    let user = agent.user.clone().or(config.user).filter(|u| !u.is_empty());
    let mut env = config.env.unwrap_or_default();
    env.extend(agent.env.iter().map(|(k, v)| format!("{k}={v}")));
    let mut files = Vec::new();
    for f in &agent.files {
        let bytes = std::fs::read(&f.source).with_context(|| {
            format!(
                "agent `{}`: files: cannot read {} (for {})",
                agent.name,
                f.source.display(),
                f.target
            )
        })?;
        files.push(Payload {
            target: f.target.clone(),
            mode: f.mode,
            contents: Secret::new(bytes),
        });
    }
    check_volumes(spec, &agent)?;
    Ok(Prepared {
        hash: fleet::config_hash(&agent, &image_id),
        agent,
        user,
        env,
        files,
        layout: OnceCell::new(),
    })
}

/// Refuses a volume that would mount the host's Claude login into a container: claunch
/// delivers credentials itself, and a shared, writable login breaks on token rotation.
fn check_volumes(spec: &Spec, agent: &AgentSpec) -> anyhow::Result<()> {
    let CredentialsSpec::File(creds) = &spec.credentials;
    let claude_dir = creds.parent();
    let base = spec
        .file
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."));
    for v in &agent.volumes {
        let (bind, _) = fleet::bind(&spec.project, base, v);
        let source = std::path::Path::new(bind.split(':').next().unwrap_or_default());
        let hits = |p: &std::path::Path| source.starts_with(p) || p.starts_with(source);
        if source.is_absolute() && (hits(creds) || claude_dir.is_some_and(hits)) {
            bail!(
                "agent `{}`: volumes: `{v}` mounts the Claude credentials into the container\n  hint: remove it; claunch delivers the credentials itself (a shared login breaks when its refresh token rotates)",
                agent.name
            );
        }
    }
    Ok(())
}

async fn ensure_networks_and_volumes<'a>(
    engine: &Engine,
    spec: &Spec,
    agents: impl Iterator<Item = &'a AgentSpec>,
) -> anyhow::Result<()> {
    let labels = |extra: &[(&str, &str)]| -> HashMap<String, String> {
        let mut m = HashMap::from([
            (label::PROJECT.to_string(), spec.project.clone()),
            (label::MANAGED.to_string(), "true".to_string()),
        ]);
        m.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        m
    };
    let base = spec
        .file
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."));
    let mut networks = BTreeSet::new();
    let mut volumes = BTreeSet::new();
    for agent in agents.filter(|a| a.replicas > 0) {
        networks.insert(fleet::network_name(&spec.project, agent));
        for v in &agent.volumes {
            if let (_, Some(name)) = fleet::bind(&spec.project, base, v) {
                volumes.insert(name);
            }
        }
    }
    for name in &networks {
        if !engine.network_exists(name).await? {
            engine.create_network(name, labels(&[])).await?;
        }
    }
    for name in &volumes {
        engine.create_volume(name, labels(&[])).await?;
    }
    Ok(())
}

fn observed(m: Member) -> Observed {
    Observed {
        running: m.running(),
        id: m.id,
        name: m.name,
        agent: m.agent,
        replica: m.replica,
        config_hash: m.config_hash,
    }
}

async fn remove(shared: Arc<Shared>, action: Action) -> (String, bool) {
    let Action::Remove { existing, reason } = action else {
        unreachable!("only removals are passed here")
    };
    let r = &shared.reporter;
    r.step(&existing.name, Step::Remove);
    match retry(r.as_ref(), &existing.name, || {
        shared.engine.remove_container(&existing.id)
    })
    .await
    {
        Ok(()) => {
            let why = match reason {
                RemoveReason::ScaledDown => "removed (scaled down)",
                RemoveReason::Duplicate => "removed (duplicate replica)",
                RemoveReason::Orphan => "removed (agent no longer declared)",
            };
            r.finished(&existing.name, &Outcome::Done { detail: why.into() });
            (existing.name, true)
        }
        Err(e) => {
            r.finished(&existing.name, &failed(&e.to_string(), None));
            (existing.name, false)
        }
    }
}

fn failed(message: &str, hint: Option<&str>) -> Outcome {
    Outcome::Failed {
        message: message.to_string(),
        hint: hint.map(str::to_string),
    }
}

/// Creates (or recreates, or restarts) one replica and smoke-tests it.
async fn converge(shared: Arc<Shared>, action: Action) -> (String, bool) {
    let (agent, replica, replace, restart) = match action {
        Action::Create { agent, replica } => (agent, replica, None, None),
        Action::Recreate {
            agent,
            replica,
            old,
        } => (agent, replica, Some(old), None),
        Action::Start {
            agent,
            replica,
            existing,
        } => (agent, replica, None, Some(existing)),
        Action::Keep { .. } | Action::Remove { .. } => unreachable!("handled before"),
    };
    let prepared = shared.agents[&agent].clone();
    let name = fleet::container_name(&shared.spec.project, &agent, replica);
    let r = shared.reporter.clone();
    let t0 = Instant::now();
    let id = match restart {
        Some(existing) => match restart_existing(&shared, &prepared, &existing).await {
            Ok(()) => existing.id,
            Err(e) => {
                r.finished(&name, &failed(&format!("{e:#}"), None));
                return (name, false);
            }
        },
        None => {
            if let Some(old) = replace {
                r.step(&name, Step::Remove);
                if let Err(e) = retry(r.as_ref(), &name, || {
                    shared.engine.remove_container(&old.id)
                })
                .await
                {
                    r.finished(&name, &failed(&e.to_string(), None));
                    return (name, false);
                }
            }
            match create_and_start(&shared, &prepared, replica, &name).await {
                Ok(id) => id,
                Err(e) => {
                    r.finished(&name, &failed(&format!("{e:#}"), None));
                    return (name, false);
                }
            }
        }
    };
    let smoke = prepared.agent.smoke.as_ref().filter(|_| shared.smoke);
    let Some(smoke) = smoke else {
        r.finished(
            &name,
            &Outcome::Done {
                detail: format!("running ({:.1}s)", t0.elapsed().as_secs_f64()),
            },
        );
        return (name, true);
    };
    r.step(&name, Step::Smoke);
    let verdict = smoke_test(&shared.engine, &id, &name, smoke, r.as_ref()).await;
    match verdict {
        Verdict::Passed => {
            r.finished(
                &name,
                &Outcome::Done {
                    detail: format!("smoke test passed ({:.1}s)", t0.elapsed().as_secs_f64()),
                },
            );
            (name, true)
        }
        v => {
            let mut message = format!("smoke test failed: {}", v.describe());
            if let Verdict::Failed { last_lines, .. } = &v {
                for line in last_lines {
                    message.push_str("\n    | ");
                    message.push_str(line);
                }
            }
            r.finished(&name, &failed(&message, v.hint()));
            (name, false)
        }
    }
}

/// Create, deliver, start; a container that fails on the way is removed, so nothing is
/// left half made.
async fn create_and_start(
    shared: &Shared,
    prepared: &Prepared,
    replica: u32,
    name: &str,
) -> anyhow::Result<String> {
    let r = shared.reporter.as_ref();
    let engine = &shared.engine;
    r.step(name, Step::Create);
    let config = fleet::container_config(&shared.spec, &prepared.agent, replica, &prepared.hash);
    let id = create(engine, r, name, config, &prepared.hash).await?;
    let result = async {
        r.step(name, Step::Credentials);
        let layout = layout_for(shared, prepared, &id).await?;
        retry(r, name, || {
            deliver::deliver(
                engine,
                &id,
                layout,
                Some(&shared.credentials),
                &prepared.files,
            )
        })
        .await
        .context("delivering credentials")?;
        r.step(name, Step::Start);
        retry(r, name, || engine.start_container(&id)).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = result {
        let _ = engine.remove_container(&id).await;
        return Err(e);
    }
    Ok(id)
}

/// Creates the container; when a retried create finds its name taken by a container it
/// made itself (same labels), that one is used instead of failing.
async fn create(
    engine: &Engine,
    r: &dyn Reporter,
    name: &str,
    config: crate::engine::ContainerConfig,
    hash: &str,
) -> anyhow::Result<String> {
    let mut attempt = 0;
    loop {
        match engine.create_container(name, config.clone()).await {
            Ok(id) => return Ok(id),
            Err(e) if e.is_conflict() && attempt > 0 => {
                let existing = engine.inspect_container(name).await?;
                let labels = existing.config.and_then(|c| c.labels).unwrap_or_default();
                if labels.get(label::CONFIG_HASH).map(String::as_str) == Some(hash) {
                    return Ok(existing.id.unwrap_or_default());
                }
                return Err(e.into());
            }
            Err(e) if e.is_conflict() => {
                bail!("{e}\n  hint: a container named {name} exists but is not this project's: remove or rename it")
            }
            Err(e) if e.is_transient() && attempt < RETRIES => {
                attempt += 1;
                r.step(name, Step::Retry);
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn layout_for<'a>(
    shared: &Shared,
    prepared: &'a Prepared,
    id: &str,
) -> anyhow::Result<&'a Layout> {
    let targets: Vec<String> = prepared.files.iter().map(|f| f.target.clone()).collect();
    prepared
        .layout
        .get_or_try_init(|| async {
            deliver::probe(
                &shared.engine,
                id,
                prepared.user.as_deref(),
                &prepared.env,
                &targets,
            )
            .await
            .with_context(|| format!("agent `{}`", prepared.agent.name))
        })
        .await
}

async fn restart_existing(
    shared: &Shared,
    prepared: &Prepared,
    existing: &Observed,
) -> anyhow::Result<()> {
    let r = shared.reporter.as_ref();
    r.step(&existing.name, Step::Credentials);
    let layout = layout_for(shared, prepared, &existing.id).await?;
    retry(r, &existing.name, || {
        deliver::deliver(
            &shared.engine,
            &existing.id,
            layout,
            Some(&shared.credentials),
            &prepared.files,
        )
    })
    .await?;
    r.step(&existing.name, Step::Start);
    retry(r, &existing.name, || {
        shared.engine.start_container(&existing.id)
    })
    .await?;
    Ok(())
}

/// Runs `claude -p PROMPT --max-turns N` as the container's user and classifies the result.
pub async fn smoke_test(
    engine: &Engine,
    id: &str,
    name: &str,
    smoke: &crate::config::SmokeSpec,
    r: &dyn Reporter,
) -> Verdict {
    let argv = vec![
        "claude".to_string(),
        "-p".to_string(),
        smoke.prompt.clone(),
        "--max-turns".to_string(),
        smoke.max_turns.to_string(),
    ];
    let mut lines = Lines::default();
    let result = run::run(engine, id, argv, None, Some(smoke.timeout), |chunk| {
        let (Output::Stdout(b) | Output::Stderr(b)) = chunk;
        lines.push(b, |l| r.output(name, l));
    })
    .await;
    lines.finish(|l| r.output(name, l));
    match result {
        Ok(run::Finished { exit_code: Some(code), tail }) => smoke::classify(code, &tail),
        Ok(run::Finished { exit_code: None, .. }) => Verdict::TimedOut {
            secs: smoke.timeout.as_secs(),
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
    }
}

const RETRIES: u32 = 4;

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(150 * 2u64.pow(attempt.min(6)))
}

/// Retries an engine operation on transient failures (5xx, dropped connections).
pub async fn retry<T, E, F, Fut>(r: &dyn Reporter, name: &str, mut op: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Transient,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.transient() && attempt < RETRIES => {
                attempt += 1;
                r.step(name, Step::Retry);
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// Errors that may clear on a retry.
pub trait Transient {
    fn transient(&self) -> bool;
}

impl Transient for EngineError {
    fn transient(&self) -> bool {
        self.is_transient()
    }
}

impl Transient for deliver::DeliverError {
    fn transient(&self) -> bool {
        matches!(self, Self::Engine(e) if e.is_transient())
    }
}
