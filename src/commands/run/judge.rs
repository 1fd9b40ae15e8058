//! What one attempt of a task came to, from claude's exit code and its stream-json events
//! (the `result` event's structured fields and `rate_limit_event`, never the human
//! sentence): done, a usage limit to wait out, a passing failure to try again, a lost
//! login that stops the run, or a failure for good.

use crate::claude::{Event, ResultDetails};
use crate::smoke::{classify, Verdict};

use super::results::Failure;

/// Everything an attempt said that matters for judging it.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub result: Option<ResultSeen>,
    /// A `rate_limit_event` with status `rejected`: (resets at, kind).
    pub rejected: Option<(Option<i64>, Option<String>)>,
    /// Lines that were not stream-json (claude's own errors, a shell's), the last ones.
    pub plain: String,
    /// The last thing worth showing a person.
    pub last_report: Option<String>,
}

/// claude's `result` event.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSeen {
    pub is_error: bool,
    pub text: String,
    pub api_error_status: Option<u64>,
    pub details: ResultDetails,
}

/// The most of claude's plain output kept for classifying.
const PLAIN_KEEP: usize = 8 * 1024;

impl Seen {
    /// Takes one line of output; returns the event when it was stream-json.
    pub fn line(&mut self, line: &str) -> Option<Event> {
        match Event::parse(line) {
            Some(event) => {
                match &event {
                    Event::Result {
                        is_error,
                        text,
                        api_error_status,
                        details,
                    } => {
                        self.result = Some(ResultSeen {
                            is_error: *is_error,
                            text: text.clone(),
                            api_error_status: *api_error_status,
                            details: (**details).clone(),
                        });
                    }
                    Event::RateLimit {
                        status,
                        resets_at,
                        kind,
                    } if status == "rejected" => {
                        self.rejected = Some((*resets_at, kind.clone()));
                    }
                    _ => {}
                }
                if let Some(shown) = event.describe() {
                    self.last_report = Some(shown);
                }
                Some(event)
            }
            None => {
                if !line.trim().is_empty() {
                    self.plain.push_str(line);
                    self.plain.push('\n');
                    if self.plain.len() > 2 * PLAIN_KEEP {
                        let mut cut = self.plain.len() - PLAIN_KEEP;
                        while !self.plain.is_char_boundary(cut) {
                            cut += 1;
                        }
                        self.plain.drain(..cut);
                    }
                    self.last_report = Some(line.to_string());
                }
                None
            }
        }
    }

    /// The usage limit this attempt met, from `rate_limit_event` or the result's fields.
    pub fn usage_limit(&self) -> Option<(Option<i64>, Option<String>)> {
        if let Some(rejected) = &self.rejected {
            return Some(rejected.clone());
        }
        let r = self.result.as_ref()?;
        (r.api_error_status == Some(429)
            && r.details.api_error.as_deref() == Some("usage_limit_reached"))
        .then_some((None, None))
    }
}

/// What an attempt that ran to its end came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    Ok,
    /// The login's usage limit: put the task back, not as an attempt.
    UsageLimit {
        resets_at: Option<i64>,
        limit: Option<String>,
    },
    /// The login is not accepted: stop the whole run.
    LoggedOut(Failure),
    /// A passing failure: try again while attempts are left.
    Transient(Failure),
    /// Failed for good.
    Failed(Failure),
}

fn failure(class: &str, message: String, http_status: Option<u64>) -> Failure {
    Failure {
        class: class.to_string(),
        message,
        http_status,
    }
}

/// Judges an attempt that exited with `exit_code` after saying `seen`.
pub fn judge(exit_code: i64, seen: &Seen) -> Judgement {
    let result = seen.result.as_ref();
    if exit_code == 0 && result.is_some_and(|r| !r.is_error) {
        return Judgement::Ok;
    }
    if let Some((resets_at, limit)) = seen.usage_limit() {
        return Judgement::UsageLimit { resets_at, limit };
    }
    let text = result.map(|r| r.text.trim()).filter(|t| !t.is_empty());
    let said = || {
        text.map(str::to_string)
            .or_else(|| seen.plain.lines().last().map(str::to_string))
            .unwrap_or_else(|| format!("claude exited with code {exit_code}"))
    };
    if let Some(status) = result.and_then(|r| r.api_error_status) {
        let message = format!("API answered {status}: {}", said());
        return match status {
            401 => Judgement::LoggedOut(failure("token_rejected", message, Some(status))),
            429 => Judgement::Transient(failure("rate_limited", message, Some(status))),
            s if s >= 500 => Judgement::Transient(failure("api_error", message, Some(status))),
            _ => Judgement::Failed(failure("api_error", message, Some(status))),
        };
    }
    if let Some(r) = result.filter(|r| r.is_error) {
        if r.details.api_error.is_some() || r.details.api_error_type.is_some() {
            // An API failure without a status: the connection itself failed.
            return Judgement::Transient(failure("api_error", said(), None));
        }
    }
    let human = format!("{}\n{}", seen.plain, text.unwrap_or_default());
    if exit_code != 0 {
        return match classify(exit_code, &human) {
            v @ (Verdict::NotLoggedIn | Verdict::TokenRejected) => {
                Judgement::LoggedOut(failure(v.class(), v.describe(), None))
            }
            v @ Verdict::ClaudeMissing => Judgement::Failed(failure(v.class(), v.describe(), None)),
            _ => Judgement::Failed(failure("failed", said(), None)),
        };
    }
    match result {
        Some(r) => {
            let subtype = r.details.subtype.as_deref().unwrap_or("error");
            Judgement::Failed(failure("failed", format!("{subtype}: {}", said()), None))
        }
        None => Judgement::Failed(failure(
            "failed",
            "claude exited 0 without a result event (does `--output-format stream-json --verbose` reach it?)".into(),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(lines: &[&str]) -> Seen {
        let mut seen = Seen::default();
        for l in lines {
            seen.line(l);
        }
        seen
    }

    #[test]
    fn success_and_the_real_clis_usage_limit() {
        let ok = seen(&[
            r#"{"type":"system","subtype":"init","session_id":"s"}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"hi","session_id":"s","num_turns":1}"#,
        ]);
        assert_eq!(judge(0, &ok), Judgement::Ok);
        let limited = seen(&[
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1777662120,"rateLimitType":"five_hour","isUsingOverage":false}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"You've hit your 5-hour limit · resets 7:02pm (UTC)"}]},"error":"rate_limit"}"#,
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"api_error_type":"rate_limit_error","api_error":"usage_limit_reached","result":"You've hit your 5-hour limit · resets 7:02pm (UTC)"}"#,
        ]);
        assert_eq!(
            judge(1, &limited),
            Judgement::UsageLimit {
                resets_at: Some(1_777_662_120),
                limit: Some("five_hour".into())
            }
        );
        // The result's fields alone are enough; the words are never read.
        let fields_only = seen(&[
            r#"{"type":"result","is_error":true,"api_error_status":429,"api_error":"usage_limit_reached","result":"Claude AI usage limit reached|1777662120"}"#,
        ]);
        assert_eq!(
            judge(1, &fields_only),
            Judgement::UsageLimit {
                resets_at: None,
                limit: None
            }
        );
        // Another status is news, not a pause.
        let warning = seen(&[
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","rateLimitType":"five_hour"}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"hi"}"#,
        ]);
        assert_eq!(judge(0, &warning), Judgement::Ok);
    }

    #[test]
    fn api_errors_by_status() {
        let overloaded = seen(&[
            r#"{"type":"result","is_error":true,"api_error_status":529,"api_error_type":"overloaded_error","result":"API Error: 529 Overloaded"}"#,
        ]);
        assert_eq!(
            judge(1, &overloaded),
            Judgement::Transient(failure(
                "api_error",
                "API answered 529: API Error: 529 Overloaded".into(),
                Some(529)
            ))
        );
        let rejected = seen(&[
            r#"{"type":"result","is_error":true,"api_error_status":401,"result":"Failed to authenticate. API Error: 401"}"#,
        ]);
        assert!(
            matches!(judge(1, &rejected), Judgement::LoggedOut(f) if f.class == "token_rejected")
        );
        let bad =
            seen(&[r#"{"type":"result","is_error":true,"api_error_status":400,"result":"bad"}"#]);
        assert!(matches!(judge(1, &bad), Judgement::Failed(f) if f.http_status == Some(400)));
        let reset = seen(&[
            r#"{"type":"result","is_error":true,"api_error":"Connection error.","result":"API Error: Connection error."}"#,
        ]);
        assert!(matches!(judge(1, &reset), Judgement::Transient(f) if f.http_status.is_none()));
    }

    #[test]
    fn plain_failures_use_the_smoke_tests_classes() {
        let logged_out = seen(&["Not logged in · Please run /login"]);
        assert_eq!(
            judge(1, &logged_out),
            Judgement::LoggedOut(failure(
                "not_logged_in",
                "claude is not logged in (credentials file missing, unreadable or not accepted)"
                    .into(),
                None
            ))
        );
        let missing = seen(&["sh: claude: not found"]);
        assert!(
            matches!(judge(127, &missing), Judgement::Failed(f) if f.class == "claude_missing")
        );
        let other = seen(&["boom"]);
        assert_eq!(
            judge(3, &other),
            Judgement::Failed(failure("failed", "boom".into(), None))
        );
        let turns =
            seen(&[r#"{"type":"result","subtype":"error_max_turns","is_error":true,"result":""}"#]);
        assert_eq!(
            judge(0, &turns),
            Judgement::Failed(failure(
                "failed",
                "error_max_turns: claude exited with code 0".into(),
                None
            ))
        );
        assert!(
            matches!(judge(0, &Seen::default()), Judgement::Failed(f) if f.message.contains("without a result event"))
        );
    }
}
