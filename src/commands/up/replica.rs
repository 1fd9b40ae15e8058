//! One replica's way to running: create, deliver what its role gets, start, smoke-test;
//! removed again if it fails before it starts.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};

use super::{failed, Prepared, Shared, Status};
use crate::commands::stop_start::{deliver_then_start, Delivery};
use crate::credentials::deliver::{self, Layout, Payload};
use crate::credentials::holder::Holder;
use crate::credentials::login::Login;
use crate::credentials::{sync, Role};
use crate::engine::retry::retry;

use crate::engine::Engine;
use crate::fleet::Member;
use crate::fleet::{self, label};
use crate::plan::Work;
use crate::report::{Outcome, Reporter, Step};
use crate::secret::Secret;
use crate::smoke::{self, Verdict};

/// What happens to a container before its smoke test.
enum Before {
    Make {
        replace: Option<Member>,
    },
    Restart(Member),
    /// Running and up to date: only the smoke test again.
    Nothing(Member),
}

/// Creates (or recreates, or restarts) one replica and smoke-tests it.
pub(super) async fn converge(shared: Arc<Shared>, work: Work) -> (String, Status) {
    let (agent, replica, role, before) = match work {
        Work::Create {
            agent,
            replica,
            role,
        } => (agent, replica, role, Before::Make { replace: None }),
        Work::Recreate {
            agent,
            replica,
            old,
            role,
        } => (agent, replica, role, Before::Make { replace: Some(old) }),
        Work::Start {
            agent,
            replica,
            existing,
        } => (agent, replica, existing.role, Before::Restart(existing)),
        Work::Retest {
            agent,
            replica,
            existing,
        } => (agent, replica, existing.role, Before::Nothing(existing)),
    };
    let prepared = shared.agents[&agent].clone();
    let name = fleet::container_name(&shared.spec.project, &agent, replica);
    let r = shared.reporter.clone();
    if shared.interrupt.is_set() {
        return (name, Status::NotStarted);
    }
    let t0 = Instant::now();
    let id = match before {
        Before::Nothing(existing) => existing.id,
        Before::Restart(existing) => match restart_existing(&shared, &prepared, &existing).await {
            Ok(()) => existing.id,
            Err(e) => {
                r.finished(&name, &failed(&format!("{e:#}"), None));
                return (name, Status::Failed);
            }
        },
        Before::Make { replace } => {
            if let Some(old) = replace {
                r.step(&name, Step::Remove);
                if let Err(e) = retry(
                    |_| r.as_ref().step(&name, Step::Retry),
                    || shared.engine.remove_container(&old.id),
                )
                .await
                {
                    r.finished(&name, &failed(&e.to_string(), None));
                    return (name, Status::Failed);
                }
            }
            match create_and_start(&shared, &prepared, replica, role, &name).await {
                Ok(id) => id,
                // Removed again: as if never begun, and listed so in the summary.
                Err(e) if e.is::<InterruptedBeforeStart>() => {
                    r.finished(&name, &failed(&e.to_string(), None));
                    return (name, Status::NotStarted);
                }
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
        v = smoke::smoke_test(&shared.engine, &id, &name, smoke, r.as_ref()) => v,
        () = shared.interrupt.wait() => {
            r.finished(&name, &failed("interrupted during the smoke test: the container runs, with its credentials, untested", None));
            return (name, Status::Failed);
        }
    };
    // Kept in the container, so the next `up` tests again what did not pass.
    if let Err(e) = smoke::record::write(
        &shared.engine,
        &id,
        &verdict,
        &smoke::record::spec_hash(smoke),
    )
    .await
    {
        r.warn(&format!("{name}: the smoke verdict could not be kept: {e}"));
    }
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
pub(super) fn role_note(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader, ",
        Role::Follower | Role::Shared => "",
    }
}

/// The interrupt came after create and before start: the container was removed.
#[derive(Debug, thiserror::Error)]
#[error("interrupted before start: the container was removed")]
struct InterruptedBeforeStart;

/// Create, deliver, start; a container that fails on the way is removed, so nothing is
/// left half made.
pub(super) async fn create_and_start(
    shared: &Shared,
    prepared: &Prepared,
    replica: u32,
    role: Role,
    name: &str,
) -> anyhow::Result<String> {
    let r = shared.reporter.as_ref();
    let engine = &shared.engine;
    r.step(name, Step::Create);
    let mut config =
        fleet::container_config(&shared.spec, &prepared.agent, replica, &prepared.hash, role);
    if let Some(id) = shared.networks.get(&config.network) {
        config.network.clone_from(id);
    }
    let id = create(
        engine,
        r,
        name,
        config,
        &shared.spec.project,
        &prepared.hash,
    )
    .await?;
    let result = async {
        r.step(name, Step::Credentials);
        let layout = layout_for(shared, prepared, &id, name).await?;
        let (creds, files) = payload(shared, prepared, layout, role);
        retry(
            |_| r.step(name, Step::Retry),
            || deliver::deliver(engine, &id, layout, creds.as_ref(), &files),
        )
        .await
        .context("delivering credentials")?;
        if shared.interrupt.is_set() {
            return Err(InterruptedBeforeStart.into());
        }
        r.step(name, Step::Start);
        retry(
            |_| r.step(name, Step::Retry),
            || engine.start_container(&id),
        )
        .await?;
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
pub(super) fn payload(
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

/// Creates the container. Its name taken means another create got there first: this
/// create's own earlier try whose answer was lost, or a racing `claunch up` of the same
/// project. Then the container found is looked at rather than failing: the same project
/// and config make it the one to use.
pub(super) async fn create(
    engine: &Engine,
    r: &dyn Reporter,
    name: &str,
    config: crate::engine::ContainerConfig,
    project: &str,
    hash: &str,
) -> anyhow::Result<String> {
    let created = retry(
        |_| r.step(name, Step::Retry),
        || engine.create_container(name, config.clone()),
    )
    .await;
    match created {
        Ok(id) => Ok(id),
        Err(e) if e.is_conflict() => {
            let existing = engine.inspect_container(name).await?;
            let label = |key: &str| existing.labels.get(key).map(String::as_str);
            if label(label::PROJECT) != Some(project) {
                bail!("{e}\n  hint: a container named {name} exists but is not this project's: remove or rename it")
            }
            if label(label::CONFIG_HASH) != Some(hash) {
                bail!("{e}\n  hint: another `claunch up` of this project made {name} from another config at the same time: run `claunch up` again once it has finished")
            }
            Ok(existing.id)
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn layout_for<'a>(
    shared: &Shared,
    prepared: &'a Prepared,
    id: &str,
    name: &str,
) -> anyhow::Result<&'a Layout> {
    let targets: Vec<String> = prepared.files.iter().map(|f| f.target.clone()).collect();
    prepared
        .layout
        .get_or_try_init(|| async {
            // Reads only: as safe to retry as any other step.
            retry(
                |_| shared.reporter.as_ref().step(name, Step::Retry),
                || {
                    deliver::probe(
                        &shared.engine,
                        id,
                        prepared.user.as_deref(),
                        &prepared.env,
                        &targets,
                        prepared.needs,
                    )
                },
            )
            .await
            .with_context(|| format!("agent `{}`", prepared.agent.name))
        })
        .await
}

/// A stopped leader may hold a login newer than the source (its claude refreshed before it
/// stopped, and no sync ran since): its refresh token is then the only valid one. Take it
/// back to the source first, so that what is delivered is never older than what it holds.
async fn adopt_stopped_leaders_login(
    shared: &Shared,
    existing: &Member,
    layout: &crate::credentials::deliver::Layout,
) -> anyhow::Result<()> {
    let current = match &*shared.login.read().expect("login lock") {
        Login::Rotating(c) => c.clone(),
        _ => return Ok(()),
    };
    let holder = Holder {
        id: existing.id.clone(),
        name: existing.name.clone(),
        layout: layout.clone(),
    };
    let newest = sync::adopt_from_leader(
        &shared.engine,
        &shared.spec,
        &current,
        &holder,
        shared.reporter.as_ref(),
    )
    .await?;
    *shared.login.write().expect("login lock") = Login::Rotating(newest);
    Ok(())
}

pub(super) async fn restart_existing(
    shared: &Shared,
    prepared: &Prepared,
    existing: &Member,
) -> anyhow::Result<()> {
    let layout = layout_for(shared, prepared, &existing.id, &existing.name).await?;
    if existing.role == Role::Leader {
        adopt_stopped_leaders_login(shared, existing, layout).await?;
    }
    let (creds, files) = payload(shared, prepared, layout, existing.role);
    let delivery = Delivery {
        layout,
        credentials: creds.as_ref(),
        files: &files,
    };
    let r = shared.reporter.as_ref();
    deliver_then_start(
        &shared.engine,
        r,
        &existing.name,
        &existing.id,
        Some(delivery),
    )
    .await
}
