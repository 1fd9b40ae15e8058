//! Credentials sources other than a file, end to end: the login is exported to a store,
//! `claunch up` delivers it from there, a refresh in the leader goes back through
//! `claunch creds sync`, and an older login never replaces a newer one. AWS runs against a
//! real local moto server with the real `aws` CLI; gcloud and az are stand-ins
//! (tests/fixtures/bin) that accept only the argv the real CLIs would get. Every error has
//! its message and fix, and no token reaches claunch's output or a child's argv.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::moto::Moto;
use crate::support::{self, fake_token, image, login_json, now_ms, Image, Project};

const HOUR: i64 = 3_600_000;
const CREDS: &str = "/home/agent/.claude/.credentials.json";

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// claunch in the project, with no AWS or stand-in environment of the host's leaking in.
fn claunch(p: &Project) -> assert_cmd::Command {
    let mut cmd = p.claunch();
    for var in [
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "CLAUDE_CREDENTIALS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// The stand-in gcloud and az first on PATH, keeping their secrets in `store/` and
/// their argv in `standin.log`.
fn with_standins(p: &Project, cmd: &mut assert_cmd::Command) {
    std::fs::create_dir_all(p.path("store")).unwrap();
    let path = format!(
        "{}:{}",
        support::fixture("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path)
        .env("STANDIN_STORE", p.path("store"))
        .env("STANDIN_LOG", p.path("standin.log"));
}

/// Runs a command that must succeed; returns its output for the secrets sweep.
fn ok(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{cmd:?} failed: {all}");
    all
}

/// Runs a command that must fail; returns its output.
fn fails(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().unwrap();
    let all = text(&out);
    assert!(!out.status.success(), "{cmd:?} should have failed: {all}");
    all
}

fn leader(p: &Project) -> String {
    format!("{}-agent-1", p.name)
}

fn file_in(p: &Project, container: &str) -> serde_json::Value {
    p.json_in(container, CREDS)
}

/// Writes a login into a container's credentials file, as its claude does after a refresh.
fn write_in(p: &Project, container: &str, json: &str) {
    p.write_in(container, CREDS, "1000:1000", json);
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

/// A login with tokens of its own, expiring `hours` from now.
fn login_in(tag: &str, hours: i64) -> (String, Vec<String>) {
    let access = fake_token(&format!("oat{tag}"));
    let refresh = fake_token(&format!("ort{tag}"));
    (
        login_json(&access, &refresh, now_ms() + hours * HOUR),
        vec![access, refresh],
    )
}

fn assert_no_token(what: &str, haystack: &str, tokens: &[String]) {
    for t in tokens {
        assert!(!haystack.contains(t.as_str()), "a token leaked into {what}");
        assert!(
            !haystack.contains(&t[..30]),
            "a token fragment leaked into {what}"
        );
    }
}

fn fleet_yaml(credentials: &str) -> String {
    format!(
        "project: {{project}}\ncredentials:\n{credentials}agents:\n  agent:\n    image: {}\n    replicas: 2\n",
        image(Image::Named)
    )
}

/// The cycle every writable store goes through. `cmd` prepares a claunch command for the
/// store, `stored` reads what the store holds now.
fn cycle(
    p: &Project,
    export: &[&str],
    credentials: &str,
    describe: &str,
    cmd: &dyn Fn() -> assert_cmd::Command,
    stored: &dyn Fn() -> serde_json::Value,
) -> (Vec<String>, Vec<String>) {
    let (host, mut tokens) = login_in("h", 8);
    p.write_credentials(&host);
    let from = p.path("creds/.credentials.json");
    let mut outputs = Vec::new();

    // Export creates the secret; a second export of the same login changes nothing.
    let mut args: Vec<&str> = vec!["creds", "export"];
    args.extend_from_slice(export);
    args.extend(["--from", from.to_str().unwrap()]);
    let out = ok(cmd().args(&args));
    assert!(out.contains(&format!("created {describe}")), "{out}");
    outputs.push(out);
    assert_eq!(stored(), json(&host));
    let out = ok(cmd().args(&args));
    assert!(out.contains("already holds the login"), "{out}");
    outputs.push(out);

    // `up` delivers it: the whole file to the leader, the access token to the follower.
    p.write_config(&fleet_yaml(credentials));
    outputs.push(ok(cmd().arg("up")));
    assert_eq!(file_in(p, &leader(p)), json(&host));
    let follower = file_in(p, &format!("{}-agent-2", p.name));
    assert_eq!(
        follower["claudeAiOauth"]["accessToken"],
        json(&host)["claudeAiOauth"]["accessToken"]
    );
    assert!(follower["claudeAiOauth"].get("refreshToken").is_none());

    // The leader's claude refreshed: sync writes the newer login to the store.
    let (newer, more) = login_in("n", 10);
    tokens.extend(more);
    write_in(p, &leader(p), &newer);
    let out = ok(cmd().args(["creds", "sync"]));
    assert!(
        out.contains(&format!("written back to {describe}")),
        "{out}"
    );
    outputs.push(out);
    assert_eq!(stored(), json(&newer));

    // A leader holding an older login than the store's: never written back.
    let (older, more) = login_in("o", 9);
    tokens.extend(more);
    write_in(p, &leader(p), &older);
    outputs.push(ok(cmd().args(["creds", "sync"])));
    assert_eq!(
        stored(),
        json(&newer),
        "an older login replaced a newer one"
    );

    // Nor does exporting the host's (now older) login replace it.
    let out = fails(cmd().args(&args));
    assert!(out.contains("holds a newer login than"), "{out}");
    outputs.push(out);
    assert_eq!(stored(), json(&newer));

    // `creds status` names the source.
    let out = cmd().args(["creds", "status"]).output().unwrap();
    let out = text(&out);
    assert!(out.contains(&format!("source ({describe})")), "{out}");
    outputs.push(out);
    (outputs, tokens)
}

#[test]
fn aws_secret_is_exported_delivered_and_written_back_never_older() {
    let moto = Moto::start();
    let p = Project::new("aws");
    let cmd = || {
        let mut c = claunch(&p);
        c.envs(moto.env());
        c
    };
    let (outputs, tokens) = cycle(
        &p,
        &["--to", "aws_secret", "--id", "claude-oauth-credentials"],
        "  aws_secret:\n    id: claude-oauth-credentials\n",
        "aws_secret claude-oauth-credentials",
        &cmd,
        &|| moto.secret("claude-oauth-credentials"),
    );
    for (i, out) in outputs.iter().enumerate() {
        assert_no_token(&format!("claunch output {i}"), out, &tokens);
    }
}

#[test]
fn gcp_secret_through_gcloud_is_exported_delivered_and_written_back() {
    let p = Project::new("gcp");
    let cmd = || {
        let mut c = claunch(&p);
        with_standins(&p, &mut c);
        c
    };
    let store = p.path("store/gcp-p1-claude-login");
    let (outputs, tokens) = cycle(
        &p,
        &[
            "--to",
            "gcp_secret",
            "--name",
            "claude-login",
            "--project",
            "p1",
        ],
        "  gcp_secret:\n    name: claude-login\n    project: p1\n",
        "gcp_secret claude-login (project p1)",
        &cmd,
        &|| json(&std::fs::read_to_string(&store).unwrap()),
    );
    let log = std::fs::read_to_string(p.path("standin.log")).unwrap();
    for line in [
        "gcloud [secrets] [versions] [access] [latest] [--secret=claude-login] [--project=p1]",
        "gcloud [secrets] [create] [claude-login] [--data-file=-] [--project=p1]",
        "gcloud [secrets] [versions] [add] [claude-login] [--data-file=-] [--project=p1]",
    ] {
        assert!(log.lines().any(|l| l == line), "no `{line}` in:\n{log}");
    }
    assert_no_token("the argv of gcloud", &log, &tokens);
    for (i, out) in outputs.iter().enumerate() {
        assert_no_token(&format!("claunch output {i}"), out, &tokens);
    }
}

#[test]
fn azure_secret_through_az_uses_a_private_file_removed_afterwards() {
    let p = Project::new("azure");
    let cmd = || {
        let mut c = claunch(&p);
        with_standins(&p, &mut c);
        c
    };
    let store = p.path("store/az-vault1-claude-login");
    let (outputs, tokens) = cycle(
        &p,
        &[
            "--to",
            "azure_secret",
            "--vault",
            "vault1",
            "--name",
            "claude-login",
        ],
        "  azure_secret:\n    vault: vault1\n    name: claude-login\n",
        "azure_secret claude-login (vault vault1)",
        &cmd,
        &|| json(&std::fs::read_to_string(&store).unwrap()),
    );
    let log = std::fs::read_to_string(p.path("standin.log")).unwrap();
    assert!(
        log.contains("az [keyvault] [secret] [show] [--vault-name] [vault1] [--name] [claude-login] [--query] [value] [-o] [tsv]"),
        "{log}"
    );
    let files: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("file-mode "))
        .collect();
    assert_eq!(files.len(), 2, "one create, one write-back: {log}");
    for f in files {
        let (modes, path) = f.split_once(" path ").unwrap();
        assert_eq!(modes, "600 dir-mode 700", "{log}");
        assert!(
            !Path::new(path).exists() && !Path::new(path).parent().unwrap().exists(),
            "{path} outlived the call"
        );
    }
    assert_no_token("the argv of az", &log, &tokens);
    for (i, out) in outputs.iter().enumerate() {
        assert_no_token(&format!("claunch output {i}"), out, &tokens);
    }
}

/// Wraps at 76 characters, as `base64` does.
fn wrap(b64: &str) -> String {
    b64.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn env_holds_raw_or_base64_json_and_cannot_be_written_back() {
    let p = Project::new("env");
    let (host, mut tokens) = login_in("h", 8);
    p.write_credentials(&host);
    let from = p.path("creds/.credentials.json");

    // `export --to env` prints the base64 and nothing else on stdout.
    let out = claunch(&p)
        .args(["creds", "export", "--to", "env", "--from"])
        .arg(&from)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let b64 = stdout.strip_suffix('\n').unwrap();
    assert!(
        b64.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
        "stdout is the base64 alone"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("keep it out of logs"), "{stderr}");
    assert_no_token("the stderr of export --to env", &stderr, &tokens);

    // Wrapped base64 (as `base64` prints it) is delivered as the JSON it encodes.
    p.write_config(&fleet_yaml("  env: CLAUDE_CREDENTIALS\n"));
    let mut outputs = vec![ok(claunch(&p)
        .env("CLAUDE_CREDENTIALS", wrap(b64))
        .arg("up"))];
    assert_eq!(file_in(&p, &leader(&p)), json(&host));

    // Raw JSON works too.
    let status = claunch(&p)
        .env("CLAUDE_CREDENTIALS", format!("\n {host}\n"))
        .args(["creds", "status"])
        .output()
        .unwrap();
    let status = text(&status);
    assert!(
        status
            .lines()
            .any(|l| l.contains("source (env CLAUDE_CREDENTIALS)") && l.contains("refreshable")),
        "{status}"
    );
    outputs.push(status);

    // A refresh cannot go back into a variable: said so, with the way out.
    let (newer, more) = login_in("n", 10);
    tokens.extend(more);
    write_in(&p, &leader(&p), &newer);
    let out = ok(claunch(&p)
        .env("CLAUDE_CREDENTIALS", b64)
        .args(["creds", "sync"]));
    assert!(
        out.contains("cannot write the refreshed login back to an environment variable"),
        "{out}"
    );
    assert!(out.contains("writable source"), "{out}");
    outputs.push(out);
    for (i, out) in outputs.iter().enumerate() {
        assert_no_token(&format!("claunch output {i}"), out, &tokens);
    }
}

/// `["sh", "-c", SCRIPT]` for claunch.yaml, where `$$` stands for `$`.
fn sh_argv(script: &str) -> String {
    serde_json::to_string(&["sh", "-c", &script.replace('$', "$$")]).unwrap()
}

#[test]
fn command_reads_and_write_command_writes_back_on_stdin_with_a_scrubbed_env() {
    let p = Project::new("command");
    let dir = p.dir.path().display().to_string();
    let (host, mut tokens) = login_in("h", 8);
    std::fs::write(p.path("store.json"), &host).unwrap();
    let read = sh_argv(&format!(
        "env > {dir}/env.txt; echo \"argv: $0 $*\" >> {dir}/argv.txt; cat {dir}/store.json"
    ));
    let write = sh_argv(&format!(
        "cat > {dir}/store.json.new && mv {dir}/store.json.new {dir}/store.json && echo written >> {dir}/writes.log"
    ));
    let config = |read: &str, write: Option<&str>| {
        let write = write
            .map(|w| format!("  write_command: {w}\n"))
            .unwrap_or_default();
        p.write_config(&fleet_yaml(&format!("  command: {read}\n{write}")));
    };
    config(&read, Some(&write));
    let api_key = "sk-ant-api03-SCRUBMExxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".to_string();
    let oauth = "sk-ant-oat01-SCRUBMExxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".to_string();
    let cmd = || {
        let mut c = claunch(&p);
        c.env("ANTHROPIC_API_KEY", &api_key)
            .env("CLAUDE_CODE_OAUTH_TOKEN", &oauth);
        c
    };
    let mut outputs = vec![ok(cmd().arg("up"))];
    assert_eq!(file_in(&p, &leader(&p)), json(&host));
    let env = std::fs::read_to_string(p.path("env.txt")).unwrap();
    assert!(!env.contains("ANTHROPIC_API_KEY") && !env.contains("CLAUDE_CODE_OAUTH_TOKEN"));
    assert!(
        !env.contains("SCRUBME"),
        "a secret variable reached the command"
    );
    let stored = || json(&std::fs::read_to_string(p.path("store.json")).unwrap());
    let writes = || {
        std::fs::read_to_string(p.path("writes.log"))
            .unwrap_or_default()
            .lines()
            .count()
    };

    // A refresh goes back through write_command, on stdin.
    let (newer, more) = login_in("n", 10);
    tokens.extend(more);
    write_in(&p, &leader(&p), &newer);
    let out = ok(cmd().args(["creds", "sync"]));
    assert!(
        out.contains("written back to command sh (write-back: sh)"),
        "{out}"
    );
    outputs.push(out);
    assert_eq!(stored(), json(&newer));
    assert_eq!(writes(), 1);

    // The source changed between the fetch and the write-back (another host synced a
    // newer login meanwhile): write_command is not run.
    let (newest, more) = login_in("x", 12);
    tokens.extend(more);
    std::fs::write(p.path("newest.json"), &newest).unwrap();
    let racing = sh_argv(&format!(
        "n=$(cat {dir}/count 2>/dev/null || echo 0); echo $((n + 1)) > {dir}/count; if [ \"$n\" -ge 1 ]; then cat {dir}/newest.json; else cat {dir}/store.json; fi"
    ));
    config(&racing, Some(&write));
    let (between, more) = login_in("b", 11);
    tokens.extend(more);
    write_in(&p, &leader(&p), &between);
    let out = ok(cmd().args(["creds", "sync"]));
    assert!(out.contains("already holds a newer login"), "{out}");
    outputs.push(out);
    assert_eq!(writes(), 1, "write_command ran over a newer login");
    assert_eq!(stored(), json(&newer));

    // Without write_command the refresh cannot go back: said so.
    config(&read, None);
    let (later, more) = login_in("l", 13);
    tokens.extend(more);
    write_in(&p, &leader(&p), &later);
    let out = ok(cmd().args(["creds", "sync"]));
    assert!(out.contains("no `write_command`"), "{out}");
    outputs.push(out);
    assert_eq!(writes(), 1);

    let argv = std::fs::read_to_string(p.path("argv.txt")).unwrap();
    assert_no_token("the command's argv", &argv, &tokens);
    tokens.extend([api_key, oauth]);
    for (i, out) in outputs.iter().enumerate() {
        assert_no_token(&format!("claunch output {i}"), out, &tokens);
    }
}

/// `claunch up` with this `credentials:` section: fails at the fetch, before any container.
fn up_fails(p: &Project, credentials: &str, prepare: &dyn Fn(&mut assert_cmd::Command)) -> String {
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n{credentials}agents:\n  agent:\n    image: busybox\n"
    ));
    let mut cmd = claunch(p);
    prepare(&mut cmd);
    let out = fails(cmd.arg("up"));
    assert!(p.containers().is_empty());
    out
}

fn assert_has(out: &str, parts: &[&str]) {
    for part in parts {
        assert!(out.contains(part), "no `{part}` in:\n{out}");
    }
}

#[test]
fn aws_errors_name_the_source_and_the_fix() {
    let moto = Moto::start();
    let p = Project::new("awserr");
    let with_moto = |c: &mut assert_cmd::Command| {
        c.envs(moto.env());
    };

    let out = up_fails(&p, "  aws_secret:\n    id: nope\n", &with_moto);
    assert_has(
        &out,
        &[
            "aws_secret nope: no secret named nope (ResourceNotFoundException)",
            "hint: create it with `claunch creds export --to aws_secret --id nope`",
        ],
    );

    let value = "sk-ant-oat01-NOTJSONxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    let made = moto.aws(
        &[
            "secretsmanager",
            "create-secret",
            "--name",
            "garbage",
            "--secret-string",
            "file:///dev/stdin",
        ],
        Some(value),
    );
    assert!(made.status.success(), "{}", text(&made));
    let out = up_fails(&p, "  aws_secret:\n    id: garbage\n", &with_moto);
    assert_has(
        &out,
        &[
            "aws_secret garbage: the secret is not JSON",
            "claude login",
            "claunch creds export --to aws_secret --id garbage",
        ],
    );
    assert!(!out.contains("NOTJSON"), "the value was quoted: {out}");

    // No credentials anywhere (and no instance metadata to ask).
    let out = up_fails(&p, "  aws_secret:\n    id: nope\n", &|c| {
        c.envs(moto.env())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("HOME", "/nonexistent-home");
    });
    assert_has(
        &out,
        &[
            "aws_secret nope: aws: Unable to locate credentials",
            "hint: run `aws configure` or set AWS_PROFILE",
        ],
    );

    let out = up_fails(
        &p,
        "  aws_secret:\n    id: nope\n    profile: ghost\n",
        &with_moto,
    );
    assert_has(
        &out,
        &[
            "The config profile (ghost) could not be found",
            "`profile:`",
        ],
    );

    // `creds status` shows the same, once, on the source's line.
    p.write_config(
        "project: {project}\ncredentials:\n  aws_secret:\n    id: nope\nagents:\n  agent:\n    image: busybox\n",
    );
    let mut status = claunch(&p);
    status.envs(moto.env()).args(["creds", "status"]);
    let out = text(&status.output().unwrap());
    assert!(
        out.contains("CRITICAL source (aws_secret nope): no secret named nope (ResourceNotFoundException)\n  hint: create it with"),
        "{out}"
    );
}

#[test]
fn gcloud_and_az_errors_name_the_source_and_the_fix() {
    let p = Project::new("clouderr");
    std::fs::create_dir_all(p.path("store")).unwrap();
    let standins = |c: &mut assert_cmd::Command| with_standins(&p, c);
    let gcp = "  gcp_secret:\n    name: claude-login\n    project: p1\n";
    let az = "  azure_secret:\n    vault: vault1\n    name: claude-login\n";

    let out = up_fails(&p, gcp, &standins);
    assert_has(
        &out,
        &[
            "gcp_secret claude-login (project p1): no secret named claude-login, or it has no versions (NOT_FOUND)",
            "hint: create it with `claunch creds export --to gcp_secret --name claude-login --project p1`",
        ],
    );
    let out = up_fails(&p, "  gcp_secret:\n    name: claude-login\n", &standins);
    assert_has(
        &out,
        &["no project is set", "add `project:` to `gcp_secret`"],
    );

    let out = up_fails(&p, az, &standins);
    assert_has(
        &out,
        &[
            "azure_secret claude-login (vault vault1): no secret named claude-login in vault vault1 (SecretNotFound)",
            "hint: create it with `claunch creds export --to azure_secret --vault vault1 --name claude-login`",
        ],
    );
    let out = up_fails(
        &p,
        "  azure_secret:\n    vault: missing-vault\n    name: claude-login\n",
        &standins,
    );
    assert_has(
        &out,
        &["the vault missing-vault cannot be reached", "`vault:`"],
    );

    std::fs::write(
        p.path("store/gcp-p1-claude-login"),
        "{\"claudeAiOauth\": 1}",
    )
    .unwrap();
    let out = up_fails(&p, gcp, &standins);
    assert_has(
        &out,
        &[
            "the secret is not a Claude Code credentials file",
            "claude login",
        ],
    );

    std::fs::write(p.path("store/gcloud-logged-out"), "").unwrap();
    std::fs::write(p.path("store/az-logged-out"), "").unwrap();
    let out = up_fails(&p, gcp, &standins);
    assert_has(
        &out,
        &[
            "gcp_secret claude-login (project p1): gcloud: You do not currently have an active account selected.",
            "hint: run `gcloud auth login`",
        ],
    );
    let out = up_fails(&p, az, &standins);
    assert_has(
        &out,
        &[
            "azure_secret claude-login (vault vault1): az: Please run 'az login' to setup account.",
            "hint: run `az login`",
        ],
    );
    // Export meets the same errors.
    p.login();
    let mut export = claunch(&p);
    with_standins(&p, &mut export);
    let out = fails(
        export
            .args([
                "creds",
                "export",
                "--to",
                "gcp_secret",
                "--name",
                "x",
                "--from",
            ])
            .arg(p.path("creds/.credentials.json")),
    );
    assert_has(
        &out,
        &[
            "gcp_secret x: gcloud: You do not currently",
            "gcloud auth login",
        ],
    );
}

#[test]
fn a_missing_cli_says_how_to_install_it() {
    let p = Project::new("nocli");
    let empty = tempfile::tempdir().unwrap();
    let no_path = |c: &mut assert_cmd::Command| {
        c.env("PATH", empty.path());
    };
    for (credentials, expected) in [
        (
            "  aws_secret:\n    id: x\n",
            "aws_secret x: the aws CLI is not installed (no `aws` on PATH)\n  hint: install it (`pip install awscli`",
        ),
        (
            "  gcp_secret:\n    name: x\n",
            "gcp_secret x: the gcloud CLI is not installed (no `gcloud` on PATH)\n  hint: install the Google Cloud CLI",
        ),
        (
            "  azure_secret:\n    vault: v\n    name: x\n",
            "azure_secret x (vault v): the az CLI is not installed (no `az` on PATH)\n  hint: install the Azure CLI (`pip install azure-cli`)",
        ),
        (
            "  command: [\"op-not-installed\", \"read\"]\n",
            "command op-not-installed: `op-not-installed` was not found",
        ),
    ] {
        let out = up_fails(&p, credentials, &no_path);
        assert_has(&out, &[expected]);
    }
}

#[test]
fn env_errors_never_quote_the_value() {
    let p = Project::new("enverr");
    let env = "  env: CLAUDE_CREDENTIALS\n";
    let out = up_fails(&p, env, &|_| {});
    assert_has(
        &out,
        &[
            "env CLAUDE_CREDENTIALS: CLAUDE_CREDENTIALS is not set",
            "claunch creds export --to env",
        ],
    );
    let secretish = "sk-ant-oat01-NOTB64xxxxxxxxxxxxxxxxxxxxxxxxx";
    let out = up_fails(&p, env, &|c| {
        c.env("CLAUDE_CREDENTIALS", secretish);
    });
    assert_has(
        &out,
        &["CLAUDE_CREDENTIALS is neither credentials JSON nor base64 (character 3 is not a base64 character)"],
    );
    assert!(!out.contains("NOTB64"), "{out}");

    let not_creds = "{\"token\": \"sk-ant-oat01-SHAPExxxxxxxxxxxxxxxxxxxxxxxxxx\"}";
    let encoded = claunch::credentials::sources::base64::encode(not_creds.as_bytes());
    let out = up_fails(&p, env, &|c| {
        c.env(
            "CLAUDE_CREDENTIALS",
            std::str::from_utf8(encoded.expose()).unwrap(),
        );
    });
    assert_has(
        &out,
        &["CLAUDE_CREDENTIALS, decoded from base64, is not a Claude Code credentials file: no `claudeAiOauth` object"],
    );
    assert!(!out.contains("SHAPE"), "{out}");

    let blanked = r#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0}}"#;
    let out = up_fails(&p, env, &|c| {
        c.env("CLAUDE_CREDENTIALS", blanked);
    });
    assert_has(
        &out,
        &["CLAUDE_CREDENTIALS holds JSON that holds a login that was blanked"],
    );
}

fn pid_alive(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie (state Z) is dead already.
    !stat.is_empty() && !stat.contains(") Z ")
}

#[test]
fn command_errors_timeouts_and_bounds() {
    let p = Project::new("cmderr");
    let dir = p.dir.path().display().to_string();
    let command = |script: &str| format!("  command: {}\n", sh_argv(script));

    let out = up_fails(
        &p,
        &command("echo 'auth failed for sk-ant-oat01-LEAKLEAKLEAKxxxxxxxxxxxx' >&2; exit 3"),
        &|_| {},
    );
    assert_has(
        &out,
        &["command sh: `sh` exited with 3: auth failed for sk-ant-<redacted>"],
    );
    assert!(!out.contains("LEAKLEAK"), "{out}");

    let out = up_fails(&p, "  command: [\"echo\", \"hello\"]\n", &|_| {});
    assert_has(&out, &["command echo: what `echo` printed is not JSON"]);

    let out = up_fails(&p, &command("head -c 2000000 /dev/zero"), &|_| {});
    assert_has(&out, &["`sh` printed more than 1048576 bytes"]);

    let started = Instant::now();
    let out = up_fails(
        &p,
        &format!(
            "{}  timeout: 1s\n",
            command(&format!("echo $$ > {dir}/pid; exec sleep 30"))
        ),
        &|_| {},
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_has(
        &out,
        &[
            "command sh: `sh` did not finish within 1s; it was stopped",
            "credentials.timeout",
        ],
    );
    let pid = std::fs::read_to_string(PathBuf::from(&dir).join("pid")).unwrap();
    let pid = pid.trim();
    assert!(pid.parse::<u32>().is_ok(), "{pid}");
    assert!(!pid_alive(pid), "the timed-out command still runs");
}
