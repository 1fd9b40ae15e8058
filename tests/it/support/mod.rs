//! What the integration tests share: the real engine (or a loud failure), test images built
//! FROM scratch with busybox and a stand-in `claude`, a throwaway project per test with
//! fake credentials, and a sweep by label when the test ends.

pub mod cluster;
pub mod engines;
pub mod moto;
pub mod prometheus;
pub mod proxy;
pub mod real;
pub mod remote;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use claunch::engine::Engine;
use claunch::fleet::label;
use sha2::Digest as _;

pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().expect("tokio runtime"))
}

/// Builds an image on `engine` from an in-memory build context.
pub async fn build_image(
    engine: &Engine,
    context: Vec<u8>,
    tag: &str,
    labels: HashMap<String, String>,
) -> Result<(), claunch::engine::EngineError> {
    let context = futures::stream::once(futures::future::ready(Ok(bytes::Bytes::from(context))));
    engine.build_image(context, tag, labels, |_| {}).await
}

/// The docker CLI against the tests' engine, for what the engine reports raw (the whole
/// `docker inspect`, its events), as a user would look. Panics when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running docker {args:?}: {e}"));
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("docker prints UTF-8")
}

/// `docker inspect` of a container, parsed: everything the engine reports of it.
pub fn docker_inspect(id: &str) -> serde_json::Value {
    let text = docker(&["inspect", "--type", "container", id]);
    let mut list: Vec<serde_json::Value> = serde_json::from_str(&text).expect("inspect is JSON");
    list.remove(0)
}

/// The engine test: does a network of that name exist?
pub fn network_exists(name: &str) -> bool {
    rt().block_on(engine().networks_named(name))
        .expect("listing networks")
        .iter()
        .any(|n| n.name == name)
}

/// The engine the tests use. No engine is a failure, never a skip.
pub fn engine() -> Engine {
    rt().block_on(Engine::connect(None)).unwrap_or_else(|e| {
        panic!("these tests need a Docker engine and none is reachable: {e}\n(.ci/run starts dockerd; locally, start it or set DOCKER_HOST)")
    })
}

/// A short id unique to this test process.
pub fn run_id() -> String {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        format!("{:x}{:x}", std::process::id(), nanos % 0xffff)
    })
    .clone()
}

/// A token-shaped fake, unique to this run, so sweeps can look for it.
pub fn fake_token(kind: &str) -> String {
    format!("sk-ant-{kind}01-CLAUNCHTEST{}x{}", run_id(), "Q".repeat(24))
}

pub fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A full login, as `claude login` writes it.
pub fn login_json(access: &str, refresh: &str, expires_at_ms: i64) -> String {
    serde_json::json!({
        "claudeAiOauth": {
            "accessToken": access,
            "refreshToken": refresh,
            "expiresAt": expires_at_ms,
            "scopes": ["user:inference", "user:profile"],
            "subscriptionType": "pro"
        }
    })
    .to_string()
}

/// Test images: `root` (no USER), `named` (USER agent, HOME /home/agent), `noclaude`.
#[derive(Clone, Copy, Debug)]
pub enum Image {
    Root,
    Named,
    NoClaude,
}

/// The image's command: note whether the credentials were readable the moment it
/// started (into /tmp/at-start), then idle until stopped.
const AGENT_CMD: &str = r#"echo "agent started as uid $(id -u)"; f="${CLAUDE_CONFIG_DIR:-$HOME/.claude}/.credentials.json"; if [ -r "$f" ]; then echo readable > /tmp/at-start; else echo missing > /tmp/at-start; fi; trap "exit 0" TERM INT; while true; do sleep 1 & wait $!; done"#;

fn busybox() -> Vec<u8> {
    std::fs::read("/bin/busybox")
        .or_else(|_| std::fs::read("/usr/bin/busybox"))
        .expect(
            "busybox-static is needed to build the test images (apt-get install busybox-static)",
        )
}

/// Builds the test image if the engine does not have it yet; returns its tag. The tag
/// carries a hash of the build context, so a rerun reuses the image and changed fixtures
/// make a new one (the old one stays, tagged: see README's "Testing").
pub fn image(kind: Image) -> String {
    let standin = std::fs::read(fixture("claude-standin.sh")).unwrap();
    let (name, user, claude) = match kind {
        Image::Root => ("root", None, true),
        Image::Named => ("named", Some("agent"), true),
        Image::NoClaude => ("noclaude", None, false),
    };
    let passwd = "root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/home/agent:/bin/sh\n";
    let group = "root:x:0:\nagent:x:1000:\nstaff:x:50:agent\n";
    let mut dockerfile = String::from(
        "FROM scratch\nCOPY rootfs/ /\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    );
    if let Some(u) = user {
        let _ = writeln!(dockerfile, "USER {u}");
    }
    let _ = writeln!(
        dockerfile,
        "ENV PATH=/usr/local/bin:/bin\nCMD [\"/bin/sh\", \"-c\", {}]",
        serde_json::to_string(AGENT_CMD).unwrap()
    );
    let mut files: Vec<(&str, Vec<u8>, u32, u32)> = vec![
        ("Dockerfile", dockerfile.clone().into_bytes(), 0o644, 0),
        ("rootfs/bin/busybox", busybox(), 0o755, 0),
        ("rootfs/etc/passwd", passwd.into(), 0o644, 0),
        ("rootfs/etc/group", group.into(), 0o644, 0),
    ];
    if claude {
        files.push(("rootfs/usr/local/bin/claude", standin, 0o755, 0));
    }
    let mut tar = tar::Builder::new(Vec::new());
    let add_dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str, uid: u64, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        tar.append_data(&mut h, path, &[][..]).unwrap();
    };
    add_dir(&mut tar, "rootfs/tmp", 0, 0o1777);
    add_dir(&mut tar, "rootfs/root", 0, 0o700);
    add_dir(&mut tar, "rootfs/home", 0, 0o755);
    add_dir(&mut tar, "rootfs/home/agent", 1000, 0o755);
    for (path, bytes, mode, uid) in &files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(*mode);
        h.set_uid(u64::from(*uid));
        h.set_gid(u64::from(*uid));
        tar.append_data(&mut h, path, &bytes[..]).unwrap();
    }
    // The headers carry no time: the same files make the same context, byte for byte.
    let context = tar.into_inner().unwrap();
    let digest = sha2::Sha256::digest(&context);
    let tag = format!("claunch-test/agent:{name}-{}", hex(&digest[..8]));
    let engine = engine();
    let _lock = image_lock();
    if rt().block_on(engine.inspect_image(&tag)).is_err() {
        let labels = HashMap::from([(TEST_LABEL.0.to_string(), TEST_LABEL.1.to_string())]);
        rt().block_on(build_image(&engine, context, &tag, labels))
            .unwrap_or_else(|e| panic!("building test image {tag}: {e}"));
    }
    remove_dangling_images();
    tag
}

/// The label on every image the tests build (and, through `FROM`, on images built on
/// top of one).
const TEST_LABEL: (&str, &str) = ("claunch.test", "image");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Held while a test image is built or the dangling ones are removed: across the test
/// processes (nextest runs each test in one of its own), so that two never build the
/// same tag at once (the loser's image would be left untagged) and the sweep never
/// removes the untagged layer a build in progress has just made.
pub fn image_lock() -> std::fs::File {
    let path = std::env::temp_dir().join("claunch-test-images.lock");
    let lock = std::fs::File::create(&path).expect("creating the test image lock");
    lock.lock().expect("taking the test image lock");
    lock
}

/// Removes the dangling images labelled [`TEST_LABEL`] that no container uses (the
/// engine refuses to remove one in use): what rebuilding a test image's tag leaves.
/// Call it holding [`image_lock`].
pub fn remove_dangling_images() {
    use bollard::query_parameters::{ListImagesOptions, RemoveImageOptions};
    let endpoint = engine().endpoint().to_string();
    rt().block_on(async {
        let docker = bollard::Docker::connect_with_host(&endpoint)
            .unwrap()
            .negotiate_version()
            .await
            .unwrap();
        let filters = HashMap::from([
            ("dangling".to_string(), vec!["true".to_string()]),
            (
                "label".to_string(),
                vec![format!("{}={}", TEST_LABEL.0, TEST_LABEL.1)],
            ),
        ]);
        let options = ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        };
        for image in docker.list_images(Some(options)).await.unwrap() {
            let _ = docker
                .remove_image(&image.id, None::<RemoveImageOptions>, None)
                .await;
        }
    });
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A throwaway project: its own directory, config, credentials and project name; on drop,
/// everything labelled with its project is removed from the engine.
pub struct Project {
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(test: &str) -> Self {
        let name = format!("ct{}-{}", run_id(), test.replace('_', "-"));
        let dir = tempfile::tempdir().unwrap();
        Self { name, dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes claunch.yaml; `{project}` and `{creds}` are filled in.
    pub fn write_config(&self, yaml: &str) {
        let text = yaml.replace("{project}", &self.name).replace(
            "{creds}",
            &self.path("creds/.credentials.json").display().to_string(),
        );
        std::fs::write(self.path("claunch.yaml"), text).unwrap();
    }

    /// Writes the credentials file (0600) that the config's `{creds}` points at.
    pub fn write_credentials(&self, json: &str) {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.path("creds");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".credentials.json");
        std::fs::write(&path, json).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// The credentials file that `{creds}` points at, parsed.
    pub fn credentials(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path("creds/.credentials.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// A fresh login with tokens unique to this run; returns (access, refresh).
    pub fn login(&self) -> (String, String) {
        let (access, refresh) = (fake_token("oat"), fake_token("ort"));
        self.write_credentials(&login_json(&access, &refresh, now_ms() + 8 * 3_600_000));
        (access, refresh)
    }

    /// `claunch` in this project's directory, with no terminal.
    pub fn claunch(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("claunch").unwrap();
        cmd.current_dir(self.dir.path())
            .env_remove("CLAUNCH_PROJECT");
        cmd
    }

    /// The project's containers: (name, id), sorted by name.
    pub fn containers(&self) -> Vec<(String, String)> {
        let engine = engine();
        let list = rt()
            .block_on(engine.list_containers(&[(label::PROJECT, &self.name)]))
            .unwrap();
        let mut out: Vec<(String, String)> = list.into_iter().map(|c| (c.name, c.id)).collect();
        out.sort();
        out
    }

    /// Runs a shell command in a container as root and returns its stdout.
    #[allow(clippy::unused_self)] // a method, so tests read as `p.sh(…)`
    pub fn sh(&self, container: &str, script: &str) -> String {
        use futures::StreamExt;
        let engine = engine();
        let argv = vec!["sh".into(), "-c".into(), script.into()];
        let mut out = Vec::new();
        rt().block_on(async {
            let mut s = engine
                .exec(container, argv, Some("0".into()), false)
                .await
                .unwrap();
            while let Some(chunk) = s.output.next().await {
                if let claunch::engine::Output::Stdout(b) = chunk.unwrap() {
                    out.extend_from_slice(&b);
                }
            }
        });
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A JSON file in a container, read as root, parsed.
    pub fn json_in(&self, container: &str, path: &str) -> serde_json::Value {
        let text = self.sh(container, &format!("cat {path}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{container}:{path}: {e}: {text}"))
    }

    /// Replaces a file in a container as root, in one rename, 0600 and owned by `owner`
    /// (`uid:gid`): as the container's own claude (or hostile code in it) writes it.
    pub fn write_in(&self, container: &str, path: &str, owner: &str, contents: &str) {
        let escaped = contents.replace('\'', "'\\''");
        self.sh(
            container,
            &format!("printf '%s' '{escaped}' > {path}.new && chown {owner} {path}.new && chmod 600 {path}.new && mv {path}.new {path}"),
        );
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        sweep(&self.name);
    }
}

/// Removes every container, network and volume labelled with `project`.
pub fn sweep(project: &str) {
    let project = project.to_string();
    // Drop may run inside the runtime (a panicking test): use a thread of its own.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let Ok(engine) = Engine::connect(None).await else {
                return;
            };
            let by = [(label::PROJECT, project.as_str())];
            for c in engine.list_containers(&by).await.unwrap_or_default() {
                let _ = engine.remove_container(&c.id).await;
            }
            for network in engine.list_networks(&by).await.unwrap_or_default() {
                let _ = engine.remove_network(&network.id).await;
            }
            for name in engine.list_volumes(&by).await.unwrap_or_default() {
                let _ = engine.remove_volume(&name).await;
            }
        });
    })
    .join()
    .unwrap();
}
