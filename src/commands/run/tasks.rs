//! The tasks file of `claunch run`: JSON Lines, one task per line, checked whole before
//! anything runs. Every error names `TASKS:LINE:COLUMN` and the key it is about.

use std::collections::HashMap;

use sha2::Digest as _;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::spans::{char_column, Spans};
use crate::config::{parse_duration, unknown_key_hint};

/// The keys a task may have.
const KEYS: [&str; 9] = [
    "id",
    "prompt",
    "agent",
    "max_turns",
    "timeout",
    "args",
    "workdir",
    "files",
    "collect",
];

/// The keys of one entry of `files`.
const FILE_KEYS: [&str; 2] = ["source", "target"];

/// The longest id: it names a directory of collected files.
const MAX_ID_CHARS: usize = 200;

/// One line of the tasks file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Its line in the tasks file (1-based).
    pub line: usize,
    pub id: String,
    pub prompt: String,
    /// Only this agent's replicas may take it; with the column of its key.
    pub agent: Option<(String, usize)>,
    pub max_turns: Option<u32>,
    pub timeout: Option<Duration>,
    pub args: Vec<String>,
    /// The exec's working directory in the container.
    pub workdir: Option<String>,
    pub files: Vec<FileIn>,
    /// Absolute container paths copied out after the task.
    pub collect: Vec<String>,
}

/// A host file or directory copied into the container before the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIn {
    /// Absolute (relative ones are taken from the tasks file's directory).
    pub source: PathBuf,
    /// Absolute container path.
    pub target: String,
}

/// Why the tasks file cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TasksError {
    #[error("{name}: cannot read: {message}")]
    Read { name: String, message: String },
    #[error("{}", render(.name, *.line, *.column, .key, .message, .hint.as_deref()))]
    At {
        name: String,
        line: usize,
        column: usize,
        /// The key path (`files[0].source`), empty when the error belongs to no key.
        key: String,
        message: String,
        hint: Option<String>,
    },
}

fn render(
    name: &str,
    line: usize,
    column: usize,
    key: &str,
    message: &str,
    hint: Option<&str>,
) -> String {
    let key = if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    };
    let hint = hint.map(|h| format!("\n  hint: {h}")).unwrap_or_default();
    format!("{name}:{line}:{column}: {key}{message}{hint}")
}

/// A fixed-size digest of a task id: what duplicate detection and the resume set keep,
/// instead of the ids.
pub type IdHash = [u8; 16];

pub fn id_hash(id: &str) -> IdHash {
    let digest = sha2::Sha256::digest(id.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// Reads and checks every task of `reader` in one streaming pass, holding none of them:
/// each valid task goes to `each` with the byte offset and length of its line, then is
/// dropped. Duplicates are found by [`IdHash`]. `name` is how messages call the file and
/// `base` is where relative `files` sources are found.
pub fn scan(
    mut reader: impl BufRead,
    name: &str,
    base: &Path,
    mut each: impl FnMut(Task, u64, usize),
) -> Result<(), TasksError> {
    let mut first_line_of: HashMap<IdHash, u32> = HashMap::new();
    let mut bytes = Vec::new();
    let mut offset: u64 = 0;
    let mut number = 0usize;
    loop {
        bytes.clear();
        let n = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|e| TasksError::Read {
                name: name.to_string(),
                message: e.to_string(),
            })?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let at_offset = offset;
        offset += n as u64;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Err(at(name, number, 1, "", "not valid UTF-8".into(), None));
        };
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.trim().is_empty() {
            continue;
        }
        let task = parse_line(text, name, number, base)?;
        let hash = id_hash(&task.id);
        if let Some(first) = first_line_of.get(&hash) {
            let column = Spans::of(text).column("id");
            return Err(at(
                name,
                number,
                column,
                "id",
                format!("duplicate id `{}` (first on line {first})", task.id),
                None,
            ));
        }
        first_line_of.insert(hash, u32::try_from(number).unwrap_or(u32::MAX));
        each(task, at_offset, n);
    }
}

/// Every task of `reader`, held (tests, and small files).
#[cfg(test)]
pub fn parse(reader: impl BufRead, name: &str, base: &Path) -> Result<Vec<Task>, TasksError> {
    let mut tasks = Vec::new();
    scan(reader, name, base, |t, _, _| tasks.push(t))?;
    Ok(tasks)
}

/// One line of the file read again by dispatch: the task on it, checked as before.
pub fn parse_again(text: &str, name: &str, line: usize, base: &Path) -> Result<Task, TasksError> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    parse_line(text, name, line, base)
}

fn at(
    name: &str,
    line: usize,
    column: usize,
    key: &str,
    message: String,
    hint: Option<String>,
) -> TasksError {
    TasksError::At {
        name: name.to_string(),
        line,
        column,
        key: key.to_string(),
        message,
        hint,
    }
}

fn parse_line(text: &str, name: &str, line: usize, base: &Path) -> Result<Task, TasksError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let full = e.to_string();
        let reason = full
            .rsplit_once(" at line ")
            .map_or(full.as_str(), |(m, _)| m);
        at(
            name,
            line,
            char_column(text, e.column()),
            "",
            format!("not valid JSON: {reason}"),
            None,
        )
    })?;
    let Value::Object(object) = value else {
        return Err(at(
            name,
            line,
            1,
            "",
            format!(
                "a task is a JSON object like {{\"id\": \"t1\", \"prompt\": \"...\"}}, not {}",
                kind(&value)
            ),
            None,
        ));
    };
    let spans = Spans::of(text);
    let fail = |key: &str, message: String| at(name, line, spans.column(key), key, message, None);
    if let Some((key, column)) = spans.repeated.first() {
        return Err(at(
            name,
            line,
            *column,
            key,
            format!("`{}` is given twice", last_key(key)),
            None,
        ));
    }
    let valid: Vec<String> = KEYS.iter().map(|k| (*k).to_string()).collect();
    for (key, column) in &spans.top_level {
        if !KEYS.contains(&key.as_str()) {
            return Err(at(
                name,
                line,
                *column,
                key,
                format!("unknown key `{key}`"),
                Some(unknown_key_hint(key, &valid)),
            ));
        }
    }
    for required in ["id", "prompt"] {
        if !object.contains_key(required) {
            return Err(at(
                name,
                line,
                1,
                "",
                format!("missing required key `{required}`"),
                None,
            ));
        }
    }
    let id = string(&object, "id")
        .map_err(|m| fail("id", m))?
        .unwrap_or_default();
    check_id(&id).map_err(|m| fail("id", m))?;
    let prompt = string(&object, "prompt")
        .map_err(|m| fail("prompt", m))?
        .unwrap_or_default();
    if prompt.trim().is_empty() {
        return Err(fail("prompt", "is empty".into()));
    }
    let agent = string(&object, "agent")
        .map_err(|m| fail("agent", m))?
        .map(|a| (a, spans.column("agent")));
    let max_turns = match object.get("max_turns") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| fail("max_turns", invalid(v, "a positive whole number")))?,
        ),
    };
    let timeout = match object.get("timeout") {
        None => None,
        Some(Value::String(s)) => Some(
            parse_duration(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    fail(
                        "timeout",
                        format!(
                            "invalid duration {s:?}: write it like \"90s\", \"10m\" or \"1h30m\""
                        ),
                    )
                })?,
        ),
        Some(v) => {
            return Err(fail(
                "timeout",
                invalid(v, "a duration like \"90s\" or \"10m\""),
            ))
        }
    };
    let item = |key: &str, (i, m): (Option<usize>, String)| match i {
        Some(i) => fail(&format!("{key}[{i}]"), m),
        None => fail(key, m),
    };
    let args = strings(&object, "args").map_err(|e| item("args", e))?;
    let workdir = string(&object, "workdir").map_err(|m| fail("workdir", m))?;
    if let Some(w) = &workdir {
        if !w.starts_with('/') {
            return Err(fail(
                "workdir",
                format!("{w:?} is not an absolute path in the container"),
            ));
        }
    }
    let container_path = |key: &str, path: &str| -> Result<String, TasksError> {
        if path.is_empty() {
            return Err(fail(key, "is empty".into()));
        }
        if path.starts_with('/') {
            return Ok(path.to_string());
        }
        match &workdir {
            Some(w) => Ok(format!("{}/{path}", w.trim_end_matches('/'))),
            None => Err(fail(
                key,
                format!("{path:?} is relative and the task has no `workdir`: make it absolute, or add a workdir"),
            )),
        }
    };
    let mut collect = Vec::new();
    for (i, path) in strings(&object, "collect")
        .map_err(|e| item("collect", e))?
        .iter()
        .enumerate()
    {
        collect.push(container_path(&format!("collect[{i}]"), path)?);
    }
    let mut files = Vec::new();
    match object.get("files") {
        None => {}
        Some(Value::Array(list)) => {
            for (i, entry) in list.iter().enumerate() {
                let key = format!("files[{i}]");
                let Value::Object(entry) = entry else {
                    return Err(fail(&key, invalid(entry, "a map with source and target")));
                };
                let valid: Vec<String> = FILE_KEYS.iter().map(|k| (*k).to_string()).collect();
                for (nested, column) in &spans.nested {
                    let Some(k) = nested.strip_prefix(&format!("{key}.")) else {
                        continue;
                    };
                    if !FILE_KEYS.contains(&k) {
                        return Err(at(
                            name,
                            line,
                            *column,
                            nested,
                            format!("unknown key `{k}`"),
                            Some(unknown_key_hint(k, &valid)),
                        ));
                    }
                }
                for required in FILE_KEYS {
                    if !entry.contains_key(required) {
                        return Err(fail(&key, format!("missing required key `{required}`")));
                    }
                }
                let source_key = format!("{key}.source");
                let source = string(entry, "source")
                    .map_err(|m| fail(&source_key, m))?
                    .unwrap_or_default();
                if source.is_empty() {
                    return Err(fail(&source_key, "is empty".into()));
                }
                let source = base.join(&source);
                if let Err(e) = std::fs::symlink_metadata(&source) {
                    return Err(fail(
                        &source_key,
                        format!("{}: {}", source.display(), io_reason(&e)),
                    ));
                }
                let target_key = format!("{key}.target");
                let target = string(entry, "target")
                    .map_err(|m| fail(&target_key, m))?
                    .unwrap_or_default();
                let target = container_path(&target_key, &target)?;
                files.push(FileIn { source, target });
            }
        }
        Some(v) => {
            return Err(fail(
                "files",
                invalid(v, "a list of {\"source\": ..., \"target\": ...}"),
            ))
        }
    }
    Ok(Task {
        line,
        id,
        prompt,
        agent,
        max_turns,
        timeout,
        args,
        workdir,
        files,
        collect,
    })
}

fn check_id(id: &str) -> Result<(), String> {
    let why = if id.is_empty() {
        "is empty"
    } else if id == "." || id == ".." || id.contains('/') || id.chars().any(char::is_control) {
        "cannot be `.` or `..` or hold `/` or control characters: it names the task's directory of collected files"
    } else if id.chars().count() > MAX_ID_CHARS {
        "is longer than 200 characters"
    } else {
        return Ok(());
    };
    Err(format!("invalid id {id:?}: {why}"))
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn last_key(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "a map".into(),
    }
}

fn invalid(v: &Value, expected: &str) -> String {
    format!("invalid type: {}, expected {expected}", kind(v))
}

fn string(object: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(invalid(v, "a string")),
    }
}

/// A list of strings; the error names the item that is not one (its index).
fn strings(object: &Map<String, Value>, key: &str) -> Result<Vec<String>, (Option<usize>, String)> {
    match object.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()),
        Some(Value::Array(items)) => {
            let (i, v) = items
                .iter()
                .enumerate()
                .find(|(_, v)| !v.is_string())
                .expect("a non-string item");
            Err((Some(i), invalid(v, "a string")))
        }
        Some(v) => Err((None, invalid(v, "a list of strings"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Vec<Task>, TasksError> {
        parse(text.as_bytes(), "tasks.jsonl", Path::new("/"))
    }

    fn err(text: &str) -> String {
        parse_text(text).unwrap_err().to_string()
    }

    #[test]
    fn a_full_task_is_read() {
        let text = r#"{"id": "t1", "prompt": "Say hello", "agent": "coder", "max_turns": 3, "timeout": "90s", "args": ["--model", "sonnet"], "workdir": "/work", "files": [{"source": "etc", "target": "in"}], "collect": ["out", "/tmp/x"]}

{"id":"t2","prompt":"--version"}
"#;
        let tasks = parse_text(text).unwrap();
        assert_eq!(tasks.len(), 2);
        let t = &tasks[0];
        assert_eq!(t.id, "t1");
        assert_eq!(t.agent, Some(("coder".into(), 37)));
        assert_eq!(t.max_turns, Some(3));
        assert_eq!(t.timeout, Some(Duration::from_secs(90)));
        assert_eq!(t.args, ["--model", "sonnet"]);
        assert_eq!(
            t.files,
            [FileIn {
                source: "/etc".into(),
                target: "/work/in".into()
            }]
        );
        assert_eq!(t.collect, ["/work/out", "/tmp/x"]);
        assert_eq!((tasks[1].line, tasks[1].prompt.as_str()), (3, "--version"));
    }

    #[test]
    fn malformed_lines_name_line_and_column() {
        assert_eq!(
            err("{\"id\": \"a\", \"prompt\": \"x\"}\n{\"id\": \"b\" \"prompt\": \"y\"}\n"),
            "tasks.jsonl:2:12: not valid JSON: expected `,` or `}`"
        );
        assert_eq!(
            err("{\"id\": \"é\", \"prompt\": x}"),
            "tasks.jsonl:1:23: not valid JSON: expected value"
        );
        assert_eq!(
            err("{\"id\": \"a\", \"prompt\": \"x\""),
            "tasks.jsonl:1:25: not valid JSON: EOF while parsing an object"
        );
        assert_eq!(
            err("[\"a\"]"),
            "tasks.jsonl:1:1: a task is a JSON object like {\"id\": \"t1\", \"prompt\": \"...\"}, not an array"
        );
        assert_eq!(
            parse(&b"\xff\n"[..], "tasks.jsonl", Path::new("/"))
                .unwrap_err()
                .to_string(),
            "tasks.jsonl:1:1: not valid UTF-8"
        );
    }

    #[test]
    fn unknown_keys_are_named_with_a_hint() {
        assert_eq!(
            err(r#"{"id": "a", "promt": "x"}"#),
            "tasks.jsonl:1:13: promt: unknown key `promt`\n  hint: did you mean `prompt`?"
        );
        assert_eq!(
            err(r#"{"id": "a", "prompt": "x", "files": [{"source": "/etc", "taget": "/x"}]}"#),
            "tasks.jsonl:1:57: files[0].taget: unknown key `taget`\n  hint: did you mean `target`?"
        );
        assert_eq!(
            err(r#"{"id": "a", "prompt": "x", "id": "b"}"#),
            "tasks.jsonl:1:28: id: `id` is given twice"
        );
    }

    #[test]
    fn missing_and_duplicate_ids_and_prompts() {
        assert_eq!(
            err(r#"{"prompt": "x"}"#),
            "tasks.jsonl:1:1: missing required key `id`"
        );
        assert_eq!(
            err("{\"id\": \"a\", \"prompt\": \"x\"}\n\n{\"id\": \"b\"}"),
            "tasks.jsonl:3:1: missing required key `prompt`"
        );
        assert_eq!(
            err("{\"id\": \"a\", \"prompt\": \"x\"}\n{\"prompt\": \"y\", \"id\": \"a\"}"),
            "tasks.jsonl:2:17: id: duplicate id `a` (first on line 1)"
        );
        assert_eq!(
            err(r#"{"id": 7, "prompt": "x"}"#),
            "tasks.jsonl:1:2: id: invalid type: number 7, expected a string"
        );
        assert_eq!(
            err(r#"{"id": "a/b", "prompt": "x"}"#),
            "tasks.jsonl:1:2: id: invalid id \"a/b\": cannot be `.` or `..` or hold `/` or control characters: it names the task's directory of collected files"
        );
        assert_eq!(
            err(r#"{"id": "a", "prompt": " "}"#),
            "tasks.jsonl:1:13: prompt: is empty"
        );
    }

    #[test]
    fn values_of_the_wrong_kind() {
        let cases = [
            (r#"{"id":"a","prompt":"x","max_turns":"5"}"#, "tasks.jsonl:1:24: max_turns: invalid type: string \"5\", expected a positive whole number"),
            (r#"{"id":"a","prompt":"x","max_turns":0}"#, "tasks.jsonl:1:24: max_turns: invalid type: number 0, expected a positive whole number"),
            (r#"{"id":"a","prompt":"x","timeout":"soon"}"#, "tasks.jsonl:1:24: timeout: invalid duration \"soon\": write it like \"90s\", \"10m\" or \"1h30m\""),
            (r#"{"id":"a","prompt":"x","timeout":90}"#, "tasks.jsonl:1:24: timeout: invalid type: number 90, expected a duration like \"90s\" or \"10m\""),
            (r#"{"id":"a","prompt":"x","args":["--model",5]}"#, "tasks.jsonl:1:42: args[1]: invalid type: number 5, expected a string"),
            (r#"{"id":"a","prompt":"x","args":"--model sonnet"}"#, "tasks.jsonl:1:24: args: invalid type: string \"--model sonnet\", expected a list of strings"),
            (r#"{"id":"a","prompt":"x","workdir":"work"}"#, "tasks.jsonl:1:24: workdir: \"work\" is not an absolute path in the container"),
            (r#"{"id":"a","prompt":"x","collect":["out"]}"#, "tasks.jsonl:1:35: collect[0]: \"out\" is relative and the task has no `workdir`: make it absolute, or add a workdir"),
            (r#"{"id":"a","prompt":"x","files":[{"source":"/nonexistent-claunch"}]}"#, "tasks.jsonl:1:33: files[0]: missing required key `target`"),
            (r#"{"id":"a","prompt":"x","files":[{"source":"/nonexistent-claunch","target":"/x"}]}"#, "tasks.jsonl:1:34: files[0].source: /nonexistent-claunch: no such file or directory"),
            (r#"{"id":"a","prompt":"x","files":"/etc"}"#, "tasks.jsonl:1:24: files: invalid type: string \"/etc\", expected a list of {\"source\": ..., \"target\": ...}"),
        ];
        for (line, expected) in cases {
            assert_eq!(err(line), expected, "for {line}");
        }
    }
}
