//! What went wrong talking to the engine: which operation, on what, and whether a retry
//! may clear it.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {endpoint}: {detail}\n  hint: {hint}")]
    Unreachable {
        endpoint: String,
        detail: String,
        hint: String,
    },
    #[error("`{endpoint}` is not an engine address: {detail}\n  hint: use unix:///path, tcp://host:port (with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH for TLS) or ssh://[user@]host[:port], as for docker -H")]
    BadEndpoint { endpoint: String, detail: String },
    #[error("{context} cannot be used: {detail}\n  hint: `docker context ls` lists the contexts; pick one with `docker context use NAME` or DOCKER_CONTEXT, or name the engine with -H or DOCKER_HOST")]
    BadContext { context: String, detail: String },
    #[error("ssh refused the login to {destination} (Docker engine at {endpoint}): {detail}\n  hint: claunch runs ssh without prompts, so `{command}` must work without a password: put your public key in that user's ~/.ssh/authorized_keys there (ssh-copy-id), and load your key into ssh-agent or name it with IdentityFile in ~/.ssh/config")]
    SshAuthRefused {
        endpoint: String,
        destination: String,
        detail: String,
        command: String,
    },
    #[error("the ssh host key of {host} is not known here (Docker engine at {endpoint}): {detail}\n  hint: claunch never accepts a host key on its own: check the key's fingerprint with the host's owner, then run `{command}` once and accept it, or add the key to ~/.ssh/known_hosts")]
    SshHostKeyUnknown {
        endpoint: String,
        host: String,
        detail: String,
        command: String,
    },
    #[error("the ssh host key of {host} does not match the one in known_hosts (Docker engine at {endpoint}): the host was reinstalled, or someone is intercepting the connection\n  hint: check the new key's fingerprint with the host's owner first; then remove the old one with `ssh-keygen -R '{host}'` and run `{command}` once")]
    SshHostKeyChanged {
        endpoint: String,
        host: String,
        command: String,
    },
    #[error("ssh to {destination} failed (Docker engine at {endpoint}): {detail}\n  hint: {hint}")]
    Ssh {
        endpoint: String,
        destination: String,
        detail: String,
        hint: String,
    },
    #[error("the TLS file {path} {problem} (Docker engine at {endpoint})\n  hint: {hint}")]
    TlsFile {
        endpoint: String,
        path: String,
        problem: String,
        hint: String,
    },
    #[error("the Docker engine at {endpoint} presented a certificate {problem}: {detail}\n  hint: {hint}")]
    TlsEngineCertRejected {
        endpoint: String,
        problem: String,
        detail: String,
        hint: String,
    },
    #[error("the Docker engine at {endpoint} refused the client certificate {cert}: {detail}\n  hint: {hint}")]
    TlsClientCertRejected {
        endpoint: String,
        cert: String,
        detail: String,
        hint: String,
    },
    #[error("{op} {object}: {message}")]
    Api {
        op: &'static str,
        object: String,
        /// The HTTP status the engine answered, or `None` when the connection itself failed.
        status: Option<u16>,
        message: String,
    },
    #[error("{op} {object}: the engine did not answer within {secs}s")]
    Timeout {
        op: &'static str,
        object: String,
        secs: u64,
    },
}

impl EngineError {
    pub(super) fn from_bollard(
        op: &'static str,
        object: &str,
        err: bollard::errors::Error,
    ) -> Self {
        use bollard::errors::Error as E;
        let object = object.to_string();
        match err {
            E::DockerResponseServerError {
                status_code,
                message,
            } => Self::Api {
                op,
                object,
                status: Some(status_code),
                // A HEAD (stat) answer has no body to carry a message.
                message: match message.trim() {
                    "" => format!("the engine answered HTTP {status_code}"),
                    m => m.to_string(),
                },
            },
            E::RequestTimeoutError => Self::Timeout {
                op,
                object,
                secs: 0,
            },
            other => Self::Api {
                op,
                object,
                status: None,
                message: other.to_string(),
            },
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => *status,
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// Worth retrying: the engine had a passing fault (5xx) or the connection dropped.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { status, .. } => status.is_none_or(|s| s >= 500),
            Self::Timeout { .. } | Self::Unreachable { .. } => true,
            // Nothing a retry changes: a person must.
            Self::BadEndpoint { .. }
            | Self::BadContext { .. }
            | Self::SshAuthRefused { .. }
            | Self::SshHostKeyUnknown { .. }
            | Self::SshHostKeyChanged { .. }
            | Self::Ssh { .. }
            | Self::TlsFile { .. }
            | Self::TlsEngineCertRejected { .. }
            | Self::TlsClientCertRejected { .. } => false,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
