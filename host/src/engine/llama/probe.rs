//! Crash containment at load: each new model file is first loaded by llama.cpp in a child
//! process (`tabagent-host probe-model PATH`), so a file that makes llama.cpp abort kills only
//! the child. Verdicts are kept in memory and, across runs, in the host's cache folder
//! ([`super::verdicts`]); a file is probed again once it changes.

use super::backend::backend;
use super::log::capture_errors;
use super::verdicts::{Verdict, VerdictStore, host_cache_dir};
use crate::error::LlmError;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A file as this process saw it: path, size and modification time.
type FileKey = (PathBuf, u64, Option<SystemTime>);

/// The end of the child's output kept for the message.
const KEPT_OUTPUT: usize = 8 << 10;

/// Whether verdicts from earlier runs are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbeMode {
    /// Probe a file the first time it is seen, and again only once it changed.
    #[default]
    Auto,
    /// Probe every file once in every run, whatever earlier runs found (their verdicts are
    /// still updated).
    Always,
}

/// How an engine probes new model files.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The program to run, with `args` and then the file's path; it must load the file with
    /// [`probe_model_file`] and exit 0.
    pub program: PathBuf,
    /// Its arguments before the path.
    pub args: Vec<String>,
    /// Whether verdicts from earlier runs are used.
    pub mode: ProbeMode,
    /// How long a probe may take before the file is refused.
    pub timeout: Duration,
    /// Where verdicts are kept across runs; `None`: only in this process.
    pub cache_dir: Option<PathBuf>,
}

impl ProbeConfig {
    /// Probing with `program args… PATH`, verdicts kept under the host's cache folder
    /// (`TABAGENT_CACHE_DIR`, else `$XDG_CACHE_HOME/tabagent`, else `~/.cache/tabagent`), a
    /// probe timing out after two minutes.
    pub fn new(program: PathBuf, args: Vec<String>) -> Self {
        Self {
            program,
            args,
            mode: ProbeMode::Auto,
            timeout: Duration::from_secs(120),
            cache_dir: host_cache_dir().map(|d| d.join("load-probe")),
        }
    }
}

/// What a child's run came to.
enum Outcome {
    /// A verdict on the file, worth keeping.
    Verdict(Verdict),
    /// No verdict (the probe timed out or could not start): the file is refused this time and
    /// probed again next time.
    Failed(String),
}

/// A child-process load check.
#[derive(Debug)]
pub(crate) struct LoadProbe {
    config: ProbeConfig,
    store: Option<VerdictStore>,
    verdicts: Mutex<HashMap<FileKey, Verdict>>,
    started: AtomicUsize,
}

impl LoadProbe {
    /// A probe as `config` says.
    pub(crate) fn new(config: ProbeConfig) -> Self {
        let store =
            config.cache_dir.clone().map(|d| VerdictStore::new(d, &config.program, &config.args));
        Self { config, store, verdicts: Mutex::new(HashMap::new()), started: AtomicUsize::new(0) }
    }

    /// Probe processes started so far.
    pub(crate) fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    /// The verdict on a file: from this process's memory, from an earlier run's (in
    /// [`ProbeMode::Auto`]), or from a new child process. Probes of different files run in
    /// parallel.
    pub(crate) fn check(
        &self,
        path: &Path,
        size: u64,
        modified: Option<SystemTime>,
    ) -> Result<(), LlmError> {
        let memo = (path.to_path_buf(), size, modified);
        if let Some(v) = self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).get(&memo) {
            return judged(path, v, "");
        }
        let key = self.store.as_ref().and_then(|s| s.key(path));
        if self.config.mode == ProbeMode::Auto
            && let (Some(store), Some(key)) = (&self.store, &key)
            && let Some(v) = store.get(key)
        {
            tracing::debug!("load probe: {} judged by an earlier run", path.display());
            let r = judged(path, &v, EARLIER);
            self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).insert(memo, v);
            return r;
        }
        tracing::debug!("load probe: starting a probe process for {}", path.display());
        self.started.fetch_add(1, Ordering::Relaxed);
        match self.run(path) {
            Outcome::Verdict(v) => {
                if let (Some(store), Some(key)) = (&self.store, &key) {
                    store.put(key, &v);
                }
                let r = judged(path, &v, "");
                self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).insert(memo, v);
                r
            }
            Outcome::Failed(why) => {
                Err(LlmError::InvalidInput(format!("{}: {why}", path.display())))
            }
        }
    }

    fn run(&self, path: &Path) -> Outcome {
        use std::process::{Command, Stdio};
        let mut child = match Command::new(&self.config.program)
            .args(&self.config.args)
            .arg(path)
            .env("GGML_NO_BACKTRACE", "1")
            // The child's own, quiet log level, whatever the parent's: its output is read only
            // for the message of a refusal.
            .env("TABAGENT_LOG", "warn,llama.cpp=off,wasmtime_wasi_nn=off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed(format!(
                    "cannot start the load probe {}: {e}",
                    self.config.program.display()
                ));
            }
        };
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
        let timeout = self.config.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() > timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Outcome::Failed(format!(
                        "llama.cpp did not finish loading it within {timeout:?} in a probe process \
                         (stopped); refused this time, probed again on the next load"
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Outcome::Failed(format!("the load probe failed: {e}")),
            }
        };
        let stderr = drain.and_then(|d| d.join().ok()).unwrap_or_default();
        if status.success() {
            return Outcome::Verdict(Verdict::Loads);
        }
        let last = last_words(&stderr);
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(signal) = status.signal() {
                return Outcome::Verdict(Verdict::Refused(format!(
                    "llama.cpp crashed ({}) while loading it in a probe process; refused{}",
                    signal_name(signal),
                    if last.is_empty() { String::new() } else { format!(": {last}") }
                )));
            }
        }
        Outcome::Verdict(Verdict::Refused(format!(
            "llama.cpp could not load it in a probe process: {}",
            if last.is_empty() { format!("it exited with {status}") } else { last }
        )))
    }
}

/// Said of a refusal found in the cache folder.
const EARLIER: &str = " (found by an earlier probe of this same file; it is probed again once \
                       it changes, or with --probe always)";

fn judged(path: &Path, v: &Verdict, remark: &str) -> Result<(), LlmError> {
    match v {
        Verdict::Loads => Ok(()),
        Verdict::Refused(why) => {
            Err(LlmError::InvalidInput(format!("{}: {why}{remark}", path.display())))
        }
    }
}

/// The last non-empty line the child wrote, with an `error:` prefix of ours taken off.
fn last_words(stderr: &str) -> String {
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// A signal's number and name.
fn signal_name(signal: i32) -> String {
    let name = match signal {
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        _ => "",
    };
    if name.is_empty() { format!("signal {signal}") } else { format!("signal {signal}, {name}") }
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
