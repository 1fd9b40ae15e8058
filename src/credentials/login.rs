//! The login a fleet runs on, and what each container gets of it: the whole credentials
//! file for a rotating login's leader, the access token alone for its followers, one
//! shared file for a setup token, an API key file plus an `apiKeyHelper` for a key.

use crate::credentials::deliver::Payload;
use crate::credentials::Role;
use crate::credentials::{family, Credentials};
use crate::secret::Secret;

/// Where claude's settings live, relative to its config dir.
pub const SETTINGS_FILE: &str = "settings.json";
/// The API key file claunch writes, relative to claude's config dir.
pub const API_KEY_FILE: &str = "claunch-api-key";

#[derive(Debug, Clone)]
pub enum Login {
    /// An OAuth login with a refresh token: rotates on every refresh.
    Rotating(Credentials),
    /// A credentials file every container may share: a setup token, or an access-only file.
    Shared(Credentials),
    /// An Anthropic API key, read by claude through `apiKeyHelper`.
    ApiKey(Secret),
}

impl Login {
    /// Builds the login from credentials read from a file or a store.
    pub fn from_credentials(c: Credentials) -> Self {
        if c.summary.has_refresh_token {
            Self::Rotating(c)
        } else {
            Self::Shared(c)
        }
    }

    pub fn rotating(&self) -> bool {
        matches!(self, Self::Rotating(_))
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        match self {
            Self::Rotating(c) | Self::Shared(c) => Some(c),
            Self::ApiKey(_) => None,
        }
    }

    /// The login mode, for config hashes and status output.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Rotating(_) => "oauth-login",
            Self::Shared(_) => "shared-token",
            Self::ApiKey(_) => "api-key",
        }
    }

    /// The credentials file a container with `role` gets, if any.
    pub fn credentials_file(&self, role: Role) -> Option<Secret> {
        match (self, role) {
            (Self::Rotating(c), Role::Leader) | (Self::Shared(c), _) => Some(c.raw().clone()),
            (Self::Rotating(c), _) => Some(family::access_only(c)),
            (Self::ApiKey(_), _) => None,
        }
    }

    /// Files besides the credentials file, as absolute paths under `config_dir`:
    /// the API key and the settings that point claude at it, merged into `settings`
    /// (the container's existing settings.json, if any).
    pub fn extra_files(&self, config_dir: &str, settings: Option<&str>) -> Vec<Payload> {
        let Self::ApiKey(key) = self else {
            return Vec::new();
        };
        let key_path = crate::credentials::identity::join(config_dir, API_KEY_FILE);
        let mut value: serde_json::Value = settings
            .and_then(|s| serde_json::from_str(s).ok())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({}));
        value["apiKeyHelper"] = serde_json::Value::String(format!("cat {key_path}"));
        vec![
            Payload {
                target: key_path,
                mode: 0o600,
                contents: key.clone(),
            },
            Payload {
                target: crate::credentials::identity::join(config_dir, SETTINGS_FILE),
                mode: 0o600,
                contents: Secret::from(format!("{value:#}\n")),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_key_goes_in_a_file_and_settings_point_at_it() {
        let login = Login::ApiKey(Secret::from("sk-ant-api03-x".to_string()));
        assert!(login.credentials_file(Role::Shared).is_none());
        let files = login.extra_files("/home/a/.claude", Some(r#"{"model":"sonnet"}"#));
        assert_eq!(files[0].target, "/home/a/.claude/claunch-api-key");
        assert_eq!(files[0].mode, 0o600);
        let settings: serde_json::Value =
            serde_json::from_slice(files[1].contents.expose()).unwrap();
        assert_eq!(
            settings["apiKeyHelper"],
            "cat /home/a/.claude/claunch-api-key"
        );
        assert_eq!(settings["model"], "sonnet", "existing settings are kept");
        assert!(!String::from_utf8_lossy(files[1].contents.expose()).contains("sk-ant"));
    }
}
