//! Where things are on one line of the tasks file: each key's column, in characters, for
//! messages that name `TASKS:LINE:COLUMN`.

/// `serde_json` counts columns in bytes; people count characters.
pub(super) fn char_column(text: &str, byte_column: usize) -> usize {
    let mut end = byte_column.saturating_sub(1).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].chars().count() + 1
}

/// Where each key of a valid JSON line starts (1-based character columns): the top
/// level's keys in order, the keys of the maps inside `files`, and keys given twice.
#[derive(Debug, Default)]
pub(super) struct Spans {
    pub(super) top_level: Vec<(String, usize)>,
    /// `files[0].source` and the like.
    pub(super) nested: Vec<(String, usize)>,
    pub(super) repeated: Vec<(String, usize)>,
}

impl Spans {
    pub(super) fn of(text: &str) -> Self {
        let mut spans = Self::default();
        let chars: Vec<char> = text.chars().collect();
        let mut scan = Scan { chars, at: 0 };
        scan.value("", &mut spans);
        spans
    }

    /// The column of `key` (a path), or 1 when it is not there.
    pub(super) fn column(&self, key: &str) -> usize {
        self.top_level
            .iter()
            .chain(&self.nested)
            .find(|(k, _)| k == key)
            .map_or(1, |(_, c)| *c)
    }
}

/// A scanner over a line already known to be valid JSON: it only has to find where
/// things start, not check them.
struct Scan {
    chars: Vec<char>,
    at: usize,
}

impl Scan {
    fn skip_space(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn value(&mut self, path: &str, spans: &mut Spans) {
        self.skip_space();
        match self.chars.get(self.at) {
            Some('{') => {
                self.at += 1;
                let mut seen: Vec<String> = Vec::new();
                loop {
                    self.skip_space();
                    match self.chars.get(self.at) {
                        Some('}') | None => {
                            self.at += 1;
                            return;
                        }
                        Some('"') => {
                            let column = self.at + 1;
                            let key = self.string();
                            let full = if path.is_empty() {
                                key.clone()
                            } else {
                                format!("{path}.{key}")
                            };
                            if seen.contains(&key) {
                                spans.repeated.push((full.clone(), column));
                            } else if path.is_empty() {
                                spans.top_level.push((full.clone(), column));
                            } else {
                                spans.nested.push((full.clone(), column));
                            }
                            seen.push(key);
                            self.skip_space();
                            self.at += 1; // ':'
                            self.value(&full, spans);
                        }
                        Some(_) => self.at += 1,
                    }
                }
            }
            Some('[') => {
                self.at += 1;
                let mut index = 0;
                loop {
                    self.skip_space();
                    match self.chars.get(self.at) {
                        Some(']') | None => {
                            self.at += 1;
                            return;
                        }
                        Some(',') => {
                            self.at += 1;
                            index += 1;
                        }
                        Some(_) => {
                            let element = format!("{path}[{index}]");
                            spans.nested.push((element.clone(), self.at + 1));
                            self.value(&element, spans);
                        }
                    }
                }
            }
            Some('"') => {
                self.string();
            }
            Some(_) => {
                while self
                    .chars
                    .get(self.at)
                    .is_some_and(|c| !matches!(c, ',' | '}' | ']') && !c.is_whitespace())
                {
                    self.at += 1;
                }
            }
            None => {}
        }
    }

    /// A string token starting at `"`, decoded.
    fn string(&mut self) -> String {
        let start = self.at;
        self.at += 1;
        while let Some(c) = self.chars.get(self.at) {
            self.at += 1;
            match c {
                '\\' => self.at += 1,
                '"' => break,
                _ => {}
            }
        }
        let token: String = self.chars[start..self.at.min(self.chars.len())]
            .iter()
            .collect();
        serde_json::from_str(&token).unwrap_or(token)
    }
}
