//! A local HTTPS stand-in for Anthropic's OAuth token endpoint
//! (`https://platform.claude.com/v1/oauth/token`), good enough for the real `claude` CLI
//! to refresh an expired subscription login against it.
//!
//! ```text
//! cargo run --example oauth_standin -- --listen 172.18.0.1:443 --ca-out /tmp/ca.pem \
//!     --state /tmp/oauth-state.json [--record /tmp/oauth.jsonl] [--access-ttl 28800] \
//!     [--omit-field NAME]...
//! ```
//!
//! At startup it generates a fresh CA and a leaf certificate for `platform.claude.com`,
//! `console.anthropic.com`, `api.anthropic.com` and `claude.ai`, writes the CA certificate
//! (PEM) to `--ca-out`, binds, and prints exactly one line, `listening on <ip>:<port>`, on
//! stdout. It serves TLS only, until SIGINT or SIGTERM (exit 0). A container reaches it
//! with `extra_hosts: ["platform.claude.com:<ip>"]` plus the CA file and
//! `NODE_EXTRA_CA_CERTS=<path of the CA file>`.
//!
//! # State
//!
//! `--state` names a JSON file read once at startup (missing = empty) and rewritten
//! atomically (temp file + rename) after every request, before the response is sent:
//!
//! ```json
//! {"valid_refresh_tokens": ["sk-ant-ort01-…"],
//!  "used_refresh_tokens":  ["sk-ant-ort01-…"],
//!  "issued": [{"unix_ms": 1, "from_refresh_fingerprint": "…", "access_fingerprint": "…",
//!              "refresh_fingerprint": "…", "access_token": "sk-ant-oat01-…",
//!              "refresh_token": "sk-ant-ort01-…", "expires_in": 28800,
//!              "expires_at_ms": 28800001}]}
//! ```
//!
//! Tests seed `valid_refresh_tokens`; other top-level keys are kept as they are. The last
//! `issued` entry holds the newest tokens. These are fake tokens: the state file holds
//! them in the clear on purpose; the record file never does.
//!
//! # Endpoints
//!
//! - `POST /v1/oauth/token` (JSON, as the CLI sends it, or form-encoded), grant
//!   `refresh_token`. Every refresh token is single-use: a valid one gets 200 with a new
//!   random `sk-ant-oat01-…` access token and a new `sk-ant-ort01-…` refresh token, and
//!   is itself used up. A used or unknown one gets 400
//!   `{"error":"invalid_grant","error_description":"Refresh token not found or invalid"}`.
//!   Another grant type gets 400 `unsupported_grant_type`; a missing parameter or an
//!   unreadable body gets 400 `invalid_request`.
//! - `POST /v1/oauth/token/revoke`: uses up a valid refresh token; 200 `{}`.
//! - `GET /api/oauth/profile`, `GET /api/oauth/claude_cli/roles` and `GET /v1/mcp_servers`
//!   (hosts `api.anthropic.com`), with any bearer token: a plausible profile (a Max
//!   subscription), roles, and an empty connector list. Without a bearer token: 401.
//! - Anything else: 404.
//!
//! `--omit-field NAME` drops a top-level field from successful token responses, to see
//! which ones the CLI needs.
//!
//! # Record
//!
//! `--record` appends one JSON line per request: `unix_ms`, `method`, `path`, `status`,
//! `grant_type`, `client_id`, `scope`, `refresh_fingerprint` (of the presented refresh
//! token), `outcome` (`issued`, `invalid_grant`, `unsupported_grant_type`,
//! `invalid_request`, `revoked`, `served`, `unauthorized`, `not_found`), `reason`
//! (`reused` or `unknown` for `invalid_grant`), and for `issued` the new tokens'
//! `issued_access_fingerprint` and `issued_refresh_fingerprint`. A fingerprint is the
//! first 16 hex digits of the token's SHA-256, see [`fingerprint`].
//!
//! The request handling is one plain function, [`handle`], over a request with a complete
//! body and the [`State`]; the server around it only moves bytes.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher as _, Hasher as _};
use std::io::{Read as _, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use tokio_rustls::rustls;

/// The scopes the CLI asks for when it refreshes (Claude Code 2.1.332).
pub const DEFAULT_SCOPE: &str = "user:profile user:inference user:sessions:claude_code \
     user:mcp_servers user:file_upload user:plugins";
const INVALID_GRANT_DESCRIPTION: &str = "Refresh token not found or invalid";
const HOSTS: [&str; 4] = [
    "platform.claude.com",
    "console.anthropic.com",
    "api.anthropic.com",
    "claude.ai",
];
const ACCOUNT_UUID: &str = "0c1a0000-5a4d-4b1e-8000-00000000acc0";
const ORGANIZATION_UUID: &str = "0c1a0000-5a4d-4b1e-8000-00000000046a";
const ACCOUNT_EMAIL: &str = "agent@claunch-standin.invalid";
const ORGANIZATION_NAME: &str = "claunch stand-in";

#[derive(Debug, Parser)]
#[command(about = "A local HTTPS stand-in for Anthropic's OAuth token endpoint")]
struct Args {
    /// Address to listen on (TLS); port 0 picks a free port.
    #[arg(long, default_value = "0.0.0.0:443")]
    listen: SocketAddr,
    /// Write the generated CA certificate (PEM) here.
    #[arg(long, value_name = "PATH")]
    ca_out: Option<PathBuf>,
    /// JSON state file: seeds read at startup, rewritten after every request.
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// Append one JSON line per request to this file.
    #[arg(long, value_name = "PATH")]
    record: Option<PathBuf>,
    /// `expires_in` of issued access tokens, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 28_800)]
    access_ttl: u64,
    /// Leave this top-level field out of successful token responses (repeatable).
    #[arg(long = "omit-field", value_name = "NAME")]
    omit_fields: Vec<String>,
}

/// What the stand-in remembers; also the state file's format.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct State {
    /// Refresh tokens that one refresh may still use.
    #[serde(default)]
    pub valid_refresh_tokens: Vec<String>,
    /// Refresh tokens already used (or revoked): `invalid_grant` from now on.
    #[serde(default)]
    pub used_refresh_tokens: Vec<String>,
    /// Every successful refresh, oldest first.
    #[serde(default)]
    pub issued: Vec<Issued>,
    /// Any other top-level keys of the file, kept as they are.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One successful refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    pub unix_ms: u64,
    /// Fingerprint of the refresh token that was used up.
    pub from_refresh_fingerprint: String,
    pub access_fingerprint: String,
    pub refresh_fingerprint: String,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub expires_at_ms: u64,
}

/// What [`handle`] needs to know besides the request and the state.
#[derive(Debug)]
pub struct Config {
    pub access_ttl: u64,
    pub omit_fields: Vec<String>,
    /// Numbers the `request-id` headers.
    pub counter: AtomicU64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            access_ttl: 28_800,
            omit_fields: Vec::new(),
            counter: AtomicU64::new(0),
        }
    }
}

/// The first 16 hex digits of the token's SHA-256: what the record shows of a token.
pub fn fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(16);
    for byte in &digest[..8] {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Answers one request whose body has been read in full, updating `state`; also returns
/// the request's record line.
pub fn handle(
    req: &Request<Bytes>,
    state: &mut State,
    config: &Config,
) -> (Response<Bytes>, Value) {
    let n = config.counter.fetch_add(1, Ordering::Relaxed) + 1;
    let now = now_ms();
    let mut record = json!({
        "unix_ms": now,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map_or("/", |p| p.as_str()),
    });
    let mut response = route(req, state, config, now, &mut record);
    record["status"] = json!(response.status().as_u16());
    let request_id = format!("req_standin{n:08}{}", &random_token("")[..16]);
    response.headers_mut().insert(
        "request-id",
        request_id.parse().expect("ascii header value"),
    );
    (response, record)
}

fn route(
    req: &Request<Bytes>,
    state: &mut State,
    config: &Config,
    now: u64,
    record: &mut Value,
) -> Response<Bytes> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/oauth/token") => token(req, state, config, now, record),
        (&Method::POST, "/v1/oauth/token/revoke") => revoke(req, state, record),
        (&Method::GET, "/api/oauth/profile") => bearer_only(req, record, profile_json),
        // claude.ai MCP connectors, fetched when the token has `user:mcp_servers`.
        (&Method::GET, "/v1/mcp_servers") => {
            bearer_only(req, record, || json!({"data": [], "next_page": null}))
        }
        (&Method::GET, "/api/oauth/claude_cli/roles") => bearer_only(req, record, || {
            json!({
                "organization_role": "admin",
                "workspace_role": null,
                "organization_name": ORGANIZATION_NAME,
            })
        }),
        _ => {
            record["outcome"] = json!("not_found");
            json_response(
                StatusCode::NOT_FOUND,
                &json!({"type": "error", "error": {"type": "not_found_error",
                    "message": format!("Not found: {} {}", req.method(), req.uri().path())}}),
            )
        }
    }
}

fn token(
    req: &Request<Bytes>,
    state: &mut State,
    config: &Config,
    now: u64,
    record: &mut Value,
) -> Response<Bytes> {
    let Some(params) = parse_params(req) else {
        return oauth_error(record, "invalid_request", "Invalid request body", None);
    };
    let param = |name: &str| params.get(name).and_then(Value::as_str).map(str::to_owned);
    let grant_type = param("grant_type");
    let scope = param("scope");
    record["grant_type"] = json!(grant_type);
    record["client_id"] = json!(param("client_id"));
    record["scope"] = json!(scope);
    match grant_type.as_deref() {
        None | Some("") => {
            return oauth_error(record, "invalid_request", "grant_type is required", None)
        }
        Some("refresh_token") => {}
        Some(other) => {
            return oauth_error(
                record,
                "unsupported_grant_type",
                &format!("Unsupported grant type: {other}"),
                None,
            )
        }
    }
    let Some(presented) = param("refresh_token").filter(|t| !t.is_empty()) else {
        return oauth_error(record, "invalid_request", "refresh_token is required", None);
    };
    let presented_fingerprint = fingerprint(&presented);
    record["refresh_fingerprint"] = json!(presented_fingerprint);
    let Some(index) = state
        .valid_refresh_tokens
        .iter()
        .position(|t| *t == presented)
    else {
        let reason = if state.used_refresh_tokens.contains(&presented) {
            "reused"
        } else {
            "unknown"
        };
        return oauth_error(
            record,
            "invalid_grant",
            INVALID_GRANT_DESCRIPTION,
            Some(reason),
        );
    };
    state.valid_refresh_tokens.remove(index);
    state.used_refresh_tokens.push(presented);
    let access_token = random_token("sk-ant-oat01-");
    let refresh_token = random_token("sk-ant-ort01-");
    state.valid_refresh_tokens.push(refresh_token.clone());
    let issued = Issued {
        unix_ms: now,
        from_refresh_fingerprint: presented_fingerprint,
        access_fingerprint: fingerprint(&access_token),
        refresh_fingerprint: fingerprint(&refresh_token),
        access_token,
        refresh_token,
        expires_in: config.access_ttl,
        expires_at_ms: now.saturating_add(config.access_ttl.saturating_mul(1000)),
    };
    record["outcome"] = json!("issued");
    record["issued_access_fingerprint"] = json!(issued.access_fingerprint);
    record["issued_refresh_fingerprint"] = json!(issued.refresh_fingerprint);
    let mut body = json!({
        "token_type": "Bearer",
        "access_token": issued.access_token,
        "expires_in": issued.expires_in,
        "refresh_token": issued.refresh_token,
        "scope": scope.filter(|s| !s.trim().is_empty()).unwrap_or_else(|| DEFAULT_SCOPE.to_owned()),
        "organization": {"uuid": ORGANIZATION_UUID, "name": ORGANIZATION_NAME},
        "account": {"uuid": ACCOUNT_UUID, "email_address": ACCOUNT_EMAIL},
    });
    if let Value::Object(fields) = &mut body {
        for name in &config.omit_fields {
            fields.remove(name);
        }
    }
    state.issued.push(issued);
    json_response(StatusCode::OK, &body)
}

fn revoke(req: &Request<Bytes>, state: &mut State, record: &mut Value) -> Response<Bytes> {
    let Some(token) = parse_params(req)
        .and_then(|p| p.get("token").and_then(Value::as_str).map(str::to_owned))
        .filter(|t| !t.is_empty())
    else {
        return oauth_error(record, "invalid_request", "token is required", None);
    };
    record["refresh_fingerprint"] = json!(fingerprint(&token));
    if let Some(index) = state.valid_refresh_tokens.iter().position(|t| *t == token) {
        state.valid_refresh_tokens.remove(index);
        state.used_refresh_tokens.push(token);
    }
    record["outcome"] = json!("revoked");
    json_response(StatusCode::OK, &json!({}))
}

/// 200 with `body()` for any bearer token, Anthropic's 401 without one.
fn bearer_only(
    req: &Request<Bytes>,
    record: &mut Value,
    body: impl FnOnce() -> Value,
) -> Response<Bytes> {
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match bearer {
        Some(token) => {
            record["access_fingerprint"] = json!(fingerprint(token));
            record["outcome"] = json!("served");
            json_response(StatusCode::OK, &body())
        }
        None => {
            record["outcome"] = json!("unauthorized");
            json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"type": "error", "error": {"type": "authentication_error",
                    "message": "OAuth authentication is currently not supported."}}),
            )
        }
    }
}

/// A Max subscription's profile, in the shape the CLI validates
/// (`account.uuid`, `account.email`, `organization.uuid`).
fn profile_json() -> Value {
    json!({
        "account": {
            "uuid": ACCOUNT_UUID,
            "email": ACCOUNT_EMAIL,
            "full_name": "Stand-in Agent",
            "display_name": "Agent",
            "has_claude_max": true,
            "has_claude_pro": false,
            "created_at": "2025-01-01T00:00:00.000000Z",
        },
        "organization": {
            "uuid": ORGANIZATION_UUID,
            "name": ORGANIZATION_NAME,
            "organization_type": "claude_max",
            "billing_type": "stripe_subscription",
            "rate_limit_tier": "default_claude_max_20x",
            "has_extra_usage_enabled": false,
            "subscription_created_at": "2025-01-01T00:00:00.000000Z",
            "cc_onboarding_flags": {},
        },
    })
}

/// The body's parameters: a JSON object, or `application/x-www-form-urlencoded`.
fn parse_params(req: &Request<Bytes>) -> Option<Map<String, Value>> {
    let body = req.body();
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            return Some(map);
        }
        if body.trim_ascii_start().starts_with(b"{") {
            return None;
        }
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut map = Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        map.insert(percent_decode(name)?, Value::String(percent_decode(value)?));
    }
    Some(map)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// An OAuth error body (RFC 6749 §5.2), 400.
fn oauth_error(
    record: &mut Value,
    error: &str,
    description: &str,
    reason: Option<&str>,
) -> Response<Bytes> {
    record["outcome"] = json!(error);
    if let Some(reason) = reason {
        record["reason"] = json!(reason);
    }
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": error, "error_description": description}),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response<Bytes> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header("cache-control", "no-store")
        .body(Bytes::from(body.to_string()))
        .expect("valid response")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `prefix` + 86 random base64url characters (64 random bytes) + `AA`, the shape of
/// Anthropic's tokens.
fn random_token(prefix: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = random_bytes();
    let mut out = String::with_capacity(prefix.len() + 88);
    out.push_str(prefix);
    let mut acc = 0u32;
    let mut bits = 0;
    for byte in bytes {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 63) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 63) as usize]));
    }
    out.push_str("AA");
    out
}

/// 64 bytes from `/dev/urandom`, or, failing that, from hashing the process's random
/// hasher keys, the clock and a counter.
fn random_bytes() -> [u8; 64] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = [0u8; 64];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .is_ok()
    {
        return out;
    }
    for half in out.chunks_mut(32) {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut digest = Sha256::new();
        digest.update(hasher.finish().to_le_bytes());
        digest.update(now_ms().to_le_bytes());
        digest.update(std::process::id().to_le_bytes());
        half.copy_from_slice(&digest.finalize());
    }
    out
}

/// Writes `contents` to `path` through a temp file in the same directory and a rename.
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = std::fs::write(&tmp, contents).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn save_state(path: &Path, state: &State) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(state).map_err(std::io::Error::other)?;
    text.push('\n');
    write_atomically(path, text.as_bytes())
}

fn load_state(path: &Path) -> std::io::Result<State> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(State::default()),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(e),
    }
}

/// A fresh CA and a leaf for [`HOSTS`] signed by it: (CA PEM, leaf chain, leaf key).
fn certificates() -> Result<
    (
        String,
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    rcgen::Error,
> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    // Valid from the start of last year to the start of the year after next.
    let year = i32::try_from(1970 + now_ms() / 31_556_952_000).unwrap_or(2026);
    let not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    let not_after = rcgen::date_time_ymd(year + 2, 1, 1);

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "claunch oauth stand-in CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf_params =
        CertificateParams::new(HOSTS.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, HOSTS[0]);
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.not_before = not_before;
    leaf_params.not_after = not_after;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer)?;

    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        leaf_key.serialize_der(),
    ));
    Ok((
        ca_cert.pem(),
        vec![leaf_cert.der().clone(), ca_cert.der().clone()],
        key,
    ))
}

struct Shared {
    config: Config,
    state: Mutex<State>,
    state_path: Option<PathBuf>,
    record: Option<Mutex<File>>,
}

async fn serve(
    req: Request<hyper::body::Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, body.collect().await?.to_bytes());
    let response = {
        let mut state = shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (response, record) = handle(&req, &mut state, &shared.config);
        if let Some(path) = &shared.state_path {
            if let Err(e) = save_state(path, &state) {
                eprintln!("oauth_standin: cannot write the state file: {e}");
            }
        }
        if let Some(file) = &shared.record {
            let mut file = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(e) = writeln!(file, "{record}").and_then(|()| file.flush()) {
                eprintln!("oauth_standin: cannot write the record file: {e}");
            }
        }
        eprintln!(
            "oauth_standin: {} {} -> {} {}",
            req.method(),
            req.uri().path(),
            response.status().as_u16(),
            record["outcome"].as_str().unwrap_or("")
        );
        response
    };
    Ok(response.map(Full::new))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let state = match &args.state {
        Some(path) => {
            let state = load_state(path)?;
            save_state(path, &state)?;
            state
        }
        None => State::default(),
    };
    let record = match &args.record {
        Some(path) => Some(Mutex::new(
            OpenOptions::new().create(true).append(true).open(path)?,
        )),
        None => None,
    };
    let (ca_pem, chain, key) = certificates()?;
    if let Some(path) = &args.ca_out {
        write_atomically(path, ca_pem.as_bytes())?;
    }
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let shared = Arc::new(Shared {
        config: Config {
            access_ttl: args.access_ttl,
            omit_fields: args.omit_fields,
            counter: AtomicU64::new(0),
        },
        state: Mutex::new(state),
        state_path: args.state,
        record,
    });
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", listener.local_addr()?)?;
        stdout.flush()?;
    }
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("oauth_standin: accept failed: {e}");
                    continue;
                }
            },
        };
        let shared = Arc::clone(&shared);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(e) => {
                    eprintln!("oauth_standin: TLS handshake with {peer} failed: {e}");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| serve(req, Arc::clone(&shared)));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                eprintln!("oauth_standin: connection error: {e}");
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refresh(token: &str) -> Request<Bytes> {
        post(
            &json!({"grant_type": "refresh_token", "refresh_token": token,
            "client_id": "9d1c250a-e61b-44d9-88ed-5944d1962f5e", "scope": DEFAULT_SCOPE}),
        )
    }

    fn post(body: &Value) -> Request<Bytes> {
        Request::post("/v1/oauth/token")
            .header(CONTENT_TYPE, "application/json")
            .body(Bytes::from(body.to_string()))
            .unwrap()
    }

    fn body_json(resp: &Response<Bytes>) -> Value {
        serde_json::from_slice(resp.body()).unwrap()
    }

    fn seeded(token: &str) -> State {
        State {
            valid_refresh_tokens: vec![token.to_owned()],
            ..State::default()
        }
    }

    #[test]
    fn refresh_tokens_are_single_use() {
        let config = Config::default();
        let mut state = seeded("sk-ant-ort01-seed");
        let (resp, record) = handle(&refresh("sk-ant-ort01-seed"), &mut state, &config);
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers()["request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_"));
        let body = body_json(&resp);
        let access = body["access_token"].as_str().unwrap();
        let refresh_token = body["refresh_token"].as_str().unwrap();
        assert!(access.starts_with("sk-ant-oat01-") && access.len() > 90);
        assert!(refresh_token.starts_with("sk-ant-ort01-") && refresh_token.len() > 90);
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 28_800);
        assert_eq!(body["scope"], DEFAULT_SCOPE);
        assert_eq!(state.valid_refresh_tokens, vec![refresh_token.to_owned()]);
        assert_eq!(
            state.used_refresh_tokens,
            vec!["sk-ant-ort01-seed".to_owned()]
        );
        assert_eq!(state.issued.len(), 1);
        assert_eq!(state.issued[0].access_token, access);
        assert_eq!(record["outcome"], "issued");
        assert_eq!(record["grant_type"], "refresh_token");
        assert_eq!(
            record["refresh_fingerprint"],
            fingerprint("sk-ant-ort01-seed")
        );
        assert_eq!(record["issued_access_fingerprint"], fingerprint(access));
        assert!(
            !record.to_string().contains("sk-ant-"),
            "record leaks a token"
        );

        // The new one works once too, and chains.
        let (resp, _) = handle(&refresh(refresh_token), &mut state, &config);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(state.issued.len(), 2);
        assert_eq!(state.used_refresh_tokens.len(), 2);
        assert_eq!(state.valid_refresh_tokens.len(), 1);
    }

    #[test]
    fn reused_token_is_invalid_grant() {
        let config = Config::default();
        let mut state = seeded("sk-ant-ort01-seed");
        handle(&refresh("sk-ant-ort01-seed"), &mut state, &config);
        let before = state.clone();
        let (resp, record) = handle(&refresh("sk-ant-ort01-seed"), &mut state, &config);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_json(&resp),
            json!({"error": "invalid_grant", "error_description": "Refresh token not found or invalid"})
        );
        assert_eq!(record["outcome"], "invalid_grant");
        assert_eq!(record["reason"], "reused");
        assert_eq!(state.valid_refresh_tokens, before.valid_refresh_tokens);
        assert_eq!(state.issued, before.issued);
    }

    #[test]
    fn unknown_token_is_invalid_grant() {
        let config = Config::default();
        let mut state = seeded("sk-ant-ort01-seed");
        let (resp, record) = handle(&refresh("sk-ant-ort01-other"), &mut state, &config);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body_json(&resp)["error"], "invalid_grant");
        assert_eq!(record["reason"], "unknown");
        assert_eq!(
            state.valid_refresh_tokens,
            vec!["sk-ant-ort01-seed".to_owned()]
        );
    }

    #[test]
    fn bad_grant_type_and_bad_requests() {
        let config = Config::default();
        let mut state = seeded("sk-ant-ort01-seed");
        let (resp, record) = handle(
            &post(&json!({"grant_type": "password", "refresh_token": "sk-ant-ort01-seed"})),
            &mut state,
            &config,
        );
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body_json(&resp)["error"], "unsupported_grant_type");
        assert_eq!(record["outcome"], "unsupported_grant_type");
        for body in [
            json!({"refresh_token": "x"}),
            json!({"grant_type": "refresh_token"}),
        ] {
            let (resp, _) = handle(&post(&body), &mut state, &config);
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            assert_eq!(body_json(&resp)["error"], "invalid_request");
        }
        let bad_json = Request::post("/v1/oauth/token")
            .header(CONTENT_TYPE, "application/json")
            .body(Bytes::from_static(b"{not json"))
            .unwrap();
        assert_eq!(
            body_json(&handle(&bad_json, &mut state, &config).0)["error"],
            "invalid_request"
        );
        assert_eq!(
            state.valid_refresh_tokens,
            vec!["sk-ant-ort01-seed".to_owned()]
        );
        assert!(state.issued.is_empty());
    }

    #[test]
    fn form_encoded_refresh_works() {
        let config = Config::default();
        let mut state = seeded("sk-ant-ort01-a+b/c");
        let req = Request::post("/v1/oauth/token")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Bytes::from_static(
                b"grant_type=refresh_token&refresh_token=sk-ant-ort01-a%2Bb%2Fc",
            ))
            .unwrap();
        let (resp, _) = handle(&req, &mut state, &config);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body_json(&resp)["scope"], DEFAULT_SCOPE);
    }

    #[test]
    fn omitted_fields_and_ttl() {
        let config = Config {
            access_ttl: 60,
            omit_fields: vec!["account".into(), "scope".into()],
            ..Config::default()
        };
        let mut state = seeded("t");
        let (resp, _) = handle(&refresh("t"), &mut state, &config);
        let body = body_json(&resp);
        assert_eq!(body["expires_in"], 60);
        assert!(body.get("account").is_none() && body.get("scope").is_none());
        assert!(body.get("organization").is_some());
        let issued = &state.issued[0];
        assert_eq!(issued.expires_at_ms - issued.unix_ms, 60_000);
    }

    #[test]
    fn revoke_uses_up_a_token() {
        let config = Config::default();
        let mut state = seeded("t");
        let req = Request::post("/v1/oauth/token/revoke")
            .body(Bytes::from(json!({"token": "t"}).to_string()))
            .unwrap();
        assert_eq!(handle(&req, &mut state, &config).0.status(), StatusCode::OK);
        let (resp, record) = handle(&refresh("t"), &mut state, &config);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(record["reason"], "reused");
    }

    #[test]
    fn profile_needs_a_bearer() {
        let config = Config::default();
        let mut state = State::default();
        for path in [
            "/api/oauth/profile",
            "/api/oauth/claude_cli/roles",
            "/v1/mcp_servers?limit=1000",
        ] {
            let req = Request::get(path)
                .header(AUTHORIZATION, "Bearer sk-ant-oat01-x")
                .body(Bytes::new())
                .unwrap();
            let (resp, record) = handle(&req, &mut state, &config);
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(record["access_fingerprint"], fingerprint("sk-ant-oat01-x"));
            let req = Request::get(path).body(Bytes::new()).unwrap();
            assert_eq!(
                handle(&req, &mut state, &config).0.status(),
                StatusCode::UNAUTHORIZED
            );
        }
        let req = Request::get("/nope").body(Bytes::new()).unwrap();
        assert_eq!(
            handle(&req, &mut state, &config).0.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn state_file_round_trips_and_keeps_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert!(load_state(&path).unwrap().valid_refresh_tokens.is_empty());
        std::fs::write(
            &path,
            r#"{"valid_refresh_tokens": ["t"], "note": {"x": 1}}"#,
        )
        .unwrap();
        let mut state = load_state(&path).unwrap();
        handle(&refresh("t"), &mut state, &Config::default());
        save_state(&path, &state).unwrap();
        let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(saved["note"], json!({"x": 1}));
        assert_eq!(saved["used_refresh_tokens"], json!(["t"]));
        assert_eq!(
            saved["issued"][0]["refresh_token"],
            saved["valid_refresh_tokens"][0]
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left"
        );
    }

    #[test]
    fn fingerprint_is_16_hex_digits_of_sha256() {
        // sha256("abc") = ba7816bf8f01cfea…
        assert_eq!(fingerprint("abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn certificates_are_generated() {
        let (pem, chain, _) = certificates().unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(chain.len(), 2);
    }
}
