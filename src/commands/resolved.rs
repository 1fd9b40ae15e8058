//! `claunch config`: the config as claunch reads it (interpolated, defaults filled in), in
//! the shape of claunch.yaml so that it loads again, with every secret `<redacted>`.

use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::{ExitStatus, Global};
use crate::config::{AgentSpec, CredentialsSpec, Spec};
use crate::fleet;

/// What stands in for a secret.
const REDACTED: &str = "<redacted>";

/// What `claunch config` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// The whole resolved config, as YAML.
    Config,
    /// Nothing: the exit code says whether the config is valid.
    Nothing,
    /// The agents' names, one a line.
    Agents,
}

pub fn config(global: &Global, show: Show) -> anyhow::Result<ExitStatus> {
    let spec = super::load_spec(global)?;
    match show {
        Show::Config => print!("{}", to_yaml(&spec)?),
        Show::Nothing => {}
        Show::Agents => {
            for agent in &spec.agents {
                println!("{}", agent.name);
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// The spec as claunch.yaml, secrets redacted.
pub(crate) fn to_yaml(spec: &Spec) -> anyhow::Result<String> {
    let mut doc = Mapping::new();
    doc.insert("project".into(), text(&spec.project));
    let mut credentials = source(&spec.credentials);
    credentials.insert(
        "timeout".into(),
        Value::String(duration(spec.credentials_timeout)),
    );
    doc.insert("credentials".into(), Value::Mapping(credentials));
    let mut agents = Mapping::new();
    for agent in &spec.agents {
        agents.insert(text(&agent.name), Value::Mapping(agent_map(spec, agent)));
    }
    doc.insert("agents".into(), Value::Mapping(agents));
    Ok(serde_yaml::to_string(&Value::Mapping(doc))?)
}

/// A string as it may be printed and loaded again: anything token-shaped masked, and `$`
/// doubled, since the file is interpolated when it is read.
fn text(s: &str) -> Value {
    Value::String(crate::secret::redact(s).replace('$', "$$"))
}

fn list(items: &[String]) -> Value {
    Value::Sequence(items.iter().map(|s| text(s)).collect())
}

fn duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The one source of the login, the value of a token or a key never shown.
fn source(spec: &CredentialsSpec) -> Mapping {
    let mut m = Mapping::new();
    let mut put = |key: &str, value: Value| {
        m.insert(key.into(), value);
    };
    match spec {
        CredentialsSpec::File(path) => put("file", text(&path.display().to_string())),
        CredentialsSpec::Env(name) => put("env", text(name)),
        CredentialsSpec::Command {
            command,
            write_command,
        } => {
            put("command", list(command));
            if let Some(write) = write_command {
                put("write_command", list(write));
            }
        }
        CredentialsSpec::AwsSecret {
            id,
            region,
            profile,
        } => {
            let mut s = Mapping::new();
            s.insert("id".into(), text(id));
            for (key, value) in [("region", region), ("profile", profile)] {
                if let Some(value) = value {
                    s.insert(key.into(), text(value));
                }
            }
            put("aws_secret", Value::Mapping(s));
        }
        CredentialsSpec::GcpSecret { name, project } => {
            let mut s = Mapping::new();
            s.insert("name".into(), text(name));
            if let Some(project) = project {
                s.insert("project".into(), text(project));
            }
            put("gcp_secret", Value::Mapping(s));
        }
        CredentialsSpec::AzureSecret { vault, name } => {
            let mut s = Mapping::new();
            s.insert("vault".into(), text(vault));
            s.insert("name".into(), text(name));
            put("azure_secret", Value::Mapping(s));
        }
        CredentialsSpec::OauthToken(_) | CredentialsSpec::ApiKey(_) => {
            put(spec.kind(), Value::String(REDACTED.into()));
        }
    }
    m
}

/// Whether an environment variable's name says its value is a secret
/// (`GITHUB_TOKEN`, `ANTHROPIC_API_KEY`, `DB_PASSWORD`…).
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "KEY",
        "CREDENTIAL",
        "AUTH",
        "PRIVATE",
    ]
    .iter()
    .any(|word| name.contains(word))
}

fn agent_map(spec: &Spec, a: &AgentSpec) -> Mapping {
    let mut m = Mapping::new();
    let mut put = |key: &str, value: Value| {
        m.insert(key.into(), value);
    };
    put("image", text(&a.image));
    put("replicas", Value::Number(a.replicas.into()));
    // Left out when not set: the image's own, which only the engine knows.
    if let Some(user) = &a.user {
        put("user", text(user));
    }
    if let Some(command) = &a.command {
        put("command", list(command));
    }
    if let Some(entrypoint) = &a.entrypoint {
        put("entrypoint", list(entrypoint));
    }
    if let Some(dir) = &a.working_dir {
        put("working_dir", text(dir));
    }
    let env = a
        .env
        .iter()
        .map(|(name, value)| {
            let value = if secret_name(name) {
                Value::String(REDACTED.into())
            } else {
                text(value)
            };
            (text(name), value)
        })
        .collect();
    put("env", Value::Mapping(env));
    put("network", text(&fleet::network_name(&spec.project, a)));
    put("extra_hosts", list(&a.extra_hosts));
    put("volumes", list(&a.volumes));
    let files = a
        .files
        .iter()
        .map(|f| {
            let mut file = Mapping::new();
            file.insert("source".into(), text(&f.source.display().to_string()));
            file.insert("target".into(), text(&f.target));
            file.insert("mode".into(), Value::String(format!("{:04o}", f.mode)));
            Value::Mapping(file)
        })
        .collect();
    put("files", Value::Sequence(files));
    let smoke = match &a.smoke {
        None => Value::Bool(false),
        Some(s) => {
            let mut smoke = Mapping::new();
            smoke.insert("prompt".into(), text(&s.prompt));
            smoke.insert("max_turns".into(), Value::Number(s.max_turns.into()));
            smoke.insert("timeout".into(), Value::String(duration(s.timeout)));
            Value::Mapping(smoke)
        }
    };
    put("smoke", smoke);
    put("onboarding", Value::Bool(a.onboarding));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, LoadOptions};

    fn load_text(dir: &std::path::Path, yaml: &str, env: &[(&str, &str)]) -> Spec {
        let file = dir.join("claunch.yaml");
        std::fs::write(&file, yaml).unwrap();
        let options = LoadOptions {
            file: Some(file),
            project_name: None,
        };
        let lookup = |k: &str| {
            env.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_string())
        };
        load(&options, &lookup).unwrap().spec
    }

    #[test]
    fn secrets_are_redacted_and_the_rest_loads_again() {
        let dir = tempfile::tempdir().unwrap();
        let token = "sk-ant-oat01-FAKE-TOKEN-FOR-THIS-TEST-0123456789";
        let yaml = "project: demo\ncredentials:\n  oauth_token: ${TOKEN}\nagents:\n  planner:\n    image: img:1\n    replicas: 2\n    env:\n      GITHUB_TOKEN: ghp_secret\n      NOTE: ${TOKEN}\n      PRICE: $$5\n    smoke:\n      timeout: 1500ms\n  coder:\n    image: img:2\n    smoke: false\n    files:\n      - {source: ./f, target: .f, mode: \"0640\"}\n";
        let spec = load_text(dir.path(), yaml, &[("TOKEN", token), ("HOME", "/h")]);
        let out = to_yaml(&spec).unwrap();
        assert!(!out.contains("FAKE-TOKEN"), "{out}");
        assert!(!out.contains("ghp_secret"), "{out}");
        assert!(out.contains("oauth_token: <redacted>"), "{out}");
        assert!(out.contains("GITHUB_TOKEN: <redacted>"), "{out}");
        assert!(out.contains("NOTE: sk-ant-<redacted>"), "{out}");
        assert!(out.contains("PRICE: $$5"), "{out}");
        assert!(out.contains("network: demo_default"), "{out}");
        assert!(out.contains("timeout: 1500ms"), "{out}");
        assert!(out.contains("mode: '0640'"), "{out}");
        // Without the redacted values, what it prints is the same config, but that the
        // default network is now written out.
        let again = load_text(dir.path(), &out, &[("HOME", "/h")]);
        let mut expected = spec.clone();
        expected.credentials = again.credentials.clone();
        expected.agents[0].env = again.agents[0].env.clone();
        for agent in &mut expected.agents {
            agent.network = Some("demo_default".into());
        }
        assert_eq!(again, expected);
        assert_eq!(again.agents[0].env["PRICE"], "$5");
    }

    #[test]
    fn secret_names_are_told_apart() {
        for name in [
            "ANTHROPIC_API_KEY",
            "github_token",
            "DB_PASSWORD",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(secret_name(name), "{name}");
        }
        for name in ["LOG_LEVEL", "HOME", "PATH"] {
            assert!(!secret_name(name), "{name}");
        }
    }
}
