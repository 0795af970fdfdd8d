//! One store per guest run: WASI with only what was granted, `wasi:http` (outgoing requests only
//! to granted destinations), the `tabagent:llm` state, and the sandbox's limits on the store.

use super::RunError;
use super::guest::{GuestConfig, Stdio};
use super::outgoing::OutgoingHttp;
use crate::nn::{GgmlBackend, NnDeadline, NnGraphs};
use crate::params::LoadRequest;
use crate::registry::Registry;
use crate::sandbox::GuestLimiter;
use crate::wit::{LlmCtx, LlmView, LlmViewProvider};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use wasmtime_wasi_nn::Backend;
use wasmtime_wasi_nn::wit::{WasiNnCtx, WasiNnView};

/// Most entries in a guest's resource table (the `tabagent:llm` resources have a lower limit of
/// their own, `LlmLimits::max_resources`).
const MAX_TABLE_ENTRIES: usize = 20_000;

/// Most bytes of captured stdout or stderr kept per guest run.
const CAPTURE_LIMIT: usize = 64 << 20;

/// Per-guest store data.
pub struct GuestState {
    /// When wasm code must stop (`None`: never).
    wasm_deadline: Option<Instant>,
    /// The same deadline, as the `wasi:nn` graphs read it at each `compute`.
    nn_deadline: NnDeadline,
    wasi: WasiCtx,
    llm: LlmCtx,
    http: WasiHttpCtx,
    outgoing: OutgoingHttp,
    nn: WasiNnCtx,
    table: ResourceTable,
    limiter: GuestLimiter,
}

impl GuestState {
    /// Whether a memory growth was refused during the run.
    pub(super) fn memory_refused(&self) -> bool {
        self.limiter.memory_refused()
    }

    /// Wasm code and generation stop at `limit` from now (for hosts that bound each call, not
    /// the run).
    pub(super) fn set_call_deadline(&mut self, limit: Option<std::time::Duration>) {
        let at = limit.and_then(|d| Instant::now().checked_add(d));
        self.wasm_deadline = at;
        self.nn_deadline.set(at);
        if let Some(at) = at {
            self.llm.set_deadline(at);
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outgoing }
    }
}

impl GuestState {
    /// The `wasi:nn` view of the store.
    pub(super) fn nn(&mut self) -> WasiNnView<'_> {
        WasiNnView::new(&mut self.table, &mut self.nn)
    }
}

impl LlmViewProvider for GuestState {
    fn llm(&mut self) -> LlmView<'_> {
        LlmView { ctx: &mut self.llm, table: &mut self.table }
    }
}

/// Captured stdout and stderr of a run, when [`Stdio::Capture`] was asked for.
pub(super) struct Captured {
    out: MemoryOutputPipe,
    err: MemoryOutputPipe,
}

impl Captured {
    /// Stdout and stderr bytes.
    pub(super) fn contents(&self) -> (Vec<u8>, Vec<u8>) {
        (self.out.contents().to_vec(), self.err.contents().to_vec())
    }
}

/// A scope of its own for a component just prepared: the instances of one prepared component
/// share cached prompt prefixes, those of different ones never do.
pub(super) fn new_cache_scope() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A new store for one run of `guest`, with its limits, deadline and fuel set; its sessions'
/// cache scope is `cache_scope`, its component's.
pub(super) fn new_store(
    wasm: &wasmtime::Engine,
    registry: &Arc<Registry>,
    fuel_counting: bool,
    guest: &GuestConfig,
    cache_scope: u64,
) -> Result<(Store<GuestState>, Option<Captured>), RunError> {
    let mut wasi = WasiCtxBuilder::new();
    let mut argv =
        vec![if guest.program.is_empty() { "app".to_string() } else { guest.program.clone() }];
    argv.extend(guest.args.iter().cloned());
    wasi.args(&argv);
    wasi.envs(&guest.env);
    for d in &guest.dirs {
        let perms = if d.read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
        wasi.preopened_dir(&d.host, &d.guest, perms).map_err(|e| {
            RunError::Setup(format!("cannot grant directory {}: {e}", d.host.display()))
        })?;
    }
    let captured = match guest.stdio {
        Stdio::Inherit => {
            wasi.inherit_stdio();
            None
        }
        Stdio::Stderr => {
            wasi.stdout(std::io::stderr());
            wasi.stderr(std::io::stderr());
            None
        }
        Stdio::Capture => {
            let captured = Captured {
                out: MemoryOutputPipe::new(CAPTURE_LIMIT),
                err: MemoryOutputPipe::new(CAPTURE_LIMIT),
            };
            wasi.stdin(MemoryInputPipe::new(guest.stdin.clone()));
            wasi.stdout(captured.out.clone());
            wasi.stderr(captured.err.clone());
            Some(captured)
        }
    };
    let mut llm = LlmCtx::new(Arc::clone(registry), guest.models.clone(), guest.limits.clone());
    llm.allow_pulls(guest.allow_pull.clone());
    llm.set_cache_scope(cache_scope);
    let wasm_deadline = guest.sandbox.deadline.and_then(|d| Instant::now().checked_add(d));
    if let Some(at) = wasm_deadline {
        llm.set_deadline(at);
    }
    // The granted `wasi:nn` graphs, loaded now (sharing weights with every other user of them).
    let nn_deadline = NnDeadline::new(wasm_deadline);
    let mut graphs = NnGraphs::default();
    for (name, source) in &guest.nn_graphs {
        let model = crate::nn::blocking(|| registry.load_request(source, LoadRequest::default()))
            .map_err(|e| {
            RunError::Setup(format!("cannot load the wasi:nn graph '{name}': {e}"))
        })?;
        graphs.insert(
            name.clone(),
            model,
            guest.limits.clone(),
            registry.default_threads(),
            nn_deadline.clone(),
        );
    }
    let nn = WasiNnCtx::new([Backend::from(GgmlBackend)], graphs.into());
    // Every resource a guest holds (WASI streams, `wasi:nn` tensors, …) takes a table entry;
    // bounded, so no guest fills host memory by making them without end.
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_TABLE_ENTRIES);
    let state = GuestState {
        wasm_deadline,
        nn_deadline,
        nn,
        wasi: wasi.build(),
        llm,
        http: WasiHttpCtx::new(),
        outgoing: OutgoingHttp::new(guest.allow_http.clone()),
        table,
        limiter: GuestLimiter::new(&guest.sandbox),
    };
    let mut store = Store::new(wasm, state);
    store.limiter(|s| &mut s.limiter);
    store.set_hostcall_fuel(guest.sandbox.max_call_bytes);
    // At every epoch tick, wasm code yields to the async runtime (a guest spinning in wasm holds
    // no runtime thread for longer than a tick) and traps once past its deadline.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| match ctx.data().wasm_deadline {
        Some(at) if Instant::now() >= at => Err(wasmtime::Trap::Interrupt.into()),
        _ => Ok(UpdateDeadline::Yield(1)),
    });
    let fuel_error = |e: wasmtime::Error| RunError::Setup(format!("cannot set fuel: {e}"));
    match (guest.sandbox.fuel, fuel_counting) {
        (Some(fuel), true) => store.set_fuel(fuel).map_err(fuel_error)?,
        (Some(_), false) => {
            return Err(RunError::Setup(
                "a fuel limit needs a host created with fuel counting on".into(),
            ));
        }
        (None, true) => store.set_fuel(u64::MAX).map_err(fuel_error)?,
        (None, false) => {}
    }
    Ok((store, captured))
}
