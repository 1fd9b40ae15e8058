//! End to end with the real Claude Code CLI: `claunch image build` packs it, `claunch up`
//! smoke-tests a fleet of root and non-root agents against the local Messages API
//! stand-in, `claunch exec` streams its answers, and its own login failures are told
//! apart. Needs a Docker engine, busybox-static, the CLI (fetched once, see
//! `real::claude_bin`) and `cargo build --examples`; missing any of them fails.

use claunch::engine::archive::{self, Entry};
use claunch::secret::Secret;
use claunch::smoke::{self, Verdict};
use predicates::prelude::*;
use serde_json::Value;

use crate::support::real::{agent_image, claude_bin, config, StandIn};
use crate::support::{self, engine, fake_token, now_ms, real, rt, Project};

const HELLO: &str = "Hello from the claunch API stand-in.";
const NOT_LOGGED_IN: &str = "Not logged in · Please run /login\n";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Each container's address on its network, as the stand-in sees it as the peer.
fn addresses(p: &Project) -> Vec<(String, String)> {
    p.containers()
        .into_iter()
        .map(|(name, id)| {
            let inspect = support::docker_inspect(&id);
            let ip = inspect["NetworkSettings"]["Networks"]
                .as_object()
                .and_then(|networks| {
                    networks.values().find_map(|n| {
                        n["IPAddress"]
                            .as_str()
                            .filter(|ip| !ip.is_empty())
                            .map(str::to_string)
                    })
                });
            (name, ip.unwrap_or_else(|| panic!("{id} has no address")))
        })
        .collect()
}

/// The stand-in's message requests that came from `ip` with `token` as the bearer.
fn messages_from(standin: &StandIn, ip: &str, token: &str) -> usize {
    let bearer = format!("Bearer {token}");
    standin
        .messages()
        .iter()
        .filter(|r| {
            r["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with(&format!("{ip}:")))
        })
        .filter(|r| r["headers"]["authorization"] == bearer.as_str())
        .count()
}

#[test]
fn image_build_packs_the_real_cli_with_nothing_else_and_reuses_it() {
    let tag = agent_image();
    let again = assert_cmd::Command::cargo_bin("claunch")
        .unwrap()
        .args(["image", "build", "--claude"])
        .arg(claude_bin())
        .args(["--tag", &tag])
        .assert()
        .success();
    let out = text(&again.get_output().stdout);
    assert!(
        out.contains("already holds this claude") && out.contains("nothing to build"),
        "{out}"
    );

    let image = rt().block_on(engine().inspect_image(&tag)).unwrap();
    let labels = &image.labels;
    let digest = rt()
        .block_on(claunch::image::claude::sha256(&claude_bin()))
        .unwrap();
    assert_eq!(labels.get("claunch.claude-sha256"), Some(&digest));
    assert_eq!(
        labels.get("claunch.claude-version"),
        Some(&real::claude_version())
    );
    assert!(image.user.is_none(), "root by default");

    let p = Project::new("real-image");
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  a:\n    image: {tag}\n"
    ));
    p.claunch().args(["up", "--no-smoke"]).assert().success();
    let c = format!("{}-a-1", p.name);
    assert_eq!(
        p.sh(&c, "claude --version").trim(),
        format!("{} (Claude Code)", real::claude_version())
    );
    assert_eq!(
        p.sh(
            &c,
            "stat -c '%n %u:%g %a' /tmp /root /home/agent /usr/local/bin/claude"
        ),
        "/tmp 0:0 1777\n/root 0:0 700\n/home/agent 1000:1000 755\n/usr/local/bin/claude 0:0 755\n"
    );
    assert_eq!(
        p.sh(&c, "command -v node npm apt-get; echo end"),
        "end\n",
        "no Node.js, no distribution"
    );
    assert_eq!(
        p.sh(&c, "stat -c %u /proc/1").trim(),
        "0",
        "the default user is root"
    );
    // Its default command idles and stops at once: a 10s grace would show here.
    let t0 = std::time::Instant::now();
    p.claunch().arg("down").assert().success();
    assert!(t0.elapsed().as_secs() < 8, "down took {:?}", t0.elapsed());
}

#[test]
fn a_fleet_of_root_and_non_root_agents_passes_real_smoke_tests_and_answers_exec() {
    let standin = StandIn::start(&[]);
    let p = Project::new("real-fleet");
    let (access, _) = p.login();
    p.write_config(&config(
        &standin,
        &[("root", 2, None), ("worker", 2, Some("agent"))],
    ));

    let up = p.claunch().arg("up").assert().success();
    let out = text(&up.get_output().stdout);
    assert_eq!(out.matches("smoke test passed").count(), 4, "{out}");
    assert!(out.contains(HELLO), "the real CLI's answer streams: {out}");

    let pre = &p.name;
    for n in 1..=2 {
        let root = format!("{pre}-root-{n}");
        let worker = format!("{pre}-worker-{n}");
        assert_eq!(
            p.sh(&root, "stat -c '%u:%g %a' /root/.claude/.credentials.json")
                .trim(),
            "0:0 600"
        );
        assert_eq!(p.sh(&root, "stat -c %u /proc/1").trim(), "0");
        assert_eq!(
            p.sh(
                &worker,
                "stat -c '%u:%g %a' /home/agent/.claude /home/agent/.claude/.credentials.json"
            ),
            "1000:1000 700\n1000:1000 600\n"
        );
        assert_eq!(
            p.sh(&worker, "stat -c %u /proc/1").trim(),
            "1000",
            "the worker runs as agent"
        );
        assert_eq!(
            p.sh(&worker, "ls /root/.claude 2>&1 | grep -c credentials")
                .trim(),
            "0",
            "nothing under root's home"
        );
    }
    // Every container's own `claude -p` reached the API with the login's access token.
    let addresses = addresses(&p);
    assert_eq!(addresses.len(), 4);
    for (name, ip) in &addresses {
        assert!(
            messages_from(&standin, ip, &access) >= 1,
            "{name} ({ip}) sent no request with the token: {:#?}",
            standin.messages()
        );
    }
    let smoke_requests = standin.messages().len();

    p.claunch()
        .args(["exec", "root-1", "Say hello"])
        .assert()
        .success()
        .stdout(format!("{HELLO}\n"));
    p.claunch()
        .args(["exec", "worker-2", "ECHO: answered as agent"])
        .assert()
        .success()
        .stdout("answered as agent\n");

    let streamed = p
        .claunch()
        .args([
            "exec",
            "worker-1",
            "Say hello",
            "--output-format",
            "stream-json",
        ])
        .assert()
        .success();
    let lines: Vec<Value> = text(&streamed.get_output().stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(
        (lines[0]["type"].as_str(), lines[0]["subtype"].as_str()),
        (Some("system"), Some("init")),
        "{lines:#?}"
    );
    assert_eq!(
        lines[0]["apiKeySource"], "none",
        "an OAuth login, not a key"
    );
    assert!(lines.iter().any(|l| l["type"] == "assistant"), "{lines:#?}");
    let last = lines.last().unwrap();
    assert_eq!(
        (last["type"].as_str(), last["result"].as_str()),
        (Some("result"), Some(HELLO))
    );

    let all = p
        .claunch()
        .args(["exec", "--all", "Say hello"])
        .assert()
        .success();
    let out = text(&all.get_output().stdout);
    for (name, _) in &addresses {
        assert!(
            out.contains(&format!("{name} | {HELLO}\n")),
            "{name} in {out}"
        );
    }
    assert!(text(&all.get_output().stderr).contains("4 containers: all succeeded"));
    assert!(standin.messages().len() >= smoke_requests + 3 + 4);
}

#[test]
fn a_rejected_token_is_reported_as_rejected_with_the_clis_own_message() {
    let p = Project::new("real-rejected");
    let (access, _) = p.login();
    let standin = StandIn::start(&[&access]);
    p.write_config(&config(&standin, &[("agent", 1, Some("agent"))]));
    let up = p.claunch().arg("up").assert().failure();
    let out = text(&up.get_output().stdout);
    assert!(
        out.contains("smoke test failed: the OAuth token was rejected or expired"),
        "{out}"
    );
    assert!(
        out.contains("Failed to authenticate. API Error: 401 OAuth token has expired"),
        "the CLI's own words: {out}"
    );
    assert!(out.contains("hint: run `claude login`"), "{out}");
    let (_, ip) = &addresses(&p)[0];
    assert!(
        messages_from(&standin, ip, &access) >= 1,
        "{:#?}",
        standin.requests()
    );
}

/// Replaces the credentials file in a running container as claunch would deliver it
/// (same path, owner and mode), to run the real CLI on contents `claunch up` refuses.
fn replace_credentials(container_id: &str, path: &str, uid: u32, contents: &str) {
    let tar = archive::build(&[Entry::File {
        path: path.to_string(),
        uid,
        gid: uid,
        mode: 0o600,
        contents: Secret::from(contents.to_string()),
    }]);
    rt().block_on(engine().upload_archive(container_id, "/", tar.to_vec()))
        .unwrap();
}

#[test]
fn a_login_without_scopes_or_refresh_token_is_not_logged_in_for_claunch_and_claude() {
    let standin = StandIn::start(&[]);
    let p = Project::new("real-noscopes");
    let access_only = serde_json::json!({"claudeAiOauth": {
        "accessToken": fake_token("oat"), "expiresAt": now_ms() + 3_600_000
    }})
    .to_string();
    p.write_credentials(&access_only);
    p.write_config(&config(&standin, &[("agent", 1, Some("agent"))]));
    // claunch refuses it before making any container...
    p.claunch()
        .arg("up")
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "has neither a refreshToken nor scopes, so claude treats it as logged out",
        ));
    assert!(p.containers().is_empty());

    // ...because the real CLI, given that file where claunch puts credentials, is logged out.
    p.login();
    p.claunch().arg("up").assert().success();
    let (name, id) = p.containers().remove(0);
    replace_credentials(
        &id,
        "/home/agent/.claude/.credentials.json",
        1000,
        &access_only,
    );
    let before = standin.messages().len();
    let run = p
        .claunch()
        .args(["exec", "agent-1", "Say hello"])
        .assert()
        .code(1)
        .stdout(NOT_LOGGED_IN);
    assert_eq!(
        smoke::classify(1, &text(&run.get_output().stdout)),
        Verdict::NotLoggedIn,
        "{name}"
    );
    assert_eq!(
        standin.messages().len(),
        before,
        "a logged-out CLI sends nothing"
    );
}

#[test]
fn a_missing_credentials_file_is_not_logged_in() {
    let standin = StandIn::start(&[]);
    let p = Project::new("real-missing");
    p.login();
    p.write_config(&config(&standin, &[("agent", 1, None)]));
    p.claunch().arg("up").assert().success();
    // claunch always delivers the file, so take it away behind its back: this is what
    // an agent whose file is lost (or never delivered) sees.
    let c = format!("{}-agent-1", p.name);
    p.sh(&c, "rm /root/.claude/.credentials.json");
    let run = p
        .claunch()
        .args(["exec", "agent-1", "Say hello"])
        .assert()
        .code(1)
        .stdout(NOT_LOGGED_IN);
    assert_eq!(
        smoke::classify(1, &text(&run.get_output().stdout)),
        Verdict::NotLoggedIn
    );
}

#[test]
fn image_build_adds_claude_on_top_of_a_base() {
    let base = support::image(support::Image::NoClaude);
    // The stand-in script as `claude`: this test is about the image, not the CLI.
    let script = support::fixture("claude-standin.sh");
    let tag = "claunch-test/claude-on-base:standin";
    let build = || {
        // Its layers carry the test images' label (FROM one of them): built under their
        // lock, and a rebuild's old image removed as theirs are.
        let _lock = support::image_lock();
        let out = assert_cmd::Command::cargo_bin("claunch")
            .unwrap()
            .args(["image", "build", "--base", &base, "--tag", tag, "--claude"])
            .arg(&script)
            .assert()
            .success();
        support::remove_dangling_images();
        text(&out.get_output().stdout)
    };
    let first = build();
    assert!(
        first.contains(&format!("adding claude to {base}"))
            || first.contains("already holds this claude"),
        "{first}"
    );
    assert!(build().contains("already holds this claude"));

    let image = rt().block_on(engine().inspect_image(tag)).unwrap();
    let labels = image.labels;
    assert_eq!(
        labels.get("claunch.base").map(String::as_str),
        Some(base.as_str())
    );
    assert_eq!(
        labels.get("claunch.claude-version").map(String::as_str),
        Some("0.0.0-standin")
    );

    let p = Project::new("real-base");
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  a:\n    image: {tag}\n    user: agent\n"
    ));
    p.claunch()
        .arg("up")
        .assert()
        .success()
        .stdout(predicate::str::contains("smoke test passed"));
}

#[test]
fn image_build_errors_say_what_to_do() {
    let claunch = || assert_cmd::Command::cargo_bin("claunch").unwrap();
    let empty = tempfile::tempdir().unwrap();
    claunch()
        .args(["image", "build"])
        .env("PATH", empty.path())
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("no `claude` on PATH")
                .and(predicate::str::contains("fetch-claude.sh")),
        );
    claunch()
        .args(["image", "build", "--claude", "/nonexistent/claude"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "--claude /nonexistent/claude: no such file",
        ));
    let script = support::fixture("claude-standin.sh");
    claunch()
        .args(["image", "build", "--claude"])
        .arg(&script)
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("is not an ELF executable")
                .and(predicate::str::contains("--base")),
        );
    claunch()
        .args([
            "image",
            "build",
            "--base",
            "claunch-test/no-such-base:1",
            "--claude",
        ])
        .arg(&script)
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "--base claunch-test/no-such-base:1: no such image on the engine",
        ));
}
