//! A local stand-in for Anthropic's Messages API, good enough to answer the real
//! `claude` CLI (`ANTHROPIC_BASE_URL=http://HOST:PORT claude -p …`).
//!
//! ```text
//! cargo run --example api_standin -- --listen 0.0.0.0:0 --record /tmp/requests.jsonl \
//!     [--reject-token TOKEN]... [--reply TEXT] [--overloaded N] \
//!     [--limit-after N [--limit-secs S]]
//! ```
//!
//! Prints exactly one line, `listening on <ip>:<port>`, on stdout once bound, then
//! serves until SIGINT or SIGTERM. Every request is appended to the `--record` file as
//! one JSON line (method, path with query, the client's address, headers, the body's
//! `model`/`stream` fields and the text blocks of its last user message, `user_text`;
//! never the rest of the body: its system prompt and tools; and the status it answered),
//! flushed before the response is sent.
//!
//! - `POST /v1/messages`: a text reply, as one JSON message or, with `"stream": true`,
//!   as server-sent events. The text is `--reply` (default
//!   `Hello from the claunch API stand-in.`), or, when the last user message contains
//!   `ECHO:`, the rest of that line.
//!   Usage counts all four token kinds (input from the body's size, output from the text,
//!   cache creation 3, cache read 2), so the CLI reports tokens and a cost. When the last
//!   user message contains `SLOW:SECS`, the answer comes after that many seconds.
//! - `--overloaded N`: the first N message requests get Anthropic's 529 `overloaded_error`.
//! - `--limit-after N`: a usage-limit window opens at message request N+1 and lasts
//!   `--limit-secs` (default 20): every message request in it gets a 429
//!   `rate_limit_error` with `anthropic-ratelimit-unified-status: rejected`,
//!   `anthropic-ratelimit-unified-reset: <the window's end, epoch s>` and
//!   `anthropic-ratelimit-unified-representative-claim: five_hour`, as the real service
//!   answers a subscription at its limit. (Without the claim, claude 2.1.332 takes the 429
//!   for a passing rate limit and retries it for minutes.)
//! - `POST /v1/messages/count_tokens`: `{"input_tokens": N}`.
//! - `GET`/`HEAD` `/` and `/api/hello` (the CLI's connectivity probe): 200.
//! - A bearer token or `x-api-key` given with `--reject-token` gets Anthropic's 401
//!   `authentication_error` on every path.
//! - `CONNECT` (a client using the stand-in as its `HTTPS_PROXY`): 403, recorded, so a
//!   test can keep the CLI from reaching any other host and see what it tried.
//! - Anything else: Anthropic's 404 `not_found_error`.
//!
//! The routing is one plain function, [`handle`], from a request with a complete body to
//! a response; the server around it only moves bytes.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

const DEFAULT_REPLY: &str = "Hello from the claunch API stand-in.";
const EXPIRED_MESSAGE: &str =
    "OAuth token has expired. Please obtain a new token or refresh your existing token.";

#[derive(Debug, Parser)]
#[command(about = "A local stand-in for Anthropic's Messages API")]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Append one JSON line per request to this file.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Answer 401 to requests carrying this bearer token or x-api-key (repeatable).
    #[arg(long = "reject-token", value_name = "TOKEN")]
    reject_tokens: Vec<String>,
    /// Reply text (default: "Hello from the claunch API stand-in.").
    #[arg(long)]
    reply: Option<String>,
    /// Answer the first N message requests with 529 overloaded.
    #[arg(long, default_value_t = 0, value_name = "N")]
    overloaded: u64,
    /// Open a usage-limit window at message request N+1.
    #[arg(long, value_name = "N")]
    limit_after: Option<u64>,
    /// How long the usage-limit window lasts, in seconds.
    #[arg(long, default_value_t = 20, value_name = "S")]
    limit_secs: u64,
}

/// What [`handle`] needs to know besides the request.
#[derive(Debug, Default)]
pub struct Config {
    pub reject_tokens: Vec<String>,
    pub reply: Option<String>,
    /// Numbers the message and request ids.
    pub counter: AtomicU64,
    /// Answer the first N message requests with 529.
    pub overloaded: u64,
    /// The usage-limit window opens at message request N+1...
    pub limit_after: Option<u64>,
    /// ...and lasts this many seconds.
    pub limit_secs: u64,
    /// Counts `POST /v1/messages`.
    pub messages: AtomicU64,
    /// The window's end (epoch seconds), once open.
    pub window_end: Mutex<Option<u64>>,
}

/// How long to wait before sending a response (`SLOW:SECS`).
#[derive(Debug, Clone, Copy)]
pub struct Delay(pub std::time::Duration);

/// Answers one request whose body has been read in full.
pub fn handle(req: &Request<Bytes>, config: &Config) -> Response<Bytes> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    handle_at(req, config, now_ms)
}

/// [`handle`] at a given time (epoch milliseconds).
pub fn handle_at(req: &Request<Bytes>, config: &Config, now_ms: u64) -> Response<Bytes> {
    let n = config.counter.fetch_add(1, Ordering::Relaxed) + 1;
    let request_id = format!("req_standin_{n:08}");
    let mut response = route(req, config, n, now_ms);
    response.headers_mut().insert(
        "request-id",
        request_id.parse().expect("ascii header value"),
    );
    response
}

/// The usage limit's reset (epoch seconds) when message request `m` at `now_ms` falls in
/// the window, opening it if this is the request that does.
fn limited(config: &Config, m: u64, now_ms: u64) -> Option<u64> {
    let after = config.limit_after?;
    let mut end = config
        .window_end
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if end.is_none() && m > after {
        *end = Some(now_ms.div_ceil(1000) + config.limit_secs);
    }
    end.filter(|e| now_ms < e * 1000)
}

fn route(req: &Request<Bytes>, config: &Config, n: u64, now_ms: u64) -> Response<Bytes> {
    if presented_tokens(req)
        .iter()
        .any(|t| config.reject_tokens.iter().any(|r| r == t))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            EXPIRED_MESSAGE,
            n,
        );
    }
    let path = req.uri().path();
    if req.method() == hyper::Method::CONNECT {
        return error(
            StatusCode::FORBIDDEN,
            "permission_error",
            &format!(
                "the claunch API stand-in reaches no other host (CONNECT {})",
                req.uri()
            ),
            n,
        );
    }
    match (req.method().as_str(), path) {
        ("POST", "/v1/messages") => {
            let m = config.messages.fetch_add(1, Ordering::Relaxed) + 1;
            if m <= config.overloaded {
                return error(
                    StatusCode::from_u16(529).expect("529 is a status"),
                    "overloaded_error",
                    "Overloaded",
                    n,
                );
            }
            if let Some(reset) = limited(config, m, now_ms) {
                let mut response = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "This request would exceed your account's rate limit. Please try again later.",
                    n,
                );
                let headers = response.headers_mut();
                headers.insert(
                    "anthropic-ratelimit-unified-status",
                    "rejected".parse().expect("ascii"),
                );
                headers.insert(
                    "anthropic-ratelimit-unified-reset",
                    reset.to_string().parse().expect("ascii"),
                );
                // Which limit it is: without it, the real CLI takes the 429 for a passing
                // rate limit and retries it ten times over about three minutes.
                headers.insert(
                    "anthropic-ratelimit-unified-representative-claim",
                    "five_hour".parse().expect("ascii"),
                );
                return response;
            }
            match serde_json::from_slice::<Value>(req.body()) {
                Ok(body) => {
                    let mut response = message(&body, req.body().len(), config, n);
                    if let Some(secs) = slow(&body) {
                        response.extensions_mut().insert(Delay(secs));
                    }
                    response
                }
                Err(e) => invalid_json(&e, n),
            }
        }
        ("POST", "/v1/messages/count_tokens") => {
            match serde_json::from_slice::<Value>(req.body()) {
                Ok(_) => json_response(
                    StatusCode::OK,
                    &json!({ "input_tokens": estimate_tokens(req.body().len()) }),
                ),
                Err(e) => invalid_json(&e, n),
            }
        }
        // The CLI's connectivity probe (`HEAD /api/hello`, user-agent `Bun/…`).
        ("GET" | "HEAD", "/" | "/api/hello") => {
            json_response(StatusCode::OK, &json!({ "status": "ok" }))
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found_error",
            &format!("Not found: {} {}", req.method(), path),
            n,
        ),
    }
}

/// The record line for one request: arrival time, method, path with query (the target
/// host of a `CONNECT`), the client's address, headers, whether the body is JSON with
/// its `model` and `stream` fields, and the texts of its last user message (`null` when
/// there is none), which is where a prompt arrives.
pub fn record_line(req: &Request<Bytes>, peer: Option<SocketAddr>) -> Value {
    let mut headers = Map::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            // Repeated headers are joined the way HTTP allows.
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let body = serde_json::from_slice::<Value>(req.body()).ok();
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    json!({
        "unix_ms": u64::try_from(unix_ms).unwrap_or(u64::MAX),
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map_or_else(|| req.uri().to_string(), |p| p.as_str().to_owned()),
        "peer": peer.map(|p| p.to_string()),
        "headers": headers,
        "body_bytes": req.body().len(),
        "json": body.is_some(),
        "model": body.as_ref().and_then(|b| b.get("model")).cloned(),
        "stream": body.as_ref().and_then(|b| b.get("stream")).cloned(),
        "user_text": body.as_ref().and_then(last_user_texts),
    })
}

/// `Authorization: Bearer X` and `x-api-key: X`.
fn presented_tokens(req: &Request<Bytes>) -> Vec<&str> {
    let bearer = req
        .headers()
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer ").map(str::trim));
    let api_key = req
        .headers()
        .get_all("x-api-key")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim);
    bearer.chain(api_key).collect()
}

fn message(body: &Value, body_len: usize, config: &Config, n: u64) -> Response<Bytes> {
    let text = echoed(body)
        .or_else(|| config.reply.clone())
        .unwrap_or_else(|| DEFAULT_REPLY.to_owned());
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let id = format!("msg_standin_{n:08}");
    let input_tokens = estimate_tokens(body_len);
    let chunks = chunks(&text);
    let output_tokens = chunks.len();
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return json_response(
            StatusCode::OK,
            &json!({
                "id": id, "type": "message", "role": "assistant", "model": model,
                "content": [{ "type": "text", "text": text }],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": usage(input_tokens, output_tokens),
            }),
        );
    }
    let mut events = vec![
        json!({ "type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": usage(input_tokens, 1),
        }}),
        json!({ "type": "content_block_start", "index": 0,
                "content_block": { "type": "text", "text": "" } }),
        json!({ "type": "ping" }),
    ];
    events.extend(chunks.iter().map(|chunk| {
        json!({ "type": "content_block_delta", "index": 0,
                "delta": { "type": "text_delta", "text": chunk } })
    }));
    events.extend([
        json!({ "type": "content_block_stop", "index": 0 }),
        json!({ "type": "message_delta",
                "delta": { "stop_reason": "end_turn", "stop_sequence": null },
                "usage": { "output_tokens": output_tokens } }),
        json!({ "type": "message_stop" }),
    ]);
    let mut sse = String::new();
    for event in &events {
        let kind = event["type"].as_str().unwrap_or_default();
        let _ = write!(sse, "event: {kind}\ndata: {event}\n\n");
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .body(Bytes::from(sse))
        .expect("valid response")
}

/// `SLOW:SECS` in the last user message: answer after that long.
fn slow(body: &Value) -> Option<std::time::Duration> {
    last_user_texts(body)?.iter().find_map(|t| {
        let (_, rest) = t.split_once("SLOW:")?;
        let secs: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        std::time::Duration::try_from_secs_f64(secs.parse().ok()?).ok()
    })
}

/// The texts of the last user message.
fn last_user_texts(body: &Value) -> Option<Vec<&str>> {
    let last_user = body
        .get("messages")?
        .as_array()?
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    Some(match last_user.get("content")? {
        Value::String(s) => vec![s.as_str()],
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect(),
        _ => return None,
    })
}

/// The rest of the line after `ECHO:` in the last user message, if any.
fn echoed(body: &Value) -> Option<String> {
    last_user_texts(body)?.iter().find_map(|t| {
        let (_, rest) = t.split_once("ECHO:")?;
        Some(rest.lines().next().unwrap_or("").trim().to_owned())
    })
}

/// The text in a few pieces, so a stream has several deltas; they concatenate to it.
fn chunks(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    if words.is_empty() {
        return vec![String::new()];
    }
    words.chunks(2).map(<[&str]>::concat).collect()
}

fn usage(input_tokens: usize, output_tokens: usize) -> Value {
    json!({
        "input_tokens": input_tokens, "output_tokens": output_tokens,
        "cache_creation_input_tokens": 3, "cache_read_input_tokens": 2,
    })
}

fn estimate_tokens(body_len: usize) -> usize {
    (body_len / 4).max(1)
}

fn invalid_json(e: &serde_json::Error, n: u64) -> Response<Bytes> {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        &format!("The request body is not valid JSON: {e}"),
        n,
    )
}

/// Anthropic's error shape: `{"type":"error","error":{"type":…,"message":…},"request_id":…}`.
fn error(status: StatusCode, kind: &str, message: &str, n: u64) -> Response<Bytes> {
    json_response(
        status,
        &json!({
            "type": "error",
            "error": { "type": kind, "message": message },
            "request_id": format!("req_standin_{n:08}"),
        }),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response<Bytes> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Bytes::from(body.to_string()))
        .expect("valid response")
}

struct State {
    config: Config,
    record: Option<Mutex<File>>,
}

async fn serve(
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, body.collect().await?.to_bytes());
    let response = handle(&req, &state.config);
    if let Some(record) = &state.record {
        let mut line = record_line(&req, Some(peer));
        line["status"] = json!(response.status().as_u16());
        let mut file = record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = writeln!(file, "{line}").and_then(|()| file.flush()) {
            eprintln!("api_standin: cannot write the record file: {e}");
        }
    }
    eprintln!(
        "api_standin: {} {} -> {}",
        req.method(),
        req.uri(),
        response.status().as_u16()
    );
    if let Some(Delay(delay)) = response.extensions().get::<Delay>().copied() {
        tokio::time::sleep(delay).await;
    }
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
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let record = match &args.record {
        Some(path) => Some(Mutex::new(
            OpenOptions::new().create(true).append(true).open(path)?,
        )),
        None => None,
    };
    let state = Arc::new(State {
        config: Config {
            reject_tokens: args.reject_tokens,
            reply: args.reply,
            counter: AtomicU64::new(0),
            overloaded: args.overloaded,
            limit_after: args.limit_after,
            limit_secs: args.limit_secs,
            messages: AtomicU64::new(0),
            window_end: Mutex::new(None),
        },
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
                    eprintln!("api_standin: accept failed: {e}");
                    continue;
                }
            },
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req| serve(req, peer, Arc::clone(&state)));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                eprintln!("api_standin: connection error: {e}");
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str, headers: &[(&str, &str)], body: &Value) -> Request<Bytes> {
        let mut req = Request::post(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(Bytes::from(body.to_string())).unwrap()
    }

    fn body_json(resp: &Response<Bytes>) -> Value {
        serde_json::from_slice(resp.body()).unwrap()
    }

    #[test]
    fn plain_message_echoes_model_and_reply() {
        let config = Config::default();
        let req = post(
            "/v1/messages?beta=true",
            &[],
            &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        );
        let resp = handle(&req, &config);
        assert_eq!(resp.status(), StatusCode::OK);
        let body = body_json(&resp);
        assert_eq!(body["model"], "m");
        assert_eq!(body["content"][0]["text"], DEFAULT_REPLY);
        assert_eq!(body["stop_reason"], "end_turn");
    }

    #[test]
    fn stream_deltas_concatenate_to_echo() {
        let config = Config::default();
        let req = post(
            "/v1/messages",
            &[],
            &json!({"model": "m", "stream": true, "messages": [{"role": "user",
                "content": [{"type": "text", "text": "please ECHO: one two three four\nmore"}]}]}),
        );
        let resp = handle(&req, &config);
        let sse = std::str::from_utf8(resp.body()).unwrap();
        let text: String = sse
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter(|e| e["type"] == "content_block_delta")
            .map(|e| e["delta"]["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(text, "one two three four");
        assert!(sse.starts_with("event: message_start\n"));
        assert!(sse.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }

    #[test]
    fn rejected_tokens_get_401() {
        let config = Config {
            reject_tokens: vec!["bad".into()],
            ..Config::default()
        };
        for header in [("authorization", "Bearer bad"), ("x-api-key", "bad")] {
            let resp = handle(&post("/v1/messages", &[header], &json!({})), &config);
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(body_json(&resp)["error"]["type"], "authentication_error");
        }
        let ok = post(
            "/v1/messages",
            &[("authorization", "Bearer good")],
            &json!({}),
        );
        assert_eq!(handle(&ok, &config).status(), StatusCode::OK);
    }

    #[test]
    fn record_line_has_headers_and_fields() {
        let req = post(
            "/v1/messages?beta=true",
            &[("x-a", "1"), ("x-a", "2")],
            &json!({"model": "m", "stream": true}),
        );
        let line = record_line(&req, None);
        assert_eq!(line["path"], "/v1/messages?beta=true");
        assert_eq!(line["headers"]["x-a"], "1, 2");
        assert_eq!(line["json"], true);
        assert_eq!(line["stream"], true);
        assert_eq!(line["user_text"], Value::Null);
    }

    #[test]
    fn record_line_has_the_last_user_messages_texts() {
        let req = post(
            "/v1/messages",
            &[],
            &json!({"model": "m", "system": "not recorded", "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "reply"},
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>…</system-reminder>"},
                    {"type": "image", "source": {}},
                    {"type": "text", "text": "--version"}]}]}),
        );
        let line = record_line(&req, None);
        assert_eq!(
            line["user_text"],
            json!(["<system-reminder>…</system-reminder>", "--version"])
        );
        assert!(!line.to_string().contains("not recorded"));
        let plain = post(
            "/v1/messages",
            &[],
            &json!({"messages": [{"role": "user", "content": "-h"}]}),
        );
        assert_eq!(record_line(&plain, None)["user_text"], json!(["-h"]));
    }

    #[test]
    fn connect_is_refused_and_recorded_with_its_target() {
        let req = Request::connect("api.anthropic.com:443")
            .body(Bytes::new())
            .unwrap();
        let resp = handle(&req, &Config::default());
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let peer: SocketAddr = "172.18.0.2:40000".parse().unwrap();
        let line = record_line(&req, Some(peer));
        assert_eq!(line["method"], "CONNECT");
        assert_eq!(line["path"], "api.anthropic.com:443");
        assert_eq!(line["peer"], "172.18.0.2:40000");
    }

    #[test]
    fn overloaded_first_then_answered() {
        let config = Config {
            overloaded: 1,
            ..Config::default()
        };
        let req = || post("/v1/messages", &[], &json!({"model": "m", "messages": []}));
        let first = handle(&req(), &config);
        assert_eq!(first.status().as_u16(), 529);
        assert_eq!(body_json(&first)["error"]["type"], "overloaded_error");
        assert_eq!(handle(&req(), &config).status(), StatusCode::OK);
    }

    #[test]
    fn a_usage_limit_window_opens_after_n_requests_and_closes() {
        let config = Config {
            limit_after: Some(1),
            limit_secs: 20,
            ..Config::default()
        };
        let req = || post("/v1/messages", &[], &json!({"model": "m", "messages": []}));
        let t0 = 1_000_000_000;
        assert_eq!(handle_at(&req(), &config, t0).status(), StatusCode::OK);
        let limited = handle_at(&req(), &config, t0 + 500);
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            limited.headers()["anthropic-ratelimit-unified-status"],
            "rejected"
        );
        assert_eq!(
            limited.headers()["anthropic-ratelimit-unified-reset"],
            "1000021"
        );
        assert_eq!(
            limited.headers()["anthropic-ratelimit-unified-representative-claim"],
            "five_hour"
        );
        assert_eq!(body_json(&limited)["error"]["type"], "rate_limit_error");
        assert_eq!(
            handle_at(&req(), &config, t0 + 20_000).status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            handle_at(&req(), &config, 1_000_021_000).status(),
            StatusCode::OK
        );
    }

    #[test]
    fn slow_answers_say_how_long_and_usage_has_every_kind() {
        let config = Config::default();
        let req = post(
            "/v1/messages",
            &[],
            &json!({"model": "m", "messages": [{"role": "user", "content": "SLOW:1.5 then answer"}]}),
        );
        let resp = handle(&req, &config);
        let Some(Delay(d)) = resp.extensions().get::<Delay>().copied() else {
            panic!("no delay")
        };
        assert_eq!(d, std::time::Duration::from_millis(1500));
        let usage = &body_json(&resp)["usage"];
        assert_eq!(usage["cache_creation_input_tokens"], 3);
        assert_eq!(usage["cache_read_input_tokens"], 2);
    }
}
