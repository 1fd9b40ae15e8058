//! The tasks file while a run lasts: checked whole in one streaming pass up front, then
//! each task read again from its line when it is dispatched, so that memory does not grow
//! with the file (a few dozen bytes a task). Stdin is spooled to a private temporary
//! file first, removed as soon as it is open.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::tasks::{self, IdHash, Task, TasksError};

/// Where a task's line is, and what dispatch needs without reading it.
#[derive(Debug, Clone)]
pub struct Slot {
    pub offset: u64,
    pub len: u32,
    pub line: u32,
    pub id: IdHash,
    /// An index into [`TaskFile::agents`].
    pub agent: Option<u16>,
}

/// An agent a task names, where it is first named.
#[derive(Debug, Clone)]
pub struct NamedAgent {
    pub name: String,
    pub line: usize,
    pub column: usize,
}

pub struct TaskFile {
    /// How messages name it (`stdin` for `-`).
    pub name: String,
    base: PathBuf,
    file: Mutex<File>,
    pub slots: Vec<Slot>,
    pub agents: Vec<NamedAgent>,
}

impl TaskFile {
    /// Opens and checks `path` (`-` for stdin).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let (file, name, base) = if path == Path::new("-") {
            (
                spool_stdin()?,
                "stdin".to_string(),
                std::env::current_dir()?,
            )
        } else {
            let name = path.display().to_string();
            let file = File::open(path).map_err(|e| TasksError::Read {
                name: name.clone(),
                message: match e.kind() {
                    std::io::ErrorKind::NotFound => "no such file".into(),
                    _ => e.to_string(),
                },
            })?;
            if file.metadata().is_ok_and(|m| m.is_dir()) {
                anyhow::bail!("{name}: is a directory, not a tasks file");
            }
            let base = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            (file, name, base)
        };
        let mut slots = Vec::new();
        let mut agents: Vec<NamedAgent> = Vec::new();
        let mut too_long = None;
        tasks::scan(BufReader::new(&file), &name, &base, |task, offset, len| {
            let agent = task.agent.as_ref().map(|(a, column)| {
                let found = agents.iter().position(|n| &n.name == a);
                let i = found.unwrap_or_else(|| {
                    agents.push(NamedAgent {
                        name: a.clone(),
                        line: task.line,
                        column: *column,
                    });
                    agents.len() - 1
                });
                u16::try_from(i).unwrap_or(u16::MAX)
            });
            let Ok(len) = u32::try_from(len) else {
                too_long.get_or_insert(task.line);
                return;
            };
            slots.push(Slot {
                offset,
                len,
                line: u32::try_from(task.line).unwrap_or(u32::MAX),
                id: tasks::id_hash(&task.id),
                agent,
            });
        })?;
        if let Some(line) = too_long {
            anyhow::bail!("{name}:{line}: the line is longer than 4 GiB");
        }
        if agents.len() > usize::from(u16::MAX) {
            anyhow::bail!("{name}: more than 65,535 different agents are named");
        }
        slots.shrink_to_fit();
        Ok(Self {
            name,
            base,
            file: Mutex::new(file),
            slots,
            agents,
        })
    }

    /// The agent task `index` is for, if any.
    pub fn agent(&self, index: usize) -> Option<&str> {
        self.slots[index]
            .agent
            .map(|a| self.agents[usize::from(a)].name.as_str())
    }

    /// Reads task `index` again from its line; an error if the file changed under the run.
    pub fn load(&self, index: usize) -> Result<Task, String> {
        let slot = &self.slots[index];
        let changed = |why: String| {
            format!(
                "{}:{}: the tasks file changed while the run read it ({why}); it must stay as it was until the run ends",
                self.name, slot.line
            )
        };
        let mut bytes = vec![0u8; slot.len as usize];
        {
            let mut file = self.file.lock().expect("tasks file lock");
            file.seek(SeekFrom::Start(slot.offset))
                .and_then(|_| file.read_exact(&mut bytes))
                .map_err(|e| changed(e.to_string()))?;
        }
        let text = String::from_utf8(bytes).map_err(|_| changed("not valid UTF-8".into()))?;
        let task = tasks::parse_again(&text, &self.name, slot.line as usize, &self.base)
            .map_err(|e| changed(e.to_string()))?;
        if tasks::id_hash(&task.id) != slot.id {
            return Err(changed("another id on this line".into()));
        }
        Ok(task)
    }
}

/// Stdin copied into a private (0600) temporary file that has no name (unlinked from the
/// start), so the tasks can be read twice.
fn spool_stdin() -> anyhow::Result<File> {
    let dir = std::env::temp_dir();
    let mut file = tempfile::tempfile().map_err(|e| {
        anyhow::anyhow!(
            "stdin: cannot make a temporary file for the tasks in {}: {e}\n  hint: set TMPDIR to a writable directory",
            dir.display()
        )
    })?;
    std::io::copy(&mut std::io::stdin().lock(), &mut file)
        .map_err(|e| anyhow::anyhow!("stdin: cannot keep the tasks in {}: {e}", dir.display()))?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_read_again_from_their_lines_and_a_changed_file_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.jsonl");
        let text = "{\"id\":\"a\",\"prompt\":\"one\"}\r\n\n   \n{\"id\":\"b\",\"prompt\":\"two\",\"agent\":\"x\"}\n{\"id\":\"c\",\"prompt\":\"three\",\"agent\":\"x\"}";
        std::fs::write(&path, text).unwrap();
        let file = TaskFile::open(&path).unwrap();
        assert_eq!(file.slots.len(), 3);
        assert_eq!(file.agents.len(), 1);
        assert_eq!((file.agents[0].line, file.agents[0].column), (4, 26));
        let ids: Vec<(String, usize, String)> = (0..3)
            .map(|i| {
                let t = file.load(i).unwrap();
                (t.id, t.line, t.prompt)
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("a".into(), 1, "one".into()),
                ("b".into(), 4, "two".into()),
                ("c".into(), 5, "three".into())
            ]
        );
        assert_eq!(file.agent(0), None);
        assert_eq!(file.agent(2), Some("x"));
        // The same length, another id: refused, not run as something else.
        std::fs::write(&path, text.replace("\"b\"", "\"z\"")).unwrap();
        let err = file.load(1).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "{}:4: the tasks file changed while the run read it (another id on this line)",
                path.display()
            )),
            "{err}"
        );
    }
}
