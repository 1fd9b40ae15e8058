//! `claunch version` and `claunch --version`: claunch's own version, the engine's, and
//! the API version claunch negotiated with it.

use serde_json::json;

use super::{ExitStatus, Global};
use crate::engine::{Engine, EngineVersion};

/// claunch's own version.
pub const CLAUNCH_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How the version was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// `claunch version`: an engine out of reach is an error.
    Command { json: bool },
    /// `claunch --version`: claunch's version always, the engine's when it answers.
    Flag,
}

pub async fn version(global: &Global, asked: Asked) -> anyhow::Result<ExitStatus> {
    let engine = match super::connect(global).await {
        Ok(engine) => match engine.version().await {
            Ok(v) => Ok((engine, v)),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e),
    };
    if let Asked::Command { json: true } = asked {
        let engine_json = match &engine {
            Ok((engine, v)) => json!({
                "version": v.version,
                "api_version": v.api_version,
                "negotiated_api": v.negotiated_api,
                "os": v.os,
                "arch": v.arch,
                "endpoint": engine.endpoint(),
            }),
            Err(e) => json!({"error": format!("{e:#}")}),
        };
        crate::report::json_line(&json!({"claunch": CLAUNCH_VERSION, "engine": engine_json}));
    } else {
        println!("claunch {CLAUNCH_VERSION}");
        if let Ok((engine, v)) = &engine {
            println!("{}", describe(engine, v));
        }
    }
    match (engine, asked) {
        (Ok(_), _) => Ok(ExitStatus::Success),
        (Err(e), Asked::Command { json: false }) => Err(e),
        (Err(_), Asked::Command { json: true }) => Ok(ExitStatus::Failure),
        (Err(e), Asked::Flag) => {
            eprintln!("warning: {e:#}");
            Ok(ExitStatus::Success)
        }
    }
}

fn describe(engine: &Engine, v: &EngineVersion) -> String {
    format!(
        "engine: Docker {} ({}/{}) at {}\napi: {} (negotiated; the engine speaks up to {})",
        v.version,
        v.os,
        v.arch,
        engine.endpoint(),
        v.negotiated_api,
        v.api_version
    )
}
