//! The HTTP side of the remote engine: one request to one endpoint, with the policy's timeouts,
//! the API key as a bearer token, bounded bodies, server-sent events, and errors that say what
//! failed without ever carrying the key.
//!
//! A request opens its own HTTP/1.1 connection (TLS through rustls with the web PKI roots for
//! `https`), so dropping a streamed response closes the socket, which is how an
//! OpenAI-compatible server learns that its client went away and stops generating.

use super::spec::EndpointUrl;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;

/// An API key: sent as a bearer token, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Read the key from the environment variable `var`; a missing or empty variable is an
    /// error that names the variable, not any value.
    pub fn from_env(var: &str) -> Result<Self, String> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => {
                let key = v.trim().to_string();
                if hyper::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
                    return Err(format!("the API key in {var} holds characters a header cannot"));
                }
                Ok(Self(key))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("the API key in {var} is not UTF-8"))
            }
            _ => Err(format!("the API key variable {var} is not set")),
        }
    }

    /// `text` with every occurrence of the key replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() { text.to_string() } else { text.replace(&self.0, "***") }
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Why a call to an endpoint failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No connection (refused, unreachable, TLS failed).
    Connect(String),
    /// A timeout passed: which one.
    Timeout(String),
    /// The server answered with an error status.
    Status {
        /// The HTTP status.
        code: u16,
        /// The server's own message, shortened.
        message: String,
    },
    /// The connection broke or the server sent something that is not HTTP or not the expected
    /// JSON.
    Protocol(String),
}

impl CallError {
    /// Whether another attempt (on this or another endpoint) may succeed: the endpoint failed,
    /// not the request.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout(_) | Self::Protocol(_) => true,
            Self::Status { code, .. } => matches!(code, 408 | 429 | 500 | 502 | 503 | 504),
        }
    }

    /// Whether the endpoint itself is at fault (counts against its health and breaker).
    pub fn endpoint_fault(&self) -> bool {
        match self {
            Self::Status { code, .. } => *code >= 500 || *code == 429,
            _ => true,
        }
    }

    /// The error with the key (if any) cut out of every message.
    pub fn redacted(self, key: Option<&ApiKey>) -> Self {
        let r = |m: String| key.map_or(m.clone(), |k| k.redact(&m));
        match self {
            Self::Connect(m) => Self::Connect(r(m)),
            Self::Timeout(m) => Self::Timeout(r(m)),
            Self::Status { code, message } => Self::Status { code, message: r(message) },
            Self::Protocol(m) => Self::Protocol(r(m)),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(m) => write!(f, "cannot connect: {m}"),
            Self::Timeout(m) => write!(f, "timed out: {m}"),
            Self::Status { code, message } => write!(f, "HTTP {code}: {message}"),
            Self::Protocol(m) => write!(f, "{m}"),
        }
    }
}

/// The timeouts of one request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To open the connection.
    pub connect: Duration,
    /// From the request to the response head.
    pub response: Duration,
    /// Between two parts of the body.
    pub idle: Duration,
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

fn tls_config() -> Arc<tokio_rustls::rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<tokio_rustls::rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        use tokio_rustls::rustls;
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }))
}

async fn connect(ep: &EndpointUrl, timeout: Duration) -> Result<Box<dyn Io>, CallError> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((ep.host.as_str(), ep.port)))
        .await
        .map_err(|_| CallError::Timeout(format!("no connection within {timeout:?}")))?
        .map_err(|e| CallError::Connect(e.to_string()))?;
    // Streamed tokens are small writes: do not hold them back.
    let _ = tcp.set_nodelay(true);
    if !ep.tls {
        return Ok(Box::new(tcp));
    }
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(ep.host.clone())
        .map_err(|e| CallError::Connect(format!("bad TLS server name: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(tls_config());
    let stream = tokio::time::timeout(timeout, tls.connect(name, tcp))
        .await
        .map_err(|_| CallError::Timeout(format!("no TLS handshake within {timeout:?}")))?
        .map_err(|e| CallError::Connect(format!("TLS: {e}")))?;
    Ok(Box::new(stream))
}

/// Send one request and wait for its response head. Non-2xx statuses are returned as
/// [`CallError::Status`] with the server's message read from the body.
pub async fn send(
    ep: &EndpointUrl,
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
    key: Option<&ApiKey>,
    timeouts: Timeouts,
) -> Result<Response<Incoming>, CallError> {
    let result = send_inner(ep, method, path, body, key, timeouts).await;
    result.map_err(|e| e.redacted(key))
}

async fn send_inner(
    ep: &EndpointUrl,
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
    key: Option<&ApiKey>,
    timeouts: Timeouts,
) -> Result<Response<Incoming>, CallError> {
    let io = connect(ep, timeouts.connect).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| CallError::Connect(format!("HTTP handshake: {e}")))?;
    // The connection is driven until the response (and its body) is done or dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, ep.label())
        .header(hyper::header::USER_AGENT, concat!("tabagent-host/", env!("CARGO_PKG_VERSION")))
        .header(hyper::header::ACCEPT, "application/json, text/event-stream");
    if let Some(k) = key {
        let mut value = hyper::header::HeaderValue::from_str(&format!("Bearer {}", k.0))
            .map_err(|_| CallError::Protocol("the API key is not a valid header value".into()))?;
        value.set_sensitive(true);
        req = req.header(hyper::header::AUTHORIZATION, value);
    }
    let bytes = match body {
        Some(b) => {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
            Bytes::from(serde_json::to_vec(b).expect("JSON values serialize"))
        }
        None => Bytes::new(),
    };
    let req = req.body(Full::new(bytes)).map_err(|e| CallError::Protocol(e.to_string()))?;
    let response = tokio::time::timeout(timeouts.response, sender.send_request(req))
        .await
        .map_err(|_| CallError::Timeout(format!("no response within {:?}", timeouts.response)))?
        .map_err(|e| CallError::Protocol(format!("connection failed before the response: {e}")))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = read_body(response.into_body(), 64 << 10, timeouts.idle)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Err(CallError::Status { code: status.as_u16(), message: error_message(status, &text) })
}

/// The message of an OpenAI-shaped error body (`{"error": {"message": …}}`, `{"error": "…"}`),
/// or the text itself, shortened.
fn error_message(status: StatusCode, text: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let message = parsed.as_ref().and_then(|v| {
        let e = v.get("error")?;
        e.get("message").and_then(|m| m.as_str()).or(e.as_str()).map(str::to_string)
    });
    let m = message.unwrap_or_else(|| text.trim().to_string());
    let m = if m.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { m };
    shorten(&m, 300)
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Read a whole body of at most `limit` bytes, each part within `idle`.
pub async fn read_body(
    mut body: Incoming,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, CallError> {
    let mut out = BytesMut::new();
    loop {
        let frame = tokio::time::timeout(idle, body.frame())
            .await
            .map_err(|_| CallError::Timeout(format!("the body stalled for {idle:?}")))?;
        let Some(frame) = frame else { return Ok(out.freeze()) };
        let frame = frame.map_err(|e| CallError::Protocol(format!("the body broke off: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(CallError::Protocol(format!("the response is over {limit} bytes")));
            }
            out.extend_from_slice(&data);
        }
    }
}

/// `send` then read the body as JSON.
pub async fn json(
    ep: &EndpointUrl,
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
    key: Option<&ApiKey>,
    timeouts: Timeouts,
    limit: usize,
) -> Result<serde_json::Value, CallError> {
    // The whole call, body included, within the response timeout plus one idle period: a
    // server that drips bytes cannot hold it longer.
    let total = timeouts.response.saturating_add(timeouts.idle);
    let call = async {
        let response = send(ep, method, path, body, key, timeouts).await?;
        read_body(response.into_body(), limit, timeouts.idle).await
    };
    let bytes = tokio::time::timeout(total, call)
        .await
        .map_err(|_| CallError::Timeout(format!("no whole answer within {total:?}")))?
        .map_err(|e| e.redacted(key))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CallError::Protocol(format!("the response is not JSON: {e}")).redacted(key))
}

/// The `data:` payloads of a server-sent event stream, one event at a time.
pub struct EventStream {
    body: Incoming,
    buf: BytesMut,
    /// Bytes of `buf` already searched for a blank line.
    scanned: usize,
    idle: Duration,
    done: bool,
}

/// Largest event a server may send.
const MAX_EVENT: usize = 4 << 20;

impl EventStream {
    /// Events of a response body, each part within `idle`.
    pub fn new(body: Incoming, idle: Duration) -> Self {
        Self { body, buf: BytesMut::new(), scanned: 0, idle, done: false }
    }

    /// The next event's data (its `data:` lines joined by `\n`); `None` at the end of the body
    /// or after `[DONE]`. The idle timeout runs from the call to the next event with data:
    /// comments and keep-alives do not count.
    pub async fn next(&mut self) -> Result<Option<String>, CallError> {
        let idle = self.idle;
        tokio::time::timeout(idle, self.next_event())
            .await
            .map_err(|_| CallError::Timeout(format!("no event for {idle:?}")))?
    }

    async fn next_event(&mut self) -> Result<Option<String>, CallError> {
        loop {
            if let Some(event) = self.take_event() {
                if event.trim() == "[DONE]" {
                    self.done = true;
                    return Ok(None);
                }
                return Ok(Some(event));
            }
            if self.done {
                return Ok(None);
            }
            match self.body.frame().await {
                None => {
                    self.done = true;
                    // A last event without its blank line still counts.
                    self.buf.extend_from_slice(b"\n\n");
                }
                Some(Err(e)) => {
                    return Err(CallError::Protocol(format!("the stream broke off: {e}")));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                        if self.buf.len() > MAX_EVENT {
                            return Err(CallError::Protocol("an event is over 4 MiB".into()));
                        }
                    }
                }
            }
        }
    }

    /// Cut the first complete event out of the buffer, if there is one with data.
    fn take_event(&mut self) -> Option<String> {
        loop {
            // Only the new bytes (and the three before them) can complete a blank line.
            let from = self.scanned.saturating_sub(3);
            let Some((at, sep)) = find_blank_line(&self.buf[from..]) else {
                self.scanned = self.buf.len();
                return None;
            };
            let event_len = from + at;
            let raw = String::from_utf8_lossy(&self.buf[..event_len]).into_owned();
            self.buf.advance(event_len + sep);
            self.scanned = 0;
            if raw.lines().any(|l| l.trim_end() == "event: error") {
                let data: Vec<&str> = raw.lines().filter_map(|l| l.strip_prefix("data:")).collect();
                return Some(format!(
                    "{{\"error\": {{\"message\": {}}}}}",
                    serde_json::json!(data.join("\n").trim())
                ));
            }
            let data: Vec<&str> = raw
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                return Some(data.join("\n"));
            }
            // Comments, `event:` lines and keep-alives carry no data: look further.
        }
    }
}

/// Where the first blank line is: (length of the event before it, length of the separator).
fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        if b[i..].starts_with(b"\n\n") {
            return Some((i, 2));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_print() {
        let k = ApiKey("sk-live-1234567890".into());
        assert_eq!(format!("{k:?}"), "ApiKey(***)");
        assert_eq!(k.redact("bad key sk-live-1234567890!"), "bad key ***!");
        let e = CallError::Status { code: 401, message: "key sk-live-1234567890 unknown".into() };
        assert_eq!(e.redacted(Some(&k)).to_string(), "HTTP 401: key *** unknown");
        // SAFETY: no other thread of this test binary reads this variable.
        unsafe { std::env::remove_var("TABAGENT_TEST_NO_SUCH_KEY") };
        let e = ApiKey::from_env("TABAGENT_TEST_NO_SUCH_KEY").unwrap_err();
        assert_eq!(e, "the API key variable TABAGENT_TEST_NO_SUCH_KEY is not set");
    }

    #[test]
    fn error_bodies_and_retry_classes() {
        let m = |t: &str| error_message(StatusCode::BAD_REQUEST, t);
        assert_eq!(m(r#"{"error":{"message":"bad top_p","type":"x"}}"#), "bad top_p");
        assert_eq!(m(r#"{"error":"flat"}"#), "flat");
        assert_eq!(m("  plain text \n"), "plain text");
        assert_eq!(m(""), "Bad Request");
        assert!(m(&"x".repeat(1000)).len() < 310);
        let s = |code| CallError::Status { code, message: String::new() };
        assert!(s(503).retryable() && s(429).retryable() && s(500).endpoint_fault());
        assert!(!s(400).retryable() && !s(401).retryable() && !s(404).endpoint_fault());
        assert!(CallError::Connect("refused".into()).retryable());
    }

    #[test]
    fn events_split_on_blank_lines() {
        assert_eq!(find_blank_line(b"data: a\n\ndata: b"), Some((7, 2)));
        assert_eq!(find_blank_line(b"data: a\r\n\r\n"), Some((7, 4)));
        assert_eq!(find_blank_line(b"data: a\n"), None);
    }
}
