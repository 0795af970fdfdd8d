//! The command world's entry point: run a component's `wasi:cli/run` export to its end.
//!
//! Entry points of other worlds (an HTTP handler, a message handler) sit beside this one, each
//! with its own pre-instantiated form and its own way to call the guest; they share the store
//! set-up ([`super::store`]) and the error kinds ([`RunError`]).

use super::error::RunError;
use super::guest::{GuestConfig, RunOutcome};
use super::store::{GuestState, new_cache_scope, new_store};
use crate::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::CommandPre;

/// A component ready to run as a command: compiled, and its imports resolved against the host's
/// linker once.
#[derive(Clone)]
pub struct CommandApp {
    pre: CommandPre<GuestState>,
    scope: u64,
}

impl CommandApp {
    /// The compiled component.
    pub fn component(&self) -> &Component {
        self.pre.instance_pre().component()
    }
}

/// Bytes of the guest's stderr kept in an error.
const STDERR_TAIL: usize = 4096;

/// Prepare a compiled component to run as a command against `linker`.
pub(super) fn prepare(
    linker: &Linker<GuestState>,
    component: &Component,
) -> Result<CommandApp, RunError> {
    let pre = linker
        .instantiate_pre(component)
        .and_then(CommandPre::new)
        .map_err(|e| RunError::Instantiate(format!("{e:#}")))?;
    Ok(CommandApp { pre, scope: new_cache_scope() })
}

/// Run a command's `wasi:cli/run` export to the end in a new store.
pub(super) async fn run(
    wasm: &wasmtime::Engine,
    registry: &Arc<Registry>,
    fuel_counting: bool,
    app: &CommandApp,
    guest: GuestConfig,
) -> Result<RunOutcome, RunError> {
    let (mut store, captured) = new_store(wasm, registry, fuel_counting, &guest, app.scope)?;
    let command = app
        .pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| RunError::Instantiate(format!("{e:#}")))?;
    // Epochs stop wasm code at the deadline; a guest blocked inside a host call (reading a
    // stdin that never ends, say) is stopped by dropping the call a moment later.
    let run = command.wasi_cli_run().call_run(&mut store);
    let result = match guest.sandbox.deadline {
        Some(d) => tokio::time::timeout(d.saturating_add(Duration::from_secs(1)), run).await.ok(),
        None => Some(run.await),
    };
    let memory_refused = store.data().memory_refused();
    // Free the guest's resources (sessions, models) before reporting.
    drop(store);
    let (stdout, stderr) = captured.map(|c| c.contents()).unwrap_or_default();
    let tail = || {
        String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(STDERR_TAIL)..]).into_owned()
    };
    let exit_code = match result {
        None => {
            return Err(RunError::Deadline {
                limit: guest.sandbox.deadline.unwrap_or_default(),
                in_host_call: true,
                stderr_tail: tail(),
            });
        }
        Some(Ok(Ok(()))) => 0,
        Some(Ok(Err(()))) => 1,
        Some(Err(e)) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => exit.0,
            None => return Err(classify(&e, &guest, memory_refused, tail())),
        },
    };
    Ok(RunOutcome { exit_code, stdout, stderr })
}

/// The kind of a trap: one of the sandbox's limits, or any other trap.
pub(super) fn classify(
    e: &wasmtime::Error,
    guest: &GuestConfig,
    memory_refused: bool,
    stderr_tail: String,
) -> RunError {
    let trap = e.chain().find_map(|c| c.downcast_ref::<wasmtime::Trap>());
    match trap {
        Some(wasmtime::Trap::Interrupt) => RunError::Deadline {
            limit: guest.sandbox.deadline.unwrap_or_default(),
            in_host_call: false,
            stderr_tail,
        },
        Some(wasmtime::Trap::OutOfFuel) => {
            RunError::OutOfFuel { fuel: guest.sandbox.fuel.unwrap_or_default(), stderr_tail }
        }
        Some(wasmtime::Trap::StackOverflow) => RunError::StackOverflow { stderr_tail },
        _ if memory_refused => RunError::MemoryLimit {
            limit_bytes: guest.sandbox.memory_bytes,
            message: format!("{e:#}"),
            stderr_tail,
        },
        _ => RunError::Trap { message: format!("{e:#}"), stderr_tail },
    }
}
