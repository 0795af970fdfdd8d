//! The resources the glue hands to guests. Each holds crate types only; a guest's table owns
//! them, and dropping one releases what it holds (a lease, a session, a generation).

use crate::engine::{GenerationStream, GenerationSummary, Model, Session, StreamEvent};
use crate::hub::PullTask;
use crate::registry::{ModelLease, SessionTicket};
use std::sync::Arc;

/// The `model` resource: a guest's lease on a loaded model.
pub struct ModelResource(pub(super) ModelLease);

/// The `session` resource.
pub struct SessionResource {
    pub(super) session: Arc<dyn Session>,
    pub(super) seed: u64,
    pub(super) _model: Arc<dyn Model>,
    pub(super) _ticket: SessionTicket,
}

/// The `completion` resource.
pub struct CompletionResource {
    pub(super) stream: GenerationStream,
    /// An event read ahead while joining pieces.
    pub(super) pending: Option<StreamEvent>,
    pub(super) outcome: Option<GenerationSummary>,
    pub(super) failed: bool,
}

/// The `pull` resource: a pull running in the host. Dropping it leaves the pull running to
/// its end (others may share it), but this guest no longer sees it.
pub struct PullResource(pub(super) Arc<PullTask>);
