//! The one place that talks to the Docker Engine: every engine operation claunch uses,
//! with the engine's errors mapped to [`EngineError`] naming what failed and for which object.

pub mod archive;
mod connect;
mod container;
mod context;
mod endpoint;
mod error;
mod info;
pub(crate) mod retry;
mod ssh;
mod stream;
mod tls;

pub use container::ContainerConfig;
pub use error::{EngineError, Result};
pub use info::{
    ContainerInfo, ContainerListing, ContainerState, EngineVersion, ImageInfo, Mount,
    NetworkListing,
};
pub use stream::{exec_streaming, exec_streaming_until, Finished, Lines};

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, ExecConfig, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    BuildImageOptions, ContainerArchiveInfoOptions, CreateContainerOptions, CreateImageOptions,
    DownloadFromContainerOptions, ListContainersOptions, ListNetworksOptions, ListVolumesOptions,
    LogsOptions, RemoveContainerOptions, StopContainerOptions, UploadToContainerOptions,
};
use bollard::Docker;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// One chunk of a process's output, as the engine demultiplexes it.
#[derive(Debug, Clone)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

pub type OutputStream = Pin<Box<dyn Stream<Item = Result<Output>> + Send>>;

/// Which part of a container's logs to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogsQuery {
    /// Keep the stream open for what the container prints next.
    pub follow: bool,
    /// Only the last N lines; all when `None`.
    pub tail: Option<u64>,
    /// Each line starts with the engine's RFC 3339 time for it.
    pub timestamps: bool,
    /// Only what was printed at or after this Unix time, in seconds.
    pub since: Option<i64>,
}

/// A started exec: its output as it comes, and a handle to ask its exit code at the end.
pub struct ExecSession {
    pub id: String,
    pub output: OutputStream,
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
}

#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    endpoint: String,
}

impl Engine {
    /// Connects to `host`, else `DOCKER_HOST`, else the docker CLI's current context
    /// (`DOCKER_CONTEXT`, `docker context use`), else the local socket, and negotiates the
    /// API version. `host` is `unix://`, `tcp://` (TLS with `DOCKER_TLS_VERIFY` and
    /// `DOCKER_CERT_PATH`, as for the docker CLI) or `ssh://[user@]host[:port]`.
    pub async fn connect(host: Option<&str>) -> Result<Self> {
        let (docker, endpoint) = connect::open(host).await?;
        Ok(Self { docker, endpoint })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The engine's version, and the API version this client negotiated with it.
    pub async fn version(&self) -> Result<EngineVersion> {
        let negotiated = self.docker.client_version().to_string();
        self.docker
            .version()
            .await
            .map(|v| EngineVersion::new(v, negotiated))
            .map_err(|e| EngineError::from_bollard("version of", &self.endpoint, e))
    }

    pub async fn inspect_image(&self, image: &str) -> Result<ImageInfo> {
        self.docker
            .inspect_image(image)
            .await
            .map(ImageInfo::from)
            .map_err(|e| EngineError::from_bollard("inspect image", image, e))
    }

    /// Every container (running or not) that carries all the given labels.
    pub async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerListing>> {
        let filters = HashMap::from([(
            "label".to_string(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        self.docker
            .list_containers(Some(options))
            .await
            .map(|list| list.into_iter().map(ContainerListing::from).collect())
            .map_err(|e| EngineError::from_bollard("list containers", "", e))
    }

    pub async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        self.docker
            .inspect_container(id, None)
            .await
            .map(ContainerInfo::from)
            .map_err(|e| EngineError::from_bollard("inspect container", id, e))
    }

    /// Creates a container and returns its id.
    pub async fn create_container(&self, name: &str, config: ContainerConfig) -> Result<String> {
        let options = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        self.docker
            .create_container(Some(options), ContainerCreateBody::from(config))
            .await
            .map(|r| r.id)
            .map_err(|e| EngineError::from_bollard("create container", name, e))
    }

    /// Starts a container; one already running (a racing `up` started it) is fine.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from_bollard("start container", id, e) {
                e if e.status() == Some(304) => Ok(()),
                e => Err(e),
            },
        }
    }

    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let options = StopContainerOptions {
            t: Some(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)),
            ..Default::default()
        };
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from_bollard("stop container", id, e) {
                // 304: already stopped; 404: already gone.
                e if matches!(e.status(), Some(304 | 404)) => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Removes a container, killing it first if it runs; a container already gone is fine.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from_bollard("remove container", id, e) {
                e if e.is_not_found() => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Extracts an in-memory tar archive into the container's filesystem at `dir`.
    pub async fn upload_archive(&self, id: &str, dir: &str, tar: Vec<u8>) -> Result<()> {
        let options = UploadToContainerOptions {
            path: dir.to_string(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(id, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(|e| EngineError::from_bollard("copy files into", id, e))
    }

    /// A tar archive of `path` in the container, as a stream the caller must bound.
    pub fn download_archive(
        &self,
        id: &str,
        path: &str,
    ) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let object = format!("{id}:{path}");
        self.docker
            .download_from_container(id, Some(options))
            .map_err(move |e| EngineError::from_bollard("read", &object, e))
    }

    /// Whether `path` exists in the container (a HEAD on the archive endpoint).
    pub async fn path_exists(&self, id: &str, path: &str) -> Result<bool> {
        let options = ContainerArchiveInfoOptions {
            path: path.to_string(),
        };
        match self
            .docker
            .get_container_archive_info(id, Some(options))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match EngineError::from_bollard("stat", &format!("{id}:{path}"), e) {
                e if e.is_not_found() => Ok(false),
                e => Err(e),
            },
        }
    }

    /// Starts `cmd` in a running container and streams its output.
    ///
    /// `user` of `None` runs as the container's own user; `stdin` attaches an input pipe.
    pub async fn exec(
        &self,
        id: &str,
        cmd: Vec<String>,
        user: Option<String>,
        stdin: bool,
    ) -> Result<ExecSession> {
        self.exec_in(id, cmd, user, stdin, None).await
    }

    /// [`Engine::exec`] in `working_dir` (`None`: the container's own).
    pub async fn exec_in(
        &self,
        id: &str,
        cmd: Vec<String>,
        user: Option<String>,
        stdin: bool,
        working_dir: Option<String>,
    ) -> Result<ExecSession> {
        let config = ExecConfig {
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            cmd: Some(cmd),
            user,
            working_dir,
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(id, config)
            .await
            .map_err(|e| EngineError::from_bollard("exec in", id, e))?;
        let started = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(|e| EngineError::from_bollard("exec in", id, e))?;
        let bollard::exec::StartExecResults::Attached { output, input } = started else {
            unreachable!("an exec started without detach is attached")
        };
        let object = id.to_string();
        let output = output.filter_map(move |item| {
            let mapped = match item {
                Ok(bollard::container::LogOutput::StdOut { message }) => {
                    Some(Ok(Output::Stdout(message)))
                }
                Ok(bollard::container::LogOutput::StdErr { message }) => {
                    Some(Ok(Output::Stderr(message)))
                }
                Ok(_) => None,
                Err(e) => Some(Err(EngineError::from_bollard(
                    "read exec output of",
                    &object,
                    e,
                ))),
            };
            futures::future::ready(mapped)
        });
        Ok(ExecSession {
            id: created.id,
            output: Box::pin(output),
            stdin: stdin.then(|| Box::pin(input) as Pin<Box<dyn AsyncWrite + Send>>),
        })
    }

    /// The exit code of a finished exec (`None` while it still runs).
    pub async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        let inspect = self
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| EngineError::from_bollard("inspect exec", exec_id, e))?;
        Ok(if inspect.running == Some(true) {
            None
        } else {
            inspect.exit_code
        })
    }

    /// The container's logs, both streams, as much of them as `query` asks for.
    pub fn logs(&self, id: &str, query: LogsQuery) -> OutputStream {
        let options = LogsOptions {
            follow: query.follow,
            stdout: true,
            stderr: true,
            tail: query
                .tail
                .map_or_else(|| "all".to_string(), |n| n.to_string()),
            timestamps: query.timestamps,
            // The engine reads 0 as "from the start": a time before 1970 means the same.
            since: query
                .since
                .map_or(0, |s| i32::try_from(s.max(0)).unwrap_or(i32::MAX)),
            ..Default::default()
        };
        let object = id.to_string();
        Box::pin(self.docker.logs(id, Some(options)).filter_map(move |item| {
            futures::future::ready(match item {
                Ok(bollard::container::LogOutput::StdErr { message }) => {
                    Some(Ok(Output::Stderr(message)))
                }
                Ok(
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message },
                ) => Some(Ok(Output::Stdout(message))),
                Ok(bollard::container::LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(EngineError::from_bollard("read logs of", &object, e))),
            })
        }))
    }

    /// Networks carrying all the given labels.
    pub async fn list_networks(&self, labels: &[(&str, &str)]) -> Result<Vec<NetworkListing>> {
        let filters = HashMap::from([(
            "label".to_string(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        self.networks(filters).await
    }

    /// Every network named exactly `name`: the engine allows several, and two racing
    /// creates make them.
    pub async fn networks_named(&self, name: &str) -> Result<Vec<NetworkListing>> {
        // The engine's name filter matches substrings: keep the exact ones.
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let mut found = self.networks(filters).await?;
        found.retain(|n| n.name == name);
        Ok(found)
    }

    async fn networks(&self, filters: HashMap<String, Vec<String>>) -> Result<Vec<NetworkListing>> {
        let options = ListNetworksOptions {
            filters: Some(filters),
        };
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| EngineError::from_bollard("list networks", "", e))?;
        Ok(networks.into_iter().map(NetworkListing::from).collect())
    }

    /// Creates a bridge network with labels and returns its id.
    pub async fn create_network(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<String> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map(|created| created.id)
            .map_err(|e| EngineError::from_bollard("create network", name, e))
    }

    pub async fn remove_network(&self, name: &str) -> Result<()> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from_bollard("remove network", name, e) {
                e if e.is_not_found() => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Creates a named volume with labels (the engine returns the existing one if present).
    pub async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| EngineError::from_bollard("create volume", name, e))
    }

    pub async fn list_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<String>> {
        let filters = HashMap::from([(
            "label".to_string(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let options = ListVolumesOptions {
            filters: Some(filters),
        };
        let volumes = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| EngineError::from_bollard("list volumes", "", e))?;
        Ok(volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        self.docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
            .map_err(|e| EngineError::from_bollard("remove volume", name, e))
    }

    /// Builds an image from an uncompressed tar build context (its `Dockerfile` at the
    /// root) sent as a stream of chunks, so a large context (a 400 MB `claude`) is sent as
    /// it is read instead of held in memory; a chunk that is an error aborts the upload.
    /// Tags it `tag`; each line the builder prints goes to `progress`.
    pub async fn build_image(
        &self,
        context: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
        tag: &str,
        labels: HashMap<String, String>,
        mut progress: impl FnMut(&str) + Send,
    ) -> Result<()> {
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            labels: Some(labels),
            ..Default::default()
        };
        let mut stream = std::pin::pin!(self.docker.build_image(
            options,
            None,
            Some(bollard::body_try_stream(context))
        ));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| EngineError::from_bollard("build image", tag, e))?;
            if let Some(detail) = info.error_detail {
                return Err(EngineError::Api {
                    op: "build image",
                    object: tag.to_string(),
                    status: None,
                    message: detail.message.unwrap_or_default().trim().to_string(),
                });
            }
            for line in info.stream.iter().flat_map(|s| s.lines()) {
                if !line.trim().is_empty() {
                    progress(line.trim_end());
                }
            }
        }
        Ok(())
    }

    /// Pulls `name` at `tag` (a tag or a digest) from its registry; each status line the
    /// engine prints goes to `progress`, but a layer's byte counts as they grow.
    pub async fn pull_image(
        &self,
        name: &str,
        tag: &str,
        mut progress: impl FnMut(&str) + Send,
    ) -> Result<()> {
        let options = CreateImageOptions {
            from_image: Some(name.to_string()),
            // Never empty: an empty tag pulls every tag of the repository.
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let object = format!("{name}:{tag}");
        let mut stream = std::pin::pin!(self.docker.create_image(Some(options), None, None));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| match e {
                // An error the engine sent in the middle of the stream, in its own words.
                bollard::errors::Error::DockerStreamError { error } => EngineError::Api {
                    op: "pull image",
                    object: object.clone(),
                    status: None,
                    message: error.trim().to_string(),
                },
                e => EngineError::from_bollard("pull image", &object, e),
            })?;
            let Some(status) = info.status.filter(|s| !s.trim().is_empty()) else {
                continue;
            };
            if info.progress_detail.is_some_and(|p| p.total.is_some()) {
                continue;
            }
            match info.id.filter(|id| !id.is_empty()) {
                Some(id) => progress(&format!("{id}: {status}")),
                None => progress(&status),
            }
        }
        Ok(())
    }

    /// Writes `bytes` to an exec's stdin and closes it.
    pub async fn feed_stdin(
        mut stdin: Pin<Box<dyn AsyncWrite + Send>>,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        stdin.write_all(bytes).await?;
        stdin.shutdown().await
    }
}
