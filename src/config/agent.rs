//! One agent's entry: name and value rules, `env` resolution, files and the smoke test.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use super::ctx::{key, under, Ctx};
use super::error::ConfigError;
use super::locate::Seg;
use super::raw::{RawAgent, RawEnv, RawFile, RawSmokeSetting};
use super::{AgentSpec, FileSpec, SmokeSpec};

pub(super) fn agent_spec(
    name: String,
    raw: RawAgent,
    onboarding: bool,
    base: &[Seg],
    ctx: &Ctx,
) -> Result<AgentSpec, ConfigError> {
    if !valid_agent_name(&name) {
        let message = format!("invalid agent name `{name}`");
        let hint = "use letters, digits, `_`, `.` and `-`, starting with a letter or digit";
        return Err(ctx.invalid(base, 1, message, Some(hint)));
    }
    if raw.image.trim().is_empty() {
        let message = "image must not be empty".to_owned();
        return Err(ctx.invalid(&under(base, &[key("image")]), 1, message, None));
    }
    let env = agent_env(raw.env, &under(base, &[key("env")]), ctx)?;
    let files = raw
        .files
        .into_iter()
        .enumerate()
        .map(|(index, file)| file_spec(file, &under(base, &[key("files"), Seg::Index(index)]), ctx))
        .collect::<Result<_, _>>()?;
    let smoke = smoke_spec(raw.smoke, &under(base, &[key("smoke")]), ctx)?;
    Ok(AgentSpec {
        name,
        image: raw.image,
        replicas: raw.replicas.unwrap_or(1),
        user: raw.user,
        command: raw.command.map(|list| list.0),
        entrypoint: raw.entrypoint.map(|list| list.0),
        working_dir: raw.working_dir,
        env,
        network: raw.network,
        extra_hosts: raw.extra_hosts,
        volumes: raw.volumes,
        files,
        smoke,
        onboarding: raw.onboarding.unwrap_or(onboarding),
    })
}

fn valid_agent_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Resolves both spellings of `env`; a name without a value takes the
/// host's, and is dropped when the host has none, as compose does.
fn agent_env(
    raw: RawEnv,
    base: &[Seg],
    ctx: &Ctx,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut env = BTreeMap::new();
    let entries: Vec<(String, Option<String>, Seg)> = match raw {
        RawEnv::Map(entries) => entries
            .into_iter()
            .map(|(name, value)| {
                let seg = key(&name);
                (name, value, seg)
            })
            .collect(),
        RawEnv::List(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned()), Seg::Index(index)),
                None => (item, None, Seg::Index(index)),
            })
            .collect(),
    };
    for (name, value, seg) in entries {
        let problem = if name.is_empty() {
            Some("empty variable name".to_owned())
        } else if name.contains('=') {
            Some(format!("variable name `{name}` contains `=`"))
        } else {
            None
        };
        if let Some(message) = problem {
            return Err(ctx.invalid(&under(base, &[seg]), 1, message, None));
        }
        if let Some(value) = value.or_else(|| (ctx.lookup)(&name)) {
            env.insert(name, value);
        }
    }
    Ok(env)
}

fn file_spec(raw: RawFile, base: &[Seg], ctx: &Ctx) -> Result<FileSpec, ConfigError> {
    let source = ctx.host_path(&raw.source, &under(base, &[key("source")]))?;
    let target_segs = under(base, &[key("target")]);
    if raw.target.trim().is_empty() {
        return Err(ctx.invalid(&target_segs, 1, "target must not be empty".to_owned(), None));
    }
    if Path::new(&raw.target)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        let message = format!("target {:?} must not contain `..`", raw.target);
        let hint = "give a path under the agent user's HOME, or an absolute one";
        return Err(ctx.invalid(&target_segs, 1, message, Some(hint)));
    }
    Ok(FileSpec {
        source,
        target: raw.target,
        mode: raw.mode.map_or(0o600, |mode| mode.0),
    })
}

fn smoke_spec(
    raw: RawSmokeSetting,
    base: &[Seg],
    ctx: &Ctx,
) -> Result<Option<SmokeSpec>, ConfigError> {
    let raw = match raw {
        RawSmokeSetting::Off => return Ok(None),
        RawSmokeSetting::Default => return Ok(Some(SmokeSpec::default())),
        RawSmokeSetting::Custom(raw) => raw,
    };
    let default = SmokeSpec::default();
    let smoke = SmokeSpec {
        prompt: raw.prompt.unwrap_or(default.prompt),
        max_turns: raw.max_turns.unwrap_or(default.max_turns),
        timeout: raw.timeout.map_or(default.timeout, |t| t.0),
    };
    let fail = |field: &str, message: &str| {
        ctx.invalid(&under(base, &[key(field)]), 1, message.to_owned(), None)
    };
    if smoke.prompt.trim().is_empty() {
        return Err(fail("prompt", "prompt must not be empty"));
    }
    if smoke.max_turns < 1 {
        return Err(fail("max_turns", "max_turns must be at least 1"));
    }
    if smoke.timeout.is_zero() {
        return Err(fail("timeout", "timeout must be more than 0"));
    }
    Ok(Some(smoke))
}
