//! A fleet as the engine sees it: container and network names, the labels that are
//! claunch's only state, the config hash, and each replica's container configuration.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::{AgentSpec, Spec};
use crate::credentials::Role;
use crate::engine::ContainerConfig;

mod backend;
mod member;

pub use backend::Backend;
pub use member::{members, select, select_many, Member};

pub mod label {
    //! Label keys. They are a contract: `ps`, `down` and other machines rely on them.
    pub const PROJECT: &str = "claunch.project";
    pub const AGENT: &str = "claunch.agent";
    pub const REPLICA: &str = "claunch.replica";
    pub const CONFIG_HASH: &str = "claunch.config-hash";
    /// `leader` (holds the login's refresh token), `follower` (access token only) or `shared`.
    pub const ROLE: &str = "claunch.role";
    /// On networks and volumes claunch created (and so may remove).
    pub const MANAGED: &str = "claunch.managed";
}

pub fn container_name(project: &str, agent: &str, replica: u32) -> String {
    format!("{project}-{agent}-{replica}")
}

/// The network an agent joins: its own `network:` or the project's default one.
pub fn network_name(project: &str, agent: &AgentSpec) -> String {
    agent
        .network
        .clone()
        .unwrap_or_else(|| format!("{project}_default"))
}

/// A hash of everything that shapes an agent's containers, so `up` can tell a container
/// made from an older config. Replicas and the smoke test are left out: changing them
/// must not recreate running agents. Files are hashed by content, since claunch delivers
/// them at creation.
pub fn config_hash(agent: &AgentSpec, image_id: &str, login_mode: &str) -> String {
    let mut h = Sha256::new();
    let shape = serde_json::json!({
        "image": &agent.image,
        "image_id": image_id,
        "login": login_mode,
        "onboarding": agent.onboarding,
        "user": &agent.user,
        "command": &agent.command,
        "entrypoint": &agent.entrypoint,
        "working_dir": &agent.working_dir,
        "env": &agent.env,
        "network": &agent.network,
        "extra_hosts": &agent.extra_hosts,
        "volumes": &agent.volumes,
        "files": agent.files.iter().map(|f| serde_json::json!({
            "target": &f.target,
            "mode": f.mode,
            "digest": file_digest(&f.source),
        })).collect::<Vec<_>>(),
    });
    h.update(shape.to_string().as_bytes());
    hex(&h.finalize()[..12])
}

fn file_digest(path: &Path) -> String {
    std::fs::read(path).map_or_else(
        |_| "missing".to_string(),
        |bytes| hex(&Sha256::digest(bytes)[..12]),
    )
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A `volumes:` entry as the engine takes it: named volumes get the project's prefix,
/// as compose does; relative host paths are made absolute from the config's directory.
pub fn bind(project: &str, base: &Path, volume: &str) -> (String, Option<String>) {
    let (source, rest) = volume.split_once(':').unwrap_or((volume, ""));
    if rest.is_empty() {
        // An anonymous volume (`/data`): nothing to name.
        return (volume.to_string(), None);
    }
    if source.starts_with('/') {
        (volume.to_string(), None)
    } else if source.starts_with('.') || source.starts_with('~') {
        let path = if let Some(rel) = source.strip_prefix("~/") {
            std::env::var_os("HOME").map_or_else(|| base.join(rel), |h| Path::new(&h).join(rel))
        } else {
            base.join(source)
        };
        (format!("{}:{rest}", path.display()), None)
    } else {
        let name = format!("{project}_{source}");
        (format!("{name}:{rest}"), Some(name))
    }
}

/// The engine configuration of one replica.
pub fn container_config(
    spec: &Spec,
    agent: &AgentSpec,
    replica: u32,
    hash: &str,
    role: Role,
) -> ContainerConfig {
    let base = spec.file.parent().unwrap_or_else(|| Path::new("."));
    let labels = HashMap::from([
        (label::PROJECT.to_string(), spec.project.clone()),
        (label::AGENT.to_string(), agent.name.clone()),
        (label::REPLICA.to_string(), replica.to_string()),
        (label::CONFIG_HASH.to_string(), hash.to_string()),
        (label::ROLE.to_string(), role.as_str().to_string()),
    ]);
    ContainerConfig {
        image: agent.image.clone(),
        cmd: agent.command.clone(),
        entrypoint: agent.entrypoint.clone(),
        working_dir: agent.working_dir.clone(),
        user: agent.user.clone(),
        env: agent.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        labels,
        extra_hosts: agent.extra_hosts.clone(),
        binds: agent
            .volumes
            .iter()
            .map(|v| bind(&spec.project, base, v).0)
            .collect(),
        network: network_name(&spec.project, agent),
        aliases: vec![
            agent.name.clone(),
            container_name(&spec.project, &agent.name, replica),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_follow_compose() {
        let base = Path::new("/srv/app");
        assert_eq!(
            bind("p", base, "data:/data"),
            ("p_data:/data".into(), Some("p_data".into()))
        );
        assert_eq!(
            bind("p", base, "./work:/work:ro").0,
            "/srv/app/./work:/work:ro"
        );
        assert_eq!(bind("p", base, "/abs:/x").0, "/abs:/x");
        assert_eq!(bind("p", base, "/anon").0, "/anon");
    }

    #[test]
    fn names_are_compose_like() {
        assert_eq!(
            container_name("research", "planner", 2),
            "research-planner-2"
        );
    }
}
