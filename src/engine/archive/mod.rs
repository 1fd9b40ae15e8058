//! Tar archives for the engine's archive endpoint: building the in-memory archive that
//! carries credentials into a container, and reading one file back out of a container,
//! bounded, taking nothing but a single regular file.

use std::io::Read;
use std::time::Duration;

use futures::{Stream, StreamExt};
use zeroize::Zeroizing;

use crate::engine::EngineError;
use crate::secret::Secret;

mod extract;

pub use extract::{extract_bounded, Bounds, ExtractError, Extracted, Refused};

/// One thing to put into a container, at an absolute path, with its owner and mode.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir {
        path: String,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    File {
        path: String,
        uid: u32,
        gid: u32,
        mode: u32,
        contents: Secret,
    },
}

/// Builds an uncompressed tar, to be extracted at `/`, holding `entries` in order.
///
/// Paths are made relative (the engine requires it); parents not listed are created by
/// the engine as root:root 0755, so list every directory whose owner matters.
pub fn build(entries: &[Entry]) -> Zeroizing<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (path, uid, gid, mode, data): (_, _, _, _, &[u8]) = match entry {
            Entry::Dir {
                path,
                uid,
                gid,
                mode,
            } => {
                header.set_entry_type(tar::EntryType::Directory);
                (path, uid, gid, mode, &[])
            }
            Entry::File {
                path,
                uid,
                gid,
                mode,
                contents,
            } => {
                header.set_entry_type(tar::EntryType::Regular);
                (path, uid, gid, mode, contents.expose())
            }
        };
        header.set_size(data.len() as u64);
        header.set_uid(u64::from(*uid));
        header.set_gid(u64::from(*gid));
        header.set_mode(*mode);
        header.set_mtime(now_secs());
        let relative = path.trim_start_matches('/');
        builder
            .append_data(&mut header, relative, data)
            .expect("writing a tar to memory cannot fail");
    }
    Zeroizing::new(
        builder
            .into_inner()
            .expect("writing a tar to memory cannot fail"),
    )
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a file could not be read back from a container.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    #[error("no such file")]
    Missing,
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("the archive is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("not a regular file ({0})")]
    NotRegular(String),
    #[error("unreadable archive: {0}")]
    Corrupt(String),
}

impl super::retry::Transient for ReadBackError {
    fn transient(&self) -> bool {
        match self {
            Self::Engine(e) => e.is_transient(),
            Self::TimedOut(_) => true,
            Self::Missing | Self::TooLarge { .. } | Self::NotRegular(_) | Self::Corrupt(_) => false,
        }
    }
}

/// Reads the tar stream of a single file (`GET /containers/{id}/archive?path=FILE`) and
/// returns its bytes.
///
/// At most `limit` bytes of the stream are read and the whole read is under `timeout`:
/// a container controls this stream, so it may be huge, endless or hostile. Only a
/// regular file is accepted (no link, device, or directory) and nothing is ever written
/// to disk.
pub async fn read_single_file<S>(
    stream: S,
    limit: usize,
    timeout: Duration,
) -> Result<Secret, ReadBackError>
where
    S: Stream<Item = Result<bytes::Bytes, EngineError>> + Send,
{
    // Tar pads to 512-byte records and ends with two empty blocks: allow for them.
    let (buf, _) = read_bounded(stream, limit + 4096, timeout, |_| None::<()>)
        .await
        .map_err(|e| match e {
            ReadBackError::TooLarge { .. } => ReadBackError::TooLarge { limit },
            other => other,
        })?;
    first_regular_file(&buf, limit)
}

/// The contents of the archive's first entry, which must be a regular file.
pub fn first_regular_file(tar_bytes: &[u8], limit: usize) -> Result<Secret, ReadBackError> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut entries = archive
        .entries()
        .map_err(|e| ReadBackError::Corrupt(e.to_string()))?;
    let mut entry = match entries.next() {
        Some(Ok(entry)) => entry,
        Some(Err(e)) => return Err(ReadBackError::Corrupt(e.to_string())),
        None => return Err(ReadBackError::Corrupt("empty archive".into())),
    };
    let kind = entry.header().entry_type();
    if kind != tar::EntryType::Regular && kind != tar::EntryType::Continuous {
        return Err(ReadBackError::NotRegular(
            format!("{kind:?}").to_lowercase(),
        ));
    }
    let size = entry.header().size().unwrap_or(u64::MAX);
    if size > limit as u64 {
        return Err(ReadBackError::TooLarge { limit });
    }
    let mut data = Zeroizing::new(Vec::new());
    entry
        .by_ref()
        .take(limit as u64)
        .read_to_end(&mut data)
        .map_err(|e| ReadBackError::Corrupt(e.to_string()))?;
    if data.len() as u64 != size {
        return Err(ReadBackError::Corrupt(format!(
            "the archive ends {} bytes into a {size}-byte file",
            data.len()
        )));
    }
    Ok(Secret::new(std::mem::take(&mut *data)))
}

/// What a path in a container is, from the first header of its archive: for a directory
/// that is the directory itself, so nothing after it needs reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits only (`0o7777`).
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// Reads an archive stream only as far as its first entry's header (at most `limit`
/// bytes, within `timeout`) and drops the rest unread.
pub async fn first_header<S>(
    stream: S,
    limit: usize,
    timeout: Duration,
) -> Result<Meta, ReadBackError>
where
    S: Stream<Item = Result<bytes::Bytes, EngineError>> + Send,
{
    let (buf, early) = read_bounded(stream, limit, timeout, parse_first_header).await?;
    match early {
        Some(meta) => Ok(meta),
        None => parse_first_header(&buf)
            .ok_or_else(|| ReadBackError::Corrupt("no complete header".into())),
    }
}

/// Reads a stream a container controls into memory: at most about `limit` bytes (one
/// chunk past it, then it gives up), all within `timeout`. `enough` may end the read
/// early once the bytes so far say all that is needed.
async fn read_bounded<S, T>(
    stream: S,
    limit: usize,
    timeout: Duration,
    mut enough: impl FnMut(&[u8]) -> Option<T> + Send,
) -> Result<(Zeroizing<Vec<u8>>, Option<T>), ReadBackError>
where
    S: Stream<Item = Result<bytes::Bytes, EngineError>> + Send,
    T: Send,
{
    let read = async {
        let mut buf = Zeroizing::new(Vec::new());
        let mut chunks = std::pin::pin!(bounded(stream, limit as u64));
        while let Some(chunk) = chunks.next().await {
            buf.extend_from_slice(&chunk?);
            if let Some(found) = enough(&buf) {
                return Ok((buf, Some(found)));
            }
        }
        Ok((buf, None))
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ReadBackError::TimedOut(timeout))?
}

/// The one bound on a stream a container controls: its chunks as they come, with the
/// engine's 404 as [`ReadBackError::Missing`]; once more than `limit` bytes came, the
/// next item is [`ReadBackError::TooLarge`] and nothing more is read. Ends after an error.
fn bounded<S>(
    stream: S,
    limit: u64,
) -> impl Stream<Item = Result<bytes::Bytes, ReadBackError>> + Send
where
    S: Stream<Item = Result<bytes::Bytes, EngineError>> + Send,
{
    futures::stream::unfold(Some((Box::pin(stream), 0u64)), move |state| async move {
        let (mut stream, total) = state?;
        if total > limit {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            return Some((Err(ReadBackError::TooLarge { limit }), None));
        }
        match stream.next().await? {
            Ok(chunk) => {
                let total = total + chunk.len() as u64;
                Some((Ok(chunk), Some((stream, total))))
            }
            Err(e) if e.is_not_found() => Some((Err(ReadBackError::Missing), None)),
            Err(e) => Some((Err(e.into()), None)),
        }
    })
}

/// The first entry's header, once enough of the archive is there (`None` until then).
/// Long-name and PAX records before it are handled by `tar`.
fn parse_first_header(buf: &[u8]) -> Option<Meta> {
    let mut archive = tar::Archive::new(buf);
    let entry = archive.entries().ok()?.next()?.ok()?;
    let h = entry.header();
    let kind = match h.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
        tar::EntryType::Directory => Kind::Dir,
        tar::EntryType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    };
    let id = |v: std::io::Result<u64>| {
        v.ok()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(u32::MAX)
    };
    Some(Meta {
        kind,
        uid: id(h.uid()),
        gid: id(h.gid()),
        mode: h.mode().ok()? & 0o7777,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_archives_are_relative_and_keep_owner_and_mode() {
        let tar = build(&[
            Entry::Dir {
                path: "/home/agent/.claude".into(),
                uid: 1000,
                gid: 1000,
                mode: 0o700,
            },
            Entry::File {
                path: "/home/agent/.claude/.credentials.json".into(),
                uid: 1000,
                gid: 1000,
                mode: 0o600,
                contents: Secret::from("{}".to_string()),
            },
        ]);
        let mut archive = tar::Archive::new(&tar[..]);
        let seen: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.uid().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("home/agent/.claude".into(), 1000, 0o700),
                ("home/agent/.claude/.credentials.json".into(), 1000, 0o600),
            ]
        );
    }

    #[test]
    fn read_back_takes_one_regular_file_only() {
        let tar = build(&[Entry::File {
            path: ".credentials.json".into(),
            uid: 0,
            gid: 0,
            mode: 0o600,
            contents: Secret::from("hello".to_string()),
        }]);
        assert_eq!(first_regular_file(&tar, 100).unwrap().expose(), b"hello");
        assert!(matches!(
            first_regular_file(&tar, 3),
            Err(ReadBackError::TooLarge { .. })
        ));

        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, ".credentials.json", "/etc/shadow")
            .unwrap();
        let link = b.into_inner().unwrap();
        assert!(matches!(
            first_regular_file(&link, 100),
            Err(ReadBackError::NotRegular(_))
        ));
        assert!(matches!(
            first_regular_file(b"garbage", 100),
            Err(ReadBackError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn read_back_gives_up_on_endless_or_huge_streams() {
        let endless = futures::stream::repeat_with(|| Ok(bytes::Bytes::from(vec![0u8; 1024])));
        let err = read_single_file(endless, 64 * 1024, Duration::from_secs(5)).await;
        assert!(matches!(err, Err(ReadBackError::TooLarge { .. })));
        let stalled = futures::stream::pending();
        let err = read_single_file(stalled, 64 * 1024, Duration::from_millis(50)).await;
        assert!(matches!(err, Err(ReadBackError::TimedOut(_))));
    }

    #[tokio::test]
    async fn first_header_reads_only_the_first_entry() {
        let tar = build(&[
            Entry::Dir {
                path: "/home/agent/.claude".into(),
                uid: 1000,
                gid: 1001,
                mode: 0o700,
            },
            Entry::File {
                path: "/home/agent/.claude/.credentials.json".into(),
                uid: 0,
                gid: 0,
                mode: 0o644,
                contents: Secret::from("x".repeat(5000)),
            },
        ]);
        // Served in small chunks and followed by an endless tail that must not be read.
        let chunks: Vec<Result<bytes::Bytes, EngineError>> = tar[..]
            .chunks(100)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let endless = futures::stream::iter(chunks).chain(futures::stream::repeat_with(|| {
            Ok(bytes::Bytes::from(vec![0u8; 512]))
        }));
        let meta = first_header(endless, 64 * 1024, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            meta,
            Meta {
                kind: Kind::Dir,
                uid: 1000,
                gid: 1001,
                mode: 0o700
            }
        );
        let empty = futures::stream::iter(vec![Ok(bytes::Bytes::new())]);
        assert!(matches!(
            first_header(empty, 1024, Duration::from_secs(5)).await,
            Err(ReadBackError::Corrupt(_))
        ));
    }
}
