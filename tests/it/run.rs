//! `claunch run` with the stand-in claude speaking stream-json (`STANDIN_STREAM_JSON=1`):
//! the queue spread over the fleet, every field of the results, resume, bad tasks files
//! with their exact messages, retries, timeouts, a lost login, a usage limit waited out,
//! SIGINT in the middle, files in and collected out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{image, Image, Project};

/// A project of agents `(name, replicas)` on the non-root stand-in image, up, with the
/// stand-in speaking stream-json.
pub fn fleet(test: &str, agents: &[(&str, u32)]) -> Project {
    let p = Project::new(test);
    p.login();
    let mut yaml = String::from("project: {project}\ncredentials:\n  file: {creds}\nagents:\n");
    for (name, replicas) in agents {
        let _ = write!(
            yaml,
            "  {name}:\n    image: {}\n    replicas: {replicas}\n    env: {{STANDIN_STREAM_JSON: \"1\"}}\n",
            image(Image::Named)
        );
    }
    p.write_config(&yaml);
    p.claunch().args(["up", "--no-smoke"]).assert().success();
    p
}

/// Writes `tasks.jsonl` in the project's directory.
pub fn write_tasks(p: &Project, lines: &[String]) {
    std::fs::write(p.path("tasks.jsonl"), lines.join("\n") + "\n").unwrap();
}

/// The results file's lines, parsed.
pub fn results(p: &Project) -> Vec<Value> {
    results_at(&p.path("tasks.results.jsonl"))
}

pub fn results_at(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a torn line: {text}"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `--json` output's events.
pub fn events(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An RFC 3339 UTC time as claunch writes them.
fn is_rfc3339(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

#[test]
fn tasks_spread_over_the_fleet_with_every_field_and_a_rerun_skips_them() {
    let p = fleet("run-spread", &[("a", 2), ("b", 1)]);
    let mut lines: Vec<String> = (1..=9)
        .map(|i| format!(r#"{{"id": "t{i}", "prompt": "STANDIN:sleep=0.5"}}"#))
        .collect();
    lines.push(r#"{"id": "only-b", "prompt": "say \"b\"", "agent": "b"}"#.into());
    lines.push(r#"{"id": "opt", "prompt": "--version"}"#.into());
    write_tasks(&p, &lines);
    let run = p
        .claunch()
        .args(["run", "tasks.jsonl", "--json"])
        .assert()
        .success();
    let out = run.get_output();
    let lines = results(&p);
    assert_eq!(lines.len(), 11, "{}", text(&out.stderr));
    let mut containers = BTreeSet::new();
    for line in &lines {
        assert_eq!(line["status"], "ok", "{line}");
        assert_eq!(line["attempts"], 1);
        assert_eq!(line["exit_code"], 0);
        assert!(line["session_id"].as_str().unwrap().starts_with("standin-"));
        assert_eq!(line["num_turns"], 1);
        assert_eq!(line["duration_ms"], 12);
        assert_eq!(line["total_cost_usd"], 0.0015);
        assert_eq!(
            line["usage"],
            serde_json::json!({"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 1, "cache_read_input_tokens": 2})
        );
        assert!(
            is_rfc3339(&line["started_at"]) && is_rfc3339(&line["ended_at"]),
            "{line}"
        );
        assert!(line.get("error").is_none());
        containers.insert(line["container"].as_str().unwrap().to_string());
    }
    assert_eq!(
        containers,
        BTreeSet::from([
            format!("{}-a-1", p.name),
            format!("{}-a-2", p.name),
            format!("{}-b-1", p.name)
        ]),
        "the work is spread over every container"
    );
    let by_id: BTreeMap<&str, &Value> = lines
        .iter()
        .map(|l| (l["id"].as_str().unwrap(), l))
        .collect();
    assert_eq!(by_id["only-b"]["agent"], "b");
    assert_eq!(
        by_id["only-b"]["result"],
        "Hello from the stand-in claude. You said: say \"b\""
    );
    assert_eq!(
        by_id["opt"]["result"], "Hello from the stand-in claude. You said: --version",
        "a prompt that looks like an option is a prompt"
    );
    let events = events(&out.stdout);
    assert_eq!(of_kind(&events, "task_started").len(), 11);
    assert_eq!(of_kind(&events, "task_finished").len(), 11);
    let summary = of_kind(&events, "summary")[0];
    assert_eq!(
        (&summary["ok"], &summary["failed"], &summary["tasks"]),
        (&Value::from(11), &Value::from(0), &Value::from(11))
    );
    assert!((summary["total_cost_usd"].as_f64().unwrap() - 0.0165).abs() < 1e-9);
    assert_eq!(summary["input_tokens"], 110);
    assert_eq!(summary["output_tokens"], 55);

    // Again: everything is ok already, nothing runs, no line is added.
    let again = p.claunch().args(["run", "tasks.jsonl"]).assert().success();
    let said = text(&again.get_output().stderr);
    assert!(
        said.contains("11 tasks: 0 ok, 0 failed, 0 timed out, 11 already ok"),
        "{said}"
    );
    assert_eq!(results(&p).len(), 11);
}

#[test]
fn bad_tasks_files_say_where_and_nothing_runs() {
    let p = fleet("run-bad", &[("a", 1)]);
    let cases: &[(&str, &str)] = &[
        (
            "{\"id\": \"a\", \"prompt\": \"x\"}\n{\"id\": \"b\" \"prompt\": \"y\"}\n",
            "error: tasks.jsonl:2:12: not valid JSON: expected `,` or `}`\n",
        ),
        (
            "{\"id\": \"a\", \"promt\": \"x\"}\n",
            "error: tasks.jsonl:1:13: promt: unknown key `promt`\n  hint: did you mean `prompt`?\n",
        ),
        (
            "{\"prompt\": \"x\"}\n",
            "error: tasks.jsonl:1:1: missing required key `id`\n",
        ),
        (
            "{\"id\": \"a\"}\n",
            "error: tasks.jsonl:1:1: missing required key `prompt`\n",
        ),
        (
            "{\"id\": \"a\", \"prompt\": \"x\"}\n{\"id\": \"a\", \"prompt\": \"y\"}\n",
            "error: tasks.jsonl:2:2: id: duplicate id `a` (first on line 1)\n",
        ),
        (
            "{\"id\": \"a\", \"prompt\": \"x\", \"agent\": \"nope\"}\n",
            "error: tasks.jsonl:1:28: agent: no running container of agent `nope` takes tasks here (running: a)\n",
        ),
        (
            "{\"id\": \"a\", \"prompt\": \"x\", \"timeout\": \"soon\"}\n",
            "error: tasks.jsonl:1:28: timeout: invalid duration \"soon\": write it like \"90s\", \"10m\" or \"1h30m\"\n",
        ),
    ];
    for (tasks, expected) in cases {
        std::fs::write(p.path("tasks.jsonl"), tasks).unwrap();
        p.claunch()
            .args(["run", "tasks.jsonl"])
            .assert()
            .code(1)
            .stdout("")
            .stderr(*expected);
        assert!(
            !p.path("tasks.results.jsonl").exists(),
            "nothing ran for {tasks:?}"
        );
    }
    p.claunch()
        .args(["run", "missing.jsonl"])
        .assert()
        .code(1)
        .stderr("error: missing.jsonl: cannot read: no such file\n");
    p.claunch()
        .args(["run", "-"])
        .write_stdin("{\"id\": \"a\", \"prompt\": \"x\"}\n")
        .assert()
        .code(1)
        .stderr("error: reading the tasks from stdin needs --results FILE: there is no TASKS file to name the results after\n");
    p.claunch()
        .args(["run", "-", "--results", "out.jsonl"])
        .write_stdin("{\"id\": \"a\", \"prompt\": 5}\n")
        .assert()
        .code(1)
        .stderr("error: stdin:1:13: prompt: invalid type: number 5, expected a string\n");
    std::fs::write(
        p.path("tasks.jsonl"),
        "{\"id\": \"a\", \"prompt\": \"x\"}\n",
    )
    .unwrap();
    p.claunch()
        .args(["run", "tasks.jsonl", "--agent", "zz"])
        .assert()
        .code(1)
        .stderr(format!("error: --agent zz: project `{}` has no agent `zz` (its agents are a)\n  hint: `claunch ps` lists the containers\n", p.name));
    p.claunch()
        .args(["run", "tasks.jsonl", "--timeout", "soon"])
        .assert()
        .code(1)
        .stderr("error: --timeout soon: invalid duration \"soon\": write it like `120s`, `2m`, `1h30m`, `500ms` or a number of seconds\n");
    assert!(!p.path("tasks.results.jsonl").exists());
}

/// Lines of `ps` in a container that are the stand-in's own (its `sleep`s included).
fn standin_processes(p: &Project, container: &str) -> Vec<String> {
    p.sh(
        container,
        "ps -o pid,args | grep -E 'claude|sleep 3600|sleep 2$' | grep -v -E 'grep|while true'",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn passing_failures_are_retried_timeouts_stopped_and_failures_recorded() {
    let p = fleet("run-retry", &[("a", 1)]);
    write_tasks(
        &p,
        &[
            r#"{"id": "overloaded-once", "prompt": "STANDIN:529-once=x"}"#.into(),
            r#"{"id": "overloaded", "prompt": "STANDIN:529"}"#.into(),
            r#"{"id": "hangs", "prompt": "STANDIN:hang", "timeout": "2s"}"#.into(),
            r#"{"id": "exits", "prompt": "STANDIN:exit=3"}"#.into(),
        ],
    );
    let t0 = Instant::now();
    let run = p
        .claunch()
        .args(["run", "tasks.jsonl", "--retries", "1", "--json"])
        .assert()
        .code(1);
    let out = run.get_output();
    let by_id: BTreeMap<String, Value> = results(&p)
        .into_iter()
        .map(|l| (l["id"].as_str().unwrap().to_string(), l))
        .collect();
    assert_eq!(by_id.len(), 4, "{}", text(&out.stderr));
    let once = &by_id["overloaded-once"];
    assert_eq!(
        (&once["status"], &once["attempts"]),
        (&"ok".into(), &2.into())
    );
    let overloaded = &by_id["overloaded"];
    assert_eq!(overloaded["status"], "failed");
    assert_eq!(overloaded["attempts"], 2);
    assert_eq!(
        overloaded["error"],
        serde_json::json!({"class": "api_error", "message": "API answered 529: API Error: 529 Overloaded", "http_status": 529})
    );
    let hangs = &by_id["hangs"];
    assert_eq!(
        (&hangs["status"], &hangs["attempts"]),
        (&"timeout".into(), &2.into())
    );
    assert_eq!(hangs["error"]["class"], "timeout");
    assert!(hangs["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("no result within 2s"));
    let exits = &by_id["exits"];
    assert_eq!(
        (&exits["status"], &exits["attempts"]),
        (&"failed".into(), &1.into())
    );
    assert_eq!(
        exits["error"],
        serde_json::json!({"class": "failed", "message": "exiting as asked"})
    );
    assert_eq!(exits["exit_code"], 3);
    let events = events(&out.stdout);
    let retried: Vec<&str> = of_kind(&events, "task_retried")
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        retried.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(["overloaded-once", "overloaded", "hangs"])
    );
    // The timed-out claude was stopped inside the container, both times.
    let c = format!("{}-a-1", p.name);
    assert_eq!(standin_processes(&p, &c), Vec::<String>::new());
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
}

#[test]
fn a_lost_login_stops_the_run_at_once_with_the_fix() {
    let p = fleet("run-auth", &[("a", 1)]);
    let mut lines = vec![r#"{"id": "rejected", "prompt": "STANDIN:401"}"#.to_string()];
    lines.extend((1..=5).map(|i| format!(r#"{{"id": "t{i}", "prompt": "hello"}}"#)));
    write_tasks(&p, &lines);
    let run = p.claunch().args(["run", "tasks.jsonl"]).assert().code(1);
    let err = text(&run.get_output().stderr);
    assert!(
        err.contains(&format!("error: {}-a-1: API answered 401: Failed to authenticate. API Error: 401 OAuth token has expired.\n  hint: the login is not accepted: run `claunch creds sync` (or `claude login` on the host, then `claunch creds push`), then this command again", p.name)),
        "{err}"
    );
    let lines = results(&p);
    assert_eq!(lines.len(), 1, "the queue was not burnt through: {lines:?}");
    assert_eq!(lines[0]["error"]["class"], "token_rejected");
    assert_eq!(lines[0]["error"]["http_status"], 401);
    assert!(
        err.contains("6 tasks: 0 ok, 1 failed, 0 timed out, 5 not run"),
        "{err}"
    );
}

#[test]
fn a_usage_limit_pauses_the_login_until_the_reset_then_one_task_goes_first() {
    let p = fleet("run-limit", &[("a", 2)]);
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 6;
    let mut lines: Vec<String> = (1..=2)
        .map(|i| format!(r#"{{"id": "before{i}", "prompt": "hello"}}"#))
        .collect();
    lines.extend(
        (1..=4).map(|i| {
            format!(r#"{{"id": "limited{i}", "prompt": "STANDIN:limited-until={reset}"}}"#)
        }),
    );
    write_tasks(&p, &lines);
    let run = p
        .claunch()
        .args(["run", "tasks.jsonl", "--json"])
        .assert()
        .success();
    let out = run.get_output();
    let lines = results(&p);
    assert_eq!(lines.len(), 6, "{}", text(&out.stderr));
    for line in &lines {
        assert_eq!(line["status"], "ok", "{line}");
        assert_eq!(
            line["attempts"], 1,
            "a usage limit is not an attempt: {line}"
        );
    }
    let events = events(&out.stdout);
    let paused = of_kind(&events, "login_paused");
    assert_eq!(paused.len(), 1, "{events:#?}");
    assert_eq!(paused[0]["login"], "default");
    assert_eq!(paused[0]["limit"], "five_hour");
    let until = paused[0]["until"].as_i64().unwrap();
    assert!(
        until >= i64::try_from(reset).unwrap() && until <= i64::try_from(reset).unwrap() + 2,
        "{until} vs {reset}"
    );
    assert_eq!(of_kind(&events, "login_probing").len(), 1);
    assert_eq!(of_kind(&events, "login_resumed").len(), 1);
    assert!(!of_kind(&events, "task_requeued").is_empty());
    // No task started while paused but the probe.
    let position = |kind: &str| events.iter().position(|e| e["event"] == kind).unwrap();
    let started_while_paused = events[position("login_paused")..position("login_probing")]
        .iter()
        .filter(|e| e["event"] == "task_started")
        .count();
    assert_eq!(started_while_paused, 0, "{events:#?}");
}

#[test]
fn sigint_stops_claude_in_the_containers_and_a_rerun_finishes_exactly_once() {
    let p = fleet("run-sigint", &[("a", 2)]);
    let lines: Vec<String> = (1..=8)
        .map(|i| format!(r#"{{"id": "t{i}", "prompt": "STANDIN:sleep=2"}}"#))
        .collect();
    write_tasks(&p, &lines);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("claunch"))
        .current_dir(p.dir.path())
        .env_remove("CLAUNCH_PROJECT")
        .args(["run", "tasks.jsonl", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    // Once two tasks have finished and two more started: interrupt mid-task.
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        let event: Value = serde_json::from_str(line.trim()).unwrap();
        line.clear();
        seen.push(event);
        let finished = of_kind(&seen, "task_finished").len();
        let started = of_kind(&seen, "task_started").len();
        if finished >= 2 && started >= 4 {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    for (name, _) in p.containers() {
        assert_eq!(standin_processes(&p, &name), Vec::<String>::new(), "{name}");
    }
    let first = results(&p);
    assert!(first.len() >= 2 && first.len() < 8, "{first:?}");
    assert!(first.iter().all(|l| l["status"] == "ok"));

    p.claunch().args(["run", "tasks.jsonl"]).assert().success();
    let all = results(&p);
    let ids: Vec<&str> = all.iter().map(|l| l["id"].as_str().unwrap()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 8, "exactly one ok line per id: {ids:?}");
    assert_eq!(unique.len(), 8);
}

#[test]
fn files_go_in_owned_by_the_agent_and_collected_files_come_out() {
    let p = fleet("run-files", &[("a", 1)]);
    let input = p.path("input");
    std::fs::create_dir_all(input.join("deeper")).unwrap();
    std::fs::write(input.join("a.txt"), "hello files\n").unwrap();
    std::fs::write(input.join("deeper/b.txt"), "b\n").unwrap();
    let script = "mkdir -p out/sub && tr a-z A-Z < in/a.txt > out/A.txt && cp in/deeper/b.txt out/sub/ && ln -s /etc/passwd out/link && mkfifo out/fifo && stat -c %u:%g in/a.txt /work";
    write_tasks(
        &p,
        &[serde_json::json!({
            "id": "files",
            "prompt": format!("STANDIN:sh={script}"),
            "workdir": "/work",
            "files": [{"source": "input", "target": "in"}],
            "collect": ["out", "/work/in/a.txt"],
        })
        .to_string()],
    );
    let run = p.claunch().args(["run", "tasks.jsonl"]).assert().success();
    let err = text(&run.get_output().stderr);
    let lines = results(&p);
    assert_eq!(lines[0]["status"], "ok", "{err}");
    assert_eq!(
        lines[0]["result"], "1000:1000 1000:1000",
        "the files and the directories made for them belong to the agent"
    );
    let dir = p.path("tasks.results/files");
    assert_eq!(
        std::fs::read_to_string(dir.join("out/A.txt")).unwrap(),
        "HELLO FILES\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("out/sub/b.txt")).unwrap(),
        "b\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("a.txt")).unwrap(),
        "hello files\n"
    );
    assert!(
        !dir.join("out/link").exists() && std::fs::symlink_metadata(dir.join("out/link")).is_err()
    );
    assert!(std::fs::symlink_metadata(dir.join("out/fifo")).is_err());
    assert!(
        err.contains("files: left out /work/out: out/link (a symbolic link)"),
        "{err}"
    );
    assert!(
        err.contains("files: left out /work/out: out/fifo (a FIFO)"),
        "{err}"
    );
}

#[test]
fn up_first_then_only_the_agents_asked_for_and_a_torn_line_is_cut_off() {
    let p = Project::new("run-up");
    p.login();
    let mut yaml = String::from("project: {project}\ncredentials:\n  file: {creds}\nagents:\n");
    for name in ["a", "b"] {
        let _ = write!(
            yaml,
            "  {name}:\n    image: {}\n    env: {{STANDIN_STREAM_JSON: \"1\"}}\n",
            image(Image::Named)
        );
    }
    p.write_config(&yaml);
    let lines: Vec<String> = (1..=4)
        .map(|i| format!(r#"{{"id": "t{i}", "prompt": "hello {i}"}}"#))
        .collect();
    write_tasks(&p, &lines);
    // A crash left half a line behind.
    std::fs::write(p.path("tasks.results.jsonl"), r#"{"id":"t1","status":"o"#).unwrap();
    let run = p
        .claunch()
        .args(["run", "tasks.jsonl", "--up", "--agent", "b"])
        .assert()
        .success();
    let err = text(&run.get_output().stderr);
    assert!(
        err.contains(
            "tasks.results.jsonl: cut off a torn last line (22 bytes) an interrupted run left"
        ),
        "{err}"
    );
    let names: Vec<String> = p.containers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [format!("{}-b-1", p.name)],
        "--up --agent b brings up b only"
    );
    let lines = results(&p);
    assert_eq!(lines.len(), 4);
    assert!(lines
        .iter()
        .all(|l| l["container"] == format!("{}-b-1", p.name)));
}
