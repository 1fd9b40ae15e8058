//! The container configuration claunch creates containers with, in its own terms, and
//! its translation to the engine's.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};

/// What a container is created with: claunch's own terms, turned into the engine's here.
#[derive(Debug, Clone, Default)]
pub struct ContainerConfig {
    pub image: String,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub extra_hosts: Vec<String>,
    pub binds: Vec<String>,
    pub network: String,
    pub aliases: Vec<String>,
}

impl From<ContainerConfig> for ContainerCreateBody {
    fn from(c: ContainerConfig) -> Self {
        let endpoint = EndpointSettings {
            aliases: Some(c.aliases),
            ..Default::default()
        };
        Self {
            image: Some(c.image),
            cmd: c.cmd,
            entrypoint: c.entrypoint,
            working_dir: c.working_dir,
            user: c.user,
            env: Some(c.env),
            labels: Some(c.labels),
            host_config: Some(HostConfig {
                extra_hosts: Some(c.extra_hosts),
                binds: Some(c.binds),
                network_mode: Some(c.network.clone()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(c.network, endpoint)])),
            }),
            ..Default::default()
        }
    }
}
