//! `claunch up` when things go wrong underneath it: an engine that fails requests
//! (through a fault-injecting proxy), SIGINT and SIGTERM in the middle, an engine killed
//! and restarted in the middle, and containers that die or hang in their smoke test.
//!
//! After each, the fleet must be in a state a rerun can finish from: no duplicate
//! replica, no container running without its credentials, no container created and
//! never started; and a rerun converges.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use claunch::engine::Engine;
use claunch::fleet::label;
use futures::StreamExt;

use crate::support::engines::SecondEngine;
use crate::support::proxy::{Fault, Proxy, Rule};
use crate::support::{self, image, rt, Image, Project};

/// The most any one `claunch` run here may take before the test calls it hung.
const RUN_LIMIT: Duration = Duration::from_secs(150);

const ROOT_CREDS: &str = "/root/.claude/.credentials.json";

fn fleet_yaml(image: &str, replicas: u32, smoke: &str) -> String {
    format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {image}\n    replicas: {replicas}\n{smoke}"
    )
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a shell command as root in a container of `engine`; its stdout.
fn sh(engine: &Engine, container: &str, script: &str) -> String {
    let argv = vec!["sh".into(), "-c".into(), script.into()];
    rt().block_on(async {
        let mut s = engine
            .exec(container, argv, Some("0".into()), false)
            .await
            .unwrap_or_else(|e| panic!("exec in {container}: {e}"));
        let mut out = Vec::new();
        while let Some(chunk) = s.output.next().await {
            if let claunch::engine::Output::Stdout(b) = chunk.unwrap() {
                out.extend_from_slice(&b);
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// The project's containers on `engine`: name → state.
fn states(engine: &Engine, project: &str) -> Vec<(String, String)> {
    let list = rt()
        .block_on(engine.list_containers(&[(label::PROJECT, project)]))
        .unwrap();
    let mut out: Vec<(String, String)> = list.into_iter().map(|c| (c.name, c.state)).collect();
    out.sort();
    out
}

/// What every state claunch leaves must satisfy: each replica at most once, nothing
/// created and never started, and every running container holding its credentials.
/// Returns the running containers' names.
fn check_safe(
    engine: &Engine,
    project: &str,
    agent: &str,
    replicas: u32,
    context: &str,
) -> Vec<String> {
    let all = states(engine, project);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate names: {all:?}\n{context}"
    );
    let allowed: BTreeSet<String> = (1..=replicas)
        .map(|n| format!("{project}-{agent}-{n}"))
        .collect();
    for (name, state) in &all {
        assert!(
            allowed.contains(name),
            "unexpected container {name}: {all:?}\n{context}"
        );
        assert_ne!(
            state, "created",
            "{name} was created and never started\n{context}"
        );
    }
    let running: Vec<String> = all
        .iter()
        .filter(|(_, s)| s == "running")
        .map(|(n, _)| n.clone())
        .collect();
    for name in &running {
        let present = sh(
            engine,
            name,
            &format!("test -s {ROOT_CREDS} && echo present"),
        );
        assert_eq!(
            present.trim(),
            "present",
            "{name} runs without its credentials\n{context}"
        );
    }
    running
}

/// Converged: exactly the declared replicas, all running with their credentials.
fn check_converged(engine: &Engine, project: &str, agent: &str, replicas: u32, context: &str) {
    let running = check_safe(engine, project, agent, replicas, context);
    let all = states(engine, project);
    assert_eq!(
        running.len(),
        usize::try_from(replicas).unwrap(),
        "expected {replicas} running: {all:?}\n{context}"
    );
    assert_eq!(all.len(), running.len(), "{all:?}\n{context}");
}

fn up_through(p: &Project, proxy: &Proxy, extra: &[&str]) -> Output {
    let mut args = vec!["-H".to_string(), proxy.host(), "up".to_string()];
    args.extend(extra.iter().map(|s| (*s).to_string()));
    p.claunch().args(&args).timeout(RUN_LIMIT).output().unwrap()
}

/// A fleet of `replicas` behind a proxy failing `rules`; `up` must converge with exit 0,
/// the faults must have happened, and a second, fault-free `up` must change nothing.
fn converges_despite(test: &str, seed: u64, rules: Vec<Rule>, smoke: &str) {
    const REPLICAS: u32 = 6;
    let p = Project::new(test);
    p.login();
    p.write_config(&fleet_yaml(&image(Image::Root), REPLICAS, smoke));
    // 3 faults at most per container: under the 5 attempts claunch gives each step.
    let proxy = Proxy::start(seed, 3, rules);
    let out = up_through(&p, &proxy, &["--parallel", "3"]);
    let context = format!(
        "faults injected: {:?}\n{}",
        proxy
            .seen()
            .iter()
            .filter(|s| s.fault.is_some())
            .collect::<Vec<_>>(),
        text(&out)
    );
    assert!(
        proxy.faults() > 0,
        "the proxy injected no fault: the test proves nothing\n{context}"
    );
    check_safe(&support::engine(), &p.name, "agent", REPLICAS, &context);
    assert_eq!(out.status.code(), Some(0), "up did not converge\n{context}");
    check_converged(&support::engine(), &p.name, "agent", REPLICAS, &context);

    proxy.set_rules(Vec::new());
    let again = up_through(&p, &proxy, &[]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        stdout.contains(&format!("0 changed, {REPLICAS} up to date, 0 failed")),
        "{}",
        text(&again)
    );
}

const FLAKY: &[Fault] = &[Fault::Status500, Fault::Reset];

#[test]
fn a_flaky_engine_on_create_start_and_upload_still_converges() {
    converges_despite(
        "flaky-write",
        0x5eed_0001,
        vec![
            Rule::new("POST", "/containers/create", 0.4, FLAKY),
            Rule::new("POST", "/containers/*/start", 0.4, FLAKY),
            Rule::new("PUT", "/containers/*/archive", 0.4, FLAKY),
        ],
        "",
    );
}

#[test]
fn lost_answers_to_create_start_and_upload_leave_no_duplicates() {
    // The engine acted, the client never heard: a retried create finds the name taken.
    converges_despite(
        "flaky-lost",
        0x5eed_0002,
        vec![
            Rule::new("POST", "/containers/create", 0.5, &[Fault::LoseAnswer]),
            Rule::new("POST", "/containers/*/start", 0.5, &[Fault::LoseAnswer]),
            Rule::new("PUT", "/containers/*/archive", 0.5, &[Fault::LoseAnswer]),
        ],
        "",
    );
}

#[test]
fn a_flaky_engine_on_read_back_still_converges() {
    // The probe before delivery reads /etc/passwd (GET) and stats directories (HEAD).
    converges_despite(
        "flaky-read",
        0x5eed_0003,
        vec![
            Rule::new("GET", "/containers/*/archive", 0.4, FLAKY),
            Rule::new("HEAD", "/containers/*/archive", 0.4, FLAKY),
        ],
        "",
    );
}

#[test]
fn a_flaky_engine_on_exec_still_converges() {
    // The smoke test: exec create, exec start (an upgraded connection), exec inspect.
    converges_despite(
        "flaky-exec",
        0x5eed_0004,
        vec![
            Rule::new("POST", "/containers/*/exec", 0.4, FLAKY),
            Rule::new("POST", "/exec/*/start", 0.4, FLAKY),
            Rule::new("GET", "/exec/*/json", 0.4, FLAKY),
        ],
        "",
    );
}

#[test]
fn an_engine_that_keeps_failing_is_reported_per_container_and_a_rerun_converges() {
    const REPLICAS: u32 = 3;
    let p = Project::new("flaky-dead");
    p.login();
    p.write_config(&fleet_yaml(&image(Image::Root), REPLICAS, ""));
    let proxy = Proxy::start(
        0x5eed_0005,
        u32::MAX,
        vec![Rule::new(
            "POST",
            "/containers/*/start",
            1.0,
            &[Fault::Status500],
        )],
    );
    let started = Instant::now();
    let out = up_through(&p, &proxy, &[]);
    let context = text(&out);
    assert_eq!(out.status.code(), Some(1), "{context}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for n in 1..=REPLICAS {
        let name = format!("{}-agent-{n}", p.name);
        assert!(
            stdout.lines().any(
                |l| l.starts_with(&format!("{name} | failed: start container "))
                    && l.ends_with(": injected by the test proxy")
            ),
            "no clear failure line for {name}\n{context}"
        );
    }
    assert!(
        stdout.contains(&format!(
            "{} containers: 0 changed, 0 up to date, {REPLICAS} failed",
            p.name
        )),
        "{context}"
    );
    // Retried a few times with backoff, then given up: not forever.
    assert!(started.elapsed() < Duration::from_secs(60), "{context}");
    // 1 + 4 retries per container.
    assert_eq!(
        proxy.count(Fault::Status500),
        5 * usize::try_from(REPLICAS).unwrap(),
        "{context}"
    );
    let running = check_safe(&support::engine(), &p.name, "agent", REPLICAS, &context);
    assert!(running.is_empty(), "{running:?}");

    // The engine is well again: a rerun converges.
    let out = p.claunch().arg("up").timeout(RUN_LIMIT).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    check_converged(&support::engine(), &p.name, "agent", REPLICAS, &text(&out));
}

/// `claunch` started in the background, its stdout lines arriving on a channel.
struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Background {
    fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_claunch"))
            .args(args)
            .current_dir(dir)
            .env_remove("CLAUNCH_PROJECT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Waits until `n` stdout lines satisfy `pred`.
    fn wait_for(&mut self, n: usize, within: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + within;
        while self.seen.iter().filter(|l| pred(l)).count() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!(
                    "waited {within:?} for {n} matching lines; got:\n{}",
                    self.seen.join("\n")
                )
            };
            self.seen.push(line);
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for the exit; (exit code, stdout, stderr). Kills it and fails past `within`.
    fn finish(mut self, within: Duration) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "claunch did not exit within {within:?}; its output so far:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader thread ends at EOF; take what is left.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (status.code(), self.seen.join("\n"), stderr)
    }
}

impl Drop for Background {
    /// A test that fails while claunch runs must not leave it running.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn interrupted_in_the_middle(test: &str, sig: &str) {
    const REPLICAS: u32 = 20;
    let p = Project::new(test);
    p.login();
    p.write_config(&fleet_yaml(
        &image(Image::Root),
        REPLICAS,
        "    smoke:\n      prompt: \"STANDIN:slow\"\n",
    ));
    let mut up = Background::start(p.dir.path(), &["up", "--parallel", "2"]);
    // In the middle: some done, some in their smoke test, most not begun.
    up.wait_for(2, Duration::from_secs(90), |l| {
        l.contains(" | done: smoke test passed")
    });
    up.signal(sig);
    let (code, stdout, stderr) = up.finish(Duration::from_secs(60));
    let context = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(code, Some(130), "{context}");
    assert!(
        stderr
            .contains("claunch: interrupted: finishing the steps under way, starting nothing new"),
        "{context}"
    );
    // It says what it left.
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("interrupted: "))
        .unwrap_or_else(|| panic!("no `interrupted:` summary\n{context}"));
    let not_started: usize = summary
        .strip_prefix("interrupted: ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable summary {summary:?}"));
    assert!(
        summary.contains(" not started (") && summary.ends_with("run `claunch up` again to finish"),
        "{summary}"
    );
    // It stopped starting new work: most of the fleet was never begun.
    assert!(
        not_started >= 10,
        "only {not_started} not started: was it the middle?\n{context}"
    );
    let engine = support::engine();
    let running = check_safe(&engine, &p.name, "agent", REPLICAS, &context);
    assert_eq!(
        running.len() + not_started,
        usize::try_from(REPLICAS).unwrap(),
        "every replica is running with credentials or was not started: {running:?}\n{context}"
    );
    for name in summary
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(list, _)| list.split(", ").collect::<Vec<_>>())
        .unwrap_or_default()
    {
        assert!(
            !running.iter().any(|r| r == name),
            "{name} is said not started but runs"
        );
    }

    let out = p.claunch().arg("up").timeout(RUN_LIMIT).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    check_converged(&engine, &p.name, "agent", REPLICAS, &text(&out));
}

#[test]
fn sigint_in_the_middle_of_up_stops_new_work_and_a_rerun_converges() {
    interrupted_in_the_middle("sigint", "INT");
}

#[test]
fn sigterm_in_the_middle_of_up_stops_new_work_and_a_rerun_converges() {
    interrupted_in_the_middle("sigterm", "TERM");
}

#[test]
fn containers_that_die_or_hang_in_their_smoke_test_are_told_apart_and_the_others_are_unaffected() {
    let p = Project::new("smokedie");
    p.login();
    let img = image(Image::Root);
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  ok:\n    image: {img}\n    replicas: 2\n  dies:\n    image: {img}\n    smoke:\n      prompt: \"STANDIN:die\"\n  hangs:\n    image: {img}\n    smoke:\n      prompt: \"STANDIN:hang\"\n      timeout: 2s\n"
    ));
    let started = Instant::now();
    let out = p.claunch().arg("up").timeout(RUN_LIMIT).output().unwrap();
    let context = text(&out);
    assert_eq!(out.status.code(), Some(1), "{context}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pre = &p.name;
    for n in [1, 2] {
        assert!(
            stdout.contains(&format!("{pre}-ok-{n} | done: smoke test passed")),
            "{context}"
        );
    }
    assert!(
        stdout.contains(&format!(
            "{pre}-hangs-1 | failed: smoke test failed: no answer within 2s"
        )),
        "{context}"
    );
    assert!(
        stdout.contains(&format!(
            "{pre}-hangs-1 |   hint: check that the container reaches the API"
        )),
        "{context}"
    );
    // A container that stops under its smoke test is said to have stopped, with where
    // to look, not just "exited with code -1".
    let dies = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{pre}-dies-1 | failed: ")))
        .unwrap_or_else(|| panic!("no failure line for the dying container\n{context}"));
    assert!(
        dies.contains("the container stopped during its smoke test")
            && stdout.contains(&format!("claunch logs {pre}-dies-1")),
        "{dies}\n{context}"
    );
    assert!(
        stdout.contains(&format!(
            "{pre} containers: 2 changed, 0 up to date, 2 failed"
        )),
        "{context}"
    );
    // The hang is cut at its timeout, not waited out.
    assert!(started.elapsed() < Duration::from_secs(60), "{context}");
    let states: HashMap<String, String> = states(&support::engine(), pre).into_iter().collect();
    assert_eq!(states[&format!("{pre}-ok-1")], "running");
    assert_eq!(states[&format!("{pre}-ok-2")], "running");
    assert_eq!(states[&format!("{pre}-hangs-1")], "running");
    assert_eq!(states[&format!("{pre}-dies-1")], "exited");
}

#[test]
fn an_engine_killed_and_restarted_in_the_middle_of_up_is_survived_and_a_rerun_converges() {
    const REPLICAS: u32 = 6;
    let mut second = SecondEngine::start();
    let img = second.build_image();
    let p = Project::new("restart");
    p.login();
    p.write_config(&fleet_yaml(
        &img,
        REPLICAS,
        "    smoke:\n      prompt: \"STANDIN:slow\"\n",
    ));
    let host = second.host();
    let mut up = Background::start(p.dir.path(), &["-H", &host, "up", "--parallel", "2"]);
    up.wait_for(1, Duration::from_secs(90), |l| {
        l.contains(" | done: smoke test passed")
    });
    second.kill();
    std::thread::sleep(Duration::from_secs(1));
    second.launch();
    let (code, stdout, stderr) = up.finish(RUN_LIMIT);
    let context = format!(
        "--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- dockerd\n{}",
        second.log()
    );
    // The engine died under work in progress, not between two runs.
    assert!(
        stdout.contains(" | retrying") || stdout.contains(" | failed: "),
        "{context}"
    );
    // Whatever it managed, it ended, said what failed, and left nothing unsafe.
    assert!(code.is_some(), "killed by a signal\n{context}");
    if code != Some(0) {
        assert!(stdout.contains(" | failed: "), "{context}");
    }
    let engine = second.engine();
    check_safe(&engine, &p.name, "agent", REPLICAS, &context);

    let out = p
        .claunch()
        .args(["-H", &host, "up"])
        .timeout(RUN_LIMIT)
        .output()
        .unwrap();
    let context = format!("{}\n--- first run\n{context}", text(&out));
    assert_eq!(out.status.code(), Some(0), "{context}");
    check_converged(&engine, &p.name, "agent", REPLICAS, &context);
}
