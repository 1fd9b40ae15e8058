//! The real Claude Code CLI and the local Messages API stand-in, for the end-to-end
//! tests: the CLI fetched once (or `CLAUNCH_CLAUDE_BIN`) and packed with `claunch image
//! build`; the stand-in run as a child process that dies with its test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::{engine, rt};

/// The real `claude`: `CLAUNCH_CLAUDE_BIN`, else what `examples/demo/fetch-claude.sh`
/// fetches (cached in ~/.cache/claunch). Not having it fails the test: never a skip.
pub fn claude_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(given) = std::env::var_os("CLAUNCH_CLAUDE_BIN").filter(|v| !v.is_empty()) {
            let path = PathBuf::from(given);
            assert!(path.is_file(), "CLAUNCH_CLAUDE_BIN={} is not a file", path.display());
            return path;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/fetch-claude.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        assert!(
            out.status.success() && path.is_file(),
            "the end-to-end tests need the real claude CLI and {} could not fetch it ({}; stdout {stdout:?}).\n\
             It downloads the claude-agent-sdk wheel from PyPI with pip; or set CLAUNCH_CLAUDE_BIN to a claude binary.",
            script.display(),
            out.status
        );
        path
    })
    .clone()
}

/// `claude --version`'s version, e.g. `2.1.332`.
pub fn claude_version() -> String {
    let out = Command::new(claude_bin())
        .arg("--version")
        .output()
        .expect("running claude --version");
    assert!(out.status.success(), "claude --version failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The tag the tests build, kept apart from the `claunch/claude:*` a user builds.
pub fn image_tag() -> String {
    format!("claunch-test/claude:{}", claude_version())
}

/// The agent image holding the real CLI, built by `claunch image build` (or reused when
/// the engine has it from the same binary). Test processes build it one at a time.
pub fn agent_image() -> String {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let tag = image_tag();
        let lock_path = std::env::temp_dir().join("claunch-e2e-image.lock");
        let lock = std::fs::File::create(&lock_path).expect("creating the image build lock");
        lock.lock().expect("taking the image build lock");
        // Each test is a process of its own: once one has built (or checked) the image for
        // this very binary, the others take it as is instead of hashing 400 MB again.
        // `image_build_packs_the_real_cli_with_nothing_else_and_reuses_it` runs the check.
        let meta = std::fs::metadata(claude_bin()).unwrap();
        let binary = format!(
            "{} {} {:?}",
            claude_bin().display(),
            meta.len(),
            meta.modified().ok()
        );
        let stamp_path = std::env::temp_dir().join(format!(
            "claunch-e2e-image-{}.stamp",
            tag.replace(['/', ':'], "_")
        ));
        let image_id = || {
            rt().block_on(engine().inspect_image(&tag))
                .ok()
                .map(|i| i.id)
        };
        let stamp = std::fs::read_to_string(&stamp_path).unwrap_or_default();
        if let Some(id) = image_id() {
            if stamp == format!("{binary}\n{id}") {
                return tag;
            }
        }
        let out = assert_cmd::Command::cargo_bin("claunch")
            .unwrap()
            .args(["image", "build", "--claude"])
            .arg(claude_bin())
            .args(["--tag", &tag])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "claunch image build failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let id = image_id().expect("the image just built");
        std::fs::write(&stamp_path, format!("{binary}\n{id}")).unwrap();
        drop(lock);
        tag
    })
    .clone()
}

/// The top of a config for `Project::write_config`, up to `agents:`.
pub const CONFIG_HEAD: &str = "project: {project}\ncredentials:\n  file: {creds}\nagents:\n";

/// One entry under `agents:`: `replicas` containers of the real CLI image, as `user` (else
/// the image's own), pointed at `standin`. More of its keys can follow, indented by four.
pub fn agent_entry(standin: &StandIn, name: &str, replicas: u32, user: Option<&str>) -> String {
    let user = user.map(|u| format!("    user: {u}\n")).unwrap_or_default();
    let image = agent_image();
    let hosts_and_env = standin.agent_yaml();
    format!("  {name}:\n    image: {image}\n    replicas: {replicas}\n{user}{hosts_and_env}")
}

/// A config whose agents are `(name, replicas, user)`, all running the real CLI image
/// and pointed at `standin`.
pub fn config(standin: &StandIn, agents: &[(&str, u32, Option<&str>)]) -> String {
    let entries = agents
        .iter()
        .map(|&(name, replicas, user)| agent_entry(standin, name, replicas, user));
    std::iter::once(CONFIG_HEAD.to_string())
        .chain(entries)
        .collect()
}

/// The `api_standin` example, built by `cargo build --examples` next to this test binary.
fn standin_bin() -> PathBuf {
    // target/<profile>/deps/it-<hash> → target/<profile>/examples/api_standin
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        exe.parent()?
            .parent()
            .map(|p| p.join("examples/api_standin"))
    });
    let from_env = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
            PathBuf::from,
        )
        .join("debug/examples/api_standin");
    from_exe
        .into_iter()
        .chain([from_env])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("the API stand-in is not built: run `cargo build --examples` before the tests (.ci/run does)")
        })
}

/// The JSON lines a stand-in has appended to its record file so far. A line it is still
/// writing (a record takes more than one write) is left for the next read.
pub fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A running `api_standin` listening on every interface of this host, recording each
/// request; killed when dropped.
pub struct StandIn {
    child: Child,
    pub port: u16,
    record: PathBuf,
    _dir: tempfile::TempDir,
}

impl StandIn {
    /// Starts one that answers every token but `reject` with 401.
    pub fn start(reject: &[&str]) -> Self {
        Self::start_with(reject, &[])
    }

    /// [`StandIn::start`] with more of its flags (`--overloaded N`, `--limit-after N`…).
    pub fn start_with(reject: &[&str], flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("requests.jsonl");
        let mut cmd = Command::new(standin_bin());
        // Containers reach it through the bridge gateway, so it listens beyond loopback.
        cmd.args(["--listen", "0.0.0.0:0", "--record"]).arg(&record);
        for token in reject {
            cmd.args(["--reject-token", token]);
        }
        cmd.args(flags);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting api_standin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!("api_standin printed {line:?}, not `listening on ADDR:PORT`")
            });
        Self {
            child,
            port,
            record,
            _dir: dir,
        }
    }

    /// Every request so far, one JSON object each (see `examples/api_standin.rs`).
    pub fn requests(&self) -> Vec<Value> {
        json_lines(&self.record)
    }

    /// The `POST /v1/messages` requests: one per `claude -p` that reached the API.
    pub fn messages(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r["method"] == "POST"
                    && r["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("/v1/messages"))
            })
            .collect()
    }

    /// The text blocks of each message request's last user message, in arrival order: a
    /// prompt arrives as one block, whole (claude puts its reminders in others).
    pub fn user_texts(&self) -> Vec<Vec<String>> {
        self.messages()
            .iter()
            .map(|r| {
                r["user_text"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .collect()
    }

    /// An agent's `extra_hosts:` and `env:` lines that point claude at this stand-in.
    ///
    /// `HTTPS_PROXY` is the stand-in too, which refuses every `CONNECT`: whatever the CLI
    /// tries beyond `ANTHROPIC_BASE_URL` (its profile request, a token refresh) never
    /// leaves this machine, and fails fast instead of waiting on DNS.
    pub fn agent_yaml(&self) -> String {
        let url = format!("http://host.docker.internal:{}", self.port);
        format!(
            "    extra_hosts: [\"host.docker.internal:host-gateway\"]\n    env:\n      ANTHROPIC_BASE_URL: {url}\n      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: \"1\"\n      HTTPS_PROXY: {url}\n      NO_PROXY: host.docker.internal\n"
        )
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
