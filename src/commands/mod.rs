//! One module per command, and what they share: loading the spec, reaching the engine,
//! and finding the project's containers.

mod clock;
pub(crate) mod creds;
pub(crate) mod doctor;
pub(crate) mod down;
pub(crate) mod exec;
pub(crate) mod image;
pub(crate) mod init;
pub(crate) mod logs;
mod metrics;
pub(crate) mod ps;
pub(crate) mod pull;
pub(crate) mod resolved;
pub(crate) mod run;
pub(crate) mod stop_start;
pub(crate) mod up;
pub(crate) mod version;

pub(crate) use crate::fleet::{members, select, select_many, Member};

use std::path::PathBuf;

use anyhow::Context as _;

use crate::config::{self, AgentSpec, ConfigError, Spec};
use crate::engine::Engine;
use crate::report;

/// Options every command takes.
#[derive(Debug, Clone)]
pub struct Global {
    pub file: Option<PathBuf>,
    pub project_name: Option<String>,
    pub host: Option<String>,
    /// How many containers a command works on at once.
    pub parallel: usize,
}

impl Default for Global {
    fn default() -> Self {
        Self {
            file: None,
            project_name: None,
            host: None,
            parallel: 8,
        }
    }
}

/// One validated command line: the global options and the verb with its own.
#[derive(Debug)]
pub struct Invocation {
    pub global: Global,
    pub verb: Verb,
}

/// What to do; a `bool` beside options is `--json`.
#[derive(Debug)]
pub enum Verb {
    Up(up::UpOptions, bool),
    Exec(exec::ExecOptions),
    Ps(ps::PsOptions),
    Logs(logs::LogsOptions),
    Stop {
        targets: Vec<String>,
        json: bool,
    },
    /// `start`, or with `restart` set, `restart`.
    Start {
        targets: Vec<String>,
        restart: bool,
        json: bool,
    },
    /// `config`: what of the resolved config to print.
    Config(resolved::Show),
    Pull {
        agents: Vec<String>,
        json: bool,
    },
    Version(version::Asked),
    Down {
        volumes: bool,
        json: bool,
    },
    Init {
        dir: PathBuf,
        force: bool,
    },
    CredsSync(creds::SyncOptions, bool),
    CredsPush {
        target: Option<String>,
        json: bool,
    },
    CredsStatus(creds::StatusOptions),
    CredsExport(creds::export::ExportOptions),
    Doctor(doctor::DoctorOptions),
    ImageBuild(image::BuildOptions, bool),
    Run(run::RunOptions),
    /// Text that is ready (shell completions).
    Print(Vec<u8>),
}

/// How a command ended, as the process's exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    /// Something failed (a smoke test, a container, a check).
    Failure,
    /// `creds status`: a token is about to expire with nobody to refresh it.
    Critical,
    /// A `claunch exec` that did not finish within `--timeout` (as `timeout(1)` says it).
    TimedOut,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// claude's own exit code, passed through by a single `exec`.
    Passed(u8),
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
            Self::Critical => 2,
            Self::TimedOut => 124,
            Self::Interrupted => 130,
            Self::Passed(code) => code,
        }
    }

    /// `Failure` when `failed`, else `Success`.
    pub fn failed_if(failed: bool) -> Self {
        if failed {
            Self::Failure
        } else {
            Self::Success
        }
    }
}

/// Runs one invocation.
pub async fn dispatch(invocation: Invocation) -> anyhow::Result<ExitStatus> {
    let g = &invocation.global;
    match invocation.verb {
        Verb::Up(options, json) => up::up(g, options, report::pick(json)).await,
        Verb::Exec(options) => exec::exec(g, options).await,
        Verb::Ps(options) => ps::ps(g, options).await,
        Verb::Logs(options) => logs::logs(g, &options).await,
        Verb::Stop { targets, json } => stop_start::stop(g, &targets, report::pick(json)).await,
        Verb::Start {
            targets,
            restart,
            json,
        } => stop_start::start(g, &targets, restart, report::pick(json)).await,
        Verb::Config(show) => resolved::config(g, show),
        Verb::Pull { agents, json } => pull::pull(g, &agents, report::pick(json)).await,
        Verb::Version(asked) => version::version(g, asked).await,
        Verb::Down { volumes, json } => down::down(g, volumes, report::pick(json)).await,
        Verb::Init { dir, force } => init::init(&dir, force),
        Verb::CredsSync(options, json) => creds::sync(g, options, report::pick(json)).await,
        Verb::CredsPush { target, json } => {
            creds::push(g, target.as_deref(), report::pick(json)).await
        }
        Verb::CredsStatus(options) => creds::status(g, options).await,
        Verb::CredsExport(options) => creds::export::export(options).await,
        Verb::Doctor(options) => doctor::doctor(g, &options).await,
        Verb::ImageBuild(options, json) => image::build(g, options, report::pick(json)).await,
        Verb::Run(options) => run::run(g, options).await,
        Verb::Print(bytes) => {
            std::io::Write::write_all(&mut std::io::stdout(), &bytes)?;
            Ok(ExitStatus::Success)
        }
    }
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

/// The agents `names` (all when empty), each checked against the config.
pub(crate) fn chosen_agents<'a>(
    spec: &'a Spec,
    names: &[String],
) -> anyhow::Result<Vec<&'a AgentSpec>> {
    if let Some(unknown) = names.iter().find(|n| spec.agent(n).is_none()) {
        let known: Vec<&str> = spec.agents.iter().map(|a| a.name.as_str()).collect();
        anyhow::bail!(
            "no agent `{unknown}` in {}\n  hint: the agents are {}",
            spec.file.display(),
            known.join(", ")
        );
    }
    Ok(spec
        .agents
        .iter()
        .filter(|a| names.is_empty() || names.contains(&a.name))
        .collect())
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

/// Reads a prompt from stdin, whole.
pub fn read_stdin_prompt() -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
        .context("reading the prompt from stdin")?;
    Ok(buf)
}
