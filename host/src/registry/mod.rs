//! The models every guest of one host shares, independent of any front end.
//!
//! A [`Registry`] holds the engine, the [`Resolver`] that turns granted sources into files an
//! engine can open, and the loaded weights: guests that load the same source with the same
//! options share one copy. Each (source, options) pair has its own load slot, so parallel loads
//! of one model load it once while loads of different models run side by side. What one guest
//! has loaded, and the loaded/draining lifecycle of its names, is a [`GuestModels`]; the WIT
//! glue, and next the `wasi:nn`, HTTP and native-messaging front ends and hub pulls, use both as
//! they are.

mod guest;
mod shared;

pub use guest::{GuestModels, LoadedModelState, ModelLease, ModelState, SessionTicket};
pub use shared::Registry;
