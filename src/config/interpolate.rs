//! `${VAR}` interpolation of the config text, with the rules of docker compose.
//!
//! It runs on the raw text, before YAML parsing, so a position in the result
//! can be traced back to the file; [`SourceMap`] undoes the column shifts
//! that substitutions cause.

use std::collections::HashSet;

use super::dotenv::is_name;
use super::sourcemap::{Out, SourceMap};

/// The interpolated text and what is needed to report on it.
pub(crate) struct Interpolated {
    pub text: String,
    pub map: SourceMap,
    pub warnings: Vec<Unset>,
}

/// A variable referenced without a default while unset (first use only).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unset {
    pub line: usize,
    pub column: usize,
    pub name: String,
}

/// An interpolation failure at the 1-based line and column of its `$`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct InterpError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Quote {
    None,
    Single,
    Double,
}

struct Ctx<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    warned: HashSet<String>,
    warnings: Vec<Unset>,
    /// How many `${` the reference being expanded sits inside.
    depth: usize,
}

/// Deeper nesting is no config anyone writes, and each level costs stack and a scan.
const MAX_NESTING: usize = 16;

/// Expands variables everywhere except in YAML comments: whole-line ones and
/// the tail after ` #` outside quotes.
pub(crate) fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpError> {
    let mut ctx = Ctx {
        lookup,
        warned: HashSet::new(),
        warnings: Vec::new(),
        depth: 0,
    };
    let mut out = Out::with_capacity(text.len());
    let mut quote = Quote::None;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        let chars: Vec<char> = line.chars().collect();
        out.anchor((line_no, 1), true);
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let after_space = i == 0 || chars[i - 1].is_whitespace();
            match quote {
                Quote::None if c == '#' && after_space => {
                    chars[i..].iter().for_each(|&c| out.push(c));
                    break;
                }
                Quote::None
                    if matches!(c, '"' | '\'') && (after_space || "[{,".contains(chars[i - 1])) =>
                {
                    quote = if c == '"' {
                        Quote::Double
                    } else {
                        Quote::Single
                    };
                }
                Quote::Double if c == '\\' && i + 1 < chars.len() => {
                    out.push(c);
                    out.push(chars[i + 1]);
                    i += 2;
                    continue;
                }
                Quote::Double if c == '"' => quote = Quote::None,
                Quote::Single if c == '\'' && chars.get(i + 1) == Some(&'\'') => {
                    out.push(c);
                    out.push(c);
                    i += 2;
                    continue;
                }
                Quote::Single if c == '\'' => quote = Quote::None,
                _ => {}
            }
            if c == '$' {
                let (value, used) = ctx.expand_at(&chars, i, (line_no, 1))?;
                out.anchor((line_no, i + 1), false);
                value.chars().for_each(|c| out.push(c));
                i += used;
                out.anchor((line_no, i + 1), true);
            } else {
                out.push(c);
                i += 1;
            }
        }
    }
    let (text, map) = out.finish();
    Ok(Interpolated {
        text,
        map,
        warnings: ctx.warnings,
    })
}

impl Ctx<'_> {
    /// Expands every `$` in `chars`, which starts at `origin` in the file.
    fn expand_all(
        &mut self,
        chars: &[char],
        origin: (usize, usize),
    ) -> Result<String, InterpError> {
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '$' {
                let (value, used) = self.expand_at(chars, i, origin)?;
                out.push_str(&value);
                i += used;
            } else {
                out.push(chars[i]);
                i += 1;
            }
        }
        Ok(out)
    }

    /// Expands the reference whose `$` is `chars[at]`; returns the value and
    /// how many chars the reference spans.
    fn expand_at(
        &mut self,
        chars: &[char],
        at: usize,
        origin: (usize, usize),
    ) -> Result<(String, usize), InterpError> {
        let pos = (origin.0, origin.1 + at);
        let fail = |message: String| InterpError {
            line: pos.0,
            column: pos.1,
            message,
        };
        match chars.get(at + 1) {
            Some('$') => Ok(("$".to_owned(), 2)),
            Some('{') if self.depth >= MAX_NESTING => Err(fail(format!(
                "variable references nested more than {MAX_NESTING} deep"
            ))),
            Some('{') => {
                let close = matching_brace(chars, at + 2).ok_or_else(|| {
                    fail(
                        "unterminated `${`: add the closing `}`, or write `$$` for a literal `$`"
                            .to_owned(),
                    )
                })?;
                let inner = &chars[at + 2..close];
                let name_len = inner
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
                    .unwrap_or(inner.len());
                let name: String = inner[..name_len].iter().collect();
                let reference: String = chars[at..=close].iter().collect();
                if !is_name(&name) {
                    return Err(fail(format!("invalid variable name in `{reference}`")));
                }
                let rest = &inner[name_len..];
                let (op, arg) = split_operator(rest).ok_or_else(|| {
                    fail(format!("invalid variable reference `{reference}`: after the name write `}}`, `:-`, `-`, `:?`, `?`, `:+` or `+`"))
                })?;
                let arg_origin = (pos.0, pos.1 + 2 + name_len + op.len());
                self.depth += 1;
                let value = self.apply(&name, op, arg, arg_origin, pos);
                self.depth -= 1;
                let value = value?;
                Ok((value, close - at + 1))
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let len = chars[at + 1..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
                    .unwrap_or(chars.len() - at - 1);
                let name: String = chars[at + 1..=at + len].iter().collect();
                Ok((self.apply(&name, "", &[], pos, pos)?, len + 1))
            }
            _ => Err(fail(
                "invalid `$`: use `${NAME}` or `$NAME`, or write `$$` for a literal `$`".to_owned(),
            )),
        }
    }

    fn apply(
        &mut self,
        name: &str,
        op: &str,
        arg: &[char],
        arg_origin: (usize, usize),
        pos: (usize, usize),
    ) -> Result<String, InterpError> {
        let value = (self.lookup)(name);
        let non_empty = value.clone().filter(|v| !v.is_empty());
        let chosen = match op {
            "" => {
                if value.is_none() && self.warned.insert(name.to_owned()) {
                    self.warnings.push(Unset {
                        line: pos.0,
                        column: pos.1,
                        name: name.to_owned(),
                    });
                }
                value
            }
            ":-" => non_empty,
            "-" => value,
            ":+" => non_empty
                .map(|_| self.expand_all(arg, arg_origin))
                .transpose()?,
            "+" => value
                .map(|_| self.expand_all(arg, arg_origin))
                .transpose()?,
            _ => {
                let present = if op == ":?" { non_empty } else { value };
                if present.is_none() {
                    let message = self.expand_all(arg, arg_origin)?;
                    let mut text = format!("required variable {name} is missing a value");
                    if !message.is_empty() {
                        text = format!("{text}: {message}");
                    }
                    return Err(InterpError {
                        line: pos.0,
                        column: pos.1,
                        message: text,
                    });
                }
                present
            }
        };
        match chosen {
            Some(v) => Ok(v),
            None if op.ends_with('-') => self.expand_all(arg, arg_origin),
            None => Ok(String::new()),
        }
    }
}

/// Index of the `}` closing a `${` whose body starts at `from`, skipping
/// nested references so that `${A:-${B}}` closes at the last brace.
fn matching_brace(chars: &[char], from: usize) -> Option<usize> {
    let mut depth = 0_usize;
    let mut i = from;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('$', Some('$')) => i += 1,
            ('$', Some('{')) => {
                depth += 1;
                i += 1;
            }
            ('}', _) if depth == 0 => return Some(i),
            ('}', _) => depth -= 1,
            ('\n', _) => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

fn split_operator(rest: &[char]) -> Option<(&'static str, &[char])> {
    if rest.is_empty() {
        return Some(("", rest));
    }
    for op in [":-", ":?", ":+", "-", "?", "+"] {
        let len = op.len();
        if rest.len() >= len && rest[..len].iter().copied().eq(op.chars()) {
            return Some((op, &rest[len..]));
        }
    }
    None
}
