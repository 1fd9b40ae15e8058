//! An engine on another host over `ssh://`: each connection is the system `ssh` running
//! `docker system dial-stdio` there, as the docker CLI does, so `~/.ssh/config`, agents and
//! `known_hosts` apply unchanged; what ssh says on failure becomes a precise error.
//!
//! Not bollard's own `ssh` feature: that one passes `StrictHostKeyChecking=accept-new`
//! on ssh's command line (where no config file can override it), so it trusts any host
//! it has never seen and writes its key to `~/.ssh/known_hosts`, and it leaves a
//! `ControlPersist=yes` master behind for every connection a process did not close.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::{BollardRequest, Docker};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;

use super::endpoint::SshTarget;
use super::EngineError;

/// ssh's own connect timeout: shorter than claunch's wait for the engine's first answer,
/// so that ssh's message is the one seen.
const SSH_CONNECT_TIMEOUT_SECS: u32 = 20;

/// How long to wait, after a failed first request, for ssh to exit and say why.
const STDERR_WAIT: Duration = Duration::from_secs(5);

/// How an ssh process ended: what it printed on stderr, or why it never ran.
#[derive(Debug, Clone)]
pub(super) enum SshEnd {
    Exited(String),
    NotRun(String),
}

/// The ssh side of a connection to an engine: the client, and the last words of the
/// last ssh process that ended.
pub(super) struct SshLink {
    pub docker: Docker,
    pub ended: watch::Receiver<Option<SshEnd>>,
}

impl SshTarget {
    /// ssh's arguments, as the docker CLI builds them, plus batch mode: claunch opens
    /// several connections at once and none may stop to ask for a password or a host key.
    fn argv(&self) -> Vec<String> {
        let mut argv = vec![
            "-o".to_string(),
            format!("ConnectTimeout={SSH_CONNECT_TIMEOUT_SECS}"),
            "-o".to_string(),
            "BatchMode=yes".to_string(),
            "-T".to_string(),
        ];
        if let Some(user) = &self.user {
            argv.extend(["-l".to_string(), user.clone()]);
        }
        if let Some(port) = self.port {
            argv.extend(["-p".to_string(), port.to_string()]);
        }
        argv.extend(["--".to_string(), self.host.clone(), "docker".to_string()]);
        if let Some(socket) = &self.socket {
            argv.push(format!("--host=unix://{socket}"));
        }
        argv.extend(["system".to_string(), "dial-stdio".to_string()]);
        argv
    }
}

/// A client whose every connection is a new `ssh … docker system dial-stdio`.
pub(super) fn connect(target: &SshTarget, timeout_secs: u64) -> Result<SshLink, EngineError> {
    let (ended_tx, ended) = watch::channel(None);
    let connector = SshConnector {
        argv: Arc::from(target.argv()),
        ended: Arc::new(ended_tx),
    };
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let transport = move |request: BollardRequest| {
        let client = client.clone();
        async move { Ok(client.request(request).await?) }
    };
    // The requests' URL is a placeholder: the connector knows where it goes.
    let docker = Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        timeout_secs,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| EngineError::BadEndpoint {
        endpoint: super::endpoint::Endpoint::Ssh(target.clone()).to_string(),
        detail: e.to_string(),
    })?;
    Ok(SshLink { docker, ended })
}

/// Waits a little for the last ssh process to end and returns what it said.
pub(super) async fn last_words(ended: &mut watch::Receiver<Option<SshEnd>>) -> Option<SshEnd> {
    let _ = tokio::time::timeout(STDERR_WAIT, ended.wait_for(Option::is_some)).await;
    ended.borrow().clone()
}

#[derive(Clone)]
struct SshConnector {
    argv: Arc<[String]>,
    ended: Arc<watch::Sender<Option<SshEnd>>>,
}

impl tower_service::Service<hyper::Uri> for SshConnector {
    type Response = SshStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<SshStream>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let (argv, ended) = (self.argv.clone(), self.ended.clone());
        Box::pin(async move {
            let spawned = Command::new("ssh")
                .args(argv.iter())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                // Its own process group, as the docker CLI does: a Ctrl-C meant for
                // claunch must not cut the connections claunch needs to clean up.
                .process_group(0)
                .spawn();
            let mut child = match spawned {
                Ok(child) => child,
                Err(e) => {
                    ended.send_replace(Some(SshEnd::NotRun(e.to_string())));
                    return Err(e);
                }
            };
            let stderr = child.stderr.take();
            tokio::spawn(async move {
                let mut said = Vec::new();
                if let Some(mut stderr) = stderr {
                    let mut chunk = [0u8; 4096];
                    while let Ok(n @ 1..) = stderr.read(&mut chunk).await {
                        said.extend_from_slice(&chunk[..n]);
                        // Keep the end: that is where ssh says why it stopped.
                        if said.len() > 16 * 1024 {
                            said.drain(..said.len() - 16 * 1024);
                        }
                    }
                }
                ended.send_replace(Some(SshEnd::Exited(
                    String::from_utf8_lossy(&said).into_owned(),
                )));
            });
            let stdin = child.stdin.take().map(TokioIo::new);
            let stdout = child.stdout.take().map(TokioIo::new);
            let Some(stdout) = stdout else {
                return Err(io::Error::other("ssh has no stdout"));
            };
            Ok(SshStream {
                _child: child,
                stdin,
                stdout,
            })
        })
    }
}

/// One connection: ssh's stdout to read the engine's answers, its stdin to write requests.
struct SshStream {
    _child: Child,
    stdin: Option<TokioIo<ChildStdin>>,
    stdout: TokioIo<ChildStdout>,
}

impl SshStream {
    fn stdin(&mut self) -> io::Result<Pin<&mut TokioIo<ChildStdin>>> {
        self.stdin
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::ErrorKind::BrokenPipe.into())
    }
}

impl hyper::rt::Read for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stdin()?.poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stdin()?.poll_flush(cx)
    }

    /// Closes ssh's stdin, which is how the engine hears the end of an exec's input
    /// (a pipe's own shutdown does nothing).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.stdin.is_some() {
            std::task::ready!(self.stdin()?.poll_flush(cx))?;
            self.stdin = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl Connection for SshStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Why ssh failed, from what it printed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SshFailure {
    HostKeyChanged,
    HostKeyUnknown(String),
    AuthRefused(String),
    Unreachable(String),
    NoDocker(String),
    /// `docker system dial-stdio` ran there but found no engine.
    NoEngine(String),
    Other(String),
}

impl SshFailure {
    /// Reads ssh's stderr; only whole lines of what ssh or the remote printed are kept.
    pub fn classify(stderr: &str) -> Self {
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
            .collect();
        let find = |needles: &[&str]| {
            lines
                .iter()
                .rev()
                .find(|l| needles.iter().any(|n| l.contains(n)))
                .map(|l| (*l).to_string())
        };
        if find(&[
            "REMOTE HOST IDENTIFICATION HAS CHANGED",
            "has changed and you have requested strict checking",
        ])
        .is_some()
        {
            return Self::HostKeyChanged;
        }
        if let Some(line) = find(&["host key is known for", "Host key verification failed"]) {
            let detail = find(&["host key is known for"]).unwrap_or(line);
            return Self::HostKeyUnknown(detail);
        }
        if let Some(line) = find(&["Permission denied (", "Too many authentication failures"]) {
            return Self::AuthRefused(line);
        }
        if let Some(line) = find(&[
            "ssh: connect to host",
            "Could not resolve hostname",
            "Connection timed out",
            "No route to host",
            "Network is unreachable",
            "Connection refused",
            "kex_exchange_identification",
            "Connection closed by",
            "Connection reset by",
        ]) {
            return Self::Unreachable(line);
        }
        if let Some(line) = find(&[
            "docker: command not found",
            "docker: not found",
            "\"docker\": executable file not found",
        ]) {
            return Self::NoDocker(line);
        }
        if let Some(line) = find(&[
            "Cannot connect to the Docker daemon",
            "failed to open the raw stream connection",
        ]) {
            return Self::NoEngine(line);
        }
        Self::Other(lines.last().map_or_else(
            || "ssh ended without saying why".to_string(),
            |l| (*l).to_string(),
        ))
    }

    /// The error for `endpoint`, reached through `target`.
    pub fn into_error(self, endpoint: &str, target: &SshTarget) -> EngineError {
        let endpoint = endpoint.to_string();
        let (destination, command) = (target.destination(), target.try_command());
        match self {
            Self::HostKeyChanged => EngineError::SshHostKeyChanged {
                endpoint,
                host: target.known_hosts_name(),
                command,
            },
            Self::HostKeyUnknown(detail) => EngineError::SshHostKeyUnknown {
                endpoint,
                host: target.known_hosts_name(),
                detail,
                command,
            },
            Self::AuthRefused(detail) => EngineError::SshAuthRefused {
                endpoint,
                destination,
                detail,
                command,
            },
            Self::Unreachable(detail) => EngineError::Unreachable {
                endpoint,
                detail,
                hint: format!(
                    "is {} up, with its sshd listening on port {}? `{command}` must work from this machine",
                    target.host,
                    target.port.unwrap_or(22)
                ),
            },
            Self::NoDocker(detail) => EngineError::Ssh {
                endpoint,
                destination,
                detail,
                hint: "claunch reaches a remote engine as the docker CLI does, through `docker system dial-stdio` on that host: install the docker CLI there (18.09 or newer), on the PATH of non-interactive ssh sessions".to_string(),
            },
            Self::NoEngine(detail) => EngineError::Ssh {
                endpoint,
                destination,
                detail,
                hint: format!(
                    "is dockerd running on {}, and may {} use its socket? `{command}` shows the same",
                    target.host,
                    target.user.as_deref().unwrap_or("your user")
                ),
            },
            Self::Other(detail) => EngineError::Ssh {
                endpoint,
                destination,
                detail,
                hint: format!("`{command}` shows the same failure"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SshTarget {
        SshTarget {
            user: Some("me".into()),
            host: "box".into(),
            port: Some(2222),
            socket: None,
        }
    }

    #[test]
    fn ssh_runs_as_the_docker_cli_runs_it_in_batch_mode() {
        assert_eq!(
            target().argv().join(" "),
            "-o ConnectTimeout=20 -o BatchMode=yes -T -l me -p 2222 -- box docker system dial-stdio"
        );
        let socket = SshTarget {
            user: None,
            host: "box".into(),
            port: None,
            socket: Some("/run/docker.sock".into()),
        };
        assert_eq!(
            socket.argv().join(" "),
            "-o ConnectTimeout=20 -o BatchMode=yes -T -- box docker --host=unix:///run/docker.sock system dial-stdio"
        );
    }

    #[test]
    fn what_ssh_prints_is_told_apart() {
        use SshFailure as F;
        let changed = "@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@\nHost key for [box]:2222 has changed and you have requested strict checking.\nHost key verification failed.\n";
        assert_eq!(F::classify(changed), F::HostKeyChanged);
        assert_eq!(
            F::classify("Host key verification failed.\r\n"),
            F::HostKeyUnknown("Host key verification failed.".into())
        );
        assert_eq!(
            F::classify("No ED25519 host key is known for [box]:2222 and you have requested strict checking.\nHost key verification failed.\n"),
            F::HostKeyUnknown("No ED25519 host key is known for [box]:2222 and you have requested strict checking.".into())
        );
        assert_eq!(
            F::classify("me@box: Permission denied (publickey).\n"),
            F::AuthRefused("me@box: Permission denied (publickey).".into())
        );
        assert_eq!(
            F::classify("ssh: connect to host box port 2222: Connection refused\n"),
            F::Unreachable("ssh: connect to host box port 2222: Connection refused".into())
        );
        assert_eq!(
            F::classify("ssh: Could not resolve hostname box: Name or service not known\n"),
            F::Unreachable("ssh: Could not resolve hostname box: Name or service not known".into())
        );
        assert_eq!(
            F::classify("Warning: Permanently added '[box]:2222' (ED25519) to the list of known hosts.\nbash: line 1: docker: command not found\n"),
            F::NoDocker("bash: line 1: docker: command not found".into())
        );
        assert_eq!(
            F::classify("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"),
            F::NoEngine("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?".into())
        );
        assert_eq!(
            F::classify(""),
            F::Other("ssh ended without saying why".into())
        );
    }
}
