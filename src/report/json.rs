//! One JSON object per line on stdout (`--json`), for scripts.

use serde_json::json;

use super::{Outcome, Reporter, Step};

pub struct JsonReporter;

fn emit(value: &serde_json::Value) {
    println!("{value}");
}

impl Reporter for JsonReporter {
    fn step(&self, container: &str, step: Step) {
        emit(&json!({"event": "step", "container": container, "step": step}));
    }

    fn output(&self, container: &str, line: &str) {
        emit(&json!({"event": "output", "container": container, "line": line}));
    }

    fn finished(&self, container: &str, outcome: &Outcome) {
        emit(&json!({"event": "finished", "container": container, "outcome": outcome}));
    }

    fn warn(&self, message: &str) {
        super::json_warning(message);
    }

    fn info(&self, message: &str) {
        emit(&json!({"event": "info", "message": message}));
    }

    fn summary(&self, summary: &super::Summary) {
        let mut value = json!(summary);
        value["event"] = json!("summary");
        emit(&value);
    }
}
