//! What the engine reports, in claunch's own terms: the one place that walks the engine's
//! `Option`-laden response models and turns them into who runs where, in what state.

use std::collections::HashMap;

use bollard::models::{ContainerInspectResponse, ContainerSummary, ImageInspect, SystemVersion};

/// A container as `list` sees it: enough to know a fleet's members without inspecting each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerListing {
    pub id: String,
    /// Without the engine's leading `/`.
    pub name: String,
    pub labels: HashMap<String, String>,
    /// The engine's state word: `created`, `running`, `exited`, …
    pub state: String,
    /// The image as the container was created with it (a name, or an id).
    pub image: String,
    /// Unix seconds.
    pub created: i64,
}

/// One container, inspected: who runs in it, with what, in which state, and what is mounted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    /// The id of the image it was created from.
    pub image_id: String,
    /// The user its processes run as (`None` when the image's default, root, applies).
    pub user: Option<String>,
    /// Its environment as `KEY=value`, the image's and its own.
    pub env: Vec<String>,
    /// Entrypoint then command: what its main process runs.
    pub argv: Vec<String>,
    pub labels: HashMap<String, String>,
    pub state: ContainerState,
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerState {
    /// The engine's state word: `created`, `running`, `exited`, …
    pub status: String,
    pub running: bool,
    /// The main process's exit code once it has exited.
    pub exit_code: Option<i64>,
    /// RFC 3339, as the engine writes it.
    pub started_at: Option<String>,
}

/// A mount: `bind`, `volume` or `tmpfs`, from where to where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: String,
    pub source: String,
    pub destination: String,
}

/// An image on the engine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageInfo {
    pub id: String,
    /// The image's `User`, when it sets a non-empty one.
    pub user: Option<String>,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    /// `amd64`, `arm64`, …
    pub architecture: Option<String>,
    pub size_bytes: Option<u64>,
}

/// A network as `list` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkListing {
    pub id: String,
    pub name: String,
    /// RFC 3339, as the engine writes it: sorts in time order.
    pub created: String,
}

impl From<bollard::models::Network> for NetworkListing {
    fn from(n: bollard::models::Network) -> Self {
        Self {
            id: n.id.unwrap_or_default(),
            name: n.name.unwrap_or_default(),
            created: n.created.unwrap_or_default(),
        }
    }
}

/// Which engine answers, and which API version was negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    pub version: String,
    /// The newest API version the engine speaks.
    pub api_version: String,
    /// The API version claunch talks to it in: the lower of the engine's and bollard's.
    pub negotiated_api: String,
    pub os: String,
    pub arch: String,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl From<ContainerSummary> for ContainerListing {
    fn from(c: ContainerSummary) -> Self {
        Self {
            id: c.id.unwrap_or_default(),
            name: c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            labels: c.labels.unwrap_or_default(),
            state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            image: c.image.unwrap_or_default(),
            created: c.created.unwrap_or_default(),
        }
    }
}

impl From<ContainerInspectResponse> for ContainerInfo {
    fn from(i: ContainerInspectResponse) -> Self {
        let config = i.config.unwrap_or_default();
        let state = i.state.unwrap_or_default();
        Self {
            id: i.id.unwrap_or_default(),
            name: i
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image_id: i.image.unwrap_or_default(),
            user: non_empty(config.user),
            env: config.env.unwrap_or_default(),
            argv: config
                .entrypoint
                .unwrap_or_default()
                .into_iter()
                .chain(config.cmd.unwrap_or_default())
                .collect(),
            labels: config.labels.unwrap_or_default(),
            state: ContainerState {
                status: state.status.map(|s| s.to_string()).unwrap_or_default(),
                running: state.running == Some(true),
                exit_code: state.exit_code,
                started_at: non_empty(state.started_at),
            },
            mounts: i
                .mounts
                .unwrap_or_default()
                .into_iter()
                .map(|m| Mount {
                    kind: m.typ.unwrap_or_default(),
                    source: m.source.unwrap_or_default(),
                    destination: m.destination.unwrap_or_default(),
                })
                .collect(),
        }
    }
}

impl From<ImageInspect> for ImageInfo {
    fn from(i: ImageInspect) -> Self {
        let config = i.config.unwrap_or_default();
        Self {
            id: i.id.unwrap_or_default(),
            user: non_empty(config.user),
            env: config.env.unwrap_or_default(),
            labels: config.labels.unwrap_or_default(),
            architecture: i.architecture,
            size_bytes: i.size.and_then(|s| u64::try_from(s).ok()),
        }
    }
}

impl EngineVersion {
    /// What the engine says of itself, and the API version the client negotiated.
    pub(super) fn new(v: SystemVersion, negotiated_api: String) -> Self {
        let or_unknown = |s: Option<String>| s.unwrap_or_else(|| "?".into());
        Self {
            version: or_unknown(v.version),
            api_version: or_unknown(v.api_version),
            negotiated_api,
            os: or_unknown(v.os),
            arch: or_unknown(v.arch),
        }
    }
}
