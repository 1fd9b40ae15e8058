//! `claunch up` against the real engine: where the credentials land, with which owner and
//! mode, before the image's command starts; convergence; and smoke failures.

use predicates::prelude::*;

use claunch::fleet::label;

use crate::support::{self, image, Image, Project};

fn yaml(image: &str, user: Option<&str>, replicas: u32) -> String {
    let user = user
        .map(|u| format!("    user: \"{u}\"\n"))
        .unwrap_or_default();
    format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {image}\n    replicas: {replicas}\n{user}"
    )
}

/// Owner, mode and path of the credentials file in a container, and what the image's own
/// command saw when it started.
fn inspect_credentials(p: &Project, container: &str, path: &str) -> (String, String) {
    let stat = p.sh(container, &format!("stat -c '%u:%g %a' {path}"));
    let at_start = p.sh(container, "cat /tmp/at-start");
    (stat.trim().to_string(), at_start.trim().to_string())
}

#[test]
fn credentials_land_for_root_named_and_numeric_users_before_the_command_starts() {
    let p = Project::new("users");
    p.login();
    let root = image(Image::Root);
    let named = image(Image::Named);
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  root:\n    image: {root}\n  named:\n    image: {named}\n  numeric:\n    image: {root}\n    user: \"4242\"\n  explicit:\n    image: {root}\n    user: agent\n"
    ));
    p.claunch().arg("up").assert().success();
    let pre = &p.name;
    assert_eq!(
        inspect_credentials(
            &p,
            &format!("{pre}-root-1"),
            "/root/.claude/.credentials.json"
        ),
        ("0:0 600".into(), "readable".into())
    );
    assert_eq!(
        inspect_credentials(
            &p,
            &format!("{pre}-named-1"),
            "/home/agent/.claude/.credentials.json"
        ),
        ("1000:1000 600".into(), "readable".into())
    );
    assert_eq!(
        inspect_credentials(
            &p,
            &format!("{pre}-explicit-1"),
            "/home/agent/.claude/.credentials.json"
        ),
        ("1000:1000 600".into(), "readable".into())
    );
    // A uid with no passwd entry runs with HOME=/ and gid 0, as the engine does.
    assert_eq!(
        inspect_credentials(
            &p,
            &format!("{pre}-numeric-1"),
            "/.claude/.credentials.json"
        ),
        ("4242:0 600".into(), "readable".into())
    );
    // A .claude that claunch made is the user's, 0700.
    assert_eq!(
        p.sh(
            &format!("{pre}-named-1"),
            "stat -c '%u:%g %a' /home/agent/.claude"
        )
        .trim(),
        "1000:1000 700"
    );
    assert_eq!(
        p.sh(&format!("{pre}-numeric-1"), "stat -c '%u:%g %a' /.claude")
            .trim(),
        "4242:0 700"
    );
}

#[test]
fn a_second_up_changes_nothing_and_scale_adds_and_removes() {
    let p = Project::new("converge");
    p.login();
    p.write_config(&yaml(&image(Image::Root), None, 2));
    p.claunch().arg("up").assert().success();
    let first = p.containers();
    assert_eq!(first.len(), 2);

    let again = p.claunch().arg("up").assert().success();
    let out = String::from_utf8_lossy(&again.get_output().stdout).into_owned();
    assert!(out.contains("0 changed, 2 up to date, 0 failed"), "{out}");
    assert!(!out.contains("smoke test |"), "no smoke test re-run: {out}");
    assert_eq!(
        p.containers(),
        first,
        "a no-op up keeps the same containers"
    );

    p.claunch()
        .args(["up", "--scale", "agent=3"])
        .assert()
        .success();
    let names: Vec<String> = p.containers().into_iter().map(|c| c.0).collect();
    assert_eq!(names, [1, 2, 3].map(|n| format!("{}-agent-{n}", p.name)));

    p.claunch()
        .args(["up", "--scale", "agent=1"])
        .assert()
        .success();
    let now = p.containers();
    assert_eq!(
        now,
        first[..1].to_vec(),
        "scaling down keeps replica 1 untouched"
    );
}

#[test]
fn a_config_change_recreates_the_container() {
    let p = Project::new("recreate");
    p.login();
    p.write_config(&yaml(&image(Image::Root), None, 1));
    p.claunch().arg("up").assert().success();
    let before = p.containers();
    p.write_config(&format!(
        "{}    env:\n      LOG_LEVEL: debug\n",
        yaml(&image(Image::Root), None, 1)
    ));
    p.claunch()
        .arg("up")
        .assert()
        .success()
        .stdout(predicate::str::contains("1 changed"));
    let after = p.containers();
    assert_eq!(after.len(), 1);
    assert_ne!(after[0].1, before[0].1, "a new container");
    assert_eq!(p.sh(&after[0].0, "echo $LOG_LEVEL").trim(), "debug");
}

#[test]
fn smoke_failures_are_told_apart_with_their_fix() {
    let p = Project::new("smokefail");
    p.login();
    p.write_config(&format!(
        "{}  missing:\n    image: {}\n",
        yaml(&image(Image::Root), None, 1),
        image(Image::NoClaude)
    ));
    let out = p.claunch().arg("up").assert().failure();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("`claude` is not in the image"), "{stdout}");
    assert!(stdout.contains("claunch image build"), "{stdout}");
    assert!(
        stdout.contains(&format!("{}-agent-1 | done: smoke test passed", p.name)),
        "the other agent is unaffected: {stdout}"
    );

    // A rejected token: the real CLI's 401 message.
    let (_, refresh) = p.login();
    p.write_credentials(&support::login_json(
        "sk-ant-oat01-REJECTED",
        &refresh,
        support::now_ms() + 3_600_000,
    ));
    let out = p
        .claunch()
        .args(["up", "agent", "--force-recreate"])
        .assert()
        .failure();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("rejected or expired"), "{stdout}");
    assert!(stdout.contains("claude login"), "{stdout}");
}

/// Scripts start `up` twice at once, and `up` while a `down` runs: whatever the order, the
/// project ends as one fleet on one network, never wedged on an ambiguous network name.
#[test]
fn racing_ups_and_a_down_converge_and_never_wedge() {
    let p = Project::new("race");
    p.login();
    p.write_config(&yaml(&image(Image::Root), None, 3));
    let spawn = |args: &[&str]| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("claunch"))
            .args(args)
            .current_dir(p.dir.path())
            .env_remove("CLAUNCH_PROJECT")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let network = format!("{}_default", p.name);
    let networks = || {
        support::rt()
            .block_on(support::engine().networks_named(&network))
            .unwrap()
            .len()
    };
    for round in 0..3 {
        let racers: Vec<_> = (0..3).map(|_| spawn(&["up"])).collect();
        for racer in racers {
            let out = racer.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("ambiguous"), "round {round}: {err}");
        }
        // Whatever each racer said, the next `up` finds one correct fleet.
        p.claunch().arg("up").assert().success();
        assert_eq!(networks(), 1, "round {round}: one network");
        assert_eq!(p.containers().len(), 3, "round {round}: three replicas");
        // `up` and `down` at once: then `down` leaves nothing, and `up` works again.
        let up = spawn(&["up"]);
        let down = spawn(&["down"]);
        let _ = up.wait_with_output().unwrap();
        let _ = down.wait_with_output().unwrap();
        p.claunch().arg("down").assert().success();
        assert!(p.containers().is_empty(), "round {round}: no orphan");
        assert_eq!(networks(), 0, "round {round}: no network left");
    }
    // An engine that already holds two networks of the project's name (an older race):
    // the next `up` repairs it.
    let labels = std::collections::HashMap::from([
        (label::PROJECT.to_string(), p.name.clone()),
        (label::MANAGED.to_string(), "true".to_string()),
    ]);
    for _ in 0..2 {
        support::rt()
            .block_on(support::engine().create_network(&network, labels.clone()))
            .unwrap();
    }
    assert_eq!(networks(), 2);
    p.claunch().arg("up").assert().success();
    assert_eq!(networks(), 1, "the duplicate is gone");
    p.claunch().arg("down").assert().success();
    assert_eq!(networks(), 0);
}
