//! No token anywhere: not in claunch's output, `docker inspect`, container env or labels,
//! mounts, the engine's events (where exec argv shows) or the containers' logs.

use crate::support::{self, image, rt, Image, Project};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn no_token_reaches_output_inspect_env_labels_mounts_events_or_logs() {
    let p = Project::new("secrets");
    let (access, refresh) = p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n    replicas: 2\n    env:\n      LOG_LEVEL: info\n  named:\n    image: {}\n",
        image(Image::Root),
        image(Image::Named)
    ));
    let since = support::now_ms() / 1000 - 1;
    let mut outputs = Vec::new();
    for args in [
        vec!["up"],
        vec!["up", "--json"],
        vec!["ps"],
        vec!["ps", "--json"],
        vec!["exec", "agent-1", "Say hello"],
        vec!["exec", "--all", "STANDIN:whoami"],
        vec!["logs"],
    ] {
        let out = p.claunch().args(&args).output().unwrap();
        assert!(out.status.success(), "claunch {args:?}: {}", text(&out));
        outputs.push((args, text(&out)));
    }
    let tokens = [access.as_str(), refresh.as_str()];
    let leaks = |what: &str, haystack: &str| {
        for t in tokens {
            assert!(!haystack.contains(t), "a token leaked into {what}");
            // Not even a fragment long enough to be useful.
            assert!(
                !haystack.contains(&t[..30]),
                "a token fragment leaked into {what}"
            );
        }
    };
    for (args, out) in &outputs {
        leaks(&format!("the output of claunch {args:?}"), out);
    }
    // What `creds sync --watch --metrics` serves: names and numbers, never a token.
    let port = crate::support::prometheus::free_port();
    let port_arg = port.to_string();
    let watch = crate::metrics::Running::start(
        &p,
        &[
            "creds",
            "sync",
            "--watch",
            "--interval",
            "1s",
            "--metrics",
            &port_arg,
        ],
    );
    leaks("/metrics", &crate::metrics::scrape_after_a_sync(port));
    drop(watch);
    // ps does read the file back from inside: prove it did (and still showed no token).
    assert!(outputs[2].1.contains("refreshable"), "{}", outputs[2].1);

    let engine = support::engine();
    let containers = p.containers();
    assert_eq!(containers.len(), 3);
    for (name, id) in &containers {
        let inspect = support::docker_inspect(id);
        leaks(&format!("docker inspect {name}"), &inspect.to_string());
        let mounts = rt().block_on(engine.inspect_container(id)).unwrap().mounts;
        assert!(mounts.is_empty(), "{name} has mounts: {mounts:?}");
        let binds = &inspect["HostConfig"]["Binds"];
        assert!(
            binds.is_null() || binds.as_array().is_some_and(Vec::is_empty),
            "{name} has binds: {binds}"
        );
        let env = inspect["Config"]["Env"].to_string();
        assert!(!env.contains("sk-ant"), "{name} env: {env}");
        let logs = p.sh(name, "true");
        leaks(&format!("exec output in {name}"), &logs);
    }
    let logs = p.claunch().arg("logs").output().unwrap();
    leaks("container logs", &text(&logs));

    let until = support::now_ms() / 1000 + 1;
    let events = support::docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--format",
        "{{json .}}",
    ]);
    assert!(events.contains("exec_create"), "the events were read");
    leaks("the engine's events", &events);
}

#[test]
fn the_credentials_file_in_the_container_is_the_hosts_byte_for_byte() {
    let p = Project::new("bytes");
    p.login();
    p.write_config(&format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {}\n",
        image(Image::Named)
    ));
    p.claunch().args(["up", "--no-smoke"]).assert().success();
    let host = std::fs::read_to_string(p.path("creds/.credentials.json")).unwrap();
    let inside = p.sh(
        &format!("{}-agent-1", p.name),
        "cat /home/agent/.claude/.credentials.json",
    );
    assert_eq!(inside, host);
}
