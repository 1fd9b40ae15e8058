//! The docker CLI's contexts, read where and as the CLI stores them: the one `DOCKER_CONTEXT`
//! names, else `currentContext` in its `config.json` (`docker context use`), each under
//! `$DOCKER_CONFIG/contexts` (default `~/.docker/contexts`), its TLS files beside it.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::endpoint::{CertDirOrigin, Endpoint, TlsFiles};
use super::EngineError;

/// The docker CLI's name for "no context": `DOCKER_HOST`, else the local socket.
const DEFAULT: &str = "default";

#[derive(Deserialize)]
struct Config {
    #[serde(rename = "currentContext", default)]
    current_context: Option<String>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "Endpoints", default)]
    endpoints: Endpoints,
}

#[derive(Deserialize, Default)]
struct Endpoints {
    docker: Option<DockerEndpoint>,
}

#[derive(Deserialize)]
struct DockerEndpoint {
    #[serde(rename = "Host", default)]
    host: String,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// The context in use, if one other than the default is: its name and its engine.
pub(super) fn current(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(String, Endpoint)>, EngineError> {
    let dir = config_dir(var);
    let (name, chosen_by) = if let Some(name) = var("DOCKER_CONTEXT") {
        (name, "DOCKER_CONTEXT".to_string())
    } else {
        let path = dir.join("config.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad_config(&path, &e.to_string())),
        };
        let config: Config =
            serde_json::from_str(&text).map_err(|e| bad_config(&path, &e.to_string()))?;
        match config.current_context.filter(|c| !c.is_empty()) {
            Some(name) => (name, format!("`docker context use`, in {}", path.display())),
            None => return Ok(None),
        }
    };
    if name == DEFAULT {
        return Ok(None);
    }
    let id = hex(&Sha256::digest(name.as_bytes()));
    let meta_path = dir.join("contexts/meta").join(&id).join("meta.json");
    let unknown = |detail: String| EngineError::BadContext {
        context: format!("docker context `{name}` (from {chosen_by})"),
        detail,
    };
    let text = std::fs::read_to_string(&meta_path)
        .map_err(|e| unknown(format!("{}: {e}", meta_path.display())))?;
    let meta: Meta = serde_json::from_str(&text)
        .map_err(|e| unknown(format!("{}: {e}", meta_path.display())))?;
    let Some(docker) = meta.endpoints.docker.filter(|d| !d.host.is_empty()) else {
        return Err(unknown("it names no Docker endpoint".into()));
    };
    if docker.skip_tls_verify {
        return Err(unknown(
            "it skips TLS verification (SkipTLSVerify), which claunch does not do".into(),
        ));
    }
    let tls_dir = dir.join("contexts/tls").join(&id).join("docker");
    let tls = tls_dir.is_dir().then(|| TlsFiles {
        dir: tls_dir,
        origin: CertDirOrigin::Context(name.clone()),
    });
    let endpoint = Endpoint::parse(&docker.host, tls)?;
    Ok(Some((name, endpoint)))
}

/// The docker CLI's configuration directory: `DOCKER_CONFIG`, else `~/.docker`.
pub(super) fn config_dir(var: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    var("DOCKER_CONFIG").map_or_else(
        || Path::new(&var("HOME").unwrap_or_else(|| "/".into())).join(".docker"),
        PathBuf::from,
    )
}

fn bad_config(path: &Path, detail: &str) -> EngineError {
    EngineError::BadContext {
        context: format!("the docker CLI's config {}", path.display()),
        detail: detail.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::endpoint::SshTarget;

    /// A docker config directory holding contexts as the docker CLI writes them.
    struct DockerConfig(tempfile::TempDir);

    impl DockerConfig {
        fn new() -> Self {
            Self(tempfile::tempdir().unwrap())
        }

        fn dir(&self) -> String {
            self.0.path().display().to_string()
        }

        fn context(&self, name: &str, host: &str, tls: bool) {
            let id = hex(&Sha256::digest(name.as_bytes()));
            let meta = self.0.path().join("contexts/meta").join(&id);
            std::fs::create_dir_all(&meta).unwrap();
            std::fs::write(
                meta.join("meta.json"),
                format!(r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#),
            )
            .unwrap();
            if tls {
                std::fs::create_dir_all(
                    self.0.path().join("contexts/tls").join(&id).join("docker"),
                )
                .unwrap();
            }
        }

        fn use_context(&self, name: &str) {
            std::fs::write(
                self.0.path().join("config.json"),
                format!("{{\"auths\": {{}}, \"currentContext\": \"{name}\"}}"),
            )
            .unwrap();
        }
    }

    fn resolve(host: Option<&str>, pairs: &[(&str, &str)]) -> Result<Endpoint, String> {
        let env = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_string())
        };
        Endpoint::resolve(host, &env)
            .map(|(e, _)| e)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_current_context_is_followed_after_the_flag_and_docker_host() {
        let config = DockerConfig::new();
        config.context("box", "ssh://me@box:2222", false);
        config.context("other", "tcp://other:2375", false);
        config.use_context("box");
        let dir = config.dir();
        let box_ssh = Endpoint::Ssh(SshTarget {
            user: Some("me".into()),
            host: "box".into(),
            port: Some(2222),
            socket: None,
        });
        assert_eq!(resolve(None, &[("DOCKER_CONFIG", &dir)]).unwrap(), box_ssh);
        assert_eq!(
            resolve(
                None,
                &[("DOCKER_CONFIG", &dir), ("DOCKER_CONTEXT", "other")]
            )
            .unwrap(),
            Endpoint::Tcp("other:2375".into())
        );
        assert_eq!(
            resolve(
                None,
                &[("DOCKER_CONFIG", &dir), ("DOCKER_HOST", "tcp://env:1")]
            )
            .unwrap(),
            Endpoint::Tcp("env:1".into())
        );
        assert_eq!(
            resolve(Some("unix:///x.sock"), &[("DOCKER_CONFIG", &dir)]).unwrap(),
            Endpoint::Unix("/x.sock".into())
        );
        // `default` is the docker CLI's name for no context.
        assert_eq!(
            resolve(
                None,
                &[("DOCKER_CONFIG", &dir), ("DOCKER_CONTEXT", "default")]
            )
            .unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        // ~/.docker when DOCKER_CONFIG is unset.
        let home = tempfile::tempdir().unwrap();
        std::fs::rename(config.0.path(), home.path().join(".docker")).unwrap();
        let home = home.path().display().to_string();
        assert_eq!(resolve(None, &[("HOME", &home)]).unwrap(), box_ssh);
    }

    #[test]
    fn a_context_with_tls_files_uses_them() {
        let config = DockerConfig::new();
        config.context("secure", "tcp://box:2376", true);
        let dir = config.dir();
        let Endpoint::Tls { address, files } = resolve(
            None,
            &[("DOCKER_CONFIG", &dir), ("DOCKER_CONTEXT", "secure")],
        )
        .unwrap() else {
            panic!("not TLS")
        };
        assert_eq!(address, "box:2376");
        let id = hex(&Sha256::digest(b"secure"));
        assert_eq!(
            files.ca(),
            config
                .0
                .path()
                .join("contexts/tls")
                .join(id)
                .join("docker/ca.pem")
        );
    }

    #[test]
    fn a_missing_context_is_named_with_what_chose_it() {
        let config = DockerConfig::new();
        let dir = config.dir();
        let err =
            resolve(None, &[("DOCKER_CONFIG", &dir), ("DOCKER_CONTEXT", "gone")]).unwrap_err();
        assert!(
            err.starts_with("docker context `gone` (from DOCKER_CONTEXT) cannot be used: "),
            "{err}"
        );
        config.use_context("gone");
        let err = resolve(None, &[("DOCKER_CONFIG", &dir)]).unwrap_err();
        assert!(
            err.starts_with("docker context `gone` (from `docker context use`, in "),
            "{err}"
        );
    }
}
