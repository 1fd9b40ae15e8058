//! Reading, interpolating and validating `claunch.yaml` into a [`Spec`].
//!
//! The steps, in order: read the file and the `.env` beside it, expand
//! `${VAR}` references in the text, parse the YAML strictly, then check the
//! rules serde cannot express and resolve defaults and paths.

mod agent;
mod build;
mod credentials;
mod ctx;
mod dotenv;
mod duration;
mod error;
mod interpolate;
mod locate;
mod parse;
mod project;
mod raw;
mod sourcemap;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use duration::parse_duration;
pub use error::ConfigError;
pub(crate) use parse::unknown_key_hint;

use crate::secret::Secret;

use duration::secs;

/// The file name looked for when `-f` is not given.
pub const DEFAULT_FILE: &str = "claunch.yaml";

/// What the command line says about where the config is.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f FILE`; `./claunch.yaml` when `None`.
    pub file: Option<PathBuf>,
    /// `-p/--project-name`, which beats `CLAUNCH_PROJECT` and `project:`.
    pub project_name: Option<String>,
}

/// A loaded config and the warnings met on the way (e.g. unset variables).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub spec: Spec,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The config file, made absolute.
    pub file: PathBuf,
    pub project: String,
    pub credentials: CredentialsSpec,
    /// How long fetching or writing back the login may take, for the
    /// `command` and cloud secret sources.
    pub credentials_timeout: Duration,
    /// In the order of the file.
    pub agents: Vec<AgentSpec>,
}

impl Spec {
    pub fn agent(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|agent| agent.name == name)
    }
}

/// Where the Claude login comes from: exactly one source.
///
/// `Debug` is safe to print: the two variants holding a secret wrap it in
/// [`Secret`], and [`CredentialsSpec::describe`] never shows one.
#[derive(Debug, Clone, PartialEq)]
pub enum CredentialsSpec {
    /// A `.credentials.json` on the host, absolute.
    File(PathBuf),
    /// The name of a host environment variable holding the credentials
    /// JSON, raw or base64.
    Env(String),
    /// A program printing the credentials JSON on stdout; `write_command`,
    /// when given, receives the refreshed JSON on stdin.
    Command {
        /// Non-empty.
        command: Vec<String>,
        /// Non-empty when given.
        write_command: Option<Vec<String>>,
    },
    /// An AWS Secrets Manager secret.
    AwsSecret {
        id: String,
        region: Option<String>,
        profile: Option<String>,
    },
    /// A Google Cloud Secret Manager secret.
    GcpSecret {
        name: String,
        project: Option<String>,
    },
    /// An Azure Key Vault secret.
    AzureSecret { vault: String, name: String },
    /// A long-lived token from `claude setup-token`; not empty.
    OauthToken(Secret),
    /// An Anthropic API key; not empty.
    ApiKey(Secret),
}

impl CredentialsSpec {
    /// The config key of the source: `file`, `env`, `command`, `aws_secret`,
    /// `gcp_secret`, `azure_secret`, `oauth_token` or `api_key`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Env(_) => "env",
            Self::Command { .. } => "command",
            Self::AwsSecret { .. } => "aws_secret",
            Self::GcpSecret { .. } => "gcp_secret",
            Self::AzureSecret { .. } => "azure_secret",
            Self::OauthToken(_) => "oauth_token",
            Self::ApiKey(_) => "api_key",
        }
    }

    /// One line for humans, e.g. `aws_secret claude-login (us-east-1)`.
    /// Never shows a secret: tokens and keys are named only by kind, and a
    /// command only by its program, since its arguments may hold one.
    pub fn describe(&self) -> String {
        let kind = self.kind();
        match self {
            Self::File(path) => format!("{kind} {}", path.display()),
            Self::Env(name) => format!("{kind} {name}"),
            Self::Command {
                command,
                write_command,
            } => {
                let program = |argv: &[String]| argv.first().cloned().unwrap_or_default();
                match write_command {
                    Some(write) => format!(
                        "{kind} {} (write-back: {})",
                        program(command),
                        program(write)
                    ),
                    None => format!("{kind} {}", program(command)),
                }
            }
            Self::AwsSecret {
                id,
                region,
                profile,
            } => {
                let mut extra: Vec<String> = region.iter().cloned().collect();
                extra.extend(profile.iter().map(|p| format!("profile {p}")));
                with_extra(format!("{kind} {id}"), &extra)
            }
            Self::GcpSecret { name, project } => {
                let extra: Vec<String> = project.iter().map(|p| format!("project {p}")).collect();
                with_extra(format!("{kind} {name}"), &extra)
            }
            Self::AzureSecret { vault, name } => format!("{kind} {name} (vault {vault})"),
            Self::OauthToken(_) | Self::ApiKey(_) => kind.to_owned(),
        }
    }
}

fn with_extra(head: String, extra: &[String]) -> String {
    if extra.is_empty() {
        head
    } else {
        format!("{head} ({})", extra.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentSpec {
    pub name: String,
    pub image: String,
    pub replicas: u32,
    pub user: Option<String>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub env: BTreeMap<String, String>,
    pub network: Option<String>,
    pub extra_hosts: Vec<String>,
    pub volumes: Vec<String>,
    pub files: Vec<FileSpec>,
    /// `None` when the smoke test is turned off.
    pub smoke: Option<SmokeSpec>,
    /// Write `~/.claude.json` with `hasCompletedOnboarding: true`, so that
    /// interactive `claude` skips its first-run screens. The agent's own
    /// `onboarding:`, else the top-level one, else `false`.
    pub onboarding: bool,
}

/// A host file copied into the container.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileSpec {
    /// Absolute path on the host.
    pub source: PathBuf,
    /// Relative to the agent user's HOME unless absolute.
    pub target: String,
    pub mode: u32,
}

/// A one-shot prompt run before the workload to prove the login works.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SmokeSpec {
    pub prompt: String,
    pub max_turns: u32,
    #[serde(with = "secs")]
    pub timeout: Duration,
}

impl Default for SmokeSpec {
    fn default() -> Self {
        Self {
            prompt: "Say hello".to_owned(),
            max_turns: 1,
            timeout: Duration::from_secs(120),
        }
    }
}

/// Loads and validates the config. `env` stands for the process environment:
/// it is what `CLAUNCH_PROJECT`, `HOME`, `CLAUDE_CONFIG_DIR` and `${VAR}`
/// references read. Interpolation, `CLAUNCH_PROJECT` and bare `KEY` env
/// entries fall back to the `.env` file beside the config, as in compose.
pub fn load(
    opts: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let file = opts
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
    let text = match read_bounded(&file) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound && opts.file.is_none() => {
            let path = std::path::absolute(&file).unwrap_or(file);
            return Err(ConfigError::NotFound { path });
        }
        Err(error) if error.kind() == io::ErrorKind::FileTooLarge => {
            return Err(ConfigError::TooLarge {
                path: file,
                limit: MAX_CONFIG_BYTES,
            })
        }
        Err(error) => return Err(ConfigError::Read { path: file, error }),
    };
    let absolute = std::path::absolute(&file).map_err(|error| ConfigError::Read {
        path: file.clone(),
        error,
    })?;
    let dir = absolute.parent().map(PathBuf::from).unwrap_or_default();
    // Canonical so that `-f ../claunch.yaml` still yields a directory name.
    let dir = dir.canonicalize().unwrap_or(dir);

    let dotenv = read_dotenv(&file.with_file_name(".env"))?;
    let lookup = |name: &str| env(name).or_else(|| dotenv.get(name).cloned());

    let interpolated =
        interpolate::interpolate(&text, &lookup).map_err(|err| ConfigError::Interpolation {
            path: file.clone(),
            line: err.line,
            column: err.column,
            message: err.message,
        })?;
    let warnings = interpolated
        .warnings
        .iter()
        .map(|unset| {
            format!(
                "{}:{}:{}: the {} variable is not set, defaulting to a blank string",
                file.display(),
                unset.line,
                unset.column,
                unset.name
            )
        })
        .collect();
    let raw = parse::parse(&interpolated.text, &file, &interpolated.map)?;
    let ctx = ctx::Ctx {
        file: &file,
        absolute: &absolute,
        dir: &dir,
        source: &text,
        text: &interpolated.text,
        map: &interpolated.map,
        env,
        lookup: &lookup,
    };
    let spec = build::build(raw, &ctx, opts.project_name.as_deref())?;
    Ok(Loaded { spec, warnings })
}

/// The most of a config file read: far more than any real one, and it bounds what a
/// `-f /dev/zero` (or a file that grows) can take. A pipe (`-f <(…)`) is fine.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn read_bounded(path: &std::path::Path) -> io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(io::Error::new(io::ErrorKind::FileTooLarge, "too large"));
    }
    Ok(text)
}

fn read_dotenv(path: &std::path::Path) -> Result<HashMap<String, String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => dotenv::parse(&text).map_err(|err| ConfigError::DotEnv {
            path: path.to_owned(),
            line: err.line,
            message: err.message,
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(error) => Err(ConfigError::Read {
            path: path.to_owned(),
            error,
        }),
    }
}
