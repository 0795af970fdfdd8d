//! What one guest has loaded: its grants, its loaded names, and their lifecycle.
//!
//! A guest loads models by granted name. Each load under a name bumps an epoch, so a handle
//! ([`ModelLease`]) from before an unload is refused with `unloaded`. Unloading a name whose
//! sessions are still alive leaves it draining: the sessions finish, and the weights are freed
//! when the last one ends.

use super::shared::Registry;
use crate::engine::Model;
use crate::error::{LlmError, LlmResult};
use crate::source::ModelSource;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

/// A model this guest loaded, by granted name.
struct LoadedEntry {
    model: Arc<dyn Model>,
    epoch: u64,
    /// One clone per live session; the entry's own clone makes the count 1 when there are none.
    sessions: Arc<()>,
}

/// A model unloaded while sessions still used it.
struct Draining {
    name: String,
    file_size: u64,
    gpu_layers: u32,
    sessions: Weak<()>,
}

/// Whether a listed model is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelState {
    /// Loaded and usable.
    Loaded,
    /// Unloaded, still held by live sessions.
    Draining,
}

/// A model this guest has loaded, as [`GuestModels::loaded`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedModelState {
    /// The granted name.
    pub name: String,
    /// Loaded or draining.
    pub state: ModelState,
    /// Live sessions of this guest over it.
    pub sessions: u32,
    /// Size of the model file in bytes.
    pub file_size: u64,
    /// Layers offloaded to a GPU.
    pub gpu_layers: u32,
}

/// A guest's handle to a model it loaded: valid until the name is unloaded or loaded again with
/// other options.
pub struct ModelLease {
    name: String,
    model: Arc<dyn Model>,
    epoch: u64,
}

impl ModelLease {
    /// The granted name it was loaded under.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Held by a live session: counts it against its model's name and against the guest.
pub struct SessionTicket {
    _model_use: Arc<()>,
    _guest_use: Arc<()>,
}

/// Per-guest model state.
pub struct GuestModels {
    registry: Arc<Registry>,
    grants: BTreeMap<String, ModelSource>,
    loaded: BTreeMap<String, LoadedEntry>,
    draining: Vec<Draining>,
    epoch: u64,
    live_sessions: Arc<()>,
    /// Hub repositories (patterns) whose models the guest may load by reference.
    allow_pull: Vec<String>,
}

impl GuestModels {
    /// A guest that may load exactly the models in `grants` (name to source).
    pub fn new(registry: Arc<Registry>, grants: BTreeMap<String, ModelSource>) -> Self {
        Self {
            registry,
            grants,
            loaded: BTreeMap::new(),
            draining: Vec::new(),
            epoch: 0,
            live_sessions: Arc::new(()),
            allow_pull: Vec::new(),
        }
    }

    /// The shared registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Granted names, sorted.
    pub fn granted(&self) -> Vec<String> {
        self.grants.keys().cloned().collect()
    }

    /// Let the guest also load hub models of repositories matching `patterns` by their
    /// reference (`org/name[:FILE|:QUANT][@rev]`), as it may pull them.
    pub fn allow_pulls(&mut self, patterns: Vec<String>) {
        self.allow_pull = patterns;
    }

    /// The source granted under `name` — or, for a hub reference of a repository the guest may
    /// pull from, that hub model — else `not-granted` listing what was granted.
    pub fn source(&self, name: &str) -> LlmResult<ModelSource> {
        if let Some(s) = self.grants.get(name) {
            return Ok(s.clone());
        }
        if let Ok(r) = crate::hub::HubRef::parse(name)
            && self.allow_pull.iter().any(|p| crate::hub::pattern_matches(p, &r.repo))
        {
            return Ok(ModelSource::Hub(r));
        }
        Err({
            let granted: Vec<&str> = self.grants.keys().map(String::as_str).collect();
            LlmError::NotGranted(format!(
                "model '{name}' was not granted to this guest (granted: {})",
                if granted.is_empty() { "none".to_string() } else { granted.join(", ") }
            ))
        })
    }

    /// Record that `model` was loaded under `name` and hand out a lease on it. Loading the same
    /// weights again keeps the name's epoch; other weights (other options) replace the entry,
    /// and sessions over the old one drain.
    pub fn admit(&mut self, name: &str, model: Arc<dyn Model>) -> ModelLease {
        let epoch = match self.loaded.get(name) {
            Some(e) if Arc::ptr_eq(&e.model, &model) => e.epoch,
            _ => {
                self.epoch += 1;
                let entry = LoadedEntry {
                    model: Arc::clone(&model),
                    epoch: self.epoch,
                    sessions: Arc::new(()),
                };
                if let Some(old) = self.loaded.insert(name.to_string(), entry)
                    && Arc::strong_count(&old.sessions) > 1
                {
                    self.draining.push(Draining {
                        name: name.to_string(),
                        file_size: old.model.info().file_size,
                        gpu_layers: old.model.info().gpu_layers,
                        sessions: Arc::downgrade(&old.sessions),
                    });
                }
                self.epoch
            }
        };
        ModelLease { name: name.to_string(), model, epoch }
    }

    /// The model behind a lease, or `unloaded` once its name was unloaded or replaced.
    pub fn model(&self, lease: &ModelLease) -> LlmResult<Arc<dyn Model>> {
        self.entry(lease).map(|_| Arc::clone(&lease.model))
    }

    /// The entry a lease is valid for: its name loaded under the lease's epoch.
    fn entry(&self, lease: &ModelLease) -> LlmResult<&LoadedEntry> {
        match self.loaded.get(&lease.name) {
            Some(e) if e.epoch == lease.epoch => Ok(e),
            _ => Err(LlmError::Unloaded(format!(
                "model '{}' was unloaded; load it again",
                lease.name
            ))),
        }
    }

    /// Live sessions of this guest.
    pub fn session_count(&self) -> usize {
        Arc::strong_count(&self.live_sessions) - 1
    }

    /// A ticket for a new session over the lease's model.
    pub fn session_ticket(&self, lease: &ModelLease) -> LlmResult<SessionTicket> {
        let entry = self.entry(lease)?;
        Ok(SessionTicket {
            _model_use: Arc::clone(&entry.sessions),
            _guest_use: Arc::clone(&self.live_sessions),
        })
    }

    /// What this guest has loaded, loaded names first, then draining ones.
    pub fn loaded(&mut self) -> Vec<LoadedModelState> {
        self.draining.retain(|d| d.sessions.strong_count() > 0);
        let mut out: Vec<_> = self
            .loaded
            .iter()
            .map(|(name, e)| LoadedModelState {
                name: name.clone(),
                state: ModelState::Loaded,
                sessions: (Arc::strong_count(&e.sessions) - 1) as u32,
                file_size: e.model.info().file_size,
                gpu_layers: e.model.info().gpu_layers,
            })
            .collect();
        out.extend(self.draining.iter().map(|d| LoadedModelState {
            name: d.name.clone(),
            state: ModelState::Draining,
            sessions: d.sessions.strong_count() as u32,
            file_size: d.file_size,
            gpu_layers: d.gpu_layers,
        }));
        out
    }

    /// Unload a name: its leases stop working at once; sessions over it drain.
    pub fn unload(&mut self, name: &str) -> LlmResult<()> {
        let Some(entry) = self.loaded.remove(name) else {
            return Err(LlmError::NotFound(format!("model '{name}' is not loaded")));
        };
        let sessions = Arc::downgrade(&entry.sessions);
        let info = entry.model.info();
        let draining = Draining {
            name: name.to_string(),
            file_size: info.file_size,
            gpu_layers: info.gpu_layers,
            sessions,
        };
        drop(entry);
        if draining.sessions.strong_count() > 0 {
            self.draining.push(draining);
        }
        Ok(())
    }
}
