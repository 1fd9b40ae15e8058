//! Can a container reach the API its claude will call? Worked out from the container's own
//! environment (`ANTHROPIC_BASE_URL`, the proxy variables and `NO_PROXY`), then tried from
//! inside it: a name lookup and a TCP connect, a few seconds at most.

use std::time::Duration;

use super::Check;
use crate::engine::{self, Engine};

const CHECK: &str = "api reachable";
const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
const TIMEOUT: Duration = Duration::from_secs(15);

/// Where claude's requests go first: the API itself or a proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// `ANTHROPIC_BASE_URL` or the proxy variable that chose it, for messages.
    pub via: String,
}

fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        (
            host.to_string(),
            rest.strip_prefix(':').and_then(|p| p.parse().ok()),
        )
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (authority.to_string(), None),
        }
    };
    (!host.is_empty()).then(|| (host, port.unwrap_or(default)))
}

/// Where the container's claude connects first, from its environment (`KEY=value`).
pub fn target(env: &[String]) -> Option<Target> {
    let get = |key: &str| {
        env.iter()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
    };
    let (base, base_via) = get("ANTHROPIC_BASE_URL")
        .map_or((DEFAULT_BASE_URL, "the default API"), |u| {
            (u, "ANTHROPIC_BASE_URL")
        });
    let (host, port) = host_port(base)?;
    let https = base.starts_with("https://");
    let no_proxy = get("NO_PROXY")
        .or_else(|| get("no_proxy"))
        .unwrap_or_default();
    let bypass = no_proxy.split(',').map(str::trim).any(|n| {
        n == "*"
            || (!n.is_empty()
                && (host == n.trim_start_matches('.')
                    || host.ends_with(&format!(".{}", n.trim_start_matches('.')))))
    });
    let proxy_keys: &[&str] = if https {
        &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
    } else {
        &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
    };
    if !bypass {
        for key in proxy_keys {
            if let Some((phost, pport)) = get(key).and_then(host_port) {
                return Some(Target {
                    host: phost,
                    port: pport,
                    via: (*key).to_string(),
                });
            }
        }
    }
    Some(Target {
        host,
        port,
        via: base_via.to_string(),
    })
}

/// Tries `target` from inside the container: `nc` where the image has it (busybox does),
/// else bash's `/dev/tcp`. A connection still open after 4 s was made (`nc` gives up
/// connecting after 3). Prints one word the judge reads.
const PROBE: &str = r#"h="$1"; p="$2"
if command -v nc >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then
  err=$(timeout 4 nc -w 3 "$h" "$p" </dev/null 2>&1 >/dev/null); status=$?
  if [ "$status" = 0 ] || [ "$status" -ge 124 ]; then echo tcp-ok; exit 0; fi
  case "$err" in *"bad address"*|*"resolve"*|*"not known"*) echo dns-fail ;; *) echo tcp-fail ;; esac
elif command -v bash >/dev/null 2>&1; then
  err=$(bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$h" "$p" 2>&1) && { echo tcp-ok; exit 0; }
  case "$err" in *"not known"*|*"resolve"*) echo dns-fail ;; *) echo tcp-fail ;; esac
else
  echo no-tool
fi"#;

/// The reachability check of container `name`.
pub async fn check(name: &str, engine: &Engine, id: &str, env: &[String]) -> Check {
    let Some(t) = target(env) else {
        return Check::fail(
            name,
            CHECK,
            "ANTHROPIC_BASE_URL is not a URL claude can use",
            "set it to e.g. https://api.anthropic.com in the agent's env:",
        );
    };
    let argv = ["sh", "-c", PROBE, "sh", &t.host, &t.port.to_string()]
        .map(String::from)
        .to_vec();
    let said = engine::exec_streaming(engine, id, argv, None, Some(TIMEOUT), |_| {})
        .await
        .map(|f| (f.exit_code, f.tail));
    let at = format!("{}:{} ({})", t.host, t.port, t.via);
    match said {
        Ok((Some(_), tail)) => judge(name, &at, &t, tail.trim()),
        Ok((None, _)) => Check::fail(
            name,
            CHECK,
            format!("no answer from {at} within {}s", TIMEOUT.as_secs()),
            "check the container's network, a firewall, or HTTPS_PROXY",
        ),
        Err(e) => Check::warn(name, CHECK, format!("cannot be tried: {e}"), "claunch ps"),
    }
}

fn judge(name: &str, at: &str, t: &Target, word: &str) -> Check {
    // The shell may add its own lines (busybox says "Terminated" of what timeout ended).
    let word = word
        .lines()
        .map(str::trim)
        .rfind(|l| ["tcp-ok", "dns-fail", "tcp-fail", "no-tool"].contains(l))
        .unwrap_or_default();
    match word {
        "tcp-ok" => Check::ok(name, CHECK, format!("{at} answers")),
        "dns-fail" => Check::fail(
            name,
            CHECK,
            format!("{} cannot be resolved from the container: claude will retry for minutes, then fail", t.host),
            "give the container DNS that resolves it, an `extra_hosts:` entry in claunch.yaml, or point ANTHROPIC_BASE_URL / HTTPS_PROXY at a host it can reach",
        ),
        "tcp-fail" => Check::fail(
            name,
            CHECK,
            format!("nothing answers at {at} from the container: claude will retry for minutes, then fail"),
            "check the container's network and firewall, or set HTTPS_PROXY (and NO_PROXY) in the agent's env:",
        ),
        _ => Check::warn(
            name,
            CHECK,
            format!("cannot be tried: the image has neither nc nor bash to connect to {at}"),
            "claunch doctor --smoke tries a real prompt instead",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[&str]) -> Vec<String> {
        vars.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn the_target_follows_base_url_and_proxies_as_claude_would() {
        let t = target(&[]).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("api.anthropic.com", 443));
        let t = target(&env(&["ANTHROPIC_BASE_URL=http://standin:8080/v1"])).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.via.as_str()),
            ("standin", 8080, "ANTHROPIC_BASE_URL")
        );
        let t = target(&env(&["HTTPS_PROXY=http://user:pw@proxy.corp:3128"])).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.via.as_str()),
            ("proxy.corp", 3128, "HTTPS_PROXY")
        );
        let t = target(&env(&[
            "HTTPS_PROXY=http://proxy.corp:3128",
            "NO_PROXY=localhost,.anthropic.com",
        ]))
        .unwrap();
        assert_eq!(t.host, "api.anthropic.com");
        let t = target(&env(&["ANTHROPIC_BASE_URL=http://[::1]:9/"])).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9));
    }
}
