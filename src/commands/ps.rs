//! `claunch ps`: the project's containers with their state, uptime and the expiry of the
//! credentials read back from inside each one (never the token).

use crate::commands::ExitStatus;
use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::{members, Global, Member};
use crate::credentials::holder::{Held, Holder, Probes};
use crate::credentials::{self, Summary};
use crate::engine::Engine;
use crate::smoke;

#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub agent: String,
    pub replica: Option<u32>,
    /// `leader`, `follower` or `shared`: who holds the login's refresh token.
    pub role: String,
    pub state: String,
    pub image: String,
    pub started_at: Option<String>,
    pub uptime_secs: Option<i64>,
    pub credentials_path: Option<String>,
    /// `ok`, `missing`, `invalid: …` or `unknown: …` (container not running, unreadable).
    pub credentials: String,
    pub credentials_summary: Option<Summary>,
    /// Its last smoke verdict (`passed`, `timed_out`, …), `None` when never tested.
    pub smoke: Option<String>,
}

pub async fn rows(engine: &Engine, list: Vec<Member>, parallel: usize) -> Vec<Row> {
    let probes = &Probes::default();
    stream::iter(list)
        .map(|m| async move { row(engine, m, probes).await })
        .buffered(parallel)
        .collect()
        .await
}

async fn row(engine: &Engine, m: Member, probes: &Probes) -> Row {
    let mut row = Row {
        name: m.name.clone(),
        agent: m.agent.clone(),
        replica: m.replica,
        role: m.role.as_str().to_string(),
        state: m.state.clone(),
        image: m.image.clone(),
        started_at: None,
        uptime_secs: None,
        credentials_path: None,
        credentials: String::new(),
        credentials_summary: None,
        smoke: None,
    };
    row.smoke = smoke::record::read(engine, &m.id).await.map(|r| r.class);
    let (holder, info) = match Holder::look(engine, &m.id, &m.name, probes).await {
        Ok(found) => found,
        Err(e) => {
            row.credentials = format!("unknown: {e}");
            return row;
        }
    };
    if m.running() {
        row.started_at = info.state.started_at;
        row.uptime_secs = row.started_at.as_deref().and_then(uptime_secs);
    }
    row.credentials = match holder.read_credentials(engine).await {
        Held::Missing => "missing".into(),
        Held::Valid(c) => {
            row.credentials_summary = Some(c.summary);
            "ok".into()
        }
        Held::Invalid(e) => format!("invalid: {e}"),
        Held::Unreadable(e) => format!("unknown: {e}"),
    };
    row.credentials_path = Some(holder.credentials_path());
    row
}

fn uptime_secs(started_at: &str) -> Option<i64> {
    let started = super::clock::rfc3339_secs(started_at)?;
    Some(credentials::now_ms() / 1000 - started)
}

fn describe_uptime(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3_600, (s % 3_600) / 60),
        s => format!("{}d{}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

fn expiry_column(row: &Row) -> String {
    match (&row.credentials_summary, row.credentials.as_str()) {
        (Some(s), _) => {
            let left = s
                .expires_in_ms(credentials::now_ms())
                .map_or_else(|| "no expiry".to_string(), credentials::describe_remaining);
            let refresh = if s.has_refresh_token {
                ", refreshable"
            } else {
                ""
            };
            format!("{left}{refresh}")
        }
        (None, other) => other.to_string(),
    }
}

/// What `ps` lists, and how.
#[derive(Debug, Clone, Copy, Default)]
pub struct PsOptions {
    /// Stopped containers too, not only those that run.
    pub all: bool,
    /// Only the containers' ids, one a line.
    pub quiet: bool,
    pub json: bool,
}

/// Whether a container is listed without `-a`: its process is there (running, paused,
/// restarting), as compose lists them.
fn is_up(m: &Member) -> bool {
    !matches!(m.state.as_str(), "created" | "exited" | "dead")
}

pub async fn ps(global: &Global, o: PsOptions) -> anyhow::Result<ExitStatus> {
    let project = super::project_name(global)?;
    let engine = super::connect(global).await?;
    let mut list = members(&engine, &project).await?;
    let total = list.len();
    if !o.all {
        list.retain(is_up);
    }
    let hidden = total - list.len();
    if o.quiet {
        for m in &list {
            println!("{}", m.id);
        }
        return Ok(ExitStatus::Success);
    }
    let rows = rows(&engine, list, global.parallel).await;
    if o.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
        return Ok(ExitStatus::Success);
    }
    let table: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.agent.clone(),
                r.role.clone(),
                r.state.clone(),
                r.image.clone(),
                r.uptime_secs.map_or_else(|| "-".into(), describe_uptime),
                expiry_column(r),
                r.smoke.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "AGENT",
        "ROLE",
        "STATE",
        "IMAGE",
        "UPTIME",
        "CREDENTIALS",
        "SMOKE",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for line in &table {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for line in std::iter::once(&header).chain(&table) {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    if rows.is_empty() && hidden > 0 {
        eprintln!("project `{project}` has no running containers ({hidden} stopped: `claunch ps -a` lists them)");
    } else if rows.is_empty() {
        eprintln!("project `{project}` has no containers");
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes_read_short() {
        assert_eq!(describe_uptime(3_725), "1h02m");
    }
}
