//! What a new user tripped over (issue 10): a second `up` hiding failed smoke tests, hints
//! cut to the terminal's width, silent waits, miscounted summaries, wording, and an empty
//! `logs`. Each test failed before its fix.

use predicates::prelude::*;

use crate::support::{image, Image, Project};

fn two_agents(p: &Project, bad_prompt: &str) {
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  good:\n    image: {img}\n  bad:\n    image: {img}\n    smoke:\n      prompt: \"{bad_prompt}\"\n      timeout: 20s\n",
        img = image(Image::Root)
    ));
}

fn stdout(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stdout).into_owned()
}

/// What a person sees running `claunch ARGS` in `p` on a real terminal, 80 columns wide
/// (script(1) gives it one).
fn on_a_terminal(p: &Project, args: &str) -> String {
    let bin = assert_cmd::cargo::cargo_bin("claunch");
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("stty cols 80; {} {args}", bin.display()),
            "/dev/null",
        ])
        .current_dir(p.dir.path())
        .env_remove("CLAUNCH_PROJECT")
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_second_up_tests_again_what_did_not_pass_and_only_that() {
    let p = Project::new("retest");
    p.login();
    two_agents(&p, "STANDIN:exit=3");
    let (good, bad) = (format!("{}-good-1", p.name), format!("{}-bad-1", p.name));
    let first = p.claunch().arg("up").assert().code(1);
    assert!(stdout(&first).contains("1 failed"), "{}", stdout(&first));

    // The failed one is not up to date: tested again, and only it; still failing, exit 1.
    let second = p.claunch().arg("up").assert().code(1);
    let out = stdout(&second);
    assert!(out.contains(&format!("{good} | done: up to date")), "{out}");
    assert!(out.contains(&format!("{bad} | smoke test")), "{out}");
    assert!(!out.contains(&format!("{good} | smoke test")), "{out}");
    assert!(out.contains("0 changed, 1 up to date, 1 failed"), "{out}");

    // `ps` shows each container's verdict.
    let ps = p.claunch().arg("ps").assert().success();
    let table = stdout(&ps);
    assert!(table.contains("SMOKE"), "{table}");
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line(&good).ends_with("passed"), "{table}");
    assert!(line(&bad).ends_with("failed"), "{table}");

    // Changing `smoke:` makes it test again; passing, the fleet is up: exit 0.
    two_agents(&p, "Say hello");
    let third = p.claunch().arg("up").assert().success();
    let out = stdout(&third);
    assert!(
        out.contains(&format!("{bad} | done: smoke test passed")),
        "{out}"
    );
    assert!(out.contains(&format!("{good} | done: up to date")), "{out}");
    let fourth = p.claunch().arg("up").assert().success();
    assert!(
        stdout(&fourth).contains("0 changed, 2 up to date, 0 failed"),
        "{}",
        stdout(&fourth)
    );
}

#[test]
fn a_smoke_timeout_says_what_claude_last_reported() {
    let p = Project::new("lastsaid");
    p.login();
    // The stand-in prints a line, then takes 3 s: longer than the smoke test's 1 s.
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    smoke:\n      prompt: \"STANDIN:slow\"\n      timeout: 1s\n",
        image(Image::Root)
    ));
    let out = p.claunch().arg("up").assert().code(1);
    assert!(
        stdout(&out).contains("no answer within 1s; claude last reported: first line"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn hints_are_printed_whole_on_a_narrow_terminal() {
    let p = Project::new("hints");
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    smoke:\n      prompt: \"STANDIN:hang\"\n      timeout: 1s\n",
        image(Image::Root)
    ));
    // A real terminal, 80 columns wide.
    let text = on_a_terminal(&p, "up");
    // The terminal may wrap it: join the lines back before looking.
    let joined: String = text
        .replace("\r\n", "\n")
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("");
    let hint = "check that the container reaches the API (ANTHROPIC_BASE_URL, proxy, DNS) or raise smoke.timeout";
    assert!(
        joined.contains(hint) || text.contains(hint),
        "the whole hint: {text}"
    );
}

#[test]
fn summaries_count_removals_and_json_gives_the_counts() {
    let p = Project::new("counts");
    p.login();
    let config = |n: u32| {
        format!(
            "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    replicas: {n}\n    smoke: false\n",
            image(Image::Root)
        )
    };
    p.write_config(&config(3));
    p.claunch().arg("up").assert().success();
    p.write_config(&config(2));
    let out = p.claunch().arg("up").assert().success();
    assert!(
        stdout(&out).contains("0 changed, 2 up to date, 1 removed, 0 failed"),
        "{}",
        stdout(&out)
    );
    p.write_config(&config(3));
    let out = p.claunch().args(["up", "--json"]).assert().success();
    let summary: serde_json::Value = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .expect("a summary event");
    assert_eq!(summary["created"], 1);
    assert_eq!(summary["recreated"], 0);
    assert_eq!(summary["removed"], 0);
    assert_eq!(summary["unchanged"], 2);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["project"], p.name.as_str());
}

#[test]
fn logs_of_an_agent_with_no_output_say_so() {
    let p = Project::new("quiet");
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    command: [\"sleep\", \"3600\"]\n    smoke: false\n",
        image(Image::Root)
    ));
    p.claunch().arg("up").assert().success();
    p.claunch()
        .arg("logs")
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "{}-agent-1 has no output yet",
            p.name
        )));
}

#[test]
fn creds_status_names_the_source_once_and_says_who_keeps_followers_fresh() {
    let p = Project::new("wording");
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    replicas: 2\n    smoke: false\n",
        image(Image::Root)
    ));
    p.claunch().arg("up").assert().success();
    let out = p.claunch().args(["creds", "status"]).assert().success();
    let text = stdout(&out);
    assert!(
        !text.contains("(source)"),
        "the source is named once: {text}"
    );
    assert!(
        text.contains("no `claunch creds sync --watch` runs for this project"),
        "{text}"
    );
    // With a watcher running, the follower says so, with its pid.
    let mut watch = std::process::Command::new(assert_cmd::cargo::cargo_bin("claunch"))
        .args(["creds", "sync", "--watch", "--interval", "1h"])
        .current_dir(p.dir.path())
        .env_remove("CLAUNCH_PROJECT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut said = String::new();
    while std::time::Instant::now() < deadline {
        said = stdout(&p.claunch().args(["creds", "status"]).assert());
        if said.contains("kept fresh by the `claunch creds sync --watch` running (pid") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // A second watcher of the same project is refused: one refresher per login.
    p.claunch()
        .args(["creds", "sync", "--watch"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("already keeps project"));
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        said.contains(&format!(
            "kept fresh by the `claunch creds sync --watch` running (pid {})",
            watch.id()
        )),
        "{said}"
    );
}

#[test]
fn exec_on_a_terminal_shows_what_it_waits_for_and_says_how_long_it_waited() {
    let p = Project::new("waits");
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    smoke: false\n",
        image(Image::Root)
    ));
    p.claunch().arg("up").assert().success();
    let text = on_a_terminal(&p, "exec agent-1 STANDIN:hang --timeout 3s");
    assert!(
        text.contains(&format!("waiting for claude in {}-agent-1", p.name)),
        "{text}"
    );
    assert!(
        text.contains("did not finish within the timeout (3s)"),
        "{text}"
    );
}

#[test]
fn exec_on_a_terminal_shows_claudes_retries_then_its_answer_as_text() {
    let p = Project::new("retries");
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    env:\n      STANDIN_STREAM_JSON: \"1\"\n    smoke: false\n",
        image(Image::Root)
    ));
    p.claunch().arg("up").assert().success();
    let text = on_a_terminal(&p, "exec agent-1 STANDIN:retry");
    assert!(
        text.contains("API unreachable, retry 1 of 10"),
        "the retry, live: {text}"
    );
    assert!(text.contains("answered after a retry"), "{text}");
    assert!(
        !text.contains("\"type\":"),
        "no raw JSON for a text answer: {text}"
    );
    // Not on a terminal: claude's own text output, unchanged.
    p.claunch()
        .args(["exec", "agent-1", "Say hello"])
        .assert()
        .success()
        .stdout("Hello from the stand-in claude. You said: Say hello\n");
}
