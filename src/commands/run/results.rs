//! The results file of `claunch run`: one JSON object per finished task, appended in one
//! `write(2)` (the file is opened `O_APPEND`) and fsynced before the next, so a crash
//! leaves at most a torn last line, which the next run cuts off. It is also what a rerun
//! resumes from: an id with an `ok` line is done.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{Collected, RefusedEntry};
use super::tasks::{id_hash, IdHash};
use crate::claude::Usage;

/// How a task ended, as its line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
    Timeout,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
        }
    }
}

/// Why a task failed: a class scripts can match, and the words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub class: String,
    pub message: String,
    /// The API's HTTP status, for `api_error` and `rate_limited`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u64>,
}

/// One line of the results file. The fields are a contract (issue 11).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub id: String,
    pub status: Status,
    pub agent: String,
    pub container: String,
    pub attempts: u32,
    pub exit_code: Option<i64>,
    pub result: Option<String>,
    pub session_id: Option<String>,
    pub num_turns: Option<u64>,
    pub duration_ms: Option<u64>,
    pub total_cost_usd: Option<f64>,
    pub usage: Option<Usage>,
    pub started_at: String,
    pub ended_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// For a task with `collect`: what came out (also when its collection failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected: Option<Collected>,
    /// What `collect` left out, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: another `claunch run` is writing to it\n  hint: wait for it to finish, or give this run its own file with --results", .path.display())]
    Busy { path: PathBuf },
    #[error("{}:{line}: not a line `claunch run` wrote ({why})\n  hint: the file was changed by hand; fix or remove that line, or use another file with --results", .path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        why: String,
    },
}

/// `TASKS` with `.results.jsonl` in place of its extension.
pub fn default_path(tasks: &Path) -> PathBuf {
    tasks.with_extension("results.jsonl")
}

/// Where collected files go: the results file without `.jsonl`.
pub fn collect_dir(results: &Path) -> PathBuf {
    let name = results
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.strip_suffix(".jsonl") {
        Some(stem) if !stem.is_empty() => results.with_file_name(stem),
        _ => results.with_file_name(format!("{name}.d")),
    }
}

/// What an earlier run left.
#[derive(Debug, Default)]
pub struct Resume {
    /// Ids with an `ok` line: done, never run again.
    /// The ids with an `ok` line, as digests.
    pub ok: HashSet<IdHash>,
    /// Lines read.
    pub lines: usize,
    /// Bytes of a torn last line that were cut off.
    pub repaired: Option<u64>,
}

/// The results file, open for appending and locked for this run.
pub struct ResultsFile {
    path: PathBuf,
    file: File,
}

impl ResultsFile {
    /// Opens (creating) `path`, takes its lock, reads what earlier runs finished and cuts
    /// off a torn last line.
    pub fn open(path: &Path) -> Result<(Self, Resume), ResultsError> {
        let io = |error| ResultsError::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(ResultsError::Busy {
                    path: path.to_path_buf(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut resume = Resume::default();
        let mut complete: u64 = 0;
        let mut reader = BufReader::new(&file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(io)?;
            if n == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                resume.repaired = Some(n as u64);
                break;
            }
            complete += n as u64;
            resume.lines += 1;
            let corrupt = |why: String| ResultsError::Corrupt {
                path: path.to_path_buf(),
                line: resume.lines,
                why,
            };
            let value: serde_json::Value =
                serde_json::from_slice(&line).map_err(|e| corrupt(e.to_string()))?;
            let id = value["id"]
                .as_str()
                .ok_or_else(|| corrupt("no `id`".into()))?;
            match value["status"].as_str() {
                Some("ok") => {
                    resume.ok.insert(id_hash(id));
                }
                Some(_) => {}
                None => return Err(corrupt("no `status`".into())),
            }
        }
        drop(reader);
        if resume.repaired.is_some() {
            file.set_len(complete).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
            },
            resume,
        ))
    }

    /// Appends `record` as one line in a single write, then fsyncs it.
    pub fn append(&mut self, record: &Record) -> Result<(), ResultsError> {
        let io = |error| ResultsError::Io {
            path: self.path.clone(),
            error,
        };
        let mut line = serde_json::to_vec(record).map_err(|e| io(e.into()))?;
        line.push(b'\n');
        let written = self.file.write(&line).map_err(io)?;
        if written != line.len() {
            // A short write (a full disk): take the piece back rather than leave it torn.
            let len = self.file.metadata().map_err(io)?.len();
            let _ = self.file.set_len(len.saturating_sub(written as u64));
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("wrote {written} of {} bytes", line.len()),
            )));
        }
        self.file.sync_data().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, status: Status) -> Record {
        Record {
            id: id.into(),
            status,
            agent: "a".into(),
            container: "p-a-1".into(),
            attempts: 1,
            exit_code: Some(0),
            result: Some("hi".into()),
            session_id: Some("s".into()),
            num_turns: Some(1),
            duration_ms: Some(10),
            total_cost_usd: Some(0.5),
            usage: Some(Usage::default()),
            started_at: "1970-01-01T00:00:00.000Z".into(),
            ended_at: "1970-01-01T00:00:01.000Z".into(),
            error: None,
            collected: None,
            refused: Vec::new(),
        }
    }

    #[test]
    fn paths_follow_the_tasks_file() {
        assert_eq!(
            default_path(Path::new("work/tasks.jsonl")),
            Path::new("work/tasks.results.jsonl")
        );
        assert_eq!(
            default_path(Path::new("tasks")),
            Path::new("tasks.results.jsonl")
        );
        assert_eq!(
            collect_dir(Path::new("work/tasks.results.jsonl")),
            Path::new("work/tasks.results")
        );
        assert_eq!(collect_dir(Path::new("out.txt")), Path::new("out.txt.d"));
    }

    #[test]
    fn lines_are_appended_whole_and_read_back_for_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        {
            let (mut file, resume) = ResultsFile::open(&path).unwrap();
            assert_eq!(resume.lines, 0);
            file.append(&record("a", Status::Ok)).unwrap();
            let mut failed = record("b", Status::Failed);
            failed.error = Some(Failure {
                class: "api_error".into(),
                message: "overloaded".into(),
                http_status: Some(529),
            });
            file.append(&failed).unwrap();
            // One run at a time per file.
            assert!(matches!(
                ResultsFile::open(&path),
                Err(ResultsError::Busy { .. })
            ));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["status"], "ok");
        assert_eq!(lines[0]["usage"]["cache_read_input_tokens"], 0);
        assert!(lines[0].get("error").is_none());
        assert_eq!(lines[1]["error"]["http_status"], 529);

        // A crash mid-line: the torn piece is cut off, and the rest still counts.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"id":"c","status":"o"#)
            .unwrap();
        let (mut file, resume) = ResultsFile::open(&path).unwrap();
        assert_eq!(resume.ok, HashSet::from([id_hash("a")]));
        assert_eq!((resume.lines, resume.repaired), (2, Some(21)));
        file.append(&record("c", Status::Ok)).unwrap();
        drop(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(
            text.ends_with("\"error\":null}\n") || text.ends_with("Z\"}\n"),
            "{text}"
        );
    }

    #[test]
    fn a_line_not_written_by_claunch_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "{\"id\":\"a\",\"status\":\"ok\"}\nhello\n").unwrap();
        let err = ResultsFile::open(&path).err().unwrap().to_string();
        assert_eq!(
            err,
            format!("{}:2: not a line `claunch run` wrote (expected value at line 1 column 1)\n  hint: the file was changed by hand; fix or remove that line, or use another file with --results", path.display())
        );
    }
}
