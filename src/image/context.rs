//! The build context of an agent image, as plain data first (a Dockerfile and the files
//! beside it), then as a tar stream written straight from the host files, so a 400 MB
//! `claude` is never held in memory.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::Stream;

use super::deps::Needed;

/// Where `claude` goes in every image claunch builds.
pub const CLAUDE_PATH: &str = "/usr/local/bin/claude";
/// Where the host's CA bundle goes in a minimal image (Debian's path, which most TLS
/// stacks look at; `SSL_CERT_FILE` names it for the others).
pub const CERTS_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The non-root user of a minimal image.
pub const AGENT_UID: u32 = 1000;

/// The default command of a minimal image with a shell: idle, and exit at once on
/// SIGTERM (a shell waiting on `sleep` in the foreground would delay `docker stop`).
pub const IDLE_COMMAND: &str = "trap 'exit 0' TERM INT; while :; do sleep 1 & wait $!; done";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host file, read while the archive is sent.
    Host(PathBuf),
    Data(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        source: Source,
    },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Self::Dir { path, .. } | Self::File { path, .. } => path,
        }
    }
}

/// A build context: `Dockerfile` at its root, then `entries` (relative paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub dockerfile: String,
    pub entries: Vec<Entry>,
}

/// What goes into an image built `FROM scratch`.
#[derive(Debug, Clone)]
pub struct Minimal {
    pub claude: PathBuf,
    /// The loader and libraries of `claude` (and of busybox, if it is dynamic).
    pub libraries: Vec<Needed>,
    /// A busybox for `/bin/sh` and the usual tools, if the host has one.
    pub busybox: Option<PathBuf>,
    /// The host's CA bundle, if found.
    pub certs: Option<PathBuf>,
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
agent:x:1000:1000:agent:/home/agent:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n";
// Without it glibc guesses; say that names come from files first, then DNS.
const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n";

/// The context of a minimal image: no distribution, just `claude`, what it links, CA
/// certificates, users `root` and `agent` (uid 1000), `/tmp`, and busybox if given.
///
/// The default user is root: claunch's `user:` picks one per agent. `COPY` makes every
/// file root's, so the agent's home comes from its own `COPY --chown`.
pub fn minimal(m: &Minimal) -> Context {
    let data = |path: &str, text: &str| Entry::File {
        path: format!("rootfs{path}"),
        mode: 0o644,
        source: Source::Data(text.as_bytes().to_vec()),
    };
    let mut entries = vec![
        Entry::Dir {
            path: "rootfs/tmp".into(),
            mode: 0o1777,
        },
        Entry::Dir {
            path: "rootfs/root".into(),
            mode: 0o700,
        },
        Entry::Dir {
            path: "rootfs/home".into(),
            mode: 0o755,
        },
        Entry::Dir {
            path: "home-agent".into(),
            mode: 0o755,
        },
        data("/etc/passwd", PASSWD),
        data("/etc/group", GROUP),
        data("/etc/nsswitch.conf", NSSWITCH),
    ];
    for lib in &m.libraries {
        entries.push(Entry::File {
            path: format!("rootfs{}", lib.image_path),
            mode: 0o755,
            source: Source::Host(lib.source.clone()),
        });
    }
    if let Some(certs) = &m.certs {
        entries.push(Entry::File {
            path: format!("rootfs{CERTS_PATH}"),
            mode: 0o644,
            source: Source::Host(certs.clone()),
        });
    }
    if let Some(busybox) = &m.busybox {
        entries.push(Entry::File {
            path: "rootfs/bin/busybox".into(),
            mode: 0o755,
            source: Source::Host(busybox.clone()),
        });
    }
    entries.push(Entry::File {
        path: "claude".into(),
        mode: 0o755,
        source: Source::Host(m.claude.clone()),
    });

    let mut d = vec![
        "# claunch image build: the real claude CLI and only what it needs.".to_string(),
        "FROM scratch".into(),
        "COPY rootfs/ /".into(),
        format!("COPY --chown={AGENT_UID}:{AGENT_UID} home-agent/ /home/agent/"),
    ];
    if m.busybox.is_some() {
        d.push(r#"RUN ["/bin/busybox", "--install", "-s", "/bin"]"#.into());
    }
    // claude last: a new CLI version rebuilds only this layer.
    d.push(format!(r#"COPY ["claude", "{CLAUDE_PATH}"]"#));
    d.push("ENV PATH=/usr/local/bin:/usr/bin:/bin".into());
    if m.certs.is_some() {
        d.push(format!("ENV SSL_CERT_FILE={CERTS_PATH}"));
    }
    if m.busybox.is_some() {
        let cmd =
            serde_json::to_string(&["/bin/sh", "-c", IDLE_COMMAND]).expect("strings serialize");
        d.push(format!("CMD {cmd}"));
    }
    Context {
        dockerfile: lines(&d),
        entries,
    }
}

fn lines(lines: &[String]) -> String {
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The context that adds `claude` on top of `base`; `path` is the base's `PATH` when it
/// lacks `/usr/local/bin` (so `claude` would not be found).
pub fn on_base(base: &str, claude: &Path, path: Option<&str>) -> Context {
    let mut d = vec![
        format!("# claunch image build: the real claude CLI on top of {base}."),
        format!("FROM {base}"),
        format!(r#"COPY ["claude", "{CLAUDE_PATH}"]"#),
    ];
    if let Some(path) = path {
        d.push(format!("ENV PATH=/usr/local/bin:{path}"));
    }
    Context {
        dockerfile: lines(&d),
        entries: vec![Entry::File {
            path: "claude".into(),
            mode: 0o755,
            source: Source::Host(claude.to_path_buf()),
        }],
    }
}

impl Context {
    /// The bytes of file contents the context carries (for progress).
    pub fn payload_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::File {
                    source: Source::Host(p),
                    ..
                } => std::fs::metadata(p).map_or(0, |m| m.len()),
                Entry::File {
                    source: Source::Data(d),
                    ..
                } => d.len() as u64,
                Entry::Dir { .. } => 0,
            })
            .sum::<u64>()
            + self.dockerfile.len() as u64
    }

    /// Writes the context as an uncompressed tar. Every parent directory gets an entry
    /// (0755 unless listed), so nothing depends on how the engine fills gaps.
    pub fn write_tar<W: Write>(&self, out: W) -> io::Result<W> {
        let mut tar = tar::Builder::new(out);
        let mut dirs: BTreeMap<String, u32> = BTreeMap::new();
        for entry in &self.entries {
            let mut parent = Path::new(entry.path()).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                dirs.entry(p.display().to_string()).or_insert(0o755);
                parent = p.parent();
            }
            if let Entry::Dir { path, mode } = entry {
                dirs.insert(path.clone(), *mode);
            }
        }
        append(
            &mut tar,
            "Dockerfile",
            0o644,
            tar::EntryType::Regular,
            self.dockerfile.as_bytes(),
        )?;
        // BTreeMap order puts a parent before its children.
        for (dir, mode) in &dirs {
            append(&mut tar, dir, *mode, tar::EntryType::Directory, &[][..])?;
        }
        for entry in &self.entries {
            match entry {
                Entry::Dir { .. } => {}
                Entry::File {
                    path,
                    mode,
                    source: Source::Data(d),
                } => {
                    append(&mut tar, path, *mode, tar::EntryType::Regular, &d[..])?;
                }
                Entry::File {
                    path,
                    mode,
                    source: Source::Host(host),
                } => {
                    let file = std::fs::File::open(host).map_err(|e| {
                        io::Error::new(e.kind(), format!("{}: {e}", host.display()))
                    })?;
                    let meta = file.metadata()?;
                    let mut h = header(*mode, tar::EntryType::Regular, meta.len());
                    h.set_mtime(
                        meta.modified()
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_secs()),
                    );
                    tar.append_data(&mut h, path, file).map_err(|e| {
                        io::Error::new(e.kind(), format!("{}: {e}", host.display()))
                    })?;
                }
            }
        }
        tar.into_inner()
    }

    /// The tar as a stream of chunks, written by a blocking thread as the engine reads
    /// them; the thread's result says whether every file could be read.
    pub fn into_stream(
        self,
    ) -> (
        impl Stream<Item = io::Result<Bytes>> + Send + 'static,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let writer = tokio::task::spawn_blocking(move || {
            let mut sink = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            let result = self.write_tar(&mut sink).and_then(Write::flush);
            if let Err(e) = &result {
                // Fail the upload too, so the engine does not build half a context.
                let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
            }
            result
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        (stream, writer)
    }
}

const CHUNK: usize = 1 << 20;

/// A `Write` that hands 1 MiB chunks to the async side, waiting when it is behind.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the engine stopped reading the build context",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

fn header(mode: u32, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    mode: u32,
    kind: tar::EntryType,
    data: &[u8],
) -> io::Result<()> {
    let mut h = header(mode, kind, data.len() as u64);
    tar.append_data(&mut h, path, data)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn listing(ctx: &Context) -> Vec<(String, u32, Vec<u8>)> {
        let bytes = ctx.write_tar(Vec::new()).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                let mode = e.header().mode().unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, mode, data)
            })
            .collect()
    }

    #[test]
    fn a_minimal_context_holds_claude_its_libraries_users_and_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let ctx = minimal(&Minimal {
            claude: file("claude", "CLAUDE"),
            libraries: vec![Needed {
                image_path: "/lib/x86_64-linux-gnu/libc.so.6".into(),
                source: file("libc-2.36.so", "LIBC"),
            }],
            busybox: Some(file("busybox", "BUSYBOX")),
            certs: Some(file("ca.crt", "CERTS")),
        });
        let got = listing(&ctx);
        let find = |p: &str| {
            got.iter()
                .find(|(path, ..)| path.trim_end_matches('/') == p)
                .unwrap_or_else(|| panic!("{p} in {got:?}"))
        };
        assert_eq!(find("rootfs/lib/x86_64-linux-gnu/libc.so.6").2, b"LIBC");
        assert_eq!(find("claude").1, 0o755);
        assert_eq!(find("rootfs/tmp").1, 0o1777);
        assert_eq!(find("rootfs/root").1, 0o700);
        assert_eq!(find("rootfs/lib").1, 0o755, "parents are listed");
        assert_eq!(find("rootfs/etc/ssl/certs/ca-certificates.crt").2, b"CERTS");
        let passwd = String::from_utf8(find("rootfs/etc/passwd").2.clone()).unwrap();
        assert!(passwd.contains("root:x:0:0:root:/root:"), "{passwd}");
        assert!(
            passwd.contains("agent:x:1000:1000:agent:/home/agent:"),
            "{passwd}"
        );
        assert_eq!(got[0].0, "Dockerfile");
        let d = &ctx.dockerfile;
        assert!(
            d.contains("FROM scratch\n")
                && d.contains("COPY --chown=1000:1000 home-agent/ /home/agent/\n"),
            "{d}"
        );
        assert!(
            d.contains("RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]"),
            "{d}"
        );
        assert!(
            d.contains("ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
            "{d}"
        );
        assert!(
            d.contains("CMD [\"/bin/sh\",\"-c\",\"trap 'exit 0' TERM INT;"),
            "{d}"
        );
        assert!(
            d.find("RUN").unwrap() < d.find("COPY [\"claude\"").unwrap(),
            "claude is the last layer: {d}"
        );
    }

    #[test]
    fn without_busybox_there_is_no_shell_and_no_default_command() {
        let ctx = minimal(&Minimal {
            claude: "/x/claude".into(),
            libraries: vec![],
            busybox: None,
            certs: None,
        });
        assert!(
            !ctx.dockerfile.contains("RUN") && !ctx.dockerfile.contains("CMD"),
            "{}",
            ctx.dockerfile
        );
        assert!(!ctx.dockerfile.contains("SSL_CERT_FILE"));
    }

    #[test]
    fn on_a_base_only_claude_is_added() {
        let ctx = on_base(
            "my-worker:latest",
            Path::new("/x/claude"),
            Some("/usr/bin:/bin"),
        );
        assert!(ctx.dockerfile.contains("FROM my-worker:latest\nCOPY [\"claude\", \"/usr/local/bin/claude\"]\nENV PATH=/usr/local/bin:/usr/bin:/bin\n"), "{}", ctx.dockerfile);
        assert_eq!(ctx.entries.len(), 1);
        assert!(!on_base("b", Path::new("/x/claude"), None)
            .dockerfile
            .contains("ENV"));
    }

    #[tokio::test]
    async fn the_stream_carries_the_same_bytes_and_reports_unreadable_files() {
        use futures::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("claude");
        std::fs::write(&big, vec![7u8; 3 * CHUNK + 5]).unwrap();
        let ctx = on_base("b", &big, None);
        let expected = ctx.write_tar(Vec::new()).unwrap();
        let (stream, writer) = ctx.into_stream();
        let chunks: Vec<Bytes> = stream.map(Result::unwrap).collect().await;
        assert!(chunks.len() > 3);
        assert_eq!(chunks.concat(), expected);
        writer.await.unwrap().unwrap();

        let (stream, writer) = on_base("b", &dir.path().join("gone"), None).into_stream();
        let items: Vec<io::Result<Bytes>> = stream.collect().await;
        assert!(items.last().unwrap().is_err());
        let err = writer.await.unwrap().unwrap_err().to_string();
        assert!(err.contains("gone"), "{err}");
    }
}
