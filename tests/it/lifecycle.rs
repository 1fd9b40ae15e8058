//! ps, logs, down, init, completions and the errors people hit first, run as a user would.

use predicates::prelude::*;

use crate::support::{self, image, rt, Image, Project};

fn one_agent(p: &Project) {
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n",
        image(Image::Root)
    ));
}

#[test]
fn down_removes_exactly_the_projects_containers_and_network() {
    let p = Project::new("down");
    one_agent(&p);
    let other = Project::new("down-other");
    other.login();
    std::fs::write(
        other.path("claunch.yaml"),
        std::fs::read_to_string(p.path("claunch.yaml"))
            .unwrap()
            .replace(&p.name, &other.name)
            .replace(
                &p.path("creds").display().to_string(),
                &other.path("creds").display().to_string(),
            ),
    )
    .unwrap();
    p.claunch().arg("up").assert().success();
    other.claunch().arg("up").assert().success();
    // A container claunch did not make, with a name that looks like the project's.
    let engine = support::engine();
    let stranger = format!("{}-agent-9", p.name);
    let config = claunch::engine::ContainerConfig {
        image: image(Image::Root),
        network: "bridge".into(),
        ..Default::default()
    };
    let id = rt()
        .block_on(engine.create_container(&stranger, config))
        .unwrap();

    p.claunch()
        .arg("down")
        .assert()
        .success()
        .stdout(predicate::str::contains("network"));
    assert!(p.containers().is_empty());
    assert!(!rt()
        .block_on(engine.network_exists(&format!("{}_default", p.name)))
        .unwrap());
    assert_eq!(other.containers().len(), 1, "another project is left alone");
    assert!(
        rt().block_on(engine.inspect_container(&id)).is_ok(),
        "an unlabelled container is left alone"
    );
    rt().block_on(engine.remove_container(&id)).unwrap();
}

#[test]
fn ps_and_logs_show_the_fleet() {
    let p = Project::new("ps");
    one_agent(&p);
    p.claunch().arg("up").assert().success();
    p.claunch().arg("ps").assert().success().stdout(
        predicate::str::contains("NAME")
            .and(predicate::str::contains(format!("{}-agent-1", p.name)))
            .and(predicate::str::contains("running"))
            .and(predicate::str::contains("7h5")),
    );
    let out = p.claunch().args(["ps", "--json"]).assert().success();
    let row: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(row["agent"], "agent");
    assert_eq!(row["credentials"], "ok");
    assert_eq!(row["credentials_path"], "/root/.claude/.credentials.json");
    assert_eq!(row["credentials_summary"]["has_refresh_token"], true);
    p.claunch()
        .args(["logs", "agent", "--tail", "5"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "{}-agent-1 | agent started as uid 0",
            p.name
        )));
}

#[test]
fn init_writes_a_config_that_loads_and_guards_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let claunch = || {
        let mut c = assert_cmd::Command::cargo_bin("claunch").unwrap();
        c.current_dir(dir.path());
        c
    };
    claunch().arg("init").assert().success();
    let gitignore = std::fs::read_to_string(dir.path().join(".gitignore")).unwrap();
    assert!(gitignore.contains(".credentials.json"));
    claunch()
        .arg("init")
        .assert()
        .failure()
        .stderr(predicate::str::contains("already exists"));
    claunch().args(["init", "--force"]).assert().success();
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".gitignore")).unwrap(),
        gitignore,
        "no duplicate lines"
    );
    // The template is valid: `up` gets past the config and fails on the missing image.
    claunch().arg("up").assert().failure().stderr(
        predicate::str::contains("image `my-agent:latest` is not on the engine")
            .or(predicate::str::contains("no credentials file")),
    );
}

#[test]
fn errors_people_hit_first_are_clear() {
    let p = Project::new("errors");
    p.claunch()
        .args(["-H", "tcp://127.0.0.1:1", "-p", "x", "ps"])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("cannot reach the Docker engine at tcp://127.0.0.1:1")
                .and(predicate::str::contains("is dockerd running?")),
        );
    p.claunch()
        .arg("up")
        .assert()
        .failure()
        .stderr(predicate::str::contains("claunch init"));
    std::fs::write(
        p.path("claunch.yaml"),
        "agents:\n  planner:\n    image: x\n    replica: 2\n",
    )
    .unwrap();
    p.claunch().arg("up").assert().failure().stderr(
        predicate::str::contains("claunch.yaml:4:5: agents.planner")
            .and(predicate::str::contains("replicas")),
    );
    one_agent(&p);
    p.claunch()
        .args(["up", "--scale", "agent=two"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--scale agent=two"));
    p.claunch()
        .args(["up", "ghost"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no agent `ghost`"));
    std::fs::remove_file(p.path("creds/.credentials.json")).unwrap();
    p.claunch().arg("up").assert().failure().stderr(
        predicate::str::contains("no credentials file")
            .and(predicate::str::contains("claude login")),
    );
    assert!(p.containers().is_empty(), "nothing was created");
}

#[test]
fn completions_and_help_work() {
    let mut c = assert_cmd::Command::cargo_bin("claunch").unwrap();
    c.args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("claunch"));
    for sub in ["up", "exec", "ps", "logs", "down", "init"] {
        let mut c = assert_cmd::Command::cargo_bin("claunch").unwrap();
        c.args([sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"));
    }
}
