//! Property-based fuzzing of the three parsers that read what others wrote: the config
//! loader (`claunch.yaml`), the credentials parser (a host file or a container's), and
//! the tar read-back (a container's archive stream). Arbitrary bytes and structured
//! mutations of valid inputs: no panic, no hang (each case has a time limit), no
//! unbounded allocation (the process runs under an address-space limit, and its peak
//! resident memory is checked at the end).
//!
//! CI runs proptest's default of 256 cases per property. A longer run:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo nextest run --test it fuzz:: --no-capture
//! ```
//!
//! (Failures are not persisted to files: proptest prints the minimal failing input,
//! which belongs in a regular test next to the adversarial cases below.)

use std::fmt::Write as _;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use claunch::config::{self, LoadOptions};
use claunch::credentials::{family, Credentials};
use claunch::engine::archive;
use claunch::engine::EngineError;
use claunch::secret::Secret;
use proptest::prelude::*;
use proptest::test_runner::Config;

/// The most one case may take: far more than any of them needs.
const CASE_LIMIT: Duration = Duration::from_secs(10);
/// The address space the whole test process may use; an unbounded allocation aborts.
const ADDRESS_SPACE: u64 = 4 << 30;
/// The peak resident memory allowed at the end of a property.
const PEAK_RSS_KIB: u64 = 512 << 10;

/// Caps this process's address space (with prlimit(1): no unsafe code in tests), so
/// that an allocation out of bounds aborts the test instead of exhausting the machine.
fn cap_memory() {
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--as={ADDRESS_SPACE}"),
        ])
        .status()
        .expect("prlimit (util-linux) is needed to bound the fuzz tests' memory");
    assert!(status.success(), "prlimit failed");
}

/// Peak resident memory of this process so far (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn check_peak() {
    let peak = peak_rss_kib();
    assert!(peak < PEAK_RSS_KIB, "peak resident memory {peak} KiB");
}

/// Runs `f` on a thread with the main thread's stack size, failing the case if it
/// panics or takes longer than [`CASE_LIMIT`].
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    match rx.recv_timeout(CASE_LIMIT) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: no result within {CASE_LIMIT:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

fn runner_config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

// ---- the config loader ----

const VALID: &str = "\
project: fuzz
credentials:
  file: ~/.claude/.credentials.json
onboarding: false
agents:
  planner:
    image: ${IMAGE:-agent:latest}
    replicas: 2
    user: \"1000:1000\"
    command: [\"python\", \"worker.py\"]
    entrypoint: [\"/bin/sh\", \"-c\"]
    working_dir: /work
    env: {LOG_LEVEL: info, EMPTY: $EMPTY, LITERAL: \"$$HOME\"}
    network: agents
    extra_hosts: [\"api.internal:10.0.0.5\"]
    volumes: [\"data:/data\", \"./work:/work:ro\"]
    files:
      - {source: ~/.claude/mcp.json, target: .claude/mcp.json, mode: \"0600\"}
    smoke:
      prompt: Say hello
      max_turns: 1
      timeout: 120s
  reviewer:
    image: agent:latest
    env: [\"A=1\", \"B\"]
    smoke: false
";

/// Pieces that mean something to YAML or to interpolation.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ": ",
    "- ",
    ",",
    "\n",
    "\n  ",
    "\n    ",
    "\t",
    "\"",
    "'",
    "#",
    "? ",
    "|",
    ">-",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!str ",
    "!custom ",
    "%YAML 1.2\n",
    "---\n",
    "...\n",
    "~",
    "null",
    "yes",
    "0x1F",
    "0o17",
    "1e400",
    "-1",
    "99999999999999999999",
    ".nan",
    "${",
    "$",
    "$$",
    "${IMAGE}",
    "${UNSET}",
    "${IMAGE:-",
    "${IMAGE:?",
    "${IMAGE:+x}",
    "${A-${B-${C}}}",
    "agents",
    "image",
    "replicas",
    "smoke",
    "timeout",
    "credentials",
    "file",
    "env",
    "files",
    "source",
    "target",
    "mode",
    "oauth_token",
    "api_key",
    "command",
    "write_command",
    "\u{feff}",
    "\u{0}",
    "\r\n",
    "é",
    "\u{1f}",
    "🙂",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    Replace(usize, usize, String),
    Duplicate(usize, usize),
}

fn snippet() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(TOKENS).prop_map(str::to_string),
        1 => "\\PC{0,12}",
        1 => proptest::collection::vec(proptest::sample::select(TOKENS), 1..6).prop_map(|v| v.concat()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>;
    prop_oneof![
        (at(), snippet()).prop_map(|(i, s)| Edit::Insert(i, s)),
        (at(), 0..40usize).prop_map(|(i, n)| Edit::Delete(i, n)),
        (at(), 0..20usize, snippet()).prop_map(|(i, n, s)| Edit::Replace(i, n, s)),
        (at(), 0..200usize).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

/// A char boundary of `s` chosen by `i`.
fn boundary(s: &str, i: usize) -> usize {
    let mut at = i % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(mut s: String, edits: &[Edit]) -> String {
    for e in edits {
        match e {
            Edit::Insert(i, t) => {
                let at = boundary(&s, *i);
                s.insert_str(at, t);
            }
            Edit::Delete(i, n) | Edit::Replace(i, n, _) | Edit::Duplicate(i, n) => {
                let start = boundary(&s, *i);
                let end = boundary(&s, start.saturating_add(*n).min(s.len()));
                let end = end.max(start);
                let with = match e {
                    Edit::Replace(.., t) => t.clone(),
                    Edit::Duplicate(..) => s[start..end].repeat(2),
                    _ => String::new(),
                };
                s.replace_range(start..end, &with);
            }
        }
    }
    s
}

fn fuzz_env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/fuzz".into()),
        "IMAGE" => Some("agent:1".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Loads `text` as a config file; the error (or spec) is rendered, as the binary would.
fn load_text(what: &str, text: Vec<u8>) -> String {
    within(&format!("config::load ({what})"), move || {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("claunch.yaml");
        std::fs::write(&file, &text).unwrap();
        let options = LoadOptions {
            file: Some(file),
            project_name: None,
        };
        match config::load(&options, &fuzz_env) {
            Ok(loaded) => format!("{:?}", loaded.spec.agents.len()),
            Err(e) => e.to_string(),
        }
    })
}

#[test]
fn the_config_loader_survives_arbitrary_bytes() {
    cap_memory();
    proptest!(runner_config(), |(bytes in proptest::collection::vec(any::<u8>(), 0..4096))| {
        load_text("arbitrary bytes", bytes);
    });
    check_peak();
}

#[test]
fn the_config_loader_survives_mutations_of_a_valid_config() {
    cap_memory();
    assert_eq!(
        load_text("the seed", VALID.into()),
        "2",
        "the seed config is valid"
    );
    proptest!(runner_config(), |(edits in proptest::collection::vec(edit(), 1..12))| {
        let text = apply(VALID.to_string(), &edits);
        let rendered = load_text("a mutation", text.into_bytes());
        // Errors name where they are, never just "error".
        prop_assert!(!rendered.is_empty());
    });
    check_peak();
}

// ---- the credentials parser ----

/// A token-looking value whose fragments must never show in an error.
const MARK: &str = "sk-ant-oat01-LEAKMARK";

fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as V;
    prop_oneof![
        Just(V::Null),
        any::<bool>().prop_map(V::Bool),
        any::<i64>().prop_map(V::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(V::Null, V::Number)),
        Just(V::String(String::new())),
        Just(V::String(MARK.into())),
        "\\PC{0,20}".prop_map(V::String),
        Just(V::from(1_768_838_897_263_i64)),
        Just(V::from(vec!["user:inference"])),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("\\PC{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A credentials file with every field present, absent or of any type.
fn credentials_shaped() -> impl Strategy<Value = Vec<u8>> {
    let field = proptest::option::weighted(0.8, json_value());
    (
        proptest::collection::vec(field, 6),
        proptest::option::of(json_value()),
        any::<bool>(),
    )
        .prop_map(|(fields, extra, wrap)| {
            let keys = [
                "accessToken",
                "refreshToken",
                "expiresAt",
                "scopes",
                "subscriptionType",
                "rateLimitTier",
            ];
            let mut oauth = serde_json::Map::new();
            for (k, v) in keys.iter().zip(fields) {
                if let Some(v) = v {
                    oauth.insert((*k).to_string(), v);
                }
            }
            let mut root = serde_json::Map::new();
            root.insert(
                "claudeAiOauth".into(),
                if wrap {
                    serde_json::Value::Object(oauth)
                } else {
                    serde_json::Value::String(MARK.into())
                },
            );
            if let Some(extra) = extra {
                root.insert("mcpOAuth".into(), extra);
            }
            serde_json::to_vec(&root).unwrap()
        })
}

fn valid_login() -> Vec<u8> {
    format!(
        r#"{{"claudeAiOauth":{{"accessToken":"{MARK}A","refreshToken":"{MARK}R","expiresAt":1768838897263,"scopes":["user:inference","user:profile"],"subscriptionType":"pro"}},"mcpOAuth":{{"s":{{"accessToken":"{MARK}M"}}}}}}"#
    )
    .into_bytes()
}

/// Byte-level mutations of a valid file: truncation, insertion, flips.
fn mutated_login() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 1..8).prop_map(|edits| {
        let mut b = valid_login();
        for (at, byte, kind) in edits {
            let i = at % (b.len() + 1);
            match kind {
                0 => b.truncate(i),
                1 => b.insert(i, byte),
                _ => {
                    if i < b.len() {
                        b[i] ^= byte | 1;
                    }
                }
            }
        }
        b
    })
}

/// Parses and, when that works, exercises everything that reads a parsed file.
fn credentials_case(bytes: Vec<u8>) -> Result<(), String> {
    within("Credentials::parse", move || {
        let current = Credentials::parse(Secret::new(valid_login())).unwrap();
        let judged = family::judge_candidate(
            &current,
            &Secret::new(bytes.clone()),
            true,
            1_768_800_000_000,
        );
        if let family::Judgement::Rejected(why) = &judged {
            if why.contains("LEAKMARK") {
                return Err(format!("a rejection quotes the file: {why}"));
            }
        }
        match Credentials::parse(Secret::new(bytes)) {
            Err(e) => {
                let shown = format!("{e} / {}", e.hint());
                if shown.contains("LEAKMARK") {
                    return Err(format!("the error quotes the file: {shown}"));
                }
            }
            Ok(c) => {
                if format!("{:?}", c.summary).contains("LEAKMARK") {
                    return Err("the summary shows a token".into());
                }
                let follower = family::access_only(&c);
                let parsed = Credentials::parse(follower)
                    .map_err(|e| format!("an access-only file does not parse: {e}"))?;
                if parsed.summary.has_refresh_token {
                    return Err("an access-only file holds a refresh token".into());
                }
                let _ = family::refresh_fingerprint(&c);
                let _ = family::access_fingerprint(&c);
            }
        }
        Ok(())
    })
}

#[test]
fn the_credentials_parser_survives_arbitrary_bytes() {
    cap_memory();
    proptest!(runner_config(), |(bytes in proptest::collection::vec(any::<u8>(), 0..2048))| {
        credentials_case(bytes).map_err(TestCaseError::fail)?;
    });
    check_peak();
}

#[test]
fn the_credentials_parser_survives_any_shape_and_never_quotes_a_token() {
    cap_memory();
    proptest!(runner_config(), |(bytes in prop_oneof![credentials_shaped(), mutated_login()])| {
        credentials_case(bytes).map_err(TestCaseError::fail)?;
    });
    check_peak();
}

// ---- the tar read-back ----

const LIMIT: usize = 64 * 1024;

fn one_file(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o600);
    b.append_data(&mut h, name, data).unwrap();
    b.into_inner().unwrap()
}

/// Valid archives (a plain file, a long GNU name, a PAX-named file), then mutated in the
/// places a hostile engine would: the header fields, the type flag, the body's length.
fn mutated_tar() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000)
            .prop_map(|d| one_file(".credentials.json", &d)),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|d| one_file(&"n/".repeat(80), &d)),
        Just({
            let mut b = tar::Builder::new(Vec::new());
            b.append_pax_extensions([("path", "x/".repeat(300).as_bytes())])
                .unwrap();
            let mut h = tar::Header::new_ustar();
            h.set_size(2);
            b.append_data(&mut h, "y", &b"{}"[..]).unwrap();
            b.into_inner().unwrap()
        }),
    ];
    let edits = proptest::collection::vec((0..1536usize, any::<u8>(), 0..4u8), 0..10);
    (base, edits).prop_map(|(mut b, edits)| {
        for (at, byte, kind) in edits {
            match kind {
                // The type flag, or any header byte.
                0 => {
                    if let Some(x) = b.get_mut(156) {
                        *x = byte;
                    }
                }
                1 => {
                    if let Some(x) = b.get_mut(at) {
                        *x = byte;
                    }
                }
                // The size field (12 octal digits at 124), to something large.
                2 => {
                    if b.len() >= 136 {
                        // Up to 8 GiB: 11 octal digits and a NUL.
                        let size = format!("{:011o}\0", u64::from(byte) << 25);
                        b[124..136].copy_from_slice(size.as_bytes());
                    }
                }
                _ => b.truncate(at.min(b.len())),
            }
        }
        b
    })
}

fn chunked(
    bytes: Vec<u8>,
    sizes: Vec<usize>,
) -> impl futures::Stream<Item = Result<Bytes, EngineError>> + Send {
    let mut parts = Vec::new();
    let mut rest = Bytes::from(bytes);
    for size in sizes.into_iter().cycle().take(10_000) {
        if rest.is_empty() {
            break;
        }
        parts.push(Ok(rest.split_to(size.clamp(1, rest.len()))));
    }
    if !rest.is_empty() {
        parts.push(Ok(rest));
    }
    futures::stream::iter(parts)
}

fn tar_case(bytes: Vec<u8>, sizes: Vec<usize>) -> Result<(), String> {
    within("tar read-back", move || {
        if let Ok(s) = archive::first_regular_file(&bytes, LIMIT) {
            if s.len() > LIMIT {
                return Err(format!("{} bytes read, limit {LIMIT}", s.len()));
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let timeout = Duration::from_secs(2);
        let r = rt.block_on(archive::read_single_file(
            chunked(bytes.clone(), sizes.clone()),
            LIMIT,
            timeout,
        ));
        if let Ok(s) = r {
            if s.len() > LIMIT {
                return Err(format!("{} bytes read, limit {LIMIT}", s.len()));
            }
        }
        let _ = rt.block_on(archive::first_header(chunked(bytes, sizes), LIMIT, timeout));
        Ok(())
    })
}

#[test]
fn the_tar_read_back_survives_arbitrary_bytes() {
    cap_memory();
    proptest!(runner_config(), |(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        sizes in proptest::collection::vec(1..2048usize, 1..8),
    )| {
        tar_case(bytes, sizes).map_err(TestCaseError::fail)?;
    });
    check_peak();
}

#[test]
fn the_tar_read_back_survives_mutated_archives() {
    cap_memory();
    proptest!(runner_config(), |(
        bytes in mutated_tar(),
        sizes in proptest::collection::vec(1..2048usize, 1..8),
    )| {
        tar_case(bytes, sizes).map_err(TestCaseError::fail)?;
    });
    check_peak();
}

// ---- adversarial inputs, each in a child process ----

/// Hand-made inputs that random generation would not find: exponential aliases, deep
/// nesting, huge scalars. A config file of claunch's is small, but it may come from
/// anywhere (a repository, a generator): loading one must neither hang nor crash.
fn config_cases() -> Vec<(&'static str, String)> {
    let laughs = {
        // Each level multiplies by 9: expanded, the last would be 387 million strings.
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let _ = writeln!(s, "a{i}: &a{i} [{}]", vec![prev; 9].join(", "));
        }
        s + "agents: {p: {image: *a9}}\n"
    };
    let nested = |open: &str, close: &str, n: usize| {
        format!(
            "agents: {{p: {{image: \"{}x{}\"}}}}\n",
            open.repeat(n),
            close.repeat(n)
        )
    };
    vec![
        ("billion laughs", laughs),
        (
            "deep flow nesting (200 KB)",
            format!("agents: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
        ),
        (
            "deep block nesting",
            (0..2000).fold(String::new(), |mut s, i| {
                let _ = writeln!(s, "{}k:", " ".repeat(i));
                s
            }),
        ),
        (
            "interpolation nested 5000 deep (30 KB)",
            nested("${A:-", "}", 5000),
        ),
        (
            "unterminated nested interpolation",
            format!("agents: {}\n", "${A:-".repeat(50_000)),
        ),
        (
            "a million dollars",
            nested("", "", 0).replace('x', &"$$".repeat(500_000)),
        ),
        (
            "one 4 MiB line",
            nested("", "", 0).replace('x', &"x".repeat(4 << 20)),
        ),
        (
            // Validation compares each agent's name with every earlier one: quadratic,
            // so the count stays at what a generated config might hold.
            "5000 agents (200 KB)",
            (0..5_000).fold(String::from("agents:\n"), |s, i| {
                s + &format!("  a{i}: {{image: x, replicas: 99999}}\n")
            }),
        ),
        (
            "20000 unknown keys",
            (0..20_000).fold(String::from("agents:\n  p:\n    image: x\n"), |s, i| {
                s + &format!("    k{i}: 1\n")
            }),
        ),
        (
            "5000 duplicate agents",
            (0..5_000).fold(String::from("agents:\n"), |s, _| s + "  p: {image: x}\n"),
        ),
        ("NUL bytes", "agents:\n  p:\n    image: \"\0\0\0\"\n".into()),
    ]
}

fn credentials_cases() -> Vec<(&'static str, Vec<u8>)> {
    let oauth = |body: String| format!("{{\"claudeAiOauth\":{{{body}}}}}").into_bytes();
    vec![
        (
            "deep arrays",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        ),
        (
            "deep objects",
            format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000)).into_bytes(),
        ),
        (
            "a 100000-digit expiresAt",
            oauth(format!(
                "\"accessToken\":\"x\",\"scopes\":[],\"expiresAt\":1{}",
                "0".repeat(100_000)
            )),
        ),
        (
            "100000 duplicate keys",
            oauth(format!(
                "{}\"accessToken\":\"x\",\"scopes\":[]",
                "\"accessToken\":5,".repeat(100_000)
            )),
        ),
        (
            "a 1 MiB token",
            oauth(format!(
                "\"accessToken\":\"{}\",\"scopes\":[]",
                "A".repeat(1 << 20)
            )),
        ),
        (
            "lone surrogates",
            oauth(format!(
                "\"accessToken\":\"{}\",\"scopes\":[]",
                "\\ud800".repeat(10_000)
            )),
        ),
        (
            "a byte order mark",
            b"\xef\xbb\xbf{\"claudeAiOauth\":{\"accessToken\":\"x\",\"scopes\":[]}}".to_vec(),
        ),
    ]
}

const CHILD_CASE: &str = "CLAUNCH_FUZZ_CASE";

/// Not a test on its own: the body of the child process each adversarial case runs in,
/// which `run_adversarial` starts as `it fuzz::adversarial_child --exact --ignored` with
/// the case in `CLAUNCH_FUZZ_CASE`.
#[test]
#[ignore = "a child process: the_*_survives_adversarial_inputs_in_bounded_time run it, one \
            case each, as `it fuzz::adversarial_child --exact --ignored` with \
            CLAUNCH_FUZZ_CASE=KIND:NAME"]
fn adversarial_child() {
    let case = std::env::var(CHILD_CASE).unwrap_or_else(|_| {
        panic!(
            "{CHILD_CASE} is not set: this is the child of \
             the_*_survives_adversarial_inputs_in_bounded_time, which runs it once per case"
        )
    });
    cap_memory();
    let started = std::time::Instant::now();
    let (kind, name) = case.split_once(':').unwrap();
    if kind == "config" {
        let (_, text) = config_cases()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("claunch.yaml");
        std::fs::write(&file, text).unwrap();
        let options = LoadOptions {
            file: Some(file),
            project_name: None,
        };
        let shown = match config::load(&options, &fuzz_env) {
            Ok(loaded) => format!("loaded {} agents", loaded.spec.agents.len()),
            Err(e) => e.to_string(),
        };
        println!("result: {}", shown.chars().take(200).collect::<String>());
    } else {
        let (_, bytes) = credentials_cases()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap();
        let current = Credentials::parse(Secret::new(valid_login())).unwrap();
        let _ = family::judge_candidate(&current, &Secret::new(bytes.clone()), true, 0);
        let shown = match Credentials::parse(Secret::new(bytes)) {
            Ok(c) => format!("parsed: {:?}", c.summary.has_access_token),
            Err(e) => e.to_string(),
        };
        assert!(!shown.contains("LEAKMARK"), "{shown}");
        println!("result: {}", shown.chars().take(200).collect::<String>());
    }
    println!("took: {:?}", started.elapsed());
    check_peak();
}

/// Runs each case in a child (a hang is killed, a crash is contained) and reports them all.
fn run_adversarial(kind: &str, names: Vec<&'static str>) {
    let exe = std::env::current_exe().unwrap();
    let mut failed = Vec::new();
    for name in names {
        let mut child = std::process::Command::new(&exe)
            .args([
                "fuzz::adversarial_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_CASE, format!("{kind}:{name}"))
            // The stack of claunch's main thread, where the config is loaded.
            .env("RUST_MIN_STACK", (8 << 20).to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > CASE_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = started.elapsed();
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out);
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        let tail = |s: &str| s.lines().rev().take(4).collect::<Vec<_>>().join(" / ");
        match status {
            None => failed.push(format!("{name}: hung (killed after {took:?})")),
            Some(s) if !s.success() => failed.push(format!(
                "{name}: crashed ({s}): {} {}",
                tail(&out),
                tail(&err)
            )),
            // A filter that matches no test exits 0 too: the case must have run.
            Some(_) if !out.contains("test result: ok. 1 passed") => {
                failed.push(format!(
                    "{name}: the child ran no case: {} {}",
                    tail(&out),
                    tail(&err)
                ));
            }
            Some(_) if took > Duration::from_secs(5) => {
                failed.push(format!("{name}: took {took:?}"));
            }
            Some(_) => {}
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn the_config_loader_survives_adversarial_inputs_in_bounded_time() {
    run_adversarial(
        "config",
        config_cases().into_iter().map(|(n, _)| n).collect(),
    );
}

#[test]
fn the_credentials_parser_survives_adversarial_inputs_in_bounded_time() {
    run_adversarial(
        "credentials",
        credentials_cases().into_iter().map(|(n, _)| n).collect(),
    );
}

#[test]
fn fuzz_helpers_work() {
    // The mutation helpers themselves must never panic, whatever they are given.
    assert_eq!(
        apply("abc".into(), &[Edit::Insert(usize::MAX, "x".into())]).len(),
        4
    );
    assert_eq!(apply("é".into(), &[Edit::Delete(1, 1)]), "é");
    assert!(Path::new("/proc/self/status").exists());
}
