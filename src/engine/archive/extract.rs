//! Collecting a container path onto the host: the archive stream written under a target
//! directory, streaming and bounded, taking only regular files and directories at safe,
//! UTF-8 names that do not collide by case, never through a link.

use std::io::Read;
use std::time::Duration;

use futures::{Stream, StreamExt};

use super::{bounded, ReadBackError};
use crate::engine::EngineError;

/// What collecting a path out of a container may take at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Bytes of file contents.
    pub bytes: u64,
    /// Entries of any kind.
    pub entries: u64,
}

impl Bounds {
    /// 1 GiB and 100,000 entries.
    pub const COLLECT: Self = Self {
        bytes: 1 << 30,
        entries: 100_000,
    };
}

/// What an extraction wrote, and what it left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Entries not written: links, devices, FIFOs, unsafe paths, names that are not
    /// UTF-8 or that collide with an earlier one on a case-insensitive filesystem.
    pub skipped: Vec<Refused>,
}

/// An entry an extraction left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    /// As the archive names it (invalid UTF-8 shown as U+FFFD).
    pub path: String,
    pub why: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.path, self.why)
    }
}

/// The names written so far, folded to lower case: a name that differs from an earlier
/// one only by case would overwrite it on a case-insensitive filesystem (macOS, Windows),
/// so it is refused on every host and the results are the same everywhere.
#[derive(Default)]
struct Folded(std::collections::HashMap<String, String>);

impl Folded {
    /// The earlier name `relative` (or one of its directories) collides with, if any;
    /// else notes it and its directories.
    fn collides(&mut self, relative: &str) -> Option<String> {
        let mut prefix = String::new();
        for part in relative.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            let folded = prefix.to_lowercase();
            match self.0.get(&folded) {
                Some(earlier) if *earlier != prefix => return Some(earlier.clone()),
                Some(_) => {}
                None => {
                    self.0.insert(folded, prefix.clone());
                }
            }
        }
        None
    }
}

/// Why an extraction stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{0}")]
    Read(#[from] ReadBackError),
    #[error("more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("more than {limit} bytes of files")]
    TooLarge { limit: u64 },
    #[error("unreadable archive: {0}")]
    Corrupt(String),
    #[error("writing {}: {error}", .path.display())]
    Write {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
}

/// Writes the archive stream of a container path (`GET /containers/{id}/archive`) under
/// `dest`, streaming, never holding it whole: only regular files and directories, at
/// paths inside `dest` (no absolute path, no `..`), never through a link (none is ever
/// made, and a file is only created where nothing is); links, devices and FIFOs are left
/// out and listed. At most `bounds`, all within `timeout`; the container controls the
/// stream. Files get the archive's permission bits within 0755, plus owner read-write.
pub async fn extract_bounded<S>(
    stream: S,
    dest: &std::path::Path,
    bounds: Bounds,
    timeout: Duration,
) -> Result<Extracted, ExtractError>
where
    S: Stream<Item = Result<bytes::Bytes, EngineError>> + Send,
{
    // Headers and padding: 512 bytes per entry, the file sizes rounded up to 512, and
    // room for long-name and PAX records, so that the entry count stops a stream first.
    let stream_limit = bounds
        .bytes
        .saturating_add(bounds.entries.saturating_add(2).saturating_mul(3072));
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let dest = dest.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || {
        unpack(
            ChannelReader {
                rx,
                pending: bytes::Bytes::new(),
            },
            &dest,
            bounds,
        )
    });
    let feed = async {
        let mut chunks = std::pin::pin!(bounded(stream, stream_limit));
        while let Some(chunk) = chunks.next().await {
            if tx.send(chunk?).await.is_err() {
                // The writer stopped: its own error says why.
                break;
            }
        }
        Ok::<_, ReadBackError>(())
    };
    let outcome = tokio::time::timeout(timeout, feed).await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| ExtractError::Corrupt(format!("the writer failed: {e}")))?;
    match outcome {
        Err(_) => Err(ReadBackError::TimedOut(timeout).into()),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(())) => written,
    }
}

/// The chunks an extraction's feeder sends, as a blocking `Read`.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    pending: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.pending = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}

fn unpack(
    reader: impl Read,
    dest: &std::path::Path,
    bounds: Bounds,
) -> Result<Extracted, ExtractError> {
    use std::path::Component;
    let corrupt = |e: std::io::Error| ExtractError::Corrupt(e.to_string());
    let write_err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |error| ExtractError::Write {
            path: path.clone(),
            error,
        }
    };
    make_dir(dest).map_err(write_err(dest))?;
    let mut done = Extracted::default();
    let mut archive = tar::Archive::new(reader);
    let mut entries_seen: u64 = 0;
    let mut folded = Folded::default();
    let refuse = |done: &mut Extracted, path: &str, why: &str| {
        done.skipped.push(Refused {
            path: path.to_string(),
            why: why.to_string(),
        });
    };
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        entries_seen += 1;
        if entries_seen > bounds.entries {
            return Err(ExtractError::TooManyEntries {
                limit: bounds.entries,
            });
        }
        let raw = entry.path().map_err(corrupt)?.into_owned();
        let shown = raw.display().to_string();
        let kind = entry.header().entry_type();
        let mut relative = std::path::PathBuf::new();
        let mut safe = true;
        for component in raw.components() {
            match component {
                Component::Normal(part) => relative.push(part),
                Component::CurDir => {}
                _ => safe = false,
            }
        }
        if !safe {
            refuse(&mut done, &shown, "a path outside the target");
            continue;
        }
        if relative.as_os_str().is_empty() {
            continue;
        }
        let Some(name) = relative.to_str() else {
            refuse(&mut done, &shown, "a name that is not valid UTF-8");
            continue;
        };
        let writes = matches!(
            kind,
            tar::EntryType::Directory | tar::EntryType::Regular | tar::EntryType::Continuous
        );
        if writes {
            if let Some(earlier) = folded.collides(name) {
                refuse(
                    &mut done,
                    &shown,
                    &format!("the same name as {earlier} on a case-insensitive filesystem"),
                );
                continue;
            }
        }
        let path = dest.join(&relative);
        match kind {
            tar::EntryType::Directory => {
                make_dirs(dest, &relative).map_err(write_err(&path))?;
                done.dirs += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().map_err(corrupt)?;
                if done.bytes.saturating_add(size) > bounds.bytes {
                    return Err(ExtractError::TooLarge {
                        limit: bounds.bytes,
                    });
                }
                if let Some(parent) = relative.parent() {
                    make_dirs(dest, parent).map_err(write_err(&path))?;
                }
                let mode = entry.header().mode().unwrap_or(0o644);
                let copied = write_file(&path, &mut entry, size, mode).map_err(write_err(&path))?;
                done.bytes += copied;
                done.files += 1;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                let what = match other {
                    tar::EntryType::Symlink => "a symbolic link".to_string(),
                    tar::EntryType::Link => "a hard link".to_string(),
                    tar::EntryType::Char | tar::EntryType::Block => "a device".to_string(),
                    tar::EntryType::Fifo => "a FIFO".to_string(),
                    o => format!("{o:?}").to_lowercase(),
                };
                refuse(&mut done, &shown, &what);
            }
        }
    }
    Ok(done)
}

/// Makes `dir` if missing; what is there must be a real directory, not a link to one.
fn make_dir(dir: &std::path::Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "something that is not a directory is in the way",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(dir),
        Err(e) => Err(e),
    }
}

/// Each directory of `relative` under `dest`, one level at a time, so none is a link.
fn make_dirs(dest: &std::path::Path, relative: &std::path::Path) -> std::io::Result<()> {
    let mut at = dest.to_path_buf();
    for part in relative.components() {
        at.push(part);
        make_dir(&at)?;
    }
    Ok(())
}

/// Creates `path` (replacing a regular file of an earlier entry, never following a link)
/// with at most `size` bytes of `data`.
fn write_file(
    path: &std::path::Path,
    data: &mut impl Read,
    size: u64,
    mode: u32,
) -> std::io::Result<u64> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.is_file() {
            std::fs::remove_file(path)?;
        }
    }
    // `create_new` is O_CREAT|O_EXCL: it fails on anything in the way, a link included.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode((mode & 0o755) | 0o600)
        .open(path)?;
    std::io::copy(&mut data.take(size), &mut file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar entry with a raw name, as a hostile container may send (`..`, absolute).
    fn raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn stream_of(tar: &[u8]) -> impl Stream<Item = Result<bytes::Bytes, EngineError>> + Send {
        let chunks: Vec<Result<bytes::Bytes, EngineError>> = tar
            .chunks(700)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(chunks)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn collecting_writes_files_and_dirs_only_inside_the_target() {
        let outside = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "out", tar::EntryType::Directory, b"");
        raw_entry(&mut b, "out/a.txt", tar::EntryType::Regular, b"hello");
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        b.append_link(&mut link, "out/l", outside.path()).unwrap();
        // Through the link that was never made: lands in a real directory inside.
        raw_entry(&mut b, "out/l/x", tar::EntryType::Regular, b"x");
        raw_entry(&mut b, "../evil", tar::EntryType::Regular, b"evil");
        raw_entry(&mut b, "/abs", tar::EntryType::Regular, b"abs");
        raw_entry(&mut b, "out/fifo", tar::EntryType::Fifo, b"");
        let tar = b.into_inner().unwrap();
        let done = extract_bounded(
            stream_of(&tar),
            dest.path(),
            Bounds::COLLECT,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!((done.files, done.dirs, done.bytes), (2, 1, 6));
        assert_eq!(
            done.skipped
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "out/l (a symbolic link)",
                "../evil (a path outside the target)",
                "/abs (a path outside the target)",
                "out/fifo (a FIFO)"
            ]
        );
        assert_eq!(
            std::fs::read(dest.path().join("out/a.txt")).unwrap(),
            b"hello"
        );
        assert!(std::fs::symlink_metadata(dest.path().join("out/l"))
            .unwrap()
            .is_dir());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(!dest.path().parent().unwrap().join("evil").exists());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn collecting_refuses_names_that_are_not_utf8_or_collide_by_case() {
        let dest = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "Out", tar::EntryType::Directory, b"");
        raw_entry(&mut b, "Out/README", tar::EntryType::Regular, b"upper");
        raw_entry(&mut b, "Out/readme", tar::EntryType::Regular, b"lower");
        raw_entry(&mut b, "out/x", tar::EntryType::Regular, b"x");
        raw_entry(&mut b, "Out/README", tar::EntryType::Regular, b"again");
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"Out/b\xffd");
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"b"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let done = extract_bounded(
            stream_of(&tar),
            dest.path(),
            Bounds::COLLECT,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(
            done.skipped
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "Out/readme (the same name as Out/README on a case-insensitive filesystem)",
                "out/x (the same name as Out on a case-insensitive filesystem)",
                "Out/b\u{fffd}d (a name that is not valid UTF-8)",
            ]
        );
        // The same name again is the same file, written again (as tar does).
        assert_eq!((done.files, done.dirs), (2, 1));
        assert_eq!(
            std::fs::read(dest.path().join("Out/README")).unwrap(),
            b"again"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn collecting_stops_at_its_bounds_and_never_follows_a_link_already_there() {
        let mut b = tar::Builder::new(Vec::new());
        for name in ["a", "b", "c"] {
            raw_entry(&mut b, name, tar::EntryType::Regular, &[7u8; 20]);
        }
        let tar = b.into_inner().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let few = Bounds {
            bytes: 1 << 20,
            entries: 2,
        };
        assert!(matches!(
            extract_bounded(stream_of(&tar), dest.path(), few, Duration::from_secs(5)).await,
            Err(ExtractError::TooManyEntries { limit: 2 })
        ));
        let small = Bounds {
            bytes: 30,
            entries: 100,
        };
        assert!(matches!(
            extract_bounded(stream_of(&tar), dest.path(), small, Duration::from_secs(5)).await,
            Err(ExtractError::TooLarge { limit: 30 })
        ));
        // A link where a directory goes is in the way, not followed.
        let outside = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.path().join("out")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "out/a", tar::EntryType::Regular, b"a");
        let err = extract_bounded(
            stream_of(&b.into_inner().unwrap()),
            dest.path(),
            Bounds::COLLECT,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ExtractError::Write { .. }), "{err}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // Endless garbage: given up on, not read to the end.
        let endless = futures::stream::repeat_with(|| Ok(bytes::Bytes::from(vec![b'A'; 4096])));
        let stalled = futures::stream::pending();
        let dest = tempfile::tempdir().unwrap();
        assert!(matches!(
            extract_bounded(
                stalled,
                dest.path(),
                Bounds::COLLECT,
                Duration::from_millis(50)
            )
            .await,
            Err(ExtractError::Read(ReadBackError::TimedOut(_)))
        ));
        let tiny = Bounds {
            bytes: 1024,
            entries: 1,
        };
        assert!(
            extract_bounded(endless, dest.path(), tiny, Duration::from_secs(5))
                .await
                .is_err()
        );
    }
}
