//! `--metrics ADDR` of `creds sync --watch` and `run`: the port bound before anything
//! else starts, then `GET /metrics` served beside the command's work.

use std::net::SocketAddr;

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
