//! Running guest components: one wasmtime engine and linker per host, one store per guest run.
//!
//! A guest gets WASI preview 2 with nothing granted by default (no network, no environment, no
//! host directories, closed stdin), plus the `tabagent:llm` imports with only the models named in
//! its [`GuestConfig`]. Outgoing HTTP (`wasi:http`) is linked for every world and refused unless
//! the destination was granted. Each world a guest can be run as has its entry point here, side
//! by side: the command world ([`CommandApp`], `wasi:cli/run`), the message-handler world
//! ([`RouterApp`], `tabagent:llm/messages`, one long-lived instance per peer) and the
//! HTTP-server world ([`HttpApp`], `wasi:http/incoming-handler`, one instance per request).

mod cache;
mod command;
mod error;
mod guest;
mod http;
mod outgoing;
mod router;
mod store;

pub use command::CommandApp;
pub use error::RunError;
pub use guest::{DirGrant, GuestConfig, RunOutcome, Stdio};
pub use http::{GuestBody, HttpApp, HttpEnd, HttpFailure};
pub use router::{Reply, RouterApp, RouterSession};
pub use store::GuestState;

use crate::engine::Engine;
use crate::registry::Registry;
use cache::AppCache;
use std::sync::Arc;
use wasmtime::Config;
use wasmtime::component::{Component, Linker};

/// Options fixed when a host is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostOptions {
    /// Count fuel, so that guests can be given a fuel limit (costs some speed).
    pub fuel: bool,
    /// Largest wasm stack a guest may use, in bytes; deeper recursion traps.
    pub max_wasm_stack: usize,
    /// Link the standard `wasi:nn` interface (for hosts whose guests are granted graphs):
    /// without it, a component that imports `wasi:nn` does not instantiate, and no guest can
    /// make `wasi:nn` tensors (host memory that the guest's memory limit does not count).
    pub nn: bool,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self { fuel: false, max_wasm_stack: 512 << 10, nn: false }
    }
}

/// A host: compiles components and runs guests against one registry of models.
pub struct Host {
    wasm: wasmtime::Engine,
    linker: Linker<GuestState>,
    registry: Arc<Registry>,
    options: HostOptions,
    commands: AppCache<CommandApp>,
    routers: AppCache<RouterApp>,
    servers: AppCache<HttpApp>,
}

impl Host {
    /// A host over an inference engine, resolving granted files with the default resolver.
    pub fn new(engine: Arc<dyn Engine>) -> Result<Self, RunError> {
        Self::with_registry(Registry::new(engine), HostOptions::default())
    }

    /// A host over an inference engine, with options.
    pub fn with_options(engine: Arc<dyn Engine>, options: HostOptions) -> Result<Self, RunError> {
        Self::with_registry(Registry::new(engine), options)
    }

    /// A host over a registry of its own (another resolver, or one shared with other front
    /// ends), with options.
    pub fn with_registry(registry: Arc<Registry>, options: HostOptions) -> Result<Self, RunError> {
        let setup = |what: &str, e: wasmtime::Error| RunError::Setup(format!("{what}: {e:#}"));
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(options.fuel);
        config.max_wasm_stack(options.max_wasm_stack);
        match wasmtime::Cache::from_file(None) {
            Ok(cache) => {
                config.cache(Some(cache));
            }
            Err(e) => tracing::warn!("compiled-component cache disabled: {e}"),
        }
        let wasm =
            wasmtime::Engine::new(&config).map_err(|e| setup("cannot configure wasmtime", e))?;
        let mut linker = Linker::new(&wasm);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| setup("cannot link WASI", e))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| setup("cannot link wasi:http", e))?;
        crate::wit::add_to_linker(&mut linker).map_err(|e| setup("cannot link tabagent:llm", e))?;
        if options.nn {
            wasmtime_wasi_nn::wit::add_to_linker(&mut linker, GuestState::nn)
                .map_err(|e| setup("cannot link wasi:nn", e))?;
        }
        crate::sandbox::start_epoch_ticker(&wasm);
        Ok(Self {
            wasm,
            linker,
            registry,
            options,
            commands: AppCache::new(),
            routers: AppCache::new(),
            servers: AppCache::new(),
        })
    }

    /// A host over llama.cpp.
    pub fn with_llama() -> Result<Self, RunError> {
        Self::new(Arc::new(crate::engine::llama::LlamaEngine::new()))
    }

    /// The registry of models its guests share.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Prepare a compiled component to run as a command.
    pub fn command(&self, component: &Component) -> Result<CommandApp, RunError> {
        command::prepare(&self.linker, component)
    }

    /// Read, compile and prepare a command component (`.wasm` binary or `.wat` text); a file
    /// seen before with the same bytes is served from memory.
    pub fn load_command(&self, path: &std::path::Path) -> Result<CommandApp, RunError> {
        self.load(path, &self.commands, |c| self.command(c))
    }

    /// Read a component file and prepare it with `prepare`, through `cache` (by its bytes);
    /// compile errors name the file.
    fn load<A: Clone>(
        &self,
        path: &std::path::Path,
        cache: &AppCache<A>,
        prepare: impl FnOnce(&Component) -> Result<A, RunError>,
    ) -> Result<A, RunError> {
        let bytes = std::fs::read(path)
            .map_err(|e| RunError::Read { path: path.to_path_buf(), message: e.to_string() })?;
        cache.get_or_prepare(&bytes, || {
            let component = self.compile(&bytes).map_err(|e| match e {
                RunError::Compile { message, .. } => {
                    RunError::Compile { path: Some(path.to_path_buf()), message }
                }
                other => other,
            })?;
            prepare(&component)
        })
    }

    /// Compile and prepare a command component from bytes, served from memory when seen before.
    pub fn command_from_bytes(&self, bytes: &[u8]) -> Result<CommandApp, RunError> {
        self.commands.get_or_prepare(bytes, || self.command(&self.compile(bytes)?))
    }

    /// Run a command's `wasi:cli/run` export to the end.
    ///
    /// Returns the guest's exit code and captured output; an `Err` says why the guest could not
    /// start or did not end by itself.
    pub async fn run(&self, app: &CommandApp, guest: GuestConfig) -> Result<RunOutcome, RunError> {
        command::run(&self.wasm, &self.registry, self.options.fuel, app, guest).await
    }

    /// Read, compile and prepare a message-handler component (exporting
    /// `tabagent:llm/messages`); a file seen before with the same bytes is served from memory.
    pub fn load_router(&self, path: &std::path::Path) -> Result<RouterApp, RunError> {
        self.load(path, &self.routers, |c| router::prepare(&self.linker, c))
    }

    /// Instantiate a message handler for one peer. `guest.sandbox.deadline` bounds each call
    /// (`handle`, `poll`), not the session.
    pub async fn start_router(
        &self,
        app: &RouterApp,
        guest: GuestConfig,
    ) -> Result<RouterSession, RunError> {
        RouterSession::start(&self.wasm, &self.registry, self.options.fuel, app, guest).await
    }

    /// Read, compile and prepare an HTTP-server component (exporting
    /// `wasi:http/incoming-handler`); a file seen before with the same bytes is served from
    /// memory.
    pub fn load_server(&self, path: &std::path::Path) -> Result<HttpApp, RunError> {
        self.load(path, &self.servers, |c| http::prepare(&self.linker, c))
    }

    /// Serve one HTTP request with a new instance of `app`, limited as `guest` says (its
    /// deadline bounds the whole request, streaming included). Returns once the guest has set
    /// the response's head; `on_end` hears when the guest's task is over.
    pub async fn serve_request<B, F>(
        &self,
        app: &HttpApp,
        guest: GuestConfig,
        request: hyper::Request<B>,
        on_end: F,
    ) -> Result<hyper::Response<GuestBody>, HttpFailure>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
        F: FnOnce(HttpEnd) + Send + 'static,
    {
        http::handle(&self.wasm, &self.registry, self.options.fuel, app, guest, request, on_end)
            .await
    }

    /// Compile a component from bytes (`.wasm` binary or `.wat` text).
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, RunError> {
        Component::new(&self.wasm, bytes)
            .map_err(|e| RunError::Compile { path: None, message: format!("{e:#}") })
    }
}
