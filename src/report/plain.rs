//! Plain lines prefixed by the container's name, for logs and pipes (compose style).

use super::{Outcome, Reporter, Step};

pub struct PlainReporter;

impl Reporter for PlainReporter {
    fn step(&self, container: &str, step: Step) {
        println!("{container} | {}", step.label());
    }

    fn output(&self, container: &str, line: &str) {
        println!("{container} | {line}");
    }

    fn finished(&self, container: &str, outcome: &Outcome) {
        match outcome {
            Outcome::Done { detail } => println!("{container} | done: {detail}"),
            Outcome::Failed { message, hint } => {
                println!("{container} | failed: {message}");
                if let Some(hint) = hint {
                    println!("{container} |   hint: {hint}");
                }
            }
        }
    }

    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }

    fn info(&self, message: &str) {
        println!("{message}");
    }
}
