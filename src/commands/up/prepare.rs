//! Before any container is touched: images inspected, files read, the config hash, and
//! the networks and volumes the agents use.

use std::collections::{BTreeSet, HashMap};

use anyhow::{bail, Context as _};
use tokio::sync::OnceCell;

use super::Prepared;
use crate::config::{AgentSpec, CredentialsSpec, Spec};
use crate::credentials::deliver::{self, Payload};
use crate::credentials::login::Login;
use crate::engine::Engine;
use crate::fleet::{self, label};
use crate::report::Reporter;
use crate::secret::Secret;

pub(super) async fn prepare(
    engine: &Engine,
    spec: &Spec,
    agent: AgentSpec,
    login: &Login,
) -> anyhow::Result<Prepared> {
    let image = engine.inspect_image(&agent.image).await.map_err(|e| {
        if e.is_not_found() {
            anyhow::anyhow!(
                "agent `{}`: image `{}` is not on the engine\n  hint: build it (`claunch image build --tag {}`) or `docker pull` it",
                agent.name,
                agent.image,
                agent.image
            )
        } else {
            anyhow::Error::from(e).context(format!("agent `{}`", agent.name))
        }
    })?;
    let image_id = image.id.clone();
    let user = agent.user.clone().or(image.user).filter(|u| !u.is_empty());
    let mut env = image.env;
    env.extend(agent.env.iter().map(|(k, v)| format!("{k}={v}")));
    let mut files = Vec::new();
    for f in &agent.files {
        let bytes = std::fs::read(&f.source).with_context(|| {
            format!(
                "agent `{}`: files: cannot read {} (for {})",
                agent.name,
                f.source.display(),
                f.target
            )
        })?;
        files.push(Payload {
            target: f.target.clone(),
            mode: f.mode,
            contents: Secret::new(bytes),
        });
    }
    check_volumes(spec, &agent)?;
    Ok(Prepared {
        hash: fleet::config_hash(&agent, &image_id, login.mode()),
        needs: deliver::Needs {
            onboarding: agent.onboarding,
            settings: matches!(login, Login::ApiKey(_)),
        },
        agent,
        user,
        env,
        files,
        layout: OnceCell::new(),
    })
}

/// Refuses a volume that would mount the host's Claude login into a container: claunch
/// delivers credentials itself, and a shared, writable login breaks on token rotation.
pub(super) fn check_volumes(spec: &Spec, agent: &AgentSpec) -> anyhow::Result<()> {
    let CredentialsSpec::File(creds) = &spec.credentials else {
        return Ok(());
    };
    let claude_dir = creds.parent();
    let base = spec
        .file
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."));
    for v in &agent.volumes {
        let (bind, _) = fleet::bind(&spec.project, base, v);
        let source = std::path::Path::new(bind.split(':').next().unwrap_or_default());
        let hits = |p: &std::path::Path| source.starts_with(p) || p.starts_with(source);
        if source.is_absolute() && (hits(creds) || claude_dir.is_some_and(hits)) {
            bail!(
                "agent `{}`: volumes: `{v}` mounts the Claude credentials into the container\n  hint: remove it; claunch delivers the credentials itself (a shared login breaks when its refresh token rotates)",
                agent.name
            );
        }
    }
    Ok(())
}

/// Makes the agents' networks and named volumes exist, and returns each network's id by name.
pub(super) async fn ensure_networks_and_volumes<'a>(
    engine: &Engine,
    spec: &Spec,
    agents: impl Iterator<Item = &'a AgentSpec>,
    r: &dyn Reporter,
) -> anyhow::Result<HashMap<String, String>> {
    let labels = |extra: &[(&str, &str)]| -> HashMap<String, String> {
        let mut m = HashMap::from([
            (label::PROJECT.to_string(), spec.project.clone()),
            (label::MANAGED.to_string(), "true".to_string()),
        ]);
        m.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        m
    };
    let base = spec
        .file
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."));
    let mut networks = BTreeSet::new();
    let mut volumes = BTreeSet::new();
    for agent in agents.filter(|a| a.replicas > 0) {
        networks.insert(fleet::network_name(&spec.project, agent));
        for v in &agent.volumes {
            if let (_, Some(name)) = fleet::bind(&spec.project, base, v) {
                volumes.insert(name);
            }
        }
    }
    let mut ids = HashMap::new();
    for name in networks {
        let id = ensure_network(engine, &name, labels(&[]), r).await?;
        ids.insert(name, id);
    }
    for name in &volumes {
        engine.create_volume(name, labels(&[])).await?;
    }
    Ok(ids)
}

/// The one network named `name`, made if missing. The engine allows several networks of
/// one name, and two `up`s racing each make one: every racer then lists them after its own
/// create and keeps the same one, the oldest, and duplicates are removed (also ones an
/// earlier race left behind), so the project is never left with an ambiguous name.
async fn ensure_network(
    engine: &Engine,
    name: &str,
    labels: HashMap<String, String>,
    r: &dyn Reporter,
) -> anyhow::Result<String> {
    if engine.networks_named(name).await?.is_empty() {
        engine.create_network(name, labels).await?;
    }
    let mut found = engine.networks_named(name).await?;
    found.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
    let Some(keep) = found.first().cloned() else {
        bail!("network {name} was removed while `up` made it (a `claunch down` running at the same time?)\n  hint: run `claunch up` again");
    };
    for duplicate in &found[1..] {
        // Another racer may be removing it too, or a container of an older race may
        // still use it: neither is a failure of this `up`.
        if let Err(e) = engine.remove_network(&duplicate.id).await {
            r.warn(&format!(
                "network {name} exists twice; could not remove the duplicate {}: {e}",
                &duplicate.id[..12.min(duplicate.id.len())]
            ));
        }
    }
    Ok(keep.id)
}
