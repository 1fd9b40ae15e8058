//! Token families: the access-only copy a follower gets, fingerprints that tell copies of
//! a login apart without showing a token, and whether a file read back from a container
//! may replace the source. Pure: no I/O, and the clock is a parameter.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::Credentials;
use crate::secret::Secret;

/// The scope claude needs to see in a file without a refresh token, or it reports
/// "Not logged in" (verified with the real CLI, see claude-code-facts.md).
pub const INFERENCE_SCOPE: &str = "user:inference";

/// `claude setup-token` tokens last a year; their issue date is not known here, so the
/// file says "a year from now" and an expired one shows up as a 401 in the smoke test.
pub const SETUP_TOKEN_LIFETIME_MS: i64 = 365 * 24 * 3_600_000;

/// How far ahead a login's `expiresAt` may be. Access tokens live about 8 hours
/// (CHANGELOG 2.1.86); 48 hours leaves room for a longer lifetime and for clock skew,
/// while a container that writes a far-future date cannot pin itself as "newest" forever.
pub const MAX_EXPIRY_AHEAD_MS: i64 = 48 * 3_600_000;

/// 2020-01-01T00:00:00Z: no Claude login expires before it, so an earlier `expiresAt`
/// is a blanked (0) or garbled file, or seconds mistaken for milliseconds.
pub const MIN_EXPIRES_AT_MS: i64 = 1_577_836_800_000;

/// A real credentials file is a few hundred bytes; a container's file past this is not
/// one. The reader enforces its own bound first; this one keeps the judgement self-contained.
pub const MAX_CANDIDATE_BYTES: usize = 64 * 1024;

/// Hex digits kept from a token's SHA-256: enough to tell holders apart in a fleet, far
/// too few to help guess a token.
const FINGERPRINT_HEX: usize = 12;

/// The file a follower gets: `accessToken`, `expiresAt`, `scopes` and `subscriptionType`
/// of `c`, nothing else. Without the refresh token a follower cannot rotate the family
/// and break the leader; `mcpOAuth` and `rateLimitTier` stay with the leader too.
/// Missing or empty `scopes` become `["user:inference"]`, which claude requires in a file
/// without a refresh token.
pub fn access_only(c: &Credentials) -> Secret {
    let tokens = Tokens::of(c.raw());
    let scopes: Vec<&str> = match c.summary.scopes.as_deref() {
        Some(s) if !s.is_empty() => s.iter().map(String::as_str).collect(),
        _ => vec![INFERENCE_SCOPE],
    };
    to_secret(
        &AccessOnlyFile {
            claude_ai_oauth: AccessOnly {
                access_token: tokens.access_str(),
                expires_at: c.summary.expires_at_ms,
                scopes,
                subscription_type: c.summary.subscription_type.as_deref(),
            },
        },
        c.raw().len(),
    )
}

/// An access-only file for a `claude setup-token` token (surrounding whitespace, such as
/// a pasted newline, is dropped). Such a token does not rotate, so every container can
/// hold the same file and none needs to be a leader.
///
/// `subscriptionType` is left out rather than guessed: claude reads it to pick defaults
/// for a plan, and a made-up value could pick the wrong ones; absent, claude behaves as
/// it does with `CLAUDE_CODE_OAUTH_TOKEN`, which carries no plan either.
///
/// An empty token gives a file that [`Credentials::parse`] rejects, so parse the result
/// before using it.
pub fn from_setup_token(token: &Secret, now_ms: i64) -> Secret {
    let trimmed = token.expose().trim_ascii();
    // A setup token is ASCII; anything else cannot be one, and an empty token makes the
    // caller's parse fail instead of shipping a mangled one.
    let access = std::str::from_utf8(trimmed).unwrap_or("");
    to_secret(
        &AccessOnlyFile {
            claude_ai_oauth: AccessOnly {
                access_token: access,
                expires_at: Some(now_ms.saturating_add(SETUP_TOKEN_LIFETIME_MS)),
                scopes: vec![INFERENCE_SCOPE],
                subscription_type: None,
            },
        },
        token.len(),
    )
}

/// A short, stable name for a token that does not reveal it: the first 12 hex digits of
/// its SHA-256. For logs, and to tell whether two files hold the same token.
pub fn fingerprint(token: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    Sha256::digest(token)
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
        .take(FINGERPRINT_HEX)
        .map(char::from)
        .collect()
}

/// The fingerprint of `c`'s refresh token, if it holds a non-empty one. Two files with
/// the same one are copies of one family member: only one of them may refresh.
pub fn refresh_fingerprint(c: &Credentials) -> Option<String> {
    let tokens = Tokens::of(c.raw());
    (!tokens.refresh.is_empty()).then(|| fingerprint(tokens.refresh.expose()))
}

/// The fingerprint of `c`'s access token, if it holds a non-empty one: tells whether a
/// follower already has the leader's current access token.
pub fn access_fingerprint(c: &Credentials) -> Option<String> {
    let tokens = Tokens::of(c.raw());
    (!tokens.access.is_empty()).then(|| fingerprint(tokens.access.expose()))
}

/// Whether a file read back from a container may replace the current source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// A later state of the family: write it back.
    Newer,
    /// The same tokens and expiry as the source: nothing to do.
    Same,
    /// Not newer than the source: keep the source (never go back to an older state).
    Older,
    /// Not acceptable at all; the reason never quotes the file.
    Rejected(String),
}

/// Judges `candidate_raw`, read back from a container, against the `current` source.
///
/// Containers are untrusted: only the leader's file may move the family forward; it must
/// be a full, unblanked login (a leader file without a refresh token would downgrade the
/// source); its `expiresAt` must be plausible (from 2020 on, at most
/// [`MAX_EXPIRY_AHEAD_MS`] after `now_ms`), so a container cannot claim to be newest
/// forever. Then a strictly larger `expiresAt` is [`Judgement::Newer`], an equal one with
/// the same tokens is [`Judgement::Same`], and anything else is [`Judgement::Older`].
///
/// Only `claudeAiOauth` counts: a leader whose `mcpOAuth` changed while its login did
/// not is [`Judgement::Same`].
pub fn judge_candidate(
    current: &Credentials,
    candidate_raw: &Secret,
    from_leader: bool,
    now_ms: i64,
) -> Judgement {
    let reject = |why: &str| Judgement::Rejected(why.to_string());
    if !from_leader {
        return reject("from a follower: only the leader's file may replace the source");
    }
    if candidate_raw.len() > MAX_CANDIDATE_BYTES {
        return Judgement::Rejected(format!(
            "is {} bytes, too large for a credentials file (at most {MAX_CANDIDATE_BYTES})",
            candidate_raw.len()
        ));
    }
    let candidate = match Credentials::parse(candidate_raw.clone()) {
        Ok(c) => c,
        Err(e) => return Judgement::Rejected(e.to_string()),
    };
    let s = &candidate.summary;
    if !s.has_access_token {
        return reject("has an empty accessToken, as claude leaves it after a failed refresh");
    }
    if !s.has_refresh_token {
        return reject(
            "has no refreshToken: a leader's file without one would downgrade the source",
        );
    }
    let Some(expires_at) = s.expires_at_ms else {
        return reject("has no expiresAt");
    };
    if expires_at < MIN_EXPIRES_AT_MS {
        return reject("has an expiresAt before 2020, so it is not a real login");
    }
    if expires_at > now_ms.saturating_add(MAX_EXPIRY_AHEAD_MS) {
        return Judgement::Rejected(format!(
            "has an expiresAt more than {}h ahead, which no access token lives",
            MAX_EXPIRY_AHEAD_MS / 3_600_000
        ));
    }
    // A source without expiresAt is older than any plausible candidate.
    let current_expires = current.summary.expires_at_ms.unwrap_or(i64::MIN);
    match expires_at.cmp(&current_expires) {
        std::cmp::Ordering::Greater => Judgement::Newer,
        std::cmp::Ordering::Equal if Tokens::of(candidate.raw()) == Tokens::of(current.raw()) => {
            Judgement::Same
        }
        // Equal expiry with other tokens is no evidence of being later: keep the source.
        _ => Judgement::Older,
    }
}

/// The two tokens of a credentials file, wiped from memory when dropped.
#[derive(PartialEq, Eq)]
struct Tokens {
    access: Secret,
    refresh: Secret,
}

impl Tokens {
    /// Missing, null or non-string tokens read as empty: the callers hold files that
    /// already passed [`Credentials::parse`], and an empty token is never mistaken for a
    /// real one. Duplicate keys resolve as in `Credentials::parse` (the last one wins).
    fn of(raw: &Secret) -> Self {
        let mut value: Value = serde_json::from_slice(raw.expose()).unwrap_or(Value::Null);
        let mut take = |key: &str| match value.get_mut("claudeAiOauth").and_then(|o| o.get_mut(key))
        {
            // Moves the string's buffer into the Secret: no unwiped copy is made.
            Some(Value::String(s)) => Secret::new(std::mem::take(s).into_bytes()),
            _ => Secret::default(),
        };
        let tokens = Self {
            access: take("accessToken"),
            refresh: take("refreshToken"),
        };
        // Other secrets in the file (mcpOAuth tokens) would otherwise linger in freed memory.
        scrub(&mut value);
        tokens
    }

    fn access_str(&self) -> &str {
        // The bytes came out of a JSON string, so they are UTF-8.
        std::str::from_utf8(self.access.expose()).unwrap_or("")
    }
}

fn scrub(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => map.values_mut().for_each(scrub),
        _ => {}
    }
}

#[derive(Serialize)]
struct AccessOnlyFile<'a> {
    #[serde(rename = "claudeAiOauth")]
    claude_ai_oauth: AccessOnly<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccessOnly<'a> {
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    scopes: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_type: Option<&'a str>,
}

/// Serializes into a buffer sized up front, so that the token never sits in a buffer
/// that reallocation frees without wiping.
fn to_secret(file: &AccessOnlyFile<'_>, source_len: usize) -> Secret {
    let scopes_len: usize = file
        .claude_ai_oauth
        .scopes
        .iter()
        .map(|s| s.len() + 8)
        .sum();
    let mut out = Vec::with_capacity(source_len + scopes_len + 256);
    serde_json::to_writer(&mut out, file).expect("serializing strings and numbers cannot fail");
    Secret::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_768_800_000_000;
    const HOUR: i64 = 3_600_000;

    fn creds(s: &str) -> Credentials {
        Credentials::parse(Secret::from(s.to_string())).unwrap()
    }

    fn login(expires_at: i64, tag: &str) -> String {
        format!(
            r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-{tag}","refreshToken":"sk-ant-ort01-{tag}","expiresAt":{expires_at},"scopes":["user:inference","user:profile"],"subscriptionType":"max","rateLimitTier":"default_claude_max_20x"}},"mcpOAuth":{{"srv":{{"accessToken":"mcp-secret"}}}}}}"#
        )
    }

    fn json(s: &Secret) -> Value {
        serde_json::from_slice(s.expose()).unwrap()
    }

    fn judge(current: &str, candidate: &str, from_leader: bool) -> Judgement {
        judge_candidate(
            &creds(current),
            &Secret::from(candidate.to_string()),
            from_leader,
            NOW,
        )
    }

    fn rejected(j: &Judgement) -> &str {
        match j {
            Judgement::Rejected(why) => why,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn access_only_keeps_the_access_token_and_nothing_that_could_rotate() {
        let out = access_only(&creds(&login(NOW + HOUR, "A")));
        assert_eq!(
            json(&out),
            serde_json::json!({"claudeAiOauth": {
                "accessToken": "sk-ant-oat01-A",
                "expiresAt": NOW + HOUR,
                "scopes": ["user:inference", "user:profile"],
                "subscriptionType": "max"}})
        );
        let text = String::from_utf8(out.expose().to_vec()).unwrap();
        for leaked in ["ort01", "mcp", "rateLimitTier"] {
            assert!(
                !text.contains(leaked),
                "{leaked} leaked into a follower file"
            );
        }
        let parsed = Credentials::parse(out).unwrap();
        assert!(parsed.summary.has_access_token && !parsed.summary.has_refresh_token);
    }

    #[test]
    fn access_only_adds_the_inference_scope_claude_needs() {
        for scopes in ["", r#","scopes":[]"#] {
            let c = creds(&format!(
                r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-A","refreshToken":"sk-ant-ort01-A","expiresAt":{NOW}{scopes}}}}}"#
            ));
            let out = json(&access_only(&c));
            assert_eq!(
                out["claudeAiOauth"]["scopes"],
                serde_json::json!(["user:inference"])
            );
            assert!(out["claudeAiOauth"].get("subscriptionType").is_none());
        }
    }

    #[test]
    fn a_setup_token_becomes_an_access_only_file_for_a_year() {
        let out = from_setup_token(&Secret::from("  sk-ant-oat01-setup\n".to_string()), NOW);
        assert_eq!(
            json(&out),
            serde_json::json!({"claudeAiOauth": {
                "accessToken": "sk-ant-oat01-setup",
                "expiresAt": NOW + 365 * 24 * HOUR,
                "scopes": ["user:inference"]}})
        );
        assert!(Credentials::parse(out).is_ok());
        let empty = from_setup_token(&Secret::from(" \n".to_string()), NOW);
        assert!(Credentials::parse(empty).is_err());
    }

    #[test]
    fn fingerprints_are_short_stable_and_tell_tokens_apart() {
        let a = fingerprint(b"sk-ant-ort01-A");
        assert_eq!(a.len(), 12);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, fingerprint(b"sk-ant-ort01-A"));
        assert_ne!(a, fingerprint(b"sk-ant-ort01-B"));
        // sha256("abc"), a published test vector.
        assert_eq!(fingerprint(b"abc"), "ba7816bf8f01");

        let full = creds(&login(NOW, "A"));
        assert_eq!(refresh_fingerprint(&full), Some(a));
        assert_eq!(
            access_fingerprint(&full),
            Some(fingerprint(b"sk-ant-oat01-A"))
        );
        let follower = Credentials::parse(access_only(&full)).unwrap();
        assert_eq!(refresh_fingerprint(&follower), None);
        assert_eq!(access_fingerprint(&follower), access_fingerprint(&full));
    }

    #[test]
    fn a_followers_file_never_moves_the_family() {
        let j = judge(&login(NOW, "A"), &login(NOW + HOUR, "B"), false);
        assert!(rejected(&j).starts_with("from a follower"));
    }

    #[test]
    fn unparseable_files_are_rejected_without_quoting_them() {
        for bad in [
            "",
            "sk-ant-ort01-LEAK",
            r#"{"claudeAiOauth":"sk-ant-ort01-LEAK"}"#,
        ] {
            let j = judge(&login(NOW, "A"), bad, true);
            assert!(!rejected(&j).contains("LEAK"), "{j:?}");
        }
    }

    #[test]
    fn a_leader_file_without_a_refresh_token_is_a_downgrade() {
        let full = creds(&login(NOW, "A"));
        let follower_copy = access_only(&creds(&login(NOW + HOUR, "B")));
        let j = judge_candidate(&full, &follower_copy, true, NOW);
        assert!(rejected(&j).contains("no refreshToken"));
    }

    #[test]
    fn blanked_files_are_rejected() {
        let blanked = r#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0}}"#;
        assert!(rejected(&judge(&login(NOW, "A"), blanked, true)).contains("blanked"));
        let no_access = format!(
            r#"{{"claudeAiOauth":{{"accessToken":"","refreshToken":"sk-ant-ort01-B","expiresAt":{}}}}}"#,
            NOW + HOUR
        );
        assert!(rejected(&judge(&login(NOW, "A"), &no_access, true)).contains("empty accessToken"));
    }

    #[test]
    fn implausible_expiry_is_rejected() {
        let current = login(NOW, "A");
        let no_expiry =
            r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-B","refreshToken":"sk-ant-ort01-B"}}"#;
        assert!(rejected(&judge(&current, no_expiry, true)).contains("no expiresAt"));
        let seconds = login(NOW / 1000, "B");
        assert!(rejected(&judge(&current, &seconds, true)).contains("before 2020"));
        let far = login(NOW + MAX_EXPIRY_AHEAD_MS + 1, "B");
        assert!(rejected(&judge(&current, &far, true)).contains("48h ahead"));
        let edge = login(NOW + MAX_EXPIRY_AHEAD_MS, "B");
        assert_eq!(judge(&current, &edge, true), Judgement::Newer);
    }

    #[test]
    fn oversized_files_are_rejected() {
        let padded = login(NOW + HOUR, "B").replace(
            r#""mcpOAuth":{"#,
            &format!(
                r#""mcpOAuth":{{"pad":"{}","#,
                "x".repeat(MAX_CANDIDATE_BYTES)
            ),
        );
        assert!(rejected(&judge(&login(NOW, "A"), &padded, true)).contains("too large"));
    }

    #[test]
    fn expiry_orders_the_family() {
        let current = login(NOW, "A");
        assert_eq!(
            judge(&current, &login(NOW + 1, "B"), true),
            Judgement::Newer
        );
        assert_eq!(judge(&current, &current, true), Judgement::Same);
        // Same tokens, other keys reformatted or changed: still the same login.
        let reformatted = current.replace("\"mcp-secret\"", "\"mcp-other\"");
        assert_eq!(judge(&current, &reformatted, true), Judgement::Same);
        assert_eq!(judge(&current, &login(NOW, "B"), true), Judgement::Older);
        assert_eq!(
            judge(&current, &login(NOW - HOUR, "B"), true),
            Judgement::Older
        );
        // Already expired is fine as long as it is later than the source.
        assert_eq!(
            judge(&login(NOW - 2 * HOUR, "A"), &login(NOW - HOUR, "B"), true),
            Judgement::Newer
        );
    }

    #[test]
    fn a_source_without_expiry_is_older_than_any_plausible_candidate() {
        let current =
            r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-A","refreshToken":"sk-ant-ort01-A"}}"#;
        assert_eq!(judge(current, &login(NOW, "B"), true), Judgement::Newer);
    }

    #[test]
    fn duplicate_keys_resolve_like_the_parser_and_never_panic() {
        // The last accessToken wins in Credentials::parse (serde_json::Value) and here.
        let dup = format!(
            r#"{{"claudeAiOauth":{{"accessToken":"","accessToken":"sk-ant-oat01-B","refreshToken":"sk-ant-ort01-B","expiresAt":{}}}}}"#,
            NOW + HOUR
        );
        assert_eq!(judge(&login(NOW, "A"), &dup, true), Judgement::Newer);
        let c = creds(&dup);
        assert_eq!(access_fingerprint(&c), Some(fingerprint(b"sk-ant-oat01-B")));
    }
}
