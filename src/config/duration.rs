//! Compose-style durations (`120s`, `1h30m`, `500ms`, a bare `90` = seconds).

use std::time::Duration;

/// Parses a duration the way docker compose writes them: a sequence of
/// `NUMBER UNIT` pairs with units `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`, or a
/// bare non-negative number meaning seconds. Fractions are allowed (`1.5h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return from_secs(secs, s);
    }
    let mut rest = text;
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let unit_len = rest[number_len..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len() - number_len);
        let number = &rest[..number_len];
        let unit = &rest[number_len..number_len + unit_len];
        let value: f64 = number.parse().map_err(|_| invalid(s))?;
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(invalid(s)),
        };
        total += value * scale;
        rest = &rest[number_len + unit_len..];
    }
    from_secs(total, s)
}

fn from_secs(secs: f64, original: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| invalid(original))
}

fn invalid(s: &str) -> String {
    format!("invalid duration {s:?}: write it like `120s`, `2m`, `1h30m`, `500ms` or a number of seconds")
}

/// Serializes a `Duration` as seconds: an integer when whole, else a float,
/// so hashes of the spec stay stable and readable.
pub(crate) mod secs {
    use serde::Serializer;
    use std::time::Duration;

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `with` passes a reference
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        if value.subsec_nanos() == 0 {
            serializer.serialize_u64(value.as_secs())
        } else {
            serializer.serialize_f64(value.as_secs_f64())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_compose_forms() {
        let cases = [
            ("120s", 120_000),
            ("2m", 120_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("90", 90_000),
            ("1.5s", 1500),
            (" 10s ", 10_000),
            ("0", 0),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        for text in ["", "s", "10x", "-5", "1h-3m", "ten", "1..2s"] {
            assert!(parse_duration(text).is_err(), "{text} should fail");
        }
        assert_eq!(
            parse_duration("10x").unwrap_err(),
            "invalid duration \"10x\": write it like `120s`, `2m`, `1h30m`, `500ms` or a number of seconds"
        );
    }

    #[test]
    fn serializes_as_seconds() {
        #[derive(serde::Serialize)]
        struct Wrap {
            #[serde(with = "secs")]
            t: Duration,
        }
        let whole = serde_json::to_string(&Wrap {
            t: Duration::from_secs(120),
        })
        .unwrap();
        assert_eq!(whole, r#"{"t":120}"#);
        let half = serde_json::to_string(&Wrap {
            t: Duration::from_millis(500),
        })
        .unwrap();
        assert_eq!(half, r#"{"t":0.5}"#);
    }
}
