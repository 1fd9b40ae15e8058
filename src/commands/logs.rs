//! `claunch logs`: the agents' own output, compose style, each line prefixed by its container.

use std::time::Duration;

use crate::commands::ExitStatus;
use futures::stream::{self, StreamExt};

use super::{members, Global};
use serde_json::json;

use crate::credentials;
use crate::engine::{Lines, LogsQuery, Output};
use crate::report;

/// What `logs` shows.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    /// A container name, `<agent>-<n>` or an agent; all of the project when `None`.
    pub target: Option<String>,
    pub follow: bool,
    pub tail: Option<u64>,
    /// Each line with the engine's time for it.
    pub timestamps: bool,
    pub since: Option<Since>,
    pub json: bool,
}

/// `--since`: where the logs start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// This long before now (`10m`).
    Ago(Duration),
    /// A Unix time in seconds (an RFC 3339 time, or the number docker also takes).
    At(i64),
}

impl Since {
    /// Reads docker's spellings: a duration (`10m`, `1h30m`), an RFC 3339 time
    /// (`2026-11-28T13:14:15Z`) or Unix seconds (`1795871655`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(secs) = text.parse::<i64>() {
            return Ok(Self::At(secs));
        }
        if let Some(secs) = super::clock::rfc3339_secs(text) {
            return Ok(Self::At(secs));
        }
        crate::config::parse_duration(text).map(Self::Ago).map_err(|_| {
            "neither a duration nor a time\n  hint: write a duration like 10m or 1h30m, or an RFC 3339 time like 2026-11-28T13:14:15Z".to_string()
        })
    }

    /// As Unix seconds, `now_secs` being now.
    fn unix_secs(self, now_secs: i64) -> i64 {
        match self {
            Self::Ago(d) => now_secs - i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2),
            Self::At(secs) => secs,
        }
    }
}

pub async fn logs(global: &Global, o: &LogsOptions) -> anyhow::Result<ExitStatus> {
    let json = o.json;
    let project = super::project_name(global)?;
    let engine = super::connect(global).await?;
    let all = members(&engine, &project).await?;
    let query = LogsQuery {
        follow: o.follow,
        tail: o.tail,
        timestamps: o.timestamps,
        since: o
            .since
            .map(|s| s.unix_secs(credentials::now_ms().div_euclid(1000))),
    };
    let chosen = match o.target.as_deref() {
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
            .logs(&m.id, query)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_dockers_spellings() {
        assert_eq!(
            Since::parse("10m"),
            Ok(Since::Ago(Duration::from_secs(600)))
        );
        assert_eq!(
            Since::parse("2026-11-28T13:14:15Z"),
            Ok(Since::At(1_795_871_655))
        );
        assert_eq!(Since::parse("1795871655"), Ok(Since::At(1_795_871_655)));
        assert_eq!(Since::Ago(Duration::from_secs(600)).unix_secs(1_000), 400);
        assert_eq!(
            Since::parse("yesterday").unwrap_err(),
            "neither a duration nor a time\n  hint: write a duration like 10m or 1h30m, or an RFC 3339 time like 2026-11-28T13:14:15Z"
        );
    }
}
