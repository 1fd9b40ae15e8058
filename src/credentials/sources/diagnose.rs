//! What a failed run of a source's program means: a missing program, a CLI that is not
//! logged in, a missing secret, a permission, a config to fix; each with its fix, in the
//! CLI's own words where they help, never with its stdout.

use super::backend::{Backend, Diagnosis, Op};
use super::error::ErrorKind;

impl Backend<'_> {
    /// The fix for a program that is not on PATH.
    pub fn not_installed(&self) -> Diagnosis {
        let program = self.program();
        let (message, hint) = match self {
            Self::Command { .. } => (
                format!("`{program}` was not found"),
                "`credentials.command` must name a program on PATH, or give its absolute path"
                    .to_owned(),
            ),
            Self::Aws { .. } => (
                "the aws CLI is not installed (no `aws` on PATH)".to_owned(),
                "install it (`pip install awscli`, or AWS CLI v2), then run `aws configure`"
                    .to_owned(),
            ),
            Self::Gcp { .. } => (
                "the gcloud CLI is not installed (no `gcloud` on PATH)".to_owned(),
                "install the Google Cloud CLI (Debian, Ubuntu: `apt-get install google-cloud-cli`), then run `gcloud auth login`".to_owned(),
            ),
            Self::Azure { .. } => (
                "the az CLI is not installed (no `az` on PATH)".to_owned(),
                "install the Azure CLI (`pip install azure-cli`), then run `az login`".to_owned(),
            ),
        };
        Diagnosis {
            kind: ErrorKind::NotInstalled,
            message,
            hint: Some(hint),
        }
    }

    /// What a non-zero exit with this stderr means.
    pub fn diagnose(&self, op: Op, code: Option<i32>, stderr: &str) -> Diagnosis {
        let said = first_error_line(stderr);
        let d = |kind, message: String, hint: Option<String>| Diagnosis {
            kind,
            message,
            hint,
        };
        let create_hint = || {
            self.export_command()
                .map(|c| format!("create it with `{c}`"))
        };
        let has = |needle: &str| stderr.contains(needle);
        match *self {
            Self::Command { read, write } => {
                let argv = if op == Op::Read { Some(read) } else { write };
                let program = argv.and_then(|a| a.first()).map_or("", String::as_str);
                let key = if op == Op::Read {
                    "command"
                } else {
                    "write_command"
                };
                let status =
                    code.map_or_else(|| "was killed".to_owned(), |c| format!("exited with {c}"));
                let message = if said.is_empty() {
                    format!("`{program}` {status} (it printed nothing on stderr)")
                } else {
                    format!("`{program}` {status}: {}", excerpt(stderr))
                };
                d(
                    ErrorKind::Failed,
                    message,
                    Some(format!(
                        "run the `credentials.{key}` of claunch.yaml yourself to see what is wrong"
                    )),
                )
            }
            Self::Aws { id, profile, .. } => {
                let profile_flag = profile
                    .map(|p| format!(" --profile {p}"))
                    .unwrap_or_default();
                if has("Unable to locate credentials") {
                    d(
                        ErrorKind::NotLoggedIn,
                        format!("aws: {said}"),
                        Some("run `aws configure` or set AWS_PROFILE (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY on a server)".into()),
                    )
                } else if has("could not be found") && has("profile") {
                    d(
                        ErrorKind::Config,
                        format!("aws: {said}"),
                        Some("fix `profile:` of `aws_secret` in claunch.yaml (`aws configure list-profiles` lists them)".into()),
                    )
                } else if has("You must specify a region") {
                    d(
                        ErrorKind::Config,
                        format!("aws: {said}"),
                        Some(
                            "add `region:` to `aws_secret` in claunch.yaml, or set AWS_REGION"
                                .into(),
                        ),
                    )
                } else if has("SSO") || has("ExpiredToken") || has("expired") {
                    d(
                        ErrorKind::NotLoggedIn,
                        format!("aws: {said}"),
                        Some(format!("log in again: `aws sso login{profile_flag}`, or renew the session's keys")),
                    )
                } else if has("UnrecognizedClientException")
                    || has("InvalidClientTokenId")
                    || has("InvalidSignatureException")
                    || has("SignatureDoesNotMatch")
                {
                    d(
                        ErrorKind::NotLoggedIn,
                        format!("aws: {said}"),
                        Some(
                            "the access key is not valid: run `aws configure` with a working one"
                                .into(),
                        ),
                    )
                } else if has("ResourceNotFoundException") {
                    let message = if has("staging label") {
                        format!("the secret {id} has no value yet (ResourceNotFoundException)")
                    } else {
                        format!("no secret named {id} (ResourceNotFoundException)")
                    };
                    d(ErrorKind::NotFound, message, create_hint())
                } else if has("ResourceExistsException") {
                    d(ErrorKind::AlreadyExists, format!("aws: {said}"), None)
                } else if has("AccessDenied") || has("not authorized") {
                    let action = if op == Op::Read {
                        "secretsmanager:GetSecretValue"
                    } else {
                        "secretsmanager:PutSecretValue (and CreateSecret to create it)"
                    };
                    d(
                        ErrorKind::Denied,
                        format!("aws: {said}"),
                        Some(format!("the AWS identity needs {action} on {id}")),
                    )
                } else if has("Could not connect to the endpoint URL") || has("Connect timeout") {
                    d(
                        ErrorKind::Unreachable,
                        format!("aws: {said}"),
                        Some(
                            "check the network, the region, and AWS_ENDPOINT_URL if it is set"
                                .into(),
                        ),
                    )
                } else {
                    failed("aws", code, &said)
                }
            }
            Self::Gcp { name, .. } => {
                if has("gcloud auth login") || has("active account") || has("Reauthentication") {
                    d(
                        ErrorKind::NotLoggedIn,
                        format!("gcloud: {said}"),
                        Some("run `gcloud auth login` (on a server: `gcloud auth activate-service-account --key-file=KEY.json`)".into()),
                    )
                } else if has("[project]") {
                    d(
                        ErrorKind::Config,
                        "gcloud: no project is set".into(),
                        Some("add `project:` to `gcp_secret` in claunch.yaml, or run `gcloud config set project PROJECT`".into()),
                    )
                } else if has("NOT_FOUND") {
                    let message = if has("no versions") {
                        format!("no secret named {name}, or it has no versions (NOT_FOUND)")
                    } else {
                        format!("no secret named {name} (NOT_FOUND)")
                    };
                    d(ErrorKind::NotFound, message, create_hint())
                } else if has("ALREADY_EXISTS") || has("already exists") {
                    d(ErrorKind::AlreadyExists, format!("gcloud: {said}"), None)
                } else if has("PERMISSION_DENIED") {
                    let role = if op == Op::Read {
                        "roles/secretmanager.secretAccessor"
                    } else {
                        "roles/secretmanager.secretVersionAdder (and secretmanager.secrets.create to create it)"
                    };
                    d(
                        ErrorKind::Denied,
                        format!("gcloud: {said}"),
                        Some(format!("the account needs {role} on {name}")),
                    )
                } else {
                    failed("gcloud", code, &said)
                }
            }
            Self::Azure { vault, name } => {
                if has("az login") {
                    d(
                        ErrorKind::NotLoggedIn,
                        format!("az: {said}"),
                        Some("run `az login` (on an Azure VM: `az login --identity`)".into()),
                    )
                } else if has("SecretNotFound") {
                    d(
                        ErrorKind::NotFound,
                        format!("no secret named {name} in vault {vault} (SecretNotFound)"),
                        create_hint(),
                    )
                } else if has("Failed to resolve")
                    || has("getaddrinfo")
                    || has("Name or service not known")
                    || has("VaultNotFound")
                {
                    d(
                        ErrorKind::Unreachable,
                        format!("the vault {vault} cannot be reached: {said}"),
                        Some(
                            "check `vault:` in claunch.yaml: the vault's name, not its URL".into(),
                        ),
                    )
                } else if has("Forbidden") || has("does not have secrets") || has("not authorized")
                {
                    let role = if op == Op::Read {
                        "Key Vault Secrets User"
                    } else {
                        "Key Vault Secrets Officer"
                    };
                    d(
                        ErrorKind::Denied,
                        format!("az: {said}"),
                        Some(format!(
                            "give the identity the {role} role on vault {vault}"
                        )),
                    )
                } else {
                    failed("az", code, &said)
                }
            }
        }
    }
}

fn failed(program: &str, code: Option<i32>, said: &str) -> Diagnosis {
    let status = code.map_or_else(|| "was killed".to_owned(), |c| format!("exited with {c}"));
    let message = if said.is_empty() {
        format!("{program} {status}")
    } else {
        format!("{program}: {said}")
    };
    Diagnosis {
        kind: ErrorKind::Failed,
        message,
        hint: Some(format!(
            "run the same `{program}` command yourself to see the whole error"
        )),
    }
}

/// The first line of a CLI's error, without the `ERROR: (gcloud.…)` or `ERROR:` prefix.
fn first_error_line(stderr: &str) -> String {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("WARNING"))
        .unwrap_or("");
    let line = line.strip_prefix("ERROR:").map_or(line, str::trim_start);
    let line = match line.strip_prefix('(') {
        Some(rest) if rest.starts_with("gcloud") => rest
            .split_once(')')
            .map_or(line, |(_, after)| after.trim_start()),
        _ => line,
    };
    crate::secret::redact(&shorten(line, 300))
}

/// The first few lines of a command's stderr, on one line.
fn excerpt(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    crate::secret::redact(&shorten(&lines.join(" | "), 400))
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The same three stores the argv tests use.
    use crate::credentials::sources::backend::tests::{AWS, AZ, GCP};

    #[test]
    fn cli_errors_are_told_apart() {
        let aws = |s| AWS.diagnose(Op::Read, Some(255), s);
        let e = aws("\nUnable to locate credentials. You can configure credentials by running \"aws configure\".\n");
        assert_eq!(e.kind, ErrorKind::NotLoggedIn);
        assert!(e.message.starts_with("aws: Unable to locate credentials"));
        let e = aws("\nAn error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: Secrets Manager can't find the specified secret.\n");
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(
            e.hint.as_deref(),
            Some("create it with `claunch creds export --to aws_secret --id claude-oauth-credentials --region eu-west-1`")
        );
        let gcp = GCP.diagnose(Op::Read, Some(1), "ERROR: (gcloud.secrets.versions.access) You do not currently have an active account selected.\nPlease run:\n\n  $ gcloud auth login\n");
        assert_eq!(gcp.kind, ErrorKind::NotLoggedIn);
        assert_eq!(
            gcp.message,
            "gcloud: You do not currently have an active account selected."
        );
        let az = AZ.diagnose(
            Op::Read,
            Some(1),
            "ERROR: Please run 'az login' to setup account.\n",
        );
        assert_eq!(az.kind, ErrorKind::NotLoggedIn);
        let az = AZ.diagnose(Op::Read, Some(3), "ERROR: (SecretNotFound) A secret with (name/id) claude-creds was not found in this key vault.\nCode: SecretNotFound\n");
        assert_eq!(az.kind, ErrorKind::NotFound);
    }

    #[test]
    fn a_command_error_shows_its_stderr_redacted() {
        let read = ["op".to_owned(), "read".to_owned()];
        let b = Backend::Command {
            read: &read,
            write: None,
        };
        let e = b.diagnose(
            Op::Read,
            Some(1),
            "\n[ERROR] token sk-ant-oat01-LEAK rejected\n",
        );
        assert_eq!(
            e.message,
            "`op` exited with 1: [ERROR] token sk-ant-<redacted> rejected"
        );
    }
}
