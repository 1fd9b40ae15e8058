//! The host's side: the config, and the login the fleet runs on — for a file, its
//! existence, mode, JSON shape, scopes and expiry; for other sources, what kind it is and
//! whether it can be fetched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{split_hint, Check, Quiet};
use crate::commands::creds::{self, Level, StatusOptions};
use crate::commands::Global;
use crate::config::{self, ConfigError, CredentialsSpec, Spec};
use crate::credentials::login::Login;
use crate::credentials::watcher::Watching;
use crate::credentials::Role;
use crate::credentials::{self, Credentials, MAX_FILE_BYTES};
use crate::secret::Secret;

const HOST: &str = "host";

/// The config if it loaded, and the project to look at (from it, else from `-p`).
pub struct Config {
    pub spec: Option<Spec>,
    pub project: Option<String>,
}

pub fn config(global: &Global, out: &mut Vec<Check>) -> Config {
    let options = config::LoadOptions {
        file: global.file.clone(),
        project_name: global.project_name.clone(),
    };
    match config::load(&options, &|key| std::env::var(key).ok()) {
        Ok(loaded) => {
            let spec = loaded.spec;
            out.push(Check::ok(
                HOST,
                "config",
                format!(
                    "{} loaded: project {}, {} agent{}",
                    tilde(&spec.file),
                    spec.project,
                    spec.agents.len(),
                    if spec.agents.len() == 1 { "" } else { "s" }
                ),
            ));
            for warning in loaded.warnings {
                out.push(Check::warn(
                    HOST,
                    "config",
                    warning,
                    "set the variable, or give it a default with ${VAR:-default}",
                ));
            }
            Config {
                project: Some(spec.project.clone()),
                spec: Some(spec),
            }
        }
        Err(ConfigError::NotFound { path }) => {
            let dir = path.parent().map_or_else(|| ".".into(), tilde);
            out.push(Check::warn(
                HOST,
                "config",
                format!("not found: no claunch.yaml in {dir}, so only the engine and the default credentials file are checked"),
                "`claunch init` writes a commented claunch.yaml (or pass -f FILE)",
            ));
            Config {
                spec: None,
                project: global.project_name.clone(),
            }
        }
        Err(e) => {
            let (message, hint) = split_hint(&e.to_string());
            out.push(Check::fail(
                HOST,
                "config",
                format!("is invalid: {message}"),
                hint.unwrap_or_else(|| "correct claunch.yaml where the message points".into()),
            ));
            Config {
                spec: None,
                project: global.project_name.clone(),
            }
        }
    }
}

/// Where Claude Code itself keeps the login on this machine.
fn default_file() -> Option<PathBuf> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    var("CLAUDE_CONFIG_DIR")
        .map(|d| PathBuf::from(d).join(".credentials.json"))
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".claude/.credentials.json")))
}

/// Checks the configured source (without a config, the default credentials file) and
/// returns the login it holds, if it could be had.
pub async fn source(spec: Option<&Spec>, out: &mut Vec<Check>) -> Option<Login> {
    let path = match spec.map(|s| &s.credentials) {
        Some(CredentialsSpec::File(path)) => Some(path.clone()),
        Some(_) => None,
        None => match default_file() {
            Some(path) => Some(path),
            None => {
                out.push(Check::fail(
                    HOST,
                    "credentials source",
                    "unknown: neither CLAUDE_CONFIG_DIR nor HOME is set",
                    "set `credentials:` in claunch.yaml (claunch init writes one)",
                ));
                return None;
            }
        },
    };
    if let Some(path) = path {
        let creds = file(&path, out)?;
        login(&tilde(&path), &creds, out);
        return Some(Login::from_credentials(creds));
    }
    let spec = spec?;
    let what = format!(
        "{} ({})",
        spec.credentials.describe(),
        kind(&spec.credentials)
    );
    match crate::credentials::sources::fetch(spec, &Quiet).await {
        Ok(fetched) => {
            let how = match &fetched {
                Login::Rotating(_) => "a login with a refresh token",
                Login::Shared(_) => "a token every container shares",
                Login::ApiKey(_) => "an API key: it does not expire",
            };
            out.push(Check::ok(
                HOST,
                "credentials source",
                format!("{what} fetched: {how}"),
            ));
            if matches!(spec.credentials, CredentialsSpec::OauthToken(_)) {
                // claunch makes the file itself, so only the expiry is worth a word.
                out.push(Check::ok(
                    HOST,
                    "expiry",
                    "not recorded: a setup token lasts a year from when `claude setup-token` made it (`claunch doctor --smoke` shows an expired one as a 401)",
                ));
            } else if let Some(c) = fetched.credentials() {
                login(&spec.credentials.describe(), c, out);
            }
            Some(fetched)
        }
        Err(e) => {
            let (message, hint) = split_hint(&format!("{e:#}"));
            out.push(Check::fail(
                HOST,
                "credentials source",
                format!("{what} cannot be fetched: {message}"),
                hint.unwrap_or_else(|| "check `credentials:` in claunch.yaml".into()),
            ));
            None
        }
    }
}

fn kind(spec: &CredentialsSpec) -> &'static str {
    match spec {
        CredentialsSpec::File(_) => "a credentials file",
        CredentialsSpec::Env(_) => "a host environment variable",
        CredentialsSpec::Command { .. } => "a program's output",
        CredentialsSpec::AwsSecret { .. }
        | CredentialsSpec::GcpSecret { .. }
        | CredentialsSpec::AzureSecret { .. } => "a cloud secret store",
        CredentialsSpec::OauthToken(_) => "a long-lived token from `claude setup-token`",
        CredentialsSpec::ApiKey(_) => "an Anthropic API key",
    }
}

/// The file: there, readable, private; then its JSON shape.
fn file(path: &Path, out: &mut Vec<Check>) -> Option<Credentials> {
    use std::os::unix::fs::PermissionsExt;
    let shown = tilde(path);
    let check = "credentials file";
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.push(Check::fail(
                HOST,
                check,
                format!("{shown} not found: there is no login to give the containers (\"Authentication required\")"),
                "run `claude login` on this machine, or point `credentials.file` in claunch.yaml at your login",
            ));
            return None;
        }
        Err(e) => {
            out.push(Check::fail(
                HOST,
                check,
                format!("{shown} cannot be read: {e}"),
                format!("make it yours and private: chmod 600 {shown}"),
            ));
            return None;
        }
    };
    if meta.is_dir() {
        out.push(Check::fail(
            HOST,
            check,
            format!("{shown} is a directory, not a credentials file"),
            "point `credentials.file` at the .credentials.json inside it",
        ));
        return None;
    }
    let mode = meta.permissions().mode() & 0o7777;
    if meta.len() > MAX_FILE_BYTES {
        out.push(Check::fail(
            HOST,
            check,
            format!(
                "{shown} is {} bytes, too large for a credentials file",
                meta.len()
            ),
            "run `claude login` again to write a fresh one",
        ));
        return None;
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => Secret::new(b),
        Err(e) => {
            out.push(Check::fail(
                HOST,
                check,
                format!(
                    "{shown} exists ({mode:04o}) but cannot be read: {e} (\"Permission denied\")"
                ),
                format!(
                    "make it yours and private: chown \"$(id -u)\" {shown} && chmod 600 {shown}"
                ),
            ));
            return None;
        }
    };
    out.push(mode_check(&shown, mode));
    match Credentials::parse(bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            out.push(Check::fail(
                HOST,
                "credentials JSON",
                format!("{shown} {e} (\"Authentication required\")"),
                e.hint(),
            ));
            None
        }
    }
}

/// The guide asks for 0600: private to its owner, who must be able to read it.
pub fn mode_check(shown: &str, mode: u32) -> Check {
    let check = "credentials file";
    let fix = format!("chmod 600 {shown}");
    if mode & 0o400 == 0 {
        Check::fail(
            HOST,
            check,
            format!("{shown} is {mode:04o}: its owner cannot read it (\"Permission denied\")"),
            fix,
        )
    } else if mode & 0o077 != 0 {
        Check::warn(
            HOST,
            check,
            format!("{shown} exists, {mode:04o}: other users can read your login"),
            fix,
        )
    } else if mode != 0o600 {
        Check::warn(
            HOST,
            check,
            format!("{shown} exists, {mode:04o}, expected 0600"),
            fix,
        )
    } else {
        Check::ok(HOST, check, format!("{shown} exists, 0600"))
    }
}

/// Shape, scopes and expiry of the source's login.
fn login(shown: &str, c: &Credentials, out: &mut Vec<Check>) {
    let s = &c.summary;
    out.push(Check::ok(
        HOST,
        "credentials JSON",
        format!(
            "{shown} is a Claude Code login ({}, {})",
            s.subscription_type.as_deref().unwrap_or("plan unknown"),
            if s.has_refresh_token {
                "with a refresh token"
            } else {
                "access token only"
            }
        ),
    ));
    out.push(scopes(HOST, c));
    let (level, text) = expiry(c, Role::Shared, false, &Watching::No);
    let message = format!("access token: {text}");
    out.push(match level {
        Level::Ok => Check::ok(HOST, "expiry", message),
        Level::Warning => Check::warn(HOST, "expiry", message, RELOGIN),
        Level::Critical => Check::fail(
            HOST,
            "expiry",
            format!("{message} (\"Token expired\")"),
            RELOGIN,
        ),
    });
}

pub const RELOGIN: &str =
    "run `claude login` on the host (or update the secret store), then `claunch creds push`";

/// `claude` needs `user:inference`; without any scopes listed only a refresh token saves it.
pub fn scopes(scope: &str, c: &Credentials) -> Check {
    match &c.summary.scopes {
        Some(list)
            if list
                .iter()
                .any(|s| s == credentials::family::INFERENCE_SCOPE) =>
        {
            Check::ok(scope, "scopes", list.join(" "))
        }
        Some(list) => Check::warn(
            scope,
            "scopes",
            format!(
                "{} lacks user:inference, which claude needs to make requests",
                if list.is_empty() {
                    "(none)".to_string()
                } else {
                    list.join(" ")
                }
            ),
            "run `claude login` again to get a login with the inference scope",
        ),
        None => Check::ok(
            scope,
            "scopes",
            "not listed; fine with a refresh token (followers get user:inference)",
        ),
    }
}

/// How soon the login breaks and whether anyone can refresh it, as `creds status` judges.
pub fn expiry(
    c: &Credentials,
    role: Role,
    leader_running: bool,
    watch: &Watching,
) -> (Level, String) {
    let o = StatusOptions {
        json: false,
        warn: Duration::from_secs(3_600),
        critical: Duration::ZERO,
    };
    let e = creds::judge(
        "",
        role,
        &Ok(c.clone()),
        leader_running,
        watch,
        &o,
        credentials::now_ms(),
    );
    (e.level, e.message)
}

/// A host path as people write it: `~/.claude/.credentials.json`.
pub fn tilde(path: &Path) -> String {
    let shown = path.display().to_string();
    match std::env::var("HOME") {
        Ok(home) if !home.is_empty() && home != "/" => match shown.strip_prefix(&home) {
            Some(rest) if rest.starts_with('/') => format!("~{rest}"),
            _ => shown,
        },
        _ => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::doctor::Status;

    #[test]
    fn modes_are_judged_as_the_guide_asks() {
        let at = |mode| {
            let c = mode_check("~/.claude/.credentials.json", mode);
            (c.status, c.message, c.fix)
        };
        assert_eq!(
            at(0o600),
            (
                Status::Ok,
                "~/.claude/.credentials.json exists, 0600".into(),
                None
            )
        );
        let (status, message, fix) = at(0o644);
        assert_eq!(status, Status::Warn);
        assert!(message.contains("0644: other users can read"), "{message}");
        assert_eq!(
            fix.as_deref(),
            Some("chmod 600 ~/.claude/.credentials.json")
        );
        assert_eq!(at(0o200).0, Status::Fail);
        assert_eq!(at(0o400).0, Status::Warn);
    }

    #[test]
    fn scopes_without_inference_warn() {
        let c = |scopes: &str| {
            Credentials::parse(Secret::from(format!(
                r#"{{"claudeAiOauth":{{"accessToken":"a","refreshToken":"r","expiresAt":1{scopes}}}}}"#
            )))
            .unwrap()
        };
        assert_eq!(
            scopes(HOST, &c(r#","scopes":["user:inference"]"#)).status,
            Status::Ok
        );
        assert_eq!(
            scopes(HOST, &c(r#","scopes":["user:profile"]"#)).status,
            Status::Warn
        );
        assert_eq!(scopes(HOST, &c("")).status, Status::Ok);
    }
}
