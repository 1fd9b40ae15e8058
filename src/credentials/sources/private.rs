//! A file holding a secret for a CLI that cannot read stdin (`az keyvault secret set
//! --file`): created 0600 inside a fresh 0700 directory, overwritten and removed when
//! dropped, whatever happened in between.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub struct PrivateFile {
    dir: PathBuf,
    path: PathBuf,
    len: usize,
}

impl PrivateFile {
    /// Writes `contents` to a new private file, in `$XDG_RUNTIME_DIR` (a per-user tmpfs)
    /// when there is one, else in the temporary directory.
    pub fn create(contents: &[u8]) -> io::Result<Self> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos();
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("claunch-{}-{nanos:x}-{n}", std::process::id()));
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        };
        let path = dir.join("credentials.json");
        let file = Self {
            dir,
            path,
            len: contents.len(),
        };
        let mut handle = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file.path)?;
        handle.write_all(contents)?;
        handle.flush()?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateFile {
    fn drop(&mut self) {
        // Overwrite first: on a disk, unlinking alone leaves the bytes in free blocks.
        if let Ok(mut f) = OpenOptions::new().write(true).open(&self.path) {
            let _ = f.write_all(&vec![0u8; self.len]);
            let _ = f.sync_all();
        }
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn private_while_alive_and_gone_after() {
        let file = PrivateFile::create(b"{\"secret\":1}").unwrap();
        let path = file.path().to_path_buf();
        let dir = path.parent().unwrap().to_path_buf();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"secret\":1}");
        drop(file);
        assert!(!path.exists() && !dir.exists());
    }
}
