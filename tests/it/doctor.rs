//! `claunch doctor` against the real engine: a healthy fleet passes every check, and each
//! of the guide's troubles (and claunch's own: the rotation bug, root without
//! `IS_SANDBOX`) is found, named and given its fix.

use serde_json::Value;

use crate::support::{self, image, Image, Project};

fn yaml(image: &str, replicas: u32) -> String {
    format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {image}\n    replicas: {replicas}\n{}",
        reachable_api()
    )
}

/// What a healthy agent's claude can reach: a listener on this host (one per test
/// process), through the engine's `host-gateway`, named by `ANTHROPIC_BASE_URL` as a real
/// fleet's API stand-in would be. The agent's lines of claunch.yaml that say so.
fn reachable_api() -> String {
    format!(
        "    env:\n      ANTHROPIC_BASE_URL: {}\n{API_HOSTS}",
        api_url()
    )
}

/// The URL of that listener, as the agents reach it.
fn api_url() -> String {
    static API: std::sync::OnceLock<std::net::TcpListener> = std::sync::OnceLock::new();
    let port = API
        .get_or_init(|| std::net::TcpListener::bind("0.0.0.0:0").unwrap())
        .local_addr()
        .unwrap()
        .port();
    format!("http://api-standin:{port}")
}

const API_HOSTS: &str = "    extra_hosts: [\"api-standin:host-gateway\"]\n";

/// `claunch [global…] doctor --json [args…]`: the exit code and the parsed document.
fn doctor(p: &Project, global: &[&str], args: &[&str]) -> (i32, Value) {
    let out = p
        .claunch()
        .args(global)
        .args(["doctor", "--json"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON document ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), doc)
}

fn checks(doc: &Value) -> &Vec<Value> {
    doc["checks"].as_array().expect("a checks array")
}

/// The one check with this scope and name.
fn find<'a>(doc: &'a Value, scope: &str, check: &str) -> &'a Value {
    let found: Vec<&Value> = checks(doc)
        .iter()
        .filter(|c| c["scope"] == scope && c["check"] == check)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one `{scope}: {check}` check in {:#}",
        doc["checks"]
    );
    found[0]
}

fn failed(doc: &Value) -> Vec<String> {
    checks(doc)
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| {
            format!(
                "{}: {}",
                c["scope"].as_str().unwrap(),
                c["check"].as_str().unwrap()
            )
        })
        .collect()
}

fn up(p: &Project) {
    p.claunch().args(["up", "--no-smoke"]).assert().success();
}

#[test]
fn a_healthy_fleet_passes_every_check_and_text_matches_json() {
    let p = Project::new("dochealthy");
    let (access, refresh) = p.login();
    p.write_config(&format!(
        "{}  named:\n    image: {}\n{}",
        yaml(&image(Image::Root), 2),
        image(Image::Named),
        reachable_api()
    ));
    up(&p);
    let (leader, follower, named) = (
        format!("{}-agent-1", p.name),
        format!("{}-agent-2", p.name),
        format!("{}-named-1", p.name),
    );

    let (code, doc) = doctor(&p, &[], &["--smoke"]);
    let not_ok: Vec<&Value> = checks(&doc)
        .iter()
        .filter(|c| c["status"] != "ok")
        .collect();
    assert!(not_ok.is_empty(), "every check ok: {not_ok:#?}");
    assert_eq!((code, &doc["ok"]), (0, &Value::Bool(true)));
    let text = doc.to_string();
    assert!(
        !text.contains(&access) && !text.contains(&refresh),
        "no token printed"
    );

    let creds = p.path("creds/.credentials.json").display().to_string();
    assert_eq!(
        find(&doc, "host", "credentials file")["message"],
        format!("{creds} exists, 0600")
    );
    assert_eq!(
        find(&doc, "host", "refresh token holders")["message"],
        format!("the source and {leader} (leader) hold the same refresh token, as designed: only {leader} refreshes")
    );
    assert!(find(&doc, "engine", "engine")["message"]
        .as_str()
        .unwrap()
        .contains("(Docker 20.10"));
    assert_eq!(
        find(&doc, "engine", "containers")["message"],
        format!("3 running in project {} (3 in all)", p.name)
    );
    assert_eq!(
        find(&doc, &named, "credentials file")["message"],
        "/home/agent/.claude/.credentials.json exists, 1000:1000 0600"
    );
    assert_eq!(
        find(&doc, &named, "config dir")["message"],
        "/home/agent/.claude owned by 1000:1000, 0700: writable by uid 1000"
    );
    assert_eq!(
        find(&doc, &named, "user")["message"],
        "uid 1000:1000, HOME /home/agent, config dir /home/agent/.claude"
    );
    assert_eq!(
        find(&doc, &leader, "claude")["message"],
        "0.0.0-standin (Claude Code) runs"
    );
    assert_eq!(
        find(&doc, &leader, "refresh token")["message"],
        "the same as the source's, as designed"
    );
    assert!(find(&doc, &follower, "role")["message"]
        .as_str()
        .unwrap()
        .starts_with("follower: holds the access token only"));
    for c in [&leader, &follower, &named] {
        assert_eq!(find(&doc, c, "smoke")["status"], "ok");
    }

    // The text form says the same, one line per check.
    let out = p.claunch().args(["doctor", "--smoke"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let expected: Vec<String> = checks(&doc)
        .iter()
        .map(|c| {
            format!(
                "✔ {}: {} — {}",
                c["scope"].as_str().unwrap(),
                c["check"].as_str().unwrap(),
                c["message"].as_str().unwrap()
            )
        })
        .collect();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, expected);

    // A TARGET narrows the container checks to it.
    let (code, doc) = doctor(&p, &[], &["agent-2"]);
    assert_eq!(code, 0);
    let scopes: std::collections::BTreeSet<&str> = checks(&doc)
        .iter()
        .map(|c| c["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["engine", "host", follower.as_str()].into());
}

/// The fleet a new user had: every smoke test failed, nothing reaches the API. `doctor`
/// must not be all green then.
#[test]
fn doctor_fails_when_the_api_is_unreachable_and_the_last_smoke_test_failed() {
    let p = Project::new("docunreach");
    p.login();
    let config = |agent: &str| {
        format!(
            "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n{agent}",
            image(Image::Root)
        )
    };
    p.write_config(&config(
        "    env:\n      ANTHROPIC_BASE_URL: http://no-such-api.invalid:8080\n    smoke:\n      prompt: \"STANDIN:exit=1\"\n",
    ));
    p.claunch().arg("up").assert().code(1);
    let one = format!("{}-agent-1", p.name);
    let (code, doc) = doctor(&p, &[], &[]);
    assert_eq!(code, 1, "{doc:#}");
    let reach = find(&doc, &one, "api reachable");
    assert_eq!(reach["status"], "fail", "{reach:#}");
    assert_eq!(
        reach["message"],
        "no-such-api.invalid cannot be resolved from the container: claude will retry for minutes, then fail"
    );
    assert!(reach["fix"].as_str().unwrap().contains("extra_hosts"));
    let smoke = find(&doc, &one, "last smoke test");
    assert_eq!(smoke["status"], "fail", "{smoke:#}");
    assert_eq!(smoke["message"], "did not pass (failed)");

    // Something that resolves but where nothing listens: a TCP failure, named as such.
    p.write_config(&config(
        "    env:\n      ANTHROPIC_BASE_URL: http://127.0.0.1:9\n    smoke: false\n",
    ));
    p.claunch().arg("up").assert().success();
    let (_, doc) = doctor(&p, &[], &[]);
    let reach = find(&doc, &one, "api reachable");
    assert_eq!(
        reach["message"],
        "nothing answers at 127.0.0.1:9 (ANTHROPIC_BASE_URL) from the container: claude will retry for minutes, then fail"
    );
}

#[test]
fn a_host_file_others_can_read_warns_with_the_chmod_fix() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new("docmode");
    p.login();
    p.write_config(&yaml(&image(Image::Root), 1));
    let creds = p.path("creds/.credentials.json");
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, doc) = doctor(&p, &[], &[]);
    let c = find(&doc, "host", "credentials file");
    let shown = creds.display().to_string();
    assert_eq!(c["status"], "warn");
    assert_eq!(
        c["message"],
        format!("{shown} exists, 0644: other users can read your login")
    );
    assert_eq!(c["fix"], format!("chmod 600 {shown}"));
    // Warnings alone (this one, and no containers running) exit 0.
    assert_eq!(find(&doc, "engine", "containers")["status"], "warn");
    assert_eq!((code, failed(&doc)), (0, Vec::<String>::new()));
}

#[test]
fn an_image_without_claude_fails_claude_missing() {
    let p = Project::new("docnoclaude");
    p.login();
    p.write_config(&yaml(&image(Image::NoClaude), 1));
    up(&p);
    let (code, doc) = doctor(&p, &[], &[]);
    assert_eq!(code, 1);
    let c = find(&doc, &format!("{}-agent-1", p.name), "claude");
    assert_eq!(c["status"], "fail");
    let message = c["message"].as_str().unwrap();
    assert!(
        message.starts_with("missing: `claude --version` exited 12"),
        "{message}"
    );
    assert_eq!(
        c["fix"],
        "install Claude Code in the image, or build one with `claunch image build`"
    );
    assert_eq!(failed(&doc), [format!("{}-agent-1: claude", p.name)]);
}

#[test]
fn a_credentials_file_of_the_wrong_owner_or_none_fails() {
    let p = Project::new("docowner");
    p.login();
    p.write_config(&yaml(&image(Image::Named), 2));
    up(&p);
    let (one, two) = (format!("{}-agent-1", p.name), format!("{}-agent-2", p.name));
    p.sh(&one, "chown 0:0 /home/agent/.claude/.credentials.json");
    p.sh(&two, "rm /home/agent/.claude/.credentials.json");

    let (code, doc) = doctor(&p, &[], &[]);
    assert_eq!(code, 1);
    let c = find(&doc, &one, "credentials file");
    assert_eq!(
        (&c["status"], &c["message"], &c["fix"]),
        (
            &Value::from("fail"),
            &Value::from("owned by 0:0, expected 1000:1000"),
            &Value::from("claunch up --force-recreate")
        )
    );
    let c = find(&doc, &two, "credentials file");
    assert_eq!(c["status"], "fail");
    assert_eq!(
        c["message"],
        "/home/agent/.claude/.credentials.json not found: claude says \"Not logged in\" (\"Authentication required\")"
    );
    assert_eq!(c["fix"], format!("claunch creds push {two}"));
    let mut failures = failed(&doc);
    failures.sort();
    assert_eq!(
        failures,
        [
            format!("{one}: credentials file"),
            format!("{two}: credentials file")
        ]
    );

    let text = p.claunch().arg("doctor").assert().failure();
    let stdout = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(
        stdout.contains(&format!("✘ {one}: credentials file — owned by 0:0, expected 1000:1000 — fix: claunch up --force-recreate")),
        "{stdout}"
    );

    // The fix it gives for the missing file works.
    p.claunch().args(["creds", "push", &two]).assert().success();
    let (_, doc) = doctor(&p, &[], &[&two]);
    assert_eq!(find(&doc, &two, "credentials file")["status"], "ok");
}

#[test]
fn a_follower_holding_a_refresh_token_is_the_rotation_bug() {
    let p = Project::new("docrotation");
    let (access, refresh) = p.login();
    p.write_config(&yaml(&image(Image::Root), 2));
    up(&p);
    let (leader, follower) = (format!("{}-agent-1", p.name), format!("{}-agent-2", p.name));
    let full = support::login_json(&access, &refresh, support::now_ms() + 8 * 3_600_000);
    p.sh(
        &follower,
        &format!("printf '%s' '{full}' > /root/.claude/.credentials.json"),
    );

    let (code, doc) = doctor(&p, &[], &[]);
    assert_eq!(code, 1);
    let holders = find(&doc, "host", "refresh token holders");
    assert_eq!(holders["status"], "fail");
    assert_eq!(
        holders["message"],
        format!("2 containers hold a refresh token (the same one): {leader} (leader), {follower} (follower); refresh tokens rotate, so the first to refresh logs out the others (the rotation bug)")
    );
    assert_eq!(
        holders["fix"],
        "claunch creds push (followers get the access token alone)"
    );
    let role = find(&doc, &follower, "role");
    assert_eq!(role["status"], "fail");
    assert_eq!(
        role["message"],
        "follower holds a refresh token: when its claude refreshes, the leader and the source are logged out (the rotation bug)"
    );
    let mut failures = failed(&doc);
    failures.sort();
    assert_eq!(
        failures,
        [
            format!("{follower}: role"),
            "host: refresh token holders".to_string()
        ]
    );
    assert!(!doc.to_string().contains(&refresh), "no token printed");

    // The fix it gives works.
    p.claunch().args(["creds", "push"]).assert().success();
    let (code, doc) = doctor(&p, &[], &[]);
    assert_eq!((code, failed(&doc)), (0, Vec::<String>::new()));
}

#[test]
fn root_skipping_permissions_without_is_sandbox_fails() {
    let p = Project::new("docsandbox");
    p.login();
    let root = image(Image::Root);
    let command = r#"["/bin/sh", "-c", "trap 'exit 0' TERM INT; while true; do sleep 1 & wait $$!; done", "x", "--dangerously-skip-permissions"]"#;
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  bare:\n    image: {root}\n    command: {command}\n    env:\n      ANTHROPIC_BASE_URL: {api}\n{API_HOSTS}  sandboxed:\n    image: {root}\n    command: {command}\n    env:\n      IS_SANDBOX: \"1\"\n      ANTHROPIC_BASE_URL: {api}\n{API_HOSTS}",
        api = api_url()
    ));
    up(&p);
    let (code, doc) = doctor(&p, &[], &[]);
    assert_eq!(code, 1);
    let bare = find(&doc, &format!("{}-bare-1", p.name), "sandbox");
    assert_eq!(bare["status"], "fail");
    assert_eq!(
        bare["message"],
        "root runs claude with --dangerously-skip-permissions but without IS_SANDBOX=1: claude refuses to start"
    );
    assert!(bare["fix"].as_str().unwrap().contains("IS_SANDBOX"));
    assert_eq!(
        find(&doc, &format!("{}-sandboxed-1", p.name), "sandbox")["status"],
        "ok"
    );
    assert_eq!(failed(&doc), [format!("{}-bare-1: sandbox", p.name)]);
}

#[test]
fn a_whole_claude_dir_mounted_fails_as_the_guide_says() {
    let p = Project::new("docmount");
    p.login();
    std::fs::create_dir_all(p.path("home/.claude")).unwrap();
    p.write_config(&format!(
        "{}    volumes:\n      - ./home/.claude:/root/.claude\n",
        yaml(&image(Image::Root), 1)
    ));
    up(&p);
    let (code, doc) = doctor(&p, &[], &[]);
    assert_eq!(code, 1);
    let c = find(&doc, &format!("{}-agent-1", p.name), "mount");
    assert_eq!(c["status"], "fail");
    let message = c["message"].as_str().unwrap();
    assert!(
        message.ends_with("is mounted on /root/.claude: a whole ~/.claude, whose host paths and symlinks break in the container (\"OAuth token check\" but no output)"),
        "{message}"
    );
}

#[test]
fn an_unreachable_engine_fails_and_the_host_is_still_checked() {
    let p = Project::new("docnoengine");
    p.login();
    p.write_config(&yaml("unused", 1));
    let (code, doc) = doctor(&p, &["-H", "tcp://127.0.0.1:1"], &[]);
    assert_eq!(code, 1);
    let engine = find(&doc, "engine", "engine");
    assert_eq!(engine["status"], "fail");
    assert!(engine["message"]
        .as_str()
        .unwrap()
        .starts_with("cannot reach the Docker engine at tcp://127.0.0.1:1"));
    assert!(engine["fix"]
        .as_str()
        .unwrap()
        .starts_with("is dockerd running?"));
    for check in [
        "config",
        "credentials file",
        "credentials JSON",
        "scopes",
        "expiry",
    ] {
        assert_eq!(find(&doc, "host", check)["status"], "ok", "{check}");
    }
    assert_eq!(failed(&doc), ["engine: engine"]);
    assert_eq!(doc["ok"], false);
}

#[test]
fn without_a_config_the_default_file_and_the_engine_are_checked() {
    let p = Project::new("docnoconfig");
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".claude")).unwrap();
    let (code, doc) = {
        let out = p
            .claunch()
            .env("HOME", home.path())
            .env_remove("CLAUDE_CONFIG_DIR")
            .args(["doctor", "--json"])
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        )
    };
    assert_eq!(code, 1, "no login at all is a failure");
    let config = find(&doc, "host", "config");
    assert_eq!(config["status"], "warn");
    assert!(config["fix"].as_str().unwrap().contains("claunch init"));
    let file = find(&doc, "host", "credentials file");
    assert_eq!(
        (&file["status"], &file["message"]),
        (
            &Value::from("fail"),
            &Value::from("~/.claude/.credentials.json not found: there is no login to give the containers (\"Authentication required\")")
        )
    );
    assert_eq!(find(&doc, "engine", "engine")["status"], "ok");
    assert_eq!(failed(&doc), ["host: credentials file"]);
}
