//! Standard base64 (RFC 4648) for credentials kept in an environment variable: decoding
//! tolerates the line breaks `base64` inserts every 76 characters, and both directions
//! write into buffers sized up front so no unwiped copy of a secret is left behind.

use crate::secret::Secret;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a value is not base64; never quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("character {position} is not a base64 character")]
    BadCharacter { position: usize },
    #[error("the length is not a whole number of base64 groups")]
    BadLength,
    #[error("`=` padding appears before the end")]
    BadPadding,
}

fn value_of(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes standard base64, ignoring ASCII whitespace anywhere; padding is optional.
pub fn decode(text: &[u8]) -> Result<Secret, DecodeError> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    let mut group = [0u8; 4];
    let mut filled = 0;
    let mut padding = 0;
    for (position, &c) in text.iter().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return Err(DecodeError::BadPadding);
        }
        group[filled] = value_of(c).ok_or(DecodeError::BadCharacter {
            position: position + 1,
        })?;
        filled += 1;
        if filled == 4 {
            out.extend_from_slice(&[
                (group[0] << 2) | (group[1] >> 4),
                (group[1] << 4) | (group[2] >> 2),
                (group[2] << 6) | group[3],
            ]);
            filled = 0;
        }
    }
    match filled {
        0 => {}
        2 => out.push((group[0] << 2) | (group[1] >> 4)),
        3 => out.extend_from_slice(&[
            (group[0] << 2) | (group[1] >> 4),
            (group[1] << 4) | (group[2] >> 2),
        ]),
        _ => return Err(DecodeError::BadLength),
    }
    let expected_padding = (4 - filled) % 4;
    if padding != 0 && padding != expected_padding {
        return Err(DecodeError::BadPadding);
    }
    group.fill(0);
    Ok(Secret::new(out))
}

/// Encodes as standard base64 with padding, on one line.
pub fn encode(bytes: &[u8]) -> Secret {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let symbols = [
            b[0] >> 2,
            ((b[0] & 0x03) << 4) | (b[1] >> 4),
            ((b[1] & 0x0f) << 2) | (b[2] >> 6),
            b[2] & 0x3f,
        ];
        for (i, s) in symbols.iter().enumerate() {
            out.push(if i <= chunk.len() {
                ALPHABET[usize::from(*s)]
            } else {
                b'='
            });
        }
    }
    Secret::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<Vec<u8>, DecodeError> {
        decode(s.as_bytes()).map(|s| s.expose().to_vec())
    }

    #[test]
    fn rfc_4648_vectors_both_ways() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()).expose(), coded.as_bytes());
            assert_eq!(dec(coded).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(
            dec(std::str::from_utf8(encode(&all).expose()).unwrap()).unwrap(),
            all
        );
    }

    #[test]
    fn wrapped_and_unpadded_input_decodes() {
        assert_eq!(dec("Zm9v\nYmFy\n").unwrap(), b"foobar");
        assert_eq!(dec("  Zm9vYg\r\n").unwrap(), b"foob");
        assert_eq!(dec("Zm9vYmE").unwrap(), b"fooba");
    }

    #[test]
    fn bad_input_is_refused_without_quoting_it() {
        assert_eq!(
            dec("Zm9v!mFy"),
            Err(DecodeError::BadCharacter { position: 5 })
        );
        assert_eq!(dec("Zm9vY"), Err(DecodeError::BadLength));
        assert_eq!(dec("Zg==Zg=="), Err(DecodeError::BadPadding));
        assert_eq!(dec("Zg="), Err(DecodeError::BadPadding));
        assert_eq!(dec("Zm9v="), Err(DecodeError::BadPadding));
        assert_eq!(
            dec("sk-ant-oat01"),
            Err(DecodeError::BadCharacter { position: 3 })
        );
    }
}
