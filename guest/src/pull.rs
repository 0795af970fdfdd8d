//! Pulls from the Hugging Face hub, where the user allows them (`--allow-pull`).

use crate::Error;
use crate::bindings::tabagent::llm::pulls as raw;

pub use raw::{PullProgress, PullState};

/// A pull running in the host; the app goes on while it runs.
pub struct Pull(raw::Pull);

impl Pull {
    /// Start pulling `reference` (`org/name[:FILE|:QUANT][@revision]`, or the name of a granted
    /// hub model). Returns at once.
    pub fn start(reference: &str) -> Result<Self, Error> {
        Ok(Self(raw::start(reference)?))
    }

    /// What is being pulled.
    pub fn reference(&self) -> String {
        self.0.reference()
    }

    /// Its progress now.
    pub fn progress(&self) -> PullProgress {
        self.0.progress()
    }

    /// Wait up to `timeout_ms` for the pull's state to change; its progress then.
    pub fn wait(&self, timeout_ms: u32) -> PullProgress {
        self.0.wait(timeout_ms)
    }

    /// Wait for the end, calling `each` with every progress seen; the pull's error if it failed.
    pub fn finish(&self, mut each: impl FnMut(&PullProgress)) -> Result<PullProgress, Error> {
        loop {
            let p = self.0.wait(250);
            each(&p);
            match p.state {
                PullState::Done => return Ok(p),
                PullState::Failed => {
                    return Err(p
                        .error
                        .map_or_else(|| Error::Runtime("pull failed".into()), Error::from));
                }
                _ => {}
            }
        }
    }
}

/// The WIT name of a pull's state (`queued`, `checking`, `waiting`, `downloading`, …).
pub fn pull_state_name(s: PullState) -> &'static str {
    match s {
        PullState::Queued => "queued",
        PullState::Checking => "checking",
        PullState::Waiting => "waiting",
        PullState::Downloading => "downloading",
        PullState::Verifying => "verifying",
        PullState::Done => "done",
        PullState::Failed => "failed",
    }
}

/// The repository patterns this app may pull from.
pub fn allowed_pulls() -> Vec<String> {
    raw::allowed()
}
