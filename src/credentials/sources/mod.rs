//! Where the login comes from and where a refreshed one goes back: the `credentials:`
//! section of claunch.yaml, fetched into a [`Login`] and written back after a refresh.
//!
//! A secret never travels in argv, in a child's environment, in a file that outlives the
//! call, or in a message: children get it on stdin (or, for `az`, in a private file removed
//! afterwards), their stdout is read bounded into a [`Secret`] and never quoted.

mod backend;
pub mod base64;
mod child;
mod diagnose;
mod error;
mod private;

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::{CredentialsSpec, Spec};
use crate::credentials::login::Login;
use crate::credentials::{self, family, store, Credentials, ShapeError};
use crate::report::Reporter;
use crate::secret::Secret;

use backend::{Backend, Input, Op};
pub use error::{ErrorKind, SourceError};

/// Fetches the configured login, warning about what will break later. Each program a
/// source runs has `credentials.timeout` to finish.
pub async fn fetch(spec: &Spec, reporter: &dyn Reporter) -> anyhow::Result<Login> {
    let timeout = spec.credentials_timeout;
    let spec = &spec.credentials;
    let creds = match spec {
        CredentialsSpec::File(path) => {
            let creds = Credentials::read_file(path)?;
            if credentials::readable_by_others(path) {
                reporter.warn(&format!(
                    "{} can be read by other users: run `chmod 600 {}`",
                    path.display(),
                    path.display()
                ));
            }
            creds
        }
        CredentialsSpec::Env(name) => read_env(name)?,
        CredentialsSpec::OauthToken(token) => {
            let file = family::from_setup_token(token, credentials::now_ms());
            let creds = Credentials::parse(file)
                .map_err(|e| anyhow::anyhow!("credentials.oauth_token: {e}"))?;
            return Ok(Login::Shared(creds));
        }
        CredentialsSpec::ApiKey(key) => return Ok(Login::ApiKey(key.clone())),
        CredentialsSpec::Command { .. }
        | CredentialsSpec::AwsSecret { .. }
        | CredentialsSpec::GcpSecret { .. }
        | CredentialsSpec::AzureSecret { .. } => {
            let backend = Backend::of(spec).expect("a source run through a program");
            let raw = read(spec, backend, timeout).await?;
            parse(spec, backend, raw)?
        }
    };
    warn_expired(&creds, &spec.describe(), reporter);
    Ok(Login::from_credentials(creds))
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
pub async fn write_back(spec: &Spec, new: &Credentials) -> anyhow::Result<WriteBack> {
    let timeout = spec.credentials_timeout;
    let spec = &spec.credentials;
    let describe = spec.describe();
    match spec {
        CredentialsSpec::File(path) => {
            // The store locks and fsyncs: keep that off the async workers.
            let (path, new) = (path.clone(), new.clone());
            tokio::task::spawn_blocking(move || write_file(&path, &new)).await?
        }
        CredentialsSpec::Env(name) => Ok(WriteBack::ReadOnly(format!(
            "{describe}: claunch cannot write the refreshed login back to an environment variable, and the value in {name} is now stale (its refresh token was rotated)\n  hint: keep the login in a writable source: `file`, `aws_secret`, `gcp_secret`, `azure_secret`, or `command` with `write_command`"
        ))),
        CredentialsSpec::OauthToken(_) | CredentialsSpec::ApiKey(_) => Ok(WriteBack::ReadOnly(
            format!("{describe} does not rotate: there is nothing to write back"),
        )),
        _ => {
            let backend = Backend::of(spec).expect("a source run through a program");
            if backend.write().is_none() {
                return Ok(WriteBack::ReadOnly(format!(
                    "{describe}: no `write_command`, so the refreshed login cannot go back where `{}` reads it, and what it prints is now stale (its refresh token was rotated)\n  hint: add `write_command: [PROGRAM, ARGS...]` to `credentials:`, reading the credentials JSON on stdin",
                    backend.program()
                )));
            }
            Ok(match store_login(spec, timeout, new).await? {
                Stored::Created | Stored::Written | Stored::Unchanged => WriteBack::Written,
                Stored::KeptNewer => WriteBack::SourceNewer,
            })
        }
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

/// What [`store_login`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The secret did not exist: created with the login.
    Created,
    /// The secret held an older, blanked or invalid value: replaced.
    Written,
    /// The secret already held this login.
    Unchanged,
    /// The secret holds a newer login: left alone.
    KeptNewer,
}

/// Puts `new` into a secrets manager or a `command` source with `write_command`, creating
/// the secret if it is missing. Reads the current value first and never replaces a newer
/// login with an older one: only a strictly later `expiresAt`, or a current value that is
/// blanked or not credentials at all, is replaced.
pub async fn store_login(
    spec: &CredentialsSpec,
    timeout: Duration,
    new: &Credentials,
) -> Result<Stored, SourceError> {
    let describe = spec.describe();
    let Some(backend) = Backend::of(spec) else {
        return Err(SourceError::new(
            &describe,
            ErrorKind::Config,
            "is not a secrets manager or a command",
        ));
    };
    let current = match read(spec, backend, timeout).await {
        Ok(raw) => Some(raw),
        Err(e) if e.kind == ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let Some(current) = current else {
        let create = backend.create().ok_or_else(|| read_only(&describe))?;
        return match run_write(&describe, backend, Op::Create, &create, new, timeout).await {
            Ok(()) => Ok(Stored::Created),
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                // Made meanwhile, or it exists without a value: add one.
                write(&describe, backend, new, timeout).await?;
                Ok(Stored::Written)
            }
            Err(e) => Err(e),
        };
    };
    if let Ok(current) = Credentials::parse(current) {
        let expiry = |c: &Credentials| c.summary.expires_at_ms.unwrap_or(i64::MIN);
        if expiry(new) <= expiry(&current) {
            let same = expiry(new) == expiry(&current)
                && family::access_fingerprint(new) == family::access_fingerprint(&current)
                && family::refresh_fingerprint(new) == family::refresh_fingerprint(&current);
            return Ok(if same {
                Stored::Unchanged
            } else {
                Stored::KeptNewer
            });
        }
    }
    write(&describe, backend, new, timeout).await?;
    Ok(Stored::Written)
}

fn read_only(describe: &str) -> SourceError {
    SourceError::new(describe, ErrorKind::Config, "cannot be written")
        .hint("add `write_command` to `credentials:`")
}

async fn write(
    describe: &str,
    backend: Backend<'_>,
    new: &Credentials,
    timeout: Duration,
) -> Result<(), SourceError> {
    let invocation = backend.write().ok_or_else(|| read_only(describe))?;
    run_write(describe, backend, Op::Write, &invocation, new, timeout).await
}

/// Runs the source's program to read the current value.
async fn read(
    spec: &CredentialsSpec,
    backend: Backend<'_>,
    timeout: Duration,
) -> Result<Secret, SourceError> {
    let describe = spec.describe();
    let argv = backend.read();
    let job = child::Job {
        argv: &argv,
        stdin: None,
        set: backend.env(),
        timeout,
    };
    let done = run_cli(&describe, backend, Op::Read, &job).await?;
    Ok(done.stdout)
}

async fn run_write(
    describe: &str,
    backend: Backend<'_>,
    op: Op,
    invocation: &backend::Invocation,
    new: &Credentials,
    timeout: Duration,
) -> Result<(), SourceError> {
    let mut argv = invocation.argv.clone();
    // Lives until the end of this function, whatever happens: removed on drop.
    let mut _file = None;
    let stdin = match invocation.input {
        Input::Stdin => Some(new.raw().expose()),
        Input::File => {
            let file = private::PrivateFile::create(new.raw().expose()).map_err(|e| {
                SourceError::new(
                    describe,
                    ErrorKind::Failed,
                    format!(
                        "cannot write a private temporary file for {}: {e}",
                        backend.program()
                    ),
                )
                .hint(
                    "check that the temporary directory ($TMPDIR, or $XDG_RUNTIME_DIR) is writable",
                )
            })?;
            argv.push(file.path().display().to_string());
            _file = Some(file);
            None
        }
    };
    let job = child::Job {
        argv: &argv,
        stdin,
        set: backend.env(),
        timeout,
    };
    // The CLIs echo the stored value on stdout (`az … set` prints the whole secret): the
    // output is dropped unread, wiped with the Secret holding it.
    run_cli(describe, backend, op, &job).await.map(drop)
}

/// Runs a secret store's CLI and turns each way it can fail into a [`SourceError`].
async fn run_cli(
    describe: &str,
    backend: Backend<'_>,
    op: Op,
    job: &child::Job<'_>,
) -> Result<child::Finished, SourceError> {
    let program = job.argv.first().map_or("", String::as_str);
    let err = |kind, message: String| SourceError::new(describe, kind, message);
    let done = match child::run_bounded(job).await {
        Ok(done) => done,
        Err(child::RunError::NotFound) => {
            let d = if op == Op::Read {
                backend.not_installed()
            } else {
                // A `write_command` may be another program than `command`.
                match backend {
                    Backend::Command { .. } => backend::Diagnosis {
                        message: format!("`{program}` was not found"),
                        ..backend.not_installed()
                    },
                    _ => backend.not_installed(),
                }
            };
            return Err(with_hint(err(d.kind, d.message), d.hint));
        }
        Err(child::RunError::Spawn(e)) => {
            return Err(
                err(ErrorKind::Failed, format!("cannot run `{program}`: {e}"))
                    .hint(format!("check that `{program}` is an executable file")),
            );
        }
        Err(child::RunError::Io(e)) => {
            return Err(err(
                ErrorKind::Failed,
                format!("talking to `{program}` failed: {e}"),
            ));
        }
        Err(child::RunError::TooMuchOutput) => {
            return Err(err(
                ErrorKind::Invalid,
                format!(
                    "`{program}` printed more than {} bytes, too much for a credentials file; it was stopped",
                    credentials::MAX_FILE_BYTES
                ),
            )
            .hint("it must print the credentials JSON and nothing else"));
        }
        Err(child::RunError::TimedOut) => {
            return Err(err(
                ErrorKind::TimedOut,
                format!(
                    "`{program}` did not finish within {}; it was stopped",
                    seconds(job.timeout)
                ),
            )
            .hint("check the network and the CLI's login (run it yourself), or raise `credentials.timeout` in claunch.yaml"));
        }
    };
    if done.status.success() {
        return Ok(done);
    }
    let d = backend.diagnose(op, done.status.code(), &done.stderr);
    Err(with_hint(err(d.kind, d.message), d.hint))
}

fn with_hint(e: SourceError, hint: Option<String>) -> SourceError {
    match hint {
        Some(h) => e.hint(h),
        None => e,
    }
}

fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Checks what a program printed; the error names what is wrong, never the value.
fn parse(
    spec: &CredentialsSpec,
    backend: Backend<'_>,
    raw: Secret,
) -> Result<Credentials, SourceError> {
    let describe = spec.describe();
    let what = match backend {
        Backend::Command { .. } => format!("what `{}` printed", backend.program()),
        _ => "the secret".to_owned(),
    };
    let export = backend
        .export_command()
        .map(|c| format!(", then store it with `{c}`"))
        .unwrap_or_default();
    // `--query SecretString --output text` prints `None` for a binary secret.
    if matches!(backend, Backend::Aws { .. }) && raw.expose().trim_ascii() == b"None" {
        return Err(SourceError::new(
            &describe,
            ErrorKind::Invalid,
            "the secret has no SecretString (a binary secret?)",
        )
        .hint(format!("store the credentials JSON as a string{export}")));
    }
    Credentials::parse(raw).map_err(|error| invalid(&describe, &what, &error, &export))
}

fn invalid(describe: &str, what: &str, error: &ShapeError, then: &str) -> SourceError {
    SourceError::new(describe, ErrorKind::Invalid, format!("{what} {error}"))
        .hint(format!("{}{then}", error.hint()))
}

/// The `env:` source: the variable holds the JSON itself or base64 of it.
fn read_env(name: &str) -> Result<Credentials, SourceError> {
    use std::os::unix::ffi::OsStringExt as _;

    let describe = format!("env {name}");
    let fill = format!("`export {name}=\"$(claunch creds export --to env)\"`");
    let Some(value) = std::env::var_os(name) else {
        return Err(
            SourceError::new(&describe, ErrorKind::Unset, format!("{name} is not set"))
                .hint(format!("put the login in it: {fill}")),
        );
    };
    let value = Secret::new(value.into_vec());
    let text = value.expose().trim_ascii();
    if text.is_empty() {
        return Err(
            SourceError::new(&describe, ErrorKind::Unset, format!("{name} is empty"))
                .hint(format!("put the login in it: {fill}")),
        );
    }
    if text.starts_with(b"{") {
        return Credentials::parse(value)
            .map_err(|e| invalid(&describe, &format!("{name} holds JSON that"), &e, ""));
    }
    let decoded = base64::decode(text).map_err(|e| {
        SourceError::new(
            &describe,
            ErrorKind::Invalid,
            format!("{name} is neither credentials JSON nor base64 ({e})"),
        )
        .hint(format!(
            "set it to the contents of ~/.claude/.credentials.json or to their base64: {fill}"
        ))
    })?;
    Credentials::parse(decoded)
        .map_err(|e| invalid(&describe, &format!("{name}, decoded from base64,"), &e, ""))
}
