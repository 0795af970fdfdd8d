//! `tabagent:llm/pulls`: guest-started pulls of allowed hub repositories, watched without
//! blocking the guest.

use super::bindings::pulls as wit;
use super::error::HostResult;
use super::resources::PullResource;
use super::view::LlmView;
use crate::error::LlmError;
use crate::hub::{HubRef, PullState, PullStatus, pattern_matches};
use crate::source::ModelSource;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::Resource;

/// The longest one `wait` call blocks.
const MAX_WAIT: Duration = Duration::from_secs(10);

fn to_wit(s: PullStatus) -> wit::PullProgress {
    wit::PullProgress {
        state: match s.state {
            PullState::Queued => wit::PullState::Queued,
            PullState::Checking => wit::PullState::Checking,
            PullState::Waiting => wit::PullState::Waiting,
            PullState::Downloading => wit::PullState::Downloading,
            PullState::Verifying => wit::PullState::Verifying,
            PullState::Done => wit::PullState::Done,
            PullState::Failed => wit::PullState::Failed,
        },
        bytes_done: s.bytes_done,
        bytes_total: s.bytes_total,
        file: s.file,
        files_done: u32::try_from(s.files_done).unwrap_or(u32::MAX),
        files_total: u32::try_from(s.files_total).unwrap_or(u32::MAX),
        error: s.hub_error.map(|e| super::view::to_wit_error(LlmError::from(e))),
    }
}

impl LlmView<'_> {
    /// The hub reference a guest names: a granted hub model's name, or a reference.
    fn pull_reference(&self, reference: &str) -> HostResult<HubRef> {
        match self.ctx.models.source(reference) {
            Ok(ModelSource::Hub(r)) => Ok(r),
            _ => Ok(HubRef::parse(reference).map_err(LlmError::from)?),
        }
    }
}

impl wit::Host for LlmView<'_> {
    async fn start(&mut self, reference: String) -> HostResult<Resource<PullResource>> {
        let granted = matches!(self.ctx.models.source(&reference), Ok(ModelSource::Hub(_)))
            && self.ctx.models.granted().contains(&reference);
        let r = self.pull_reference(&reference)?;
        let allowed = &self.ctx.allow_pull;
        if !granted && !allowed.iter().any(|p| pattern_matches(p, &r.repo)) {
            let why = if allowed.is_empty() {
                "this guest may not pull (the user allowed none: --allow-pull)".to_string()
            } else {
                format!("allowed: {}", allowed.join(", "))
            };
            return Err(LlmError::NotGranted(format!("pulls from {}: {why}", r.repo)).into());
        }
        let Some(hub) = self.ctx.models.registry().hub().cloned() else {
            return Err(LlmError::Unsupported("this host has no Hugging Face hub".into()).into());
        };
        self.check_room()?;
        let task = hub.start_pull(r).map_err(LlmError::from)?;
        self.push(PullResource(task))
    }

    async fn allowed(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.ctx.allow_pull.clone())
    }
}

impl wit::HostPull for LlmView<'_> {
    async fn reference(&mut self, pull: Resource<PullResource>) -> wasmtime::Result<String> {
        Ok(self.table.get(&pull)?.0.reference().to_string())
    }

    async fn progress(
        &mut self,
        pull: Resource<PullResource>,
    ) -> wasmtime::Result<wit::PullProgress> {
        Ok(to_wit(self.table.get(&pull)?.0.status()))
    }

    async fn wait(
        &mut self,
        pull: Resource<PullResource>,
        timeout_ms: u32,
    ) -> wasmtime::Result<wit::PullProgress> {
        let task = Arc::clone(&self.table.get(&pull)?.0);
        let mut timeout = Duration::from_millis(timeout_ms.into()).min(MAX_WAIT);
        if let Some(d) = self.ctx.deadline {
            timeout = timeout.min(d.saturating_duration_since(Instant::now()));
        }
        let seen = task.status();
        let status =
            tokio::task::spawn_blocking(move || task.tracker().wait_state(&seen, timeout)).await?;
        Ok(to_wit(status))
    }

    async fn drop(&mut self, pull: Resource<PullResource>) -> wasmtime::Result<()> {
        let task = Arc::clone(&self.table.get(&pull)?.0);
        self.delete(pull)?;
        // The pull's own thread holds one reference, and this was the last guest's: nobody
        // watches it any more.
        if Arc::strong_count(&task) <= 2 {
            task.cancel();
        }
        Ok(())
    }
}
