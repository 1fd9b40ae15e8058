//! Rotation-safe refresh with the real Claude Code CLI: its refresh goes to a local HTTPS
//! stand-in of the OAuth token endpoint (`examples/oauth_standin.rs`) whose refresh tokens
//! are single-use, as the real one's are. A fleet started from an expired login refreshes
//! exactly once, through its leader; `creds sync --watch` keeps it alive across more
//! expiries; nobody is left holding a dead refresh token.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use claunch::fleet::label;
use serde_json::{json, Value};

use crate::support::moto::Moto;
use crate::support::real::{self, agent_image, StandIn};
use crate::support::{self, engine, fake_token, now_ms, rt, Project};

const HOUR: i64 = 3_600_000;
const CA_IN_CONTAINER: &str = "/etc/claunch-test-ca.pem";

fn example_bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    let bin = target.join("debug/examples").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --examples` first",
        bin.display()
    );
    bin
}

/// The token endpoint stand-in, bound to the host's address on the project's network.
struct Oauth {
    child: Child,
    dir: tempfile::TempDir,
}

impl Oauth {
    fn start(gateway: &str, valid_refresh: &str, access_ttl_secs: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("state.json"),
            json!({"valid_refresh_tokens": [valid_refresh]}).to_string(),
        )
        .unwrap();
        let mut child = Command::new(example_bin("oauth_standin"))
            .arg("--listen")
            .arg(format!("{gateway}:443"))
            .arg("--ca-out")
            .arg(dir.path().join("ca.pem"))
            .arg("--state")
            .arg(dir.path().join("state.json"))
            .arg("--record")
            .arg(dir.path().join("oauth.jsonl"))
            .arg("--access-ttl")
            .arg(access_ttl_secs.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting oauth_standin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening on"),
            "oauth_standin said {line:?}"
        );
        Self { child, dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("state.json")).unwrap())
            .unwrap()
    }

    fn records(&self) -> Vec<Value> {
        real::json_lines(&self.dir.path().join("oauth.jsonl"))
    }

    fn outcomes(&self, outcome: &str) -> usize {
        self.records()
            .iter()
            .filter(|r| r["outcome"] == outcome)
            .count()
    }

    /// The newest token pair the endpoint issued.
    fn newest(&self) -> (String, String) {
        let state = self.state();
        let last = state["issued"].as_array().unwrap().last().unwrap().clone();
        (
            last["access_token"].as_str().unwrap().to_string(),
            last["refresh_token"].as_str().unwrap().to_string(),
        )
    }
}

impl Drop for Oauth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fleet of `replicas` agents (one leader, the rest followers) of the real CLI, reaching
/// the Messages API stand-in and, for refreshes, the token endpoint stand-in.
struct Fleet {
    p: Project,
    api: StandIn,
    oauth: Oauth,
    old_access: String,
}

impl Fleet {
    fn new(test: &str, replicas: u32, expires_at_ms: i64, access_ttl_secs: u64) -> Self {
        let p = Project::new(test);
        let network = format!("{}-net", p.name);
        let engine = engine();
        let labels = HashMap::from([
            (label::PROJECT.to_string(), p.name.clone()),
            (label::MANAGED.to_string(), "true".to_string()),
        ]);
        rt().block_on(engine.create_network(&network, labels))
            .unwrap();
        let gateway = support::docker(&[
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            &network,
        ])
        .trim()
        .to_string();
        assert!(!gateway.is_empty(), "the network has a gateway");
        let (access, refresh) = (fake_token("oat"), fake_token("ort"));
        p.write_credentials(&support::login_json(&access, &refresh, expires_at_ms));
        let oauth = Oauth::start(&gateway, &refresh, access_ttl_secs);
        // The API stand-in refuses the login's first access token: a pass proves the
        // refreshed one was used.
        let api = StandIn::start(&[&access]);
        let url = format!("http://host.docker.internal:{}", api.port);
        p.write_config(&format!(
            "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {image}\n    replicas: {replicas}\n    user: agent\n    network: {network}\n    extra_hosts: [\"host.docker.internal:host-gateway\", \"platform.claude.com:{gateway}\"]\n    env:\n      ANTHROPIC_BASE_URL: {url}\n      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: \"1\"\n      NODE_EXTRA_CA_CERTS: {CA_IN_CONTAINER}\n      HTTPS_PROXY: {url}\n      NO_PROXY: host.docker.internal,platform.claude.com\n    files:\n      - {{source: {ca}, target: {CA_IN_CONTAINER}, mode: \"0644\"}}\n",
            image = agent_image(),
            ca = oauth.ca().display(),
        ));
        Self {
            p,
            api,
            oauth,
            old_access: access,
        }
    }

    fn host(&self) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.p.path("creds/.credentials.json")).unwrap(),
        )
        .unwrap()
    }

    fn file_in(&self, n: u32) -> Value {
        let out = self.p.sh(
            &format!("{}-agent-{n}", self.p.name),
            "cat /home/agent/.claude/.credentials.json",
        );
        serde_json::from_str(&out)
            .unwrap_or_else(|_| panic!("agent-{n}'s file is not JSON: {out:?}"))
    }

    /// The newest family is everywhere it should be, and only there.
    fn assert_converged(&self, replicas: u32) {
        let (access, refresh) = self.oauth.newest();
        let host = self.host();
        assert_eq!(
            host["claudeAiOauth"]["accessToken"],
            access.as_str(),
            "the host holds the newest login"
        );
        assert_eq!(host["claudeAiOauth"]["refreshToken"], refresh.as_str());
        let leader = self.file_in(1);
        assert_eq!(
            leader["claudeAiOauth"]["refreshToken"],
            refresh.as_str(),
            "the leader holds the live refresh token"
        );
        for n in 2..=replicas {
            let f = self.file_in(n);
            assert_eq!(
                f["claudeAiOauth"]["accessToken"],
                access.as_str(),
                "agent-{n} has the newest access token"
            );
            assert!(
                f["claudeAiOauth"].get("refreshToken").is_none(),
                "agent-{n} holds no refresh token"
            );
        }
        let valid = self.oauth.state()["valid_refresh_tokens"].clone();
        assert_eq!(
            valid,
            json!([refresh]),
            "the only live refresh token is the one the host and leader hold"
        );
    }
}

#[test]
fn a_fleet_started_from_an_expired_login_refreshes_once_through_its_leader() {
    let f = Fleet::new("refresh-once", 3, now_ms() - HOUR, 8 * 3600);
    let out = f.p.claunch().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "up failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("starting the leader first"), "{stdout}");
    assert!(stdout.contains("written back"), "{stdout}");
    assert_eq!(
        f.oauth.outcomes("issued"),
        1,
        "exactly one refresh: {:?}",
        f.oauth.records()
    );
    assert_eq!(
        f.oauth.outcomes("invalid_grant"),
        0,
        "no holder used a dead refresh token"
    );
    f.assert_converged(3);
    // Every container answers with the refreshed token; the old one is refused by the API.
    let exec =
        f.p.claunch()
            .args(["exec", "--all", "Say hello"])
            .output()
            .unwrap();
    assert!(
        exec.status.success(),
        "{}",
        String::from_utf8_lossy(&exec.stderr)
    );
    let (access, _) = f.oauth.newest();
    let bearers: Vec<String> = f
        .api
        .messages()
        .iter()
        .filter_map(|m| m["headers"]["authorization"].as_str().map(str::to_string))
        .collect();
    assert!(
        bearers.len() >= 6,
        "3 smoke tests and 3 execs reached the API: {bearers:?}"
    );
    assert!(bearers
        .iter()
        .all(|b| *b == format!("Bearer {access}") || *b == format!("Bearer {}", f.old_access)));
    assert!(
        !stdout.contains(&access) && !stderr.contains(&access),
        "no token in claunch's output"
    );
}

#[test]
fn creds_sync_watch_keeps_the_fleet_alive_across_more_expiries() {
    // A login inside claude's own 5-minute refresh window, and endpoint tokens of 400 s
    // that the watch refreshes 390 s ahead: one refresh at `up`, then one every ~10 s.
    let f = Fleet::new("refresh-watch", 3, now_ms() + 200_000, 400);
    let out = f.p.claunch().arg("up").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // With tokens this short-lived, `up` may make the leader refresh once more before it
    // gives followers the access token.
    let after_up = f.oauth.outcomes("issued");
    assert!(
        (1..=2).contains(&after_up),
        "the leader refreshed during up: {after_up}"
    );
    let bin = assert_cmd::cargo::cargo_bin("claunch");
    let mut watch = Command::new(bin)
        .current_dir(f.p.dir.path())
        .args([
            "creds",
            "sync",
            "--watch",
            "--ahead",
            "390s",
            "--interval",
            "2s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while f.oauth.outcomes("issued") < after_up + 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    // Let the last refresh spread (the next pass is at most 5 s away), then stop the
    // watch as a user would.
    std::thread::sleep(Duration::from_secs(7));
    Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .unwrap();
    let status = watch.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut watch.stdout.take().unwrap(), &mut log).unwrap();
    assert!(status.success(), "creds sync --watch: {status}\n{log}");
    assert!(
        f.oauth.outcomes("issued") >= after_up + 2,
        "two more expiries were refreshed: {log}"
    );
    assert_eq!(
        f.oauth.outcomes("invalid_grant"),
        0,
        "no dead refresh token used: {log}"
    );
    f.assert_converged(3);
    let exec =
        f.p.claunch()
            .args(["exec", "--all", "Say hello"])
            .output()
            .unwrap();
    assert!(
        exec.status.success(),
        "{}",
        String::from_utf8_lossy(&exec.stdout)
    );
}

#[test]
fn a_login_kept_in_aws_secrets_manager_gets_the_leaders_refresh_back() {
    // The real AWS CLI against a local moto server; the real claude CLI refreshes.
    let moto = Moto::start();
    let f = Fleet::new("refresh-aws", 2, now_ms() - HOUR, 8 * 3600);
    let id = format!("{}-login", f.p.name);
    let creds = f.p.path("creds/.credentials.json");
    f.p.claunch()
        .envs(moto.env())
        .args([
            "creds",
            "export",
            "--to",
            "aws_secret",
            "--id",
            &id,
            "--from",
        ])
        .arg(&creds)
        .assert()
        .success();
    let host_before = std::fs::read_to_string(&creds).unwrap();
    let config = std::fs::read_to_string(f.p.path("claunch.yaml")).unwrap();
    let config = config.replace(
        &format!("  file: {}\n", creds.display()),
        &format!("  aws_secret: {{id: {id}}}\n"),
    );
    assert!(config.contains("aws_secret"), "{config}");
    std::fs::write(f.p.path("claunch.yaml"), config).unwrap();

    let out = f.p.claunch().envs(moto.env()).arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("written back to aws_secret"), "{stdout}");
    assert_eq!(f.oauth.outcomes("issued"), 1, "exactly one refresh");
    assert_eq!(f.oauth.outcomes("invalid_grant"), 0);
    let (access, refresh) = f.oauth.newest();
    let stored = moto.secret(&id);
    assert_eq!(
        stored["claudeAiOauth"]["accessToken"],
        access.as_str(),
        "the store holds the newest login"
    );
    assert_eq!(stored["claudeAiOauth"]["refreshToken"], refresh.as_str());
    assert_eq!(
        std::fs::read_to_string(&creds).unwrap(),
        host_before,
        "the host file was not the source"
    );
    assert_eq!(
        f.file_in(1)["claudeAiOauth"]["refreshToken"],
        refresh.as_str()
    );
    assert_eq!(
        f.file_in(2)["claudeAiOauth"]["accessToken"],
        access.as_str()
    );
    // The next fetch (a push from the store) finds everything current.
    f.p.claunch()
        .envs(moto.env())
        .args(["creds", "push"])
        .assert()
        .success();
    assert_eq!(f.oauth.outcomes("invalid_grant"), 0);
}

#[test]
fn claunch_run_keeps_the_login_alive_as_creds_sync_watch_does() {
    // Endpoint tokens of 400 s: always within the 15 minutes ahead that `run` keeps, so its
    // keep-alive makes the leader refresh every few seconds while tasks run on every
    // container, the leader's included.
    let f = Fleet::new("refresh-run", 3, now_ms() + 200_000, 400);
    let out = f.p.claunch().arg("up").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after_up = f.oauth.outcomes("issued");
    let tasks: Vec<String> = (1..=18)
        .map(|i| {
            json!({"id": format!("t{i}"), "prompt": format!("SLOW:1 ECHO: answer {i}")}).to_string()
        })
        .collect();
    std::fs::write(f.p.path("tasks.jsonl"), tasks.join("\n") + "\n").unwrap();
    let run = f.p.claunch().args(["run", "tasks.jsonl"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let lines = crate::run::results(&f.p);
    eprintln!(
        "refreshes during the run: {}\n{stderr}",
        f.oauth.outcomes("issued") - after_up
    );
    assert_eq!(lines.len(), 18);
    assert!(
        lines.iter().all(|l| l["status"] == "ok"),
        "no task failed for the login: {lines:?}"
    );
    assert!(
        f.oauth.outcomes("issued") > after_up,
        "the login was refreshed during the run: {stderr}"
    );
    assert_eq!(
        f.oauth.outcomes("invalid_grant"),
        0,
        "no dead refresh token used: {stderr}"
    );
    // Let the last refresh spread, as a later sync would.
    f.p.claunch().args(["creds", "sync"]).assert().success();
    f.assert_converged(3);
}

#[test]
fn prometheus_counts_the_forced_refresh_of_creds_sync_watch_with_the_real_cli() {
    use crate::support::prometheus::{free_port, Prometheus};
    // A login 7 h from expiry, watched 8 h ahead: the watcher makes the leader refresh
    // once; the endpoint's new tokens live 10 h, so once is all.
    let f = Fleet::new("metrics-refresh", 2, now_ms() + 7 * HOUR, 36_000);
    // No smoke test: the API stand-in refuses the first access token, and a smoke test
    // would make the leader refresh before the watcher does.
    let out = f.p.claunch().args(["up", "--no-smoke"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(f.oauth.outcomes("issued"), 0, "no refresh at up");
    let port = free_port();
    let port_arg = port.to_string();
    let _watch = crate::metrics::Running::start(
        &f.p,
        &[
            "creds",
            "sync",
            "--watch",
            "--ahead",
            "8h",
            "--interval",
            "2s",
            "--metrics",
            &port_arg,
        ],
    );
    let prom = Prometheus::start(&[format!("127.0.0.1:{port}")]);
    let refreshes = r#"claunch_login_refreshes_total{login="default"}"#;
    prom.wait_for(refreshes, |v| (v - 1.0).abs() < 1e-9);
    let expires = f.host()["claudeAiOauth"]["expiresAt"].as_i64().unwrap();
    #[allow(clippy::cast_precision_loss)]
    let want = expires as f64 / 1000.0;
    prom.wait_for(
        r#"claunch_login_expiry_timestamp_seconds{login="default"}"#,
        |v| (v - want).abs() < 0.01,
    );
    assert!(
        expires > now_ms() + 9 * HOUR,
        "the refreshed login is in force"
    );
    assert_eq!(f.oauth.outcomes("issued"), 1, "exactly one refresh");
    assert_eq!(f.oauth.outcomes("invalid_grant"), 0);
    let failures = prom.query("claunch_login_refresh_failures_total");
    assert!(failures.is_empty(), "{failures:?}");
    f.assert_converged(2);
}
