//! `claunch doctor`: checks the login, the engine and each container, and says for each
//! problem how to fix it in one line (after the guide's troubleshooting list). It keeps
//! going when things are broken: no config, no engine, no containers.

mod container;
mod holders;
mod host;
mod judge;
mod reach;

use crate::commands::ExitStatus;
use serde::Serialize;

use crate::commands::Global;
use crate::engine::Engine;
use crate::report::{Outcome, Reporter, Step};

/// What `claunch doctor` was asked to look at.
#[derive(Debug, Clone, Default)]
pub struct DoctorOptions {
    pub target: Option<String>,
    pub smoke: bool,
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One finding: where (`host`, `engine` or a container's name), what was checked, how it
/// went, and the fix when it did not go well. Messages never hold a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[allow(clippy::struct_field_names)] // `check` is a key of the `--json` output
pub struct Check {
    pub scope: String,
    pub check: String,
    pub status: Status,
    pub message: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(scope: &str, check: &str, message: impl Into<String>) -> Self {
        Self::new(scope, check, Status::Ok, &message.into(), None)
    }

    pub fn warn(
        scope: &str,
        check: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(
            scope,
            check,
            Status::Warn,
            &message.into(),
            Some(&fix.into()),
        )
    }

    pub fn fail(
        scope: &str,
        check: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(
            scope,
            check,
            Status::Fail,
            &message.into(),
            Some(&fix.into()),
        )
    }

    fn new(scope: &str, check: &str, status: Status, message: &str, fix: Option<&str>) -> Self {
        Self {
            scope: scope.to_string(),
            check: check.to_string(),
            status,
            message: one_line(message),
            fix: fix.map(one_line),
        }
    }

    /// The text form: `✔ host: credentials file ~/.claude/.credentials.json exists, 0600`.
    pub fn line(&self) -> String {
        let mark = match self.status {
            Status::Ok => "✔",
            Status::Warn => "⚠",
            Status::Fail => "✘",
        };
        let mut line = format!("{mark} {}: {} — {}", self.scope, self.check, self.message);
        if let Some(fix) = &self.fix {
            line.push_str(" — fix: ");
            line.push_str(fix);
        }
        line
    }
}

/// Error texts carry their hint on a line of its own (`\n  hint: …`): split it off.
pub fn split_hint(text: &str) -> (String, Option<String>) {
    match text.split_once("\n  hint: ") {
        Some((message, hint)) => (message.to_string(), Some(hint.to_string())),
        None => (text.to_string(), None),
    }
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs every check, prints them, and returns 1 when one failed (warnings alone are 0).
pub async fn doctor(global: &Global, options: &DoctorOptions) -> anyhow::Result<ExitStatus> {
    let checks = diagnose(global, options).await;
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    if options.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({"ok": ok, "checks": checks}))?
        );
    } else {
        for check in &checks {
            println!("{}", check.line());
        }
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        let (fails, warns) = (count(Status::Fail), count(Status::Warn));
        eprintln!(
            "{} checks: {fails} failed, {warns} warning{}",
            checks.len(),
            if warns == 1 { "" } else { "s" }
        );
    }
    Ok(ExitStatus::failed_if(!ok))
}

/// Host first, then the engine, then the containers; each part runs whatever the others
/// found broken.
pub async fn diagnose(global: &Global, options: &DoctorOptions) -> Vec<Check> {
    let mut host_checks = Vec::new();
    let config = host::config(global, &mut host_checks);
    let login = host::source(config.spec.as_ref(), &mut host_checks).await;

    let mut engine_checks = Vec::new();
    let engine = match Engine::connect(global.host.as_deref()).await {
        Ok(engine) => {
            engine_checks.push(engine_version(&engine).await);
            Some(engine)
        }
        Err(e) => {
            let (message, hint) = split_hint(&e.to_string());
            engine_checks.push(Check::fail(
                "engine",
                "engine",
                message,
                hint.unwrap_or_else(|| {
                    "is dockerd running? point DOCKER_HOST or --host at it".into()
                }),
            ));
            None
        }
    };

    let mut container_checks = Vec::new();
    match (&engine, &config.project) {
        (Some(engine), Some(project)) => {
            let fleet = container::Fleet {
                engine,
                project,
                spec: config.spec.as_ref(),
                login: login.as_ref(),
                options,
                probes: crate::credentials::holder::Probes::default(),
                parallel: global.parallel,
            };
            let found = fleet.check().await;
            host_checks.extend(found.holders);
            engine_checks.extend(found.engine);
            container_checks = found.containers;
        }
        (_, None) if options.target.is_some() => host_checks.push(Check::fail(
            "host",
            "target",
            "cannot be looked up without a project",
            "run doctor next to claunch.yaml, or pass -f FILE or -p NAME",
        )),
        _ => {}
    }
    host_checks
        .into_iter()
        .chain(engine_checks)
        .chain(container_checks)
        .collect()
}

/// A reporter that keeps quiet: doctor reports through its checks only.
struct Quiet;

impl Reporter for Quiet {
    fn step(&self, _: &str, _: Step) {}
    fn output(&self, _: &str, _: &str) {}
    fn finished(&self, _: &str, _: &Outcome) {}
    fn warn(&self, _: &str) {}
    fn info(&self, _: &str) {}
}

async fn engine_version(engine: &Engine) -> Check {
    match engine.version().await {
        Ok(v) => Check::ok(
            "engine",
            "engine",
            format!(
                "reachable at {} (Docker {}, API {})",
                engine.endpoint(),
                v.version,
                v.api_version
            ),
        ),
        Err(e) => {
            let (message, hint) = split_hint(&e.to_string());
            Check::fail(
                "engine",
                "engine",
                format!(
                    "reachable at {} but its version is unknown: {message}",
                    engine.endpoint()
                ),
                hint.unwrap_or_else(|| "check the engine's logs (journalctl -u docker)".into()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_the_contract_shows() {
        let c = Check::fail(
            "demo-agent-1",
            "credentials file",
            "owned by 0:0, expected 1000:1000",
            "claunch up --force-recreate",
        );
        assert_eq!(
            c.line(),
            "✘ demo-agent-1: credentials file — owned by 0:0, expected 1000:1000 — fix: claunch up --force-recreate"
        );
        let c = Check::ok(
            "host",
            "credentials file",
            "~/.claude/.credentials.json exists, 0600",
        );
        assert_eq!(
            c.line(),
            "✔ host: credentials file — ~/.claude/.credentials.json exists, 0600"
        );
    }

    #[test]
    fn hints_split_off_and_messages_stay_on_one_line() {
        let (m, h) = split_hint("cannot reach x: refused\n  hint: is dockerd running?");
        assert_eq!(
            (m.as_str(), h.as_deref()),
            ("cannot reach x: refused", Some("is dockerd running?"))
        );
        assert_eq!(one_line("a\n\n  b\n"), "a; b");
    }
}
