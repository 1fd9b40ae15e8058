//! `--metrics ADDR`: a real Prometheus server scrapes `claunch creds sync --watch` and
//! `claunch run`, and the values read back through its query API match the fleet (the
//! login's expiry, a refresh adopted from the leader, the containers, tasks by status);
//! a busy port is an error naming the address before anything starts.

use std::process::{Child, Command, Stdio};

use crate::run::{fleet as run_fleet, write_tasks};
use crate::support::prometheus::{free_port, http_get, Prometheus};
use crate::support::{fake_token, image, login_json, now_ms, Image, Project};

const HOUR: i64 = 3_600_000;
const CREDS: &str = "/home/agent/.claude/.credentials.json";

/// A claunch process of `p` with `args`, killed when dropped.
pub struct Running(Child);

impl Running {
    pub fn start(p: &Project, args: &[&str]) -> Self {
        let child = Command::new(assert_cmd::cargo::cargo_bin("claunch"))
            .current_dir(p.dir.path())
            .env_remove("CLAUNCH_PROJECT")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Equal to `n`, as Prometheus's floats go.
fn is(n: f64) -> impl Fn(f64) -> bool {
    move |v| (v - n).abs() < 1e-9
}

/// `/metrics` of the claunch on `port` once its first sync pass is in.
pub fn scrape_after_a_sync(port: u16) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok((200, body)) = http_get(port, "/metrics") {
            if body.contains("\nclaunch_sync_last_success_timestamp_seconds ")
                && !body.contains("\nclaunch_sync_last_success_timestamp_seconds 0.0")
            {
                return body;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no sync pass in 60 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn prometheus_reads_the_logins_expiry_containers_and_a_refresh_from_creds_sync_watch() {
    let p = Project::new("metrics-sync");
    let (access, refresh) = p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    replicas: 2\n",
        image(Image::Named)
    ));
    p.claunch().arg("up").assert().success();
    let expires = p.credentials()["claudeAiOauth"]["expiresAt"]
        .as_i64()
        .unwrap();
    let port = free_port();
    let port_arg = port.to_string();
    let _watch = Running::start(
        &p,
        &[
            "creds",
            "sync",
            "--watch",
            "--interval",
            "1s",
            "--metrics",
            &port_arg,
        ],
    );
    let prom = Prometheus::start(&[format!("127.0.0.1:{port}")]);

    let expiry = r#"claunch_login_expiry_timestamp_seconds{login="default"}"#;
    #[allow(clippy::cast_precision_loss)]
    let want = expires as f64 / 1000.0;
    prom.wait_for(expiry, |v| (v - want).abs() < 0.01);
    prom.wait_for(
        r#"claunch_containers{agent="agent",login="default",state="running"}"#,
        is(2.0),
    );
    let refreshes = r#"claunch_login_refreshes_total{login="default"}"#;
    prom.wait_for(refreshes, is(0.0));
    #[allow(clippy::cast_precision_loss)]
    let now = (now_ms() / 1000) as f64;
    prom.wait_for("claunch_sync_last_success_timestamp_seconds", |v| {
        v > now - 60.0
    });

    // The leader's claude refreshed: the watcher adopts it, counts it, spreads it.
    let (new_access, new_refresh) = (fake_token("oat") + "NEW", fake_token("ort") + "NEW");
    let later = now_ms() + 8 * HOUR + 120_000;
    p.write_in(
        &format!("{}-agent-1", p.name),
        CREDS,
        "1000:1000",
        &login_json(&new_access, &new_refresh, later),
    );
    prom.wait_for(refreshes, is(1.0));
    #[allow(clippy::cast_precision_loss)]
    let want = later as f64 / 1000.0;
    prom.wait_for(expiry, |v| (v - want).abs() < 0.01);
    assert_eq!(
        p.credentials()["claudeAiOauth"]["refreshToken"],
        new_refresh.as_str(),
        "written back to the source"
    );
    let failures = prom.query("claunch_login_refresh_failures_total");
    assert!(failures.is_empty(), "{failures:?}");

    let (_, text) = http_get(port, "/metrics").unwrap();
    for token in [&access, &refresh, &new_access, &new_refresh] {
        assert!(!text.contains(&token[..30]), "a token in /metrics");
    }
    assert!(!text.contains("sk-ant"), "{text}");
}

#[test]
fn prometheus_reads_tasks_by_status_cost_and_tokens_from_claunch_run() {
    let p = run_fleet("metrics-run", &[("a", 1)]);
    let mut lines: Vec<String> = (1..=3)
        .map(|i| format!(r#"{{"id": "ok{i}", "prompt": "STANDIN:sleep=0"}}"#))
        .collect();
    lines.push(r#"{"id": "fails", "prompt": "STANDIN:exit=3"}"#.into());
    // The last one lasts, so Prometheus scrapes the counts of the others before the end.
    lines.push(r#"{"id": "last", "prompt": "STANDIN:sleep=30"}"#.into());
    write_tasks(&p, &lines);
    let port = free_port();
    let port_arg = port.to_string();
    let _run = Running::start(&p, &["run", "tasks.jsonl", "--metrics", &port_arg]);
    let prom = Prometheus::start(&[format!("127.0.0.1:{port}")]);

    prom.wait_for(
        r#"claunch_tasks_total{status="ok",login="default"}"#,
        is(3.0),
    );
    prom.wait_for(
        r#"claunch_tasks_total{status="failed",login="default"}"#,
        is(1.0),
    );
    // The stand-in reports 0.0015 USD and 10 input, 5 output tokens per answer.
    prom.wait_for(r#"claunch_task_cost_usd_total{login="default"}"#, |v| {
        (v - 0.0045).abs() < 1e-9
    });
    prom.wait_for(
        r#"claunch_task_tokens_total{login="default",kind="input"}"#,
        is(30.0),
    );
    prom.wait_for(
        r#"claunch_task_tokens_total{login="default",kind="output"}"#,
        is(15.0),
    );
    prom.wait_for(
        r#"claunch_containers{agent="a",login="default",state="running"}"#,
        is(1.0),
    );
}

#[test]
fn a_busy_metrics_port_is_an_error_naming_the_address_before_anything_starts() {
    let p = Project::new("metrics-busy");
    p.login();
    // No claunch.yaml at all: the port is checked first.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let port = addr.port().to_string();
    for args in [
        vec!["creds", "sync", "--watch", "--metrics", &port],
        vec!["run", "tasks.jsonl", "--metrics", &port],
    ] {
        let out = p.claunch().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "--metrics 127.0.0.1:{port}: cannot listen there: address already in use"
            )),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("hint: another process listens"), "{stderr}");
    }
    let out = p
        .claunch()
        .args(["creds", "sync", "--watch", "--metrics", "nine"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--metrics nine: not a port or an address:port"),
        "{stderr}"
    );
}

/// The alerting rules block of README.md.
fn readme_rules() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (_, after) = readme
        .split_once("<!-- alert rules: tests/it/metrics.rs checks this block -->\n```yaml\n")
        .expect("README.md has the alert rules block");
    after.split_once("```").unwrap().0.to_string()
}

#[test]
fn the_readmes_alerting_rules_pass_promtool_and_fire_when_the_watcher_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, readme_rules()).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool: tests/run.sh installs Debian's prometheus");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SUCCESS: 4 rules found"), "{stdout}");

    // The login expires 20 minutes after the last scrape, and the watcher is gone after
    // it: the first rule fires; while the watcher syncs, it stays silent.
    let unit = dir.path().join("unit.yml");
    std::fs::write(
        &unit,
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'claunch_login_expiry_timestamp_seconds{login=\"default\"}'\n        values: '1800 1800 1800'\n      - series: 'claunch_sync_last_success_timestamp_seconds'\n        values: '0 60 120'\n    alert_rule_test:\n      - eval_time: 2m\n        alertname: ClaunchLoginExpiringWithNoRefresher\n        exp_alerts: []\n      - eval_time: 10m\n        alertname: ClaunchLoginExpiringWithNoRefresher\n        exp_alerts:\n          - exp_labels: {login: default, severity: critical}\n            exp_annotations:\n              summary: \"login default expires in under 30 minutes and no `claunch creds sync --watch` keeps it fresh\"\n",
    )
    .unwrap();
    let out = Command::new("promtool")
        .current_dir(dir.path())
        .args(["test", "rules", "unit.yml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_reads_a_usage_limit_pause_of_the_login_and_its_end() {
    let p = run_fleet("metrics-pause", &[("a", 1)]);
    let reset = now_ms() / 1000 + 12;
    write_tasks(
        &p,
        &[
            format!(r#"{{"id": "limited", "prompt": "STANDIN:limited-until={reset}"}}"#),
            r#"{"id": "last", "prompt": "STANDIN:sleep=30"}"#.into(),
        ],
    );
    let port = free_port();
    let port_arg = port.to_string();
    let _run = Running::start(&p, &["run", "tasks.jsonl", "--metrics", &port_arg]);
    let prom = Prometheus::start(&[format!("127.0.0.1:{port}")]);
    let paused = r#"claunch_login_paused_until_timestamp_seconds{login="default"}"#;
    #[allow(clippy::cast_precision_loss)]
    let reset = reset as f64;
    // Until the reset plus a little jitter.
    prom.wait_for(paused, |v| v >= reset && v <= reset + 2.0);
    // The probe after the reset passed: no longer paused, the task counted once.
    prom.wait_for(paused, is(0.0));
    prom.wait_for(
        r#"claunch_tasks_total{status="ok",login="default"}"#,
        is(1.0),
    );
}
