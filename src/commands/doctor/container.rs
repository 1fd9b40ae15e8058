//! Each container: `claude` runnable, who it runs as, the credentials file and its
//! directory (owner and mode from their archives' first headers), mounts that break the
//! login, root without `IS_SANDBOX=1`, the role label against the file, and with
//! `--smoke` a live prompt.

use std::time::Duration;

use futures::stream::{self, StreamExt};

use super::holders::{self, Holding, SourceToken};
use super::{host, judge, reach, split_hint, Check, Quiet};
use crate::commands::creds::Level;
use crate::commands::doctor::DoctorOptions;
use crate::commands::{self, members, Member};
use crate::config::{SmokeSpec, Spec};
use crate::credentials::deliver::{self, DeliverError};
use crate::credentials::holder::{Held, Holder, Probes};
use crate::credentials::login::Login;
use crate::credentials::watcher::{self, Watching};
use crate::credentials::Role;
use crate::credentials::{family, Credentials};
use crate::engine::Engine;
use crate::smoke::{self, Verdict};

/// How long `claude --version` may take (the real CLI starts in about a second).
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Fleet<'a> {
    pub engine: &'a Engine,
    pub project: &'a str,
    pub spec: Option<&'a Spec>,
    pub login: Option<&'a Login>,
    pub options: &'a DoctorOptions,
    pub probes: Probes,
    pub parallel: usize,
}

/// What the fleet checks found, by where they are printed.
#[derive(Default)]
pub struct Found {
    pub holders: Option<Check>,
    pub engine: Vec<Check>,
    pub containers: Vec<Check>,
}

/// What every examination needs to know about the rest of the fleet.
struct Ctx {
    source: Option<SourceToken>,
    rotating: bool,
    leader_running: bool,
}

impl Fleet<'_> {
    pub async fn check(&self) -> Found {
        let mut found = Found::default();
        let all = match members(self.engine, self.project).await {
            Ok(all) => all,
            Err(e) => {
                found.engine.push(Check::fail(
                    "engine",
                    "containers",
                    format!("cannot be listed: {e:#}"),
                    "check the engine's logs (journalctl -u docker)",
                ));
                return found;
            }
        };
        let selected: Vec<&Member> = match &self.options.target {
            Some(t) => match commands::select(self.project, &all, t) {
                Ok(s) => s,
                Err(e) => {
                    let (message, hint) = split_hint(&e.to_string());
                    found.containers.push(Check::fail(
                        t,
                        "state",
                        message,
                        hint.unwrap_or_else(|| "claunch ps".into()),
                    ));
                    return found;
                }
            },
            None => all.iter().collect(),
        };
        let running = all.iter().filter(|m| m.running()).count();
        found.engine.push(if running == 0 {
            Check::warn(
                "engine",
                "containers",
                format!("none running in project {}", self.project),
                "claunch up",
            )
        } else {
            Check::ok(
                "engine",
                "containers",
                format!(
                    "{running} running in project {} ({} in all)",
                    self.project,
                    all.len()
                ),
            )
        });

        let source_creds = self.login.and_then(Login::credentials);
        let ctx = Ctx {
            source: source_creds.map(|c| SourceToken {
                refresh: family::refresh_fingerprint(c),
                expires_at_ms: c.summary.expires_at_ms,
            }),
            rotating: self.login.is_some_and(Login::rotating),
            leader_running: all.iter().any(|m| m.running() && m.role == Role::Leader),
        };
        // Every running container counts for who holds the refresh token; only the
        // selected ones are examined in full.
        let examined: Vec<(String, Option<Holding>, Vec<Check>)> =
            stream::iter(all.iter().filter(|m| m.running()))
                .map(|m| {
                    let full = selected.iter().any(|s| s.id == m.id);
                    let ctx = &ctx;
                    async move {
                        let (holding, checks) = self.examine(m, full, ctx).await;
                        (m.id.clone(), holding, checks)
                    }
                })
                .buffered(self.parallel)
                .collect()
                .await;
        let holdings: Vec<Holding> = examined.iter().filter_map(|e| e.1.clone()).collect();
        found.holders = holders::summary(ctx.source.as_ref(), &holdings);
        for m in selected {
            if let Some((_, _, checks)) = examined.iter().find(|e| e.0 == m.id) {
                found.containers.extend(checks.iter().cloned());
            } else if self.options.target.is_some() {
                found.containers.push(Check::fail(
                    &m.name,
                    "state",
                    format!("{}: not running, so nothing in it can be checked", m.state),
                    "claunch up",
                ));
            } else {
                found.containers.push(Check::warn(
                    &m.name,
                    "state",
                    format!("{}: not running, not checked", m.state),
                    "claunch up",
                ));
            }
        }
        found
    }

    /// Looks at one running container; `full` says whether to report on it, or only to
    /// find what it holds.
    async fn examine(&self, m: &Member, full: bool, ctx: &Ctx) -> (Option<Holding>, Vec<Check>) {
        let engine = self.engine;
        let name = m.name.as_str();
        let mut out = Vec::new();
        let looked = Holder::look(engine, &m.id, name, &self.probes).await;
        if let Err(DeliverError::Engine(e)) = &looked {
            out.push(Check::fail(
                name,
                "state",
                format!("cannot be inspected: {e}"),
                "claunch ps",
            ));
            return (None, out);
        }
        let mut claude_runs = false;
        if full {
            let check = judge::claude(name, version(engine, &m.id).await, VERSION_TIMEOUT);
            claude_runs = check.status == super::Status::Ok;
            out.push(check);
        }
        let (holder, info) = match looked {
            Ok(found) => found,
            Err(e) => {
                let (message, hint) = split_hint(&e.to_string());
                out.push(Check::fail(
                    name,
                    "user",
                    format!("cannot be resolved: {message}"),
                    hint.unwrap_or_else(|| "claunch up --force-recreate".into()),
                ));
                return (None, out);
            }
        };
        let layout = &holder.layout;
        let id = &layout.identity;
        let path = id.credentials_path();
        if full {
            out.push(Check::ok(
                name,
                "user",
                format!(
                    "uid {}:{}, HOME {}, config dir {}",
                    id.uid, id.gid, id.home, id.config_dir
                ),
            ));
            out.extend(judge::mount_checks(name, id, &info.mounts));
            out.extend(judge::sandbox_check(name, id, &info.argv, &info.env));
            out.push(match deliver::stat(engine, &m.id, &id.config_dir).await {
                Ok(Some(meta)) => judge::dir_check(name, &id.config_dir, meta, id),
                Ok(None) => Check::fail(
                    name,
                    "config dir",
                    format!("{} does not exist", id.config_dir),
                    "claunch up --force-recreate",
                ),
                Err(e) => Check::warn(
                    name,
                    "config dir",
                    format!("cannot be examined: {e}"),
                    "claunch ps",
                ),
            });
            out.push(match deliver::stat(engine, &m.id, &path).await {
                Ok(Some(meta)) => judge::file_check(name, &path, meta, id),
                Ok(None) => {
                    let dir_there = !layout.missing_dirs.contains(&id.config_dir);
                    Check::fail(
                        name,
                        "credentials file",
                        format!("{path} not found: claude says \"Not logged in\" (\"Authentication required\")"),
                        if dir_there {
                            format!("claunch creds push {name}")
                        } else {
                            "claunch up --force-recreate".to_string()
                        },
                    )
                }
                Err(e) => Check::warn(
                    name,
                    "credentials file",
                    format!("cannot be examined: {e}"),
                    "claunch ps",
                ),
            });
        }
        let creds = match holder.read_credentials(engine).await {
            Held::Valid(c) => Some(c),
            Held::Invalid(e) => {
                if full {
                    out.push(Check::fail(
                        name,
                        "login",
                        format!("{path} {e} (\"Authentication required\")"),
                        format!("claunch creds push {name}"),
                    ));
                }
                None
            }
            // A missing file was reported above.
            Held::Missing => None,
            Held::Unreadable(e) => {
                if full {
                    out.push(Check::warn(
                        name,
                        "login",
                        format!("cannot be read back: {e}"),
                        "claunch ps",
                    ));
                }
                None
            }
        };
        let holding = creds.as_ref().map(|c| Holding {
            name: m.name.clone(),
            role: m.role,
            refresh: family::refresh_fingerprint(c),
            expires_at_ms: c.summary.expires_at_ms,
        });
        if let (true, Some(c), Some(h)) = (full, &creds, &holding) {
            let watch = watcher::watching(self.project);
            out.push(login_check(name, c, m.role, ctx.leader_running, &watch));
            out.push(holders::role(h, ctx.rotating));
            out.extend(holders::versus_source(h, ctx.source.as_ref()));
        }
        if full {
            out.push(reach::check(name, engine, &m.id, &info.env).await);
        }
        let spec = self
            .spec
            .and_then(|s| s.agent(&m.agent))
            .and_then(|a| a.smoke.clone())
            .unwrap_or_default();
        if full && self.options.smoke && claude_runs {
            out.push(smoke_check(name, &spec, engine, &m.id).await);
        } else if full {
            out.push(last_smoke_check(name, &spec, engine, &m.id).await);
        }
        (holding, out)
    }
}

async fn version(engine: &Engine, id: &str) -> Result<crate::engine::Finished, String> {
    let argv = vec!["claude".to_string(), "--version".to_string()];
    crate::engine::exec_streaming(engine, id, argv, None, Some(VERSION_TIMEOUT), |_| {})
        .await
        .map_err(|e| e.to_string())
}

/// Shape, plan and expiry of the container's file, judged as `creds status` does.
fn login_check(
    name: &str,
    c: &Credentials,
    role: Role,
    leader_running: bool,
    watch: &Watching,
) -> Check {
    let (level, text) = host::expiry(c, role, leader_running, watch);
    let message = format!(
        "{}, access token: {text}",
        c.summary
            .subscription_type
            .as_deref()
            .unwrap_or("plan unknown")
    );
    let fix = if role == Role::Follower && leader_running {
        "claunch creds sync"
    } else {
        host::RELOGIN
    };
    match level {
        Level::Ok => Check::ok(name, "login", message),
        Level::Warning => Check::warn(name, "login", message, fix),
        Level::Critical => {
            Check::fail(name, "login", format!("{message} (\"Token expired\")"), fix)
        }
    }
}

/// The verdict of the container's last smoke test, as `up` (or `doctor --smoke`) kept it.
async fn last_smoke_check(name: &str, spec: &SmokeSpec, engine: &Engine, id: &str) -> Check {
    const CHECK: &str = "last smoke test";
    match smoke::record::read(engine, id).await {
        Some(r) if r.passed(&smoke::record::spec_hash(spec)) => Check::ok(name, CHECK, "passed"),
        Some(r) if r.class == "passed" => Check::warn(
            name,
            CHECK,
            "passed, but with another `smoke:` setting than claunch.yaml's",
            "claunch up (tests it again)",
        ),
        Some(r) => Check::fail(
            name,
            CHECK,
            format!("did not pass ({})", r.class.replace('_', " ")),
            format!("claunch doctor {name} --smoke shows why; `claunch up` tests it again"),
        ),
        // Made with --no-smoke, as asked: said, not held against it.
        None => Check::ok(
            name,
            CHECK,
            format!("none yet (made with --no-smoke): `claunch doctor {name} --smoke` runs one"),
        ),
    }
}

async fn smoke_check(name: &str, spec: &SmokeSpec, engine: &Engine, id: &str) -> Check {
    let verdict = crate::smoke::smoke_test(engine, id, name, spec, &Quiet).await;
    // Kept, as `up` keeps it, so `ps` and the next `up` know.
    let _ = smoke::record::write(engine, id, &verdict, &smoke::record::spec_hash(spec)).await;
    match verdict {
        Verdict::Passed => Check::ok(name, "smoke", "passed: claude answered a real prompt"),
        v => {
            let last = match &v {
                Verdict::Failed { last_lines, .. } => last_lines.last(),
                _ => None,
            };
            let message = match last {
                Some(line) => format!("failed: {} ({line})", v.describe()),
                None => format!("failed: {}", v.describe()),
            };
            Check::fail(name, "smoke", message, v.hint().unwrap_or("claunch logs"))
        }
    }
}
