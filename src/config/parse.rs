//! Turning the interpolated text into [`RawConfig`], with errors that carry a
//! position, a key path and, for unknown keys, a hint.

use std::path::Path;

use serde_path_to_error::Segment;

use super::error::ConfigError;
use super::locate::{locate, render, Seg};
use super::raw::{RawConfig, HINT};
use super::sourcemap::SourceMap;

pub(crate) fn parse(text: &str, file: &Path, map: &SourceMap) -> Result<RawConfig, ConfigError> {
    if let Some((line, column)) = too_deep(text, MAX_FLOW_DEPTH) {
        let (line, column) = map.to_source(line, column);
        return Err(ConfigError::Parse {
            path: file.to_owned(),
            line,
            column,
            key_path: String::new(),
            message: format!("`[` and `{{` nested more than {MAX_FLOW_DEPTH} deep"),
            hint: None,
        });
    }
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let mut segs: Vec<Seg> = err
            .path()
            .iter()
            .filter_map(|seg| match seg {
                Segment::Map { key } => Some(Seg::Key(key.clone())),
                Segment::Seq { index } => Some(Seg::Index(*index)),
                Segment::Enum { .. } | Segment::Unknown => None,
            })
            .collect();
        let yaml = err.into_inner();
        let at = yaml.location().map(|l| (l.line(), l.column()));
        let (message, mut hint) = split_hint(&bare_message(&yaml.to_string(), &segs, at));
        // serde names our Rust types in "expected struct RawAgent"; users wrote maps.
        let message = [
            "RawConfig",
            "RawCredentials",
            "RawAwsSecret",
            "RawGcpSecret",
            "RawAzureSecret",
            "RawAgent",
            "RawFile",
            "RawSmoke",
        ]
        .iter()
        .fold(message, |m, name| {
            m.replace(&format!("struct {name}"), "a map")
        })
        .replace("expected u32", "expected a whole number");
        let (message, at) = if let Some(key) = quoted_after(&message, "unknown field `") {
            let valid = backticked(&message).split_off(1);
            hint = Some(unknown_key_hint(&key, &valid));
            // serde_path_to_error records the key itself when it saw it; not always.
            if segs.last() != Some(&Seg::Key(key.clone())) {
                segs.push(Seg::Key(key.clone()));
            }
            (format!("unknown key `{key}`"), at)
        } else if let Some(key) = quoted_after(&message, "missing field `") {
            // serde points at the start of the map's content; the map's own
            // key (e.g. the agent name) is what the user will look for.
            let at = locate(text, &segs, 1).or(at);
            (format!("missing required key `{key}`"), at)
        } else if let Some(key) = quoted_after(&message, "duplicate field `") {
            segs.push(Seg::Key(key.clone()));
            (
                format!("duplicate key `{key}`"),
                locate(text, &segs, 2).or(at),
            )
        } else if message == "EOF while parsing a value" {
            hint = Some("add an `agents:` map; `claunch init` writes an example".to_owned());
            ("the file is empty".to_owned(), Some((1, 1)))
        } else {
            (message, at)
        };
        let (line, column) = at
            .or_else(|| locate(text, &segs, 1))
            .map_or((1, 1), |(line, column)| map.to_source(line, column));
        ConfigError::Parse {
            path: file.to_owned(),
            line,
            column,
            key_path: render(&segs),
            message,
            hint,
        }
    })
}

/// The YAML parser's time grows with the square of the flow nesting, and the
/// deserializer refuses more than 128 levels anyway.
const MAX_FLOW_DEPTH: usize = 100;

/// Where flow collections (`[`, `{`) first nest deeper than `max`, outside quotes and
/// comments; 1-based.
fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let mut depth = 0_usize;
    for (l, line) in text.lines().enumerate() {
        let mut quote = None;
        let mut prev = ' ';
        for (c, ch) in line.chars().enumerate() {
            match (quote, ch) {
                (None, '#') if prev.is_whitespace() => break,
                (None, '"' | '\'') => quote = Some(ch),
                (Some(q), _) if ch == q && prev != '\\' => quote = None,
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > max {
                        return Some((l + 1, c + 1));
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            prev = ch;
        }
    }
    None
}

/// `serde_yaml`'s text repeats what we show separately: its own key path in
/// front and the position at the end. Strips both.
fn bare_message(text: &str, segs: &[Seg], at: Option<(usize, usize)>) -> String {
    let mut text = text.to_owned();
    if let Some((line, column)) = at {
        let suffix = format!(" at line {line} column {column}");
        if let Some(start) = text.find(&suffix) {
            text.replace_range(start..start + suffix.len(), "");
        }
    }
    for len in (1..=segs.len()).rev() {
        let prefix = format!("{}: ", render(&segs[..len]));
        if let Some(rest) = text.strip_prefix(&prefix) {
            return rest.to_owned();
        }
    }
    text
}

fn split_hint(message: &str) -> (String, Option<String>) {
    match message.split_once(HINT) {
        Some((message, hint)) => (message.to_owned(), Some(hint.to_owned())),
        None => (message.to_owned(), None),
    }
}

/// The text between `prefix` (which ends with a backtick) and the next backtick.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    rest.find('`').map(|end| rest[..end].to_owned())
}

fn backticked(message: &str) -> Vec<String> {
    message
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

pub(crate) fn unknown_key_hint(key: &str, valid: &[String]) -> String {
    let closest = valid
        .iter()
        .map(|candidate| (edit_distance(key, candidate), candidate))
        .min_by_key(|(distance, _)| *distance);
    match closest {
        Some((distance, candidate)) if distance <= (key.chars().count() / 3).max(2) => {
            format!("did you mean `{candidate}`?")
        }
        _ if valid.is_empty() => "no keys are allowed here".to_owned(),
        _ => {
            let list: Vec<String> = valid.iter().map(|k| format!("`{k}`")).collect();
            format!("valid keys are {}", list.join(", "))
        }
    }
}

/// Levenshtein distance, case-insensitive so `Image` suggests `image`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn hints_the_closest_key_or_lists_them() {
        let valid = strings(&["image", "replicas", "working_dir"]);
        assert_eq!(
            unknown_key_hint("replica", &valid),
            "did you mean `replicas`?"
        );
        assert_eq!(unknown_key_hint("Image", &valid), "did you mean `image`?");
        assert_eq!(
            unknown_key_hint("workingdir", &valid),
            "did you mean `working_dir`?"
        );
        assert_eq!(
            unknown_key_hint("colour", &valid),
            "valid keys are `image`, `replicas`, `working_dir`"
        );
    }

    #[test]
    fn strips_serde_yaml_decoration() {
        let segs = vec![Seg::Key("agents".into()), Seg::Key("a".into())];
        assert_eq!(
            bare_message(
                "agents.a: unknown field `x`, expected `y` at line 3 column 5",
                &segs,
                Some((3, 5))
            ),
            "unknown field `x`, expected `y`"
        );
        assert_eq!(
            backticked("unknown field `x`, expected `y` or `z`"),
            strings(&["x", "y", "z"])
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
