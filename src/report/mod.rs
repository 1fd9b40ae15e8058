//! Progress as events: the core says what happened to which container, and a reporter
//! turns that into indicatif lines on a terminal, plain prefixed lines elsewhere, or
//! JSON lines with `--json`.

pub mod clock;
mod json;
mod plain;
mod run;
mod terminal;
mod waiting;

use std::io::IsTerminal;
use std::sync::Arc;

use serde::Serialize;

pub use json::JsonReporter;
pub use plain::PlainReporter;
pub use run::{per_minute, pick_run, RunEvent, RunReporter, RunSummary};
pub use terminal::TerminalReporter;
pub use waiting::Waiting;

/// A step in a container's life during `up` or `down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Create,
    Credentials,
    Start,
    Smoke,
    Stop,
    Remove,
    Retry,
}

impl Step {
    pub fn label(self) -> &'static str {
        match self {
            Self::Create => "creating",
            Self::Credentials => "delivering credentials",
            Self::Start => "starting",
            Self::Smoke => "smoke test",
            Self::Stop => "stopping",
            Self::Remove => "removing",
            Self::Retry => "retrying",
        }
    }
}

/// How a container ended up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Done {
        detail: String,
    },
    Failed {
        message: String,
        hint: Option<String>,
    },
}

/// How `up` ended, counted: the last thing it reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub project: String,
    pub created: usize,
    pub recreated: usize,
    /// Stopped ones started again.
    pub started: usize,
    /// Running ones smoke-tested again (their last test had not passed).
    pub retested: usize,
    pub removed: usize,
    pub unchanged: usize,
    pub failed: usize,
    /// Interrupted before they began.
    pub not_started: usize,
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let changed = self.created + self.recreated + self.started + self.retested;
        write!(
            f,
            "{} containers: {changed} changed, {} up to date",
            self.project, self.unchanged
        )?;
        if self.removed > 0 {
            write!(f, ", {} removed", self.removed)?;
        }
        write!(f, ", {} failed ({:.1}s)", self.failed, self.seconds)
    }
}

/// Receives what the core does, as it happens. Implementations must be cheap and never
/// block the caller for long: they run inside the engine tasks.
pub trait Reporter: Send + Sync {
    fn step(&self, container: &str, step: Step);
    /// One line of output (e.g. from a smoke test) as it streams.
    fn output(&self, container: &str, line: &str);
    fn finished(&self, container: &str, outcome: &Outcome);
    fn warn(&self, message: &str);
    /// A line for the person running claunch (a plan, a note).
    fn info(&self, message: &str);
    /// The counts at the end of `up`.
    fn summary(&self, summary: &Summary) {
        self.info(&summary.to_string());
    }
}

/// One JSON object on a line of its own on stdout (`--json` output of a data command).
pub fn json_line(value: &impl Serialize) {
    use std::io::Write as _;
    let line = serde_json::to_string(value)
        .unwrap_or_else(|e| format!(r#"{{"event":"error","message":"{e}"}}"#));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// A warning under `--json`: an object on stderr, so stdout holds only the data.
pub fn json_warning(message: &str) {
    eprintln!(
        "{}",
        serde_json::json!({"event": "warning", "message": message})
    );
}

/// The reporter fitting where output goes: JSON lines, a terminal, or plain lines.
pub fn pick(json: bool) -> Arc<dyn Reporter> {
    if json {
        Arc::new(JsonReporter)
    } else if std::io::stderr().is_terminal() {
        Arc::new(TerminalReporter::new())
    } else {
        Arc::new(PlainReporter)
    }
}
