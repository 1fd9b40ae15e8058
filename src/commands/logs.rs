//! `claunch logs`: the agents' own output, compose style, each line prefixed by its container.

use futures::stream::{self, StreamExt};

use super::{members, Global};
use crate::engine::Lines;
use crate::engine::Output;

pub async fn run(
    global: &Global,
    target: Option<&str>,
    follow: bool,
    tail: Option<u64>,
) -> anyhow::Result<i32> {
    let project = super::project_name(global)?;
    let engine = super::connect(global).await?;
    let all = members(&engine, &project).await?;
    let chosen = match target {
        Some(t) => super::select(&project, &all, t)?
            .into_iter()
            .cloned()
            .collect(),
        None => all,
    };
    let width = chosen.iter().map(|m| m.name.len()).max().unwrap_or(0);
    let streams = chosen.into_iter().map(|m| {
        let name = format!("{:width$}", m.name);
        engine
            .logs(&m.id, follow, tail)
            .map(move |item| (name.clone(), item))
    });
    let mut merged = stream::select_all(streams);
    let mut buffers: std::collections::HashMap<String, (Lines, Lines)> =
        std::collections::HashMap::new();
    while let Some((name, item)) = merged.next().await {
        let (out, err) = buffers.entry(name.clone()).or_default();
        match item? {
            Output::Stdout(b) => out.push(&b, |l| println!("{name} | {l}")),
            Output::Stderr(b) => err.push(&b, |l| eprintln!("{name} | {l}")),
        }
    }
    for (name, (mut out, mut err)) in buffers {
        out.finish(|l| println!("{name} | {l}"));
        err.finish(|l| eprintln!("{name} | {l}"));
    }
    Ok(0)
}
