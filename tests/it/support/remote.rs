//! A "remote host" on this machine: a Docker engine alone in a network namespace, reached
//! over `ssh://` (Debian's openssh-server in that namespace, on a port of its own, with a
//! host key and an authorized key made here) and over `tcp://` with TLS (a CA, a server
//! and a client certificate made here with rcgen). Torn down when dropped.
//!
//! The client side never touches the machine's `~/.ssh`: claunch runs the `ssh` it finds
//! on PATH, and [`RemoteHost::ssh_env`] puts first on PATH a wrapper that runs the system
//! ssh with `-F` and a config file of the test's (identity, `known_hosts`, no agent).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::engines::{tree_of, Namespace, SecondEngine};

/// sshd's port in the namespace.
pub const SSH_PORT: u16 = 2222;
/// The engine's TLS port in the namespace.
pub const TLS_PORT: u16 = 2376;

/// What the ssh client is given, each a way for the connection to go right or wrong.
#[derive(Clone, Copy, Debug)]
pub enum SshClient {
    /// The authorized key and the host's key in `known_hosts`.
    Trusted,
    /// A key the host does not authorize.
    WrongKey,
    /// An empty `known_hosts`.
    UnknownHost,
    /// Another key for the host in `known_hosts`.
    ChangedHostKey,
}

/// What `DOCKER_CERT_PATH` holds, each a way for the handshake to go right or wrong.
#[derive(Clone, Copy, Debug)]
pub enum CertDir {
    /// The engine's CA, and a client certificate that CA issued.
    Trusted,
    /// Another CA's ca.pem: the engine's certificate is not vouched for.
    OtherCa,
    /// A client certificate from another CA: the engine refuses it.
    ForeignClient,
    /// No key.pem.
    NoKey,
}

pub struct RemoteHost {
    sshd: Option<Child>,
    pub engine: SecondEngine,
    dir: tempfile::TempDir,
}

impl RemoteHost {
    /// A namespace, its engine (unix socket for the test, TLS on [`TLS_PORT`]) and its sshd.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("claunch-remote")
            .tempdir()
            .unwrap();
        let ns = Namespace::create();
        let pki = Pki::write(dir.path(), &ns.ip);
        let tls = vec![
            "--host".to_string(),
            format!("tcp://0.0.0.0:{TLS_PORT}"),
            "--tlsverify".to_string(),
            "--tlscacert".to_string(),
            pki.server.join("ca.pem").display().to_string(),
            "--tlscert".to_string(),
            pki.server.join("cert.pem").display().to_string(),
            "--tlskey".to_string(),
            pki.server.join("key.pem").display().to_string(),
        ];
        let engine = SecondEngine::in_namespace(ns, tls);
        let mut me = Self {
            sshd: None,
            engine,
            dir,
        };
        me.start_sshd();
        me
    }

    fn ns(&self) -> &Namespace {
        self.engine
            .namespace()
            .expect("the remote engine has a namespace")
    }

    /// The engine's address as the host reaches it.
    pub fn ip(&self) -> &str {
        &self.ns().ip
    }

    /// Another address of the same engine, which its certificate does not name.
    pub fn alias_ip(&self) -> &str {
        &self.ns().alias_ip
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn ssh_url(&self) -> String {
        format!("ssh://root@{}:{SSH_PORT}", self.ip())
    }

    pub fn tls_url(&self) -> String {
        format!("tcp://{}:{TLS_PORT}", self.ip())
    }

    /// The environment that makes claunch's `ssh` use `client`'s files.
    pub fn ssh_env(&self, client: SshClient) -> Vec<(String, String)> {
        let name = match client {
            SshClient::Trusted => "trusted",
            SshClient::WrongKey => "wrong-key",
            SshClient::UnknownHost => "unknown-host",
            SshClient::ChangedHostKey => "changed-host-key",
        };
        let path = std::env::var("PATH").unwrap_or_default();
        vec![
            (
                "PATH".into(),
                format!("{}:{path}", self.path("ssh/bin").display()),
            ),
            (
                "CLAUNCH_TEST_SSH_CONFIG".into(),
                self.path(&format!("ssh/config-{name}"))
                    .display()
                    .to_string(),
            ),
        ]
    }

    /// The `DOCKER_CERT_PATH` for `dir`.
    pub fn cert_dir(&self, dir: CertDir) -> PathBuf {
        self.path(match dir {
            CertDir::Trusted => "pki/client",
            CertDir::OtherCa => "pki/other-ca",
            CertDir::ForeignClient => "pki/foreign-client",
            CertDir::NoKey => "pki/no-key",
        })
    }

    fn start_sshd(&mut self) {
        let ssh = self.path("ssh");
        std::fs::create_dir_all(ssh.join("bin")).unwrap();
        let keygen = |name: &str| {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(ssh.join(name))
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ssh-keygen failed (apt-get install openssh-client)");
            let public = std::fs::read_to_string(ssh.join(format!("{name}.pub"))).unwrap();
            public
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let host_key = keygen("host_key");
        let other_host_key = keygen("other_host_key");
        let client_key = keygen("id_client");
        keygen("id_stranger");
        std::fs::write(ssh.join("authorized_keys"), format!("{client_key}\n")).unwrap();
        let (ip, port) = (self.ip().to_string(), SSH_PORT);
        // The remote's docker CLI reaches the namespace's engine, as a real host's reaches
        // its own: `docker system dial-stdio` is what claunch runs there.
        let sshd_config = format!(
            "Port {port}\nListenAddress {ip}\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile {pid}\nSetEnv DOCKER_HOST={engine}\n",
            hk = ssh.join("host_key").display(),
            ak = ssh.join("authorized_keys").display(),
            pid = ssh.join("sshd.pid").display(),
            engine = self.engine.host(),
        );
        std::fs::write(ssh.join("sshd_config"), sshd_config).unwrap();
        for (name, known, identity) in [
            ("trusted", &host_key, "id_client"),
            ("wrong-key", &host_key, "id_stranger"),
            ("unknown-host", &String::new(), "id_client"),
            ("changed-host-key", &other_host_key, "id_client"),
        ] {
            let known_hosts = ssh.join(format!("known_hosts-{name}"));
            let line = if known.is_empty() {
                String::new()
            } else {
                format!("[{ip}]:{port} {known}\n")
            };
            std::fs::write(&known_hosts, line).unwrap();
            let config = format!(
                "Host *\n  IdentityFile {id}\n  IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n",
                id = ssh.join(identity).display(),
                kh = known_hosts.display(),
            );
            std::fs::write(ssh.join(format!("config-{name}")), config).unwrap();
        }
        let wrapper = ssh.join("bin/ssh");
        std::fs::write(
            &wrapper,
            "#!/bin/sh\n# The system ssh with the test's config (see tests/it/support/remote.rs).\nexec /usr/bin/ssh -F \"$CLAUNCH_TEST_SSH_CONFIG\" \"$@\"\n",
        )
        .unwrap();
        let mut perms = std::fs::metadata(&wrapper).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&wrapper, perms).unwrap();

        // sshd's privilege separation directory, which its service unit would make.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "these tests need Debian's openssh-server (tests/run.sh installs it)"
        );
        let log = std::fs::File::create(ssh.join("sshd.log")).unwrap();
        let child = self
            .ns()
            .command("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(ssh.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sshd: {e}"));
        self.sshd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let address = format!("{ip}:{port}");
        while std::net::TcpStream::connect(&address).is_err() {
            if let Some(status) = self.sshd.as_mut().unwrap().try_wait().unwrap() {
                panic!("sshd exited with {status}:\n{}", self.sshd_log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {address} within 20s:\n{}",
                self.sshd_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn sshd_log(&self) -> String {
        std::fs::read_to_string(self.path("ssh/sshd.log")).unwrap_or_default()
    }

    /// The ssh client processes still running for this host.
    pub fn ssh_clients(&self) -> Vec<u32> {
        super::engines::pids_mentioning(&self.path("ssh/config").display().to_string())
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        // sshd's sessions are its children, each in a session of its own: the whole tree.
        if let Some(mut sshd) = self.sshd.take() {
            for pid in tree_of(sshd.id()).into_iter().rev() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = sshd.wait();
        }
        for pid in self.ssh_clients() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// The certificates: the engine's CA and what it issued, and another CA's.
struct Pki {
    server: PathBuf,
}

impl Pki {
    /// Writes `pki/server` (the engine's files), and a `DOCKER_CERT_PATH` per [`CertDir`].
    fn write(root: &Path, ip: &str) -> Self {
        use rcgen::{ExtendedKeyUsagePurpose as Eku, KeyPair};
        let (engine_ca, ca_pem) = new_ca("claunch test engine CA");
        let (other_ca, other_pem) = new_ca("claunch test other CA");
        let leaf = |issuer: &rcgen::Issuer<'_, KeyPair>, names: Vec<String>, eku: Eku| {
            let key = KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(names).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "claunch test");
            params.extended_key_usages = vec![eku];
            (
                params.signed_by(&key, issuer).unwrap().pem(),
                key.serialize_pem(),
            )
        };
        let server = leaf(&engine_ca, vec![ip.to_string()], Eku::ServerAuth);
        let client = leaf(&engine_ca, Vec::new(), Eku::ClientAuth);
        let foreign = leaf(&other_ca, Vec::new(), Eku::ClientAuth);
        let put = |dir: &str, ca: &str, (cert, key): &(String, String), with_key: bool| {
            let dir = root.join("pki").join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("ca.pem"), ca).unwrap();
            std::fs::write(dir.join("cert.pem"), cert).unwrap();
            if with_key {
                std::fs::write(dir.join("key.pem"), key).unwrap();
            }
        };
        put("server", &ca_pem, &server, true);
        put("client", &ca_pem, &client, true);
        put("other-ca", &other_pem, &client, true);
        put("foreign-client", &ca_pem, &foreign, true);
        put("no-key", &ca_pem, &client, false);
        Self {
            server: root.join("pki/server"),
        }
    }
}

/// A CA: its issuer and its certificate as PEM.
fn new_ca(name: &str) -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let pem = params.self_signed(&key).unwrap().pem();
    (rcgen::Issuer::new(params, key), pem)
}
