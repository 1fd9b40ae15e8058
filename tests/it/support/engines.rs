//! Docker engines of a test's own beside the shared one: on a bridge of their own
//! ([`SecondEngine::start`]) or alone in a network namespace ([`SecondEngine::in_namespace`],
//! an engine on "another machine" as far as the network goes), each torn down when dropped,
//! a failed test included, and the test image built on them.
//!
//! Never `--bridge none` on the host's network: a dockerd started that way deletes the
//! host's `docker0`, which breaks the shared engine's builds and default network for
//! everyone. In a namespace the engine's `docker0` is its own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use claunch::engine::Engine;
use claunch::fleet::label;

use super::rt;

/// A network namespace with a veth pair to the host: the host's end is `host_ip`, the
/// namespace's end answers on `ip` and `alias_ip`. Deleted when dropped.
pub struct Namespace {
    pub name: String,
    pub host_ip: String,
    pub ip: String,
    /// A second address of the namespace, for reaching it by a name a certificate lacks.
    pub alias_ip: String,
    veth: String,
}

impl Namespace {
    /// A fresh namespace on 10.214.N.0/24, N picked by this process and claimed by
    /// creating it (so two tests never share one).
    pub fn create() -> Self {
        let start = std::process::id() % 200;
        let n = (0..200)
            .map(|i| (start + i) % 200 + 20)
            .find(|n| {
                Command::new("ip")
                    .args(["netns", "add", &format!("clr{n}")])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .expect("no free network namespace name clr20..clr219 (`ip netns add` needs root)");
        let me = Self {
            name: format!("clr{n}"),
            host_ip: format!("10.214.{n}.1"),
            ip: format!("10.214.{n}.2"),
            alias_ip: format!("10.214.{n}.3"),
            veth: format!("clrh{n}"),
        };
        let inner = format!("clrn{n}");
        // A stale pair from a killed run would make `add` fail.
        let _ = Command::new("ip")
            .args(["link", "del", &me.veth])
            .stderr(Stdio::null())
            .status();
        let ip = |args: &[&str]| {
            let ok = Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {args:?} failed: the test's namespace needs it");
        };
        ip(&[
            "link", "add", &me.veth, "type", "veth", "peer", "name", &inner,
        ]);
        ip(&["link", "set", &inner, "netns", &me.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", me.host_ip),
            "dev",
            &me.veth,
        ]);
        ip(&["link", "set", &me.veth, "up"]);
        for addr in [&me.ip, &me.alias_ip] {
            ip(&[
                "-n",
                &me.name,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &inner,
            ]);
        }
        ip(&["-n", &me.name, "link", "set", &inner, "up"]);
        ip(&["-n", &me.name, "link", "set", "lo", "up"]);
        me
    }

    /// `program` run inside the namespace. `nsenter`, not `ip netns exec`: that one
    /// remounts /sys, and dockerd then fails ("Devices cgroup isn't mounted").
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/var/run/netns/{}", self.name))
            .arg(program);
        cmd
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Where a second engine lives.
enum Place {
    /// The host's network, with a bridge of its own for its containers.
    Bridge(String),
    /// Alone in a namespace, with its own `docker0`; `extra` are more dockerd arguments
    /// (a TLS listener).
    Namespace { ns: Namespace, extra: Vec<String> },
}

/// A dockerd of the test's own: its own socket, data, exec root and pid file, no
/// iptables (the host's engine owns those), vfs storage (works anywhere).
pub struct SecondEngine {
    // Dropped after `Drop::drop` has stopped the daemon: the namespace and bridge go last.
    place: Place,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SecondEngine {
    /// On the host's network, with a bridge of its own on a subnet outside the engine's
    /// address pools (172.17-31, 192.168): 10.199.N.0/24.
    pub fn start() -> Self {
        let n = std::process::id() % 250;
        let bridge = format!("clbr{n}");
        let ip = |args: &[&str]| {
            let ok = Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "ip {args:?} failed: the second engine needs its own bridge"
            );
        };
        let _ = Command::new("ip").args(["link", "del", &bridge]).status();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("10.199.{n}.1/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        Self::launched(Place::Bridge(bridge))
    }

    /// Alone in `ns`, with `extra` dockerd arguments.
    pub fn in_namespace(ns: Namespace, extra: Vec<String>) -> Self {
        Self::launched(Place::Namespace { ns, extra })
    }

    fn launched(place: Place) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("claunch-dockerd")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("daemon.json"), "{}").unwrap();
        let mut me = Self {
            place,
            dir,
            child: None,
        };
        me.launch();
        me
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Its unix socket, as `-H` takes it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.path("docker.sock").display())
    }

    /// The namespace it runs in, if any.
    pub fn namespace(&self) -> Option<&Namespace> {
        match &self.place {
            Place::Namespace { ns, .. } => Some(ns),
            Place::Bridge(_) => None,
        }
    }

    /// The end of its log, grpc's connection chatter left out.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.path("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| !l.contains("module=grpc")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Starts the daemon (again) and waits for it to answer.
    pub fn launch(&mut self) {
        // A dockerd killed with SIGKILL leaves its pid file, and a new one refuses to start.
        let _ = std::fs::remove_file(self.path("docker.pid"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("dockerd.log"))
            .unwrap();
        let p = |rel: &str| self.path(rel).display().to_string();
        let mut args = vec![
            "--config-file".to_string(),
            p("daemon.json"),
            "--host".to_string(),
            self.host(),
            "--data-root".to_string(),
            p("data"),
            "--exec-root".to_string(),
            p("exec"),
            "--pidfile".to_string(),
            p("docker.pid"),
            "--iptables=false".to_string(),
            "--ip-masq=false".to_string(),
            "--storage-driver".to_string(),
            "vfs".to_string(),
        ];
        let mut cmd = match &self.place {
            Place::Bridge(bridge) => {
                args.extend(["--bridge".to_string(), bridge.clone()]);
                Command::new("dockerd")
            }
            Place::Namespace { ns, extra } => {
                args.extend(extra.iter().cloned());
                ns.command("dockerd")
            }
        };
        let child = cmd
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run dockerd for a second engine: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if rt().block_on(Engine::connect(Some(&self.host()))).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the second dockerd exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the second dockerd did not answer within 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn engine(&self) -> Engine {
        rt().block_on(Engine::connect(Some(&self.host()))).unwrap()
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        // The containerd it started dies with it (parent-death signal), but nothing may
        // reap it: PID 1 here does not, and a zombie still answers kill(pid, 0), so the
        // next dockerd would take it for running and wait on its socket until it gives
        // up. Make sure it is dead, then forget its pid file.
        let pid_file = self.path("exec/containerd/containerd.pid");
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        let _ = std::fs::remove_file(pid_file);
    }

    /// Builds the test image on this engine (no RUN: the busybox applets are symlinks in
    /// the context, so the build needs no container and no network).
    pub fn build_image(&self) -> String {
        let busybox = std::fs::read("/bin/busybox")
            .or_else(|_| std::fs::read("/usr/bin/busybox"))
            .expect("busybox-static is needed (apt-get install busybox-static)");
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        let applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
            .lines()
            .map(str::to_string)
            .filter(|a| !a.is_empty() && a != "busybox")
            .collect();
        let cmd = r#"f="${CLAUDE_CONFIG_DIR:-$HOME/.claude}/.credentials.json"; if [ -r "$f" ]; then echo readable > /tmp/at-start; else echo missing > /tmp/at-start; fi; trap "exit 0" TERM INT; while true; do sleep 1 & wait $!; done"#;
        let dockerfile = format!(
            "FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/bin:/bin\nCMD [\"/bin/sh\", \"-c\", {}]\n",
            serde_json::to_string(cmd).unwrap()
        );
        let mut tar = tar::Builder::new(Vec::new());
        let mut add =
            |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(kind);
                h.set_size(data.len() as u64);
                h.set_mode(mode);
                h.set_uid(0);
                h.set_gid(0);
                match link {
                    Some(target) => tar.append_link(&mut h, path, target).unwrap(),
                    None => tar.append_data(&mut h, path, data).unwrap(),
                }
            };
        add(
            "Dockerfile",
            tar::EntryType::Regular,
            0o644,
            dockerfile.as_bytes(),
            None,
        );
        for dir in [
            "rootfs/bin",
            "rootfs/etc",
            "rootfs/root",
            "rootfs/usr/local/bin",
        ] {
            add(dir, tar::EntryType::Directory, 0o755, &[], None);
        }
        add("rootfs/tmp", tar::EntryType::Directory, 0o1777, &[], None);
        add(
            "rootfs/bin/busybox",
            tar::EntryType::Regular,
            0o755,
            &busybox,
            None,
        );
        for applet in &applets {
            add(
                &format!("rootfs/bin/{applet}"),
                tar::EntryType::Symlink,
                0o777,
                &[],
                Some("busybox"),
            );
        }
        add(
            "rootfs/etc/passwd",
            tar::EntryType::Regular,
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\n",
            None,
        );
        add(
            "rootfs/etc/group",
            tar::EntryType::Regular,
            0o644,
            b"root:x:0:\n",
            None,
        );
        let standin = std::fs::read(super::fixture("claude-standin.sh")).unwrap();
        add(
            "rootfs/usr/local/bin/claude",
            tar::EntryType::Regular,
            0o755,
            &standin,
            None,
        );
        let context = tar.into_inner().unwrap();
        let tag = "claunch-test/agent:second-engine".to_string();
        rt().block_on(super::build_image(
            &self.engine(),
            context,
            &tag,
            HashMap::new(),
        ))
        .unwrap_or_else(|e| panic!("building the test image on the second engine: {e}"));
        tag
    }
}

/// Deletes the second engine's bridge once everything else is cleaned up.
struct BridgeGuard(String);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        let _bridge = match &self.place {
            Place::Bridge(bridge) => Some(BridgeGuard(bridge.clone())),
            Place::Namespace { .. } => None,
        };
        if self.child.is_some() {
            // Remove what the test made, then stop the daemon cleanly.
            if let Ok(engine) = rt().block_on(Engine::connect(Some(&self.host()))) {
                for c in rt()
                    .block_on(engine.list_containers(&[]))
                    .unwrap_or_default()
                {
                    let _ = rt().block_on(engine.remove_container(&c.id));
                }
                for network in rt()
                    .block_on(engine.list_networks(&[(label::MANAGED, "true")]))
                    .unwrap_or_default()
                {
                    let _ = rt().block_on(engine.remove_network(&network.id));
                }
            }
            let mut child = self.child.take().unwrap();
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // If the daemon could not clean up (a failed restart), its containers' shims and
        // processes outlive it: find them by the exec root in their command line and
        // kill each container's processes, then the shim.
        for shim in pids_mentioning(&self.path("exec").display().to_string()) {
            for child in children_of(shim) {
                let _ = Command::new("kill")
                    .args(["-KILL", &child.to_string()])
                    .status();
            }
            let _ = Command::new("kill")
                .args(["-KILL", &shim.to_string()])
                .status();
        }
        // dockerd bind-mounts its data root on itself, and leaves network namespaces
        // mounted under its exec root: unmount all of it, deepest first, before removal.
        let root = self.dir.path().display().to_string();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&root))
            .collect();
        points.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in points {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
    }
}

/// Processes whose command line contains `needle`.
pub fn pids_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| *pid != me)
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The direct children of `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|child| {
                    // `/proc/N/stat`: "N (comm) S PPID …"; comm may hold spaces.
                    std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                        stat.rsplit_once(") ")
                            .and_then(|(_, rest)| rest.split(' ').nth(1))
                            .and_then(|ppid| ppid.parse::<u32>().ok())
                            == Some(pid)
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `pid` and every process below it, parents before children.
pub fn tree_of(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        all.extend(children_of(all[i]));
        i += 1;
    }
    all
}
