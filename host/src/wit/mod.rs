//! The `tabagent:llm` WIT interfaces over the [`registry`](crate::registry): one module per
//! interface (`hardware`, `models`, `inference`, `pulls`), each converting between WIT records and the
//! crate's own types; the resources they hand out ([`resources`]); the per-guest state and the
//! view host calls borrow ([`LlmCtx`], [`LlmView`]).
//!
//! This is the only place that knows the generated bindings, and they stay private: the
//! library's API is in the crate's types. Guest mistakes come back as `types.error` values
//! (from [`crate::LlmError`]); a bad handle or a host bug traps.

mod bindings;
mod error;
mod hardware;
mod inference;
mod models;
mod pulls;
pub mod resources;
#[cfg(test)]
mod tests;
mod view;

pub use error::HostError;
pub use resources::{CompletionResource, ModelResource, PullResource, SessionResource};
pub use view::{LlmCtx, LlmView, LlmViewProvider, add_to_linker};
