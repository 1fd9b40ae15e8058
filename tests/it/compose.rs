//! The habits of a docker compose user, each answered: `up -d`, `stop`/`start`/`restart`
//! (which deliver the login in force before a command starts again), `ps -q/-a` and
//! `--format`, `logs -t/--since`, `config`, `version`/`--version` and `pull` with no
//! registry.

use predicates::prelude::*;

use crate::support::{self, fake_token, image, login_json, now_ms, rt, Image, Project};

const HOUR: i64 = 3_600_000;
const CREDS: &str = "/home/agent/.claude/.credentials.json";

/// A project of `replicas` replicas of one agent running as `agent`, brought up with
/// compose's `-d`, which claunch takes and needs not.
fn fleet(test: &str, replicas: u32) -> Project {
    let p = Project::new(test);
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    replicas: {replicas}\n    smoke: false\n",
        image(Image::Named)
    ));
    p.claunch()
        .args(["up", "-d"])
        .assert()
        .success()
        .stderr(predicate::str::contains("tip:").not());
    p
}

fn name(p: &Project, n: u32) -> String {
    format!("{}-agent-{n}", p.name)
}

fn file_in(p: &Project, n: u32) -> serde_json::Value {
    p.json_in(&name(p, n), CREDS)
}

/// Writes a container's credentials file as its own claude would after a refresh.
fn write_in(p: &Project, n: u32, json: &str) {
    p.write_in(&name(p, n), CREDS, "1000:1000", json);
}

/// Whether each of the project's containers runs, by name.
fn running(p: &Project) -> Vec<(String, bool)> {
    let engine = support::engine();
    p.containers()
        .into_iter()
        .map(|(name, id)| {
            let info = rt().block_on(engine.inspect_container(&id)).unwrap();
            (name, info.state.running)
        })
        .collect()
}

fn started_at(id: &str) -> String {
    support::docker_inspect(id)["State"]["StartedAt"]
        .as_str()
        .unwrap()
        .to_string()
}

/// What the image's command found when it last started (`readable` or `missing`), once
/// it has written it: the caller removes the file before the start.
fn at_start(p: &Project, n: u32) -> String {
    for _ in 0..100 {
        let found = p.sh(&name(p, n), "cat /tmp/at-start 2>/dev/null");
        if !found.is_empty() {
            return found.trim().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{}: its command did not start", name(p, n));
}

fn stdout(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stdout).into_owned()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn up_detach_is_taken_and_changes_nothing() {
    let p = fleet("detach", 1);
    p.claunch()
        .args(["up", "--detach"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "{} | done: up to date",
            name(&p, 1)
        )));
    assert_eq!(running(&p), [(name(&p, 1), true)]);
}

#[test]
fn stop_start_and_restart_deliver_the_login_in_force() {
    let p = fleet("stopstart", 2);
    let ids: Vec<String> = p.containers().into_iter().map(|(_, id)| id).collect();

    // The follower's file is gone: only a delivery before start makes it readable again.
    p.sh(&name(&p, 2), &format!("rm {CREDS} /tmp/at-start"));
    let out = p
        .claunch()
        .args(["stop", "agent-2", "--json"])
        .assert()
        .success();
    let events = json_lines(&stdout(&out));
    assert!(
        events.iter().any(|e| e["event"] == "finished"
            && e["container"] == name(&p, 2).as_str()
            && e["outcome"]["detail"] == "stopped"),
        "{events:?}"
    );
    assert_eq!(running(&p), [(name(&p, 1), true), (name(&p, 2), false)]);

    // `claude login` again on the host while the follower is stopped.
    let (access, refresh) = (fake_token("oat") + "RELOGIN", fake_token("ort") + "RELOGIN");
    p.write_credentials(&login_json(
        &access,
        &refresh,
        now_ms() + 8 * HOUR + 120_000,
    ));
    p.claunch().arg("start").assert().success().stdout(
        predicate::str::contains(format!("{} | done: already running", name(&p, 1)))
            .and(predicate::str::contains(format!(
                "{} | done: started",
                name(&p, 2)
            )))
            .and(predicate::str::contains(format!(
                "{}: 1 started, 0 failed",
                p.name
            ))),
    );
    assert_eq!(
        at_start(&p, 2),
        "readable",
        "the login was there when the command started"
    );
    let follower = file_in(&p, 2);
    assert_eq!(follower["claudeAiOauth"]["accessToken"], access.as_str());
    assert!(
        follower["claudeAiOauth"].get("refreshToken").is_none(),
        "a follower gets the access token only: {follower}"
    );

    // The leader's claude refreshes, then the fleet restarts: its newer login is taken back
    // to the source and spread, never overwritten by the older one.
    let (access2, refresh2) = (
        fake_token("oat") + "REFRESHED",
        fake_token("ort") + "REFRESHED",
    );
    write_in(
        &p,
        1,
        &login_json(&access2, &refresh2, now_ms() + 8 * HOUR + 240_000),
    );
    let before: Vec<String> = ids.iter().map(|id| started_at(id)).collect();
    p.claunch().arg("restart").assert().success().stdout(
        predicate::str::contains(format!("{} | done: restarted (leader)", name(&p, 1))).and(
            predicate::str::contains(format!("{} | done: restarted", name(&p, 2))),
        ),
    );
    for (id, was) in ids.iter().zip(&before) {
        assert_ne!(&started_at(id), was, "{id} was restarted");
    }
    assert_eq!(
        p.credentials()["claudeAiOauth"]["refreshToken"],
        refresh2.as_str()
    );
    assert_eq!(
        file_in(&p, 1)["claudeAiOauth"]["refreshToken"],
        refresh2.as_str()
    );
    let follower = file_in(&p, 2);
    assert_eq!(follower["claudeAiOauth"]["accessToken"], access2.as_str());
    assert!(follower["claudeAiOauth"].get("refreshToken").is_none());

    p.sh(&name(&p, 2), &format!("rm {CREDS} /tmp/at-start"));
    p.claunch()
        .arg("stop")
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "{}: 2 stopped, 0 already stopped, 0 failed",
            p.name
        )));
    assert_eq!(running(&p), [(name(&p, 1), false), (name(&p, 2), false)]);
    // `up` starts stopped containers the same way.
    p.claunch().arg("up").assert().success();
    assert_eq!(running(&p), [(name(&p, 1), true), (name(&p, 2), true)]);
    assert_eq!(at_start(&p, 2), "readable");
    p.claunch()
        .args(["restart", "ghost"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no container matches `ghost`"));
}

#[test]
fn ps_lists_running_ones_all_with_a_and_ids_with_q() {
    let p = fleet("psflags", 2);
    let ids: Vec<String> = p.containers().into_iter().map(|(_, id)| id).collect();
    p.claunch().args(["stop", "agent-2"]).assert().success();

    let out = p.claunch().arg("ps").assert().success();
    let table = stdout(&out);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains(&name(&p, 1)) && !table.contains(&name(&p, 2)),
        "{table}"
    );
    let out = p.claunch().args(["ps", "-a"]).assert().success();
    let table = stdout(&out);
    assert!(
        table.contains(&name(&p, 1)) && table.contains(&name(&p, 2)),
        "{table}"
    );
    assert!(table.contains("exited"), "{table}");

    p.claunch()
        .args(["ps", "-q"])
        .assert()
        .success()
        .stdout(format!("{}\n", ids[0]));
    p.claunch()
        .args(["ps", "-aq"])
        .assert()
        .success()
        .stdout(format!("{}\n{}\n", ids[0], ids[1]));

    let names = |args: &[&str]| -> Vec<String> {
        let out = p.claunch().args(args).assert().success();
        json_lines(&stdout(&out))
            .iter()
            .map(|row| row["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&["ps", "--format", "json"]), [name(&p, 1)]);
    assert_eq!(names(&["ps", "--json"]), [name(&p, 1)]);
    assert_eq!(
        names(&["ps", "-a", "--format", "json"]),
        [name(&p, 1), name(&p, 2)]
    );
    p.claunch()
        .args(["ps", "--format", "table"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("NAME"));

    p.claunch().arg("stop").assert().success();
    p.claunch().arg("ps").assert().success().stderr(format!(
        "project `{}` has no running containers (2 stopped: `claunch ps -a` lists them)\n",
        p.name
    ));
}

#[test]
fn logs_take_timestamps_and_since() {
    let p = fleet("logsflags", 1);
    // The command has printed its first line by the time it notes what it found.
    at_start(&p, 1);
    let line = format!("{} | ", name(&p, 1));
    let out = p.claunch().args(["logs", "-t"]).assert().success();
    let text = stdout(&out);
    let stamped = text
        .lines()
        .find(|l| l.ends_with("agent started as uid 1000"))
        .unwrap_or_else(|| panic!("{text}"));
    let stamp = stamped
        .strip_prefix(&line)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    assert!(
        stamp.len() > 20 && stamp.starts_with("20") && stamp.ends_with('Z'),
        "an RFC 3339 time first: {stamped}"
    );

    let started = format!("{line}agent started as uid 1000");
    p.claunch()
        .args(["logs", "--since", "10m"])
        .assert()
        .success()
        .stdout(predicate::str::contains(started.as_str()));
    p.claunch()
        .args([
            "logs",
            "agent",
            "--since",
            "2099-01-01T00:00:00Z",
            "--timestamps",
        ])
        .assert()
        .success()
        .stdout("");
    p.claunch()
        .args(["logs", "--since", "yesterday"])
        .assert()
        .failure()
        .stderr("error: --since yesterday: neither a duration nor a time\n  hint: write a duration like 10m or 1h30m, or an RFC 3339 time like 2026-11-28T13:14:15Z\n");
}

#[test]
fn config_prints_the_resolved_file_with_secrets_redacted() {
    let p = Project::new("config");
    let key = fake_token("api");
    let yaml = "project: {project}\ncredentials:\n  api_key: ${KEY}\nagents:\n  planner:\n    image: img:1\n    env:\n      GITHUB_TOKEN: ${GH}\n      LOG_LEVEL: info\n  coder:\n    image: img:2\n    replicas: 3\n    smoke: false\n";
    p.write_config(yaml);
    let claunch = || {
        let mut c = p.claunch();
        c.env("KEY", &key).env("GH", "ghp_not-for-your-eyes");
        c
    };
    let out = claunch().arg("config").assert().success();
    let text = stdout(&out);
    assert!(
        !text.contains(&key[..20]) && !text.contains("ghp_"),
        "{text}"
    );
    for expected in [
        format!("project: {}\n", p.name),
        "  api_key: <redacted>\n  timeout: 30s\n".to_string(),
        "      GITHUB_TOKEN: <redacted>\n      LOG_LEVEL: info\n".to_string(),
        format!("    network: {}_default\n", p.name),
        "    smoke:\n      prompt: Say hello\n      max_turns: 1\n      timeout: 120s\n"
            .to_string(),
        "    replicas: 3\n".to_string(),
        "    smoke: false\n".to_string(),
    ] {
        assert!(text.contains(&expected), "{expected:?} in\n{text}");
    }
    // It is a claunch.yaml: it loads again.
    let again = tempfile::tempdir().unwrap();
    std::fs::write(again.path().join("claunch.yaml"), &text).unwrap();
    p.claunch()
        .arg("-f")
        .arg(again.path().join("claunch.yaml"))
        .args(["config", "--quiet"])
        .assert()
        .success()
        .stdout("");

    claunch()
        .args(["config", "--services"])
        .assert()
        .success()
        .stdout("planner\ncoder\n");
    claunch()
        .args(["config", "-q"])
        .assert()
        .success()
        .stdout("");
    std::fs::write(
        p.path("claunch.yaml"),
        "agents:\n  planner:\n    image: x\n    replica: 2\n",
    )
    .unwrap();
    p.claunch()
        .args(["config", "--quiet"])
        .assert()
        .failure()
        .stdout("")
        .stderr(
            predicate::str::contains("claunch.yaml:4:5: agents.planner")
                .and(predicate::str::contains("did you mean `replicas`?")),
        );
}

#[test]
fn version_names_claunch_the_engine_and_the_negotiated_api() {
    let p = Project::new("version");
    let engine = support::engine();
    let v = rt().block_on(engine.version()).unwrap();
    let expected = format!(
        "claunch {}\nengine: Docker {} ({}/{}) at {}\napi: {} (negotiated; the engine speaks up to {})\n",
        env!("CARGO_PKG_VERSION"),
        v.version,
        v.os,
        v.arch,
        engine.endpoint(),
        v.negotiated_api,
        v.api_version
    );
    assert!(!v.negotiated_api.is_empty() && v.negotiated_api != "?");
    p.claunch()
        .arg("version")
        .assert()
        .success()
        .stdout(expected.clone());
    p.claunch()
        .arg("--version")
        .assert()
        .success()
        .stdout(expected);
    let out = p.claunch().args(["version", "--json"]).assert().success();
    let v2: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v2["claunch"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v2["engine"]["negotiated_api"], v.negotiated_api.as_str());

    let own = format!("claunch {}\n", env!("CARGO_PKG_VERSION"));
    let unreachable = "cannot reach the Docker engine at tcp://127.0.0.1:1";
    p.claunch()
        .args(["-H", "tcp://127.0.0.1:1", "version"])
        .assert()
        .code(1)
        .stdout(own.clone())
        .stderr(predicate::str::starts_with(format!("error: {unreachable}")));
    p.claunch()
        .args(["-H", "tcp://127.0.0.1:1", "--version"])
        .assert()
        .code(0)
        .stdout(own)
        .stderr(predicate::str::starts_with(format!(
            "warning: {unreachable}"
        )));
}

#[test]
fn pull_without_a_registry_says_so_and_suggests_image_build() {
    let p = Project::new("pull");
    // `.invalid` never resolves (RFC 2606): no registry, whatever network the host has.
    let image = "registry.invalid/claunch-test/agent:1";
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  planner:\n    image: {image}\n  coder:\n    image: {image}\n"
    ));
    let out = p.claunch().arg("pull").assert().code(1);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("{image} | pulling from registry.invalid"));
    let failed = lines
        .iter()
        .position(|l| l.starts_with(&format!("{image} | failed: ")))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        lines[failed],
        format!("{image} | failed: cannot pull {image}: registry registry.invalid is unreachable from the engine")
    );
    assert!(
        lines[failed + 1].starts_with("    | ") && lines[failed + 1].contains("registry.invalid"),
        "the engine's own words: {text}"
    );
    assert_eq!(
        lines[failed + 2],
        format!("{image} |   hint: `claunch image build --tag {image}` builds an agent image on this engine, no registry needed")
    );
    assert_eq!(
        lines.last().copied(),
        Some("0 of 1 images pulled"),
        "one image, pulled once"
    );
    p.claunch()
        .args(["pull", "ghost"])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("no agent `ghost`")
                .and(predicate::str::contains("the agents are planner, coder")),
        );
}
