//! `claunch down`: stop and remove exactly this project's containers (by label), and the
//! networks (and, with `--volumes`, volumes) claunch created for it. Nothing else.

use crate::commands::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use super::{members, Global};
use crate::fleet::label;
use crate::report::{Outcome, Reporter, Step};

pub async fn down(
    global: &Global,
    volumes: bool,
    r: Arc<dyn Reporter>,
) -> anyhow::Result<ExitStatus> {
    let project = super::project_name(global)?;
    let engine = super::connect(global).await?;
    let list = members(&engine, &project).await?;
    let results: Vec<bool> = stream::iter(list)
        .map(|m| {
            let (engine, r) = (engine.clone(), r.clone());
            async move {
                if m.running() {
                    r.step(&m.name, Step::Stop);
                    let _ = engine.stop_container(&m.id, Duration::from_secs(10)).await;
                }
                r.step(&m.name, Step::Remove);
                match engine.remove_container(&m.id).await {
                    Ok(()) => {
                        r.finished(
                            &m.name,
                            &Outcome::Done {
                                detail: "removed".into(),
                            },
                        );
                        true
                    }
                    Err(e) => {
                        r.finished(
                            &m.name,
                            &Outcome::Failed {
                                message: e.to_string(),
                                hint: None,
                            },
                        );
                        false
                    }
                }
            }
        })
        .buffer_unordered(global.parallel)
        .collect()
        .await;
    let mut ok = results.iter().all(|b| *b);
    let owned = [(label::PROJECT, project.as_str()), (label::MANAGED, "true")];
    // By id: a race may have left two networks of one name, and `down` removes both.
    for network in engine.list_networks(&owned).await? {
        let name = network.name;
        match remove_network(&engine, &network.id).await {
            Ok(()) => r.info(&format!("network {name} removed")),
            Err(e) => {
                ok = false;
                r.warn(&e.to_string());
            }
        }
    }
    if volumes {
        for name in engine.list_volumes(&owned).await? {
            match engine.remove_volume(&name).await {
                Ok(()) => r.info(&format!("volume {name} removed")),
                Err(e) => {
                    ok = false;
                    r.warn(&e.to_string());
                }
            }
        }
    }
    r.info(&format!(
        "{project}: {} containers removed",
        results.iter().filter(|b| **b).count()
    ));
    Ok(ExitStatus::failed_if(!ok))
}

/// dockerd 20.10 may still count endpoints of containers it has just removed: give it a
/// moment rather than leave the network behind.
async fn remove_network(
    engine: &crate::engine::Engine,
    name: &str,
) -> Result<(), crate::engine::EngineError> {
    let mut attempt = 0;
    loop {
        match engine.remove_network(name).await {
            Err(e) if attempt < 10 && e.to_string().contains("active endpoints") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
            }
            other => return other,
        }
    }
}
