//! What went wrong talking to the engine: which operation, on what, and whether a retry
//! may clear it.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {endpoint}: {detail}\n  hint: is dockerd running? point DOCKER_HOST or --host at it")]
    Unreachable { endpoint: String, detail: String },
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
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
