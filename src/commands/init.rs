//! `claunch init`: a commented claunch.yaml to start from, and credentials kept out of git.

use crate::commands::ExitStatus;
use std::path::Path;

use anyhow::{bail, Context as _};

const TEMPLATE: &str = include_str!("../../templates/claunch.yaml");

/// Lines `init` makes sure `.gitignore` has.
const IGNORED: [&str; 2] = [".credentials.json", ".env"];

pub fn init(dir: &Path, force: bool) -> anyhow::Result<ExitStatus> {
    let config = dir.join("claunch.yaml");
    if config.exists() && !force {
        bail!(
            "{} already exists\n  hint: pass --force to overwrite it",
            config.display()
        );
    }
    std::fs::write(&config, TEMPLATE).with_context(|| format!("writing {}", config.display()))?;
    println!("wrote {}", config.display());
    let gitignore = dir.join(".gitignore");
    let existing = std::fs::read_to_string(&gitignore).unwrap_or_default();
    let missing: Vec<&str> = IGNORED
        .iter()
        .copied()
        .filter(|entry| !existing.lines().any(|l| l.trim() == *entry))
        .collect();
    if !missing.is_empty() {
        let mut text = existing.clone();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("# Claude credentials: never commit them (added by claunch init)\n");
        for entry in &missing {
            text.push_str(entry);
            text.push('\n');
        }
        std::fs::write(&gitignore, text)
            .with_context(|| format!("writing {}", gitignore.display()))?;
        println!("added {} to {}", missing.join(", "), gitignore.display());
    }
    println!("next: edit claunch.yaml, then `claunch up`");
    Ok(ExitStatus::Success)
}
