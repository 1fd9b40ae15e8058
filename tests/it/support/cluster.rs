//! A Docker Swarm of three engines made by the test: each node is a dockerd alone in a
//! network namespace and a UTS namespace of its own (so `docker node ls` shows its own
//! hostname), all on one bridge of the test's own (10.213.N.0/24), the first node the
//! manager. Everything is torn down when the [`Cluster`] is dropped, a failed test
//! included: daemons, the containers they ran, mounts, namespaces, links, the bridge and
//! the one iptables rule the cluster needs.
//!
//! The host's iptables FORWARD policy is DROP, and traffic between the nodes crosses the
//! host's bridge (bridged packets go through iptables here): the cluster accepts its own
//! bridge's traffic for as long as it lives. Containers on a node reach the host (an API
//! stand-in listening beyond loopback) at [`Cluster::host_ip`].
//!
//! No registry: [`Cluster::load_image`] copies an image from the shared engine into every
//! node (`docker save | docker load`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use claunch::engine::Engine;

use super::engines::{children_of, pids_mentioning};
use super::rt;

/// One engine of the cluster.
pub struct Node {
    /// Its hostname, as `docker node ls` and claunch.yaml's `nodes:` name it.
    pub hostname: String,
    /// Its address on the cluster's bridge.
    pub ip: String,
    netns: String,
    /// The host's end of its veth pair.
    veth: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Node {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Its unix socket, as `-H` and `nodes:` take it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.path("docker.sock").display())
    }

    /// A client of its engine.
    pub fn engine(&self) -> Engine {
        rt().block_on(Engine::connect(Some(&self.host())))
            .unwrap_or_else(|e| panic!("node {} does not answer: {e}", self.hostname))
    }

    /// The docker CLI against this node; panics when it fails.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.docker_output(args);
        assert!(
            out.status.success(),
            "docker -H {} {args:?}: {}",
            self.hostname,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("docker prints UTF-8")
    }

    /// The docker CLI against this node, whatever its outcome.
    pub fn docker_output(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running docker {args:?}: {e}"))
    }

    /// The end of its log, grpc's connection chatter left out.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.path("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| !l.contains("module=grpc")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Whether its daemon is running (it is not after [`Cluster::kill_node`]).
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    fn launch(&mut self) {
        // A dockerd killed with SIGKILL leaves its pid file, and a new one refuses to start.
        let _ = std::fs::remove_file(self.path("docker.pid"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("dockerd.log"))
            .unwrap();
        let p = |rel: &str| self.path(rel).display().to_string();
        // nsenter (not `ip netns exec`, which remounts /sys and dockerd then fails with
        // "Devices cgroup isn't mounted"), then a UTS namespace for the node's hostname;
        // every step execs, so the child's pid is dockerd's.
        let script = format!(
            "hostname {} && exec dockerd --config-file {} --host {} --data-root {} --exec-root {} --pidfile {}",
            self.hostname,
            p("daemon.json"),
            self.host(),
            p("data"),
            p("exec"),
            p("docker.pid"),
        );
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .args(["unshare", "--uts", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run dockerd for node {}: {e}", self.hostname));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if rt().block_on(Engine::connect(Some(&self.host()))).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "dockerd of node {} exited with {status}:\n{}",
                    self.hostname,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "dockerd of node {} did not answer within 60s:\n{}",
                self.hostname,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL of the daemon, its containerd, its containers' shims and their processes:
    /// the node is gone as in a power cut.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for shim in pids_mentioning(&self.path("exec").display().to_string()) {
            for pid in children_of(shim) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = Command::new("kill")
                .args(["-KILL", &shim.to_string()])
                .status();
        }
        let _ = std::fs::remove_file(self.path("exec/containerd/containerd.pid"));
    }

    /// Unmounts whatever dockerd left mounted under its directory, deepest first.
    fn unmount(&self) {
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

/// Three engines in one Swarm, the first the manager.
pub struct Cluster {
    pub nodes: Vec<Node>,
    bridge: String,
    subnet: u32,
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "ip {args:?} failed: the test cluster needs it (as root)"
    );
}

/// The iptables rule that lets the cluster's bridge forward its own traffic.
fn forward_rule(op: &str, bridge: &str) -> bool {
    Command::new("iptables")
        .args([op, "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Cluster {
    /// Three nodes: a manager and two workers. The subnet 10.213.N.0/24 is claimed by
    /// creating the bridge `clsw<N>`, so two clusters of two tests never share one.
    pub fn start() -> Self {
        Self::with_nodes(3)
    }

    /// `count` nodes, the first the manager and the others workers.
    pub fn with_nodes(count: usize) -> Self {
        let start = std::process::id() % 200;
        let subnet = (0..200)
            .map(|i| (start + i) % 200 + 20)
            .find(|n| {
                Command::new("ip")
                    .args(["link", "add", &format!("clsw{n}"), "type", "bridge"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .expect("no free bridge name clsw20..clsw219 (`ip link add` needs root)");
        let bridge = format!("clsw{subnet}");
        let mut me = Self {
            nodes: Vec::new(),
            bridge: bridge.clone(),
            subnet,
        };
        ip(&[
            "addr",
            "add",
            &format!("10.213.{subnet}.1/24"),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        assert!(
            forward_rule("-I", &bridge),
            "iptables -I FORWARD for the cluster's bridge failed"
        );
        for i in 1..=count {
            me.nodes.push(me.make_node(i));
        }
        std::thread::scope(|s| {
            for node in &mut me.nodes {
                s.spawn(|| node.launch());
            }
        });
        me.form_swarm();
        me
    }

    fn make_node(&self, i: usize) -> Node {
        let n = self.subnet;
        let netns = format!("clsn{n}x{i}");
        let veth = format!("clsh{n}x{i}");
        let inner = format!("clsi{n}x{i}");
        let node_ip = format!("10.213.{n}.{}", 10 + i);
        let _ = Command::new("ip")
            .args(["netns", "del", &netns])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &veth])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &netns]);
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &inner]);
        ip(&["link", "set", &inner, "netns", &netns]);
        ip(&["link", "set", &veth, "master", &self.bridge]);
        ip(&["link", "set", &veth, "up"]);
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{node_ip}/24"),
            "dev",
            &inner,
        ]);
        ip(&["-n", &netns, "link", "set", &inner, "up"]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &netns,
            "route",
            "add",
            "default",
            "via",
            &self.host_ip(),
        ]);
        let dir = tempfile::Builder::new()
            .prefix("claunch-node")
            .tempdir()
            .unwrap();
        // The host's /etc/docker/daemon.json sets data-root: each node has a file of its
        // own. Its own address pool keeps its bridges clear of the host's.
        let config = serde_json::json!({
            "storage-driver": "fuse-overlayfs",
            "default-address-pools": [{"base": format!("10.{}.0.0/16", 100 + i), "size": 24}],
            "mtu": 1400,
        });
        std::fs::write(dir.path().join("daemon.json"), config.to_string()).unwrap();
        Node {
            hostname: format!("c{n}n{i}"),
            ip: node_ip,
            netns,
            veth,
            dir,
            child: None,
        }
    }

    fn form_swarm(&self) {
        let manager = &self.nodes[0];
        manager.docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            &manager.ip,
            "--listen-addr",
            &format!("{}:2377", manager.ip),
        ]);
        let token = manager.docker(&["swarm", "join-token", "-q", "worker"]);
        let token = token.trim();
        std::thread::scope(|s| {
            for worker in &self.nodes[1..] {
                s.spawn(move || {
                    worker.docker(&[
                        "swarm",
                        "join",
                        "--token",
                        token,
                        "--advertise-addr",
                        &worker.ip,
                        &format!("{}:2377", manager.ip),
                    ]);
                });
            }
        });
        self.wait_for_nodes(self.nodes.len(), Duration::from_secs(60));
    }

    /// Waits until `count` nodes are ready in the manager's view.
    pub fn wait_for_nodes(&self, count: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let ready = self.ready_nodes();
            if ready.len() == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{count} nodes not ready within {limit:?}: ready {ready:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The hostnames of the nodes the manager sees as ready.
    pub fn ready_nodes(&self) -> Vec<String> {
        let out = self
            .manager()
            .docker(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
        out.lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, status)| *status == "Ready")
            .map(|(host, _)| host.to_string())
            .collect()
    }

    pub fn manager(&self) -> &Node {
        &self.nodes[0]
    }

    /// The node of that hostname.
    pub fn node(&self, hostname: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.hostname == hostname)
            .unwrap_or_else(|| panic!("no node {hostname} in the cluster"))
    }

    /// The host's address on the cluster's bridge: where containers on every node reach
    /// a stand-in listening on the host (`extra_hosts: ["host.docker.internal:IP"]`).
    pub fn host_ip(&self) -> String {
        format!("10.213.{}.1", self.subnet)
    }

    /// claunch.yaml's `nodes:` block for every node, each by its unix socket.
    pub fn nodes_yaml(&self) -> String {
        let mut out = String::from("nodes:\n");
        for node in &self.nodes {
            let _ = writeln!(out, "  {}: {}", node.hostname, node.host());
        }
        out
    }

    /// Copies `tag` from the shared engine into every node that is up.
    pub fn load_image(&self, tag: &str) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("image.tar");
        let saved = Command::new("docker")
            .args(["save", "-o"])
            .arg(&archive)
            .arg(tag)
            .status()
            .is_ok_and(|s| s.success());
        assert!(saved, "docker save {tag} failed");
        std::thread::scope(|s| {
            for node in self.nodes.iter().filter(|n| n.is_up()) {
                let archive = &archive;
                s.spawn(move || {
                    let archive = archive.display().to_string();
                    node.docker(&["load", "-q", "-i", &archive]);
                });
            }
        });
    }

    /// Kills node `i`'s engine and everything it runs, and cuts its link: to the others
    /// it is a machine that died.
    pub fn kill_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.kill();
        let _ = Command::new("ip")
            .args(["link", "set", &node.veth, "down"])
            .status();
    }

    /// Brings node `i` back: its link up and its engine started again on the same data.
    pub fn restart_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        ip(&["link", "set", &node.veth, "up"]);
        node.unmount();
        node.launch();
    }

    /// Every node's log ends, for a failed assertion's message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.hostname, n.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(20);
                while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
                node.child = Some(child);
            }
            // Whatever survived the clean stop goes the hard way.
            node.kill();
            node.unmount();
            let _ = Command::new("ip")
                .args(["link", "del", &node.veth])
                .status();
            let _ = Command::new("ip")
                .args(["netns", "del", &node.netns])
                .status();
        }
        while forward_rule("-D", &self.bridge) {}
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}
