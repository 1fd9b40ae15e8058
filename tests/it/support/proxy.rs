//! A fault-injecting proxy in front of the Docker engine, for tests.
//!
//! It listens on a unix socket in a temp dir and forwards each request to the real
//! engine. A seeded share of the requests that match its rules (method and path) gets a
//! fault instead: a 500 or a dropped connection before anything is forwarded, or the
//! request forwarded and the engine's answer lost. Each forwarded request goes to the
//! engine with `Connection: close`, so the client opens a new connection for the next
//! one and every request meets the rules; an upgraded connection (exec start) is spliced
//! both ways once forwarded.
//!
//! Faults are capped per container (an exec counts for the container it runs in), so
//! that a client retrying each step a few times always gets through: with a budget
//! below the client's attempts, a test of "converges despite faults" cannot flake on an
//! unlucky draw, whatever order concurrent requests arrive in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// What the proxy does to a request it picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Answers 500 without forwarding (the engine never sees the request).
    Status500,
    /// Closes the connection without forwarding or answering.
    Reset,
    /// Forwards the request, lets the engine act, then closes without passing the
    /// answer on: the client cannot tell whether it happened.
    LoseAnswer,
}

/// Which requests may fail, how often and how.
#[derive(Clone, Debug)]
pub struct Rule {
    /// `GET`, `POST`…; `*` matches any.
    pub method: &'static str,
    /// A path without the `/v1.NN` prefix and the query, `*` standing for one segment:
    /// `/containers/*/start`.
    pub path: &'static str,
    /// The share of matching requests that fail, 0.0 to 1.0.
    pub rate: f64,
    /// Picked from in turn, by the same seeded generator.
    pub faults: &'static [Fault],
}

impl Rule {
    pub fn new(
        method: &'static str,
        path: &'static str,
        rate: f64,
        faults: &'static [Fault],
    ) -> Self {
        Self {
            method,
            path,
            rate,
            faults,
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        (self.method == "*" || self.method == method) && glob(self.path, path)
    }
}

/// `*` matches exactly one path segment.
fn glob(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| *p == "*" || p == s)
}

/// One request the proxy saw, and what it did to it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Without the version prefix, with the query.
    pub path: String,
    pub fault: Option<Fault>,
}

struct State {
    rules: Vec<Rule>,
    rng: u64,
    /// Faults given so far per container (its name or id, as the request names it).
    spent: HashMap<String, u32>,
    budget: u32,
    /// Exec id → the container it was created in, from the engine's answers.
    exec_owner: HashMap<String, String>,
    seen: Vec<Seen>,
}

impl State {
    /// `SplitMix64`: small, seeded, and the same sequence on every run.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The container a request is about: `create?name=X` → X, `/containers/X/…` → X,
    /// `/exec/E/…` → the container E was created in.
    fn object(&self, path: &str, query: &str) -> String {
        let segs: Vec<&str> = path.split('/').collect();
        match segs.as_slice() {
            ["", "containers", "create"] => query
                .split('&')
                .find_map(|kv| kv.strip_prefix("name="))
                .unwrap_or(path)
                .to_string(),
            ["", "containers", id, ..] => (*id).to_string(),
            ["", "exec", id, ..] => self
                .exec_owner
                .get(*id)
                .cloned()
                .unwrap_or_else(|| (*id).to_string()),
            _ => path.to_string(),
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn decide(&mut self, method: &str, path: &str, query: &str) -> Option<Fault> {
        let rule = self.rules.iter().find(|r| r.matches(method, path))?.clone();
        let object = self.object(path, query);
        let draw = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        let pick = self.next();
        let spent = self.spent.entry(object).or_default();
        if draw < rule.rate && *spent < self.budget && !rule.faults.is_empty() {
            *spent += 1;
            let n = u64::try_from(rule.faults.len()).unwrap();
            Some(rule.faults[usize::try_from(pick % n).unwrap()])
        } else {
            None
        }
    }
}

/// The running proxy; dropping it stops it and removes its socket.
pub struct Proxy {
    dir: tempfile::TempDir,
    socket: PathBuf,
    state: Arc<Mutex<State>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Starts a proxy to the engine at `DOCKER_HOST` (a `unix://` one) or the default
    /// socket, failing `rules` at random with `seed`, at most `budget` times for any one
    /// container.
    pub fn start(seed: u64, budget: u32, rules: Vec<Rule>) -> Self {
        let upstream = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
        Self::start_to(&upstream, seed, budget, rules)
    }

    pub fn start_to(upstream: &Path, seed: u64, budget: u32, rules: Vec<Rule>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("claunch-proxy")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("proxy.sock");
        let state = Arc::new(Mutex::new(State {
            rules,
            rng: seed,
            spent: HashMap::new(),
            budget,
            exec_owner: HashMap::new(),
            seen: Vec::new(),
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(async { UnixListener::bind(&socket) })
            .unwrap();
        let upstream = upstream.to_path_buf();
        let shared = state.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream.clone(), shared.clone()));
            }
        });
        Self {
            dir,
            socket,
            state,
            runtime: Some(runtime),
        }
    }

    /// For `claunch -H`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Replaces the rules (an empty list turns faults off).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.state.lock().unwrap().rules = rules;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many requests got `fault`.
    pub fn count(&self, fault: Fault) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.fault == Some(fault))
            .count()
    }

    pub fn faults(&self) -> usize {
        self.seen().iter().filter(|s| s.fault.is_some()).count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = &self.dir;
    }
}

/// The request line and headers, as read.
struct Head {
    method: String,
    /// Without the version prefix and the query.
    path: String,
    query: String,
    lines: Vec<String>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.lines.iter().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn upgrade(&self) -> bool {
        self.header("upgrade").is_some()
            || self
                .header("connection")
                .is_some_and(|c| c.to_ascii_lowercase().contains("upgrade"))
    }

    /// The head to forward: unchanged for an upgrade, else with `Connection: close`.
    fn forwarded(&self) -> Vec<u8> {
        let mut out = String::new();
        for line in &self.lines {
            out.push_str(line);
            out.push_str("\r\n");
        }
        if !self.upgrade() && self.header("connection").is_none() {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

async fn read_head(reader: &mut BufReader<UnixStream>) -> Option<Head> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await.ok()?;
        total += n;
        if n == 0 || total > 64 * 1024 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let mut first = lines.first()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // `/v1.41/containers/…` → `/containers/…`
    let path = match path.strip_prefix("/v1.") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    };
    Some(Head {
        method,
        path: path.to_string(),
        query: query.to_string(),
        lines,
    })
}

/// Reads and throws away the request's body, so that an answer sent before forwarding
/// is not mistaken by the client for a failure to send its body.
async fn drain_body(reader: &mut BufReader<UnixStream>, head: &Head) -> Option<()> {
    let sink = &mut tokio::io::sink();
    if head
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.ok()?;
            let size = u64::from_str_radix(line.trim().split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = String::new();
                    if reader.read_line(&mut t).await.ok()? == 0 || t.trim().is_empty() {
                        return Some(());
                    }
                }
            }
            tokio::io::copy(&mut (&mut *reader).take(size + 2), sink)
                .await
                .ok()?;
        }
    }
    let len: u64 = head
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    tokio::io::copy(&mut (&mut *reader).take(len), sink)
        .await
        .ok()?;
    Some(())
}

async fn serve(client: UnixStream, upstream: PathBuf, state: Arc<Mutex<State>>) {
    let mut client = BufReader::new(client);
    let Some(head) = read_head(&mut client).await else {
        return;
    };
    let fault = {
        let mut s = state.lock().unwrap();
        let fault = s.decide(&head.method, &head.path, &head.query);
        s.seen.push(Seen {
            method: head.method.clone(),
            path: if head.query.is_empty() {
                head.path.clone()
            } else {
                format!("{}?{}", head.path, head.query)
            },
            fault,
        });
        fault
    };
    match fault {
        Some(Fault::Reset) => drop(client),
        Some(Fault::Status500) => {
            if drain_body(&mut client, &head).await.is_none() {
                return;
            }
            let body = r#"{"message":"injected by the test proxy"}"#;
            let answer = format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.get_mut().write_all(answer.as_bytes()).await;
            let _ = client.get_mut().shutdown().await;
        }
        Some(Fault::LoseAnswer) => {
            let Ok(mut engine) = UnixStream::connect(&upstream).await else {
                return;
            };
            if engine.write_all(&head.forwarded()).await.is_err()
                || drain_body_into(&mut client, &head, &mut engine)
                    .await
                    .is_none()
            {
                return;
            }
            // The engine closes after its answer (Connection: close): read it all, pass
            // nothing on.
            let _ = tokio::io::copy(&mut engine, &mut tokio::io::sink()).await;
            drop(client);
        }
        None if head.method == "POST" && glob("/containers/*/exec", &head.path) => {
            // Forwarded whole, answer included, to learn which container the exec is in.
            let Ok(mut engine) = UnixStream::connect(&upstream).await else {
                return;
            };
            if engine.write_all(&head.forwarded()).await.is_err()
                || drain_body_into(&mut client, &head, &mut engine)
                    .await
                    .is_none()
            {
                return;
            }
            let mut answer = Vec::new();
            let _ = engine.read_to_end(&mut answer).await;
            let container = head.path.split('/').nth(2).unwrap_or_default().to_string();
            if let Some(id) = exec_id(&answer) {
                state.lock().unwrap().exec_owner.insert(id, container);
            }
            let _ = client.get_mut().write_all(&answer).await;
            let _ = client.get_mut().shutdown().await;
        }
        None => {
            let Ok(mut engine) = UnixStream::connect(&upstream).await else {
                return;
            };
            if engine.write_all(&head.forwarded()).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
        }
    }
}

/// The `Id` in an exec create answer (`{"Id":"…"}`).
fn exec_id(answer: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(answer);
    let rest = &text[text.find("\"Id\":\"")? + 6..];
    Some(rest[..rest.find('"')?].to_string())
}

/// Forwards the request's body to the engine (for a lost answer, the engine must see it all).
async fn drain_body_into(
    reader: &mut BufReader<UnixStream>,
    head: &Head,
    engine: &mut UnixStream,
) -> Option<()> {
    if head
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        // The engine's endpoints the rules lose answers for take sized bodies; a chunked
        // one is dropped unforwarded instead, which the client sees as a reset.
        return None;
    }
    let len: u64 = head
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    tokio::io::copy(&mut (&mut *reader).take(len), engine)
        .await
        .ok()?;
    Some(())
}
