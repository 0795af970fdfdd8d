//! The message-handler world's entry point: a component that exports `tabagent:llm/messages`,
//! instantiated once and then called for each incoming message (`handle`) and, while it has work
//! in flight, between messages (`poll`). Each call has its own deadline; the store lives as long
//! as the session.

use super::error::RunError;
use super::guest::GuestConfig;
use super::store::{GuestState, new_cache_scope, new_store};
use crate::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::{Component, Linker};

mod bindings {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        inline: "
            package tabagent:router-host;
            world router-exports {
                export tabagent:llm/messages@0.2.0;
            }
        ",
        path: "../wit",
        world: "tabagent:router-host/router-exports",
        exports: { default: async },
    });
}

use bindings::{RouterExports, RouterExportsPre};

/// What one call returned: messages for the peer, and whether work is in flight.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// Messages, in order.
    pub messages: Vec<String>,
    /// Work is in flight: call [`RouterSession::poll`] again.
    pub busy: bool,
}

/// A component ready to serve messages: compiled, imports resolved once.
#[derive(Clone)]
pub struct RouterApp {
    pre: RouterExportsPre<GuestState>,
    scope: u64,
}

/// Prepare a compiled component to serve messages.
pub(super) fn prepare(
    linker: &Linker<GuestState>,
    component: &Component,
) -> Result<RouterApp, RunError> {
    let pre = linker
        .instantiate_pre(component)
        .and_then(RouterExportsPre::new)
        .map_err(|e| RunError::Instantiate(format!("{e:#}")))?;
    Ok(RouterApp { pre, scope: new_cache_scope() })
}

/// One instance of a message handler and its store, serving one peer.
pub struct RouterSession {
    store: Store<GuestState>,
    exports: RouterExports,
    guest: GuestConfig,
}

impl RouterSession {
    pub(super) async fn start(
        wasm: &wasmtime::Engine,
        registry: &Arc<Registry>,
        fuel_counting: bool,
        app: &RouterApp,
        mut guest: GuestConfig,
    ) -> Result<Self, RunError> {
        // The deadline is per call here, not for the whole session.
        let per_call = guest.sandbox.deadline.take();
        let (mut store, _) = new_store(wasm, registry, fuel_counting, &guest, app.scope)?;
        guest.sandbox.deadline = per_call;
        // Instantiation (the component's start functions) has a call's deadline too.
        store.data_mut().set_call_deadline(per_call);
        let exports = app
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| RunError::Instantiate(format!("{e:#}")))?;
        Ok(Self { store, exports, guest })
    }

    /// Hand the component one incoming message.
    pub async fn handle(&mut self, message: &str) -> Result<Reply, RunError> {
        self.call(Some(message)).await
    }

    /// Let the component advance its work in flight by one step.
    pub async fn poll(&mut self) -> Result<Reply, RunError> {
        self.call(None).await
    }

    async fn call(&mut self, message: Option<&str>) -> Result<Reply, RunError> {
        let limit = self.guest.sandbox.deadline;
        self.store.data_mut().set_call_deadline(limit);
        // Fuel, like the deadline, is per call.
        if let Some(fuel) = self.guest.sandbox.fuel {
            self.store
                .set_fuel(fuel)
                .map_err(|e| RunError::Setup(format!("cannot set fuel: {e}")))?;
        }
        let api = self.exports.tabagent_llm_messages();
        let call = async {
            match message {
                Some(m) => api.call_handle(&mut self.store, m).await,
                None => api.call_poll(&mut self.store).await,
            }
        };
        let result = match limit {
            Some(d) => {
                tokio::time::timeout(d.saturating_add(Duration::from_secs(1)), call).await.ok()
            }
            None => Some(call.await),
        };
        match result {
            Some(Ok(r)) => Ok(Reply { messages: r.messages, busy: r.busy }),
            Some(Err(e)) => Err(super::command::classify(
                &e,
                &self.guest,
                self.store.data().memory_refused(),
                String::new(),
            )),
            None => Err(RunError::Deadline {
                limit: limit.unwrap_or_default(),
                in_host_call: true,
                stderr_tail: String::new(),
            }),
        }
    }
}
