//! Choosing the project name: `-p` > `CLAUNCH_PROJECT` > `project:` > directory name.

use std::path::Path;

/// Where the chosen name came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Flag,
    Env,
    File,
    Dir,
}

/// A name that normalizes to nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Empty {
    pub origin: Origin,
    pub raw: String,
}

impl Empty {
    pub fn message(&self) -> String {
        let from = match self.origin {
            Origin::Flag => "from -p/--project-name",
            Origin::Env => "from CLAUNCH_PROJECT",
            Origin::File => "in the file",
            Origin::Dir => {
                return format!(
                    "the directory name {:?} gives an empty project name",
                    self.raw
                )
            }
        };
        format!(
            "project name {:?} {from} has no letter or digit to keep",
            self.raw
        )
    }

    pub fn hint(&self) -> String {
        if self.origin == Origin::Dir {
            "set `project:` in the file or pass -p NAME".to_owned()
        } else {
            "use lowercase letters, digits, `_` and `-`, starting with a letter or digit".to_owned()
        }
    }
}

/// Picks the first non-empty source and normalizes it.
pub(crate) fn resolve(
    flag: Option<&str>,
    env: Option<&str>,
    file: Option<&str>,
    dir: &Path,
) -> Result<(String, Origin), Empty> {
    let dir_name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (raw, origin) = [
        (flag, Origin::Flag),
        (env, Origin::Env),
        (file, Origin::File),
    ]
    .into_iter()
    .find_map(|(name, origin)| name.filter(|n| !n.trim().is_empty()).map(|n| (n, origin)))
    .unwrap_or((dir_name.as_str(), Origin::Dir));
    let name = normalize(raw);
    if name.is_empty() {
        return Err(Empty {
            origin,
            raw: raw.to_owned(),
        });
    }
    Ok((name, origin))
}

/// Docker compose's rule: lowercase, keep `[a-z0-9_-]`, start with a letter or digit.
pub(crate) fn normalize(name: &str) -> String {
    let kept: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_compose() {
        assert_eq!(normalize("My Project.v2"), "myprojectv2");
        assert_eq!(normalize("__-x_y-z"), "x_y-z");
        assert_eq!(normalize("Ünïcode"), "ncode");
        assert_eq!(normalize("..."), "");
    }

    #[test]
    fn precedence() {
        let dir = Path::new("/tmp/Some Dir");
        let all = resolve(Some("Flag"), Some("env"), Some("file"), dir);
        assert_eq!(all, Ok(("flag".into(), Origin::Flag)));
        let no_flag = resolve(None, Some("env"), Some("file"), dir);
        assert_eq!(no_flag, Ok(("env".into(), Origin::Env)));
        let blank_env = resolve(Some(""), Some(" "), Some("file"), dir);
        assert_eq!(blank_env, Ok(("file".into(), Origin::File)));
        assert_eq!(
            resolve(None, None, None, dir),
            Ok(("somedir".into(), Origin::Dir))
        );
    }

    #[test]
    fn empty_names_are_errors() {
        let err = resolve(None, None, None, Path::new("/tmp/___")).unwrap_err();
        assert_eq!(
            err.message(),
            "the directory name \"___\" gives an empty project name"
        );
        assert_eq!(err.hint(), "set `project:` in the file or pass -p NAME");
        let err = resolve(Some("!!"), None, None, Path::new("/tmp/x")).unwrap_err();
        assert_eq!(
            err.message(),
            "project name \"!!\" from -p/--project-name has no letter or digit to keep"
        );
    }
}
