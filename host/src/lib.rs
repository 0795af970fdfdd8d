//! # tabagent-host
//!
//! Runs sandboxed WebAssembly components against local GGUF models. Guests import the
//! `tabagent:llm` WIT interfaces (`hardware`, `models`, `inference`); this crate implements them
//! with llama.cpp and runs guests with wasmtime and WASI preview 2.
//!
//! The layers, from the guest inwards:
//! - [`runtime`]: wasmtime engine, linker and one store per guest run ([`runtime::Host`]), one
//!   entry point per world, typed run errors ([`runtime::RunError`]);
//! - [`wit`]: the WIT glue, one module per interface, over the registry;
//! - [`registry`]: grants, shared weights with one load per model, the loaded/draining
//!   lifecycle — independent of WIT, shared by every front end;
//! - [`params`]: requests and their checks (session, sampling, load options, limits);
//! - [`source`] and [`format`]: where a granted model comes from, and what its file is;
//! - [`engine`]: the [`engine::Engine`] trait with the llama.cpp engine and a fake for tests;
//! - [`remote`]: models served by OpenAI-compatible servers, behind the same model traits;
//! - [`hardware`]: CPU, memory and layer-split facts; [`sandbox`]: per-guest limits;
//! - [`gguf`]: a bounded GGUF header reader.
//!
//! Embedding example:
//!
//! ```no_run
//! use tabagent_host::runtime::{GuestConfig, Host, Stdio};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let host = Host::with_llama()?;
//! let app = host.load_command("chat.wasm".as_ref())?;
//! let mut guest = GuestConfig { stdio: Stdio::Inherit, ..GuestConfig::default() };
//! guest.models.insert("smollm2".into(), "models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
//! guest.args = vec!["Hello!".into()];
//! let outcome = host.run(&app, guest).await?;
//! assert_eq!(outcome.exit_code, 0);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod engine;
pub mod error;
pub mod format;
pub mod hardware;
pub mod hub;
pub mod nn;
pub mod params;
pub mod registry;
pub mod remote;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod source;
pub mod template;
pub mod tools;
pub mod wit;

pub use error::{LlmError, LlmResult};
pub use tabagent_gguf as gguf;
