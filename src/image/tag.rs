//! Naming agent images after the CLI they hold: `claunch/claude:<version>`, with the
//! base image's name appended when claude is added on top of one.

/// The repository of the images claunch names itself.
pub const REPOSITORY: &str = "claunch/claude";

/// A Docker tag is at most 128 characters of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
const MAX_TAG: usize = 128;

/// The version in `claude --version`'s output (`2.1.332 (Claude Code)` → `2.1.332`),
/// made safe for a tag.
pub fn parse_version(output: &str) -> Option<String> {
    let word = output.split_whitespace().next()?;
    let word = word.strip_prefix('v').unwrap_or(word);
    if !word.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let version = sanitize(word);
    (!version.is_empty()).then_some(version)
}

/// The default tag: `claunch/claude:<version>`, or `claunch/claude:<version>-<base>`.
pub fn default_tag(version: &str, base: Option<&str>) -> String {
    let tag = match base {
        None => sanitize(version),
        Some(base) => format!("{}-{}", sanitize(version), base_name(base)),
    };
    let tag: String = tag.chars().take(MAX_TAG).collect();
    format!("{REPOSITORY}:{}", tag.trim_end_matches(['-', '.']))
}

/// A base image reference as a tag suffix: its last path component and its tag (or the
/// start of its digest), e.g. `registry:5000/team/worker:1.2` → `worker-1.2`.
pub fn base_name(base: &str) -> String {
    let (name, digest) = match base.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (base, None),
    };
    // A registry port (`host:5000/…`) is not a tag: only a colon after the last slash is.
    let last = name.rsplit('/').next().unwrap_or(name);
    let mut out = last.replace(':', "-");
    if let Some(d) = digest {
        let hex = d.split_once(':').map_or(d, |(_, h)| h);
        out.push('-');
        out.extend(hex.chars().take(12));
    }
    sanitize(&out)
}

/// Keeps `[A-Za-z0-9_.-]`, turning anything else into `-`, with no leading `.` or `-`.
fn sanitize(s: &str) -> String {
    let kept: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    kept.trim_start_matches(['.', '-']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_from_claude_version() {
        assert_eq!(
            parse_version("2.1.332 (Claude Code)\n").as_deref(),
            Some("2.1.332")
        );
        assert_eq!(
            parse_version("v1.0.0-beta+3\n").as_deref(),
            Some("1.0.0-beta-3")
        );
        assert_eq!(
            parse_version("0.0.0-standin (Claude Code)").as_deref(),
            Some("0.0.0-standin")
        );
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("Claude Code 2.1"), None);
    }

    #[test]
    fn default_tags_carry_the_version_and_the_base() {
        assert_eq!(default_tag("2.1.332", None), "claunch/claude:2.1.332");
        assert_eq!(
            default_tag("2.1.332", Some("my-worker:latest")),
            "claunch/claude:2.1.332-my-worker-latest"
        );
        assert_eq!(
            default_tag("2.1.332", Some("ubuntu")),
            "claunch/claude:2.1.332-ubuntu"
        );
        assert_eq!(
            default_tag("2.1.332", Some("registry.example.com:5000/team/worker:1.2")),
            "claunch/claude:2.1.332-worker-1.2"
        );
        assert_eq!(
            default_tag("2.1.332", Some("debian@sha256:0123456789abcdef0123")),
            "claunch/claude:2.1.332-debian-0123456789ab"
        );
        assert_eq!(
            default_tag("2.1.332", Some("sha256:4f1e")),
            "claunch/claude:2.1.332-sha256-4f1e"
        );
    }

    #[test]
    fn default_tags_stay_within_docker_limits() {
        let long = format!("{}:{}", "n".repeat(100), "t".repeat(100));
        let tag = default_tag("2.1.332", Some(&long));
        let (_, t) = tag.split_once(':').unwrap();
        assert_eq!(t.len(), 128);
        assert!(t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
    }
}
