//! An HTTP server whose requests are handled by a `wasi:http` guest: HTTP/1.1 with hyper, one
//! new guest instance per request ([`crate::runtime::HttpApp`]), every instance sharing the
//! host's loaded models. The server owns what must hold whatever the guest does:
//!
//! - `GET /health` is answered here, without a guest: request counts and each kept model's
//!   live sessions;
//! - a request's body is read whole, within a size and a time limit, before a guest starts
//!   (`413`, `408`): slow or huge uploads never hold a running slot;
//! - at most `max_running` requests run at once, `max_waiting` more wait (each at most
//!   `max_wait`), the rest get `503` with `Retry-After` at once;
//! - headers have a size, count and time limit (`431`, connection closed), connections a
//!   count limit, and a response whose client reads nothing for `write_timeout` ends;
//! - a guest that fails answers `500` for its request only; a client that goes away mid-stream
//!   stops its guest (and so its generation).
//!
//! The granted models are loaded when the server starts and kept loaded while it runs, so each
//! request's `load` shares them instead of loading again.

mod admission;
mod reply;
mod stall;

pub use admission::{Admission, Refused};
pub use reply::{BodyError, ServerBody, error, json, read_body};
pub use stall::StallGuard;

use crate::engine::Model;
use crate::error::LlmError;
use crate::params::LoadRequest;
use crate::runtime::{GuestConfig, Host, HttpApp, HttpEnd};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::io::TokioIo;

/// Limits and settings of a server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Requests that run at once.
    pub max_running: usize,
    /// Requests that may wait for a running slot; beyond them requests get `503` at once.
    pub max_waiting: usize,
    /// Longest wait for a running slot before `503`.
    pub max_wait: Duration,
    /// Largest request body, in bytes (`413` beyond).
    pub max_body_bytes: usize,
    /// Time a client has to send a whole body (`408` beyond).
    pub body_timeout: Duration,
    /// Time a client has to send a request's headers (the connection is closed beyond).
    pub header_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most headers in one request (`431` beyond).
    pub max_headers: usize,
    /// Open connections at most; further ones are closed at once.
    pub max_connections: usize,
    /// Longest a response may wait for a client that reads nothing; the connection (and its
    /// request's guest) ends beyond.
    pub write_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_running: 16,
            max_waiting: 64,
            max_wait: Duration::from_secs(30),
            max_body_bytes: 8 << 20,
            body_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 64 << 10,
            max_headers: 100,
            max_connections: 256,
            write_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A granted model could not be loaded.
    #[error("cannot load model '{name}': {source}")]
    Load {
        /// The model's granted name.
        name: String,
        /// Why.
        source: LlmError,
    },
}

/// Counts of requests since the server started.
#[derive(Debug, Default)]
struct Counters {
    served: AtomicU64,
    failed: AtomicU64,
    abandoned: AtomicU64,
    refused: AtomicU64,
}

struct Shared {
    host: Arc<Host>,
    app: HttpApp,
    guest: GuestConfig,
    options: ServeOptions,
    admission: Admission,
    kept: Vec<(String, Arc<dyn Model>)>,
    counters: Counters,
}

/// A bound server; [`Server::run`] serves it.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Load the granted models and bind `addr` (port 0 picks a free port).
    pub async fn bind(
        host: Arc<Host>,
        app: HttpApp,
        guest: GuestConfig,
        addr: SocketAddr,
        options: ServeOptions,
    ) -> Result<Self, ServeError> {
        let mut kept = Vec::new();
        for (name, source) in guest.models.iter().chain(&guest.nn_graphs) {
            let registry = Arc::clone(host.registry());
            let source = source.clone();
            let model = tokio::task::spawn_blocking(move || {
                registry.load_request(&source, LoadRequest::default())
            })
            .await
            .unwrap_or_else(|e| Err(LlmError::runtime(format!("the load failed: {e}"))))
            .map_err(|source| ServeError::Load { name: name.clone(), source })?;
            kept.push((name.clone(), model));
        }
        let listener =
            TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
        let admission = Admission::new(options.max_running, options.max_waiting, options.max_wait);
        let shared = Arc::new(Shared {
            host,
            app,
            guest,
            options,
            admission,
            kept,
            counters: Counters::default(),
        });
        Ok(Self { listener, shared })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve connections until the returned future is dropped.
    pub async fn run(self) {
        let connections = Arc::new(Semaphore::new(self.shared.options.max_connections.max(1)));
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                tracing::warn!("refused a connection from {peer}: too many open connections");
                continue;
            };
            // Streamed tokens go out as they come, not when a segment fills.
            let _ = stream.set_nodelay(true);
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move {
                let _permit = permit;
                let o = &shared.options;
                let mut builder = http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(o.header_timeout)
                    .max_buf_size(o.max_header_bytes.max(8192))
                    .max_headers(o.max_headers)
                    .keep_alive(true);
                let service = hyper::service::service_fn(|req| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, Infallible>(shared.route(req).await) }
                });
                let io = TokioIo::new(StallGuard::new(stream, o.write_timeout));
                if let Err(e) = builder.serve_connection(io, service).await {
                    tracing::debug!("connection from {peer} ended: {e}");
                }
            });
        }
    }
}

impl Shared {
    async fn route(self: Arc<Self>, req: Request<Incoming>) -> Response<ServerBody> {
        if req.uri().path() == "/health" {
            return match *req.method() {
                Method::GET | Method::HEAD => json(StatusCode::OK, &self.health()),
                _ => error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "invalid_request_error",
                    "method_not_allowed",
                    "/health answers GET",
                ),
            };
        }
        let host_ok = req.headers().get(header::HOST).is_some_and(|h| h.to_str().is_ok());
        if req.uri().authority().is_none() && !host_ok {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "missing_host",
                "the request has no Host header (or one that is not text)",
            );
        }
        let head = req.method() == Method::HEAD;
        let o = &self.options;
        let req = match read_body(req, o.max_body_bytes, o.body_timeout).await {
            Ok(r) => r,
            Err(e) => return e.response(),
        };
        let slot = match self.admission.enter().await {
            Ok(s) => s,
            Err(why) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                return self.busy(why);
            }
        };
        let me = Arc::clone(&self);
        let on_end = move |end: HttpEnd| {
            drop(slot);
            let c = &me.counters;
            match end {
                HttpEnd::Done => c.served.fetch_add(1, Ordering::Relaxed),
                HttpEnd::Failed(e) => {
                    tracing::warn!("a request's guest failed: {e}");
                    c.failed.fetch_add(1, Ordering::Relaxed)
                }
                HttpEnd::Abandoned => {
                    tracing::info!(
                        "a client went away before its response ended; its guest was stopped"
                    );
                    c.abandoned.fetch_add(1, Ordering::Relaxed)
                }
            };
        };
        match self.host.serve_request(&self.app, self.guest.clone(), req, on_end).await {
            Ok(mut response) => {
                // Hyper drops these bodies unread: that is not a client going away.
                let status = response.status();
                if head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
                    response.body_mut().disarm();
                }
                response.map(|b| b.boxed_unsync())
            }
            Err(failure) => {
                // The details (a trap's backtrace, say) are for the server's log, not clients.
                tracing::error!("a request's handler failed: {failure}");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "guest_failed",
                    "the request's handler failed; the server's log says why",
                )
            }
        }
    }

    fn busy(&self, why: Refused) -> Response<ServerBody> {
        let a = &self.admission;
        let message = match why {
            Refused::Full => format!(
                "the server is at its limit ({} requests running, {} waiting); retry later",
                a.max_running(),
                a.max_waiting()
            ),
            Refused::Timeout => format!(
                "no request slot freed within {} s ({} requests running); retry later",
                self.options.max_wait.as_secs_f64(),
                a.max_running()
            ),
        };
        let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "server_busy", &message);
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    }

    fn health(&self) -> serde_json::Value {
        let c = &self.counters;
        let models: Vec<_> = self
            .kept
            .iter()
            .map(|(name, m)| serde_json::json!({"name": name, "sessions": m.sessions()}))
            .collect();
        serde_json::json!({
            "status": "ok",
            "requests": {
                "running": self.admission.running(),
                "waiting": self.admission.waiting(),
                "served": c.served.load(Ordering::Relaxed),
                "failed": c.failed.load(Ordering::Relaxed),
                "abandoned": c.abandoned.load(Ordering::Relaxed),
                "refused": c.refused.load(Ordering::Relaxed),
            },
            "models": models,
        })
    }
}
