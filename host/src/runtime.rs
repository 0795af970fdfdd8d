//! Running guest components: one wasmtime engine and linker per host, one store per guest run.
//!
//! A guest gets WASI preview 2 with nothing granted by default (no network, no environment, no
//! host directories, closed stdin), plus the `tabagent:llm` imports with only the models named in
//! its [`GuestConfig`].

use crate::ctx::{LlmCtx, LlmLimits, LlmShared, LlmView, LlmViewProvider};
use crate::engine::Engine;
use crate::sandbox::GuestLimits;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Store};
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Most bytes of captured stdout or stderr kept per guest run.
const CAPTURE_LIMIT: usize = 64 << 20;

/// A host directory made visible to a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// Directory on the host.
    pub host: PathBuf,
    /// Path the guest sees it under.
    pub guest: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

/// Where a guest's standard streams go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Stdio {
    /// The host process's own stdin, stdout and stderr.
    Inherit,
    /// Stdin from the given bytes; stdout and stderr captured into [`RunOutcome`].
    #[default]
    Capture,
}

/// What one guest run may do.
#[derive(Debug, Clone, Default)]
pub struct GuestConfig {
    /// Program name (`argv[0]`).
    pub program: String,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Granted models: name the guest uses to path of the GGUF file.
    pub models: BTreeMap<String, PathBuf>,
    /// Granted directories.
    pub dirs: Vec<DirGrant>,
    /// Environment variables the guest sees (none by default).
    pub env: Vec<(String, String)>,
    /// Standard streams.
    pub stdio: Stdio,
    /// Stdin bytes when [`Stdio::Capture`] is used.
    pub stdin: Vec<u8>,
    /// Limits on model use.
    pub limits: LlmLimits,
    /// Limits on time, fuel, memory and tables.
    pub sandbox: GuestLimits,
}

/// How a guest run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The guest's exit code (0 for success).
    pub exit_code: i32,
    /// Captured stdout (empty when inherited).
    pub stdout: Vec<u8>,
    /// Captured stderr (empty when inherited).
    pub stderr: Vec<u8>,
}

impl RunOutcome {
    /// Stdout as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Per-guest store data.
struct GuestState {
    wasi: WasiCtx,
    llm: LlmCtx,
    table: ResourceTable,
    limits: wasmtime::StoreLimits,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl LlmViewProvider for GuestState {
    fn llm(&mut self) -> LlmView<'_> {
        LlmView { ctx: &mut self.llm, table: &mut self.table }
    }
}

/// Options fixed when a host is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostOptions {
    /// Count fuel, so that guests can be given a fuel limit (costs some speed).
    pub fuel: bool,
    /// Largest wasm stack a guest may use, in bytes; deeper recursion traps.
    pub max_wasm_stack: usize,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self { fuel: false, max_wasm_stack: 512 << 10 }
    }
}

/// A host: compiles components and runs guests against one engine.
pub struct Host {
    wasm: wasmtime::Engine,
    linker: Linker<GuestState>,
    llm: Arc<LlmShared>,
    options: HostOptions,
}

impl Host {
    /// A host over an inference engine.
    pub fn new(engine: Arc<dyn Engine>) -> anyhow::Result<Self> {
        Self::with_options(engine, HostOptions::default())
    }

    /// A host over an inference engine, with options.
    pub fn with_options(engine: Arc<dyn Engine>, options: HostOptions) -> anyhow::Result<Self> {
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
        let wasm = wasmtime::Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot configure wasmtime")?;
        let mut linker = Linker::new(&wasm);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("cannot link WASI")?;
        crate::ctx::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("cannot link tabagent:llm")?;
        crate::sandbox::start_epoch_ticker(&wasm);
        Ok(Self { wasm, linker, llm: LlmShared::new(engine), options })
    }

    /// A host over llama.cpp.
    pub fn with_llama() -> anyhow::Result<Self> {
        Self::new(Arc::new(crate::engine::llama::LlamaEngine::new()))
    }

    /// The shared model state (engine and loaded weights).
    pub fn shared(&self) -> &Arc<LlmShared> {
        &self.llm
    }

    /// Compile a component from a file (`.wasm` binary or `.wat` text).
    pub fn compile_file(&self, path: &Path) -> anyhow::Result<Component> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        self.compile(&bytes).with_context(|| format!("{} is not a valid component", path.display()))
    }

    /// Compile a component from bytes.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<Component> {
        Component::new(&self.wasm, bytes).map_err(anyhow::Error::from)
    }

    /// Run a component's `wasi:cli/run` export to the end.
    ///
    /// Returns the exit code; an `Err` means the guest could not start or trapped.
    pub async fn run(
        &self,
        component: &Component,
        guest: GuestConfig,
    ) -> anyhow::Result<RunOutcome> {
        let mut wasi = WasiCtxBuilder::new();
        let mut argv =
            vec![if guest.program.is_empty() { "app".to_string() } else { guest.program.clone() }];
        argv.extend(guest.args.iter().cloned());
        wasi.args(&argv);
        wasi.envs(&guest.env);
        for d in &guest.dirs {
            let perms = if d.read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
            wasi.preopened_dir(&d.host, &d.guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot grant directory {}", d.host.display()))?;
        }
        let captured = match guest.stdio {
            Stdio::Inherit => {
                wasi.inherit_stdio();
                None
            }
            Stdio::Capture => {
                let out = MemoryOutputPipe::new(CAPTURE_LIMIT);
                let err = MemoryOutputPipe::new(CAPTURE_LIMIT);
                wasi.stdin(MemoryInputPipe::new(guest.stdin.clone()));
                wasi.stdout(out.clone());
                wasi.stderr(err.clone());
                Some((out, err))
            }
        };
        let mut llm =
            LlmCtx::new(Arc::clone(&self.llm), guest.models.clone(), guest.limits.clone());
        if let Some(d) = guest.sandbox.deadline {
            llm.set_deadline(std::time::Instant::now() + d);
        }
        let state = GuestState {
            wasi: wasi.build(),
            llm,
            table: ResourceTable::new(),
            limits: guest.sandbox.store_limits(),
        };
        let mut store = Store::new(&self.wasm, state);
        store.limiter(|s| &mut s.limits);
        store.set_hostcall_fuel(guest.sandbox.max_call_bytes);
        store.set_epoch_deadline(guest.sandbox.deadline_ticks());
        store.epoch_deadline_trap();
        match (guest.sandbox.fuel, self.options.fuel) {
            (Some(fuel), true) => store.set_fuel(fuel).map_err(anyhow::Error::from)?,
            (Some(_), false) => {
                anyhow::bail!("a fuel limit needs a host created with fuel counting on")
            }
            (None, true) => store.set_fuel(u64::MAX).map_err(anyhow::Error::from)?,
            (None, false) => {}
        }
        let command = Command::instantiate_async(&mut store, component, &self.linker)
            .await
            .map_err(anyhow::Error::from)
            .context("cannot instantiate the component (does it import only WASI and tabagent:llm, and export wasi:cli/run?)")?;
        // Epochs stop wasm code at the deadline; a guest blocked inside a host call (reading a
        // stdin that never ends, say) is stopped by dropping the call a moment later.
        let run = command.wasi_cli_run().call_run(&mut store);
        let result = match guest.sandbox.deadline {
            Some(d) => match tokio::time::timeout(d + std::time::Duration::from_secs(1), run).await
            {
                Ok(r) => r,
                Err(_) => {
                    drop(store);
                    anyhow::bail!("the guest ran past its deadline of {d:?} inside a host call");
                }
            },
            None => run.await,
        };
        // Free the guest's resources (sessions, models) before reporting.
        drop(store);
        let (stdout, stderr) = captured
            .map(|(o, e)| (o.contents().to_vec(), e.contents().to_vec()))
            .unwrap_or_default();
        let exit_code = match result {
            Ok(Ok(())) => 0,
            Ok(Err(())) => 1,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => exit.0,
                None => {
                    let tail =
                        String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(4096)..])
                            .into_owned();
                    let mut e = anyhow::Error::from(e);
                    if let Some(limit) = crate::sandbox::describe_trap(&e, &guest.sandbox) {
                        e = e.context(limit);
                    }
                    return Err(if tail.trim().is_empty() {
                        e.context("the guest trapped")
                    } else {
                        e.context(format!(
                            "the guest trapped; its stderr ends with: {}",
                            tail.trim_end()
                        ))
                    });
                }
            },
        };
        Ok(RunOutcome { exit_code, stdout, stderr })
    }
}
