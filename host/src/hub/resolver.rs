//! The resolver for grants of both kinds: local files as they are, hub models from the cache
//! (pulled first when the policy allows).

use super::{Hub, HubRef, PullPolicy, PullTracker};
use crate::error::LlmResult;
use crate::source::{ModelSource, ResolvedModel, Resolver, resolve_file};
use std::sync::Arc;

/// Makes the tracker of a pull a load starts (the command line shows a progress bar with it).
pub type TrackerFactory = Arc<dyn Fn(&HubRef) -> PullTracker + Send + Sync>;

/// Resolves local files and hub models.
#[derive(Clone)]
pub struct HubResolver {
    hub: Arc<Hub>,
    policy: PullPolicy,
    trackers: Option<TrackerFactory>,
}

impl HubResolver {
    /// Resolve hub models through `hub` with `policy`.
    pub fn new(hub: Arc<Hub>, policy: PullPolicy) -> Self {
        Self { hub, policy, trackers: None }
    }

    /// Report the pulls that loads start to trackers made by `f`.
    pub fn with_trackers(mut self, f: TrackerFactory) -> Self {
        self.trackers = Some(f);
        self
    }

    /// The hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

impl Resolver for HubResolver {
    fn resolve(&self, source: &ModelSource) -> LlmResult<ResolvedModel> {
        match source {
            ModelSource::File(path) => resolve_file(path),
            ModelSource::Hub(r) => {
                let tracker = self.trackers.as_ref().map_or_else(PullTracker::new, |f| f(r));
                let model = self.hub.ensure(r, self.policy, &tracker)?;
                resolve_file(&model.path)
            }
            ModelSource::Remote(r) => Err(crate::source::not_a_file(r)),
        }
    }
}
