//! `claunch image build`: an agent image with the real `claude` in it, with no registry,
//! no Node.js and no Dockerfile to write; reused as is while the binary is the same.

use crate::commands::ExitStatus;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use futures::StreamExt;

use super::Global;
use crate::engine::Engine;
use crate::image::context::{self, Context, Minimal, CLAUDE_PATH};
use crate::image::{self, claude, deps, elf, label, tag};
use crate::report::{Outcome, Reporter};

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--claude PATH`; default: `claude` on the host's PATH.
    pub claude: Option<PathBuf>,
    /// `--base IMAGE`: add claude on top of an image already on the engine.
    pub base: Option<String>,
    /// `--tag TAG`; default: `claunch/claude:<claude version>` (or with the base's name).
    pub tag: Option<String>,
}

/// Where a static busybox may be; the first found gives the image its `/bin/sh`.
const BUSYBOX: [&str; 4] = [
    "/bin/busybox",
    "/usr/bin/busybox",
    "/usr/sbin/busybox",
    "/sbin/busybox",
];
/// The host's CA bundle: Debian's, Fedora's, Alpine's and others' names for it.
const CA_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The base image as the engine has it.
struct Base {
    name: String,
    id: String,
    /// Its `PATH` when that lacks `/usr/local/bin`.
    path_without_local_bin: Option<String>,
}

pub async fn build(
    global: &Global,
    o: BuildOptions,
    r: Arc<dyn Reporter>,
) -> anyhow::Result<ExitStatus> {
    let started = Instant::now();
    let path_var = std::env::var_os("PATH");
    let claude = claude::locate(o.claude.as_deref(), path_var.as_deref())?;
    let version = match claude::version_output(&claude).await {
        Ok(output) => match tag::parse_version(&output) {
            Some(v) => Some(v),
            None if o.tag.is_some() => None,
            None => bail!(
                "{}: `claude --version` printed {output:?}, which has no version to name the image after\n  hint: pass --tag to name it yourself",
                claude.display()
            ),
        },
        Err(e) if o.tag.is_some() => {
            r.warn(&e.to_string().replace("\n  hint: ", "; "));
            None
        }
        Err(e) => return Err(e.into()),
    };
    let engine = super::connect(global).await?;
    let base = match &o.base {
        Some(name) => Some(inspect_base(&engine, name, &claude, r.as_ref()).await?),
        None => None,
    };
    let tag = o.tag.clone().unwrap_or_else(|| {
        tag::default_tag(
            version.as_deref().unwrap_or("unknown"),
            base.as_ref().map(|b| b.name.as_str()),
        )
    });
    let size = std::fs::metadata(&claude).map_or(0, |m| m.len());
    r.info(&format!(
        "claude {} at {} ({})",
        version.as_deref().unwrap_or("(version unknown)"),
        claude.display(),
        megabytes(size)
    ));
    let digest = claude::sha256(&claude)
        .await
        .with_context(|| format!("reading {}", claude.display()))?;

    let mut labels = HashMap::from([
        (label::CLAUDE_SHA256.to_string(), digest.clone()),
        (
            label::CLAUDE_VERSION.to_string(),
            version.clone().unwrap_or_else(|| "unknown".into()),
        ),
        (label::FORMAT.to_string(), image::FORMAT.to_string()),
    ]);
    if let Some(b) = &base {
        labels.insert(label::BASE.to_string(), b.name.clone());
        labels.insert(label::BASE_ID.to_string(), b.id.clone());
    }
    if up_to_date(&engine, &tag, &labels).await? {
        r.info(&format!(
            "{tag} already holds this claude (sha256 {}): nothing to build\n  (`docker rmi {tag}` forces a rebuild)",
            &digest[..12]
        ));
        r.finished(
            &tag,
            &Outcome::Done {
                detail: "up to date".into(),
            },
        );
        return Ok(ExitStatus::Success);
    }

    let context = match &base {
        Some(b) => {
            r.info(&format!("adding claude to {} at {CLAUDE_PATH}", b.name));
            context::on_base(&b.name, &claude, b.path_without_local_bin.as_deref())
        }
        None => minimal_context(&claude, r.as_ref())?,
    };
    send_and_build(&engine, context, &tag, labels, &r).await?;
    let built = engine.inspect_image(&tag).await?;
    r.finished(
        &tag,
        &Outcome::Done {
            detail: format!(
                "built in {:.1}s ({})",
                started.elapsed().as_secs_f64(),
                megabytes(built.size_bytes.unwrap_or(0))
            ),
        },
    );
    r.info(&format!("use it with `image: {tag}` in claunch.yaml"));
    Ok(ExitStatus::Success)
}

fn megabytes(bytes: u64) -> String {
    format!("{} MB", bytes.div_ceil(1_000_000))
}

/// Whether `tag` exists and was built by this claunch format from the same binary (and base).
async fn up_to_date(
    engine: &Engine,
    tag: &str,
    wanted: &HashMap<String, String>,
) -> anyhow::Result<bool> {
    let existing = match engine.inspect_image(tag).await {
        Ok(i) => i,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let have = existing.labels;
    let same = |key: &str| have.get(key) == wanted.get(key);
    Ok(same(label::CLAUDE_SHA256) && same(label::FORMAT) && same(label::BASE_ID))
}

async fn inspect_base(
    engine: &Engine,
    name: &str,
    claude: &Path,
    r: &dyn Reporter,
) -> anyhow::Result<Base> {
    let image = engine.inspect_image(name).await.map_err(|e| {
        if e.is_not_found() {
            anyhow::anyhow!(
                "--base {name}: no such image on the engine\n  hint: claunch never pulls; `docker pull {name}` or build it first (`docker images` lists what the engine has)"
            )
        } else {
            anyhow::Error::from(e).context(format!("--base {name}"))
        }
    })?;
    if let (Ok(binary), Some(arch)) = (elf::read_file(claude), image.architecture.as_deref()) {
        let wanted = match binary.machine {
            elf::EM_X86_64 => Some("amd64"),
            elf::EM_AARCH64 => Some("arm64"),
            _ => None,
        };
        if let Some(wanted) = wanted.filter(|w| *w != arch) {
            r.warn(&format!(
                "--base {name} is {arch} but {} is {wanted}: claude will not run in it",
                claude.display()
            ));
        }
    }
    let path = image
        .env
        .into_iter()
        .find_map(|kv| kv.strip_prefix("PATH=").map(str::to_string));
    Ok(Base {
        name: name.to_string(),
        id: image.id,
        // No PATH at all: the engine's default one has /usr/local/bin.
        path_without_local_bin: path.filter(|p| {
            !p.split(':')
                .any(|d| d.trim_end_matches('/') == "/usr/local/bin")
        }),
    })
}

/// A `FROM scratch` context: claude, what it links, CA certificates, users, and busybox.
fn minimal_context(claude: &Path, r: &dyn Reporter) -> anyhow::Result<Context> {
    match elf::read_file(claude) {
        Ok(_) => {}
        Err(elf::ElfError::NotElf) => bail!(
            "{} is not an ELF executable (a script? npm's claude is a Node.js script)\n  hint: pack the native CLI (https://claude.ai/install.sh or examples/demo/fetch-claude.sh), or pass --base IMAGE with an image that can run it",
            claude.display()
        ),
        Err(e) => bail!("{}: {e}\n  hint: pass --base IMAGE with an image that can run it", claude.display()),
    }
    let root = Path::new("/");
    let mut libraries = deps::resolve(claude, CLAUDE_PATH, root).map_err(|e| {
        anyhow::anyhow!("{e}\n  hint: install the missing library on this host, or pass --base IMAGE with an image that has it")
    })?;
    let mut busybox = BUSYBOX
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok());
    if let Some(bb) = &busybox {
        // Busybox-static needs nothing; a dynamic one brings its libraries along.
        match deps::resolve(bb, "/bin/busybox", root) {
            Ok(extra) => {
                for lib in extra {
                    if !libraries.iter().any(|l| l.image_path == lib.image_path) {
                        libraries.push(lib);
                    }
                }
            }
            Err(e) => {
                r.warn(&format!("leaving busybox out of the image: {e}"));
                busybox = None;
            }
        }
    }
    if busybox.is_none() {
        r.warn("no busybox on this host (apt-get install busybox-static): the image has no shell and no default command, so give each agent a `command:`");
    }
    let certs = CA_BUNDLES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok());
    if certs.is_none() {
        r.warn("no CA bundle on this host (e.g. /etc/ssl/certs/ca-certificates.crt): the image has none; claude still trusts its built-in roots");
    }
    let names: Vec<String> = libraries
        .iter()
        .filter_map(|l| {
            Path::new(&l.image_path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .collect();
    r.info(&format!(
        "from scratch: claude, {} ({}){}{}, users root and agent (uid 1000)",
        if names.len() == 1 {
            "1 library".to_string()
        } else {
            format!("{} libraries", names.len())
        },
        names.join(", "),
        if busybox.is_some() { ", busybox" } else { "" },
        if certs.is_some() {
            ", CA certificates"
        } else {
            ""
        },
    ));
    Ok(context::minimal(&Minimal {
        claude: claude.to_path_buf(),
        libraries,
        busybox,
        certs,
    }))
}

/// Streams the context to the engine, reporting how much is sent and the builder's steps.
async fn send_and_build(
    engine: &Engine,
    context: Context,
    tag: &str,
    labels: HashMap<String, String>,
    r: &Arc<dyn Reporter>,
) -> anyhow::Result<()> {
    let total = context.payload_bytes();
    r.info(&format!(
        "sending the build context ({}) to {}",
        megabytes(total),
        engine.endpoint()
    ));
    let (stream, writer) = context.into_stream();
    let reporter = r.clone();
    let (mut sent, mut quarter) = (0u64, 1u64);
    let stream = stream.inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            sent += bytes.len() as u64;
            // A quarter at a time, and only when there is enough to wait for.
            while total > 32_000_000 && quarter < 4 && sent >= total / 4 * quarter {
                reporter.info(&format!(
                    "  sent {} of {}",
                    megabytes(sent),
                    megabytes(total)
                ));
                quarter += 1;
            }
        }
    });
    let built = engine
        .build_image(stream, tag, labels, |line| {
            let line = line.trim_end();
            // The builder's ids and cleanup are noise here; its steps are progress.
            if !line.trim_start().starts_with("--->")
                && !line.starts_with("Removing intermediate container")
            {
                r.info(&format!("  {line}"));
            }
        })
        .await;
    let wrote = writer.await.map_err(std::io::Error::other).and_then(|w| w);
    match (built, wrote) {
        // A file that could not be read is the cause; a broken pipe is only the effect
        // of the engine giving up, whose own error says why.
        (_, Err(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::anyhow!(
            "building {tag}: reading the build context: {e}"
        )),
        (Err(e), _) => Err(anyhow::Error::from(e).context(format!("building {tag}"))),
        (Ok(()), Err(e)) => Err(anyhow::anyhow!("building {tag}: {e}")),
        (Ok(()), Ok(())) => Ok(()),
    }
}
