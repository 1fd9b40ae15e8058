//! A live line per container on a terminal (indicatif), showing its step and the last
//! line of output streaming from it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{Outcome, Reporter, Step};

pub struct TerminalReporter {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl TerminalReporter {
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, container: &str) -> ProgressBar {
        let mut bars = self.bars.lock().expect("reporter lock");
        bars.entry(container.to_string())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    // The elapsed time says that a long wait is a wait, and for how long.
                    ProgressStyle::with_template(
                        "{spinner:.cyan} {prefix:.bold} {elapsed:>4.dim} {wide_msg}",
                    )
                    .expect("static template"),
                );
                bar.set_prefix(container.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .clone()
    }
}

impl Default for TerminalReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for TerminalReporter {
    fn step(&self, container: &str, step: Step) {
        self.bar(container).set_message(step.label());
    }

    fn output(&self, container: &str, line: &str) {
        self.bar(container)
            .set_message(format!("smoke test › {line}"));
    }

    fn finished(&self, container: &str, outcome: &Outcome) {
        let bar = self.bar(container);
        match outcome {
            Outcome::Done { detail } => {
                bar.set_style(
                    ProgressStyle::with_template("{prefix:.bold} {wide_msg}")
                        .expect("static template"),
                );
                bar.finish_with_message(format!("✔ {detail}"));
            }
            // A failure and its hint are printed whole (the terminal wraps them), never cut
            // to its width as a progress line is.
            Outcome::Failed { message, hint } => {
                bar.finish_and_clear();
                let hint = hint
                    .as_deref()
                    .map(|h| format!("\n    hint: {h}"))
                    .unwrap_or_default();
                let _ = self.multi.println(format!("{container} ✘ {message}{hint}"));
            }
        }
    }

    fn warn(&self, message: &str) {
        let _ = self.multi.println(format!("warning: {message}"));
    }

    fn info(&self, message: &str) {
        // Once every line is final, a summary belongs below them, not above.
        let all_done = self
            .bars
            .lock()
            .expect("reporter lock")
            .values()
            .all(ProgressBar::is_finished);
        if all_done {
            eprintln!("{message}");
        } else {
            let _ = self.multi.println(message);
        }
    }
}
