//! `claunch exec`: output streams as it comes, exit codes pass through, fan-out prefixes
//! every line and sums up.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use predicates::prelude::*;

use crate::support::{image, Image, Project};

fn fleet(test: &str, replicas: u32) -> Project {
    let p = Project::new(test);
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    replicas: {replicas}\n",
        image(Image::Named)
    ));
    p.claunch().args(["up", "--no-smoke"]).assert().success();
    p
}

#[test]
fn the_first_line_arrives_before_claude_finishes() {
    let p = fleet("stream", 1);
    let bin = assert_cmd::cargo::cargo_bin("claunch");
    let mut child = std::process::Command::new(bin)
        .current_dir(p.dir.path())
        .args(["exec", "agent-1", "STANDIN:slow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first line");
    // The stand-in sleeps 3s before its second line: claunch must still be running.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first line came only after the end"
    );
    assert_eq!(lines.next().unwrap().unwrap(), "second line");
    assert!(child.wait().unwrap().success());
}

#[test]
fn exit_codes_stdin_prompts_and_flags_pass_through() {
    let p = fleet("codes", 1);
    p.claunch()
        .args(["exec", "agent-1", "STANDIN:exit=3"])
        .assert()
        .code(3)
        .stdout("exiting as asked\n");
    p.claunch()
        .args(["exec", "agent-1", "-"])
        .write_stdin("from stdin")
        .assert()
        .success()
        .stdout(predicate::str::contains("You said: from stdin"));
    p.claunch()
        .args(["exec", "agent-1", "STANDIN:argv", "--output-format", "stream-json", "--max-turns", "2", "--", "--model", "sonnet"])
        .assert()
        .success()
        .stdout("argv: -p --max-turns 2 --output-format stream-json --verbose --model sonnet -- STANDIN:argv\n");
    p.claunch()
        .args(["exec", "agent-1", "STANDIN:stderr"])
        .assert()
        .success()
        .stderr("to stderr\n");
    p.claunch()
        .args(["exec", "agent-1", "STANDIN:hang", "--timeout", "1s"])
        .assert()
        .code(124)
        .stderr(predicate::str::contains(
            "did not finish within the timeout",
        ));
    p.claunch()
        .args(["exec", "nope", "hi"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no container matches `nope`"));
}

#[test]
fn fan_out_prefixes_each_line_and_fails_if_any_fails() {
    let p = fleet("fanout", 3);
    let out = p.claunch().args(["exec", "--all", "hi"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for n in 1..=3 {
        assert!(
            stdout.contains(&format!(
                "{}-agent-{n} | Hello from the stand-in claude. You said: hi",
                p.name
            )),
            "{stdout}"
        );
    }
    // By agent name, with one replica failing.
    p.sh(
        &format!("{}-agent-2", p.name),
        "rm /home/agent/.claude/.credentials.json",
    );
    let out = p.claunch().args(["exec", "agent", "hi"]).assert().code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stdout.contains(&format!(
            "{}-agent-2 | Not logged in · Please run /login",
            p.name
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("3 containers: 2 succeeded, 1 failed"),
        "{stderr}"
    );
}
