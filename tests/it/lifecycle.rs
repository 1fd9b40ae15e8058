//! ps, logs, down, init, completions and the errors people hit first, run as a user would.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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
    assert!(!support::network_exists(&format!("{}_default", p.name)));
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
    let expires_at = support::now_ms() + 8 * 3_600_000;
    p.write_credentials(&support::login_json(
        &support::fake_token("oat"),
        &support::fake_token("ort"),
        expires_at,
    ));
    p.claunch().arg("up").assert().success();
    // A pinned clock: 7h55m30s before the login expires.
    let now = expires_at - (7 * 3_600 + 55 * 60 + 30) * 1000;
    p.claunch()
        .arg("ps")
        .env("CLAUNCH_NOW_MS", now.to_string())
        .assert()
        .success()
        .stdout(
            predicate::str::contains("NAME")
                .and(predicate::str::contains(format!("{}-agent-1", p.name)))
                .and(predicate::str::contains("running"))
                .and(predicate::str::contains("7h55m")),
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
    for sub in [
        "up", "exec", "run", "ps", "logs", "stop", "start", "restart", "down", "pull", "config",
        "init", "version",
    ] {
        let mut c = assert_cmd::Command::cargo_bin("claunch").unwrap();
        c.args([sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"));
    }
    check_help_snapshots();
}

/// Every command whose `--help` is pinned in `tests/it/snapshots/help/`: the top level is
/// `claunch.txt`, a subcommand its path (`up.txt`, `creds/sync.txt`).
const HELP_PAGES: &[&[&str]] = &[
    &[],
    &["up"],
    &["exec"],
    &["run"],
    &["ps"],
    &["logs"],
    &["stop"],
    &["start"],
    &["restart"],
    &["down"],
    &["pull"],
    &["config"],
    &["init"],
    &["creds"],
    &["creds", "sync"],
    &["creds", "push"],
    &["creds", "status"],
    &["creds", "export"],
    &["doctor"],
    &["image"],
    &["image", "build"],
    &["version"],
    &["completions"],
];

fn help_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/snapshots/help")
}

fn help_file(path: &[&str]) -> String {
    if path.is_empty() {
        "claunch.txt".into()
    } else {
        format!("{}.txt", path.join("/"))
    }
}

/// `claunch PATH --help` as a user reads it in a 100-column pipe: no terminal, no
/// environment (an env var behind an option would show its value).
fn help_page(path: &[&str]) -> Vec<u8> {
    let out = assert_cmd::Command::cargo_bin("claunch")
        .unwrap()
        .args(path)
        .arg("--help")
        .env_clear()
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "claunch {} --help: {out:?}",
        path.join(" ")
    );
    out.stdout
}

/// The subcommands a help page lists under `Commands:`, but clap's own `help`.
fn listed_subcommands(page: &str) -> Vec<String> {
    page.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        // A name is indented by two; a wrapped description by more.
        .filter_map(|l| l.strip_prefix("  ").filter(|rest| !rest.starts_with(' ')))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Compares each page of [`HELP_PAGES`] byte for byte with its snapshot (`CLAUNCH_BLESS`
/// rewrites them), and fails on a listed subcommand without one or a snapshot of none.
fn check_help_snapshots() {
    let bless = std::env::var_os("CLAUNCH_BLESS").is_some();
    let dir = help_dir();
    let known: BTreeSet<String> = HELP_PAGES.iter().map(|p| help_file(p)).collect();
    let mut problems = Vec::new();
    for path in HELP_PAGES {
        let page = help_page(path);
        let file = dir.join(help_file(path));
        if bless {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &page).unwrap();
        }
        let expected = std::fs::read(&file).unwrap_or_default();
        if page != expected {
            problems.push(format!(
                "claunch {} --help differs from {}\n--- expected\n{}\n--- actual\n{}",
                path.join(" "),
                file.display(),
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&page)
            ));
        }
        for sub in listed_subcommands(&String::from_utf8_lossy(&page)) {
            let mut sub_path = path.to_vec();
            sub_path.push(&sub);
            if !known.contains(&help_file(&sub_path)) {
                problems.push(format!(
                    "claunch {} has no help snapshot: add it to HELP_PAGES",
                    sub_path.join(" ")
                ));
            }
        }
    }
    let mut on_disk = Vec::new();
    let mut dirs = vec![dir.clone()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                on_disk.push(path);
            }
        }
    }
    for file in on_disk {
        let name = file.strip_prefix(&dir).unwrap().display().to_string();
        if !known.contains(&name) {
            if bless {
                std::fs::remove_file(&file).unwrap();
            } else {
                problems.push(format!(
                    "{} is the snapshot of no command in HELP_PAGES",
                    file.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n(to take what claunch prints now: CLAUNCH_BLESS=1 cargo nextest run --test it \
         lifecycle::completions_and_help_work, then read the diff)",
        problems.join("\n\n")
    );
}
