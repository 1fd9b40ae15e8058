//! The test cluster itself (tests/it/support/cluster.rs): three engines in their own
//! namespaces form a Swarm with their own hostnames, a service with a secret runs on a
//! worker and its command reads the secret at the credentials path, a killed node goes
//! down in the manager's view, and nothing of the cluster is left on the host afterwards.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::cluster::Cluster;
use crate::support::{image, Image};

fn netns_list() -> String {
    String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

#[test]
fn three_engines_form_a_swarm_run_a_secret_on_a_worker_and_leave_nothing_behind() {
    let tag = image(Image::Root);
    let prefix;
    {
        let mut cluster = Cluster::start();
        prefix = format!("clsn{}", cluster.host_ip().split('.').nth(2).unwrap());
        let mut ready = cluster.ready_nodes();
        ready.sort();
        let mut names: Vec<String> = cluster.nodes.iter().map(|n| n.hostname.clone()).collect();
        names.sort();
        assert_eq!(ready, names, "each node under its own hostname");

        cluster.load_image(&tag);
        let manager = cluster.manager();
        let worker = cluster.nodes[1].hostname.clone();
        let secret = "cluster-harness-credentials";
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf '%s' '{{\"claudeAiOauth\":{{}}}}' | docker -H {} secret create {secret} -",
                manager.host()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        manager.docker(&[
            "service",
            "create",
            "--detach",
            "--name",
            "harness",
            "--constraint",
            &format!("node.hostname=={worker}"),
            "--secret",
            &format!("source={secret},target=/root/.claude/.credentials.json,mode=0600"),
            &tag,
        ]);
        // The task runs on the worker; its command notes whether the file was readable.
        let node = cluster.node(&worker);
        let deadline = Instant::now() + Duration::from_secs(90);
        let id = loop {
            let ids = node.docker(&[
                "ps",
                "-q",
                "--filter",
                "label=com.docker.swarm.service.name=harness",
            ]);
            if let Some(id) = ids.lines().next() {
                let at_start = node.docker_output(&["exec", id, "cat", "/tmp/at-start"]);
                if at_start.status.success() {
                    break id.to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the service's task did not start on {worker} within 90s:\n{}\n{}",
                manager.docker(&["service", "ps", "--no-trunc", "harness"]),
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        let at_start = node.docker(&["exec", &id, "cat", "/tmp/at-start"]);
        assert_eq!(
            at_start.trim(),
            "readable",
            "the secret is in place when the command starts"
        );

        // A dead worker goes down in the manager's view.
        cluster.kill_node(2);
        let gone = cluster.nodes[2].hostname.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        while cluster.ready_nodes().contains(&gone) {
            assert!(
                Instant::now() < deadline,
                "{gone} still ready 60s after it died"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(!cluster.nodes[2].is_up());
        assert!(netns_list().contains(&prefix));

        // It comes back on the same data, and claunch's engine client reaches it.
        cluster.restart_node(2);
        cluster.wait_for_nodes(3, Duration::from_secs(60));
        let engine = cluster.nodes[2].engine();
        assert!(crate::support::rt()
            .block_on(engine.list_containers(&[]))
            .is_ok());
        let yaml = cluster.nodes_yaml();
        for node in &cluster.nodes {
            assert!(
                yaml.contains(&format!("  {}: unix://", node.hostname)),
                "{yaml}"
            );
        }
    }
    assert!(
        !netns_list().contains(&prefix),
        "the cluster's namespaces are gone after it is dropped:\n{}",
        netns_list()
    );
}
