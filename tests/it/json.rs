//! `--json` on every command that prints data: each line of stdout is one JSON object,
//! whatever the command, and warnings go to stderr.

use serde_json::Value;

use crate::support::{image, real, Image, Project};

/// Every line of `out` parsed as a JSON object; fails naming the line that is not one.
fn objects(out: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(out);
    text.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{text}"));
            assert!(v.is_object(), "not an object: {l}");
            v
        })
        .collect()
}

#[test]
fn every_data_command_speaks_json_lines_under_json() {
    let p = Project::new("json");
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    replicas: 2\n",
        image(Image::Root)
    ));
    let run = |args: &[&str]| {
        let out = p.claunch().args(args).output().unwrap();
        (out.status.code(), objects(&out.stdout))
    };
    let (code, up) = run(&["up", "--json"]);
    assert_eq!(code, Some(0));
    assert!(up.iter().any(|v| v["event"] == "summary"));

    let (_, ps) = run(&["ps", "--json"]);
    assert_eq!(ps.len(), 2);
    assert!(ps.iter().all(|r| r["smoke"] == "passed"), "{ps:?}");

    let (code, exec) = run(&["exec", "agent", "Say hello", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        exec.iter().filter(|v| v["event"] == "exited").count(),
        2,
        "{exec:?}"
    );
    assert!(exec
        .iter()
        .any(|v| v["event"] == "output" && v["stream"] == "stdout"));

    let (_, logs) = run(&["logs", "--json"]);
    assert!(logs
        .iter()
        .all(|v| v["container"].is_string() && v["line"].is_string()));
    assert!(!logs.is_empty());

    let (code, status) = run(&["creds", "status", "--json"]);
    assert_eq!(code, Some(0));
    assert!(!status.is_empty());
    let (code, _) = run(&["creds", "sync", "--json"]);
    assert_eq!(code, Some(0));
    let (code, push) = run(&["creds", "push", "--json"]);
    assert_eq!(code, Some(0));
    assert!(push.iter().any(|v| v["event"] == "finished"), "{push:?}");
    let (_, doctor) = run(&["doctor", "--json"]);
    assert!(!doctor.is_empty());

    let (code, down) = run(&["down", "--json"]);
    assert_eq!(code, Some(0));
    assert!(down.iter().any(|v| v["event"] == "finished"), "{down:?}");
}

#[test]
fn image_build_speaks_json_lines_under_json() {
    let tag = real::agent_image();
    let out = assert_cmd::Command::cargo_bin("claunch")
        .unwrap()
        .args(["image", "build", "--json", "--claude"])
        .arg(real::claude_bin())
        .args(["--tag", &tag])
        .assert()
        .success();
    let lines = objects(&out.get_output().stdout);
    assert!(!lines.is_empty());
}
