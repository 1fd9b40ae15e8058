//! The benchmark's lower bound and its stopwatch: the leanest Engine API client for a
//! fleet spin-up (create, archive upload, start, exec; nothing else), timed per phase,
//! and a time-to-first-byte meter for any command's stdout. Driven by `benches/run.sh`.
//!
//! `floor up --project P --image I --n N --creds FILE [--parallel 8] [--phased]
//!       [--network user|bridge|none] [--no-aliases] [--no-exec] [--label K=V]`
//!   creates the network `P_default` (user mode), then per container, `--parallel` at a
//!   time: `POST /containers/create`, `PUT /containers/{id}/archive` (root's
//!   `.claude/.credentials.json`, 0600), `POST /containers/{id}/start`, and the smoke test
//!   `claude -p "Say hello" --max-turns 1` as exec create, exec start (read to EOF) and exec
//!   inspect. The API version is fixed (1.41) rather than negotiated, to save the round
//!   trip. `--phased` runs each phase over every container before the next, so the phases'
//!   wall times add up to the total. Prints one JSON line.
//!
//! `floor ttfb CMD ARGS…` runs a command, reads its stdout to the end and prints one JSON
//! line: time to the first byte, total time, bytes, MB/s, exit code.

// Durations and byte counts are far below 2^52: f64 is exact enough for reporting.
#![allow(clippy::cast_precision_loss)]

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bollard::exec::StartExecResults;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig, NetworkCreateRequest,
    NetworkingConfig,
};
use bollard::query_parameters::{CreateContainerOptions, UploadToContainerOptions};
use bollard::{ClientVersion, Docker};
use futures::stream::{self, StreamExt};
use serde_json::json;

const PHASES: [&str; 6] = [
    "create",
    "archive",
    "start",
    "exec_create",
    "exec_run",
    "exec_inspect",
];

#[derive(Debug, Clone)]
struct UpArgs {
    project: String,
    image: String,
    n: u32,
    parallel: usize,
    creds: Vec<u8>,
    phased: bool,
    network: String,
    aliases: bool,
    exec: bool,
    /// Bind-mount this host file read-only instead of uploading it (the guide's way).
    bind: Option<String>,
    labels: HashMap<String, String>,
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` appends `--bench`; it means nothing here.
    args.retain(|a| a != "--bench");
    match args.first().map(String::as_str) {
        Some("up") => {
            let up = parse_up(&args[1..])?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = rt.block_on(up_fleet(&up))?;
            println!("{report}");
            if report["failures"] != 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Some("ttfb") => ttfb(&args[1..]),
        // Plain `cargo bench`: nothing to do without the harness around it.
        None => {
            eprintln!("floor is driven by benches/run.sh (QUICK=1 for a short run)");
            Ok(())
        }
        Some(_) => bail!("usage: floor up --project P --image I --n N --creds FILE [options] | floor ttfb CMD ARGS…"),
    }
}

fn parse_up(args: &[String]) -> anyhow::Result<UpArgs> {
    let mut up = UpArgs {
        project: String::new(),
        image: String::new(),
        n: 0,
        parallel: 8,
        creds: Vec::new(),
        phased: false,
        network: "user".into(),
        aliases: true,
        exec: true,
        bind: None,
        labels: HashMap::new(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--project" => up.project.clone_from(value()?),
            "--image" => up.image.clone_from(value()?),
            "--n" => up.n = value()?.parse()?,
            "--parallel" => up.parallel = value()?.parse()?,
            "--creds" => {
                let path = value()?;
                up.creds = std::fs::read(path).with_context(|| format!("reading {path}"))?;
            }
            "--network" => up.network.clone_from(value()?),
            "--label" => {
                let (k, v) = value()?.split_once('=').context("--label K=V")?;
                up.labels.insert(k.into(), v.into());
            }
            "--bind-creds" => up.bind = Some(value()?.clone()),
            "--phased" => up.phased = true,
            "--no-aliases" => up.aliases = false,
            "--no-exec" => up.exec = false,
            other => bail!("unknown option {other}"),
        }
    }
    if up.project.is_empty() || up.image.is_empty() || up.n == 0 || up.creds.is_empty() {
        bail!("--project, --image, --n and --creds are required");
    }
    Ok(up)
}

fn connect() -> anyhow::Result<Docker> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let socket = host
        .strip_prefix("unix://")
        .filter(|s| !s.is_empty())
        .unwrap_or("/var/run/docker.sock");
    let version = ClientVersion {
        major_version: 1,
        minor_version: 41,
    };
    Ok(Docker::connect_with_unix(socket, 120, &version)?)
}

/// The credentials as claunch delivers them for a root container: `/root/.claude` 0700
/// (missing in the image) and the file 0600, extracted at `/`.
fn credentials_tar(creds: &[u8]) -> bytes::Bytes {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mode(0o700);
    tar.append_data(&mut dir, "root/.claude", &[][..])
        .expect("tar in memory");
    let mut file = tar::Header::new_gnu();
    file.set_size(creds.len() as u64);
    file.set_mode(0o600);
    tar.append_data(&mut file, "root/.claude/.credentials.json", creds)
        .expect("tar in memory");
    tar.into_inner().expect("tar in memory").into()
}

fn body(up: &UpArgs, replica: u32) -> ContainerCreateBody {
    let name = format!("{}-agent-{replica}", up.project);
    let mut labels = up.labels.clone();
    labels.insert("claunch.bench.replica".into(), replica.to_string());
    let (network_mode, networking) = match up.network.as_str() {
        "user" => {
            let net = format!("{}_default", up.project);
            let endpoint = EndpointSettings {
                aliases: up.aliases.then(|| vec!["agent".to_string(), name]),
                ..Default::default()
            };
            (
                Some(net.clone()),
                Some(NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(net, endpoint)])),
                }),
            )
        }
        other => (Some(other.to_string()), None),
    };
    ContainerCreateBody {
        image: Some(up.image.clone()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode,
            binds: up
                .bind
                .as_ref()
                .map(|file| vec![format!("{file}:/root/.claude/.credentials.json:ro")]),
            ..Default::default()
        }),
        networking_config: networking,
        ..Default::default()
    }
}

/// One container's run: the time each phase took, in seconds, and whether its smoke passed.
#[derive(Default)]
struct Timings {
    phases: HashMap<&'static str, f64>,
    ok: bool,
}

struct Ctx {
    docker: Docker,
    up: UpArgs,
    tar: bytes::Bytes,
    polls: AtomicU32,
}

async fn timed<T, F: std::future::Future<Output = T>>(
    t: &mut Timings,
    phase: &'static str,
    f: F,
) -> T {
    let start = Instant::now();
    let out = f.await;
    t.phases.insert(phase, start.elapsed().as_secs_f64());
    out
}

async fn create(ctx: &Ctx, replica: u32, t: &mut Timings) -> anyhow::Result<String> {
    let options = CreateContainerOptions {
        name: Some(format!("{}-agent-{replica}", ctx.up.project)),
        ..Default::default()
    };
    let made = timed(
        t,
        "create",
        ctx.docker
            .create_container(Some(options), body(&ctx.up, replica)),
    )
    .await?;
    Ok(made.id)
}

async fn deliver(ctx: &Ctx, id: &str, t: &mut Timings) -> anyhow::Result<()> {
    let options = UploadToContainerOptions {
        path: "/".into(),
        ..Default::default()
    };
    timed(
        t,
        "archive",
        ctx.docker
            .upload_to_container(id, Some(options), bollard::body_full(ctx.tar.clone())),
    )
    .await?;
    Ok(())
}

async fn start(ctx: &Ctx, id: &str, t: &mut Timings) -> anyhow::Result<()> {
    timed(t, "start", ctx.docker.start_container(id, None)).await?;
    Ok(())
}

async fn smoke(ctx: &Ctx, id: &str, t: &mut Timings) -> anyhow::Result<bool> {
    let config = ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(
            ["claude", "-p", "Say hello", "--max-turns", "1"]
                .map(String::from)
                .to_vec(),
        ),
        ..Default::default()
    };
    let exec = timed(t, "exec_create", ctx.docker.create_exec(id, config)).await?;
    let output = timed(t, "exec_run", async {
        let StartExecResults::Attached { mut output, .. } =
            ctx.docker.start_exec(&exec.id, None).await?
        else {
            bail!("exec started detached")
        };
        let mut text = Vec::new();
        while let Some(chunk) = output.next().await {
            text.extend_from_slice(&chunk?.into_bytes());
        }
        Ok::<_, anyhow::Error>(text)
    })
    .await?;
    let code = timed(t, "exec_inspect", async {
        loop {
            let inspect = ctx.docker.inspect_exec(&exec.id).await?;
            if inspect.running != Some(true) {
                return Ok::<_, anyhow::Error>(inspect.exit_code);
            }
            ctx.polls.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await?;
    Ok(code == Some(0) && output.windows(5).any(|w| w == b"Hello"))
}

async fn one(ctx: &Ctx, replica: u32) -> anyhow::Result<Timings> {
    let mut t = Timings::default();
    let id = create(ctx, replica, &mut t).await?;
    if ctx.up.bind.is_none() {
        deliver(ctx, &id, &mut t).await?;
    }
    start(ctx, &id, &mut t).await?;
    t.ok = !ctx.up.exec || smoke(ctx, &id, &mut t).await?;
    Ok(t)
}

fn stats(mut v: Vec<f64>) -> serde_json::Value {
    if v.is_empty() {
        return json!(null);
    }
    v.sort_by(f64::total_cmp);
    // The value at fraction num/den of the sorted list (nearest rank, rounded down).
    let at = |num: usize, den: usize| v[(v.len() - 1) * num / den] * 1000.0;
    json!({
        "sum_s": round3(v.iter().sum()),
        "median_ms": round3(at(1, 2)),
        "p90_ms": round3(at(9, 10)),
        "max_ms": round3(at(1, 1)),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn up_fleet(up: &UpArgs) -> anyhow::Result<serde_json::Value> {
    let wall = Instant::now();
    let docker = connect()?;
    let net_started = Instant::now();
    if up.network == "user" {
        let request = NetworkCreateRequest {
            name: format!("{}_default", up.project),
            driver: Some("bridge".into()),
            labels: Some(up.labels.clone()),
            ..Default::default()
        };
        docker.create_network(request).await?;
    }
    let network_s = net_started.elapsed().as_secs_f64();
    let ctx = Ctx {
        docker,
        up: up.clone(),
        tar: credentials_tar(&up.creds),
        polls: AtomicU32::new(0),
    };
    let replicas = 1..=up.n;
    let mut phase_walls = serde_json::Map::new();
    let results: Vec<anyhow::Result<Timings>> = if up.phased {
        phased(&ctx, replicas, &mut phase_walls).await
    } else {
        stream::iter(replicas)
            .map(|r| one(&ctx, r))
            .buffer_unordered(up.parallel)
            .collect()
            .await
    };
    let wall_s = wall.elapsed().as_secs_f64();
    let mut failures = Vec::new();
    let mut per_phase: HashMap<&str, Vec<f64>> = HashMap::new();
    for r in results {
        match r {
            Ok(t) => {
                if !t.ok {
                    failures.push("smoke test failed".to_string());
                }
                for (k, v) in t.phases {
                    per_phase.entry(k).or_default().push(v);
                }
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    let phases: serde_json::Map<String, serde_json::Value> = PHASES
        .iter()
        .map(|p| {
            (
                (*p).to_string(),
                stats(per_phase.remove(p).unwrap_or_default()),
            )
        })
        .collect();
    Ok(json!({
        "n": up.n,
        "parallel": up.parallel,
        "mode": if up.phased { "phased" } else { "pipelined" },
        "network": up.network,
        "wall_s": round3(wall_s),
        "network_create_s": round3(network_s),
        "phases": phases,
        "phase_walls_s": phase_walls,
        "exec_inspect_polls": ctx.polls.load(Ordering::Relaxed),
        "failures": failures.len(),
        "first_failure": failures.first(),
    }))
}

/// Each phase over every container, `parallel` at a time, before the next phase.
async fn phased(
    ctx: &Ctx,
    replicas: std::ops::RangeInclusive<u32>,
    walls: &mut serde_json::Map<String, serde_json::Value>,
) -> Vec<anyhow::Result<Timings>> {
    let p = ctx.up.parallel;
    let mut wall = |name: &str, since: Instant| {
        walls.insert(name.into(), json!(round3(since.elapsed().as_secs_f64())));
    };
    let t0 = Instant::now();
    let made: Vec<anyhow::Result<(String, Timings)>> = stream::iter(replicas)
        .map(|r| async move {
            let mut t = Timings::default();
            let id = create(ctx, r, &mut t).await?;
            Ok((id, t))
        })
        .buffer_unordered(p)
        .collect()
        .await;
    wall("create", t0);
    let t0 = Instant::now();
    let made = for_each_ok(made, p, |id, mut t| async move {
        if ctx.up.bind.is_none() {
            deliver(ctx, &id, &mut t).await?;
        }
        Ok((id, t))
    })
    .await;
    wall("archive", t0);
    let t0 = Instant::now();
    let made = for_each_ok(made, p, |id, mut t| async move {
        start(ctx, &id, &mut t).await?;
        Ok((id, t))
    })
    .await;
    wall("start", t0);
    let t0 = Instant::now();
    let done = for_each_ok(made, p, |id, mut t| async move {
        t.ok = !ctx.up.exec || smoke(ctx, &id, &mut t).await?;
        Ok((id, t))
    })
    .await;
    wall("exec", t0);
    done.into_iter().map(|r| r.map(|(_, t)| t)).collect()
}

async fn for_each_ok<F, Fut>(
    items: Vec<anyhow::Result<(String, Timings)>>,
    parallel: usize,
    f: F,
) -> Vec<anyhow::Result<(String, Timings)>>
where
    F: Fn(String, Timings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(String, Timings)>>,
{
    stream::iter(items)
        .map(|item| {
            let fut = item.map(|(id, t)| f(id, t));
            async move {
                match fut {
                    Ok(fut) => fut.await,
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

fn ttfb(argv: &[String]) -> anyhow::Result<()> {
    let argv: Vec<&String> = argv.iter().skip_while(|a| *a == "--").collect();
    let Some((program, rest)) = argv.split_first() else {
        bail!("usage: floor ttfb CMD ARGS…");
    };
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes: u64 = 0;
    let mut first = None;
    loop {
        let n = stdout.read(&mut buf)?;
        if n == 0 {
            break;
        }
        first.get_or_insert_with(|| started.elapsed());
        bytes += n as u64;
    }
    let total = started.elapsed();
    let status = child.wait()?;
    let secs = total.as_secs_f64();
    println!(
        "{}",
        json!({
            "ttfb_ms": first.map(|d| round3(d.as_secs_f64() * 1000.0)),
            "total_s": round3(secs),
            "bytes": bytes,
            "mb_per_s": round3(bytes as f64 / 1e6 / secs),
            "exit": status.code(),
        })
    );
    Ok(())
}
