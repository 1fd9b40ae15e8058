//! Tests of `load` as a whole, on real files in temporary directories.
//!
//! The environment is always a closure: tests run in parallel and must not
//! touch the process environment.

mod credentials;
mod errors;
mod interpolation;
mod loading;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{load, ConfigError, LoadOptions, Loaded};

/// A config directory named `research` (the default project name) inside a
/// temporary directory.
pub(super) struct Fixture {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
    pub project_flag: Option<String>,
}

impl Fixture {
    pub fn new(yaml: &str) -> Self {
        Self::in_dir("research", yaml)
    }

    pub fn in_dir(name: &str, yaml: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(name);
        fs::create_dir(&dir).unwrap();
        let fixture = Self {
            _tmp: tmp,
            dir,
            env: HashMap::from([("HOME".to_owned(), "/home/me".to_owned())]),
            project_flag: None,
        };
        fixture.write("claunch.yaml", yaml);
        fixture
    }

    pub fn write(&self, name: &str, text: &str) {
        fs::write(self.dir.join(name), text).unwrap();
    }

    pub fn with_env(mut self, pairs: &[(&str, &str)]) -> Self {
        for (key, value) in pairs {
            self.env.insert((*key).to_owned(), (*value).to_owned());
        }
        self
    }

    pub fn without_env(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join("claunch.yaml")
    }

    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let opts = LoadOptions {
            file: Some(self.file()),
            project_name: self.project_flag.clone(),
        };
        load(&opts, &|key| self.env.get(key).cloned())
    }

    pub fn ok(&self) -> Loaded {
        match self.load() {
            Ok(loaded) => loaded,
            Err(err) => panic!("unexpected error: {err}"),
        }
    }

    /// The rendered error, with the fixture's directory cut out so that the
    /// expected text reads `claunch.yaml:LINE:COL: ...`.
    pub fn err(&self) -> String {
        match self.load() {
            Ok(loaded) => panic!("expected an error, got {loaded:?}"),
            Err(err) => strip(&err.to_string(), &self.dir),
        }
    }
}

pub(super) fn strip(text: &str, dir: &Path) -> String {
    text.replace(&format!("{}/", dir.display()), "")
}

/// The agent part of a config with one agent named `a`.
pub(super) fn one_agent(body: &str) -> String {
    format!("agents:\n  a:\n    image: img\n{body}")
}
