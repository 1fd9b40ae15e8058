//! `credentials:`: exactly one source of the Claude login, its checks and the default.
//!
//! `oauth_token` and `api_key` are secrets: they go from the parser into a
//! [`Secret`](crate::secret::Secret), and no message here quotes them (nor
//! `env`, which may be a value pasted where a name belongs).

use std::path::PathBuf;
use std::time::Duration;

use super::ctx::{key, under, Ctx};
use super::dotenv::is_name;
use super::error::ConfigError;
use super::locate::Seg;
use super::raw::{
    CredentialsMap, Given, RawAwsSecret, RawAzureSecret, RawCredentials, RawGcpSecret, SecretText,
    StringList,
};
use super::CredentialsSpec;

/// How long fetching or writing back the login may take unless `timeout:` says.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The keys of `credentials:` that name a source, in the order of the docs.
pub(crate) const SOURCES: [&str; 8] = [
    "file",
    "env",
    "command",
    "aws_secret",
    "gcp_secret",
    "azure_secret",
    "oauth_token",
    "api_key",
];

fn choices() -> String {
    let list: Vec<String> = SOURCES.iter().map(|s| format!("`{s}`")).collect();
    list.join(", ")
}

pub(super) fn credentials(
    raw: Option<CredentialsMap>,
    ctx: &Ctx,
) -> Result<(CredentialsSpec, Duration), ConfigError> {
    let Some(CredentialsMap(raw)) = raw else {
        return Ok((default_credentials(ctx)?, DEFAULT_TIMEOUT));
    };
    let base = [key("credentials")];
    let at = |field: &str| under(&base, &[key(field)]);
    let RawCredentials {
        file,
        env,
        command,
        write_command,
        aws_secret,
        gcp_secret,
        azure_secret,
        oauth_token,
        api_key,
        timeout,
    } = raw;

    let timeout = match timeout {
        None => DEFAULT_TIMEOUT,
        Some(timeout) if timeout.0.is_zero() => {
            let message = "timeout must be more than 0".to_owned();
            return Err(ctx.invalid(&at("timeout"), 1, message, None));
        }
        Some(timeout) => timeout.0,
    };
    if write_command.is_some() && !command.is_given() {
        return Err(ctx.invalid(
            &at("write_command"),
            1,
            "`write_command` is only for the `command` source".to_owned(),
            Some("add `command: [PROGRAM, ARGS...]` printing the credentials JSON, or remove `write_command`"),
        ));
    }
    let given = [
        file.is_given(),
        env.is_given(),
        command.is_given(),
        aws_secret.is_given(),
        gcp_secret.is_given(),
        azure_secret.is_given(),
        oauth_token.is_given(),
        api_key.is_given(),
    ];
    let names: Vec<String> = SOURCES
        .iter()
        .zip(given)
        .filter(|(_, given)| *given)
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    if names.len() > 1 {
        let message = format!("several credentials sources given: {}", names.join(", "));
        let hint = format!("keep exactly one of {}", choices());
        return Err(ctx.invalid(&base, 1, message, Some(&hint)));
    }

    let spec = if let Some(path) = value(file, &at("file"), ctx, &Empty::plain("the path"))? {
        CredentialsSpec::File(ctx.host_path(&path, &at("file"))?)
    } else if let Some(name) = value(env, &at("env"), ctx, &Empty::plain("the variable name"))? {
        env_source(name, &at("env"), ctx)?
    } else if let Some(argv) = value(command, &at("command"), ctx, &Empty::plain("the command"))? {
        let command = argv_of(argv, &at("command"), ctx)?;
        let write_command = write_command
            .map(|argv| argv_of(argv, &at("write_command"), ctx))
            .transpose()?;
        CredentialsSpec::Command {
            command,
            write_command,
        }
    } else if let Some(raw) = value(
        aws_secret,
        &at("aws_secret"),
        ctx,
        &Empty::map("aws_secret"),
    )? {
        aws_source(raw, &at("aws_secret"), ctx)?
    } else if let Some(raw) = value(
        gcp_secret,
        &at("gcp_secret"),
        ctx,
        &Empty::map("gcp_secret"),
    )? {
        gcp_source(raw, &at("gcp_secret"), ctx)?
    } else if let Some(raw) = value(
        azure_secret,
        &at("azure_secret"),
        ctx,
        &Empty::map("azure_secret"),
    )? {
        azure_source(raw, &at("azure_secret"), ctx)?
    } else if let Some(token) = secret(oauth_token, &at("oauth_token"), ctx, &Empty::TOKEN)? {
        CredentialsSpec::OauthToken(token.0)
    } else if let Some(api_key) = secret(api_key, &at("api_key"), ctx, &Empty::API_KEY)? {
        CredentialsSpec::ApiKey(api_key.0)
    } else {
        let hint = format!(
            "give one of {}, or remove `credentials:` to use ~/.claude/.credentials.json",
            choices()
        );
        let message = "no credentials source given".to_owned();
        return Err(ctx.invalid(&base, 1, message, Some(&hint)));
    };
    Ok((spec, timeout))
}

/// How to word an error about a key given without a value.
struct Empty {
    /// What is empty, e.g. "the token".
    noun: &'static str,
    /// The variable usually holding it, named when the line refers to none.
    usual_var: Option<&'static str>,
    /// A hint; `{var}` stands for the variable.
    hint: Option<&'static str>,
}

impl Empty {
    const TOKEN: Empty = Empty {
        noun: "the token",
        usual_var: Some("CLAUDE_CODE_OAUTH_TOKEN"),
        hint: Some(
            "run `claude setup-token` and export the token it prints as {var}, or put it in the .env file beside the config",
        ),
    };
    const API_KEY: Empty = Empty {
        noun: "the API key",
        usual_var: Some("ANTHROPIC_API_KEY"),
        hint: Some(
            "export the Anthropic API key as {var}, or put it in the .env file beside the config",
        ),
    };

    fn plain(noun: &'static str) -> Self {
        Self {
            noun,
            usual_var: None,
            hint: None,
        }
    }

    fn map(kind: &'static str) -> Self {
        let hint = match kind {
            "aws_secret" => "write it as a map, e.g. `aws_secret: {id: claude-credentials, region: us-east-1}`",
            "gcp_secret" => "write it as a map, e.g. `gcp_secret: {name: claude-credentials, project: my-project}`",
            _ => "write it as a map, e.g. `azure_secret: {vault: my-vault, name: claude-credentials}`",
        };
        Self {
            noun: "the value",
            usual_var: None,
            hint: Some(hint),
        }
    }

    /// The error, naming the variable the line refers to (an unset or blank
    /// `${VAR}` is the usual cause), else the usual one.
    fn error(&self, segs: &[Seg], ctx: &Ctx) -> ConfigError {
        let var = ctx
            .line_of(segs, 1)
            .and_then(|line| variable_on_line(ctx.source, line))
            .or_else(|| self.usual_var.map(str::to_owned));
        let message = match &var {
            Some(var) => format!("{} is empty: is {var} set?", self.noun),
            None => format!("{} is empty", self.noun),
        };
        let hint = self
            .hint
            .map(|hint| hint.replace("{var}", var.as_deref().unwrap_or("a variable")));
        ctx.invalid(segs, 1, message, hint.as_deref())
    }
}

/// `Some` for a key given with a value, an error for one given without.
fn value<T>(
    given: Given<T>,
    segs: &[Seg],
    ctx: &Ctx,
    empty: &Empty,
) -> Result<Option<T>, ConfigError> {
    match given {
        Given::Absent => Ok(None),
        Given::Null => Err(empty.error(segs, ctx)),
        Given::Value(value) => Ok(Some(value)),
    }
}

/// As [`value`], and a blank secret counts as missing too.
fn secret(
    given: Given<SecretText>,
    segs: &[Seg],
    ctx: &Ctx,
    empty: &Empty,
) -> Result<Option<SecretText>, ConfigError> {
    let text = value(given, segs, ctx, empty)?;
    match text {
        Some(text) if text.0.expose().iter().all(u8::is_ascii_whitespace) => {
            Err(empty.error(segs, ctx))
        }
        other => Ok(other),
    }
}

/// The first `${NAME}` or `$NAME` on a line of the file as written.
fn variable_on_line(source: &str, line: usize) -> Option<String> {
    let text = source.lines().nth(line.checked_sub(1)?)?;
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        let after = &rest[dollar + 1..];
        if let Some(escaped) = after.strip_prefix('$') {
            rest = escaped;
            continue;
        }
        let body = after.strip_prefix('{').unwrap_or(after);
        let end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let name = &body[..end];
        if is_name(name) {
            return Some(name.to_owned());
        }
        rest = after;
    }
    None
}

fn env_source(name: String, segs: &[Seg], ctx: &Ctx) -> Result<CredentialsSpec, ConfigError> {
    if name.trim().is_empty() {
        return Err(Empty::plain("the variable name").error(segs, ctx));
    }
    if !is_name(&name) {
        // Not quoted: this may be the credentials themselves, pasted or
        // interpolated where the name belongs.
        return Err(ctx.invalid(
            segs,
            1,
            "`env` takes the name of a variable, and this is not one".to_owned(),
            Some("write the name alone, e.g. `env: CLAUDE_CREDENTIALS` (not `${CLAUDE_CREDENTIALS}`, which would put the JSON itself here)"),
        ));
    }
    Ok(CredentialsSpec::Env(name))
}

fn argv_of(argv: StringList, segs: &[Seg], ctx: &Ctx) -> Result<Vec<String>, ConfigError> {
    let argv = argv.0;
    let message = match argv.first() {
        None => "the command is empty",
        Some(program) if program.trim().is_empty() => "the program name is empty",
        Some(_) => return Ok(argv),
    };
    let hint = "give the program and its arguments as a list, e.g. [\"op\", \"read\", \"op://vault/claude/credentials\"]";
    Err(ctx.invalid(segs, 1, message.to_owned(), Some(hint)))
}

/// A required string of a secret's map: an error when blank.
fn required(value: String, field: &str, base: &[Seg], ctx: &Ctx) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        let segs = under(base, &[key(field)]);
        let message = format!("{field} must not be empty");
        return Err(ctx.invalid(&segs, 1, message, None));
    }
    Ok(value)
}

/// An optional string: blank (e.g. an unset `${AWS_REGION}`) means not given.
fn optional(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.trim().is_empty())
}

fn aws_source(raw: RawAwsSecret, base: &[Seg], ctx: &Ctx) -> Result<CredentialsSpec, ConfigError> {
    Ok(CredentialsSpec::AwsSecret {
        id: required(raw.id, "id", base, ctx)?,
        region: optional(raw.region),
        profile: optional(raw.profile),
    })
}

fn gcp_source(raw: RawGcpSecret, base: &[Seg], ctx: &Ctx) -> Result<CredentialsSpec, ConfigError> {
    Ok(CredentialsSpec::GcpSecret {
        name: required(raw.name, "name", base, ctx)?,
        project: optional(raw.project),
    })
}

fn azure_source(
    raw: RawAzureSecret,
    base: &[Seg],
    ctx: &Ctx,
) -> Result<CredentialsSpec, ConfigError> {
    Ok(CredentialsSpec::AzureSecret {
        vault: required(raw.vault, "vault", base, ctx)?,
        name: required(raw.name, "name", base, ctx)?,
    })
}

/// Where Claude Code itself keeps the login on the host.
fn default_credentials(ctx: &Ctx) -> Result<CredentialsSpec, ConfigError> {
    let non_empty = |name: &str| (ctx.env)(name).filter(|value| !value.is_empty());
    if let Some(dir) = non_empty("CLAUDE_CONFIG_DIR") {
        return Ok(CredentialsSpec::File(
            PathBuf::from(dir).join(".credentials.json"),
        ));
    }
    if let Some(home) = non_empty("HOME") {
        return Ok(CredentialsSpec::File(
            PathBuf::from(home).join(".claude/.credentials.json"),
        ));
    }
    Err(ctx.invalid(
        &[key("credentials")],
        0,
        "cannot find the default credentials file: neither CLAUDE_CONFIG_DIR nor HOME is set"
            .to_owned(),
        Some("set `credentials.file` in the config"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_variable_on_a_line() {
        let source = "a: 1\n  oauth_token: ${TOKEN:-}\nb: $$X $Y # $Z\nc: ${1} none\n";
        assert_eq!(variable_on_line(source, 2).as_deref(), Some("TOKEN"));
        assert_eq!(variable_on_line(source, 3).as_deref(), Some("Y"));
        assert_eq!(variable_on_line(source, 4), None);
        assert_eq!(variable_on_line(source, 1), None);
        assert_eq!(variable_on_line(source, 0), None);
        assert_eq!(variable_on_line(source, 9), None);
    }
}
