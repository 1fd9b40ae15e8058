//! A container's last smoke verdict, kept in the container itself at [`RECORD_PATH`].
//!
//! Labels are set when a container is made and cannot change, so they cannot carry a
//! verdict reached after start. The record lives and dies with its container, is never a
//! secret, and is read through the archive endpoint (bounded), like the credentials.
//! `up` tests again a container whose record is missing, is not a pass, or was made with
//! another `smoke:` setting; `ps` and `doctor` show it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Verdict;
use crate::config::SmokeSpec;
use crate::engine::archive::{self, Entry};
use crate::engine::retry::retry;
use crate::engine::{Engine, EngineError};
use crate::secret::Secret;

/// Where the record is, in every agent container.
pub const RECORD_PATH: &str = "/.claunch/smoke.json";
const RECORD_DIR: &str = "/.claunch";
/// A record is a few dozen bytes; anything larger is not one of claunch's.
const MAX_RECORD: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// [`Verdict::class`]: `passed`, `timed_out`, …
    pub class: String,
    /// [`spec_hash`] of the `smoke:` setting it was tested with.
    pub spec: String,
    /// When, in unix seconds.
    pub at: u64,
}

impl Record {
    /// Whether it says the container passed the smoke test `spec_hash` describes.
    pub fn passed(&self, spec_hash: &str) -> bool {
        self.class == "passed" && self.spec == spec_hash
    }
}

/// What identifies a `smoke:` setting: changing it tests every container again.
pub fn spec_hash(spec: &SmokeSpec) -> String {
    let digest = Sha256::digest(format!(
        "{}\0{}\0{}",
        spec.prompt,
        spec.max_turns,
        spec.timeout.as_secs()
    ));
    digest[..6].iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Writes the verdict into container `id`.
pub async fn write(
    engine: &Engine,
    id: &str,
    verdict: &Verdict,
    spec_hash: &str,
) -> Result<(), EngineError> {
    let record = Record {
        class: verdict.class().to_string(),
        spec: spec_hash.to_string(),
        at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let json = serde_json::to_vec(&record).unwrap_or_default();
    let tar = archive::build(&[
        Entry::Dir {
            path: RECORD_DIR.into(),
            uid: 0,
            gid: 0,
            mode: 0o755,
        },
        Entry::File {
            path: RECORD_PATH.into(),
            uid: 0,
            gid: 0,
            mode: 0o644,
            contents: Secret::new(json),
        },
    ]);
    retry(|_| {}, || engine.upload_archive(id, "/", tar.to_vec())).await
}

/// The container's record; `None` when it has none (never tested, or tested by an older
/// claunch) or what is there is not a record.
/// A passing engine fault is retried: a record lost to one would test the container again.
pub async fn read(engine: &Engine, id: &str) -> Option<Record> {
    let bytes = retry(
        |_| {},
        || {
            archive::read_single_file(
                engine.download_archive(id, RECORD_PATH),
                MAX_RECORD,
                Duration::from_secs(10),
            )
        },
    )
    .await
    .ok()?;
    serde_json::from_slice(bytes.expose()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_passes_only_for_its_own_setting() {
        let spec = SmokeSpec::default();
        let hash = spec_hash(&spec);
        let other = spec_hash(&SmokeSpec {
            prompt: "Reply with OK".into(),
            ..SmokeSpec::default()
        });
        assert_ne!(hash, other);
        let record = Record {
            class: "passed".into(),
            spec: hash.clone(),
            at: 0,
        };
        assert!(record.passed(&hash));
        assert!(!record.passed(&other));
        let failed = Record {
            class: "timed_out".into(),
            ..record
        };
        assert!(!failed.passed(&hash));
    }
}
