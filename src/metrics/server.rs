//! The small HTTP server of `--metrics ADDR`: `GET /metrics` in the Prometheus text
//! exposition format, anything else 404. The port is bound before the command starts its
//! work, so a busy port is an error up front.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("--metrics {given}: not a port or an address:port\n  hint: `--metrics 9464` listens on 127.0.0.1:9464, `--metrics 0.0.0.0:9464` on every interface")]
    Address { given: String },
    #[error("--metrics {addr}: cannot listen there: {message}\n  hint: {hint}")]
    Bind {
        addr: SocketAddr,
        message: String,
        hint: &'static str,
    },
}

/// `PORT` means 127.0.0.1:PORT; otherwise an `ADDRESS:PORT` (`[::1]:9464` for IPv6).
pub fn parse_address(given: &str) -> Result<SocketAddr, MetricsError> {
    let given = given.trim();
    if let Ok(port) = given.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    given.parse().map_err(|_| MetricsError::Address {
        given: given.to_string(),
    })
}

/// A bound metrics port, serving once [`Server::serve`] is called.
pub struct Server {
    listener: std::net::TcpListener,
}

impl Server {
    /// Binds `addr` now.
    pub fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let bind_error = |e: std::io::Error| MetricsError::Bind {
            addr,
            message: e.to_string().to_lowercase(),
            hint: match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "another process listens on that port: stop it, or give --metrics another port"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "ports below 1024 need privileges: give --metrics a higher port"
                }
                _ => "give --metrics an address of this machine, e.g. 127.0.0.1:9464",
            },
        };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        Ok(Self { listener })
    }

    /// Where it listens (the port the system chose for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `render()` at `/metrics` on a task of its own, for as long as the process
    /// runs; needs a tokio runtime.
    pub fn serve(self, render: fn() -> String) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        Ok(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        std::future::ready(Ok::<_, Infallible>(answer(&req, render)))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }))
    }
}

fn answer(req: &Request<hyper::body::Incoming>, render: fn() -> String) -> Response<Full<Bytes>> {
    let response = if req.uri().path() == "/metrics" && req.method() == hyper::Method::GET {
        Response::builder()
            .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(Full::new(Bytes::from(render())))
    } else {
        Response::builder()
            .status(hyper::StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"only GET /metrics here\n")))
    };
    response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_alone_means_loopback() {
        assert_eq!(
            parse_address("9464").unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(
            parse_address("0.0.0.0:9464").unwrap(),
            "0.0.0.0:9464".parse().unwrap()
        );
        assert_eq!(
            parse_address("[::1]:9").unwrap(),
            "[::1]:9".parse().unwrap()
        );
        assert!(parse_address("nine").is_err());
    }

    #[test]
    fn a_busy_port_names_the_address() {
        let first = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let e = Server::bind(addr).err().unwrap().to_string();
        assert!(
            e.starts_with(&format!("--metrics {addr}: cannot listen there")),
            "{e}"
        );
        assert!(e.contains("another process listens"), "{e}");
    }
}
