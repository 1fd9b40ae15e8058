//! `credentials:` in each of its forms, its errors, and that secrets never print.

use std::time::Duration;

use super::{one_agent, Fixture};
use crate::config::{CredentialsSpec, Spec};
use crate::secret::Secret;

const TOKEN: &str = "sk-ant-oat01-TOPSECRET";

/// A config whose `credentials:` block has the given (indented) lines.
fn with_credentials(lines: &str) -> String {
    format!("credentials:\n{lines}{}", one_agent(""))
}

fn spec_of(lines: &str) -> Spec {
    Fixture::new(&with_credentials(lines)).ok().spec
}

fn err_of(lines: &str) -> String {
    Fixture::new(&with_credentials(lines)).err()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn file_and_default_keep_the_default_timeout() {
    let spec = spec_of("  file: /c.json\n");
    assert_eq!(spec.credentials, CredentialsSpec::File("/c.json".into()));
    assert_eq!(spec.credentials_timeout, Duration::from_secs(30));
    assert_eq!(spec.credentials.kind(), "file");
    assert_eq!(spec.credentials.describe(), "file /c.json");
    let spec = Fixture::new(&one_agent("")).ok().spec;
    assert_eq!(spec.credentials_timeout, Duration::from_secs(30));
    let spec = Fixture::new(&format!("credentials: ~\n{}", one_agent("")))
        .ok()
        .spec;
    assert_eq!(
        spec.credentials,
        CredentialsSpec::File("/home/me/.claude/.credentials.json".into())
    );
}

#[test]
fn env_names_a_variable() {
    let spec = spec_of("  env: CLAUDE_CREDENTIALS\n  timeout: 5s\n");
    assert_eq!(
        spec.credentials,
        CredentialsSpec::Env("CLAUDE_CREDENTIALS".into())
    );
    assert_eq!(spec.credentials_timeout, Duration::from_secs(5));
    assert_eq!(spec.credentials.kind(), "env");
    assert_eq!(spec.credentials.describe(), "env CLAUDE_CREDENTIALS");
}

#[test]
fn command_with_and_without_write_back() {
    let spec = spec_of(
        "  command: [op, read, \"op://vault/claude/credentials\"]\n  write_command: [\"/usr/local/bin/put-creds\", --stdin]\n  timeout: 1m\n",
    );
    assert_eq!(
        spec.credentials,
        CredentialsSpec::Command {
            command: strings(&["op", "read", "op://vault/claude/credentials"]),
            write_command: Some(strings(&["/usr/local/bin/put-creds", "--stdin"])),
        }
    );
    assert_eq!(spec.credentials_timeout, Duration::from_secs(60));
    assert_eq!(spec.credentials.kind(), "command");
    // Only the programs: arguments may carry a secret.
    assert_eq!(
        spec.credentials.describe(),
        "command op (write-back: /usr/local/bin/put-creds)"
    );

    let spec = spec_of("  command:\n    - get-creds\n");
    assert_eq!(
        spec.credentials,
        CredentialsSpec::Command {
            command: strings(&["get-creds"]),
            write_command: None,
        }
    );
    assert_eq!(spec.credentials.describe(), "command get-creds");
}

#[test]
fn cloud_secrets() {
    let spec = spec_of(
        "  aws_secret:\n    id: claude-oauth-credentials\n    region: us-east-1\n    profile: prod\n",
    );
    assert_eq!(
        spec.credentials,
        CredentialsSpec::AwsSecret {
            id: "claude-oauth-credentials".into(),
            region: Some("us-east-1".into()),
            profile: Some("prod".into()),
        }
    );
    assert_eq!(spec.credentials.kind(), "aws_secret");
    assert_eq!(
        spec.credentials.describe(),
        "aws_secret claude-oauth-credentials (us-east-1, profile prod)"
    );

    // An unset `${AWS_REGION}` leaves the region to the AWS defaults.
    let spec = spec_of("  aws_secret: {id: creds, region: \"${AWS_REGION}\"}\n");
    assert_eq!(
        spec.credentials,
        CredentialsSpec::AwsSecret {
            id: "creds".into(),
            region: None,
            profile: None,
        }
    );
    assert_eq!(spec.credentials.describe(), "aws_secret creds");
    let spec = spec_of("  aws_secret: {id: creds, region: us-east-1}\n");
    assert_eq!(spec.credentials.describe(), "aws_secret creds (us-east-1)");

    let spec = spec_of("  gcp_secret: {name: claude-creds, project: my-proj}\n  timeout: 10s\n");
    assert_eq!(
        spec.credentials,
        CredentialsSpec::GcpSecret {
            name: "claude-creds".into(),
            project: Some("my-proj".into()),
        }
    );
    assert_eq!(spec.credentials_timeout, Duration::from_secs(10));
    assert_eq!(spec.credentials.kind(), "gcp_secret");
    assert_eq!(
        spec.credentials.describe(),
        "gcp_secret claude-creds (project my-proj)"
    );
    let spec = spec_of("  gcp_secret: {name: claude-creds}\n");
    assert_eq!(spec.credentials.describe(), "gcp_secret claude-creds");

    let spec = spec_of("  azure_secret:\n    vault: my-vault\n    name: claude-creds\n");
    assert_eq!(
        spec.credentials,
        CredentialsSpec::AzureSecret {
            vault: "my-vault".into(),
            name: "claude-creds".into(),
        }
    );
    assert_eq!(spec.credentials.kind(), "azure_secret");
    assert_eq!(
        spec.credentials.describe(),
        "azure_secret claude-creds (vault my-vault)"
    );
}

#[test]
fn oauth_token_is_kept_secret() {
    let yaml = with_credentials("  oauth_token: ${CLAUDE_CODE_OAUTH_TOKEN}\n");
    let fixture = Fixture::new(&yaml).with_env(&[("CLAUDE_CODE_OAUTH_TOKEN", TOKEN)]);
    let loaded = fixture.ok();
    assert_eq!(
        loaded.spec.credentials,
        CredentialsSpec::OauthToken(Secret::from(TOKEN.to_owned()))
    );
    assert_eq!(loaded.spec.credentials.kind(), "oauth_token");
    assert_eq!(loaded.spec.credentials.describe(), "oauth_token");
    let debug = format!("{loaded:?}");
    assert!(!debug.contains("TOPSECRET"), "{debug}");
    assert!(
        debug.contains("OauthToken(Secret(<22 bytes redacted>))"),
        "{debug}"
    );
}

#[test]
fn api_key_is_kept_secret_and_may_come_from_dotenv() {
    let fixture = Fixture::new(&with_credentials("  api_key: \"${ANTHROPIC_API_KEY}\"\n"));
    fixture.write(".env", "ANTHROPIC_API_KEY=sk-ant-api03-TOPSECRET\n");
    let spec = fixture.ok().spec;
    assert_eq!(
        spec.credentials,
        CredentialsSpec::ApiKey(Secret::from("sk-ant-api03-TOPSECRET".to_owned()))
    );
    assert_eq!(spec.credentials.kind(), "api_key");
    assert_eq!(spec.credentials.describe(), "api_key");
    assert!(!format!("{spec:?}").contains("TOPSECRET"));
}

#[test]
fn zero_sources() {
    let hint = "\n  hint: give one of `file`, `env`, `command`, `aws_secret`, `gcp_secret`, `azure_secret`, `oauth_token`, `api_key`, or remove `credentials:` to use ~/.claude/.credentials.json";
    assert_eq!(
        err_of("  timeout: 10s\n"),
        format!("claunch.yaml:1: credentials: no credentials source given{hint}")
    );
    let yaml = format!("project: p\ncredentials: {{}}\n{}", one_agent(""));
    assert_eq!(
        Fixture::new(&yaml).err(),
        format!("claunch.yaml:2: credentials: no credentials source given{hint}")
    );
}

#[test]
fn several_sources() {
    let yaml = with_credentials(&format!("  file: /c.json\n  oauth_token: {TOKEN}\n"));
    let err = Fixture::new(&yaml).err();
    assert_eq!(
        err,
        "claunch.yaml:1: credentials: several credentials sources given: `file`, `oauth_token`\n  hint: keep exactly one of `file`, `env`, `command`, `aws_secret`, `gcp_secret`, `azure_secret`, `oauth_token`, `api_key`"
    );
    // A source given without a value still counts.
    assert_eq!(
        err_of("  env: X\n  aws_secret: {id: a}\n  api_key:\n"),
        "claunch.yaml:1: credentials: several credentials sources given: `env`, `aws_secret`, `api_key`\n  hint: keep exactly one of `file`, `env`, `command`, `aws_secret`, `gcp_secret`, `azure_secret`, `oauth_token`, `api_key`"
    );
}

#[test]
fn empty_oauth_token_names_the_variable() {
    let expected = "claunch.yaml:2: credentials.oauth_token: the token is empty: is CLAUDE_CODE_OAUTH_TOKEN set?\n  hint: run `claude setup-token` and export the token it prints as CLAUDE_CODE_OAUTH_TOKEN, or put it in the .env file beside the config";
    // Unset: the value is null.
    assert_eq!(
        err_of("  oauth_token: ${CLAUDE_CODE_OAUTH_TOKEN}\n"),
        expected
    );
    // Set but blank, quoted: the value is "".
    let yaml = with_credentials("  oauth_token: \"${CLAUDE_CODE_OAUTH_TOKEN}\"\n");
    let fixture = Fixture::new(&yaml).with_env(&[("CLAUDE_CODE_OAUTH_TOKEN", " ")]);
    assert_eq!(fixture.err(), expected);
    // No variable on the line: the usual one is named.
    assert_eq!(err_of("  oauth_token: \"\"\n"), expected);
    // Another variable: that one is named.
    assert_eq!(
        err_of("  oauth_token: ${MY_TOKEN:-}\n"),
        "claunch.yaml:2: credentials.oauth_token: the token is empty: is MY_TOKEN set?\n  hint: run `claude setup-token` and export the token it prints as MY_TOKEN, or put it in the .env file beside the config"
    );
    // Flow style, after a substitution that shifts columns.
    let yaml = format!(
        "project: ${{P}}\ncredentials: {{oauth_token: ${{CLAUDE_CODE_OAUTH_TOKEN}}}}\n{}",
        one_agent("")
    );
    let fixture = Fixture::new(&yaml).with_env(&[("P", "a-long-project-name")]);
    assert_eq!(fixture.err(), expected);
}

#[test]
fn empty_api_key_names_the_variable() {
    assert_eq!(
        err_of("  api_key: ${ANTHROPIC_API_KEY}\n"),
        "claunch.yaml:2: credentials.api_key: the API key is empty: is ANTHROPIC_API_KEY set?\n  hint: export the Anthropic API key as ANTHROPIC_API_KEY, or put it in the .env file beside the config"
    );
}

#[test]
fn errors_never_quote_a_secret() {
    let cases = [
        (
            format!("credentials: {TOKEN}\n"),
            "claunch.yaml:1:14: credentials: invalid type: string, expected a map with one credentials source\n  hint: e.g. `credentials: {oauth_token: ${CLAUDE_CODE_OAUTH_TOKEN}}` or `credentials: {file: ~/.claude/.credentials.json}`",
        ),
        (
            format!("credentials:\n  oauth_token: [{TOKEN}]\n"),
            "claunch.yaml:2:16: credentials.oauth_token: invalid type: sequence, expected a string",
        ),
        (
            format!("credentials:\n  api_key: {{k: {TOKEN}}}\n"),
            "claunch.yaml:2:12: credentials.api_key: invalid type: map, expected a string",
        ),
        (
            format!("credentials:\n  oauth_tokn: {TOKEN}\n"),
            "claunch.yaml:2:3: credentials.oauth_tokn: unknown key `oauth_tokn`\n  hint: did you mean `oauth_token`?",
        ),
        (
            format!("credentials:\n  oauth_token: {TOKEN}\n  oauth_token: {TOKEN}\n"),
            "claunch.yaml:3:3: credentials.oauth_token: duplicate key `oauth_token`",
        ),
        (
            // The JSON itself where its variable's name belongs.
            "credentials:\n  env: '{\"claudeAiOauth\": {\"accessToken\": \"sk-ant-oat01-TOPSECRET\"}}'\n".to_owned(),
            "claunch.yaml:2: credentials.env: `env` takes the name of a variable, and this is not one\n  hint: write the name alone, e.g. `env: CLAUDE_CREDENTIALS` (not `${CLAUDE_CREDENTIALS}`, which would put the JSON itself here)",
        ),
    ];
    for (head, expected) in cases {
        let err = Fixture::new(&format!("{head}{}", one_agent(""))).err();
        assert!(!err.contains("TOPSECRET"), "{err}");
        assert_eq!(err, expected, "for {head:?}");
    }
}

#[test]
fn write_command_needs_command() {
    assert_eq!(
        err_of("  file: /c.json\n  write_command: [put-creds]\n"),
        "claunch.yaml:3: credentials.write_command: `write_command` is only for the `command` source\n  hint: add `command: [PROGRAM, ARGS...]` printing the credentials JSON, or remove `write_command`"
    );
    assert_eq!(
        err_of("  write_command: [put-creds]\n"),
        "claunch.yaml:2: credentials.write_command: `write_command` is only for the `command` source\n  hint: add `command: [PROGRAM, ARGS...]` printing the credentials JSON, or remove `write_command`"
    );
}

#[test]
fn bad_commands() {
    let hint = "\n  hint: give the program and its arguments as a list, e.g. [\"op\", \"read\", \"op://vault/claude/credentials\"]";
    assert_eq!(
        err_of("  command: []\n"),
        format!("claunch.yaml:2: credentials.command: the command is empty{hint}")
    );
    assert_eq!(
        err_of("  command: [\"\", x]\n"),
        format!("claunch.yaml:2: credentials.command: the program name is empty{hint}")
    );
    assert_eq!(
        err_of("  command: [get]\n  write_command: []\n"),
        format!("claunch.yaml:3: credentials.write_command: the command is empty{hint}")
    );
    assert_eq!(
        err_of("  command: ${CREDS_COMMAND}\n"),
        "claunch.yaml:2: credentials.command: the command is empty: is CREDS_COMMAND set?"
    );
    assert_eq!(
        err_of("  command: op read x\n"),
        "claunch.yaml:2:12: credentials.command: invalid type: string \"op read x\", expected a list of strings\n  hint: write it as a list: [\"op\", \"read\", \"x\"]"
    );
}

#[test]
fn bad_cloud_secrets() {
    let cases = [
        (
            "  aws_secret: {id: x, regoin: us-east-1}\n",
            "claunch.yaml:2:23: credentials.aws_secret.regoin: unknown key `regoin`\n  hint: did you mean `region`?",
        ),
        (
            "  aws_secret:\n    id: x\n    colour: red\n",
            "claunch.yaml:4:5: credentials.aws_secret.colour: unknown key `colour`\n  hint: valid keys are `id`, `region`, `profile`",
        ),
        (
            "  aws_secret: {region: us-east-1}\n",
            "claunch.yaml:2:3: credentials.aws_secret: missing required key `id`",
        ),
        (
            "  aws_secret: {id: \" \"}\n",
            "claunch.yaml:2: credentials.aws_secret.id: id must not be empty",
        ),
        (
            "  aws_secret: my-secret\n",
            "claunch.yaml:2:15: credentials.aws_secret: invalid type: string \"my-secret\", expected a map",
        ),
        (
            "  aws_secret:\n",
            "claunch.yaml:2: credentials.aws_secret: the value is empty\n  hint: write it as a map, e.g. `aws_secret: {id: claude-credentials, region: us-east-1}`",
        ),
        (
            "  gcp_secret: {project: p}\n",
            "claunch.yaml:2:3: credentials.gcp_secret: missing required key `name`",
        ),
        (
            "  gcp_secret: {name: n, projet: p}\n",
            "claunch.yaml:2:25: credentials.gcp_secret.projet: unknown key `projet`\n  hint: did you mean `project`?",
        ),
        (
            "  azure_secret: {name: n}\n",
            "claunch.yaml:2:3: credentials.azure_secret: missing required key `vault`",
        ),
        (
            "  azure_secret: {vault: \"\", name: n}\n",
            "claunch.yaml:2: credentials.azure_secret.vault: vault must not be empty",
        ),
    ];
    for (lines, expected) in cases {
        assert_eq!(err_of(lines), expected, "for {lines:?}");
    }
}

#[test]
fn bad_env_and_file() {
    assert_eq!(
        err_of("  env: ${CREDS_VAR}\n"),
        "claunch.yaml:2: credentials.env: the variable name is empty: is CREDS_VAR set?"
    );
    assert_eq!(
        err_of("  env: \"\"\n"),
        "claunch.yaml:2: credentials.env: the variable name is empty"
    );
    assert_eq!(
        err_of("  file:\n"),
        "claunch.yaml:2: credentials.file: the path is empty"
    );
}

#[test]
fn bad_timeouts() {
    assert_eq!(
        err_of("  file: /c\n  timeout: 0s\n"),
        "claunch.yaml:3: credentials.timeout: timeout must be more than 0"
    );
    assert_eq!(
        err_of("  file: /c\n  timeout: later\n"),
        "claunch.yaml:3:12: credentials.timeout: invalid duration \"later\": write it like `120s`, `2m`, `1h30m`, `500ms` or a number of seconds"
    );
}

#[test]
fn onboarding_defaults_and_overrides() {
    let spec = Fixture::new(&one_agent("")).ok().spec;
    assert!(!spec.agents[0].onboarding);

    let yaml = "onboarding: true\nagents:\n  a: {image: x}\n  b: {image: x, onboarding: false}\n";
    let spec = Fixture::new(yaml).ok().spec;
    let flags: Vec<bool> = spec.agents.iter().map(|a| a.onboarding).collect();
    assert_eq!(flags, [true, false]);
    let json = serde_json::to_value(&spec.agents[0]).unwrap();
    assert_eq!(json["onboarding"], true);

    let yaml = "agents:\n  a: {image: x}\n  b: {image: x, onboarding: true}\n";
    let spec = Fixture::new(yaml).ok().spec;
    let flags: Vec<bool> = spec.agents.iter().map(|a| a.onboarding).collect();
    assert_eq!(flags, [false, true]);

    assert_eq!(
        Fixture::new(&one_agent("    onboarding: yes please\n")).err(),
        "claunch.yaml:4:17: agents.a.onboarding: invalid type: string \"yes please\", expected a boolean"
    );
    assert_eq!(
        Fixture::new(&format!("onbording: true\n{}", one_agent(""))).err(),
        "claunch.yaml:1:1: onbording: unknown key `onbording`\n  hint: did you mean `onboarding`?"
    );
}
