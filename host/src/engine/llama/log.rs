//! llama.cpp's log, and the capture of the errors it logs during a call.
//!
//! llama.cpp's C API often says only NULL when it fails and logs the reason. The log callback
//! forwards every line to `tracing` (target `llama.cpp`) and, while a thread runs a call under
//! [`capture_errors`], keeps that thread's error lines for the call's own error message. The
//! capture is per thread, so one call's failure is never explained with another thread's error.
//! This is the only module that reads llama.cpp's log.

use std::cell::RefCell;

/// Most error lines kept for one call.
const MAX_CAPTURED: usize = 4;

thread_local! {
    /// The error lines llama.cpp logged on this thread during [`capture_errors`].
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Run `f` and return what it returned with the errors llama.cpp logged on this thread while it
/// ran (the first, the cause, first), if any.
pub fn capture_errors<T>(f: impl FnOnce() -> T) -> (T, Option<String>) {
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
            // `try_with`: a line logged while this thread's locals are torn down is not kept.
            let _ = CAPTURED.try_with(|c| {
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

/// Send llama.cpp's and ggml's log to [`log_to_tracing`]. Idempotent.
pub(super) fn install() {
    // SAFETY: the callback is a plain function that only reads the string it is given.
    unsafe {
        llama_cpp_sys_2::llama_log_set(Some(log_to_tracing), std::ptr::null_mut());
        llama_cpp_sys_2::ggml_log_set(Some(log_to_tracing), std::ptr::null_mut());
    }
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
