//! What a host call returns on failure: an error value for the guest, or a trap.

use crate::error::LlmError;
use wasmtime::component::ResourceTableError;

/// A failed host call: an error value for the guest, or a trap.
#[derive(Debug)]
pub enum HostError {
    /// Returned to the guest as a `types.error` value.
    Guest(LlmError),
    /// Traps the guest (bad handle, host bug).
    Trap(wasmtime::Error),
}

impl From<LlmError> for HostError {
    fn from(e: LlmError) -> Self {
        Self::Guest(e)
    }
}

impl From<ResourceTableError> for HostError {
    fn from(e: ResourceTableError) -> Self {
        Self::Trap(e.into())
    }
}

impl From<wasmtime::Error> for HostError {
    fn from(e: wasmtime::Error) -> Self {
        Self::Trap(e)
    }
}

impl From<tokio::task::JoinError> for HostError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Guest(LlmError::runtime(format!("engine task failed: {e}")))
    }
}

/// The result of a host call.
pub(super) type HostResult<T> = Result<T, HostError>;
