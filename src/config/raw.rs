//! The config file as written: serde types that reject unknown keys and wrong types.
//!
//! Scalars that take several spellings (env values, `mode`, `timeout`) are
//! read as their raw YAML text, so `mode: 0644` and `timeout: 90` mean what
//! they look like rather than what YAML's number rules make of them.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::Deserialize;

use super::duration::parse_duration;
use crate::secret::Secret;

/// Separates a hint from the message inside a serde error, so that
/// [`super::parse`] can render it on its own line.
pub(crate) const HINT: char = '\u{1f}';

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub project: Option<String>,
    pub credentials: Option<CredentialsMap>,
    /// The default for the agents' own `onboarding`.
    pub onboarding: Option<bool>,
    /// Optional here so that a file without agents gets the friendlier
    /// "at least one agent" error from validation.
    #[serde(default)]
    pub agents: Ordered<RawAgent>,
}

/// Where the Claude login comes from. Each [`Given`] field is one kind of
/// source; exactly one must be given. `write_command` and `timeout` qualify
/// the source.
///
/// `oauth_token` and `api_key` hold secrets: they are read straight into a
/// [`Secret`] and no error about them quotes their value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCredentials {
    #[serde(default)]
    pub file: Given<String>,
    #[serde(default)]
    pub env: Given<String>,
    #[serde(default)]
    pub command: Given<StringList>,
    pub write_command: Option<StringList>,
    #[serde(default)]
    pub aws_secret: Given<RawAwsSecret>,
    #[serde(default)]
    pub gcp_secret: Given<RawGcpSecret>,
    #[serde(default)]
    pub azure_secret: Given<RawAzureSecret>,
    #[serde(default)]
    pub oauth_token: Given<SecretText>,
    #[serde(default)]
    pub api_key: Given<SecretText>,
    pub timeout: Option<Timeout>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAwsSecret {
    pub id: String,
    pub region: Option<String>,
    pub profile: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGcpSecret {
    pub name: String,
    pub project: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAzureSecret {
    pub vault: String,
    pub name: String,
}

/// `credentials:` must be a map. A scalar is refused without quoting it,
/// since it may well be a token written in the wrong place.
pub(crate) struct CredentialsMap(pub RawCredentials);

/// A key that may be absent, present without a value (`key:`, typically an
/// unset `${VAR}`), or present with one: "given but empty" deserves its own
/// error rather than passing for "not given".
#[derive(Default)]
pub(crate) enum Given<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Given<T> {
    pub fn is_given(&self) -> bool {
        !matches!(self, Self::Absent)
    }
}

/// A scalar read as text straight into a [`Secret`]; errors never quote it.
pub(crate) struct SecretText(pub Secret);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub image: String,
    pub replicas: Option<u32>,
    pub user: Option<String>,
    pub command: Option<StringList>,
    pub entrypoint: Option<StringList>,
    pub working_dir: Option<String>,
    #[serde(default)]
    pub env: RawEnv,
    pub network: Option<String>,
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub files: Vec<RawFile>,
    #[serde(default)]
    pub smoke: RawSmokeSetting,
    pub onboarding: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub source: String,
    pub target: String,
    pub mode: Option<Mode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSmoke {
    pub prompt: Option<String>,
    pub max_turns: Option<u32>,
    pub timeout: Option<Timeout>,
}

#[derive(Default)]
pub(crate) enum RawSmokeSetting {
    Off,
    #[default]
    Default,
    Custom(RawSmoke),
}

/// A map's entries in file order, duplicates kept for validation to report.
pub(crate) struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

/// `env` as a map (`None` = take the host's value) or as `KEY=VALUE` strings.
pub(crate) enum RawEnv {
    Map(Vec<(String, Option<String>)>),
    List(Vec<String>),
}

impl Default for RawEnv {
    fn default() -> Self {
        Self::Map(Vec::new())
    }
}

pub(crate) struct StringList(pub Vec<String>);
pub(crate) struct Mode(pub u32);
pub(crate) struct Timeout(pub Duration);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Ordered(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Ordered(entries))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de> Deserialize<'de> for RawEnv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEnv;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of names to values or a list of \"KEY=VALUE\" strings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RawEnv::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let EnvValue(value) = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(RawEnv::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(RawEnv::List(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// An env map value: any scalar as its text, or null for "from the host".
struct EnvValue(Option<String>);

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(EnvValue(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(EnvValue(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_str(self)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(EnvValue(Some(v.to_owned())))
            }
        }
        d.deserialize_option(V)
    }
}

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of strings")
            }
            // A shell-style string is refused rather than split: quoting
            // rules would differ from the shell the user has in mind.
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let words: Vec<String> = v.split_whitespace().map(|w| format!("{w:?}")).collect();
                Err(E::custom(format!(
                    "invalid type: string {v:?}, expected a list of strings{HINT}write it as a list: [{}]",
                    words.join(", ")
                )))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(StringList(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads a scalar's raw text and converts it inside the visitor, so that
/// conversion errors carry the scalar's position.
struct Text<F>(&'static str, F);

impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for Text<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.1)(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Text("octal permissions like \"0644\"", |s: &str| {
            parse_mode(s).map(Mode)
        }))
    }
}

/// File modes are octal whatever the spelling (`0644`, `644`, `0o644`),
/// since nobody writes permissions in decimal.
pub(crate) fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim();
    let digits = digits.strip_prefix("0o").unwrap_or(digits);
    let mode = u32::from_str_radix(digits, 8)
        .ok()
        .filter(|_| !digits.starts_with('+'))
        .ok_or_else(|| {
            format!("invalid mode {text:?}: expected octal permissions like \"0644\"")
        })?;
    if mode > 0o7777 {
        return Err(format!("invalid mode {text:?}: the largest mode is 07777"));
    }
    Ok(mode)
}

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let parse = |s: &str| parse_duration(s).map(Timeout);
        d.deserialize_str(Text("a duration like `120s`", parse))
    }
}

impl<'de> Deserialize<'de> for RawSmokeSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSmokeSetting;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`true`, `false` or a map with prompt, max_turns and timeout")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(if v {
                    RawSmokeSetting::Default
                } else {
                    RawSmokeSetting::Off
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RawSmokeSetting::Default)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawSmoke::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawSmokeSetting::Custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Given<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map_or(Given::Null, Given::Value))
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SecretText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SecretText(Secret::from(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(SecretText(Secret::from(v)))
            }
            // serde's defaults would quote the value.
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(E::invalid_type(Unexpected::Other("boolean"), &self))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(E::invalid_type(Unexpected::Other("number"), &self))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(E::invalid_type(Unexpected::Other("number"), &self))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Err(E::invalid_type(Unexpected::Other("number"), &self))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for CredentialsMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl V {
            fn scalar<E: de::Error>(what: &str) -> E {
                E::custom(format!(
                    "invalid type: {what}, expected a map with one credentials source{HINT}\
                     e.g. `credentials: {{oauth_token: ${{CLAUDE_CODE_OAUTH_TOKEN}}}}` or \
                     `credentials: {{file: ~/.claude/.credentials.json}}`"
                ))
            }
        }
        impl<'de> Visitor<'de> for V {
            type Value = CredentialsMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map with one credentials source")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawCredentials::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(CredentialsMap)
            }
            // Scalars are named but never quoted.
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Err(V::scalar("string"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(V::scalar("boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(V::scalar("number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(V::scalar("number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Err(V::scalar("number"))
            }
        }
        d.deserialize_any(V)
    }
}
