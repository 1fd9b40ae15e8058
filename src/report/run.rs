//! Progress of `claunch run`: what happens to tasks and logins, as an indicatif bar with a
//! line per container on a terminal, plain lines elsewhere, JSON lines with `--json`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;

use super::clock::hh_mm_utc;
use super::{Outcome, Reporter, Step};

/// Something that happened to a task or a login.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    TaskStarted {
        id: String,
        container: String,
        attempt: u32,
    },
    /// A line worth showing from a running task (never in JSON: results carry the answer).
    #[serde(skip)]
    TaskOutput {
        id: String,
        container: String,
        line: String,
    },
    /// An attempt failed for a passing reason; the task runs again after `delay_ms`.
    TaskRetried {
        id: String,
        container: String,
        attempt: u32,
        class: String,
        message: String,
        delay_ms: u64,
    },
    /// The task goes back to the queue without counting as an attempt (its login paused).
    TaskRequeued {
        id: String,
        container: String,
        reason: String,
    },
    TaskFinished {
        id: String,
        container: String,
        status: String,
        attempts: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        class: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        total_cost_usd: Option<f64>,
    },
    /// The login reached its usage limit: nothing is sent on it until `until`.
    LoginPaused {
        login: String,
        /// Unix seconds when dispatch starts again (the reset, plus a little jitter).
        until: i64,
        /// `five_hour`, `seven_day`…
        #[serde(skip_serializing_if = "Option::is_none")]
        limit: Option<String>,
    },
    /// One task goes first after a pause, to see whether the limit is over.
    LoginProbing {
        login: String,
        id: String,
        container: String,
    },
    LoginResumed {
        login: String,
        paused_secs: u64,
    },
    /// A `rate_limit_event` that does not stop anything (e.g. `allowed_warning`).
    RateLimitNotice {
        login: String,
        status: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        limit: Option<String>,
    },
}

/// How a run ended, counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunSummary {
    pub tasks: u64,
    /// Done by an earlier run (an `ok` line was there).
    pub skipped: u64,
    pub ok: u64,
    pub failed: u64,
    pub timeout: u64,
    /// Never finished in this run (interrupted, stopped, or no container could take them).
    pub not_run: u64,
    pub total_cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub seconds: f64,
    pub tasks_per_min: f64,
    pub results: String,
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tasks: {} ok, {} failed, {} timed out",
            self.tasks, self.ok, self.failed, self.timeout
        )?;
        if self.skipped > 0 {
            write!(f, ", {} already ok", self.skipped)?;
        }
        if self.not_run > 0 {
            write!(f, ", {} not run", self.not_run)?;
        }
        write!(
            f,
            "; ${:.4}, {} input / {} output tokens; {:.1}s, {:.1} tasks/min; results in {}",
            self.total_cost_usd,
            self.input_tokens,
            self.output_tokens,
            self.seconds,
            self.tasks_per_min,
            self.results
        )
    }
}

/// `paused until 19:02 UTC (usage limit, five_hour)`.
pub fn paused_text(until: i64, limit: Option<&str>) -> String {
    format!(
        "paused until {} (usage limit{})",
        hh_mm_utc(until),
        limit.map(|l| format!(", {l}")).unwrap_or_default()
    )
}

/// Receives what a run does; also a [`Reporter`] for what keeps the login alive meanwhile.
pub trait RunReporter: Reporter {
    /// The run starts: `total` tasks to do, on these containers.
    fn begin(&self, total: u64, containers: &[String]);
    fn event(&self, event: &RunEvent);
    fn run_summary(&self, summary: &RunSummary);
}

/// The reporter fitting where output goes.
pub fn pick_run(json: bool) -> std::sync::Arc<dyn RunReporter> {
    use std::io::IsTerminal as _;
    if json {
        std::sync::Arc::new(RunJson)
    } else if std::io::stderr().is_terminal() {
        std::sync::Arc::new(RunTerminal::new())
    } else {
        std::sync::Arc::new(RunPlain)
    }
}

/// What a run's `Reporter` side says: keeping the login alive is news only when it did
/// something or failed.
fn login_note(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Done { detail } if detail == "up to date" => None,
        Outcome::Done { detail } => Some(detail.clone()),
        Outcome::Failed { message, .. } => Some(format!("failed: {message}")),
    }
}

pub struct RunJson;

impl Reporter for RunJson {
    fn step(&self, _: &str, _: Step) {}
    fn output(&self, _: &str, _: &str) {}
    fn finished(&self, container: &str, outcome: &Outcome) {
        if let Some(note) = login_note(outcome) {
            super::json_line(&json!({"event": "login", "container": container, "message": note}));
        }
    }
    fn warn(&self, message: &str) {
        super::json_warning(message);
    }
    fn info(&self, message: &str) {
        super::json_line(&json!({"event": "info", "message": message}));
    }
}

impl RunReporter for RunJson {
    fn begin(&self, total: u64, containers: &[String]) {
        super::json_line(
            &json!({"event": "run_started", "tasks": total, "containers": containers}),
        );
    }
    fn event(&self, event: &RunEvent) {
        if !matches!(event, RunEvent::TaskOutput { .. }) {
            super::json_line(event);
        }
    }
    fn run_summary(&self, summary: &RunSummary) {
        let mut value = json!(summary);
        value["event"] = json!("summary");
        super::json_line(&value);
    }
}

/// One line per event, for logs and pipes.
pub struct RunPlain;

fn plain_line(event: &RunEvent) -> Option<String> {
    Some(match event {
        RunEvent::TaskStarted {
            id,
            container,
            attempt,
        } => {
            let again = if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            format!("{container} | {id}: started{again}")
        }
        RunEvent::TaskOutput { .. } => return None,
        RunEvent::TaskRetried {
            id,
            container,
            class,
            message,
            delay_ms,
            ..
        } => format!(
            "{container} | {id}: {class}: {message}; trying again in {:.1}s",
            Duration::from_millis(*delay_ms).as_secs_f64()
        ),
        RunEvent::TaskRequeued {
            id,
            container,
            reason,
        } => format!("{container} | {id}: back in the queue ({reason})"),
        RunEvent::TaskFinished {
            id,
            container,
            status,
            class,
            message,
            ..
        } => match (class, message) {
            (Some(class), Some(message)) => {
                format!("{container} | {id}: {status} ({class}: {message})")
            }
            _ => format!("{container} | {id}: {status}"),
        },
        RunEvent::LoginPaused {
            login,
            until,
            limit,
        } => format!("login {login}: {}", paused_text(*until, limit.as_deref())),
        RunEvent::LoginProbing {
            login,
            id,
            container,
        } => format!("login {login}: trying one task ({id} on {container}) before opening again"),
        RunEvent::LoginResumed { login, paused_secs } => {
            format!("login {login}: resumed after {paused_secs}s")
        }
        RunEvent::RateLimitNotice {
            login,
            status,
            limit,
        } => format!(
            "login {login}: usage limit {}: {status}",
            limit.as_deref().unwrap_or("unknown")
        ),
    })
}

impl Reporter for RunPlain {
    fn step(&self, _: &str, _: Step) {}
    fn output(&self, _: &str, _: &str) {}
    fn finished(&self, container: &str, outcome: &Outcome) {
        if let Some(note) = login_note(outcome) {
            eprintln!("{container} | login: {note}");
        }
    }
    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
    fn info(&self, message: &str) {
        eprintln!("{message}");
    }
}

impl RunReporter for RunPlain {
    fn begin(&self, total: u64, containers: &[String]) {
        eprintln!(
            "running {total} tasks on {} containers: {}",
            containers.len(),
            containers.join(", ")
        );
    }
    fn event(&self, event: &RunEvent) {
        if let Some(line) = plain_line(event) {
            eprintln!("{line}");
        }
    }
    fn run_summary(&self, summary: &RunSummary) {
        eprintln!("{summary}");
    }
}

/// The bar (done/total, counts, rate, ETA, pause) and a line per container.
pub struct RunTerminal {
    multi: MultiProgress,
    state: Mutex<TerminalState>,
}

struct TerminalState {
    bar: Option<ProgressBar>,
    lines: HashMap<String, ProgressBar>,
    /// Task id running on each container.
    running: HashMap<String, String>,
    ok: u64,
    failed: u64,
    done: u64,
    total: u64,
    started: Instant,
    paused: Option<String>,
}

impl RunTerminal {
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::new(),
            state: Mutex::new(TerminalState {
                bar: None,
                lines: HashMap::new(),
                running: HashMap::new(),
                ok: 0,
                failed: 0,
                done: 0,
                total: 0,
                started: Instant::now(),
                paused: None,
            }),
        }
    }

    fn refresh(state: &TerminalState) {
        let Some(bar) = &state.bar else { return };
        let rate = per_minute(state.done, state.started.elapsed().as_secs_f64());
        let left = state.total.saturating_sub(state.done);
        let eta = if rate > 0.0 && left > 0 {
            let secs = per_minute(left, 60.0) / rate * 60.0;
            format!(" · ETA {}", short_duration(Duration::from_secs_f64(secs)))
        } else {
            String::new()
        };
        let paused = state
            .paused
            .as_ref()
            .map(|p| format!(" · {p}"))
            .unwrap_or_default();
        bar.set_position(state.done);
        bar.set_message(format!(
            "ok {} · failed {} · running {} · {rate:.1}/min{eta}{paused}",
            state.ok,
            state.failed,
            state.running.len()
        ));
    }
}

impl Default for RunTerminal {
    fn default() -> Self {
        Self::new()
    }
}

/// `n` things in `seconds`, per minute.
pub fn per_minute(n: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    f64::from(u32::try_from(n).unwrap_or(u32::MAX)) * 60.0 / seconds
}

fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

impl Reporter for RunTerminal {
    fn step(&self, _: &str, _: Step) {}
    fn output(&self, _: &str, _: &str) {}
    fn finished(&self, container: &str, outcome: &Outcome) {
        if let Some(note) = login_note(outcome) {
            let _ = self.multi.println(format!("{container} login: {note}"));
        }
    }
    fn warn(&self, message: &str) {
        let _ = self.multi.println(format!("warning: {message}"));
    }
    fn info(&self, message: &str) {
        let _ = self.multi.println(message);
    }
}

impl RunReporter for RunTerminal {
    fn begin(&self, total: u64, containers: &[String]) {
        let mut state = self.state.lock().expect("reporter lock");
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template("{bar:20.cyan/blue} {pos}/{len} {wide_msg}")
                .expect("static template"),
        );
        for name in containers {
            let line = self.multi.add(ProgressBar::new_spinner());
            line.set_style(
                ProgressStyle::with_template("  {spinner:.cyan} {prefix:.bold} {wide_msg}")
                    .expect("static template"),
            );
            line.set_prefix(name.clone());
            line.set_message("idle");
            line.enable_steady_tick(Duration::from_millis(200));
            state.lines.insert(name.clone(), line);
        }
        state.total = total;
        state.started = Instant::now();
        state.bar = Some(bar);
        Self::refresh(&state);
    }

    fn event(&self, event: &RunEvent) {
        let mut state = self.state.lock().expect("reporter lock");
        let set_line = |state: &TerminalState, container: &str, text: String| {
            if let Some(line) = state.lines.get(container) {
                line.set_message(text);
            }
        };
        match event {
            RunEvent::TaskStarted { id, container, .. } => {
                state.running.insert(container.clone(), id.clone());
                set_line(&state, container, id.clone());
            }
            RunEvent::TaskOutput {
                id,
                container,
                line,
            } => {
                let first = line.lines().next().unwrap_or_default();
                set_line(&state, container, format!("{id} › {first}"));
                return;
            }
            RunEvent::TaskRetried { container, .. } | RunEvent::TaskRequeued { container, .. } => {
                state.running.remove(container);
                set_line(&state, container, "idle".into());
            }
            RunEvent::TaskFinished {
                container, status, ..
            } => {
                state.running.remove(container);
                state.done += 1;
                if status == "ok" {
                    state.ok += 1;
                } else {
                    state.failed += 1;
                }
                set_line(&state, container, "idle".into());
            }
            RunEvent::LoginPaused { until, limit, .. } => {
                state.paused = Some(paused_text(*until, limit.as_deref()));
            }
            RunEvent::LoginResumed { .. } => state.paused = None,
            RunEvent::LoginProbing { .. } | RunEvent::RateLimitNotice { .. } => {}
        }
        // Failures, pauses and notices stay on screen above the bar.
        let keep = match event {
            RunEvent::TaskFinished { status, .. } => status != "ok",
            RunEvent::TaskOutput { .. } | RunEvent::TaskStarted { .. } => false,
            _ => true,
        };
        if keep {
            if let Some(line) = plain_line(event) {
                let _ = self.multi.println(line);
            }
        }
        Self::refresh(&state);
    }

    fn run_summary(&self, summary: &RunSummary) {
        let state = self.state.lock().expect("reporter lock");
        for line in state.lines.values() {
            line.finish_and_clear();
        }
        if let Some(bar) = &state.bar {
            bar.finish();
        }
        eprintln!("{summary}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_as_json_and_plain_lines() {
        let paused = RunEvent::LoginPaused {
            login: "default".into(),
            until: 1_777_662_120,
            limit: Some("five_hour".into()),
        };
        assert_eq!(
            serde_json::to_string(&paused).unwrap(),
            r#"{"event":"login_paused","login":"default","until":1777662120,"limit":"five_hour"}"#
        );
        assert_eq!(
            plain_line(&paused).unwrap(),
            "login default: paused until 19:02 UTC (usage limit, five_hour)"
        );
        let finished = RunEvent::TaskFinished {
            id: "t1".into(),
            container: "p-a-1".into(),
            status: "failed".into(),
            attempts: 3,
            class: Some("api_error".into()),
            message: Some("API answered 529".into()),
            total_cost_usd: None,
        };
        assert_eq!(
            plain_line(&finished).unwrap(),
            "p-a-1 | t1: failed (api_error: API answered 529)"
        );
    }
}
