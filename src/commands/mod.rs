//! One module per command, and what they share: loading the spec, reaching the engine,
//! and finding the project's containers.

pub mod creds;
pub mod doctor;
pub mod down;
pub mod exec;
pub mod export;
pub mod image;
pub mod init;
pub mod logs;
pub mod ps;
pub mod up;

use std::path::PathBuf;

use anyhow::{bail, Context as _};

use crate::config::{self, ConfigError, Spec};
use crate::engine::Engine;
use crate::fleet::label;

/// Options every command takes, free of clap.
#[derive(Debug, Clone, Default)]
pub struct Global {
    pub file: Option<PathBuf>,
    pub project_name: Option<String>,
    pub host: Option<String>,
}

fn env_lookup(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// Loads and validates the config, printing its warnings.
pub fn load_spec(global: &Global) -> anyhow::Result<Spec> {
    let options = config::LoadOptions {
        file: global.file.clone(),
        project_name: global.project_name.clone(),
    };
    let loaded = config::load(&options, &env_lookup)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(loaded.spec)
}

/// The project name without needing a valid config when `-p` names it (for `down`, `ps`).
pub fn project_name(global: &Global) -> anyhow::Result<String> {
    match load_spec(global) {
        Ok(spec) => Ok(spec.project),
        Err(e) => match (e.downcast_ref::<ConfigError>(), &global.project_name) {
            (Some(ConfigError::NotFound { .. }), Some(name)) => Ok(name.clone()),
            _ => Err(e),
        },
    }
}

pub async fn connect(global: &Global) -> anyhow::Result<Engine> {
    Ok(Engine::connect(global.host.as_deref()).await?)
}

/// A container of the project, as its labels describe it.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub agent: String,
    pub replica: Option<u32>,
    pub config_hash: String,
    pub role: crate::plan::Role,
    pub state: String,
    pub image: String,
    /// Unix seconds.
    pub created: i64,
}

impl Member {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

/// Every container labelled as the project's, sorted by agent then replica.
pub async fn members(engine: &Engine, project: &str) -> anyhow::Result<Vec<Member>> {
    let list = engine.list_containers(&[(label::PROJECT, project)]).await?;
    let mut out: Vec<Member> = list
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
            Member {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.first().cloned())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                agent: get(label::AGENT),
                replica: get(label::REPLICA).parse().ok(),
                config_hash: get(label::CONFIG_HASH),
                role: crate::plan::Role::parse(&get(label::ROLE)),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                created: c.created.unwrap_or_default(),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.agent, a.replica, &a.name).cmp(&(&b.agent, b.replica, &b.name)));
    Ok(out)
}

/// The members a TARGET names: a container name, `<agent>-<n>`, or an agent (all its
/// replicas).
pub fn select<'a>(
    project: &str,
    members: &'a [Member],
    target: &str,
) -> anyhow::Result<Vec<&'a Member>> {
    let exact: Vec<&Member> = members
        .iter()
        .filter(|m| m.name == target || m.name == format!("{project}-{target}"))
        .collect();
    if !exact.is_empty() {
        return Ok(exact);
    }
    let by_agent: Vec<&Member> = members.iter().filter(|m| m.agent == target).collect();
    if !by_agent.is_empty() {
        return Ok(by_agent);
    }
    let known: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    if known.is_empty() {
        bail!("no container matches `{target}`: project `{project}` has no containers\n  hint: run `claunch up` first");
    }
    bail!(
        "no container matches `{target}` in project `{project}` (it has {})\n  hint: use a container name, <agent>-<n> or an agent name; `claunch ps` lists them",
        known.join(", ")
    )
}

/// Reads a prompt argument, `-` meaning stdin.
pub fn read_prompt(prompt: &str) -> anyhow::Result<Option<Vec<u8>>> {
    if prompt != "-" {
        return Ok(None);
    }
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
        .context("reading the prompt from stdin")?;
    Ok(Some(buf))
}
