//! `claunch stop`, `start` and `restart`, as compose has them. Before a container's
//! command starts again it is given the login in force: a container stopped for a while
//! may hold an access token that has expired since.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use futures::stream::{self, StreamExt};

use super::creds::{adopt_newest, gather, Held};
use super::{members, select_many, ExitStatus, Global, Member};
use crate::credentials::deliver::{self, Layout, Payload};
use crate::credentials::login::Login;
use crate::credentials::{sources, Role};
use crate::engine::retry::retry;
use crate::engine::Engine;
use crate::report::{Outcome, Reporter, Step};
use crate::secret::Secret;

/// How long a container's command has to exit after SIGTERM before it is killed, as in
/// compose.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What goes into a stopped container before it starts again.
pub(crate) struct Delivery<'a> {
    pub(crate) layout: &'a Layout,
    pub(crate) credentials: Option<&'a Secret>,
    pub(crate) files: &'a [Payload],
}

/// Delivers `delivery` (what the container's role gets of the login in force), then
/// starts the container, retrying passing engine errors: the one way a stopped container
/// is started again, by `up` and by `start`/`restart`.
pub(crate) async fn deliver_then_start(
    engine: &Engine,
    r: &dyn Reporter,
    name: &str,
    id: &str,
    delivery: Option<Delivery<'_>>,
) -> anyhow::Result<()> {
    if let Some(d) = delivery {
        r.step(name, Step::Credentials);
        retry(
            |_| r.step(name, Step::Retry),
            || deliver::deliver(engine, id, d.layout, d.credentials, d.files),
        )
        .await?;
    }
    r.step(name, Step::Start);
    retry(|_| r.step(name, Step::Retry), || engine.start_container(id)).await?;
    Ok(())
}

fn failed(message: String) -> Outcome {
    Outcome::Failed {
        message,
        hint: None,
    }
}

fn done(detail: &str) -> Outcome {
    Outcome::Done {
        detail: detail.to_string(),
    }
}

/// Stops one running container; says so only when it fails.
async fn stop_one(engine: &Engine, m: &Member, r: &dyn Reporter) -> bool {
    r.step(&m.name, Step::Stop);
    match retry(
        |_| r.step(&m.name, Step::Retry),
        || engine.stop_container(&m.id, STOP_GRACE),
    )
    .await
    {
        Ok(()) => true,
        Err(e) => {
            r.finished(&m.name, &failed(e.to_string()));
            false
        }
    }
}

/// Stops the running ones of `chosen`, `parallel` at a time; returns those it stopped.
async fn stop_running(
    engine: &Engine,
    chosen: &[Member],
    parallel: usize,
    r: &dyn Reporter,
) -> (Vec<Member>, usize) {
    let results: Vec<(&Member, bool)> = stream::iter(chosen.iter().filter(|m| m.running()))
        .map(|m| async move { (m, stop_one(engine, m, r).await) })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let failures = results.iter().filter(|(_, ok)| !ok).count();
    let stopped = results
        .into_iter()
        .filter(|(_, ok)| *ok)
        .map(|(m, _)| m.clone())
        .collect();
    (stopped, failures)
}

pub async fn stop(
    global: &Global,
    targets: &[String],
    r: Arc<dyn Reporter>,
) -> anyhow::Result<ExitStatus> {
    let project = super::project_name(global)?;
    let engine = super::connect(global).await?;
    let all = members(&engine, &project).await?;
    let chosen = select_many(&project, &all, targets)?;
    let (stopped, failures) = stop_running(&engine, &chosen, global.parallel, r.as_ref()).await;
    for m in &chosen {
        if stopped.iter().any(|s| s.id == m.id) {
            r.finished(&m.name, &done("stopped"));
        } else if !m.running() {
            r.finished(&m.name, &done("already stopped"));
        }
    }
    r.info(&format!(
        "{project}: {} stopped, {} already stopped, {failures} failed",
        stopped.len(),
        chosen.iter().filter(|m| !m.running()).count(),
    ));
    Ok(ExitStatus::failed_if(failures > 0))
}

/// `start` (`restart: false`) starts the stopped ones of the TARGETs; `restart` stops
/// the running ones first, then starts them all. Each gets the login in force first.
pub async fn start(
    global: &Global,
    targets: &[String],
    restart: bool,
    r: Arc<dyn Reporter>,
) -> anyhow::Result<ExitStatus> {
    let r = r.as_ref();
    let spec = super::load_spec(global)?;
    // The source first: a login that cannot be read stops everything before any container
    // is touched.
    let login = sources::fetch(&spec, r).await?;
    let engine = super::connect(global).await?;
    let all = members(&engine, &spec.project).await?;
    let chosen = select_many(&spec.project, &all, targets)?;
    if chosen.is_empty() {
        bail!(
            "project `{}` has no containers to start\n  hint: `claunch up` creates them",
            spec.project
        );
    }
    let (to_start, mut failures) = if restart {
        let (stopped, failures) = stop_running(&engine, &chosen, global.parallel, r).await;
        let to_start = chosen
            .iter()
            .filter(|m| !m.running() || stopped.iter().any(|s| s.id == m.id))
            .cloned()
            .collect();
        (to_start, failures)
    } else {
        for m in chosen.iter().filter(|m| m.running()) {
            r.finished(&m.name, &done("already running"));
        }
        let to_start: Vec<Member> = chosen.iter().filter(|m| !m.running()).cloned().collect();
        (to_start, 0)
    };
    // Those starting, and the leader to take a newer login from. Read now, after the stop:
    // a stopped leader can no longer refresh, so its file is the newest copy of a rotating
    // login, whether or not it is among those starting.
    let look: Vec<Member> = all
        .iter()
        .filter(|m| m.role == Role::Leader || to_start.iter().any(|s| s.id == m.id))
        .cloned()
        .collect();
    let mut held = Vec::new();
    let mut unreadable = Vec::new();
    for h in gather(&engine, look, global.parallel).await {
        match h {
            Ok(h) => held.push(h),
            Err((name, why)) => unreadable.push((name, why)),
        }
    }
    let login = match adopt_newest(&engine, &spec, login, &held, r).await {
        Ok(login) => Some(login),
        Err(e) => {
            r.warn(&format!(
                "{e:#}: starting without delivering the login, so that no container loses a newer one\n  hint: `claunch creds sync` brings them up to date once this is fixed"
            ));
            None
        }
    };
    let results: Vec<bool> = stream::iter(&to_start)
        .map(|m| {
            let (engine, held, unreadable, login) = (&engine, &held, &unreadable, &login);
            async move {
                let result = start_one(engine, m, held, unreadable, login.as_ref(), r).await;
                match result {
                    Ok(()) => {
                        let verb = if restart { "restarted" } else { "started" };
                        let role = if m.role == Role::Leader {
                            " (leader)"
                        } else {
                            ""
                        };
                        r.finished(&m.name, &done(&format!("{verb}{role}")));
                        true
                    }
                    Err(e) => {
                        r.finished(&m.name, &failed(format!("{e:#}")));
                        false
                    }
                }
            }
        })
        .buffer_unordered(global.parallel)
        .collect()
        .await;
    let started = results.iter().filter(|ok| **ok).count();
    failures += results.len() - started;
    r.info(&format!(
        "{}: {started} {}, {failures} failed",
        spec.project,
        if restart { "restarted" } else { "started" },
    ));
    Ok(ExitStatus::failed_if(failures > 0))
}

/// Gives one container what its role gets of `login` (nothing when `None`), then starts it.
async fn start_one(
    engine: &Engine,
    m: &Member,
    held: &[Held],
    unreadable: &[(String, String)],
    login: Option<&Login>,
    r: &dyn Reporter,
) -> anyhow::Result<()> {
    let Some(credentials) = login.and_then(|l| l.credentials_file(m.role)) else {
        // An API key does not expire and its files are there since `up`; with no login
        // to trust (`None`), each keeps the one it has.
        return deliver_then_start(engine, r, &m.name, &m.id, None).await;
    };
    let Some(h) = held.iter().find(|h| h.holder.id == m.id) else {
        let why = unreadable
            .iter()
            .find(|(name, _)| *name == m.name)
            .map_or("not found", |(_, why)| why.as_str());
        bail!("cannot deliver the login, so it was left stopped: {why}");
    };
    let delivery = Delivery {
        layout: &h.holder.layout,
        credentials: Some(&credentials),
        files: &[],
    };
    deliver_then_start(engine, r, &m.name, &m.id, Some(delivery)).await
}
