//! # tabagent-host
//!
//! Runs sandboxed WebAssembly components against local GGUF models. Guests import the
//! `tabagent:llm` WIT interfaces (`hardware`, `models`, `inference`); this crate implements them
//! with llama.cpp and runs guests with wasmtime and WASI preview 2.
//!
//! The layers, from the guest inwards:
//! - [`runtime`]: wasmtime engine, linker and one store per guest run ([`runtime::Host`]);
//! - [`ctx`]: the WIT glue — grants, limits, parameter checks, resources, error mapping;
//! - [`engine`]: the [`engine::Engine`] trait with the llama.cpp engine and a fake for tests;
//! - [`hardware`]: CPU, memory and layer-split facts;
//! - [`sandbox`]: per-guest limits (deadline, fuel, memory, tables);
//! - [`gguf`]: a bounded GGUF header reader.
//!
//! Embedding example:
//!
//! ```no_run
//! use tabagent_host::runtime::{GuestConfig, Host, Stdio};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let host = Host::with_llama()?;
//! let app = host.compile_file("chat.wasm".as_ref())?;
//! let mut guest = GuestConfig { stdio: Stdio::Inherit, ..GuestConfig::default() };
//! guest.models.insert("smollm2".into(), "models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
//! guest.args = vec!["Hello!".into()];
//! let outcome = host.run(&app, guest).await?;
//! assert_eq!(outcome.exit_code, 0);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

#[allow(missing_docs)]
pub mod bindings;
pub mod config;
pub mod ctx;
pub mod engine;
pub mod hardware;
pub mod modelfile;
pub mod runtime;
pub mod sandbox;

pub use tabagent_gguf as gguf;
