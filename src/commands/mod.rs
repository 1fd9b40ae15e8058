//! One module per command, and what they share: loading the spec, reaching the engine,
//! and finding the project's containers.

pub mod creds;
pub mod doctor;
pub mod down;
pub mod exec;
pub mod image;
pub mod init;
pub mod logs;
pub mod ps;
pub mod up;

pub(crate) use crate::fleet::{members, select, Member};

use std::path::PathBuf;

use anyhow::Context as _;

use crate::config::{self, ConfigError, Spec};
use crate::engine::Engine;

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
