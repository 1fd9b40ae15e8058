//! Broken and hostile input: the corpus in tests/fixtures/bad/ (each case's whole stderr
//! pinned, nothing asked of the engine), crafted archive streams fed to the read-back,
//! and containers that replace their credentials file with something hostile.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use claunch::engine::archive::{self, ReadBackError};
use claunch::engine::EngineError;
use futures::StreamExt;

use crate::support::{self, image, login_json, now_ms, proxy, Image, Project};

/// What one bounded run of the binary gave.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    timed_out: bool,
}

/// Runs `claunch ARGS` in `dir` with a wall-clock limit and an address-space limit, as
/// `nobody` when asked; a run past the time limit is killed.
fn run_bounded(dir: &Path, args: &[String], as_nobody: bool, limit: Duration, max_kib: u64) -> Ran {
    let mut command: Vec<String> = Vec::new();
    if as_nobody {
        command.extend(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ]
            .map(String::from),
        );
    }
    command.extend([
        "sh".into(),
        "-c".into(),
        format!("ulimit -v {max_kib} && exec \"$0\" \"$@\""),
        env!("CARGO_BIN_EXE_claunch").into(),
    ]);
    command.extend(args.iter().cloned());
    let started = Instant::now();
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .current_dir(dir)
        .env_remove("CLAUNCH_PROJECT")
        .env_remove("DOCKER_HOST")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code: status.code(),
        elapsed: started.elapsed(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        timed_out,
    }
}

fn corpus_dir() -> PathBuf {
    support::fixture("bad")
}

/// Every case name: the stems of the corpus's input files.
fn case_names() -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        for suffix in [".yaml", ".args", ".setup"] {
            if let Some(stem) = name.strip_suffix(suffix) {
                names.insert(stem.to_string());
            }
        }
    }
    names.into_iter().collect()
}

fn read_case(name: &str, suffix: &str) -> Option<String> {
    std::fs::read_to_string(corpus_dir().join(format!("{name}{suffix}"))).ok()
}

fn fill(text: &str, p: &Project, image: &dyn Fn() -> String) -> String {
    let hour = 3_600_000;
    let mut text = text
        .replace("{project}", &p.name)
        .replace(
            "{creds}",
            &p.path("creds/.credentials.json").display().to_string(),
        )
        // A second into the past, so that the minutes shown stay whole.
        .replace("{now-2h}", &(now_ms() - 2 * hour - 1000).to_string())
        .replace("{now+8h}", &(now_ms() + 8 * hour).to_string());
    if text.contains("{image}") {
        text = text.replace("{image}", &image());
    }
    text
}

fn mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Prepares the case's directory; returns whether to run as `nobody`.
fn set_up(name: &str, p: &Project, image: &dyn Fn() -> String) -> bool {
    if let Some(yaml) = read_case(name, ".yaml") {
        std::fs::write(p.path("claunch.yaml"), fill(&yaml, p, image)).unwrap();
    }
    match read_case(name, ".credentials.json") {
        Some(json) => p.write_credentials(&fill(&json, p, image)),
        None => {
            p.login();
        }
    }
    if let Some(tasks) = read_case(name, ".tasks.jsonl") {
        std::fs::write(p.path("tasks.jsonl"), fill(&tasks, p, image)).unwrap();
    }
    if let Some(env) = read_case(name, ".env") {
        std::fs::write(p.path(".env"), env).unwrap();
    }
    let mut as_nobody = false;
    for line in read_case(name, ".setup").unwrap_or_default().lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let target = |rel: &str| {
            let path = p.path(rel);
            let _ = std::fs::remove_file(&path);
            path
        };
        match words.as_slice() {
            [] => {}
            ["remove", rel] => drop(target(rel)),
            ["mode", octal, rel] => mode(&p.path(rel), u32::from_str_radix(octal, 8).unwrap()),
            ["directory", rel] => std::fs::create_dir(target(rel)).unwrap(),
            ["fifo", rel] => {
                let status = Command::new("mkfifo").arg(target(rel)).status().unwrap();
                assert!(status.success());
            }
            ["huge", rel] => {
                // Valid JSON, 2 MiB: only its size is wrong.
                let pad = "x".repeat(2 << 20);
                let json = login_json("sk-ant-oat01-HUGE", "sk-ant-ort01-HUGE", now_ms()).replacen(
                    '{',
                    &format!("{{\"pad\":\"{pad}\","),
                    1,
                );
                std::fs::write(target(rel), json).unwrap();
            }
            ["run-as", "nobody"] => {
                as_nobody = true;
                // nobody must reach the config and the credentials' directory.
                mode(p.dir.path(), 0o755);
                mode(&p.path("creds"), 0o755);
                if p.path("claunch.yaml").exists() {
                    mode(&p.path("claunch.yaml"), 0o644);
                }
            }
            other => panic!("{name}.setup: unknown action {other:?}"),
        }
    }
    as_nobody
}

/// The stderr of a run with the case's directory and project name put back as placeholders.
fn normalize(stderr: &str, p: &Project) -> String {
    let dir = p.dir.path().display().to_string();
    let canonical = p.dir.path().canonicalize().unwrap().display().to_string();
    stderr
        .replace(&canonical, "{dir}")
        .replace(&dir, "{dir}")
        .replace(&p.name, "{project}")
}

#[test]
fn the_corpus_of_broken_inputs_gives_exactly_the_expected_messages_and_touches_no_engine() {
    let bless = std::env::var_os("CLAUNCH_BLESS").is_some();
    let image_tag = std::sync::OnceLock::new();
    let image = || image_tag.get_or_init(|| image(Image::Root)).clone();
    let names = case_names();
    assert!(names.len() >= 40, "the corpus is gone? {names:?}");
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    for name in &names {
        let p = Project::new(&format!("bad-{name}"));
        let as_nobody = set_up(name, &p, &image);
        let proxy = proxy::Proxy::start(0, 0, Vec::new());
        let mut args = vec!["-H".to_string(), proxy.host()];
        match read_case(name, ".args") {
            Some(a) => args.extend(
                a.lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| fill(l, &p, &image)),
            ),
            None => args.push("up".into()),
        }
        let ran = run_bounded(
            p.dir.path(),
            &args,
            as_nobody,
            Duration::from_secs(15),
            2 << 20,
        );
        let stderr = normalize(&ran.stderr, &p);
        let expected_path = corpus_dir().join(format!("{name}.expected"));
        if bless && !ran.timed_out {
            std::fs::write(&expected_path, &stderr).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        let mut problems = Vec::new();
        if ran.timed_out {
            problems.push(format!("hung: killed after {:?}", ran.elapsed));
        }
        if stderr != expected {
            problems.push(format!(
                "stderr differs\n    expected: {expected:?}\n    actual:   {stderr:?}"
            ));
        }
        for (stream, text) in [("stdout", &ran.stdout), ("stderr", &ran.stderr)] {
            if text.contains("sk-ant-") {
                problems.push(format!("a token-like string reached {stream}: {text:?}"));
            }
        }
        let is_error = expected.lines().any(|l| l.starts_with("error: "));
        let want_code = i32::from(is_error);
        if !ran.timed_out && ran.code != Some(want_code) {
            problems.push(format!(
                "exit {:?}, expected {want_code}\n    stdout: {:?}",
                ran.code, ran.stdout
            ));
        }
        if is_error {
            let seen = proxy.seen();
            if !seen.is_empty() {
                let requests: Vec<String> = seen
                    .iter()
                    .map(|s| format!("{} {}", s.method, s.path))
                    .collect();
                problems.push(format!("asked the engine: {requests:?}"));
            }
            if !p.containers().is_empty() {
                problems.push(format!("created containers: {:?}", p.containers()));
            }
        }
        if !problems.is_empty() {
            failures.insert(name.clone(), problems.join("\n  "));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        names.len(),
        failures
            .iter()
            .map(|(n, p)| format!("- {n}:\n  {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---- crafted archive streams for the read-back ----

const LIMIT: usize = 64 * 1024;
const SECOND: Duration = Duration::from_secs(1);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o600);
    h.set_cksum();
    h
}

/// A tar holding one entry named `path` (any bytes: `../` and absolute included).
fn one_entry(path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>) -> Vec<u8> {
    let mut h = header(kind, data.len() as u64);
    // Raw names: the builder itself refuses `..`, a hostile engine does not.
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(link) = link {
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
    }
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

fn chunks(
    bytes: &[u8],
    size: usize,
) -> impl futures::Stream<Item = Result<Bytes, EngineError>> + Send {
    let parts: Vec<Result<Bytes, EngineError>> = bytes
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(parts)
}

fn read(bytes: &[u8]) -> Result<Vec<u8>, ReadBackError> {
    block_on(archive::read_single_file(
        chunks(bytes, 700),
        LIMIT,
        5 * SECOND,
    ))
    .map(|s| s.expose().to_vec())
}

fn not_regular(r: Result<Vec<u8>, ReadBackError>) -> String {
    match r {
        Err(ReadBackError::NotRegular(kind)) => kind,
        other => panic!("expected NotRegular, got {:?}", other.map(|_| "a file")),
    }
}

#[test]
fn read_back_takes_only_a_regular_file_whatever_the_archive_names() {
    use tar::EntryType as T;
    // Nothing is ever written to disk: a `../` or absolute name is only a label.
    for path in ["../../../etc/shadow", "/etc/shadow", ".credentials.json"] {
        assert_eq!(
            read(&one_entry(path, T::Regular, b"{}", None)).unwrap(),
            b"{}"
        );
    }
    assert_eq!(
        not_regular(read(&one_entry("c", T::Symlink, b"", Some("/etc/shadow")))),
        "symlink"
    );
    assert_eq!(
        not_regular(read(&one_entry(
            "c",
            T::Link,
            b"",
            Some("../../etc/shadow")
        ))),
        "link"
    );
    assert_eq!(
        not_regular(read(&one_entry("c", T::Char, b"", None))),
        "char"
    );
    assert_eq!(
        not_regular(read(&one_entry("c", T::Block, b"", None))),
        "block"
    );
    assert_eq!(
        not_regular(read(&one_entry("c", T::Fifo, b"", None))),
        "fifo"
    );
    assert_eq!(
        not_regular(read(&one_entry("c/", T::Directory, b"", None))),
        "directory"
    );
    assert!(matches!(read(&[]), Err(ReadBackError::Corrupt(_))));
    assert!(matches!(read(&[0; 1024]), Err(ReadBackError::Corrupt(_))));
    // A broken checksum.
    let mut bad = one_entry("c", T::Regular, b"{}", None);
    bad[148] ^= 0x11;
    assert!(matches!(read(&bad), Err(ReadBackError::Corrupt(_))));
}

#[test]
fn read_back_refuses_a_file_cut_short() {
    // A header that promises 600 bytes, and a stream that ends after 100: a partial
    // /etc/passwd or credentials file must not pass for the whole one.
    let mut short = one_entry("c", tar::EntryType::Regular, &[b'x'; 600], None);
    short.truncate(512 + 100);
    let r = read(&short);
    assert!(
        matches!(r, Err(ReadBackError::Corrupt(_))),
        "got {:?}",
        r.map(|b| format!("{} bytes", b.len()))
    );
}

/// A stream that makes `total` bytes on demand (a header claiming them, then zeros),
/// counting what was pulled from it.
fn lazy_huge(
    total: u64,
    pulled: Arc<AtomicUsize>,
) -> impl futures::Stream<Item = Result<Bytes, EngineError>> + Send {
    let head = Bytes::copy_from_slice(header(tar::EntryType::Regular, total).as_bytes());
    let zeros = Bytes::from(vec![0u8; 64 * 1024]);
    let body_chunks = total.div_ceil(64 * 1024);
    futures::stream::once(async move { head })
        .chain(futures::stream::repeat(zeros).take(usize::try_from(body_chunks).unwrap()))
        .map(move |b| {
            pulled.fetch_add(b.len(), Ordering::SeqCst);
            Ok(b)
        })
}

#[test]
fn read_back_of_a_multi_gigabyte_file_reads_a_bounded_amount() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let r = block_on(archive::read_single_file(
        lazy_huge(3 << 30, pulled.clone()),
        LIMIT,
        10 * SECOND,
    ));
    assert!(
        matches!(r, Err(ReadBackError::TooLarge { limit: LIMIT })),
        "{:?}",
        r.map(|_| ())
    );
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(pulled <= LIMIT + 4096 + 64 * 1024, "pulled {pulled} bytes");
    assert!(started.elapsed() < SECOND);
    // The same through the header-only reader.
    let pulled2 = Arc::new(AtomicUsize::new(0));
    let meta = block_on(archive::first_header(
        lazy_huge(3 << 30, pulled2.clone()),
        LIMIT,
        10 * SECOND,
    ))
    .unwrap();
    assert_eq!(meta.kind, archive::Kind::File);
    assert!(pulled2.load(Ordering::SeqCst) <= 512 + 64 * 1024);
}

#[test]
fn read_back_of_an_endless_or_stalled_stream_stops_in_bounded_time_and_memory() {
    // Endless and fast: cut at the size limit.
    let endless = futures::stream::repeat_with(|| Ok(Bytes::from(vec![b'{'; 4096])));
    let r = block_on(archive::read_single_file(endless, LIMIT, 10 * SECOND));
    assert!(matches!(r, Err(ReadBackError::TooLarge { .. })));
    let endless = futures::stream::repeat_with(|| Ok(Bytes::from(vec![0u8; 4096])));
    let r = block_on(archive::first_header(endless, LIMIT, 10 * SECOND));
    assert!(matches!(r, Err(ReadBackError::TooLarge { .. })), "{r:?}");

    // Endless and slow (a byte every 5 ms, far under the size limit): cut at the timeout.
    for header_only in [false, true] {
        let trickle = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Some((Ok(Bytes::from_static(b"x")), ()))
        });
        let started = Instant::now();
        let timed_out = if header_only {
            matches!(
                block_on(archive::first_header(trickle, LIMIT, SECOND / 2)),
                Err(ReadBackError::TimedOut(_))
            )
        } else {
            matches!(
                block_on(archive::read_single_file(trickle, LIMIT, SECOND / 2)),
                Err(ReadBackError::TimedOut(_))
            )
        };
        assert!(timed_out);
        assert!(started.elapsed() < 2 * SECOND, "{:?}", started.elapsed());
    }

    // A valid header, then nothing ever again.
    let head = Bytes::copy_from_slice(header(tar::EntryType::Regular, 100).as_bytes());
    let stalled = futures::stream::once(async move { Ok(head) }).chain(futures::stream::pending());
    let r = block_on(archive::read_single_file(stalled, LIMIT, SECOND / 2));
    assert!(matches!(r, Err(ReadBackError::TimedOut(_))));

    // The engine fails in the middle: its error, not a partial file.
    let broken = chunks(
        &one_entry("c", tar::EntryType::Regular, &[b'x'; 2000], None),
        512,
    )
    .take(2)
    .chain(futures::stream::once(async {
        Err(EngineError::Api {
            op: "read",
            object: "c".into(),
            status: None,
            message: "connection reset".into(),
        })
    }));
    assert!(matches!(
        block_on(archive::read_single_file(broken, LIMIT, SECOND)),
        Err(ReadBackError::Engine(_))
    ));
}

// ---- a hostile container ----

/// A fleet whose followers replace their credentials file with a symlink out of the
/// config dir, a FIFO, a 3 GB sparse file and a device node: `ps` and `creds sync` stay
/// bounded in time and memory, say what they found, and sync replaces the hostile
/// files with regular ones without writing through them.
#[test]
fn a_hostile_container_cannot_make_ps_or_sync_hang_read_unbounded_or_write_through_links() {
    const CREDS: &str = "/root/.claude/.credentials.json";
    let p = Project::new("hostile");
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    replicas: 5\n    smoke: false\n",
        image(Image::Root)
    ));
    p.claunch().arg("up").assert().success();
    let c = |n: u32| format!("{}-agent-{n}", p.name);
    let passwd_before = p.sh(&c(2), "sha256sum /etc/passwd");
    let hostile = [
        (
            2,
            format!("rm {CREDS} && ln -s /etc/passwd {CREDS}"),
            "not a regular file (symlink)",
        ),
        (
            3,
            format!("rm {CREDS} && mkfifo {CREDS}"),
            "not a regular file (fifo)",
        ),
        (
            4,
            format!("rm {CREDS} && truncate -s 3G {CREDS}"),
            "the archive is larger than",
        ),
        (
            5,
            format!("rm {CREDS} && mknod {CREDS} c 1 5"),
            "not a regular file (char)",
        ),
    ];
    for (n, script, _) in &hostile {
        assert_eq!(
            p.sh(&c(*n), &format!("{script} && echo ok")).trim(),
            "ok",
            "{script}"
        );
    }
    // 1 GiB of address space is plenty for claunch and far under a 3 GB file.
    let bounded = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| (*s).to_string()).collect();
        let ran = run_bounded(p.dir.path(), &args, false, Duration::from_secs(60), 1 << 20);
        assert!(
            !ran.timed_out,
            "claunch {args:?} hung:\n{}\n{}",
            ran.stdout, ran.stderr
        );
        // Each read gives up by itself (deliver::READ_TIMEOUT is 20 s); none should need to.
        assert!(
            ran.elapsed < Duration::from_secs(20),
            "claunch {args:?} took {:?}",
            ran.elapsed
        );
        ran
    };

    let ran = bounded(&["ps", "--json"]);
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    let rows: BTreeMap<String, serde_json::Value> = ran
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["name"].as_str().unwrap().to_string(), v)
        })
        .collect();
    assert_eq!(rows[&c(1)]["credentials"], "ok");
    for (n, _, says) in &hostile {
        let shown = rows[&c(*n)]["credentials"].as_str().unwrap();
        assert!(
            shown.starts_with(&format!("unknown: reading {CREDS}: ")) && shown.contains(says),
            "{}: {shown}",
            c(*n)
        );
    }

    let ran = bounded(&["creds", "sync"]);
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    for (n, _, _) in &hostile {
        assert!(
            ran.stdout
                .contains(&format!("{} | done: updated (follower)", c(*n))),
            "{}",
            ran.stdout
        );
        let kind = p.sh(&c(*n), &format!("stat -c %F {CREDS}"));
        assert_eq!(kind.trim(), "regular file", "{}", c(*n));
    }
    assert_eq!(
        p.sh(&c(2), "sha256sum /etc/passwd"),
        passwd_before,
        "written through the symlink"
    );
    let ran = bounded(&["ps", "--json"]);
    for line in ran.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["credentials"], "ok", "{line}");
    }
}

/// The leader's file is the one claunch adopts from: a hostile one there is refused,
/// reported, and never written through, and the source keeps its login.
#[test]
fn a_hostile_leader_file_is_refused_and_the_source_kept() {
    const CREDS: &str = "/root/.claude/.credentials.json";
    let p = Project::new("hostile-leader");
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    replicas: 2\n    smoke: false\n",
        image(Image::Root)
    ));
    p.claunch().arg("up").assert().success();
    let source_before = std::fs::read(p.path("creds/.credentials.json")).unwrap();
    let leader = format!("{}-agent-1", p.name);
    p.sh(&leader, &format!("rm {CREDS} && truncate -s 3G {CREDS}"));
    let ran = run_bounded(
        p.dir.path(),
        &["creds".to_string(), "sync".to_string()],
        false,
        Duration::from_secs(60),
        1 << 20,
    );
    assert!(
        !ran.timed_out && ran.elapsed < Duration::from_secs(20),
        "{:?}",
        ran.elapsed
    );
    let all = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        all.contains(&leader) && all.contains("the archive is larger than"),
        "{all}"
    );
    assert_ne!(ran.code, Some(0), "{all}");
    assert_eq!(
        std::fs::read(p.path("creds/.credentials.json")).unwrap(),
        source_before
    );
    // The follower still got what it should have (the source's access token).
    let follower = format!("{}-agent-2", p.name);
    assert!(p
        .sh(&follower, &format!("cat {CREDS}"))
        .contains("accessToken"));
}
