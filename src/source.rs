//! Where the login comes from and where a refreshed one goes back: the `credentials:`
//! section of claunch.yaml, fetched into a [`Login`] and written back after a refresh.

use std::path::Path;

use anyhow::{bail, Context as _};

use crate::config::CredentialsSpec;
use crate::credentials::{self, family, store, Credentials};
use crate::login::Login;
use crate::report::Reporter;

/// Fetches the configured login, warning about what will break later.
pub fn fetch(spec: &CredentialsSpec, reporter: &dyn Reporter) -> anyhow::Result<Login> {
    match spec {
        CredentialsSpec::File(path) => {
            let creds = Credentials::read_file(path)?;
            if credentials::readable_by_others(path) {
                reporter.warn(&format!(
                    "{} can be read by other users: run `chmod 600 {}`",
                    path.display(),
                    path.display()
                ));
            }
            warn_expired(&creds, &path.display().to_string(), reporter);
            Ok(Login::from_credentials(creds))
        }
        CredentialsSpec::OauthToken(token) => {
            let file = family::from_setup_token(token, credentials::now_ms());
            let creds = Credentials::parse(file).map_err(|e| anyhow::anyhow!("credentials.oauth_token: {e}"))?;
            Ok(Login::Shared(creds))
        }
        CredentialsSpec::ApiKey(key) => Ok(Login::ApiKey(key.clone())),
        other => bail!(
            "credentials: {} is not supported by this version of claunch\n  hint: use `file:`, `oauth_token:` or `api_key:`",
            other.kind()
        ),
    }
}

fn warn_expired(creds: &Credentials, source: &str, reporter: &dyn Reporter) {
    if let Some(left) = creds.summary.expires_in_ms(credentials::now_ms()) {
        if left <= 0 && !creds.summary.has_refresh_token {
            reporter.warn(&format!(
                "{source}: the access token {} and there is no refresh token: run `claude login`",
                credentials::describe_remaining(left)
            ));
        }
    }
}

/// What happened when claunch tried to put a newer login back where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteBack {
    Written,
    /// The source already held something at least as new (another sync got there first).
    SourceNewer,
    /// The source cannot be written (an env var, a token in the config): said where to.
    ReadOnly(String),
}

/// Writes `new` back to the source unless the source already holds something newer.
pub async fn write_back(spec: &CredentialsSpec, new: &Credentials) -> anyhow::Result<WriteBack> {
    match spec {
        CredentialsSpec::File(path) => {
            // The store locks and fsyncs: keep that off the async workers.
            let (path, new) = (path.clone(), new.clone());
            tokio::task::spawn_blocking(move || write_file(&path, &new)).await?
        }
        other => Ok(WriteBack::ReadOnly(format!(
            "{} cannot be written back: store the refreshed login where {} reads it",
            other.describe(),
            other.kind()
        ))),
    }
}

fn write_file(path: &Path, new: &Credentials) -> anyhow::Result<WriteBack> {
    let outcome = store::write_atomic(path, new.raw(), None)
        .with_context(|| format!("writing the refreshed login back to {}", path.display()))?;
    Ok(match outcome {
        store::WriteOutcome::Written | store::WriteOutcome::Unchanged => WriteBack::Written,
        store::WriteOutcome::KeptNewer | store::WriteOutcome::ChangedMeanwhile => {
            WriteBack::SourceNewer
        }
    })
}
