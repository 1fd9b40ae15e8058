//! Prompts that look like options (issue 13). `claude -p "--version"` prints claude's
//! version and `claude -p "--dangerously-skip-permissions"` is that flag: the prompt never
//! reaches the API. claunch puts every prompt after `--` (or on stdin). These run the real
//! CLI against the API stand-in on each path that builds a `claude -p` from a prompt a
//! user chose, and check that the prompt arrives as the user's text and that claude's
//! permission mode is what it is for any other prompt. The leader refresh's fixed prompt
//! is a unit test (`credentials::sync`); the argv itself, `claude::claude_print_argv`'s.

use std::fmt::Write as _;
use std::time::Duration;

use predicates::prelude::*;
use serde_json::Value;

use crate::support::real::{agent_entry, config, StandIn, CONFIG_HEAD};
use crate::support::Project;

const HOSTILE: [&str; 4] = [
    "--version",
    "-h",
    "--dangerously-skip-permissions",
    "--model=x",
];

/// Enough for one real `claude -p` against the stand-in (about a second here).
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// Whether a message request after the first `from` carried `prompt` as a text block of
/// its own, whole.
fn reached_as_text(standin: &StandIn, from: usize, prompt: &str) -> bool {
    standin
        .user_texts()
        .iter()
        .skip(from)
        .any(|texts| texts.iter().any(|t| t == prompt))
}

fn shown(out: &std::process::Output) -> String {
    format!(
        "{}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn hostile_prompts_in_the_smoke_test_reach_the_api_as_text() {
    let standin = StandIn::start(&[]);
    let p = Project::new("hostile-smoke");
    p.login();
    // One agent per prompt; claunch.yaml takes any string as `smoke.prompt` (JSON quoting
    // is YAML quoting).
    let mut yaml = CONFIG_HEAD.to_string();
    for (n, prompt) in HOSTILE.iter().enumerate() {
        yaml += &agent_entry(&standin, &format!("a{n}"), 1, Some("agent"));
        let quoted = serde_json::to_string(prompt).unwrap();
        let _ = write!(
            yaml,
            "    smoke:\n      prompt: {quoted}\n      max_turns: 1\n"
        );
    }
    p.write_config(&yaml);

    let out = p.claunch().arg("up").timeout(RUN_LIMIT).output().unwrap();
    let context = shown(&out);
    // `claunch up` exits 0 only when every smoke test's claude exited 0...
    assert!(out.status.success(), "{context}");
    assert_eq!(context.matches("smoke test passed").count(), 4, "{context}");
    // ...and each answered its prompt: not its version, not its help.
    assert!(
        !context.contains("(Claude Code)") && !context.contains("Usage: claude"),
        "{context}"
    );
    for prompt in HOSTILE {
        assert!(
            reached_as_text(&standin, 0, prompt),
            "the smoke prompt {prompt:?} did not reach the API as text: {:#?}\n{context}",
            standin.user_texts()
        );
    }
}

/// The JSON lines of a `--output-format stream-json` run.
fn stream(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{}", shown(out)))
        })
        .collect()
}

/// The `permissionMode` of claude's `{"type":"system","subtype":"init",…}` line, and
/// whether its `result` line says it succeeded.
fn permission_mode_and_success(out: &std::process::Output) -> (String, bool) {
    let lines = stream(out);
    let init = lines
        .iter()
        .find(|l| l["type"] == "system" && l["subtype"] == "init")
        .unwrap_or_else(|| panic!("no init line: {}", shown(out)));
    let result = lines.last().filter(|l| l["type"] == "result");
    (
        init["permissionMode"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        result.is_some_and(|r| r["is_error"] == false),
    )
}

#[test]
fn hostile_prompts_through_exec_reach_the_api_as_text_with_the_permission_mode_unchanged() {
    let standin = StandIn::start(&[]);
    let p = Project::new("hostile-exec");
    p.login();
    p.write_config(&config(&standin, &[("agent", 1, Some("agent"))]));
    p.claunch().args(["up", "--no-smoke"]).assert().success();
    let options = [
        "--max-turns",
        "1",
        "--output-format",
        "stream-json",
        "--timeout",
        "2m",
    ];

    // What claude says for any prompt.
    let plain = p
        .claunch()
        .args(["exec", "agent-1", "Say hello"])
        .args(options)
        .timeout(RUN_LIMIT)
        .output()
        .unwrap();
    let (usual, ok) = permission_mode_and_success(&plain);
    assert!(ok, "{}", shown(&plain));
    assert_eq!(usual, "default");

    for prompt in HOSTILE {
        let equals = format!("--prompt={prompt}");
        let ways: [(&str, Vec<&str>, Option<&str>); 3] = [
            ("--prompt TEXT", vec!["--prompt", prompt], None),
            ("--prompt=TEXT", vec![&equals], None),
            ("stdin", vec!["-"], Some(prompt)),
        ];
        for (way, args, stdin) in ways {
            let before = standin.messages().len();
            let mut cmd = p.claunch();
            cmd.args(["exec", "agent-1"])
                .args(&args)
                .args(options)
                .timeout(RUN_LIMIT);
            if let Some(stdin) = stdin {
                cmd.write_stdin(stdin);
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{prompt:?} by {way}: {}", shown(&out));
            let (mode, ok) = permission_mode_and_success(&out);
            assert_eq!(mode, usual, "{prompt:?} by {way}: {}", shown(&out));
            assert!(ok, "{prompt:?} by {way}: {}", shown(&out));
            assert!(
                reached_as_text(&standin, before, prompt),
                "{prompt:?} by {way} did not reach the API as text: {:#?}",
                standin.user_texts()
            );
        }
    }

    // Bare, it is claunch's own option: refused with the two ways to mean it, and nothing
    // runs.
    let before = standin.messages().len();
    p.claunch()
        .args(["exec", "agent-1", "--dangerously-skip-permissions"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("use '--prompt=--dangerously-skip-permissions'")
                .and(predicate::str::contains("after '--'")),
        );
    assert_eq!(standin.messages().len(), before);
}
