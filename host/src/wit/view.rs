//! Per-guest state behind the `tabagent:llm` imports, the view host calls borrow, and the one
//! way resources enter and leave a guest's table.

use super::bindings::{self, types};
use super::error::{HostError, HostResult};
use crate::error::LlmError;
use crate::params::LlmLimits;
use crate::registry::{GuestModels, Registry};
use crate::source::ModelSource;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasData, Resource, ResourceTable};

pub(super) fn to_wit_error(e: LlmError) -> types::Error {
    match e {
        LlmError::NotGranted(m) => types::Error::NotGranted(m),
        LlmError::NotFound(m) => types::Error::NotFound(m),
        LlmError::InvalidInput(m) => types::Error::InvalidInput(m),
        LlmError::Unsupported(m) => types::Error::Unsupported(m),
        LlmError::ResourceExhausted(m) => types::Error::ResourceExhausted(m),
        LlmError::Unloaded(m) => types::Error::Unloaded(m),
        LlmError::Runtime(m) => types::Error::Runtime(m),
    }
}

impl types::Host for LlmView<'_> {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<types::Error> {
        match err {
            HostError::Guest(e) => Ok(to_wit_error(e)),
            HostError::Trap(e) => Err(e),
        }
    }
}

/// Run blocking engine work off the async runtime.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LlmError> + Send + 'static,
) -> HostResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(HostError::from),
        Err(e) => Err(e.into()),
    }
}

/// Per-guest state behind the `tabagent:llm` imports: what it may load and has loaded, its
/// limits, and its count of live resources.
pub struct LlmCtx {
    pub(super) models: GuestModels,
    pub(super) limits: LlmLimits,
    resources: usize,
    pub(super) deadline: Option<std::time::Instant>,
    pub(super) allow_pull: Vec<String>,
    pub(super) cache_scope: Option<u64>,
}

impl LlmCtx {
    /// A guest's state: it may load exactly the models in `grants` (name to source).
    pub fn new(
        registry: Arc<Registry>,
        grants: BTreeMap<String, ModelSource>,
        limits: LlmLimits,
    ) -> Self {
        Self {
            models: GuestModels::new(registry, grants),
            limits,
            resources: 0,
            deadline: None,
            allow_pull: Vec::new(),
            cache_scope: None,
        }
    }

    /// Let this guest's sessions start from cached prompt prefixes of other sessions of the
    /// same `scope` (the host uses one scope per component, so instances of one app share and
    /// different apps never see each other's cache, nor its timing).
    pub fn set_cache_scope(&mut self, scope: u64) {
        self.cache_scope = Some(scope);
    }

    /// Let the guest pull from the hub repositories matching `patterns` (`*` matches any run
    /// of characters); none by default.
    pub fn allow_pulls(&mut self, patterns: Vec<String>) {
        self.models.allow_pulls(patterns.clone());
        self.allow_pull = patterns;
    }

    /// Generation stops with an error once `deadline` passes.
    pub fn set_deadline(&mut self, deadline: std::time::Instant) {
        self.deadline = Some(deadline);
    }

    /// Live `tabagent:llm` resources (models, sessions, completions) of this guest.
    pub fn resources(&self) -> usize {
        self.resources
    }
}

/// What host calls borrow: the guest's state and its resource table.
pub struct LlmView<'a> {
    /// The guest's state.
    pub ctx: &'a mut LlmCtx,
    /// The guest's resources.
    pub table: &'a mut ResourceTable,
}

/// Anything that can lend an [`LlmView`]; implement it for the store's data type.
pub trait LlmViewProvider: Send {
    /// Borrow the view.
    fn llm(&mut self) -> LlmView<'_>;
}

struct HasLlm;

impl HasData for HasLlm {
    type Data<'a> = LlmView<'a>;
}

/// Add the `tabagent:llm` imports to a linker.
pub fn add_to_linker<T: LlmViewProvider + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    fn get<T: LlmViewProvider>(t: &mut T) -> LlmView<'_> {
        t.llm()
    }
    bindings::Llm::add_to_linker::<T, HasLlm>(linker, get::<T>)
}

impl LlmView<'_> {
    /// Refuse with `resource-exhausted` when the guest holds as many resources as it may.
    pub(super) fn check_room(&self) -> HostResult<()> {
        if self.ctx.resources >= self.ctx.limits.max_resources {
            return Err(LlmError::ResourceExhausted(format!(
                "a guest may hold at most {} models, sessions and completions at once",
                self.ctx.limits.max_resources
            ))
            .into());
        }
        Ok(())
    }

    /// Push a new resource, within the guest's cap on live resources.
    pub(super) fn push<T: Send + 'static>(&mut self, value: T) -> HostResult<Resource<T>> {
        self.check_room()?;
        let r = self.table.push(value)?;
        self.ctx.resources += 1;
        Ok(r)
    }

    /// Delete a resource the guest dropped: gives back exactly what [`Self::push`] took.
    pub(super) fn delete<T: 'static>(&mut self, r: Resource<T>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        debug_assert!(self.ctx.resources > 0, "a resource was pushed past the count");
        self.ctx.resources = self.ctx.resources.saturating_sub(1);
        Ok(())
    }
}
