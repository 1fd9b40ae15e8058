//! `--metrics ADDR` of `creds sync --watch` and `run`: the port bound before anything
//! else starts, then `GET /metrics` served beside the command's work; what a sync pass
//! tells the metrics.

use std::net::SocketAddr;

use super::Member;
use crate::credentials::family;
use crate::credentials::login::Login;
use crate::metrics;

/// Binds `given` (a port means 127.0.0.1) and serves the process's metrics there;
/// `None` when no `--metrics` was given. A busy port is an error naming the address.
pub(crate) fn serve(given: Option<&str>) -> anyhow::Result<Option<SocketAddr>> {
    let Some(given) = given else {
        return Ok(None);
    };
    let server = metrics::Server::bind(metrics::parse_address(given)?)?;
    let addr = server.local_addr();
    server.serve(|| metrics::fleet().render())?;
    Ok(addr)
}

/// What a sync pass of `login_name` saw: a refresh when the refresh token in force
/// changed, the login's expiry, the project's containers.
pub(crate) fn record_login(login_name: &str, before: Option<&str>, login: &Login, all: &[Member]) {
    let m = metrics::fleet();
    m.login_seen(login_name);
    if before.is_some() && rotating_fingerprint(login).as_deref() != before {
        m.login_refreshed(login_name);
    }
    if let Some(at) = login.credentials().and_then(|c| c.summary.expires_at_ms) {
        m.login_expires(login_name, at);
    }
    m.set_containers(
        all.iter()
            .map(|c| (c.agent.as_str(), login_name, c.state.as_str())),
    );
}

/// A rotating login's refresh token, fingerprinted: a change is a refresh.
pub(crate) fn rotating_fingerprint(login: &Login) -> Option<String> {
    match login {
        Login::Rotating(c) => family::refresh_fingerprint(c),
        _ => None,
    }
}
