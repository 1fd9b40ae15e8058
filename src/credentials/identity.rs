//! Who a container runs as: its uid, gid and HOME, and so where claude looks for its
//! credentials, worked out the way the engine and claude do from the image's `User`,
//! its `Env` and its `/etc/passwd` and `/etc/group`.

/// The user a container's processes run as, and where claude keeps its files for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    /// `$CLAUDE_CONFIG_DIR` when the container's env sets it, else `$HOME/.claude`.
    pub config_dir: String,
}

impl Identity {
    pub fn credentials_path(&self) -> String {
        join(&self.config_dir, ".credentials.json")
    }

    /// `~/.claude.json` (under `$CLAUDE_CONFIG_DIR` when that is set), where claude keeps
    /// its onboarding state.
    pub fn claude_json_path(&self) -> String {
        if self.config_dir == join(&self.home, ".claude") {
            join(&self.home, ".claude.json")
        } else {
            join(&self.config_dir, ".claude.json")
        }
    }

    /// `target` made absolute: relative targets are relative to HOME.
    pub fn resolve_target(&self, target: &str) -> String {
        if target.starts_with('/') {
            target.to_string()
        } else {
            join(&self.home, target)
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("user `{user}` is not in the image's /etc/passwd\n  hint: use a numeric uid (user: \"1000\") or add the user to the image")]
    UnknownUser { user: String },
    #[error("group `{group}` is not in the image's /etc/group\n  hint: use a numeric gid (user: \"name:1000\")")]
    UnknownGroup { group: String },
}

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        let _gecos = f.next()?;
        let home = f.next()?;
        Some(PasswdEntry {
            name,
            uid,
            gid,
            home,
        })
    })
}

fn group_gid(group_file: &str, name: &str) -> Option<u32> {
    group_file.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

/// Works out the identity for `user` (`name`, `uid`, `name:group`, `uid:gid`; empty or
/// `None` is root), given the container's environment (`KEY=VALUE`, later entries win)
/// and the image's `/etc/passwd` and `/etc/group` if it has them.
pub fn resolve(
    user: Option<&str>,
    env: &[String],
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<Identity, IdentityError> {
    let user = user.filter(|u| !u.is_empty()).unwrap_or("0");
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = passwd.unwrap_or("");
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|e| e.uid == uid),
        Err(_) => Some(
            passwd_entries(passwd)
                .find(|e| e.name == user_part)
                .ok_or_else(|| IdentityError::UnknownUser {
                    user: user_part.to_string(),
                })?,
        ),
    };
    let uid = entry
        .as_ref()
        .map_or_else(|| user_part.parse().unwrap_or(0), |e| e.uid);
    // Without a passwd entry the engine runs a numeric user with gid 0 and HOME=/.
    let mut gid = entry.as_ref().map_or(0, |e| e.gid);
    if let Some(g) = group_part {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                group_gid(group.unwrap_or(""), g).ok_or_else(|| IdentityError::UnknownGroup {
                    group: g.to_string(),
                })?
            }
        };
    }
    let env_value = |key: &str| {
        env.iter()
            .rev()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let home = env_value("HOME")
        .or_else(|| {
            entry
                .as_ref()
                .map(|e| e.home.to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "/".to_string());
    let config_dir = env_value("CLAUDE_CONFIG_DIR")
        .map_or_else(|| join(&home, ".claude"), |dir| absolute(&home, &dir));
    Ok(Identity {
        uid,
        gid,
        home,
        config_dir,
    })
}

fn absolute(home: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        join(home, path)
    }
}

/// Joins two container paths with exactly one slash.
pub fn join(dir: &str, name: &str) -> String {
    format!(
        "{}/{}",
        dir.trim_end_matches('/'),
        name.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000::/home/agent:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nagent:x:1000:\nstaff:x:50:agent\n";

    fn env(items: &[&str]) -> Vec<String> {
        items.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn no_user_is_root_with_roots_home() {
        let id = resolve(None, &[], Some(PASSWD), None).unwrap();
        assert_eq!((id.uid, id.gid, id.home.as_str()), (0, 0, "/root"));
        assert_eq!(id.credentials_path(), "/root/.claude/.credentials.json");
    }

    #[test]
    fn a_named_user_takes_uid_gid_and_home_from_passwd() {
        let id = resolve(Some("agent"), &[], Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(
            (id.uid, id.gid, id.home.as_str()),
            (1000, 1000, "/home/agent")
        );
        let id = resolve(Some("1000:staff"), &[], Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((id.uid, id.gid), (1000, 50));
    }

    #[test]
    fn a_numeric_user_without_an_entry_gets_gid_0_and_home_slash() {
        let id = resolve(Some("4242"), &[], Some(PASSWD), None).unwrap();
        assert_eq!((id.uid, id.gid, id.home.as_str()), (4242, 0, "/"));
        assert_eq!(id.credentials_path(), "/.claude/.credentials.json");
        let id = resolve(Some("4242:4242"), &[], None, None).unwrap();
        assert_eq!((id.uid, id.gid), (4242, 4242));
    }

    #[test]
    fn env_home_and_claude_config_dir_win() {
        let id = resolve(
            Some("agent"),
            &env(&["HOME=/data", "CLAUDE_CONFIG_DIR=/cfg/claude"]),
            Some(PASSWD),
            None,
        )
        .unwrap();
        assert_eq!(id.home, "/data");
        assert_eq!(id.credentials_path(), "/cfg/claude/.credentials.json");
        assert_eq!(
            id.resolve_target(".claude/mcp.json"),
            "/data/.claude/mcp.json"
        );
        assert_eq!(id.resolve_target("/etc/x"), "/etc/x");
    }

    #[test]
    fn unknown_names_are_errors_with_a_hint() {
        assert_eq!(
            resolve(Some("ghost"), &[], Some(PASSWD), None),
            Err(IdentityError::UnknownUser {
                user: "ghost".into()
            })
        );
        assert!(matches!(
            resolve(Some("agent:nogroup"), &[], Some(PASSWD), Some(GROUP)),
            Err(IdentityError::UnknownGroup { .. })
        ));
    }
}
