//! Running a command in a container and streaming its output as it arrives, with a
//! timeout and its exit code read from the engine (never guessed from the output).

use std::time::Duration;

use futures::StreamExt;

use super::{Engine, EngineError, Output};

/// Enough of the end of the output to classify a failure and show its last lines.
const TAIL_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// `None` when the command did not finish within its timeout.
    pub exit_code: Option<i64>,
    /// The last bytes of stdout and stderr together, lossily decoded.
    pub tail: String,
}

/// Runs `argv` in container `id` as the container's user, handing each chunk of output to
/// `sink` as it comes; `stdin` is written to the process and then closed.
pub async fn exec_streaming(
    engine: &Engine,
    id: &str,
    argv: Vec<String>,
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
    sink: impl FnMut(&Output) + Send,
) -> Result<Finished, EngineError> {
    let stop = async {
        match timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let (finished, _) = exec_streaming_until(engine, id, argv, None, stdin, stop, sink).await?;
    Ok(finished)
}

/// [`exec_streaming`] in `working_dir`, given up on when `stop` resolves first: then the
/// exit code is `None` and `stop`'s value comes back. Giving up reads no more output; the
/// process goes on in the container unless the caller stops it there.
pub async fn exec_streaming_until<S>(
    engine: &Engine,
    id: &str,
    argv: Vec<String>,
    working_dir: Option<&str>,
    stdin: Option<&[u8]>,
    stop: impl std::future::Future<Output = S> + Send,
    mut sink: impl FnMut(&Output) + Send,
) -> Result<(Finished, Option<S>), EngineError> {
    let mut session = engine
        .exec_in(
            id,
            argv,
            None,
            stdin.is_some(),
            working_dir.map(str::to_string),
        )
        .await?;
    if let (Some(bytes), Some(pipe)) = (stdin, session.stdin.take()) {
        // A process that exits without reading its input closes the pipe: not our failure.
        let _ = Engine::feed_stdin(pipe, bytes).await;
    }
    let mut tail: Vec<u8> = Vec::new();
    let pump = async {
        while let Some(chunk) = session.output.next().await {
            let chunk = chunk?;
            let (Output::Stdout(b) | Output::Stderr(b)) = &chunk;
            tail.extend_from_slice(b);
            if tail.len() > 2 * TAIL_BYTES {
                tail.drain(..tail.len() - TAIL_BYTES);
            }
            sink(&chunk);
        }
        Ok::<_, EngineError>(())
    };
    let (exit_code, stopped) = tokio::select! {
        result = pump => {
            result?;
            (exit_code(engine, &session.id).await?, None)
        }
        reason = stop => (None, Some(reason)),
    };
    let start = tail.len().saturating_sub(TAIL_BYTES);
    Ok((
        Finished {
            exit_code,
            tail: String::from_utf8_lossy(&tail[start..]).into_owned(),
        },
        stopped,
    ))
}

/// The engine may report an exec as running for a moment after its stream closed.
/// Asking is harmless, so a passing engine error is asked again.
async fn exit_code(engine: &Engine, exec_id: &str) -> Result<Option<i64>, EngineError> {
    let mut errors = 0;
    for _ in 0..50 {
        match engine.exec_exit_code(exec_id).await {
            Ok(Some(code)) => return Ok(Some(code)),
            Ok(None) => {}
            Err(e) if e.is_transient() && errors < 4 => errors += 1,
            Err(e) => return Err(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Some(-1))
}

/// Splits a byte stream into lines as chunks arrive; the last partial line comes out on
/// `finish`.
#[derive(Default)]
pub struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    pub fn push(&mut self, bytes: &[u8], mut each: impl FnMut(&str)) {
        self.pending.extend_from_slice(bytes);
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            each(String::from_utf8_lossy(&line[..line.len() - 1]).trim_end_matches('\r'));
        }
    }

    pub fn finish(&mut self, mut each: impl FnMut(&str)) {
        if !self.pending.is_empty() {
            each(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;

    #[test]
    fn lines_are_split_across_chunks() {
        let mut lines = Lines::default();
        let mut seen = Vec::new();
        lines.push(b"hel", |l| seen.push(l.to_string()));
        lines.push(b"lo\nwor", |l| seen.push(l.to_string()));
        lines.push(b"ld\r\nend", |l| seen.push(l.to_string()));
        lines.finish(|l| seen.push(l.to_string()));
        assert_eq!(seen, ["hello", "world", "end"]);
    }
}
