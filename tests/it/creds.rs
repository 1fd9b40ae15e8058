//! Keeping a fleet's login alive, with a stand-in claude: one leader holds the refresh
//! token, followers hold the access token alone; `creds sync` takes what the leader's
//! claude wrote back to the source and spreads it; containers are not trusted.
//! (The real CLI refreshing against a token endpoint is in `e2e_refresh.rs`.)

use std::os::unix::fs::PermissionsExt;

use predicates::prelude::*;

use crate::support::{self, fake_token, image, login_json, now_ms, Image, Project};

const HOUR: i64 = 3_600_000;

fn fleet(test: &str, replicas: u32) -> Project {
    let p = Project::new(test);
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    replicas: {replicas}\n",
        image(Image::Named)
    ));
    p.claunch().arg("up").assert().success();
    p
}

const CREDS: &str = "/home/agent/.claude/.credentials.json";

fn file_in(p: &Project, n: u32) -> serde_json::Value {
    p.json_in(&format!("{}-agent-{n}", p.name), CREDS)
}

/// Writes `json` into a container's credentials file, keeping owner and mode, as the
/// container's own claude (or hostile code in it) would.
fn write_in(p: &Project, n: u32, json: &str) {
    p.write_in(&format!("{}-agent-{n}", p.name), CREDS, "1000:1000", json);
}

#[test]
fn one_leader_holds_the_refresh_token_and_followers_only_the_access_token() {
    let p = fleet("roles", 3);
    let host = p.credentials();
    let leader = file_in(&p, 1);
    assert_eq!(leader, host, "the leader gets the whole file");
    for n in [2, 3] {
        let f = file_in(&p, n);
        let oauth = f["claudeAiOauth"].as_object().unwrap();
        let mut keys: Vec<&str> = oauth.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["accessToken", "expiresAt", "scopes", "subscriptionType"]
        );
        assert_eq!(oauth["accessToken"], host["claudeAiOauth"]["accessToken"]);
        assert_eq!(f.as_object().unwrap().len(), 1, "nothing but claudeAiOauth");
    }
    let out = p.claunch().args(["ps", "--json"]).assert().success();
    let roles: Vec<String> = String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["role"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(roles, ["leader", "follower", "follower"]);
}

#[test]
fn sync_writes_the_leaders_refresh_back_and_spreads_it_to_followers() {
    let p = fleet("sync", 3);
    let old = p.credentials();
    // The leader's claude refreshed: new tokens, later expiry.
    let (access, refresh) = (fake_token("oat") + "NEW", fake_token("ort") + "NEW");
    let refreshed = login_json(&access, &refresh, now_ms() + 8 * HOUR + 60_000);
    write_in(&p, 1, &refreshed);
    let out = p.claunch().args(["creds", "sync"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("written back"), "{stdout}");
    assert!(!stdout.contains(&access) && !stdout.contains(&refresh));
    let host = p.credentials();
    assert_eq!(host["claudeAiOauth"]["refreshToken"], refresh.as_str());
    let backup: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.path("creds/.credentials.json.bak")).unwrap(),
    )
    .unwrap();
    assert_eq!(backup, old, "the previous login is kept as a backup");
    let mode = std::fs::metadata(p.path("creds/.credentials.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for n in [2, 3] {
        let f = file_in(&p, n);
        assert_eq!(f["claudeAiOauth"]["accessToken"], access.as_str());
        assert!(f["claudeAiOauth"].get("refreshToken").is_none());
    }
    // Nothing newer: a second sync changes nothing.
    p.claunch()
        .args(["creds", "sync", "--once"])
        .assert()
        .success()
        .stdout(predicate::str::contains("written back").not());
    // Followers still answer (the stand-in reads the access-only file as the real CLI does).
    p.claunch().args(["exec", "--all", "hi"]).assert().success();
}

#[test]
fn a_follower_or_a_hostile_leader_cannot_move_the_login() {
    let p = fleet("hostile", 2);
    let before = std::fs::read_to_string(p.path("creds/.credentials.json")).unwrap();
    // A follower forges a newer full login: never travels.
    let forged = login_json(
        &(fake_token("oat") + "FORGED"),
        &(fake_token("ort") + "FORGED"),
        now_ms() + 9 * HOUR,
    );
    write_in(&p, 2, &forged);
    p.claunch().args(["creds", "sync"]).assert().success();
    assert_eq!(
        std::fs::read_to_string(p.path("creds/.credentials.json")).unwrap(),
        before
    );
    assert!(
        file_in(&p, 2)["claudeAiOauth"]
            .get("refreshToken")
            .is_none(),
        "the follower was put back to access-only"
    );
    // The leader writes an implausible expiry (a year ahead for a login): rejected, warned.
    let implausible = login_json(
        &(fake_token("oat") + "FAR"),
        &(fake_token("ort") + "FAR"),
        now_ms() + 365 * 24 * HOUR,
    );
    write_in(&p, 1, &implausible);
    p.claunch()
        .args(["creds", "sync"])
        .assert()
        .success()
        .stderr(predicate::str::contains("ignoring its credentials file"));
    assert_eq!(
        std::fs::read_to_string(p.path("creds/.credentials.json")).unwrap(),
        before
    );
    // The leader replaces its file with a symlink to a host-looking path: not followed.
    p.sh(
        &format!("{}-agent-1", p.name),
        &format!("rm {CREDS} && ln -s /etc/passwd {CREDS}"),
    );
    p.claunch().args(["creds", "sync"]).assert().stderr(
        predicate::str::contains("not a regular file").or(predicate::str::contains("symlink")),
    );
    assert_eq!(
        std::fs::read_to_string(p.path("creds/.credentials.json")).unwrap(),
        before
    );
}

#[test]
fn push_delivers_a_new_host_login_without_restarting() {
    let p = fleet("push", 2);
    let started: Vec<String> = (1..=2)
        .map(|n| {
            p.sh(
                &format!("{}-agent-{n}", p.name),
                "cat /proc/1/stat | cut -d' ' -f22",
            )
        })
        .collect();
    // The user ran `claude login` again on the host: a new family, later expiry.
    let (access, refresh) = (fake_token("oat") + "RELOGIN", fake_token("ort") + "RELOGIN");
    p.write_credentials(&login_json(
        &access,
        &refresh,
        now_ms() + 8 * HOUR + 120_000,
    ));
    p.claunch().args(["creds", "push"]).assert().success();
    assert_eq!(
        file_in(&p, 1)["claudeAiOauth"]["refreshToken"],
        refresh.as_str()
    );
    assert_eq!(
        file_in(&p, 2)["claudeAiOauth"]["accessToken"],
        access.as_str()
    );
    let after: Vec<String> = (1..=2)
        .map(|n| {
            p.sh(
                &format!("{}-agent-{n}", p.name),
                "cat /proc/1/stat | cut -d' ' -f22",
            )
        })
        .collect();
    assert_eq!(started, after, "no container restarted");
}

#[test]
fn status_exit_codes_follow_what_will_break() {
    let p = fleet("status", 2);
    // A fresh login with a running leader: ok.
    p.claunch()
        .args(["creds", "status"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("refreshable"));
    let out = p
        .claunch()
        .args(["creds", "status", "--json"])
        .assert()
        .code(0);
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["level"], "ok");
    assert!(!String::from_utf8_lossy(&out.get_output().stdout).contains("sk-ant-"));
    // The leader holds something newer than the source: sync is overdue.
    write_in(
        &p,
        1,
        &login_json(
            &(fake_token("oat") + "N"),
            &(fake_token("ort") + "N"),
            now_ms() + 9 * HOUR,
        ),
    );
    p.claunch()
        .args(["creds", "status"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("creds sync"));
    // Two refresh-token holders: the rotation bug.
    write_in(
        &p,
        2,
        &login_json(
            &(fake_token("oat") + "M"),
            &(fake_token("ort") + "M"),
            now_ms() + 9 * HOUR,
        ),
    );
    p.claunch()
        .args(["creds", "status"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("hold a refresh token"));
    // A blanked file in a container: critical.
    write_in(
        &p,
        2,
        r#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0}}"#,
    );
    p.claunch()
        .args(["creds", "status"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("blanked"));
}

#[test]
fn a_setup_token_is_shared_and_warned_about_only_near_its_end() {
    let p = Project::new("setup-token");
    let token = fake_token("oat");
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  oauth_token: ${{TEST_SETUP_TOKEN}}\nagents:\n  agent:\n    image: {}\n    replicas: 2\n",
        image(Image::Named)
    ));
    p.claunch()
        .env("TEST_SETUP_TOKEN", &token)
        .arg("up")
        .assert()
        .success();
    for n in [1, 2] {
        let f = file_in(&p, n);
        assert_eq!(f["claudeAiOauth"]["accessToken"], token.as_str());
        assert_eq!(
            f["claudeAiOauth"]["scopes"],
            serde_json::json!(["user:inference"])
        );
        assert!(f["claudeAiOauth"].get("refreshToken").is_none());
    }
    for (name, id) in p.containers() {
        let inspect = support::docker_inspect(&id).to_string();
        assert!(!inspect.contains(&token), "token in inspect of {name}");
    }
    p.claunch()
        .env("TEST_SETUP_TOKEN", &token)
        .args(["creds", "status"])
        .assert()
        .code(0);
    p.claunch()
        .env("TEST_SETUP_TOKEN", &token)
        .args(["creds", "status", "--warn", "400d"])
        .assert()
        .code(1);
}

#[test]
fn an_api_key_goes_in_a_file_read_by_api_key_helper() {
    let p = Project::new("api-key");
    let key = format!("sk-ant-api03-{}", fake_token("x"));
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  api_key: ${{TEST_API_KEY}}\nagents:\n  agent:\n    image: {}\n    smoke: false\n",
        image(Image::Named)
    ));
    p.claunch()
        .env("TEST_API_KEY", &key)
        .arg("up")
        .assert()
        .success();
    let c = format!("{}-agent-1", p.name);
    assert_eq!(p.sh(&c, "cat /home/agent/.claude/claunch-api-key"), key);
    assert_eq!(
        p.sh(
            &c,
            "stat -c '%u %a' /home/agent/.claude/claunch-api-key /home/agent/.claude/settings.json"
        ),
        "1000 600\n1000 600\n"
    );
    let settings: serde_json::Value =
        serde_json::from_str(&p.sh(&c, "cat /home/agent/.claude/settings.json")).unwrap();
    assert_eq!(
        settings["apiKeyHelper"],
        "cat /home/agent/.claude/claunch-api-key"
    );
    let inspect = support::docker_inspect(&p.containers()[0].1).to_string();
    assert!(!inspect.contains(&key));
}

#[test]
fn onboarding_writes_claude_json_when_absent() {
    let p = Project::new("onboarding");
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nonboarding: true\nagents:\n  agent:\n    image: {}\n    smoke: false\n",
        image(Image::Named)
    ));
    p.claunch().arg("up").assert().success();
    let c = format!("{}-agent-1", p.name);
    let v: serde_json::Value =
        serde_json::from_str(&p.sh(&c, "cat /home/agent/.claude.json")).unwrap();
    assert_eq!(v["hasCompletedOnboarding"], true);
    assert_eq!(
        p.sh(&c, "stat -c '%u %a' /home/agent/.claude.json"),
        "1000 600\n"
    );
}

#[test]
fn concurrent_syncs_leave_the_source_whole_newest_and_0600() {
    let p = fleet("concurrent", 2);
    let (access, refresh) = (fake_token("oat") + "CONC", fake_token("ort") + "CONC");
    write_in(
        &p,
        1,
        &login_json(&access, &refresh, now_ms() + 8 * HOUR + 90_000),
    );
    let bin = assert_cmd::cargo::cargo_bin("claunch");
    let children: Vec<std::process::Child> = (0..4)
        .map(|_| {
            std::process::Command::new(&bin)
                .current_dir(p.dir.path())
                .args(["creds", "sync"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let host = p.credentials();
    assert_eq!(host["claudeAiOauth"]["refreshToken"], refresh.as_str());
    let mode = std::fs::metadata(p.path("creds/.credentials.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(p.path("creds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            std::path::Path::new(n)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("tmp"))
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// A leader whose claude refreshed just before it stopped holds the only valid refresh
/// token: `up` starting it again takes that login back to the source before delivering,
/// never writes the older one over it.
#[test]
fn up_starting_a_stopped_leader_keeps_its_newer_login() {
    let p = fleet("stoppedleader", 2);
    let (access, refresh) = (fake_token("oat") + "LATER", fake_token("ort") + "LATER");
    write_in(
        &p,
        1,
        &login_json(&access, &refresh, now_ms() + 8 * HOUR + 60_000),
    );
    support::docker(&["stop", "-t", "1", &format!("{}-agent-1", p.name)]);
    p.claunch().arg("up").assert().success();
    assert_eq!(
        file_in(&p, 1)["claudeAiOauth"]["refreshToken"],
        refresh.as_str(),
        "the leader keeps its newer login"
    );
    assert_eq!(
        p.credentials()["claudeAiOauth"]["refreshToken"],
        refresh.as_str(),
        "the source has it back"
    );
}
