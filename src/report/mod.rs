//! Progress as events: the core says what happened to which container, and a reporter
//! turns that into indicatif lines on a terminal, plain prefixed lines elsewhere, or
//! JSON lines with `--json`.

mod json;
mod plain;
mod terminal;

use std::io::IsTerminal;
use std::sync::Arc;

use serde::Serialize;

pub use json::JsonReporter;
pub use plain::PlainReporter;
pub use terminal::TerminalReporter;

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

/// Receives what the core does, as it happens. Implementations must be cheap and never
/// block the caller for long: they run inside the engine tasks.
pub trait Reporter: Send + Sync {
    fn step(&self, container: &str, step: Step);
    /// One line of output (e.g. from a smoke test) as it streams.
    fn output(&self, container: &str, line: &str);
    fn finished(&self, container: &str, outcome: &Outcome);
    fn warn(&self, message: &str);
    /// A line for the person running claunch (a plan, a summary).
    fn info(&self, message: &str);
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
