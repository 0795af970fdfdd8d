//! Crash containment at load: each new model file is first loaded by llama.cpp in a child
//! process (`tabagent-host probe-model PATH`), so a file that makes llama.cpp abort kills only
//! the child. Verdicts are kept per file (path, size, modification time).

use super::backend::backend;
use super::log::capture_errors;
use crate::error::LlmError;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// A file as the probe saw it: path, size and modification time.
type FileKey = (PathBuf, u64, Option<SystemTime>);

/// How long a probe may take before the file is refused.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// The end of the child's output kept for the message.
const KEPT_OUTPUT: usize = 8 << 10;

/// A child-process load check.
#[derive(Debug)]
pub(crate) struct LoadProbe {
    program: PathBuf,
    args: Vec<String>,
    verdicts: Mutex<HashMap<FileKey, Result<(), String>>>,
}

impl LoadProbe {
    /// A probe that runs `program args… PATH`.
    pub(crate) fn new(program: PathBuf, args: Vec<String>) -> Self {
        Self { program, args, verdicts: Mutex::new(HashMap::new()) }
    }

    /// The verdict on a file, from memory or from a new child process. Probes of different
    /// files run in parallel.
    pub(crate) fn check(
        &self,
        path: &Path,
        size: u64,
        modified: Option<SystemTime>,
    ) -> Result<(), LlmError> {
        let key = (path.to_path_buf(), size, modified);
        if let Some(v) = self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return v.clone().map_err(LlmError::InvalidInput);
        }
        let verdict = self.run(path);
        self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).insert(key, verdict.clone());
        verdict.map_err(LlmError::InvalidInput)
    }

    fn run(&self, path: &Path) -> Result<(), String> {
        use std::process::{Command, Stdio};
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .arg(path)
            .env("GGML_NO_BACKTRACE", "1")
            // The child's own, quiet log level, whatever the parent's: its output is read only
            // for the message of a refusal.
            .env("TABAGENT_LOG", "warn,llama.cpp=off,wasmtime_wasi_nn=off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the load probe {}: {e}", self.program.display()))?;
        // Drain the child's output while it runs (a full pipe would block it forever), keeping
        // the end of it.
        let drain = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                use std::io::Read;
                let mut kept: Vec<u8> = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = e.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > 2 * KEPT_OUTPUT {
                        kept.drain(..kept.len() - KEPT_OUTPUT);
                    }
                }
                String::from_utf8_lossy(&kept).into_owned()
            })
        });
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() > PROBE_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{}: llama.cpp did not finish loading it within {PROBE_TIMEOUT:?} in a probe process; refused",
                        path.display()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("the load probe failed: {e}")),
            }
        };
        let stderr = drain.and_then(|d| d.join().ok()).unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(signal) = status.signal() {
                return Err(format!(
                    "{}: llama.cpp crashed (signal {signal}) while loading it in a probe process; refused{}",
                    path.display(),
                    if last.is_empty() { String::new() } else { format!(" ({last})") }
                ));
            }
        }
        Err(format!("{}: llama.cpp could not load it in a probe process: {last}", path.display()))
    }
}

/// The probe's side: load a model file with llama.cpp, without the Rust checks, and make a small
/// context. Meant to run in a child process (`tabagent-host probe-model PATH`); a crash here is
/// what the probe exists to catch.
pub fn probe_model_file(path: &Path) -> Result<(), LlmError> {
    let backend = backend()?;
    let (model, why) =
        // On the CPU only: the probe checks the parser, not the device upload.
        capture_errors(|| {
            LlamaModel::load_from_file(backend, path, &LlamaModelParams::default().with_n_gpu_layers(0))
        });
    let model = model.map_err(|e| {
        let why = why.unwrap_or_else(|| e.to_string());
        LlmError::runtime(format!("llama.cpp could not load {}: {why}", path.display()))
    })?;
    let params = LlamaContextParams::default().with_n_ctx(NonZeroU32::new(256)).with_n_batch(32);
    model
        .new_context(backend, params)
        .map_err(|e| LlmError::runtime(format!("llama.cpp could not create a context: {e}")))?;
    Ok(())
}
