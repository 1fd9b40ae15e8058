//! Secret bytes: never printed, zeroed when dropped, and only reachable through `expose`.

use std::fmt;

use zeroize::Zeroizing;

/// Bytes that must not leak: credentials files, tokens, API keys.
///
/// `Debug` and `Display` print only the length, so a secret in an error or a log line
/// needs an explicit `expose()` to leak, which review can catch.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Masks anything shaped like a Claude token (`sk-ant-…`) in text that may hold
/// one: what a child printed (a user's command may echo what it read), a config value.
pub fn redact(text: &str) -> String {
    const PREFIX: &str = "sk-ant-";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        out.push_str(&rest[..at]);
        out.push_str("sk-ant-<redacted>");
        let after = &rest[at + PREFIX.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_bytes() {
        let s = Secret::from("sk-ant-oat01-very-secret".to_string());
        assert_eq!(format!("{s:?}"), "Secret(<24 bytes redacted>)");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s.expose(), b"sk-ant-oat01-very-secret");
    }

    #[test]
    fn tokens_are_masked() {
        assert_eq!(
            redact("bad token sk-ant-oat01-AbC_d-9 here, and sk-ant-ort01-x"),
            "bad token sk-ant-<redacted> here, and sk-ant-<redacted>"
        );
        assert_eq!(redact("nothing"), "nothing");
    }
}
