//! `claunch creds export`: put the host's login into a secrets manager (through the
//! cloud's CLI, the value on stdin, never in argv), or print it base64-encoded for an
//! environment variable. Needs no claunch.yaml.

use crate::commands::ExitStatus;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::config::CredentialsSpec;
use crate::credentials::sources::{self, Stored};
use crate::credentials::{self, Credentials};

/// How long each cloud CLI call may take; a config's `credentials.timeout` does not apply
/// here, as export needs no config.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The variable named in the hint of `--to env` unless `--name` says.
const DEFAULT_VAR: &str = "CLAUDE_CREDENTIALS";

/// What `creds export` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// `aws_secret`, `gcp_secret`, `azure_secret` or `env`.
    pub to: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub vault: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub project: Option<String>,
    /// The credentials file; Claude Code's own when `None`.
    pub from: Option<PathBuf>,
}

pub async fn export(o: ExportOptions) -> anyhow::Result<ExitStatus> {
    let target = target(&o)?;
    let from = match &o.from {
        Some(path) => path.clone(),
        None => default_file()?,
    };
    let creds = Credentials::read_file(&from)?;
    let left = creds.summary.expires_in_ms(credentials::now_ms());
    if left.is_some_and(|ms| ms <= 0) && !creds.summary.has_refresh_token {
        eprintln!(
            "warning: {}: the access token has expired and there is no refresh token: run `claude login` first",
            from.display()
        );
    }
    let Some(spec) = target else {
        let var = o.name.as_deref().unwrap_or(DEFAULT_VAR);
        let encoded = sources::base64::encode(creds.raw().expose());
        let mut out = std::io::stdout().lock();
        out.write_all(encoded.expose())
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .context("writing to stdout")?;
        eprintln!(
            "the login from {} went to stdout, base64-encoded: it is a secret, keep it out of logs and shell history\n  use it: export {var}=\"$(claunch creds export --to env)\", and `credentials: {{env: {var}}}` in claunch.yaml\n  note: claunch cannot write a refreshed login back to a variable; a secrets manager can keep it current",
            from.display()
        );
        return Ok(ExitStatus::Success);
    };
    let describe = spec.describe();
    let expiry = left.map_or_else(|| "no expiry".to_owned(), credentials::describe_remaining);
    match sources::store_login(&spec, TIMEOUT, &creds).await? {
        Stored::Created => println!(
            "created {describe} with the login from {} ({expiry})",
            from.display()
        ),
        Stored::Written => println!(
            "stored the login from {} in {describe} ({expiry})",
            from.display()
        ),
        Stored::Unchanged => println!(
            "{describe} already holds the login from {}",
            from.display()
        ),
        Stored::KeptNewer => bail!(
            "{describe} holds a newer login than {}: left as it is\n  hint: that is the login in use (`claunch creds sync` keeps it current); after a new `claude login` the host's file is the newer one",
            from.display()
        ),
    }
    Ok(ExitStatus::Success)
}

/// The store named by the flags; `None` for `--to env`.
fn target(o: &ExportOptions) -> anyhow::Result<Option<CredentialsSpec>> {
    let flags = [
        ("--id", &o.id),
        ("--name", &o.name),
        ("--vault", &o.vault),
        ("--region", &o.region),
        ("--profile", &o.profile),
        ("--project", &o.project),
    ];
    let allowed: &[&str] = match o.to.as_str() {
        "aws_secret" => &["--id", "--region", "--profile"],
        "gcp_secret" => &["--name", "--project"],
        "azure_secret" => &["--vault", "--name"],
        "env" => &["--name"],
        other => bail!("--to {other}: not a place claunch can export to\n  hint: use aws_secret, gcp_secret, azure_secret or env"),
    };
    for (flag, value) in flags {
        if value.is_some() && !allowed.contains(&flag) {
            bail!(
                "{flag} does not apply to --to {}\n  hint: it takes {}",
                o.to,
                allowed.join(", ")
            );
        }
    }
    let need = |flag: &str, value: &Option<String>| -> anyhow::Result<String> {
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => bail!("--to {} needs {flag}", o.to),
        }
    };
    let optional = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    Ok(Some(match o.to.as_str() {
        "aws_secret" => CredentialsSpec::AwsSecret {
            id: need("--id", &o.id)?,
            region: optional(&o.region),
            profile: optional(&o.profile),
        },
        "gcp_secret" => CredentialsSpec::GcpSecret {
            name: need("--name", &o.name)?,
            project: optional(&o.project),
        },
        "azure_secret" => CredentialsSpec::AzureSecret {
            vault: need("--vault", &o.vault)?,
            name: need("--name", &o.name)?,
        },
        _ => return Ok(None),
    }))
}

/// Where Claude Code keeps the login: `$CLAUDE_CONFIG_DIR` or `~/.claude`.
fn default_file() -> anyhow::Result<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("CLAUDE_CONFIG_DIR") {
        return Ok(PathBuf::from(dir).join(".credentials.json"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".claude/.credentials.json")),
        None => bail!("cannot find the credentials file: neither CLAUDE_CONFIG_DIR nor HOME is set\n  hint: pass --from PATH"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(to: &str) -> ExportOptions {
        ExportOptions {
            to: to.into(),
            ..ExportOptions::default()
        }
    }

    #[test]
    fn flags_must_fit_the_target() {
        let mut o = options("aws_secret");
        assert_eq!(
            target(&o).unwrap_err().to_string(),
            "--to aws_secret needs --id"
        );
        o.id = Some("claude".into());
        o.region = Some("eu-west-1".into());
        assert_eq!(
            target(&o).unwrap().unwrap().describe(),
            "aws_secret claude (eu-west-1)"
        );
        o.vault = Some("v".into());
        assert!(target(&o)
            .unwrap_err()
            .to_string()
            .starts_with("--vault does not apply to --to aws_secret"));
        let mut o = options("azure_secret");
        o.vault = Some("v".into());
        assert!(target(&o).is_err(), "needs --name too");
        o.name = Some("n".into());
        assert!(target(&o).unwrap().is_some());
        assert!(target(&options("env")).unwrap().is_none());
    }
}
