//! The process-wide llama.cpp backend: started once, with the CPU kernels picked for this CPU.

use super::cpu_variants::{self, BackendConfig};
use super::log;
use crate::engine::CpuKernels;
use crate::error::LlmError;
use llama_cpp_2::llama_backend::LlamaBackend;
use std::sync::OnceLock;

/// The process-wide backend and the CPU kernels it was started with.
static BACKEND: OnceLock<Result<(LlamaBackend, CpuKernels), LlmError>> = OnceLock::new();

/// How the backend finds and picks its CPU kernels; fixed when it starts.
static CONFIG: OnceLock<BackendConfig> = OnceLock::new();

/// Choose where the backend finds its CPU kernels and which variant it uses, instead of
/// [`BackendConfig::from_env`]. Fails once the backend has started or was configured.
pub fn configure(config: BackendConfig) -> Result<(), LlmError> {
    if BACKEND.get().is_some() {
        return Err(LlmError::runtime("the llama.cpp backend has already started"));
    }
    CONFIG.set(config).map_err(|_| LlmError::runtime("the llama.cpp backend is already configured"))
}

/// The process-wide llama.cpp backend, initialised on first use: the best CPU kernels for this
/// CPU (see [`cpu_variants`]) and any GPU backend modules are registered first. llama.cpp's own
/// logging goes to `tracing` (target `llama.cpp`), so it is silent unless asked for.
pub fn backend() -> Result<&'static LlamaBackend, LlmError> {
    started().map(|(backend, _)| backend)
}

/// The CPU kernels the backend computes with; starts the backend.
pub fn cpu_kernels() -> Result<&'static CpuKernels, LlmError> {
    started().map(|(_, kernels)| kernels)
}

fn started() -> Result<&'static (LlamaBackend, CpuKernels), LlmError> {
    BACKEND
        .get_or_init(|| {
            log::install();
            let config = CONFIG.get_or_init(BackendConfig::from_env);
            // Keep the error's kind (not-found, unsupported, invalid-input): it says whose
            // fault it is.
            let kernels = cpu_variants::load(config)?;
            let backend = LlamaBackend::init().map_err(|e| {
                LlmError::runtime(format!("llama.cpp backend failed to start: {e}"))
            })?;
            Ok((backend, kernels))
        })
        .as_ref()
        .map_err(Clone::clone)
}
