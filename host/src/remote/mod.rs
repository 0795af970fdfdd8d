//! The remote engine: models served by OpenAI-compatible HTTP servers (llama.cpp's
//! `llama-server`, vLLM, TGI, Ollama, LM Studio, another `tabagent-host serve`), behind the same
//! [`Model`](crate::engine::Model) and [`Session`](crate::engine::Session) traits as the local
//! engine, so a guest runs unchanged against either.
//!
//! A grant names a [`RemoteSpec`] (one or more endpoints, the model id, the API key's
//! environment variable, the client policy). [`RemoteEngine::connect`] asks the endpoints what
//! they serve and returns a [`RemoteModel`]; the registry shares it between every guest granted
//! the same spec, so they share one [pool](pool) of endpoints: least-busy selection, a queue
//! when all are busy, health checks, failover before any output, a circuit breaker.
//!
//! Guests reach a remote model only through the model interface and only under granted names;
//! the host makes the requests. The API key is read from the host's environment when the model
//! is loaded, sent as a bearer token, and cut out of every message.
//!
//! All network work runs on one small runtime of the engine's own ([`runtime`]), so the
//! blocking trait methods can be called from any thread.

mod client;
mod model;
pub mod pool;
mod session;
mod spec;
mod wire;

pub use client::ApiKey;
pub use model::RemoteModel;
pub use spec::{EndpointUrl, RemoteEntry, RemoteSpec};

use crate::engine::Model;
use crate::error::{LlmError, LlmResult};
use std::sync::{Arc, OnceLock};

/// The engine for remote models. Holds nothing: each model owns its endpoints.
#[derive(Debug, Default, Clone, Copy)]
pub struct RemoteEngine;

impl RemoteEngine {
    /// Connect to a remote model: ask its endpoints what they serve (at least one must answer)
    /// and start watching their health. Blocks.
    pub fn connect(&self, spec: &RemoteSpec) -> LlmResult<Arc<dyn Model>> {
        Ok(Arc::new(RemoteModel::connect(spec.clone())?))
    }
}

/// The runtime every remote request runs on: two worker threads, started on first use and kept
/// for the life of the process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tabagent-remote")
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

/// Run `future` on the engine's runtime and wait for it from this (non-async) thread.
fn block_on<T: Send + 'static>(
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> LlmResult<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().map_err(|_| LlmError::runtime("the remote engine's task ended without an answer"))
}
