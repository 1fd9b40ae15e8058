//! Reading the `.env` file beside `claunch.yaml`, as docker compose does.

use std::collections::HashMap;

/// A malformed `.env` line: its 1-based number and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DotEnvError {
    pub line: usize,
    pub message: String,
}

/// Parses `KEY=VALUE` lines with `#` comments, blank lines, an optional
/// `export ` prefix and single- or double-quoted values. A later duplicate
/// wins, as in compose.
pub(crate) fn parse(text: &str) -> Result<HashMap<String, String>, DotEnvError> {
    let mut vars = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |message: String| DotEnvError {
            line: index + 1,
            message,
        };
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            // Not quoted: a .env line is where tokens live.
            return Err(fail(
                "expected KEY=VALUE (the line is not shown: it may hold a secret)".to_owned(),
            ));
        };
        let key = key.trim();
        if !is_name(key) {
            return Err(fail(format!(
                "invalid variable name {key:?}: use letters, digits and `_`, not starting with a digit"
            )));
        }
        let value = parse_value(value.trim()).map_err(fail)?;
        vars.insert(key.to_owned(), value);
    }
    Ok(vars)
}

/// Whether `s` is a valid environment variable name for interpolation.
pub(crate) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(value: &str) -> Result<String, String> {
    let Some(quote) = value.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        // An unquoted value ends at a ` #` comment, like compose's.
        let end = value.find(" #").or_else(|| value.find("\t#"));
        return Ok(value[..end.unwrap_or(value.len())].trim_end().to_owned());
    };
    let body = &value[1..];
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        if c == quote {
            let rest = body[at + 1..].trim_start();
            if rest.is_empty() || rest.starts_with('#') {
                return Ok(out);
            }
            return Err(format!(
                "unexpected text after the closing {quote}: {rest:?}"
            ));
        }
        if c == '\\' && quote == '"' {
            match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Err(format!("missing closing {quote}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let text = "# comment\n\nA=1\nexport B = two \nC=\"x # y\\n\" # note\nD='a \\n b'\nE=plain # trailing\nF=\nA=3\n";
        let vars = parse(text).unwrap();
        assert_eq!(vars["A"], "3");
        assert_eq!(vars["B"], "two");
        assert_eq!(vars["C"], "x # y\n");
        assert_eq!(vars["D"], "a \\n b");
        assert_eq!(vars["E"], "plain");
        assert_eq!(vars["F"], "");
        assert_eq!(vars.len(), 6);
    }

    #[test]
    fn reports_the_bad_line() {
        assert_eq!(
            parse("A=1\nnot a pair\n"),
            Err(DotEnvError {
                line: 2,
                message: "expected KEY=VALUE (the line is not shown: it may hold a secret)".into()
            })
        );
        assert_eq!(
            parse("1X=2").unwrap_err().message,
            "invalid variable name \"1X\": use letters, digits and `_`, not starting with a digit"
        );
        assert_eq!(
            parse("\nA=\"open").unwrap_err(),
            DotEnvError {
                line: 2,
                message: "missing closing \"".into()
            }
        );
        assert_eq!(
            parse("A='x' y").unwrap_err().message,
            "unexpected text after the closing ': \"y\""
        );
    }

    #[test]
    fn names() {
        assert!(is_name("_A1"));
        assert!(is_name("abc"));
        assert!(!is_name(""));
        assert!(!is_name("1A"));
        assert!(!is_name("A-B"));
    }
}
