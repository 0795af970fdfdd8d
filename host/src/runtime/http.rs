//! The HTTP-server world's entry point: a component that exports `wasi:http/incoming-handler`,
//! instantiated afresh for each request (`wasi:http/proxy` semantics). The instance runs in a
//! task of its own, so it can keep streaming the body after the response's head is sent; the
//! store, and with it every session and model lease of the request, ends with that task.
//!
//! A body the client stops reading (a disconnect mid-stream) ends the task at once: the
//! request's generation is cancelled whether or not the guest notices the closed stream.

use super::error::RunError;
use super::guest::GuestConfig;
use super::store::{GuestState, new_cache_scope, new_store};
use crate::registry::Registry;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::task::AbortHandle;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A component ready to serve HTTP: compiled, imports resolved once.
#[derive(Clone)]
pub struct HttpApp {
    pre: ProxyPre<GuestState>,
    scope: u64,
}

/// Prepare a compiled component to serve HTTP requests.
pub(super) fn prepare(
    linker: &Linker<GuestState>,
    component: &Component,
) -> Result<HttpApp, RunError> {
    let pre = linker
        .instantiate_pre(component)
        .and_then(ProxyPre::new)
        .map_err(|e| RunError::Instantiate(format!("{e:#}")))?;
    Ok(HttpApp { pre, scope: new_cache_scope() })
}

/// How a request's guest ended, reported once its task is over.
#[derive(Debug)]
pub enum HttpEnd {
    /// The guest returned from `handle`.
    Done,
    /// The guest failed (a trap, a limit); the response may already have been sent.
    Failed(RunError),
    /// The client stopped reading the body; the guest was stopped.
    Abandoned,
}

/// Calls its callback exactly once, with [`HttpEnd::Abandoned`] if the task is dropped first.
struct EndGuard<F: FnOnce(HttpEnd)>(Option<F>);

impl<F: FnOnce(HttpEnd)> EndGuard<F> {
    fn end(mut self, how: HttpEnd) {
        if let Some(f) = self.0.take() {
            f(how);
        }
    }
}

impl<F: FnOnce(HttpEnd)> Drop for EndGuard<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(HttpEnd::Abandoned);
        }
    }
}

/// The body of a guest's response. Dropped before its end (the client went away), it stops the
/// guest's task.
pub struct GuestBody {
    inner: HyperOutgoingBody,
    abort: Option<AbortHandle>,
    /// Set when the guest failed: the body's end is then an error, not a clean end.
    failed: Arc<AtomicBool>,
}

impl GuestBody {
    /// Let the guest run on when the body is dropped unread (responses without a body: `HEAD`,
    /// `204`, `304`).
    pub fn disarm(&mut self) {
        self.abort = None;
    }
}

/// The store and the end guard of one request's task, dropped in this order.
struct TaskState<F: FnOnce(HttpEnd)> {
    store: wasmtime::Store<GuestState>,
    end: EndGuard<F>,
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) if this.failed.load(Ordering::SeqCst) => {
                Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                    "the guest failed before its response ended".into(),
                )))))
            }
            other => other,
        };
        match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.abort = None,
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.abort = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for GuestBody {
    fn drop(&mut self) {
        drop(AbortOnDrop(self.abort.take()));
    }
}

/// Stops a task when dropped while armed.
struct AbortOnDrop(Option<AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Why a request got no response from its guest.
#[derive(Debug)]
pub enum HttpFailure {
    /// The guest could not start, or failed before it set a response.
    Guest(String),
    /// The guest set an error instead of a response.
    ErrorCode(String),
    /// The guest returned without setting a response.
    NoResponse,
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Guest(e) => write!(f, "{e}"),
            Self::ErrorCode(code) => write!(f, "the guest answered with an error: {code}"),
            Self::NoResponse => f.write_str("the guest returned without a response"),
        }
    }
}

/// Serve one request with a new instance of `app`. Returns the guest's response as soon as its
/// head is set; `on_end` is called once the guest's task is over (whatever happened).
pub(super) async fn handle<B, F>(
    wasm: &wasmtime::Engine,
    registry: &Arc<Registry>,
    fuel_counting: bool,
    app: &HttpApp,
    guest: GuestConfig,
    request: hyper::Request<B>,
    on_end: F,
) -> Result<hyper::Response<GuestBody>, HttpFailure>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
    F: FnOnce(HttpEnd) + Send + 'static,
{
    let end = EndGuard(Some(on_end));
    let (mut store, _) = new_store(wasm, registry, fuel_counting, &guest, app.scope)
        .map_err(|e| HttpFailure::Guest(e.to_string()))?;
    let setup =
        |e: wasmtime::Error| HttpFailure::Guest(format!("cannot set up the request: {e:#}"));
    let req = store.data_mut().http().new_incoming_request(Scheme::Http, request).map_err(setup)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let out = store.data_mut().http().new_response_outparam(tx).map_err(setup)?;
    let pre = app.pre.clone();
    let deadline = guest.sandbox.deadline;
    let failed = Arc::new(AtomicBool::new(false));
    let failed_flag = Arc::clone(&failed);
    // Dropped together if the task is aborted: the store (sessions, leases) before the guard
    // that tells the server the request is over.
    let mut state = TaskState { store, end };
    let task = tokio::spawn(async move {
        let store = &mut state.store;
        let run = async {
            let proxy = pre
                .instantiate_async(&mut *store)
                .await
                .map_err(|e| RunError::Instantiate(format!("{e:#}")))?;
            proxy.wasi_http_incoming_handler().call_handle(&mut *store, req, out).await.map_err(
                |e| {
                    super::command::classify(
                        &e,
                        &guest,
                        store.data().memory_refused(),
                        String::new(),
                    )
                },
            )
        };
        // Epochs stop wasm code at the deadline; a guest blocked in a host call is stopped by
        // dropping the call a moment later.
        let result = match deadline {
            Some(d) => tokio::time::timeout(d.saturating_add(Duration::from_secs(1)), run)
                .await
                .unwrap_or(Err(RunError::Deadline {
                    limit: d,
                    in_host_call: true,
                    stderr_tail: String::new(),
                })),
            None => run.await,
        };
        // A body the guest had not finished must not look finished to the client.
        if result.is_err() {
            failed_flag.store(true, Ordering::SeqCst);
        }
        // The request's sessions and leases end here, before anyone hears the guest is done.
        let TaskState { store, end } = state;
        drop(store);
        match result {
            Ok(()) => {
                end.end(HttpEnd::Done);
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                end.end(HttpEnd::Failed(e));
                Err(message)
            }
        }
    });
    // Until the response is handed on, dropping this call (the connection closed before the
    // guest answered) stops the guest too; then its body carries that duty.
    let mut pending = AbortOnDrop(Some(task.abort_handle()));
    match rx.await {
        Ok(Ok(response)) => {
            let abort = pending.0.take();
            Ok(response.map(|inner| GuestBody { inner, abort, failed }))
        }
        Ok(Err(code)) => Err(HttpFailure::ErrorCode(error_code_text(&code))),
        // The outparam was dropped unset: the task has ended (or is ending); say why.
        Err(_) => match task.await {
            Ok(Ok(())) => Err(HttpFailure::NoResponse),
            Ok(Err(message)) => Err(HttpFailure::Guest(message)),
            Err(e) => Err(HttpFailure::Guest(format!("the guest's task failed: {e}"))),
        },
    }
}

fn error_code_text(code: &ErrorCode) -> String {
    format!("{code:?}")
}
