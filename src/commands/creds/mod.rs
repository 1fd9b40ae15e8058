//! `claunch creds sync|push|status`: keep a fleet's login alive without restarts, and tell
//! monitoring what will break and when.

use crate::commands::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use futures::stream::{self, StreamExt};
use serde::Serialize;

pub mod export;

use super::{members, Global, Member};
use crate::config::Spec;
use crate::credentials::holder::{Held as FileHeld, Holder, Probes};
use crate::credentials::login::Login;
use crate::credentials::sources;
use crate::credentials::watcher::{self, Watching};
use crate::credentials::Role;
use crate::credentials::{self, family, Credentials, Summary, DEFAULT_LOGIN as LOGIN};
use crate::engine::Engine;
use crate::metrics::RefreshFailure;
use crate::report::{Outcome, Reporter, Step};

/// A container with what it holds.
pub(crate) struct Held {
    pub(crate) holder: Holder,
    pub(crate) role: Role,
    /// Its credentials file, parsed; `Err` says why not (missing, invalid…).
    file: Result<Credentials, String>,
}

/// Looks into each container of `list` (stopped ones too: the archive API reads them):
/// where its credentials live and what its file holds; `Err` is (name, why not).
pub(crate) async fn gather(
    engine: &Engine,
    list: Vec<Member>,
    parallel: usize,
) -> Vec<Result<Held, (String, String)>> {
    let probes = Probes::default();
    stream::iter(list)
        .map(|m| {
            let probes = &probes;
            async move {
                let (holder, _) = Holder::look(engine, &m.id, &m.name, probes)
                    .await
                    .map_err(|e| (m.name.clone(), e.to_string()))?;
                let file = match holder.read_credentials(engine).await {
                    FileHeld::Valid(c) => Ok(c),
                    FileHeld::Missing => Err("no credentials file".to_string()),
                    FileHeld::Invalid(e) => Err(e.to_string()),
                    FileHeld::Unreadable(e) => Err(e.to_string()),
                };
                Ok(Held {
                    holder,
                    role: m.role,
                    file,
                })
            }
        })
        .buffered(parallel)
        .collect()
        .await
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub watch: bool,
    pub ahead: Duration,
    pub interval: Duration,
    /// With `watch`: where to serve `GET /metrics` (`--metrics ADDR`).
    pub metrics: Option<String>,
}

/// One pass: adopt the leader's newer login, write it back, bring every container up to
/// date. Returns the login now in force and whether anything failed.
async fn sync_once(
    engine: &Engine,
    spec: &Spec,
    login_name: &str,
    only: Option<&str>,
    parallel: usize,
    r: &dyn Reporter,
) -> anyhow::Result<(Login, bool)> {
    let login = sources::fetch(spec, r).await?;
    let all = members(engine, &spec.project).await?;
    let chosen: Vec<Member> = match only {
        Some(t) => super::select(&spec.project, &all, t)?
            .into_iter()
            .cloned()
            .collect(),
        None => all.clone(),
    };
    let held = gather(engine, running(all.clone()), parallel).await;
    let mut ok = true;
    for failure in held.iter().filter_map(|h| h.as_ref().err()) {
        r.warn(&format!("{}: {}", failure.0, failure.1));
        ok = false;
    }
    let held: Vec<Held> = held.into_iter().filter_map(Result::ok).collect();
    let before = super::metrics::rotating_fingerprint(&login);
    let login = adopt_newest(engine, spec, login, &held, r).await?;
    super::metrics::record_login(login_name, before.as_deref(), &login, &all);
    let mut writes = Vec::new();
    for h in held
        .iter()
        .filter(|h| chosen.iter().any(|m| m.id == h.holder.id))
    {
        let Some(want) = login.credentials_file(h.role) else {
            continue;
        };
        let want = Credentials::parse(want).map_err(|e| anyhow::anyhow!("{e}"))?;
        if is_current(&h.file, &want) {
            r.finished(
                &h.holder.name,
                &Outcome::Done {
                    detail: "up to date".into(),
                },
            );
            continue;
        }
        writes.push((h, want));
    }
    // One archive upload per container, 8 at a time as in `up`.
    let written: Vec<bool> = stream::iter(writes)
        .map(|(h, want)| async move {
            r.step(&h.holder.name, Step::Credentials);
            match h.holder.write(engine, want.raw()).await {
                Ok(()) => {
                    r.finished(
                        &h.holder.name,
                        &Outcome::Done {
                            detail: format!("updated ({})", h.role.as_str()),
                        },
                    );
                    true
                }
                Err(e) => {
                    r.finished(
                        &h.holder.name,
                        &Outcome::Failed {
                            message: e.to_string(),
                            hint: None,
                        },
                    );
                    false
                }
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    ok &= written.into_iter().all(|w| w);
    Ok((login, ok))
}

fn running(list: Vec<Member>) -> Vec<Member> {
    list.into_iter().filter(Member::running).collect()
}

/// The login in force: `login` from the source, or for a rotating one the newer login
/// the leader's claude refreshed to, written back to the source first, so a newer login
/// in a container is never replaced by the older one in the source.
pub(crate) async fn adopt_newest(
    engine: &Engine,
    spec: &Spec,
    login: Login,
    held: &[Held],
    r: &dyn Reporter,
) -> anyhow::Result<Login> {
    let Login::Rotating(current) = &login else {
        return Ok(login);
    };
    let leaders: Vec<&Held> = held.iter().filter(|h| h.role == Role::Leader).collect();
    if leaders.len() > 1 {
        r.warn(&format!(
            "{} containers are labelled leader: only one may hold the refresh token; run `claunch up` to fix the roles",
            leaders.len()
        ));
    }
    let Some(leader) = leaders.first() else {
        r.warn("no running leader: nobody can refresh the login; `claunch up` makes one");
        return Ok(login);
    };
    let newest =
        crate::credentials::sync::adopt_from_leader(engine, spec, current, &leader.holder, r)
            .await?;
    Ok(Login::Rotating(newest))
}

/// Whether a container already holds exactly the tokens it should.
fn is_current(have: &Result<Credentials, String>, want: &Credentials) -> bool {
    have.as_ref().is_ok_and(|h| {
        family::access_fingerprint(h) == family::access_fingerprint(want)
            && family::refresh_fingerprint(h) == family::refresh_fingerprint(want)
    })
}

pub async fn sync(
    global: &Global,
    o: SyncOptions,
    r: Arc<dyn Reporter>,
) -> anyhow::Result<ExitStatus> {
    // Before anything else, so that a busy port is said up front.
    if let Some(addr) = super::metrics::serve(o.metrics.as_deref())? {
        r.info(&format!("metrics at http://{addr}/metrics"));
    }
    let spec = super::load_spec(global)?;
    let engine = super::connect(global).await?;
    if !o.watch {
        let (_, ok) = sync_once(&engine, &spec, LOGIN, None, global.parallel, r.as_ref()).await?;
        return Ok(ExitStatus::failed_if(!ok));
    }
    // One watcher per project: two would be two refreshers of one login.
    let _guard = match watcher::acquire(&spec.project)? {
        Ok(guard) => guard,
        Err(pid) => bail!(
            "a `claunch creds sync --watch` already keeps project `{}` logged in{}\n  hint: one watcher per project is enough; stop that one first to start another",
            spec.project,
            pid.map_or_else(String::new, |p| format!(" (pid {p})"))
        ),
    };
    watch_until(
        &engine,
        &spec,
        LOGIN,
        &o,
        global.parallel,
        r.as_ref(),
        shutdown(),
    )
    .await?;
    r.info("interrupted: the fleet's login is as the last sync left it");
    Ok(ExitStatus::Success)
}

/// Keeps the fleet's login alive until `stop` resolves: a sync every `interval`, and when
/// nothing refreshed `ahead` of expiry, the leader made to refresh. What `creds sync
/// --watch` does in the foreground and `claunch run` beside its tasks; the caller holds
/// the project's watcher lock ([`watcher::acquire`]).
pub(crate) async fn watch_until(
    engine: &Engine,
    spec: &Spec,
    login_name: &str,
    o: &SyncOptions,
    parallel: usize,
    r: &dyn Reporter,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut stop = std::pin::pin!(stop);
    loop {
        let (login, _) = match sync_once(engine, spec, login_name, None, parallel, r).await {
            Ok(v) => {
                crate::metrics::fleet().sync_succeeded(credentials::now_ms());
                v
            }
            Err(e) => {
                crate::metrics::fleet().login_refresh_failed(login_name, RefreshFailure::Sync);
                r.warn(&format!(
                    "sync failed: {e:#}; trying again in {:?}",
                    o.interval
                ));
                (sources::fetch(spec, r).await?, false)
            }
        };
        let wait = match &login {
            Login::Rotating(c) => {
                let left = c.summary.expires_in_ms(credentials::now_ms()).unwrap_or(0);
                let ahead = i64::try_from(o.ahead.as_millis()).unwrap_or(i64::MAX);
                if left <= ahead {
                    refresh_now(engine, spec, login_name, c, parallel, r).await;
                    continue_after(o.interval)
                } else {
                    let until_ahead =
                        Duration::from_millis(u64::try_from(left - ahead).unwrap_or(0));
                    until_ahead.min(o.interval)
                }
            }
            _ => o.interval,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut stop => return Ok(()),
        }
    }
}

fn continue_after(interval: Duration) -> Duration {
    interval.min(Duration::from_secs(5))
}

/// Nothing refreshed in time: make the leader refresh, then the next pass spreads it.
async fn refresh_now(
    engine: &Engine,
    spec: &Spec,
    login_name: &str,
    current: &Credentials,
    parallel: usize,
    r: &dyn Reporter,
) {
    let Ok(all) = members(engine, &spec.project).await else {
        return;
    };
    let held = gather(engine, running(all), parallel).await;
    let Some(leader) = held
        .iter()
        .filter_map(|h| h.as_ref().ok())
        .find(|h| h.role == Role::Leader)
    else {
        r.warn("the login is about to expire and no leader runs to refresh it: run `claunch up`");
        crate::metrics::fleet().login_refresh_failed(login_name, RefreshFailure::NoLeader);
        return;
    };
    r.info(&format!(
        "{}: the login expires soon; making the leader refresh it",
        leader.holder.name
    ));
    if let Err(e) = crate::credentials::sync::make_leader_refresh(
        engine,
        current,
        &leader.holder,
        Duration::from_secs(120),
        r,
    )
    .await
    {
        r.warn(&format!("{e:#}"));
        crate::metrics::fleet().login_refresh_failed(login_name, RefreshFailure::RefreshRun);
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

pub async fn push(
    global: &Global,
    target: Option<&str>,
    r: Arc<dyn Reporter>,
) -> anyhow::Result<ExitStatus> {
    let spec = super::load_spec(global)?;
    let engine = super::connect(global).await?;
    if let Some(t) = target {
        let all = members(&engine, &spec.project).await?;
        let chosen = super::select(&spec.project, &all, t)?;
        if chosen.iter().all(|m| !m.running()) {
            bail!("{t}: no running container to push to\n  hint: `claunch up` starts it");
        }
    }
    // A push first adopts what the leader may have refreshed, so a newer login in a
    // container is never replaced by the older one in the source.
    let (_, ok) = sync_once(&engine, &spec, LOGIN, target, global.parallel, r.as_ref()).await?;
    Ok(ExitStatus::failed_if(!ok))
}

#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub json: bool,
    pub warn: Duration,
    pub critical: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Critical,
}

#[derive(Debug, Serialize)]
pub struct Entry {
    /// `source` or a container name.
    pub name: String,
    pub role: String,
    pub level: Level,
    pub message: String,
    pub expires_in_secs: Option<i64>,
    pub summary: Option<Summary>,
}

/// Judges what will actually break, not the raw clock.
pub fn judge(
    name: &str,
    role: Role,
    file: &Result<Credentials, String>,
    leader_running: bool,
    watch: &Watching,
    o: &StatusOptions,
    now_ms: i64,
) -> Entry {
    let mut e = Entry {
        name: name.to_string(),
        role: role.as_str().to_string(),
        level: Level::Ok,
        message: String::new(),
        expires_in_secs: None,
        summary: None,
    };
    let c = match file {
        Ok(c) => c,
        Err(why) => {
            e.level = Level::Critical;
            e.message.clone_from(why);
            return e;
        }
    };
    e.summary = Some(c.summary.clone());
    let left = c.summary.expires_in_ms(now_ms);
    e.expires_in_secs = left.map(|ms| ms / 1000);
    let left_ms = left.unwrap_or(i64::MAX);
    let refreshable = c.summary.has_refresh_token || (role == Role::Follower && leader_running);
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let text = left.map_or_else(|| "no expiry".into(), credentials::describe_remaining);
    if refreshable {
        e.message = if c.summary.has_refresh_token {
            format!("{text}; refreshable")
        } else {
            format!("{text}; from the leader, {}", watch.describe())
        };
        if !c.summary.has_refresh_token && left_ms <= 0 {
            e.level = Level::Critical;
            e.message =
                format!("{text}: `claunch creds sync` has not run since the leader refreshed");
        }
    } else if left_ms <= 0 {
        e.level = Level::Critical;
        e.message = format!("{text} and nobody can refresh it");
    } else if left_ms <= ms(o.critical) {
        e.level = Level::Critical;
        e.message = format!("{text} left and nobody can refresh it");
    } else if left_ms <= ms(o.warn) {
        e.level = Level::Warning;
        e.message = format!("{text} left and nobody can refresh it");
    } else {
        e.message = text;
    }
    e
}

pub async fn status(global: &Global, o: StatusOptions) -> anyhow::Result<ExitStatus> {
    let spec = super::load_spec(global)?;
    let now = credentials::now_ms();
    let quiet = crate::report::PlainReporter;
    let source_file: Result<Credentials, String> = match sources::fetch(&spec, &quiet).await {
        Ok(login) => login
            .credentials()
            .cloned()
            .ok_or_else(|| "an API key: it does not expire".to_string()),
        // The line names the source already: say only what is wrong and the fix.
        Err(e) => Err(e
            .downcast_ref::<sources::SourceError>()
            .map_or_else(|| format!("{e:#}"), sources::SourceError::detail)),
    };
    let engine = super::connect(global).await?;
    let held = gather(
        &engine,
        running(members(&engine, &spec.project).await?),
        global.parallel,
    )
    .await;
    let leader_running = held
        .iter()
        .any(|h| h.as_ref().is_ok_and(|h| h.role == Role::Leader));
    let watch = watcher::watching(&spec.project);
    let mut entries = Vec::new();
    let mut src = judge(
        &format!("source ({})", spec.credentials.describe()),
        Role::Shared,
        &source_file,
        false,
        &Watching::No,
        &o,
        now,
    );
    if matches!(&source_file, Err(m) if m.starts_with("an API key")) {
        src.level = Level::Ok;
    }
    src.role = "source".into();
    entries.push(src);
    let mut holders_of_refresh = 0;
    for h in &held {
        match h {
            Ok(h) => {
                if h.file.as_ref().is_ok_and(|c| c.summary.has_refresh_token) {
                    holders_of_refresh += 1;
                }
                let mut e = judge(
                    &h.holder.name,
                    h.role,
                    &h.file,
                    leader_running,
                    &watch,
                    &o,
                    now,
                );
                if let (Ok(theirs), Ok(source)) = (&h.file, &source_file) {
                    if h.role == Role::Leader
                        && theirs.summary.expires_at_ms > source.summary.expires_at_ms
                    {
                        e.level = e.level.max(Level::Warning);
                        e.message
                            .push_str("; newer than the source: run `claunch creds sync`");
                    }
                }
                entries.push(e);
            }
            Err((name, why)) => entries.push(Entry {
                name: name.clone(),
                role: String::new(),
                level: Level::Critical,
                message: why.clone(),
                expires_in_secs: None,
                summary: None,
            }),
        }
    }
    if holders_of_refresh > 1 {
        entries.push(Entry {
            name: "fleet".into(),
            role: String::new(),
            level: Level::Critical,
            message: format!("{holders_of_refresh} containers hold a refresh token: refresh tokens rotate, so all but one will be logged out; run `claunch up`"),
            expires_in_secs: None,
            summary: None,
        });
    }
    let worst = entries.iter().map(|e| e.level).max().unwrap_or(Level::Ok);
    if o.json {
        println!(
            "{}",
            serde_json::json!({"level": worst, "entries": entries})
        );
    } else {
        for e in &entries {
            let mark = match e.level {
                Level::Ok => "ok      ",
                Level::Warning => "WARNING ",
                Level::Critical => "CRITICAL",
            };
            let extra = e.summary.as_ref().map_or_else(String::new, |s| {
                format!(
                    " [{}{}]",
                    s.subscription_type.as_deref().unwrap_or("?"),
                    s.scopes
                        .as_ref()
                        .map_or_else(String::new, |sc| format!("; {}", sc.join(" ")))
                )
            });
            // The source's name says that it is the source.
            let role = if e.role.is_empty() || e.role == "source" {
                String::new()
            } else {
                format!(" ({})", e.role)
            };
            println!("{mark} {}{role}: {}{extra}", e.name, e.message);
        }
    }
    Ok(match worst {
        Level::Ok => ExitStatus::Success,
        Level::Warning => ExitStatus::Failure,
        Level::Critical => ExitStatus::Critical,
    })
}
