//! A wait that shows it is a wait: on a terminal, a spinner on stderr naming what is
//! awaited and for how long, gone at the first sign of life. Elsewhere, nothing (a pipe
//! gets only the output itself).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Waiting {
    bar: Option<ProgressBar>,
}

impl Waiting {
    /// Starts showing `what` (e.g. "waiting for claude in planner-1") with its elapsed time.
    pub fn start(what: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                .expect("static template"),
        );
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar: Some(bar) }
    }

    /// Says what is awaited now (e.g. that claude retries an unreachable API).
    pub fn say(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_string());
        }
    }

    /// The wait is over: take the spinner away (once; later calls do nothing).
    pub fn stop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.stop();
    }
}
