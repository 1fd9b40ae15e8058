//! Reading claude's `--output-format stream-json --verbose` lines as they come: what to
//! show a person waiting (the answer's text, retries of an unreachable API), and the final
//! `result` event's structured fields, never the human sentences, which change between
//! releases.

use serde_json::Value;

/// One line of claude's stream-json output, as far as a smoke test cares.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The last line: how the run ended.
    Result {
        is_error: bool,
        /// The final text (the answer, or claude's error message).
        text: String,
        api_error_status: Option<u64>,
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
            ("result", _) => Self::Result {
                is_error: value.get("is_error").and_then(Value::as_bool) == Some(true),
                text: value
                    .get("result")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                api_error_status: u64_of("api_error_status"),
            },
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
                api_error_status: Some(401)
            })
        );
        assert_eq!(Event::parse("Not logged in · Please run /login"), None);
        assert_eq!(
            Event::parse(r#"{"type":"system","subtype":"init"}"#),
            Some(Event::Other)
        );
    }
}
