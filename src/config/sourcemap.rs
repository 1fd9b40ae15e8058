//! Tracing positions in the interpolated text back to the file as written.
//!
//! Substitutions change lengths (and may add lines), so the position the
//! YAML parser reports would otherwise drift right of the real key.

/// A point where the output and the file line up.
#[derive(Clone, Copy)]
struct Anchor {
    out: (usize, usize),
    src: (usize, usize),
    /// Literal runs map column for column; substituted text maps to its `$`.
    literal: bool,
}

/// Maps 1-based (line, column) positions in the interpolated text back to the file.
pub(crate) struct SourceMap {
    anchors: Vec<Anchor>,
}

impl SourceMap {
    pub fn to_source(&self, line: usize, column: usize) -> (usize, usize) {
        let at = self.anchors.partition_point(|a| a.out <= (line, column));
        let Some(anchor) = at.checked_sub(1).map(|i| self.anchors[i]) else {
            return (line, column);
        };
        if !anchor.literal {
            anchor.src
        } else if anchor.out.0 == line {
            (anchor.src.0, anchor.src.1 + (column - anchor.out.1))
        } else {
            (anchor.src.0 + (line - anchor.out.0), column)
        }
    }
}

/// The output text being built, with anchors laid as it grows.
pub(crate) struct Out {
    text: String,
    pos: (usize, usize),
    anchors: Vec<Anchor>,
}

impl Out {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            text: String::with_capacity(capacity),
            pos: (1, 1),
            anchors: Vec::new(),
        }
    }

    pub fn push(&mut self, c: char) {
        self.text.push(c);
        self.pos = if c == '\n' {
            (self.pos.0 + 1, 1)
        } else {
            (self.pos.0, self.pos.1 + 1)
        };
    }

    /// Says that what is pushed next comes from `src` in the file: copied
    /// as is when `literal`, else produced by the reference at `src`.
    pub fn anchor(&mut self, src: (usize, usize), literal: bool) {
        let anchor = Anchor {
            out: self.pos,
            src,
            literal,
        };
        // An empty substitution leaves two anchors at one spot: the later wins.
        match self.anchors.last_mut() {
            Some(last) if last.out == self.pos => *last = anchor,
            _ => self.anchors.push(anchor),
        }
    }

    pub fn finish(self) -> (String, SourceMap) {
        let map = SourceMap {
            anchors: self.anchors,
        };
        (self.text, map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_around_substitutions() {
        // File line 1: `a: ${X} b` with X = "one\ntwo"; line 2: `c`.
        let mut out = Out::with_capacity(16);
        out.anchor((1, 1), true);
        "a: ".chars().for_each(|c| out.push(c));
        out.anchor((1, 4), false);
        "one\ntwo".chars().for_each(|c| out.push(c));
        out.anchor((1, 8), true);
        " b\n".chars().for_each(|c| out.push(c));
        out.anchor((2, 1), true);
        out.push('c');
        let (text, map) = out.finish();
        assert_eq!(text, "a: one\ntwo b\nc");
        assert_eq!(map.to_source(1, 2), (1, 2));
        assert_eq!(map.to_source(1, 5), (1, 4));
        assert_eq!(map.to_source(2, 2), (1, 4));
        assert_eq!(map.to_source(2, 5), (1, 9));
        assert_eq!(map.to_source(3, 1), (2, 1));
    }
}
