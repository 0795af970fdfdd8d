//! A pull running on a thread of its own, watched through its tracker: what a guest starts and
//! polls while it goes on with other work. A model already in the cache is done at once, without
//! the network.

use super::{CachedModel, Hub, HubError, HubRef, HubResult, PullStatus, PullTracker};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A pull in the background.
pub struct PullTask {
    reference: HubRef,
    tracker: PullTracker,
    result: Mutex<Option<HubResult<CachedModel>>>,
}

impl std::fmt::Debug for PullTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullTask").field("reference", &self.reference).finish_non_exhaustive()
    }
}

impl PullTask {
    pub(crate) fn spawn(hub: Arc<Hub>, reference: HubRef) -> HubResult<Arc<Self>> {
        let task =
            Arc::new(Self { reference, tracker: PullTracker::new(), result: Mutex::new(None) });
        let t = Arc::clone(&task);
        std::thread::Builder::new()
            .name("tabagent-pull".into())
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    hub.ensure(&t.reference, super::PullPolicy::Missing, &t.tracker)
                }))
                .unwrap_or_else(|_| {
                    let e = HubError::Io("the pull stopped on an internal error".into());
                    t.tracker.fail(&e);
                    Err(e)
                });
                *t.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            })
            .map_err(|e| HubError::Io(format!("cannot start a pull thread: {e}")))?;
        Ok(task)
    }

    /// Whether the pull has ended (its result is stored).
    pub fn finished(&self) -> bool {
        self.result.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Ask the pull to stop; what it received is kept for the next pull.
    pub fn cancel(&self) {
        self.tracker.cancel();
    }

    /// What is being pulled.
    pub fn reference(&self) -> &HubRef {
        &self.reference
    }

    /// Its tracker.
    pub fn tracker(&self) -> &PullTracker {
        &self.tracker
    }

    /// Its status now.
    pub fn status(&self) -> PullStatus {
        self.tracker.status()
    }

    /// Wait up to `timeout` for the status to move on from `seen`.
    pub fn wait_change(&self, seen: &PullStatus, timeout: Duration) -> PullStatus {
        self.tracker.wait_change(seen, timeout)
    }

    /// The model, once the pull is done.
    pub fn result(&self) -> Option<HubResult<CachedModel>> {
        // The thread stores its result just after the tracker shows the final state.
        for _ in 0..200 {
            if let Some(r) = self.result.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return Some(r);
            }
            if !self.tracker.status().state.is_final() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}
