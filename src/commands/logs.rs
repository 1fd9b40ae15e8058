//! `claunch logs`: the agents' own output, compose style, each line prefixed by its container.

use crate::commands::ExitStatus;
use futures::stream::{self, StreamExt};

use super::{members, Global};
use serde_json::json;

use crate::engine::{Lines, Output};
use crate::report;

pub async fn logs(
    global: &Global,
    target: Option<&str>,
    follow: bool,
    tail: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitStatus> {
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
    if chosen.is_empty() {
        eprintln!("project `{project}` has no containers: no logs to show");
        return Ok(ExitStatus::Success);
    }
    let names: Vec<String> = chosen.iter().map(|m| m.name.clone()).collect();
    let width = if json {
        0
    } else {
        chosen.iter().map(|m| m.name.len()).max().unwrap_or(0)
    };
    let streams = chosen.into_iter().map(|m| {
        let name = format!("{:width$}", m.name);
        engine
            .logs(&m.id, follow, tail)
            .map(move |item| (name.clone(), item))
    });
    let mut merged = stream::select_all(streams);
    let mut buffers: std::collections::HashMap<String, (Lines, Lines)> =
        std::collections::HashMap::new();
    let print = |name: &str, stream: &str, line: &str| {
        if json {
            report::json_line(&json!({"container": name, "stream": stream, "line": line}));
        } else if stream == "stdout" {
            println!("{name} | {line}");
        } else {
            eprintln!("{name} | {line}");
        }
    };
    while let Some((name, item)) = merged.next().await {
        let (out, err) = buffers.entry(name.clone()).or_default();
        match item? {
            Output::Stdout(b) => out.push(&b, |l| print(&name, "stdout", l)),
            Output::Stderr(b) => err.push(&b, |l| print(&name, "stderr", l)),
        }
    }
    for (name, (out, err)) in &mut buffers {
        out.finish(|l| print(name, "stdout", l));
        err.finish(|l| print(name, "stderr", l));
    }
    // Nothing printed for a container is not nothing to say: say so, on stderr.
    for name in names {
        let padded = format!("{name:width$}");
        if !buffers.contains_key(&padded) {
            let note = format!("{name} has no output yet");
            if json {
                report::json_warning(&note);
            } else {
                eprintln!("{note}");
            }
        }
    }
    Ok(ExitStatus::Success)
}
