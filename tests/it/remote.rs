//! Remote engines, for real: an engine alone in a network namespace, reached over `ssh://`
//! (openssh-server in the namespace) and over `tcp://` with TLS, runs the core cycle
//! (`up`, `exec`, `ps`, `down`) unchanged; and each way the connection can fail is told
//! with its exact message: which host, which file, what to do.

use std::time::{Duration, Instant};

use claunch::engine::Engine;
use claunch::fleet::label;

use crate::support::remote::{CertDir, RemoteHost, SshClient, SSH_PORT, TLS_PORT};
use crate::support::{self, rt, Project};

/// The most one claunch command against the remote engine may take.
const LIMIT: Duration = Duration::from_secs(90);

fn yaml(image: &str) -> String {
    format!(
        "project: {{project}}\ncredentials:\n  file: {{creds}}\nagents:\n  agent:\n    image: {image}\n    replicas: 2\n"
    )
}

/// `claunch ARGS` in `p` with `env`; (exit code, stdout, stderr).
fn run(p: &Project, env: &[(String, String)], args: &[&str], stdin: &str) -> (i32, String, String) {
    let out = p
        .claunch()
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(args)
        .write_stdin(stdin)
        .timeout(LIMIT)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The project's containers on `engine`: (name, state), sorted.
fn states(engine: &Engine, project: &str) -> Vec<(String, String)> {
    let list = rt()
        .block_on(engine.list_containers(&[(label::PROJECT, project)]))
        .unwrap();
    let mut out: Vec<(String, String)> = list.into_iter().map(|c| (c.name, c.state)).collect();
    out.sort();
    out
}

/// `up`, `exec` (one, from stdin, all), `ps`, `down` through `env`, checked on the remote
/// engine itself (its unix socket) and absent from the shared one.
fn core_cycle(remote: &RemoteHost, p: &Project, env: &[(String, String)]) {
    let img = remote.engine.build_image();
    p.login();
    p.write_config(&yaml(&img));
    let pre = &p.name;
    let local = support::engine();
    let there = remote.engine.engine();
    let context = |what: &str, out: &(i32, String, String)| {
        format!(
            "{what}: exit {}\n--- stdout\n{}--- stderr\n{}--- sshd\n{}",
            out.0,
            out.1,
            out.2,
            remote.sshd_log()
        )
    };

    let up = run(p, env, &["up"], "");
    assert_eq!(up.0, 0, "{}", context("up", &up));
    assert!(
        up.1.contains("2 changed, 0 up to date, 0 failed"),
        "{}",
        context("up", &up)
    );
    let running = vec![
        (format!("{pre}-agent-1"), "running".to_string()),
        (format!("{pre}-agent-2"), "running".to_string()),
    ];
    assert_eq!(states(&there, pre), running);
    assert_eq!(
        states(&local, pre),
        vec![],
        "the shared engine got containers"
    );

    let one = run(p, env, &["exec", "agent-1", "Say hello"], "");
    assert_eq!(one.0, 0, "{}", context("exec", &one));
    assert_eq!(
        one.1,
        "Hello from the stand-in claude. You said: Say hello\n",
        "{}",
        context("exec", &one)
    );
    // A prompt on stdin: the end of claunch's input travels as the end of claude's.
    let piped = run(p, env, &["exec", "agent-2", "-"], "from stdin");
    assert_eq!(piped.0, 0, "{}", context("exec -", &piped));
    assert!(
        piped.1.contains("You said: from stdin"),
        "{}",
        context("exec -", &piped)
    );
    let all = run(p, env, &["exec", "--all", "hi"], "");
    assert_eq!(all.0, 0, "{}", context("exec --all", &all));
    for n in [1, 2] {
        assert!(
            all.1.contains(&format!(
                "{pre}-agent-{n} | Hello from the stand-in claude. You said: hi"
            )),
            "{}",
            context("exec --all", &all)
        );
    }

    let ps = run(p, env, &["ps"], "");
    assert_eq!(ps.0, 0, "{}", context("ps", &ps));
    for n in [1, 2] {
        let line =
            ps.1.lines()
                .find(|l| l.starts_with(&format!("{pre}-agent-{n} ")))
                .unwrap_or_else(|| panic!("no row for agent-{n}\n{}", context("ps", &ps)));
        assert!(line.contains(" running "), "{line}\n{}", context("ps", &ps));
        assert!(line.contains(" passed"), "{line}\n{}", context("ps", &ps));
    }

    let down = run(p, env, &["down"], "");
    assert_eq!(down.0, 0, "{}", context("down", &down));
    assert_eq!(states(&there, pre), vec![], "{}", context("down", &down));
    let network = format!("{pre}_default");
    assert!(
        rt().block_on(there.networks_named(&network))
            .unwrap()
            .is_empty(),
        "{network} is left on the remote engine"
    );
}

#[test]
fn over_ssh_up_exec_ps_down_run_on_the_remote_engine_and_no_ssh_outlives_claunch() {
    let started = Instant::now();
    let remote = RemoteHost::start();
    let p = Project::new("ssh-cycle");
    let mut env = remote.ssh_env(SshClient::Trusted);
    // DOCKER_HOST, as a user of the docker CLI would set it.
    env.push(("DOCKER_HOST".into(), remote.ssh_url()));
    core_cycle(&remote, &p, &env);
    // Every connection was an ssh process of claunch's: none is left once it exits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !remote.ssh_clients().is_empty() {
        assert!(
            Instant::now() < deadline,
            "ssh processes outlived claunch: {:?}",
            remote.ssh_clients()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("ssh cycle: {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn over_tls_up_exec_ps_down_run_on_the_remote_engine() {
    let started = Instant::now();
    let remote = RemoteHost::start();
    let p = Project::new("tls-cycle");
    let env = vec![
        ("DOCKER_HOST".to_string(), remote.tls_url()),
        ("DOCKER_TLS_VERIFY".to_string(), "1".to_string()),
        (
            "DOCKER_CERT_PATH".to_string(),
            remote.cert_dir(CertDir::Trusted).display().to_string(),
        ),
    ];
    core_cycle(&remote, &p, &env);
    eprintln!("tls cycle: {:.1}s", started.elapsed().as_secs_f64());
}

/// `claunch ps` through `env` and `-H host`: it fails with exactly `expected`.
fn fails_with(p: &Project, env: &[(String, String)], host: &str, expected: &str) {
    let (code, stdout, stderr) = run(p, env, &["-H", host, "-p", "remote", "ps"], "");
    assert_eq!(
        (code, stderr.as_str()),
        (1, format!("error: {expected}\n").as_str()),
        "stdout: {stdout}"
    );
}

#[test]
fn ssh_failures_say_which_host_and_what_to_do() {
    let remote = RemoteHost::start();
    let p = Project::new("ssh-errors");
    let ip = remote.ip();
    let url = remote.ssh_url();
    let try_it = format!("ssh -p {SSH_PORT} root@{ip} docker version");

    // Nothing listens there.
    fails_with(
        &p,
        &remote.ssh_env(SshClient::Trusted),
        &format!("ssh://root@{ip}:2223"),
        &format!(
            "cannot reach the Docker engine at ssh://root@{ip}:2223: ssh: connect to host {ip} port 2223: Connection refused\n  hint: is {ip} up, with its sshd listening on port 2223? `ssh -p 2223 root@{ip} docker version` must work from this machine"
        ),
    );
    // A key the host does not authorize.
    fails_with(
        &p,
        &remote.ssh_env(SshClient::WrongKey),
        &url,
        &format!(
            "ssh refused the login to root@{ip} (Docker engine at {url}): root@{ip}: Permission denied (publickey).\n  hint: claunch runs ssh without prompts, so `{try_it}` must work without a password: put your public key in that user's ~/.ssh/authorized_keys there (ssh-copy-id), and load your key into ssh-agent or name it with IdentityFile in ~/.ssh/config"
        ),
    );
    // A host never seen: refused, and known_hosts stays as it was.
    fails_with(
        &p,
        &remote.ssh_env(SshClient::UnknownHost),
        &url,
        &format!(
            "the ssh host key of [{ip}]:{SSH_PORT} is not known here (Docker engine at {url}): Host key verification failed.\n  hint: claunch never accepts a host key on its own: check the key's fingerprint with the host's owner, then run `{try_it}` once and accept it, or add the key to ~/.ssh/known_hosts"
        ),
    );
    assert_eq!(
        std::fs::read_to_string(remote.path("ssh/known_hosts-unknown-host")).unwrap(),
        "",
        "an unknown host key was written to known_hosts"
    );
    // Another key than the one known for that host.
    fails_with(
        &p,
        &remote.ssh_env(SshClient::ChangedHostKey),
        &url,
        &format!(
            "the ssh host key of [{ip}]:{SSH_PORT} does not match the one in known_hosts (Docker engine at {url}): the host was reinstalled, or someone is intercepting the connection\n  hint: check the new key's fingerprint with the host's owner first; then remove the old one with `ssh-keygen -R '[{ip}]:{SSH_PORT}'` and run `{try_it}` once"
        ),
    );
    // Logged in, but no engine behind the socket the address names.
    fails_with(
        &p,
        &remote.ssh_env(SshClient::Trusted),
        &format!("{url}/nonexistent.sock"),
        &format!(
            "ssh to root@{ip} failed (Docker engine at {url}/nonexistent.sock): failed to open the raw stream connection: dial unix /nonexistent.sock: connect: no such file or directory\n  hint: is dockerd running on {ip}, and may root use its socket? `ssh -p {SSH_PORT} root@{ip} docker --host=unix:///nonexistent.sock version` shows the same"
        ),
    );
}

#[test]
fn tls_failures_name_the_file_and_what_to_do() {
    let remote = RemoteHost::start();
    let p = Project::new("tls-errors");
    let (ip, alias) = (remote.ip(), remote.alias_ip());
    let url = remote.tls_url();
    let env = |dir: CertDir| {
        vec![
            ("DOCKER_TLS_VERIFY".to_string(), "1".to_string()),
            (
                "DOCKER_CERT_PATH".to_string(),
                remote.cert_dir(dir).display().to_string(),
            ),
        ]
    };

    // A missing file is named before anything is dialled.
    let no_key = remote.cert_dir(CertDir::NoKey);
    fails_with(
        &p,
        &env(CertDir::NoKey),
        &url,
        &format!(
            "the TLS file {dir}/key.pem is missing (Docker engine at {url})\n  hint: DOCKER_CERT_PATH ({dir}) must hold ca.pem, cert.pem and key.pem, as for the docker CLI; or unset DOCKER_TLS_VERIFY for an engine without TLS",
            dir = no_key.display()
        ),
    );
    // ca.pem is another CA's: the engine's certificate is refused here.
    let ca = remote.cert_dir(CertDir::OtherCa).join("ca.pem");
    fails_with(
        &p,
        &env(CertDir::OtherCa),
        &url,
        &format!(
            "the Docker engine at {url} presented a certificate not signed by the CA in {ca}: invalid peer certificate: UnknownIssuer\n  hint: {ca} must hold the certificate of the CA that signed the engine's: copy the engine's CA there, or point DOCKER_CERT_PATH at the directory that has it",
            ca = ca.display()
        ),
    );
    // The engine's certificate does not name the address used.
    let alias_url = format!("tcp://{alias}:{TLS_PORT}");
    fails_with(
        &p,
        &env(CertDir::Trusted),
        &alias_url,
        &format!(
            "the Docker engine at {alias_url} presented a certificate that is not valid for {alias}: invalid peer certificate: certificate not valid for name \"{alias}\"; certificate is only valid for IpAddress({ip})\n  hint: connect with a name or address the engine's certificate lists (its subjectAltName), or have it reissued with {alias} in it"
        ),
    );
    // The client's certificate comes from another CA: the engine refuses it.
    let foreign = remote.cert_dir(CertDir::ForeignClient);
    fails_with(
        &p,
        &env(CertDir::ForeignClient),
        &url,
        &format!(
            "the Docker engine at {url} refused the client certificate {cert}: received fatal alert: BadCertificate\n  hint: the engine takes only client certificates signed by the CA it trusts (its --tlscacert): DOCKER_CERT_PATH ({dir}) must hold a cert.pem and key.pem that CA issued",
            cert = foreign.join("cert.pem").display(),
            dir = foreign.display()
        ),
    );
    // Nothing listens there.
    fails_with(
        &p,
        &env(CertDir::Trusted),
        &format!("tcp://{ip}:2377"),
        &format!(
            "cannot reach the Docker engine at tcp://{ip}:2377: Connection refused (os error 111)\n  hint: is dockerd running? point DOCKER_HOST or --host at it"
        ),
    );
    // Plain HTTP to the TLS port.
    fails_with(
        &p,
        &[],
        &url,
        &format!(
            "cannot reach the Docker engine at {url}: Client sent an HTTP request to an HTTPS server.\n  hint: the engine speaks TLS on that port: set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to the directory with ca.pem, cert.pem and key.pem"
        ),
    );
}

#[test]
fn docker_contexts_made_by_the_docker_cli_are_followed() {
    let remote = RemoteHost::start();
    let p = Project::new("contexts");
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().display().to_string();
    let certs = remote.cert_dir(CertDir::Trusted);
    let file = |name: &str| certs.join(name).display().to_string();
    let tls = format!(
        "host={},ca={},cert={},key={}",
        remote.tls_url(),
        file("ca.pem"),
        file("cert.pem"),
        file("key.pem")
    );
    let ssh = format!("host={}", remote.ssh_url());
    for args in [
        vec!["context", "create", "remote-tls", "--docker", &tls],
        vec!["context", "create", "remote-ssh", "--docker", &ssh],
        vec!["context", "use", "remote-tls"],
    ] {
        let mut all = vec!["--config", &dir];
        all.extend(args);
        support::docker(&all);
    }
    // What doctor says of the engine it reached: `docker context use` is followed, and
    // DOCKER_CONTEXT wins over it.
    let engine_check = |env: &[(String, String)]| {
        let (_, stdout, stderr) = run(&p, env, &["-p", "remote", "doctor", "--json"], "");
        let doc: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}):\n{stdout}\n{stderr}"));
        let check = doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["scope"] == "engine" && c["check"] == "engine")
            .cloned()
            .unwrap_or_else(|| panic!("no engine check:\n{stdout}"));
        check["message"].as_str().unwrap().to_string()
    };
    let config_env = ("DOCKER_CONFIG".to_string(), dir.clone());
    let used = engine_check(std::slice::from_ref(&config_env));
    assert!(
        used.starts_with(&format!(
            "reachable at {} (docker context remote-tls) (Docker ",
            remote.tls_url()
        )),
        "{used}"
    );
    let mut env = remote.ssh_env(SshClient::Trusted);
    env.push(config_env.clone());
    env.push(("DOCKER_CONTEXT".into(), "remote-ssh".into()));
    let chosen = engine_check(&env);
    assert!(
        chosen.starts_with(&format!(
            "reachable at {} (docker context remote-ssh) (Docker ",
            remote.ssh_url()
        )),
        "{chosen}"
    );
    // A context that is not there is named, with what chose it.
    let (code, _, stderr) = run(
        &p,
        &[config_env, ("DOCKER_CONTEXT".into(), "gone".into())],
        &["-p", "remote", "ps"],
        "",
    );
    let meta = config.path().join(
        "contexts/meta/283bb9deef02e6843abfb538efa1eca70801bd8a701c3f98191e123496339247/meta.json",
    );
    assert_eq!(
        (code, stderr),
        (
            1,
            format!(
                "error: docker context `gone` (from DOCKER_CONTEXT) cannot be used: {}: No such file or directory (os error 2)\n  hint: `docker context ls` lists the contexts; pick one with `docker context use NAME` or DOCKER_CONTEXT, or name the engine with -H or DOCKER_HOST\n",
                meta.display()
            )
        )
    );
}
