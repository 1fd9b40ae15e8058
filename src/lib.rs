//! claunch: launch and run fleets of headless Claude Code agents in Docker containers on a
//! Claude subscription (OAuth) login.
//!
//! `main` parses the command line with [`cli::Cli`], validates it into an
//! [`Invocation`](commands::Invocation) and calls [`run`]; everything else lives in the
//! library so tests can drive it. The parts and which may use which are in README.md
//! ("Architecture").

pub(crate) mod claude;
pub mod cli;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod engine;
pub mod fleet;
pub mod image;
pub mod interrupt;
pub(crate) mod metrics;
pub(crate) mod plan;
pub(crate) mod report;
pub mod secret;
pub mod smoke;

pub use commands::{ExitStatus, Invocation};

/// Runs one validated command line.
pub async fn run(invocation: Invocation) -> anyhow::Result<ExitStatus> {
    commands::dispatch(invocation).await
}
