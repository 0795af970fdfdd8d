//! The process-wide llama.cpp backend, and the capture of llama.cpp's logged errors.
//!
//! llama.cpp's C API often says only NULL when it fails and logs the reason. The log callback
//! here forwards every line to `tracing` (target `llama.cpp`) and, while a thread runs a call
//! under [`capture_errors`], keeps that thread's error lines for the call's own error message.
//! The capture is per thread, so one call's failure is never explained with another thread's
//! error.

use super::cpu_variants::{self, BackendConfig};
use crate::engine::CpuKernels;
use crate::error::LlmError;
use llama_cpp_2::llama_backend::LlamaBackend;
use std::cell::RefCell;
use std::sync::OnceLock;

/// The process-wide backend and the CPU kernels it was started with.
static BACKEND: OnceLock<Result<(LlamaBackend, CpuKernels), LlmError>> = OnceLock::new();

/// How the backend finds and picks its CPU kernels; fixed when it starts.
static CONFIG: OnceLock<BackendConfig> = OnceLock::new();

/// Most error lines kept for one call.
const MAX_CAPTURED: usize = 4;

thread_local! {
    /// The error lines llama.cpp logged on this thread during [`capture_errors`].
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Run `f` and return what it returned with the errors llama.cpp logged on this thread while it
/// ran (the first, the cause, first), if any.
pub(crate) fn capture_errors<T>(f: impl FnOnce() -> T) -> (T, Option<String>) {
    let outer = CAPTURED.with(|c| c.replace(Some(Vec::new())));
    let result = f();
    let errors = CAPTURED.with(|c| c.replace(outer)).unwrap_or_default();
    (result, (!errors.is_empty()).then(|| errors.join("; ")))
}

/// llama.cpp's and ggml's log callback: forward to `tracing` (target `llama.cpp`) and keep
/// error lines for the call that is capturing on this thread.
unsafe extern "C" fn log_to_tracing(
    level: llama_cpp_sys_2::ggml_log_level,
    text: *const std::os::raw::c_char,
    _: *mut std::os::raw::c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string that lives for the call.
    let text = unsafe { std::ffi::CStr::from_ptr(text) }.to_string_lossy();
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    match level {
        llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR => {
            tracing::error!(target: "llama.cpp", "{text}");
            CAPTURED.with(|c| {
                if let Ok(mut c) = c.try_borrow_mut()
                    && let Some(errors) = c.as_mut()
                    && errors.len() < MAX_CAPTURED
                {
                    errors.push(text.to_string());
                }
            });
        }
        llama_cpp_sys_2::GGML_LOG_LEVEL_WARN => tracing::warn!(target: "llama.cpp", "{text}"),
        llama_cpp_sys_2::GGML_LOG_LEVEL_INFO => tracing::info!(target: "llama.cpp", "{text}"),
        _ => tracing::debug!(target: "llama.cpp", "{text}"),
    }
}

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
            // SAFETY: the callback is a plain function that only reads the string it is given.
            unsafe {
                llama_cpp_sys_2::llama_log_set(Some(log_to_tracing), std::ptr::null_mut());
                llama_cpp_sys_2::ggml_log_set(Some(log_to_tracing), std::ptr::null_mut());
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An error logged on one thread is not reported by a call capturing on another.
    #[test]
    fn captured_errors_belong_to_the_thread_that_logged_them() {
        let log = |text: &str| {
            let c = std::ffi::CString::new(text).unwrap();
            // SAFETY: a valid NUL-terminated string for the duration of the call.
            unsafe {
                log_to_tracing(
                    llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR,
                    c.as_ptr(),
                    std::ptr::null_mut(),
                )
            };
        };
        let ((), mine) = capture_errors(|| {
            std::thread::spawn(move || log("another thread's error")).join().unwrap();
            log("my error");
        });
        assert_eq!(mine.as_deref(), Some("my error"));
        let ((), none) = capture_errors(|| ());
        assert_eq!(none, None);
        // Outside a capture nothing is kept.
        log("nobody's error");
        let ((), nested) = capture_errors(|| {
            let ((), inner) = capture_errors(|| log("inner"));
            assert_eq!(inner.as_deref(), Some("inner"));
            log("outer");
        });
        assert_eq!(nested.as_deref(), Some("outer"));
    }
}
