//! `claunch up`: converge the fleet. Plan in plain data, then create, deliver credentials,
//! start and smoke-test each replica, several at a time, reporting as it goes.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::stream::{self, StreamExt};
use tokio::sync::OnceCell;

use super::{members, Global, Member};
use crate::config::{AgentSpec, CredentialsSpec, Spec};
use crate::credentials;
use crate::deliver::{self, Layout, Payload};
use crate::engine::{Engine, EngineError, Output};
use crate::fleet::{self, label};
use crate::interrupt::Interrupt;
use crate::login::Login;
use crate::plan::Role;
use crate::plan::{self, Action, Desired, Observed, RemoveReason};
use crate::report::{Outcome, Reporter, Step};
use crate::run::{self, Lines};
use crate::secret::Secret;
use crate::smoke::{self, Verdict};
use crate::source;
use crate::sync;

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub agents: Vec<String>,
    pub scale: Vec<String>,
    pub no_smoke: bool,
    pub parallel: usize,
    pub force_recreate: bool,
    pub remove_orphans: bool,
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
    smoke: bool,
    interrupt: Arc<Interrupt>,
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
    let login = source::fetch(&spec, reporter.as_ref()).await?;
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

    ensure_networks_and_volumes(&engine, &spec, agents.values().map(|p| &p.agent)).await?;

    let shared = Arc::new(Shared {
        engine,
        spec,
        reporter: reporter.clone(),
        login: RwLock::new(login),
        agents,
        smoke: !options.no_smoke,
        interrupt: Interrupt::listen(),
    });

    let (removals, work): (Vec<Action>, Vec<Action>) = plan
        .actions
        .into_iter()
        .partition(|a| matches!(a, Action::Remove { .. }));
    let parallel = options.parallel.max(1);
    let mut results: Vec<(String, Status)> = stream::iter(removals)
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
            results.push((existing.name.clone(), Status::Done));
        } else {
            tasks.push(action);
        }
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
    let summary = format!(
        "{} containers: {} changed, {} up to date, {} failed ({:.1}s)",
        shared.spec.project,
        count(Status::Done),
        kept,
        count(Status::Failed),
        started.elapsed().as_secs_f64()
    );
    reporter.info(&summary);
    if shared.interrupt.is_set() {
        reporter.info(&format!(
            "interrupted: {} not started ({}); every running container has its credentials; run `claunch up` again to finish",
            not_started.len(),
            if not_started.is_empty() { "none".to_string() } else { not_started.join(", ") }
        ));
        return Ok(130);
    }
    results.extend(changed.iter().cloned());
    Ok(i32::from(results.iter().any(|(_, s)| *s != Status::Done)))
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

async fn prepare(
    engine: &Engine,
    spec: &Spec,
    agent: AgentSpec,
    login: &Login,
) -> anyhow::Result<Prepared> {
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
        hash: fleet::config_hash(&agent, &image_id, login.mode()),
        needs: deliver::Needs {
            onboarding: agent.onboarding,
            settings: matches!(login, Login::ApiKey(_)),
        },
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
    let CredentialsSpec::File(creds) = &spec.credentials else {
        return Ok(());
    };
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
        role: m.role,
        running: m.running(),
        id: m.id,
        name: m.name,
        agent: m.agent,
        replica: m.replica,
        config_hash: m.config_hash,
    }
}

async fn remove(shared: Arc<Shared>, action: Action) -> (String, Status) {
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
            (existing.name, Status::Done)
        }
        Err(e) => {
            r.finished(&existing.name, &failed(&e.to_string(), None));
            (existing.name, Status::Failed)
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
async fn converge(shared: Arc<Shared>, action: Action) -> (String, Status) {
    let (agent, replica, role, replace, restart) = match action {
        Action::Create {
            agent,
            replica,
            role,
        } => (agent, replica, role, None, None),
        Action::Recreate {
            agent,
            replica,
            old,
            role,
        } => (agent, replica, role, Some(old), None),
        Action::Start {
            agent,
            replica,
            existing,
        } => (agent, replica, existing.role, None, Some(existing)),
        Action::Keep { .. } | Action::Remove { .. } => unreachable!("handled before"),
    };
    let prepared = shared.agents[&agent].clone();
    let name = fleet::container_name(&shared.spec.project, &agent, replica);
    let r = shared.reporter.clone();
    if shared.interrupt.is_set() {
        return (name, Status::NotStarted);
    }
    let t0 = Instant::now();
    let id = match restart {
        Some(existing) => match restart_existing(&shared, &prepared, &existing).await {
            Ok(()) => existing.id,
            Err(e) => {
                r.finished(&name, &failed(&format!("{e:#}"), None));
                return (name, Status::Failed);
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
                    return (name, Status::Failed);
                }
            }
            match create_and_start(&shared, &prepared, replica, role, &name).await {
                Ok(id) => id,
                Err(e) => {
                    r.finished(&name, &failed(&format!("{e:#}"), None));
                    return (name, Status::Failed);
                }
            }
        }
    };
    let smoke = prepared.agent.smoke.as_ref().filter(|_| shared.smoke);
    let Some(smoke) = smoke else {
        r.finished(
            &name,
            &Outcome::Done {
                detail: format!(
                    "running ({}{:.1}s)",
                    role_note(role),
                    t0.elapsed().as_secs_f64()
                ),
            },
        );
        return (name, Status::Done);
    };
    r.step(&name, Step::Smoke);
    let verdict = tokio::select! {
        v = smoke_test(&shared.engine, &id, &name, smoke, r.as_ref()) => v,
        () = shared.interrupt.wait() => {
            r.finished(&name, &failed("interrupted during the smoke test: the container runs, with its credentials, untested", None));
            return (name, Status::Failed);
        }
    };
    match verdict {
        Verdict::Passed => {
            r.finished(
                &name,
                &Outcome::Done {
                    detail: format!(
                        "smoke test passed ({}{:.1}s)",
                        role_note(role),
                        t0.elapsed().as_secs_f64()
                    ),
                },
            );
            (name, Status::Done)
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
            (name, Status::Failed)
        }
    }
}

/// Says which container holds the login's refresh token.
fn role_note(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader, ",
        Role::Follower | Role::Shared => "",
    }
}

/// Create, deliver, start; a container that fails on the way is removed, so nothing is
/// left half made.
async fn create_and_start(
    shared: &Shared,
    prepared: &Prepared,
    replica: u32,
    role: Role,
    name: &str,
) -> anyhow::Result<String> {
    let r = shared.reporter.as_ref();
    let engine = &shared.engine;
    r.step(name, Step::Create);
    let config =
        fleet::container_config(&shared.spec, &prepared.agent, replica, &prepared.hash, role);
    let id = create(engine, r, name, config, &prepared.hash).await?;
    let result = async {
        r.step(name, Step::Credentials);
        let layout = layout_for(shared, prepared, &id).await?;
        let (creds, files) = payload(shared, prepared, layout, role);
        retry(r, name, || {
            deliver::deliver(engine, &id, layout, creds.as_ref(), &files)
        })
        .await
        .context("delivering credentials")?;
        if shared.interrupt.is_set() {
            bail!("interrupted before start: the container was removed");
        }
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

/// What a container with `role` gets: its credentials file, then the login's other files
/// (an API key and its settings), `~/.claude.json` for `onboarding`, and the agent's
/// `files:`.
fn payload(
    shared: &Shared,
    prepared: &Prepared,
    layout: &Layout,
    role: Role,
) -> (Option<Secret>, Vec<Payload>) {
    let login = shared.login.read().expect("login lock");
    let creds = login.credentials_file(role);
    let id = &layout.identity;
    let mut files = login.extra_files(&id.config_dir, layout.settings.as_deref());
    if prepared.agent.onboarding && !layout.claude_json_exists {
        files.push(Payload {
            target: id.claude_json_path(),
            mode: 0o600,
            contents: Secret::from("{\"hasCompletedOnboarding\": true}\n".to_string()),
        });
    }
    files.extend(prepared.files.iter().cloned());
    (creds, files)
}

/// With a rotating login close to expiry, the leader goes first: its claude refreshes the
/// login, claunch writes the new one back to the source, and only then are followers
/// given the new access token. A leader that already runs is made to refresh.
async fn leader_first(
    shared: &Arc<Shared>,
    tasks: &mut Vec<Action>,
    observed: &[Observed],
) -> Vec<(String, Status)> {
    let current = {
        let login = shared.login.read().expect("login lock");
        match &*login {
            Login::Rotating(c) => c.clone(),
            _ => return Vec::new(),
        }
    };
    let near = near_expiry(&current);
    if !near {
        return Vec::new();
    }
    let r = shared.reporter.as_ref();
    let is_leader = |a: &Action| {
        matches!(
            a,
            Action::Create {
                role: Role::Leader,
                ..
            } | Action::Recreate {
                role: Role::Leader,
                ..
            }
        ) || matches!(a, Action::Start { existing, .. } if existing.role == Role::Leader)
    };
    let mut results = Vec::new();
    let (agent, name, id) = if let Some(i) = tasks.iter().position(is_leader) {
        let action = tasks.remove(i);
        r.info("the login's access token is expired or about to be: starting the leader first so it refreshes");
        let (agent, replica) = match &action {
            Action::Create { agent, replica, .. }
            | Action::Recreate { agent, replica, .. }
            | Action::Start { agent, replica, .. } => (agent.clone(), *replica),
            _ => unreachable!("a leader action"),
        };
        let result = converge(shared.clone(), action).await;
        let ok = result.1 == Status::Done;
        results.push(result);
        if !ok {
            return results;
        }
        let name = fleet::container_name(&shared.spec.project, &agent, replica);
        (agent, name.clone(), name)
    } else if let Some(o) = observed
        .iter()
        .find(|o| o.role == Role::Leader && o.running)
    {
        if !shared.agents.contains_key(&o.agent) {
            return results;
        }
        (o.agent.clone(), o.name.clone(), o.id.clone())
    } else {
        return results;
    };
    let prepared = shared.agents[&agent].clone();
    let Ok(layout) = layout_for(shared, &prepared, &id).await else {
        return results;
    };
    let holder = sync::Holder {
        id,
        name,
        layout: layout.clone(),
    };
    let source = &shared.spec;
    let mut newest = sync::adopt_from_leader(&shared.engine, source, &current, &holder, r).await;
    if let Ok(c) = &newest {
        if near_expiry(c) {
            let timeout = prepared
                .agent
                .smoke
                .as_ref()
                .map_or(Duration::from_secs(120), |s| s.timeout);
            newest = match sync::make_leader_refresh(&shared.engine, c, &holder, timeout, r).await {
                Ok(()) => sync::adopt_from_leader(&shared.engine, source, c, &holder, r).await,
                Err(e) => Err(e),
            };
        }
    }
    match newest {
        Ok(c) => *shared.login.write().expect("login lock") = Login::Rotating(c),
        Err(e) => r.warn(&format!(
            "could not take the refreshed login from the leader: {e:#}"
        )),
    }
    results
}

fn near_expiry(c: &credentials::Credentials) -> bool {
    let within = i64::try_from(LEADER_FIRST_WITHIN.as_millis()).unwrap_or(i64::MAX);
    c.summary
        .expires_in_ms(credentials::now_ms())
        .is_none_or(|ms| ms < within)
}

/// How close to expiry a login must be for `up` to start its leader before the others.
const LEADER_FIRST_WITHIN: Duration = Duration::from_secs(30 * 60);

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
                prepared.needs,
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
    let (creds, files) = payload(shared, prepared, layout, existing.role);
    retry(r, &existing.name, || {
        deliver::deliver(&shared.engine, &existing.id, layout, creds.as_ref(), &files)
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
