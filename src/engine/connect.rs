//! Opening an engine: its endpoint resolved, the client its scheme needs, the API version
//! negotiated, and a failure to get there told as what to fix.

use std::error::Error as StdError;
use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};

use super::endpoint::Endpoint;
use super::ssh::{self, SshEnd, SshFailure};
use super::{tls, EngineError, Result};

/// bollard's own per-request timeout, as `connect_with_host` sets it.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// How long the engine has to answer its first request.
const FIRST_ANSWER: Duration = Duration::from_secs(30);

/// The default hint for an engine that did not answer.
const NOT_RUNNING: &str = "is dockerd running? point DOCKER_HOST or --host at it";

/// Connects to the engine `host` names (else `DOCKER_HOST`, else the docker CLI's current
/// context, else the local socket) and negotiates the API version; returns the client and
/// the endpoint as it is shown.
pub(super) async fn open(host: Option<&str>) -> Result<(Docker, String)> {
    let (endpoint, context) = Endpoint::resolve(host, &|key| std::env::var(key).ok())?;
    let shown = match context {
        Some(name) => format!("{endpoint} (docker context {name})"),
        None => endpoint.to_string(),
    };
    let unreachable = |e: &bollard::errors::Error| EngineError::Unreachable {
        endpoint: shown.clone(),
        detail: root_cause(e),
        hint: NOT_RUNNING.into(),
    };
    let mut ssh_ended = None;
    let docker = match &endpoint {
        Endpoint::Unix(path) => Docker::connect_with_unix(
            &path.display().to_string(),
            REQUEST_TIMEOUT_SECS,
            API_DEFAULT_VERSION,
        )
        .map_err(|e| unreachable(&e))?,
        Endpoint::Tcp(address) => {
            Docker::connect_with_http(address, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
                .map_err(|e| unreachable(&e))?
        }
        Endpoint::Tls { address, files } => {
            tls::check_files(&shown, files)?;
            // bollard reads the client's key with the process's default provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Docker::connect_with_ssl(
                address,
                &files.key(),
                &files.cert(),
                &files.ca(),
                REQUEST_TIMEOUT_SECS,
                API_DEFAULT_VERSION,
            )
            .map_err(|e| unreachable(&e))?
        }
        Endpoint::Ssh(target) => {
            let link = ssh::connect(target, REQUEST_TIMEOUT_SECS)?;
            ssh_ended = Some(link.ended);
            link.docker
        }
    };
    match tokio::time::timeout(FIRST_ANSWER, docker.negotiate_version()).await {
        Ok(Ok(docker)) => Ok((docker, shown)),
        Ok(Err(e)) => Err(explain(&endpoint, &shown, Some(&e), ssh_ended).await),
        Err(_) => Err(explain(&endpoint, &shown, None, ssh_ended).await),
    }
}

/// Why the first request failed (`err`, or `None` when it timed out).
async fn explain(
    endpoint: &Endpoint,
    shown: &str,
    err: Option<&bollard::errors::Error>,
    ssh_ended: Option<tokio::sync::watch::Receiver<Option<SshEnd>>>,
) -> EngineError {
    let answered = matches!(
        err,
        Some(bollard::errors::Error::DockerResponseServerError { .. })
    );
    if let (Endpoint::Ssh(target), Some(mut ended), false) = (endpoint, ssh_ended, answered) {
        match ssh::last_words(&mut ended).await {
            Some(SshEnd::NotRun(detail)) => {
                return EngineError::Ssh {
                    endpoint: shown.to_string(),
                    destination: target.destination(),
                    detail: format!("cannot run ssh: {detail}"),
                    hint: "install an OpenSSH client (apt-get install openssh-client)".into(),
                }
            }
            Some(SshEnd::Exited(stderr)) => match SshFailure::classify(&stderr) {
                // ssh said nothing useful: what the request saw says more.
                SshFailure::Other(_) if err.is_some() => {}
                failure => return failure.into_error(shown, target),
            },
            None => {}
        }
    }
    let Some(err) = err else {
        return EngineError::Unreachable {
            endpoint: shown.to_string(),
            detail: format!("no answer within {}s", FIRST_ANSWER.as_secs()),
            hint: NOT_RUNNING.into(),
        };
    };
    if let Endpoint::Tls { address, files } = endpoint {
        if let Some(e) = tls::explain(shown, address, files, err) {
            return e;
        }
    }
    let detail = match err {
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            message.trim().to_string()
        }
        other => root_cause(other),
    };
    let hint = if detail.contains("Client sent an HTTP request to an HTTPS server") {
        "the engine speaks TLS on that port: set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to the directory with ca.pem, cert.pem and key.pem".into()
    } else {
        NOT_RUNNING.into()
    };
    EngineError::Unreachable {
        endpoint: shown.to_string(),
        detail,
        hint,
    }
}

/// The first error of type `T` in `err`'s chain, looking inside I/O errors too.
pub(super) fn find_in_chain<'a, T: StdError + 'static>(
    err: &'a (dyn StdError + 'static),
) -> Option<&'a T> {
    chain(err).find_map(|e| e.downcast_ref::<T>())
}

/// What went wrong at the bottom of `err`'s chain: "Connection refused (os error 111)"
/// rather than "client error (Connect)".
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    chain(err)
        .last()
        .map_or_else(|| err.to_string(), ToString::to_string)
        .trim()
        .to_string()
}

/// `err` and its sources. An I/O error's `source()` skips the error it wraps, and so
/// does bollard's transparent wrapper of one: those are visited instead.
fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e: &&'a (dyn StdError + 'static)| {
        if let Some(bollard::errors::Error::IOError { err }) = e.downcast_ref() {
            return Some(err as &'a (dyn StdError + 'static));
        }
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &'a (dyn StdError + 'static)),
            None => e.source(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::endpoint::{CertDirOrigin, TlsFiles};

    fn files() -> TlsFiles {
        TlsFiles {
            dir: "/certs".into(),
            origin: CertDirOrigin::CertPath,
        }
    }

    /// A handshake failure as it reaches claunch: rustls's error inside an I/O error
    /// inside bollard's.
    fn wrapped(tls: rustls::Error) -> bollard::errors::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, tls).into()
    }

    #[test]
    fn a_tls_failure_is_found_inside_io_errors_and_told_by_side() {
        let explain = |tls| tls::explain("tcp://box:2376", "box:2376", &files(), &wrapped(tls));
        let refused = explain(rustls::Error::AlertReceived(
            rustls::AlertDescription::BadCertificate,
        ))
        .unwrap();
        assert_eq!(
            refused.to_string(),
            "the Docker engine at tcp://box:2376 refused the client certificate /certs/cert.pem: received fatal alert: BadCertificate\n  hint: the engine takes only client certificates signed by the CA it trusts (its --tlscacert): DOCKER_CERT_PATH (/certs) must hold a cert.pem and key.pem that CA issued"
        );
        let untrusted = explain(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
        .unwrap();
        assert!(
            untrusted
                .to_string()
                .starts_with("the Docker engine at tcp://box:2376 presented a certificate not signed by the CA in /certs/ca.pem"),
            "{untrusted}"
        );
        let refused_io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(tls::explain(
            "tcp://box:2376",
            "box:2376",
            &files(),
            &bollard::errors::Error::from(refused_io)
        )
        .is_none());
    }

    #[test]
    fn the_root_cause_is_the_bottom_of_the_chain() {
        let err = bollard::errors::Error::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        ));
        assert_eq!(root_cause(&err), "Connection refused (os error 111)");
    }
}
