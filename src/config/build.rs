//! From the parsed file to a [`Spec`]: the rules serde cannot check, defaults and host paths.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::error::ConfigError;
use super::interpolate::SourceMap;
use super::locate::{locate, render, Seg};
use super::project::{self, Origin};
use super::raw::{RawAgent, RawConfig, RawCredentials, RawEnv, RawFile, RawSmokeSetting};
use super::{AgentSpec, CredentialsSpec, FileSpec, SmokeSpec, Spec};

/// What building needs besides the parsed file.
pub(crate) struct Ctx<'a> {
    /// As the user gave it, for messages.
    pub file: &'a Path,
    pub absolute: &'a Path,
    /// The config's directory, absolute: relative paths start here.
    pub dir: &'a Path,
    /// The interpolated text, in which keys are located.
    pub text: &'a str,
    pub map: &'a SourceMap,
    /// The process environment only (HOME, CLAUDE_CONFIG_DIR).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The process environment, then `.env`.
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
}

fn key(name: &str) -> Seg {
    Seg::Key(name.to_owned())
}

fn under(base: &[Seg], more: &[Seg]) -> Vec<Seg> {
    [base, more].concat()
}

impl Ctx<'_> {
    /// An error at the `nth` occurrence of the key path, located best effort.
    fn invalid(
        &self,
        segs: &[Seg],
        nth: usize,
        message: String,
        hint: Option<&str>,
    ) -> ConfigError {
        // nth 0: the value did not come from the file, so there is no line.
        let at = (nth > 0)
            .then(|| locate(self.text, segs, nth))
            .flatten()
            .map(|(line, column)| self.map.to_source(line, column));
        ConfigError::Invalid {
            path: self.file.to_owned(),
            line: at.map(|at| at.0),
            column: at.map(|at| at.1),
            key_path: render(segs),
            message,
            hint: hint.map(str::to_owned),
        }
    }

    /// Expands a leading `~` to the host HOME and anchors relative paths at
    /// the config's directory, so that the spec does not depend on the cwd.
    fn host_path(&self, raw: &str, segs: &[Seg]) -> Result<PathBuf, ConfigError> {
        let path = if let Some(rest) = raw.strip_prefix('~') {
            if !(rest.is_empty() || rest.starts_with('/')) {
                let message = format!("cannot expand {raw:?}: only `~` and `~/` are supported");
                return Err(self.invalid(segs, 1, message, Some("write the full path")));
            }
            let home = (self.env)("HOME")
                .filter(|home| !home.is_empty())
                .ok_or_else(|| {
                    let message = "HOME is not set, so `~` cannot be expanded".to_owned();
                    self.invalid(segs, 1, message, Some("write the full path"))
                })?;
            let rest = rest.trim_start_matches('/');
            let home = PathBuf::from(home);
            if rest.is_empty() {
                home
            } else {
                home.join(rest)
            }
        } else if raw.trim().is_empty() {
            return Err(self.invalid(segs, 1, "path must not be empty".to_owned(), None));
        } else {
            PathBuf::from(raw)
        };
        let joined = self.dir.join(path);
        Ok(joined
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect())
    }
}

pub(crate) fn build(raw: RawConfig, ctx: &Ctx, flag: Option<&str>) -> Result<Spec, ConfigError> {
    let env_project = (ctx.lookup)("CLAUNCH_PROJECT");
    let (project, _) = project::resolve(
        flag,
        env_project.as_deref(),
        raw.project.as_deref(),
        ctx.dir,
    )
    .map_err(|empty| {
        let segs = [key("project")];
        let nth = if empty.origin == Origin::File { 1 } else { 0 };
        ctx.invalid(&segs, nth, empty.message(), Some(&empty.hint()))
    })?;
    let credentials = credentials(raw.credentials, ctx)?;
    if raw.agents.0.is_empty() {
        return Err(ctx.invalid(
            &[key("agents")],
            1,
            "at least one agent is required".to_owned(),
            Some("add one, e.g. `agents: {worker: {image: my-agent:latest}}`"),
        ));
    }
    let mut agents: Vec<AgentSpec> = Vec::with_capacity(raw.agents.0.len());
    for (name, agent) in raw.agents.0 {
        let segs = [key("agents"), key(&name)];
        let earlier = agents.iter().filter(|a| a.name == name).count();
        if earlier > 0 {
            let message = format!("agent `{name}` is defined more than once");
            return Err(ctx.invalid(&segs, earlier + 1, message, None));
        }
        agents.push(agent_spec(name, agent, &segs, ctx)?);
    }
    Ok(Spec {
        file: ctx.absolute.to_owned(),
        project,
        credentials,
        agents,
    })
}

fn credentials(raw: Option<RawCredentials>, ctx: &Ctx) -> Result<CredentialsSpec, ConfigError> {
    let base = [key("credentials")];
    let Some(RawCredentials { file }) = raw else {
        return default_credentials(ctx);
    };
    let mut sources = Vec::new();
    if let Some(file) = file {
        let path = ctx.host_path(&file, &under(&base, &[key("file")]))?;
        sources.push(("file", CredentialsSpec::File(path)));
    }
    match sources.len() {
        1 => Ok(sources.remove(0).1),
        0 => Err(ctx.invalid(
            &base,
            1,
            "no credentials source given".to_owned(),
            Some("add `file: PATH`, or remove `credentials:` to use ~/.claude/.credentials.json"),
        )),
        _ => {
            let names: Vec<String> = sources
                .iter()
                .map(|(name, _)| format!("`{name}`"))
                .collect();
            let message = format!("several credentials sources given: {}", names.join(", "));
            Err(ctx.invalid(&base, 1, message, Some("keep only one")))
        }
    }
}

/// Where Claude Code itself keeps the login on the host.
fn default_credentials(ctx: &Ctx) -> Result<CredentialsSpec, ConfigError> {
    let non_empty = |name: &str| (ctx.env)(name).filter(|value| !value.is_empty());
    if let Some(dir) = non_empty("CLAUDE_CONFIG_DIR") {
        return Ok(CredentialsSpec::File(
            PathBuf::from(dir).join(".credentials.json"),
        ));
    }
    if let Some(home) = non_empty("HOME") {
        return Ok(CredentialsSpec::File(
            PathBuf::from(home).join(".claude/.credentials.json"),
        ));
    }
    Err(ctx.invalid(
        &[key("credentials")],
        0,
        "cannot find the default credentials file: neither CLAUDE_CONFIG_DIR nor HOME is set"
            .to_owned(),
        Some("set `credentials.file` in the config"),
    ))
}

fn agent_spec(
    name: String,
    raw: RawAgent,
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
