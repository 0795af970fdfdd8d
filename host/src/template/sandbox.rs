//! Runs the template sandbox (`host/template-sandbox`, built into this binary as a WebAssembly
//! module) for one render: a fresh instance with a memory limit and fuel, so a template that
//! loops or grows without end is stopped and refused while the host goes on.

use crate::error::{LlmError, LlmResult};
use std::sync::OnceLock;
use wasmtime::{Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store};

/// The module's bytes.
static MODULE: &[u8] = include_bytes!(env!("TABAGENT_TEMPLATE_SANDBOX"));

/// Wasm instructions one render may run (about a second); a real chat template takes well
/// under a hundredth of this for a long conversation.
pub(super) const FUEL: u64 = 2_000_000_000;

/// The module compiled once per process (from wasmtime's cache after the first run).
struct Sandbox {
    engine: Engine,
    pre: InstancePre<Limits>,
}

static SANDBOX: OnceLock<Result<Sandbox, String>> = OnceLock::new();

fn sandbox() -> LlmResult<&'static Sandbox> {
    SANDBOX
        .get_or_init(|| {
            let mut config = Config::new();
            config.consume_fuel(true);
            if let Ok(cache) = wasmtime::Cache::from_file(None) {
                config.cache(Some(cache));
            }
            let engine = Engine::new(&config).map_err(|e| format!("{e:#}"))?;
            let module = Module::new(&engine, MODULE).map_err(|e| format!("{e:#}"))?;
            let pre =
                Linker::new(&engine).instantiate_pre(&module).map_err(|e| format!("{e:#}"))?;
            Ok(Sandbox { engine, pre })
        })
        .as_ref()
        .map_err(|e| LlmError::runtime(format!("the chat-template sandbox cannot start: {e}")))
}

/// The store's limits: memory, and a note of whether growth was refused.
struct Limits {
    max_memory: usize,
    refused: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_memory;
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 10_000)
    }
}

/// Render one JSON request in a fresh instance with `max_memory` bytes of memory at most; the
/// JSON reply.
pub(super) fn run(request: &[u8], max_memory: usize, fuel: u64) -> LlmResult<Vec<u8>> {
    let sandbox = sandbox()?;
    let mut store = Store::new(&sandbox.engine, Limits { max_memory, refused: false });
    store.limiter(|l| l);
    store.set_fuel(fuel).map_err(|e| LlmError::runtime(format!("template sandbox: {e}")))?;
    let refused = |store: &Store<Limits>, e: wasmtime::Error| -> LlmError {
        if store.data().refused {
            return LlmError::invalid(format!(
                "the chat template needed more than {} MiB to render; refused",
                max_memory >> 20
            ));
        }
        if matches!(e.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::OutOfFuel)) {
            return LlmError::invalid(format!(
                "the chat template ran for more than {fuel} instructions without finishing; refused"
            ));
        }
        LlmError::invalid(format!("the chat template failed to render: {e}"))
    };
    let instance = sandbox.pre.instantiate(&mut store).map_err(|e| refused(&store, e))?;
    let memory = instance
        .get_memory(&mut store, "memory")
        .ok_or_else(|| LlmError::runtime("the template sandbox has no memory"))?;
    let alloc = instance
        .get_typed_func::<u32, u32>(&mut store, "alloc")
        .map_err(|e| LlmError::runtime(format!("template sandbox: {e}")))?;
    let render = instance
        .get_typed_func::<(u32, u32), u64>(&mut store, "render")
        .map_err(|e| LlmError::runtime(format!("template sandbox: {e}")))?;
    let len = u32::try_from(request.len())
        .map_err(|_| LlmError::invalid("the conversation is too large to render"))?;
    let at = alloc.call(&mut store, len).map_err(|e| refused(&store, e))?;
    if at == 0 {
        return Err(LlmError::invalid("the conversation is too large to render"));
    }
    memory
        .write(&mut store, at as usize, request)
        .map_err(|e| LlmError::runtime(format!("template sandbox: {e}")))?;
    let packed = render.call(&mut store, (at, len)).map_err(|e| refused(&store, e))?;
    let (out_at, out_len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
    let mut reply = vec![0u8; out_len];
    memory
        .read(&store, out_at, &mut reply)
        .map_err(|e| LlmError::runtime(format!("template sandbox: a bad reply ({e})")))?;
    Ok(reply)
}
