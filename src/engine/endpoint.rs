//! Where the engine is and how to reach it: `-H`, else `DOCKER_HOST`, else the docker
//! CLI's current context, else the local socket, read as the docker CLI reads them
//! (`tcp://` with `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`, `ssh://[user@]host[:port]`),
//! checked before anything is dialled.

use std::fmt;
use std::path::{Path, PathBuf};

use super::EngineError;

/// Where the engine is when nothing says otherwise.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// An engine's address, checked, with what it takes to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Unix(PathBuf),
    /// Plain HTTP to `host:port`.
    Tcp(String),
    /// HTTPS to `host:port`, verified against the CA in `files`, with its client certificate.
    Tls {
        address: String,
        files: TlsFiles,
    },
    Ssh(SshTarget),
}

/// The docker CLI's TLS files: `ca.pem` vouches for the engine, `cert.pem` and `key.pem`
/// are this client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    pub dir: PathBuf,
    /// Why that directory: said in every hint about these files.
    pub origin: CertDirOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertDirOrigin {
    CertPath,
    DockerConfig,
    Home,
    /// A docker context's own TLS files.
    Context(String),
}

impl TlsFiles {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// Where the files are looked for and why, for hints.
    pub fn where_from(&self) -> String {
        let dir = self.dir.display();
        match &self.origin {
            CertDirOrigin::CertPath => format!("DOCKER_CERT_PATH ({dir})"),
            CertDirOrigin::DockerConfig => {
                format!("DOCKER_CERT_PATH is unset, so DOCKER_CONFIG ({dir})")
            }
            CertDirOrigin::Home => format!("DOCKER_CERT_PATH is unset, so {dir}"),
            CertDirOrigin::Context(name) => format!("docker context `{name}`'s TLS files ({dir})"),
        }
    }

    /// How to use other files.
    pub fn how_to_change(&self) -> String {
        match &self.origin {
            CertDirOrigin::Context(name) => format!(
                "update the context with `docker context update {name} --docker host=…,ca=…,cert=…,key=…`"
            ),
            _ => "point DOCKER_CERT_PATH at the directory that has it".to_string(),
        }
    }
}

/// `ssh://[user@]host[:port][/socket]`: the engine behind `docker system dial-stdio` on
/// that host, as the docker CLI reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SshTarget {
    pub user: Option<String>,
    /// A name or address, IPv6 without brackets.
    pub host: String,
    pub port: Option<u16>,
    /// The engine's socket on that host when not its default.
    pub socket: Option<String>,
}

impl SshTarget {
    /// `user@host`, or `host`.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// The host as `known_hosts` names it: `host`, or `[host]:port` off port 22.
    pub fn known_hosts_name(&self) -> String {
        match self.port {
            Some(port) if port != 22 => format!("[{}]:{port}", self.host),
            _ => self.host.clone(),
        }
    }

    /// A command a person can run to see what claunch's ssh sees.
    pub fn try_command(&self) -> String {
        let port = self.port.map(|p| format!("-p {p} ")).unwrap_or_default();
        let host = self
            .socket
            .as_ref()
            .map(|s| format!("--host=unix://{s} "))
            .unwrap_or_default();
        format!("ssh {port}{} docker {host}version", self.destination())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp(address) | Self::Tls { address, .. } => write!(f, "tcp://{address}"),
            Self::Ssh(t) => {
                write!(f, "ssh://")?;
                if let Some(user) = &t.user {
                    write!(f, "{user}@")?;
                }
                if t.host.contains(':') {
                    write!(f, "[{}]", t.host)?;
                } else {
                    write!(f, "{}", t.host)?;
                }
                if let Some(port) = t.port {
                    write!(f, ":{port}")?;
                }
                if let Some(socket) = &t.socket {
                    write!(f, "{socket}")?;
                }
                Ok(())
            }
        }
    }
}

impl Endpoint {
    /// The engine `host` names, else `DOCKER_HOST`, else the docker CLI's current context,
    /// else the local socket, with the context's name when one was used; `env` reads the
    /// environment (a seam for tests).
    pub fn resolve(
        host: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Self, Option<String>), EngineError> {
        let var = |key: &str| env(key).filter(|v| !v.is_empty());
        let raw = match host.map(str::to_string).or_else(|| var("DOCKER_HOST")) {
            Some(raw) => raw,
            None => match super::context::current(&var)? {
                Some((name, endpoint)) => return Ok((endpoint, Some(name))),
                None => format!("unix://{DEFAULT_SOCKET}"),
            },
        };
        let tls = var("DOCKER_TLS_VERIFY").map(|_| cert_dir(&var));
        Ok((Self::parse(&raw, tls)?, None))
    }

    /// One address, as `-H` takes it; `tls` is set when `DOCKER_TLS_VERIFY` is (or the
    /// context has TLS files).
    pub(super) fn parse(raw: &str, tls: Option<TlsFiles>) -> Result<Self, EngineError> {
        let bad = |detail: &str| EngineError::BadEndpoint {
            endpoint: redact(raw),
            detail: detail.to_string(),
        };
        if raw.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(raw)));
        }
        let Some((scheme, _)) = raw.split_once("://") else {
            return Err(bad("no scheme (unix://, tcp:// or ssh://)"));
        };
        match scheme {
            "unix" => {
                let path = &raw["unix://".len()..];
                if path.is_empty() {
                    return Err(bad("no socket path"));
                }
                Ok(Self::Unix(PathBuf::from(path)))
            }
            "tcp" | "http" | "https" => {
                let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(bad("a tcp:// address takes no user"));
                }
                if !matches!(url.path(), "" | "/") || url.query().is_some() {
                    return Err(bad("a tcp:// address is only host:port"));
                }
                let host = url
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| bad("no host"))?;
                let tls = match (scheme, tls) {
                    ("https", None) => Some(cert_dir(&|_: &str| None)),
                    (_, tls) => tls,
                };
                // As the docker CLI: 2376 is the TLS port, 2375 the plain one.
                let port = url
                    .port()
                    .unwrap_or(if tls.is_some() { 2376 } else { 2375 });
                let address = format!("{host}:{port}");
                Ok(match tls {
                    Some(files) => Self::Tls { address, files },
                    None => Self::Tcp(address),
                })
            }
            "ssh" => {
                let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
                if url.password().is_some() {
                    return Err(bad("a password in the address is not supported: use a key"));
                }
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(bad("an ssh:// address is [user@]host[:port][/socket]"));
                }
                let host = match url.host() {
                    Some(url::Host::Ipv6(ip)) => ip.to_string(),
                    Some(host) => host.to_string(),
                    None => String::new(),
                };
                if host.is_empty() {
                    return Err(bad("no host"));
                }
                let user = Some(url.username().to_string()).filter(|u| !u.is_empty());
                let socket =
                    Some(url.path().to_string()).filter(|p| !p.trim_matches('/').is_empty());
                Ok(Self::Ssh(SshTarget {
                    user,
                    host,
                    port: url.port(),
                    socket,
                }))
            }
            _ => Err(bad(&format!("the scheme {scheme}:// is not supported"))),
        }
    }
}

/// Where the TLS files are: `DOCKER_CERT_PATH`, else the docker CLI's config directory.
fn cert_dir(var: &dyn Fn(&str) -> Option<String>) -> TlsFiles {
    if let Some(dir) = var("DOCKER_CERT_PATH") {
        return TlsFiles {
            dir: PathBuf::from(dir),
            origin: CertDirOrigin::CertPath,
        };
    }
    if let Some(dir) = var("DOCKER_CONFIG") {
        return TlsFiles {
            dir: PathBuf::from(dir),
            origin: CertDirOrigin::DockerConfig,
        };
    }
    let home = var("HOME").unwrap_or_else(|| "/".to_string());
    TlsFiles {
        dir: Path::new(&home).join(".docker"),
        origin: CertDirOrigin::Home,
    }
}

/// The address with any password masked, to be shown.
fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_string())
        }
    }

    fn resolve(host: Option<&str>, pairs: &[(&str, &str)]) -> Result<Endpoint, String> {
        Endpoint::resolve(host, &env(pairs))
            .map(|(endpoint, _)| endpoint)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_flag_wins_over_docker_host_which_wins_over_the_local_socket() {
        let docker_host = [("DOCKER_HOST", "tcp://10.0.0.1:2375")];
        assert_eq!(
            resolve(Some("unix:///run/x.sock"), &docker_host).unwrap(),
            Endpoint::Unix("/run/x.sock".into())
        );
        assert_eq!(
            resolve(None, &docker_host).unwrap(),
            Endpoint::Tcp("10.0.0.1:2375".into())
        );
        assert_eq!(
            resolve(None, &[("DOCKER_HOST", "")]).unwrap(),
            Endpoint::Unix(DEFAULT_SOCKET.into())
        );
        assert_eq!(
            resolve(Some("/run/y.sock"), &[]).unwrap(),
            Endpoint::Unix("/run/y.sock".into())
        );
    }

    #[test]
    fn tcp_takes_the_docker_cli_default_ports_and_tls_from_the_environment() {
        assert_eq!(
            resolve(Some("tcp://box"), &[]).unwrap(),
            Endpoint::Tcp("box:2375".into())
        );
        let tls = [
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", "/certs"),
            ("HOME", "/home/me"),
        ];
        let Endpoint::Tls { address, files } = resolve(Some("tcp://box"), &tls).unwrap() else {
            panic!("not TLS")
        };
        assert_eq!(address, "box:2376");
        assert_eq!(files.ca(), Path::new("/certs/ca.pem"));
        assert_eq!(files.cert(), Path::new("/certs/cert.pem"));
        assert_eq!(files.key(), Path::new("/certs/key.pem"));
        // As the docker CLI: an empty DOCKER_TLS_VERIFY is unset.
        assert_eq!(
            resolve(Some("tcp://box:1234"), &[("DOCKER_TLS_VERIFY", "")]).unwrap(),
            Endpoint::Tcp("box:1234".into())
        );
        // Without DOCKER_CERT_PATH: DOCKER_CONFIG, then ~/.docker.
        let Endpoint::Tls { files, .. } = resolve(
            Some("tcp://box"),
            &[("DOCKER_TLS_VERIFY", "1"), ("HOME", "/home/me")],
        )
        .unwrap() else {
            panic!("not TLS")
        };
        assert_eq!(files.ca(), Path::new("/home/me/.docker/ca.pem"));
        assert_eq!(
            files.where_from(),
            "DOCKER_CERT_PATH is unset, so /home/me/.docker"
        );
    }

    #[test]
    fn ssh_addresses_as_the_docker_cli_reads_them() {
        let t = |raw: &str| match resolve(Some(raw), &[]).unwrap() {
            Endpoint::Ssh(t) => t,
            other => panic!("{other:?}"),
        };
        let full = t("ssh://me@box.example:2222");
        assert_eq!(
            full,
            SshTarget {
                user: Some("me".into()),
                host: "box.example".into(),
                port: Some(2222),
                socket: None,
            }
        );
        assert_eq!(full.known_hosts_name(), "[box.example]:2222");
        assert_eq!(
            full.try_command(),
            "ssh -p 2222 me@box.example docker version"
        );
        let bare = t("ssh://box");
        assert_eq!((bare.user, bare.port), (None, None));
        assert_eq!(t("ssh://box:22").known_hosts_name(), "box");
        let v6 = t("ssh://[fd00::1]:22");
        assert_eq!(v6.host, "fd00::1");
        assert_eq!(
            t("ssh://box/run/user/1000/docker.sock").socket.as_deref(),
            Some("/run/user/1000/docker.sock")
        );
        assert_eq!(
            Endpoint::Ssh(t("ssh://me@[fd00::1]:2222")).to_string(),
            "ssh://me@[fd00::1]:2222"
        );
    }

    #[test]
    fn bad_addresses_are_refused_and_never_show_a_password() {
        let err = resolve(Some("ssh://me:hunter2@box"), &[]).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.starts_with("`ssh://me:***@box` is not an engine address: a password in the address is not supported"), "{err}");
        let err = resolve(None, &[("DOCKER_HOST", "tcp://me:hunter2@box")]).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        for raw in ["box:2375", "ftp://box", "ssh://", "unix://"] {
            let err = resolve(Some(raw), &[]).unwrap_err();
            assert!(err.contains("is not an engine address"), "{raw}: {err}");
        }
    }
}
