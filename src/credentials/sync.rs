//! Keeping a rotating login alive across a fleet: read what the leader's claude wrote after
//! a refresh, put it back where the login came from, and make the leader refresh when
//! nothing else did in time. Containers are untrusted: see [`family::judge_candidate`].

use std::time::Duration;

use crate::config::Spec;
use crate::credentials::holder::Holder;
use crate::credentials::sources::{self, WriteBack};
use crate::credentials::{self, family, Credentials};
use crate::engine::Engine;
use crate::report::Reporter;
use crate::secret::Secret;

/// The prompt that makes a leader's claude refresh; any prompt would do.
const REFRESH_PROMPT: &str = "Reply with OK";

/// Reads the leader's file and, when it is a plausible newer member of the family, writes
/// it back to the source. Returns the login to use from now on (`current` if nothing
/// newer was found).
pub async fn adopt_from_leader(
    engine: &Engine,
    spec: &Spec,
    current: &Credentials,
    leader: &Holder,
    r: &dyn Reporter,
) -> anyhow::Result<Credentials> {
    let read = leader.read(engine).await.map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot read the leader's credentials file ({e}); the source was left as it was",
            leader.name
        )
    })?;
    let Some(raw) = read else {
        r.warn(&format!(
            "{}: the leader has no credentials file",
            leader.name
        ));
        return Ok(current.clone());
    };
    match family::judge_candidate(current, &raw, true, credentials::now_ms()) {
        family::Judgement::Newer => {
            let newer =
                Credentials::parse(raw).map_err(|e| anyhow::anyhow!("{}: {e}", leader.name))?;
            match sources::write_back(spec, &newer).await? {
                WriteBack::Written => r.info(&format!(
                    "{}: its claude refreshed the login; written back to {}",
                    leader.name,
                    spec.credentials.describe()
                )),
                WriteBack::SourceNewer => r.info(&format!(
                    "{} already holds a newer login than {}",
                    spec.credentials.describe(),
                    leader.name
                )),
                WriteBack::ReadOnly(hint) => r.warn(&hint),
            }
            Ok(newer)
        }
        family::Judgement::Same | family::Judgement::Older => Ok(current.clone()),
        family::Judgement::Rejected(why) => {
            r.warn(&format!(
                "{}: ignoring its credentials file ({why}); it was not written back or spread",
                leader.name
            ));
            Ok(current.clone())
        }
    }
}

/// Makes the leader's claude refresh now: its file is marked expired (tokens untouched),
/// then one `claude -p` runs, which refreshes before it asks anything.
pub async fn make_leader_refresh(
    engine: &Engine,
    current: &Credentials,
    leader: &Holder,
    timeout: Duration,
    r: &dyn Reporter,
) -> anyhow::Result<()> {
    let marked = mark_expired(current)?;
    leader.write(engine, &marked).await?;
    let done = crate::engine::exec_streaming(
        engine,
        &leader.id,
        leader_refresh_argv(),
        None,
        Some(timeout),
        |_| {},
    )
    .await?;
    match done.exit_code {
        Some(0) => Ok(()),
        Some(code) => {
            let verdict = crate::smoke::classify(code, &done.tail);
            r.warn(&format!(
                "{}: the refresh run failed: {}",
                leader.name,
                verdict.describe()
            ));
            anyhow::bail!(
                "{}: claude could not refresh the login: {}",
                leader.name,
                verdict.describe()
            )
        }
        None => anyhow::bail!(
            "{}: the refresh run did not finish within {timeout:?}",
            leader.name
        ),
    }
}

/// The one `claude -p` that makes the leader refresh: its fixed prompt after `--`.
fn leader_refresh_argv() -> Vec<String> {
    crate::claude::claude_print_argv(
        ["--max-turns".to_string(), "1".to_string()],
        Some(REFRESH_PROMPT),
    )
}

/// The same login with `expiresAt` in the past, so claude refreshes on its next run.
fn mark_expired(c: &Credentials) -> anyhow::Result<Secret> {
    let mut value: serde_json::Value = serde_json::from_slice(c.raw().expose())
        .map_err(|_| anyhow::anyhow!("the login is not JSON"))?;
    value["claudeAiOauth"]["expiresAt"] = serde_json::json!(credentials::now_ms() - 60_000);
    Ok(Secret::new(serde_json::to_vec(&value)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_refresh_argv_ends_with_double_dash_then_its_prompt() {
        let argv = leader_refresh_argv();
        assert_eq!(
            argv,
            ["claude", "-p", "--max-turns", "1", "--", REFRESH_PROMPT]
        );
        assert_eq!(
            argv[argv.len() - 2..],
            ["--".to_string(), REFRESH_PROMPT.to_string()],
            "`--`, then the prompt, last"
        );
    }
}
