//! Reading claude's `--output-format stream-json --verbose` lines as they come: what to
//! show a person waiting (the answer's text, retries of an unreachable API), and the final
//! `result` event's structured fields, never the human sentences, which change between
//! releases.

use serde::Serialize;
use serde_json::Value;

/// Tokens a run used, as claude's `result` counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[allow(clippy::struct_field_names)] // claude's own names, a contract of the results file
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

/// The rest of a `result` event: what a run cost and how it ended, for `claunch run`'s
/// records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultDetails {
    /// `success`, `error_max_turns`, `error_during_execution`…
    pub subtype: Option<String>,
    pub session_id: Option<String>,
    pub num_turns: Option<u64>,
    pub duration_ms: Option<u64>,
    pub total_cost_usd: Option<f64>,
    pub usage: Option<Usage>,
    /// `rate_limit_error`, `overloaded_error`…
    pub api_error_type: Option<String>,
    /// e.g. `usage_limit_reached`.
    pub api_error: Option<String>,
}

/// One line of claude's stream-json output, as far as claunch cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `{"type":"system","subtype":"api_retry",…}`: claude could not reach the API (or it
    /// answered a passing error) and tries again.
    ApiRetry {
        attempt: u64,
        max_retries: u64,
        /// The HTTP status, `None` when the connection itself failed.
        status: Option<u64>,
    },
    /// Text of an assistant message.
    Text(String),
    /// `{"type":"rate_limit_event","rate_limit_info":{…}}`: where the login stands with
    /// its subscription's limits. `rejected` means the usage limit is reached until
    /// `resets_at`; other statuses (`allowed`, `allowed_warning`) are news only.
    RateLimit {
        status: String,
        /// Unix seconds.
        resets_at: Option<i64>,
        /// `five_hour`, `seven_day`…
        kind: Option<String>,
    },
    /// The last line: how the run ended.
    Result {
        is_error: bool,
        /// The final text (the answer, or claude's error message).
        text: String,
        api_error_status: Option<u64>,
        details: Box<ResultDetails>,
    },
    /// Anything else claude says (`init`, tool use…): nothing to show.
    Other,
}

impl Event {
    /// Reads one line; `None` when it is not a JSON object (plain text, an error).
    pub fn parse(line: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(line.trim()).ok()?;
        let kind = value.get("type")?.as_str()?;
        let u64_of = |key: &str| value.get(key).and_then(Value::as_u64);
        Some(match (kind, value.get("subtype").and_then(Value::as_str)) {
            ("system", Some("api_retry")) => Self::ApiRetry {
                attempt: u64_of("attempt").unwrap_or(0),
                max_retries: u64_of("max_retries").unwrap_or(0),
                status: u64_of("error_status"),
            },
            ("assistant", _) => {
                let text: Vec<&str> = value
                    .pointer("/message/content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|c| c.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|c| c.get("text").and_then(Value::as_str))
                    .collect();
                if text.is_empty() {
                    Self::Other
                } else {
                    Self::Text(text.join(""))
                }
            }
            ("rate_limit_event", _) => {
                let info = value.get("rate_limit_info");
                let field = |key: &str| info.and_then(|i| i.get(key));
                Self::RateLimit {
                    status: field("status")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    resets_at: field("resetsAt").and_then(Value::as_i64),
                    kind: field("rateLimitType")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                }
            }
            ("result", subtype) => {
                let string_of = |key: &str| match value.get(key) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Null) | None => None,
                    // An object or a number: kept as its JSON text.
                    Some(other) => Some(other.to_string()),
                };
                let usage = value.get("usage").map(|u| {
                    let n = |key: &str| u.get(key).and_then(Value::as_u64).unwrap_or(0);
                    Usage {
                        input_tokens: n("input_tokens"),
                        output_tokens: n("output_tokens"),
                        cache_creation_input_tokens: n("cache_creation_input_tokens"),
                        cache_read_input_tokens: n("cache_read_input_tokens"),
                    }
                });
                Self::Result {
                    is_error: value.get("is_error").and_then(Value::as_bool) == Some(true),
                    text: value
                        .get("result")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    api_error_status: u64_of("api_error_status"),
                    details: Box::new(ResultDetails {
                        subtype: subtype.map(str::to_string),
                        session_id: string_of("session_id"),
                        num_turns: u64_of("num_turns"),
                        duration_ms: u64_of("duration_ms"),
                        total_cost_usd: value.get("total_cost_usd").and_then(Value::as_f64),
                        usage,
                        api_error_type: string_of("api_error_type"),
                        api_error: string_of("api_error"),
                    }),
                }
            }
            _ => Self::Other,
        })
    }

    /// What a person waiting should read, if anything.
    pub fn describe(&self) -> Option<String> {
        match self {
            Self::ApiRetry {
                attempt,
                max_retries,
                status: None,
            } => Some(format!("API unreachable, retry {attempt} of {max_retries}")),
            Self::ApiRetry {
                attempt,
                max_retries,
                status: Some(status),
            } => Some(format!(
                "API answered {status}, retry {attempt} of {max_retries}"
            )),
            Self::RateLimit { status, kind, .. } => Some(format!(
                "usage limit ({}): {status}",
                kind.as_deref().unwrap_or("unknown")
            )),
            Self::Text(text) => Some(text.clone()),
            Self::Result { text, .. } if !text.is_empty() => Some(text.clone()),
            Self::Result { .. } | Self::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_clis_lines_are_read() {
        let retry = r#"{"type":"system","subtype":"api_retry","attempt":3,"max_retries":10,"retry_delay_ms":2265,"error_status":null,"error":"unknown","session_id":"s"}"#;
        assert_eq!(
            Event::parse(retry).unwrap().describe().as_deref(),
            Some("API unreachable, retry 3 of 10")
        );
        let overloaded = r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"error_status":529}"#;
        assert_eq!(
            Event::parse(overloaded).unwrap().describe().as_deref(),
            Some("API answered 529, retry 1 of 10")
        );
        let text =
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Hello!"}]}}"#;
        assert_eq!(Event::parse(text), Some(Event::Text("Hello!".into())));
        let result = r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 401","api_error_status":401}"#;
        assert_eq!(
            Event::parse(result),
            Some(Event::Result {
                is_error: true,
                text: "API Error: 401".into(),
                api_error_status: Some(401),
                details: Box::new(ResultDetails {
                    subtype: Some("success".into()),
                    ..ResultDetails::default()
                }),
            })
        );
        assert_eq!(Event::parse("Not logged in · Please run /login"), None);
        assert_eq!(
            Event::parse(r#"{"type":"system","subtype":"init"}"#),
            Some(Event::Other)
        );
    }

    /// The lines the real CLI 2.1.332 printed for a run, and for a usage limit (verified
    /// against a 429 with `anthropic-ratelimit-unified-status: rejected`).
    #[test]
    fn results_and_usage_limits_are_read_from_their_fields() {
        let ok = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":1534,"duration_api_ms":1210,"num_turns":1,"result":"Hello!","session_id":"9f1c","total_cost_usd":0.0123,"usage":{"input_tokens":12,"cache_creation_input_tokens":3,"cache_read_input_tokens":4,"output_tokens":5,"server_tool_use":{"web_search_requests":0}},"permission_denials":[]}"#;
        let Some(Event::Result {
            is_error: false,
            text,
            api_error_status: None,
            details,
        }) = Event::parse(ok)
        else {
            panic!("not a result")
        };
        assert_eq!(text, "Hello!");
        assert_eq!(
            *details,
            ResultDetails {
                subtype: Some("success".into()),
                session_id: Some("9f1c".into()),
                num_turns: Some(1),
                duration_ms: Some(1534),
                total_cost_usd: Some(0.0123),
                usage: Some(Usage {
                    input_tokens: 12,
                    output_tokens: 5,
                    cache_creation_input_tokens: 3,
                    cache_read_input_tokens: 4
                }),
                api_error_type: None,
                api_error: None,
            }
        );
        let limited = r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1777662120,"rateLimitType":"five_hour","isUsingOverage":false},"uuid":"u","session_id":"s"}"#;
        assert_eq!(
            Event::parse(limited),
            Some(Event::RateLimit {
                status: "rejected".into(),
                resets_at: Some(1_777_662_120),
                kind: Some("five_hour".into())
            })
        );
        let result = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"api_error_type":"rate_limit_error","api_error":"usage_limit_reached","result":"You've hit your 5-hour limit"}"#;
        let Some(Event::Result {
            api_error_status: Some(429),
            details,
            ..
        }) = Event::parse(result)
        else {
            panic!("not a 429 result")
        };
        assert_eq!(details.api_error.as_deref(), Some("usage_limit_reached"));
        assert_eq!(details.api_error_type.as_deref(), Some("rate_limit_error"));
    }
}
