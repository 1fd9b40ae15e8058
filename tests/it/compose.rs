//! The habits of a docker compose user, each answered: `up -d`.

use predicates::prelude::*;

use crate::support::{self, image, rt, Image, Project};

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
