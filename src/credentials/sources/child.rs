//! Running the program behind a source (a cloud CLI, the user's `command`): no secret in
//! its argv or in an environment it does not need, stdin fed from memory, stdout read
//! bounded into a [`Secret`], stderr kept (bounded) for messages, killed on timeout.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::credentials::MAX_FILE_BYTES;
use crate::secret::Secret;

/// Variables that hold a Claude secret: no child of a source needs them.
pub const SECRET_VARS: [&str; 3] = [
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_AUTH_TOKEN",
];

/// The most of a child's stderr kept for a message.
const MAX_STDERR: u64 = 16 * 1024;

/// What to run.
pub struct Job<'a> {
    pub argv: &'a [String],
    /// Written to the child's stdin, which is then closed; `None` gives it no stdin.
    pub stdin: Option<&'a [u8]>,
    /// Variables to set, e.g. `AWS_PAGER=` so the CLI never waits on a pager.
    pub set: &'a [(&'a str, &'a str)],
    pub timeout: Duration,
}

/// How the child ended.
pub struct Finished {
    pub status: ExitStatus,
    /// At most [`MAX_FILE_BYTES`].
    pub stdout: Secret,
    /// The start of stderr, lossily decoded.
    pub stderr: String,
}

#[derive(Debug)]
pub enum RunError {
    /// The program is not on PATH (or the path does not exist).
    NotFound,
    /// It exists but could not be started (permissions, not executable).
    Spawn(io::Error),
    /// Reading its output or waiting for it failed.
    Io(io::Error),
    /// It printed more than a credentials file can be; it was killed.
    TooMuchOutput,
    /// It did not finish in time; it was killed.
    TimedOut,
}

/// Runs the child: the secret on its stdin, its stdout read bounded, killed when it takes too long.
pub async fn run_bounded(job: &Job<'_>) -> Result<Finished, RunError> {
    let (program, args) = job.argv.split_first().ok_or(RunError::NotFound)?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(if job.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in SECRET_VARS {
        command.env_remove(var);
    }
    for (name, value) in job.set {
        command.env(name, value);
    }
    let mut child = command.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => RunError::NotFound,
        _ => RunError::Spawn(e),
    })?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let work = async {
        let send_stdin = async {
            if let (Some(mut pipe), Some(data)) = (stdin, job.stdin) {
                // A CLI that fails early closes stdin unread: its stderr says why.
                match pipe.write_all(data).await {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                    other => other?,
                }
                match pipe.shutdown().await {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                    other => other?,
                }
            }
            Ok::<(), io::Error>(())
        };
        let read_out = async {
            let limit = usize::try_from(MAX_FILE_BYTES).unwrap_or(usize::MAX);
            // Sized up front: a reallocation would leave a copy of the secret unwiped.
            let mut buf = Vec::with_capacity(limit + 1024);
            if let Some(out) = stdout {
                out.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf).await?;
            }
            Ok::<(Secret, bool), io::Error>({
                let over = buf.len() > limit;
                (Secret::new(buf), over)
            })
        };
        let read_err = async {
            let mut buf = Vec::new();
            if let Some(mut err) = stderr {
                (&mut err).take(MAX_STDERR).read_to_end(&mut buf).await?;
                // Keep draining so a chatty child never blocks on a full pipe.
                tokio::io::copy(&mut err, &mut tokio::io::sink()).await?;
            }
            Ok::<String, io::Error>(String::from_utf8_lossy(&buf).into_owned())
        };
        let (fed, out, errors) = tokio::join!(send_stdin, read_out, read_err);
        let (stdout, over) = out?;
        if over {
            return Ok(None);
        }
        let status = child.wait().await?;
        fed?;
        Ok(Some(Finished {
            status,
            stdout,
            stderr: errors?,
        }))
    };
    match tokio::time::timeout(job.timeout, work).await {
        Ok(Ok(Some(finished))) => Ok(finished),
        Ok(Ok(None)) => {
            stop(&mut child).await;
            Err(RunError::TooMuchOutput)
        }
        Ok(Err(e)) => {
            stop(&mut child).await;
            Err(RunError::Io(e))
        }
        Err(_) => {
            stop(&mut child).await;
            Err(RunError::TimedOut)
        }
    }
}

async fn stop(child: &mut tokio::process::Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}
