//! `claunch pull [AGENT...]`: the agents' images pulled by the engine from their
//! registries, as compose does, progress through the reporter.

use std::sync::Arc;

use futures::stream::{self, StreamExt};

use super::{ExitStatus, Global};
use crate::engine::{Engine, EngineError};
use crate::image::reference::{self, Reference};
use crate::report::{Outcome, Reporter};

pub async fn pull(
    global: &Global,
    agents: &[String],
    r: Arc<dyn Reporter>,
) -> anyhow::Result<ExitStatus> {
    let spec = super::load_spec(global)?;
    let mut images: Vec<&str> = Vec::new();
    for agent in super::chosen_agents(&spec, agents)? {
        if !images.contains(&agent.image.as_str()) {
            images.push(&agent.image);
        }
    }
    let engine = super::connect(global).await?;
    let r = r.as_ref();
    let pulled: Vec<bool> = stream::iter(&images)
        .map(|image| pull_one(&engine, image, r))
        .buffer_unordered(global.parallel)
        .collect()
        .await;
    let ok = pulled.iter().filter(|p| **p).count();
    r.info(&format!("{ok} of {} images pulled", images.len()));
    Ok(ExitStatus::failed_if(ok < images.len()))
}

async fn pull_one(engine: &Engine, image: &str, r: &dyn Reporter) -> bool {
    let at = reference::parse(image);
    r.output(image, &format!("pulling from {}", at.registry));
    match engine
        .pull_image(&at.repository, &at.tag, |line| r.output(image, line))
        .await
    {
        Ok(()) => {
            r.finished(
                image,
                &Outcome::Done {
                    detail: "pulled".into(),
                },
            );
            true
        }
        Err(e) => {
            let (message, hint) = explain(image, &at, &e);
            r.finished(image, &Outcome::Failed { message, hint });
            false
        }
    }
}

/// What a failed pull means for the person who asked, with the engine's own words below.
fn explain(image: &str, at: &Reference, e: &EngineError) -> (String, Option<String>) {
    let said = match e {
        EngineError::Api { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let build = format!("`claunch image build --tag {image}` builds an agent image on this engine, no registry needed");
    let has = |words: &[&str]| words.iter().any(|w| said.contains(w));
    let (message, hint) = if has(&[
        "no such host",
        "connection refused",
        "i/o timeout",
        "network is unreachable",
        "no route to host",
        "TLS handshake timeout",
        "Client.Timeout",
        "dial tcp",
    ]) {
        (
            format!(
                "cannot pull {image}: registry {} is unreachable from the engine",
                at.registry
            ),
            build,
        )
    } else if has(&[
        "not found",
        "manifest unknown",
        "pull access denied",
        "does not exist",
        "unauthorized",
    ]) {
        (
            format!(
                "cannot pull {image}: registry {} has no such image, or wants a login for it",
                at.registry
            ),
            format!(
                "check the name and tag in claunch.yaml, or `docker login {}`; or {build}",
                at.registry
            ),
        )
    } else {
        (format!("cannot pull {image}"), build)
    };
    (format!("{message}\n    | {said}"), Some(hint))
}
