//! Finding where a key path sits in the YAML text, for errors found after parsing.
//!
//! Rather than scanning lines by hand, it walks the document again with
//! serde and fails on purpose at the target node: the YAML parser then
//! reports the node's exact position, for block and flow styles alike.

use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a key path: a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Renders `agents.planner.files[0].mode`.
pub(crate) fn render(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Index(index) => {
                let _ = write!(out, "[{index}]");
            }
        }
    }
    out
}

const FOUND: &str = "\u{1f}found";
const MISSING: &str = "\u{1f}missing";

/// The 1-based (line, column) in `text` of the last step of `segs`: the key
/// itself for a map key (its `nth` occurrence, counting from 1, so repeated
/// keys can be told apart), the value for a list index.
pub(crate) fn locate(text: &str, segs: &[Seg], nth: usize) -> Option<(usize, usize)> {
    if segs.is_empty() {
        return None;
    }
    let probe = Probe { segs, nth };
    let err = probe
        .deserialize(serde_yaml::Deserializer::from_str(text))
        .err()?;
    if !err.to_string().contains(FOUND) {
        return None;
    }
    err.location().map(|at| (at.line(), at.column()))
}

#[derive(Clone, Copy)]
struct Probe<'a> {
    segs: &'a [Seg],
    nth: usize,
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.segs.first() {
            None => d.deserialize_any(Here),
            Some(Seg::Key(_)) => d.deserialize_map(self),
            Some(Seg::Index(_)) => d.deserialize_seq(self),
        }
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the path to locate")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some(Seg::Key(want)) = self.segs.first() else {
            return Err(de::Error::custom(MISSING));
        };
        let rest = &self.segs[1..];
        let mut seen = 0;
        loop {
            let key = KeyProbe {
                want,
                fail_on_match: rest.is_empty() && seen + 1 == self.nth,
            };
            match map.next_key_seed(key)? {
                None => return Err(de::Error::custom(MISSING)),
                Some(true) if rest.is_empty() => {
                    seen += 1;
                    map.next_value::<IgnoredAny>()?;
                }
                Some(true) => {
                    let inner = Probe {
                        segs: rest,
                        nth: self.nth,
                    };
                    return map.next_value_seed(inner);
                }
                Some(false) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some(Seg::Index(index)) = self.segs.first() else {
            return Err(de::Error::custom(MISSING));
        };
        for _ in 0..*index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(MISSING));
            }
        }
        let inner = Probe {
            segs: &self.segs[1..],
            nth: self.nth,
        };
        seq.next_element_seed(inner)?
            .ok_or_else(|| de::Error::custom(MISSING))
    }
}

/// Reads a map key; fails at the key itself when it is the one sought.
struct KeyProbe<'a> {
    want: &'a str,
    fail_on_match: bool,
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyProbe<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match (v == self.want, self.fail_on_match) {
            (true, true) => Err(E::custom(FOUND)),
            (matched, _) => Ok(matched),
        }
    }
}

/// Fails on whatever node it is given, so the error carries that node's position.
struct Here;

impl<'de> Visitor<'de> for Here {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.to_owned())
    }

    const DOC: &str = "\
agents:
  a:
    image: x
    files:
      - {source: s, target: t, mode: \"0600\"}
      - source: s2
        target: t2
  a:
    image: y
";

    #[test]
    fn finds_keys_and_items() {
        let files = [key("agents"), key("a"), key("files")];
        assert_eq!(locate(DOC, &files[..2], 1), Some((2, 3)));
        assert_eq!(locate(DOC, &files[..2], 2), Some((8, 3)));
        assert_eq!(
            locate(DOC, &[key("agents"), key("a"), key("image")], 1),
            Some((3, 5))
        );
        let item = [files.to_vec(), vec![Seg::Index(1)]].concat();
        assert_eq!(locate(DOC, &item, 1), Some((6, 9)));
        let mode = [files.to_vec(), vec![Seg::Index(0), key("mode")]].concat();
        assert_eq!(locate(DOC, &mode, 1), Some((5, 32)));
        assert_eq!(render(&mode), "agents.a.files[0].mode");
    }

    #[test]
    fn misses_are_none() {
        assert_eq!(locate(DOC, &[key("nope")], 1), None);
        assert_eq!(locate(DOC, &[key("agents"), Seg::Index(0)], 1), None);
        assert_eq!(locate("[1, 2]", &[key("a")], 1), None);
        assert_eq!(locate(DOC, &[], 1), None);
    }
}
