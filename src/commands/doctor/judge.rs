//! Judging what was found in a container, without the engine: `claude --version`'s exit,
//! mounts, root with `--dangerously-skip-permissions`, and the owner and mode of the
//! credentials file and its directory. Each returns the check to print.

use crate::engine::Mount;
use std::time::Duration;

use super::Check;
use crate::credentials::identity::{self, Identity};
use crate::engine::archive::{Kind, Meta};
use crate::smoke::{self, Verdict};

const SKIP_PERMISSIONS: &str = "--dangerously-skip-permissions";

/// `claude --version` as the container's user: exit 0 is runnable, 126/127 is missing.
pub fn claude(
    name: &str,
    run: Result<crate::engine::Finished, String>,
    timeout: Duration,
) -> Check {
    const CHECK: &str = "claude";
    let install = "install Claude Code in the image, or build one with `claunch image build`";
    let run = match run {
        Ok(r) => r,
        Err(e) => return Check::fail(name, CHECK, format!("could not be run: {e}"), "claunch ps"),
    };
    let last = |tail: &str| {
        let line = tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        line.trim().chars().take(160).collect::<String>()
    };
    match run.exit_code {
        Some(0) => {
            let first = run
                .tail
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("claude");
            let shown: String = first.trim().chars().take(80).collect();
            Check::ok(name, CHECK, format!("{shown} runs"))
        }
        Some(code) if smoke::classify(code, &run.tail) == Verdict::ClaudeMissing => Check::fail(
            name,
            CHECK,
            format!(
                "missing: `claude --version` exited {code} ({})",
                last(&run.tail)
            ),
            install,
        ),
        Some(code) => Check::fail(
            name,
            CHECK,
            format!(
                "does not run: `claude --version` exited {code} ({})",
                last(&run.tail)
            ),
            install,
        ),
        None => Check::fail(
            name,
            CHECK,
            format!(
                "does not run: `claude --version` gave no answer within {}s",
                timeout.as_secs()
            ),
            install,
        ),
    }
}

/// The guide's "OAuth token check but no output": the whole `~/.claude` mounted. And a
/// single mounted credentials file, which claude cannot replace when it refreshes.
pub fn mount_checks(name: &str, id: &Identity, mounts: &[Mount]) -> Vec<Check> {
    let home_claude = identity::join(&id.home, ".claude");
    let file = id.credentials_path();
    let mut out = Vec::new();
    for m in mounts {
        let dest = m.destination.trim_end_matches('/');
        let src = m.source.trim_end_matches('/');
        let on_config_dir = dest == id.config_dir || dest == home_claude;
        if src.ends_with("/.claude") || (on_config_dir && m.kind == "bind") {
            out.push(Check::fail(
                name,
                "mount",
                format!("{src} is mounted on {dest}: a whole ~/.claude, whose host paths and symlinks break in the container (\"OAuth token check\" but no output)"),
                "remove that volume from claunch.yaml, then claunch up: claunch delivers the credentials file itself",
            ));
        } else if on_config_dir {
            out.push(Check::warn(
                name,
                "mount",
                format!("a {} is mounted on the config dir {dest}: what it holds (an older login) outlives the container", m.kind),
                "remove it unless you mean to keep claude's state there",
            ));
        } else if dest == file || src.ends_with("/.credentials.json") {
            out.push(Check::fail(
                name,
                "mount",
                format!("{src} is mounted on {dest}: claude replaces the file (temp file and rename) when it refreshes, which a single mounted file breaks"),
                "remove that volume from claunch.yaml, then claunch up --force-recreate: claunch delivers the credentials file itself",
            ));
        }
    }
    out
}

/// Claude refuses `--dangerously-skip-permissions` as root unless `IS_SANDBOX=1`.
pub fn sandbox_check(name: &str, id: &Identity, argv: &[String], env: &[String]) -> Option<Check> {
    if id.uid != 0 || !argv.iter().any(|a| a.contains(SKIP_PERMISSIONS)) {
        return None;
    }
    let sandbox = env
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("IS_SANDBOX="))
        .is_some_and(|v| v == "1");
    Some(if sandbox {
        Check::ok(
            name,
            "sandbox",
            format!("root runs claude with {SKIP_PERMISSIONS} and IS_SANDBOX=1"),
        )
    } else {
        Check::fail(
            name,
            "sandbox",
            format!("root runs claude with {SKIP_PERMISSIONS} but without IS_SANDBOX=1: claude refuses to start"),
            "add IS_SANDBOX: \"1\" to the agent's env (or give it a non-root user:), then claunch up",
        )
    })
}

/// The credentials file: a regular file of the container's user, mode 0600.
pub fn file_check(name: &str, path: &str, meta: Meta, id: &Identity) -> Check {
    const CHECK: &str = "credentials file";
    let fix = "claunch up --force-recreate";
    let owner = format!("{}:{}", meta.uid, meta.gid);
    let expected = format!("{}:{}", id.uid, id.gid);
    if meta.kind != Kind::File {
        return Check::fail(
            name,
            CHECK,
            format!("{path} is a {}, not a regular file", kind(meta.kind)),
            fix,
        );
    }
    if meta.uid != id.uid {
        return Check::fail(
            name,
            CHECK,
            format!("owned by {owner}, expected {expected}"),
            fix,
        );
    }
    if meta.mode & 0o400 == 0 && id.uid != 0 {
        return Check::fail(
            name,
            CHECK,
            format!(
                "{path} is {:04o}: its owner cannot read it (\"Permission denied\")",
                meta.mode
            ),
            fix,
        );
    }
    if meta.gid != id.gid {
        return Check::warn(
            name,
            CHECK,
            format!("owned by {owner}, expected {expected}"),
            fix,
        );
    }
    if meta.mode != 0o600 {
        return Check::warn(
            name,
            CHECK,
            format!("{path} is {:04o}, expected 0600", meta.mode),
            fix,
        );
    }
    Check::ok(name, CHECK, format!("{path} exists, {owner} 0600"))
}

/// The config dir: claude writes a refreshed login there (temp file and rename), so it
/// must belong to, or at least be writable by, the container's user.
pub fn dir_check(name: &str, dir: &str, meta: Meta, id: &Identity) -> Check {
    const CHECK: &str = "config dir";
    let fix = "claunch up --force-recreate";
    let shown = format!(
        "{dir} owned by {}:{}, {:04o}",
        meta.uid, meta.gid, meta.mode
    );
    if meta.kind != Kind::Dir {
        return Check::fail(
            name,
            CHECK,
            format!("{dir} is a {}, not a directory", kind(meta.kind)),
            fix,
        );
    }
    // The owner, group and other bits for `bit` (4 read, 2 write, 1 enter).
    let may = |bit: u32| {
        id.uid == 0
            || (meta.uid == id.uid && meta.mode & (bit << 6) != 0)
            || (meta.gid == id.gid && meta.mode & (bit << 3) != 0)
            || meta.mode & bit != 0
    };
    if !may(1) {
        Check::fail(
            name,
            CHECK,
            format!("{shown}: uid {} cannot enter it, so claude cannot read the login (\"Permission denied\")", id.uid),
            fix,
        )
    } else if !may(2) {
        Check::fail(
            name,
            CHECK,
            format!("{shown}: uid {} cannot write there, so claude cannot save a refreshed login (\"Permission denied\")", id.uid),
            fix,
        )
    } else if meta.uid != id.uid && id.uid != 0 {
        Check::warn(
            name,
            CHECK,
            format!("{shown}: writable, but not owned by uid {}", id.uid),
            fix,
        )
    } else {
        Check::ok(name, CHECK, format!("{shown}: writable by uid {}", id.uid))
    }
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "directory",
        Kind::Symlink => "symlink",
        Kind::Other => "special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::doctor::Status;

    fn agent() -> Identity {
        Identity {
            uid: 1000,
            gid: 1000,
            home: "/home/agent".into(),
            config_dir: "/home/agent/.claude".into(),
        }
    }

    fn root() -> Identity {
        Identity {
            uid: 0,
            gid: 0,
            home: "/root".into(),
            config_dir: "/root/.claude".into(),
        }
    }

    fn meta(kind: Kind, uid: u32, gid: u32, mode: u32) -> Meta {
        Meta {
            kind,
            uid,
            gid,
            mode,
        }
    }

    fn mount(kind: &str, source: &str, destination: &str) -> Mount {
        Mount {
            kind: kind.into(),
            source: source.into(),
            destination: destination.into(),
        }
    }

    #[test]
    fn a_whole_claude_dir_mounted_is_the_guides_first_trouble() {
        let id = root();
        let found = mount_checks(
            "c",
            &id,
            &[
                mount("bind", "/home/me/.claude", "/root/.claude"),
                mount("bind", "/home/me/.claude/", "/data/claude"),
                mount("volume", "/var/lib/docker/volumes/x/_data", "/root/.claude"),
                mount("bind", "/srv/creds.json", "/root/.claude/.credentials.json"),
                mount("bind", "/srv/work", "/work"),
            ],
        );
        let statuses: Vec<Status> = found.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses,
            [Status::Fail, Status::Fail, Status::Warn, Status::Fail]
        );
        assert!(found[0]
            .message
            .contains("\"OAuth token check\" but no output"));
        assert!(found[3].message.contains("temp file and rename"));
    }

    #[test]
    fn root_with_skip_permissions_needs_is_sandbox() {
        let argv: Vec<String> = ["/bin/sh", "-c", "idle", "x", SKIP_PERMISSIONS]
            .map(String::from)
            .to_vec();
        let c = sandbox_check("c", &root(), &argv, &[]).unwrap();
        assert_eq!(c.status, Status::Fail);
        let ok = sandbox_check("c", &root(), &argv, &["IS_SANDBOX=1".into()]).unwrap();
        assert_eq!(ok.status, Status::Ok);
        assert!(sandbox_check("c", &agent(), &argv, &[]).is_none());
        assert!(sandbox_check("c", &root(), &["claude".into()], &[]).is_none());
    }

    #[test]
    fn the_file_must_be_the_users_and_private() {
        let p = "/home/agent/.claude/.credentials.json";
        let id = agent();
        let c = file_check("c", p, meta(Kind::File, 1000, 1000, 0o600), &id);
        assert_eq!(
            (c.status, c.message.as_str()),
            (
                Status::Ok,
                "/home/agent/.claude/.credentials.json exists, 1000:1000 0600"
            )
        );
        let c = file_check("c", p, meta(Kind::File, 0, 0, 0o600), &id);
        assert_eq!(
            (c.status, c.message.as_str()),
            (Status::Fail, "owned by 0:0, expected 1000:1000")
        );
        assert_eq!(c.fix.as_deref(), Some("claunch up --force-recreate"));
        assert_eq!(
            file_check("c", p, meta(Kind::File, 1000, 1000, 0o200), &id).status,
            Status::Fail
        );
        assert_eq!(
            file_check("c", p, meta(Kind::File, 1000, 1000, 0o644), &id).status,
            Status::Warn
        );
        assert_eq!(
            file_check("c", p, meta(Kind::Symlink, 1000, 1000, 0o777), &id).status,
            Status::Fail
        );
    }

    #[test]
    fn the_config_dir_must_be_writable_by_the_user() {
        let d = "/home/agent/.claude";
        let id = agent();
        assert_eq!(
            dir_check("c", d, meta(Kind::Dir, 1000, 1000, 0o700), &id).status,
            Status::Ok
        );
        let c = dir_check("c", d, meta(Kind::Dir, 0, 0, 0o700), &id);
        assert!(c.message.contains("cannot enter it"), "{}", c.message);
        let c = dir_check("c", d, meta(Kind::Dir, 0, 0, 0o755), &id);
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.message
                .starts_with("/home/agent/.claude owned by 0:0, 0755: uid 1000 cannot write"),
            "{}",
            c.message
        );
        assert_eq!(
            dir_check("c", d, meta(Kind::Dir, 0, 1000, 0o775), &id).status,
            Status::Warn
        );
        assert_eq!(
            dir_check("c", "/root/.claude", meta(Kind::Dir, 0, 0, 0o755), &root()).status,
            Status::Ok
        );
    }

    #[test]
    fn claude_missing_is_told_from_claude_broken() {
        let fin = |code, tail: &str| {
            Ok(crate::engine::Finished {
                exit_code: Some(code),
                tail: tail.into(),
            })
        };
        let c = claude(
            "c",
            fin(0, "2.1.332 (Claude Code)\n"),
            Duration::from_secs(30),
        );
        assert_eq!(
            (c.status, c.message.as_str()),
            (Status::Ok, "2.1.332 (Claude Code) runs")
        );
        let c = claude(
            "c",
            fin(127, "exec: \"claude\": executable file not found in $PATH"),
            Duration::from_secs(30),
        );
        assert!(
            c.message
                .starts_with("missing: `claude --version` exited 127"),
            "{}",
            c.message
        );
        let c = claude("c", fin(3, "boom"), Duration::from_secs(30));
        assert!(c.message.starts_with("does not run"), "{}", c.message);
    }
}
