//! The local engine: llama.cpp through `llama-cpp-2`.
//!
//! One [`LlamaBackend`] per process. Each loaded model gets a scheduler thread that owns the
//! weights' llama.cpp contexts: one per session plus one for embeddings. Host calls reach it as
//! commands over a channel; running generations are stepped round-robin, one token (or one
//! prompt batch) at a time, so sessions over the same model make progress together and never
//! block the async runtime. Tokenization and templates need no context and run on the caller's
//! thread against the shared (`Arc`) weights.

use super::cpu_variants::{self, BackendConfig};
use super::{
    ChatMessage, CpuKernels, Engine, EngineError, FinishReason, GenerationStream,
    GenerationSummary, GpuDevice, LoadOptions, Model, ModelInfo, OutputAssembler, SamplingParams,
    Session, SessionOptions, StreamEvent, TokenId, Usage,
};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// The process-wide backend and the CPU kernels it was started with.
static BACKEND: OnceLock<Result<(LlamaBackend, CpuKernels), EngineError>> = OnceLock::new();

/// How the backend finds and picks its CPU kernels; fixed when it starts.
static CONFIG: OnceLock<BackendConfig> = OnceLock::new();

/// The errors llama.cpp logged since the last [`clear_last_error`] (at most 4), so that a failed
/// call can say why: llama.cpp's API often only returns NULL.
static LAST_ERROR: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// llama.cpp's and ggml's log callback: forward to `tracing` (target `llama.cpp`) and remember
/// the last error.
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
            let mut errors = LAST_ERROR.lock().unwrap_or_else(|e| e.into_inner());
            if errors.len() < 4 {
                errors.push(text.to_string());
            }
        }
        llama_cpp_sys_2::GGML_LOG_LEVEL_WARN => tracing::warn!(target: "llama.cpp", "{text}"),
        llama_cpp_sys_2::GGML_LOG_LEVEL_INFO => tracing::info!(target: "llama.cpp", "{text}"),
        _ => tracing::debug!(target: "llama.cpp", "{text}"),
    }
}

/// Forget the last llama.cpp error (before a call whose failure we want to explain).
pub(crate) fn clear_last_error() {
    LAST_ERROR.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// The errors llama.cpp logged since [`clear_last_error`], first (the cause) first, if any.
pub(crate) fn last_error() -> Option<String> {
    let errors = std::mem::take(&mut *LAST_ERROR.lock().unwrap_or_else(|e| e.into_inner()));
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// Choose where the backend finds its CPU kernels and which variant it uses, instead of
/// [`BackendConfig::from_env`]. Fails once the backend has started or was configured.
pub fn configure(config: BackendConfig) -> Result<(), EngineError> {
    if BACKEND.get().is_some() {
        return Err(EngineError::Runtime("the llama.cpp backend has already started".into()));
    }
    CONFIG
        .set(config)
        .map_err(|_| EngineError::Runtime("the llama.cpp backend is already configured".into()))
}

/// The process-wide llama.cpp backend, initialised on first use: the best CPU kernels for this
/// CPU (see [`cpu_variants`](super::cpu_variants)) and any GPU backend modules are registered
/// first. llama.cpp's own logging goes to `tracing` (target `llama.cpp`), so it is silent unless
/// asked for.
pub fn backend() -> Result<&'static LlamaBackend, EngineError> {
    started().map(|(backend, _)| backend)
}

/// The CPU kernels the backend computes with; starts the backend.
pub fn cpu_kernels() -> Result<&'static CpuKernels, EngineError> {
    started().map(|(_, kernels)| kernels)
}

fn started() -> Result<&'static (LlamaBackend, CpuKernels), EngineError> {
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
                EngineError::Runtime(format!("llama.cpp backend failed to start: {e}"))
            })?;
            Ok((backend, kernels))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The llama.cpp engine.
#[derive(Debug, Default, Clone)]
pub struct LlamaEngine {
    probe: Option<Arc<LoadProbe>>,
}

impl LlamaEngine {
    /// A handle to the engine; the backend starts on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine that first loads each new model file in a child process (`program args… PATH`,
    /// which must run [`probe_model_file`] and exit 0), so that a file that crashes llama.cpp
    /// takes down only the child. Verdicts are kept per file (path, size, modification time).
    pub fn with_probe(program: PathBuf, args: Vec<String>) -> Self {
        Self {
            probe: Some(Arc::new(LoadProbe {
                program,
                args,
                verdicts: Mutex::new(HashMap::new()),
            })),
        }
    }

    /// Run only the child-process probe on a file (no Rust checks first); `Ok` without a probe.
    pub fn probe(&self, path: &Path) -> Result<(), EngineError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| EngineError::NotFound(format!("model file {}: {e}", path.display())))?;
        backend()?;
        match &self.probe {
            Some(probe) => probe.check(path, &meta),
            None => Ok(()),
        }
    }
}

/// A file as the probe saw it: path, size and modification time.
type FileKey = (PathBuf, u64, Option<std::time::SystemTime>);

/// A child-process load check; see [`LlamaEngine::with_probe`].
#[derive(Debug)]
struct LoadProbe {
    program: PathBuf,
    args: Vec<String>,
    verdicts: Mutex<HashMap<FileKey, Result<(), String>>>,
}

/// How long a probe may take before the file is refused.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl LoadProbe {
    fn check(&self, path: &Path, meta: &std::fs::Metadata) -> Result<(), EngineError> {
        let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
        if let Some(v) = self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return v.clone().map_err(EngineError::InvalidInput);
        }
        let verdict = self.run(path);
        self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).insert(key, verdict.clone());
        verdict.map_err(EngineError::InvalidInput)
    }

    fn run(&self, path: &Path) -> Result<(), String> {
        use std::process::{Command, Stdio};
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .arg(path)
            .env("GGML_NO_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the load probe {}: {e}", self.program.display()))?;
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
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
                Err(e) => return Err(format!("the load probe failed: {e}")),
            }
        };
        if status.success() {
            return Ok(());
        }
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
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
pub fn probe_model_file(path: &Path) -> Result<(), EngineError> {
    let backend = backend()?;
    clear_last_error();
    let model =
        LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).map_err(|e| {
            let why = last_error().unwrap_or_else(|| e.to_string());
            EngineError::Runtime(format!("llama.cpp could not load {}: {why}", path.display()))
        })?;
    let params = LlamaContextParams::default().with_n_ctx(NonZeroU32::new(256)).with_n_batch(32);
    model
        .new_context(backend, params)
        .map_err(|e| EngineError::Runtime(format!("llama.cpp could not create a context: {e}")))?;
    Ok(())
}

impl Engine for LlamaEngine {
    fn name(&self) -> &str {
        "llama.cpp"
    }

    fn load(&self, path: &Path, options: &LoadOptions) -> Result<Arc<dyn Model>, EngineError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| EngineError::NotFound(format!("model file {}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(EngineError::NotFound(format!("{} is not a file", path.display())));
        }
        check_gguf_magic(path)?;
        crate::modelfile::check_model_file(path)
            .map_err(|e| EngineError::invalid(format!("{} was refused: {e}", path.display())))?;
        // The backend first: a failure to start it is the host's, not the file's (and must not
        // be cached as the probe's verdict on the file).
        let backend = backend()?;
        if let Some(probe) = &self.probe {
            probe.check(path, &meta)?;
        }
        let params = LlamaModelParams::default()
            .with_n_gpu_layers(options.gpu_layers)
            .with_use_mmap(options.use_mmap)
            .with_use_mlock(options.use_mlock);
        clear_last_error();
        let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| {
            let why = last_error().unwrap_or_else(|| e.to_string());
            EngineError::Runtime(format!("llama.cpp could not load {}: {why}", path.display()))
        })?;
        let offload = if self.gpus().is_empty() { 0 } else { options.gpu_layers };
        let info = read_info(&model, meta.len(), offload);
        let model = Arc::new(model);
        let (tx, rx) = mpsc::channel();
        let worker_model = Arc::clone(&model);
        std::thread::Builder::new()
            .name("llama-scheduler".into())
            .spawn(move || scheduler(worker_model, rx))
            .map_err(|e| EngineError::Runtime(format!("cannot start scheduler thread: {e}")))?;
        Ok(Arc::new(LlamaModelHandle { model, info, tx }))
    }

    fn gpus(&self) -> Vec<GpuDevice> {
        if backend().is_err() {
            return Vec::new();
        }
        llama_cpp_2::list_llama_ggml_backend_devices()
            .into_iter()
            .filter(|d| {
                matches!(
                    d.device_type,
                    llama_cpp_2::LlamaBackendDeviceType::Gpu
                        | llama_cpp_2::LlamaBackendDeviceType::IntegratedGpu
                )
            })
            .map(|d| GpuDevice {
                index: d.index as u32,
                name: d.name,
                description: d.description,
                backend: d.backend,
                memory_total: d.memory_total as u64,
                memory_free: d.memory_free as u64,
            })
            .collect()
    }

    fn cpu_kernels(&self) -> Result<CpuKernels, EngineError> {
        cpu_kernels().cloned()
    }
}

/// Refuse files that are not GGUF before llama.cpp sees them.
fn check_gguf_magic(path: &Path) -> Result<(), EngineError> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).map_err(|e| {
        EngineError::invalid(format!("{}: cannot read a GGUF header: {e}", path.display()))
    })?;
    if &magic != b"GGUF" {
        return Err(EngineError::invalid(format!(
            "{} is not a GGUF file (magic {:02x?}, expected \"GGUF\")",
            path.display(),
            magic
        )));
    }
    Ok(())
}

/// Name of a `general.file_type` value (llama.cpp's `llama_ftype`).
pub fn file_type_name(ftype: u32) -> String {
    let name = match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        other => return format!("unknown({other})"),
    };
    name.to_string()
}

fn read_info(model: &LlamaModel, file_size: u64, gpu_layers: u32) -> ModelInfo {
    let vocab = model.vocab();
    let n_vocab = model.n_vocab().max(0) as u32;
    let token = |t: LlamaToken| u32::try_from(t.0).ok().filter(|t| *t < n_vocab);
    ModelInfo {
        architecture: model.meta_val_str("general.architecture").unwrap_or_default(),
        display_name: model.meta_val_str("general.name").ok(),
        vocab_size: n_vocab,
        context_length: model.n_ctx_train(),
        embedding_size: model.n_embd().max(0) as u32,
        layer_count: model.n_layer(),
        head_count: model.n_head(),
        head_count_kv: model.n_head_kv(),
        parameter_count: model.n_params(),
        file_size,
        file_type: model
            .meta_val_str("general.file_type")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .map_or_else(|| "unknown".to_string(), file_type_name),
        bos_token: token(vocab.bos()),
        eos_token: token(vocab.eos()),
        newline_token: token(vocab.nl()),
        chat_template: model.chat_template(None).ok().and_then(|t| t.to_string().ok()),
        gpu_layers: gpu_layers.min(model.n_layer() + 1),
    }
}

/// A loaded model: shared weights plus the channel to its scheduler.
struct LlamaModelHandle {
    model: Arc<LlamaModel>,
    info: ModelInfo,
    tx: Sender<Command>,
}

impl LlamaModelHandle {
    fn check_tokens(&self, tokens: &[TokenId]) -> Result<(), EngineError> {
        check_tokens(tokens, self.info.vocab_size)
    }

    fn request<T>(&self, make: impl FnOnce(SyncSender<T>) -> Command) -> Result<T, EngineError> {
        request(&self.tx, make)
    }
}

fn check_tokens(tokens: &[TokenId], n_vocab: u32) -> Result<(), EngineError> {
    match tokens.iter().position(|t| *t >= n_vocab) {
        Some(i) => Err(EngineError::invalid(format!(
            "token {} at position {i} is outside the vocabulary (size {n_vocab})",
            tokens[i]
        ))),
        None => Ok(()),
    }
}

fn request<T>(
    tx: &Sender<Command>,
    make: impl FnOnce(SyncSender<T>) -> Command,
) -> Result<T, EngineError> {
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    tx.send(make(reply_tx))
        .map_err(|_| EngineError::Runtime("the model's scheduler thread has stopped".into()))?;
    reply_rx
        .recv()
        .map_err(|_| EngineError::Runtime("the model's scheduler thread has stopped".into()))
}

fn to_llama(tokens: &[TokenId]) -> Vec<LlamaToken> {
    tokens.iter().map(|t| LlamaToken(*t as i32)).collect()
}

impl Model for LlamaModelHandle {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<TokenId>, EngineError> {
        if text.len() >= i32::MAX as usize / 2 {
            return Err(EngineError::invalid("text is too long to tokenize"));
        }
        let tokens = self.model.vocab().tokenize(text.as_bytes(), add_special, parse_special);
        Ok(tokens.into_iter().map(|t| t.0 as u32).collect())
    }

    fn detokenize(&self, tokens: &[TokenId], render_special: bool) -> Result<String, EngineError> {
        self.check_tokens(tokens)?;
        let bytes = self.model.vocab().detokenize(&to_llama(tokens), false, render_special);
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_assistant: bool,
    ) -> Result<String, EngineError> {
        let template = self
            .model
            .chat_template(None)
            .map_err(|_| EngineError::Unsupported("the model file has no chat template".into()))?;
        let messages = messages
            .iter()
            .map(|m| {
                LlamaChatMessage::new(m.role.clone(), m.content.clone()).map_err(|_| {
                    EngineError::invalid("chat messages must not contain NUL characters")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.model.apply_chat_template(&template, &messages, add_assistant).map_err(|e| {
            EngineError::Unsupported(format!(
                "llama.cpp does not support this model's chat template: {e}"
            ))
        })
    }

    fn new_session(&self, options: &SessionOptions) -> Result<Box<dyn Session>, EngineError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let n_ctx =
            self.request(|reply| Command::NewSession { id, options: options.clone(), reply })??;
        Ok(Box::new(LlamaSession { id, n_ctx, n_vocab: self.info.vocab_size, tx: self.tx.clone() }))
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EngineError> {
        let mut inputs = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let tokens = self.model.vocab().tokenize(text.as_bytes(), true, false);
            if tokens.is_empty() {
                return Err(EngineError::invalid(format!("text {i} is empty")));
            }
            inputs.push(tokens);
        }
        self.request(|reply| Command::Embed { inputs, reply })?
    }
}

struct LlamaSession {
    id: u64,
    n_ctx: u32,
    n_vocab: u32,
    tx: Sender<Command>,
}

impl Session for LlamaSession {
    fn context_size(&self) -> u32 {
        self.n_ctx
    }

    fn generate(
        &self,
        prompt: Vec<TokenId>,
        params: SamplingParams,
    ) -> Result<GenerationStream, EngineError> {
        check_tokens(&prompt, self.n_vocab)?;
        let (events, stream) = GenerationStream::channel();
        let prompt = to_llama(&prompt);
        request(&self.tx, |reply| Command::Generate {
            id: self.id,
            prompt,
            params,
            events,
            reply,
        })??;
        Ok(stream)
    }
}

impl Drop for LlamaSession {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::DropSession { id: self.id });
    }
}

enum Command {
    NewSession {
        id: u64,
        options: SessionOptions,
        reply: SyncSender<Result<u32, EngineError>>,
    },
    DropSession {
        id: u64,
    },
    Generate {
        id: u64,
        prompt: Vec<LlamaToken>,
        params: SamplingParams,
        events: UnboundedSender<StreamEvent>,
        reply: SyncSender<Result<(), EngineError>>,
    },
    Embed {
        inputs: Vec<Vec<LlamaToken>>,
        reply: SyncSender<Result<Vec<Vec<f32>>, EngineError>>,
    },
}

struct SessionState<'m> {
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    n_ctx: u32,
    n_batch: u32,
    n_vocab: i32,
    /// Tokens whose keys and values are in the context, in order.
    cached: Vec<LlamaToken>,
    job: Option<Job>,
}

struct Job {
    prompt: Vec<LlamaToken>,
    /// Prompt tokens already in the KV cache.
    prefilled: usize,
    cached_tokens: usize,
    max_new: usize,
    sampler: LlamaSampler,
    out: OutputAssembler,
    generated: Vec<LlamaToken>,
    events: UnboundedSender<StreamEvent>,
    /// Whether to send pieces or only the final event.
    pieces: bool,
    deadline: Option<Instant>,
    /// Index in the last batch whose logits to sample from.
    logits_index: i32,
    started: Instant,
    prompt_done: Option<Instant>,
}

/// The scheduler loop of one model. Runs until every handle and session is dropped.
fn scheduler(model: Arc<LlamaModel>, rx: Receiver<Command>) {
    let Ok(backend) = backend() else { return };
    let model: &LlamaModel = &model;
    let mut sessions: HashMap<u64, SessionState<'_>> = HashMap::new();
    let mut embedder: Option<(LlamaContext<'_>, u32)> = None;
    loop {
        let busy = sessions.values().any(|s| s.job.is_some());
        let command = if busy {
            match rx.try_recv() {
                Ok(c) => Some(c),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(c) => Some(c),
                Err(_) => break,
            }
        };
        if let Some(command) = command {
            match command {
                Command::NewSession { id, options, reply } => {
                    let result = new_session_state(model, backend, &options).map(|s| {
                        let n = s.n_ctx;
                        sessions.insert(id, s);
                        n
                    });
                    let _ = reply.send(result);
                }
                Command::DropSession { id } => {
                    if let Some(mut s) = sessions.remove(&id)
                        && let Some(job) = s.job.take()
                    {
                        finish(job, FinishReason::Cancelled);
                    }
                }
                Command::Generate { id, prompt, params, events, reply } => {
                    let result = match sessions.get_mut(&id) {
                        Some(s) => start_job(s, prompt, params, events),
                        None => Err(EngineError::Runtime("unknown session".into())),
                    };
                    let _ = reply.send(result);
                }
                Command::Embed { inputs, reply } => {
                    let _ = reply.send(embed(model, backend, &mut embedder, &inputs));
                }
            }
            // Handle every waiting command before the next decode step.
            continue;
        }
        for state in sessions.values_mut() {
            if let Some(job) = state.job.take() {
                state.job = step(model, state, job);
            }
        }
    }
}

fn new_session_state<'m>(
    model: &'m LlamaModel,
    backend: &LlamaBackend,
    options: &SessionOptions,
) -> Result<SessionState<'m>, EngineError> {
    let threads = i32::try_from(options.threads).unwrap_or(i32::MAX);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(options.context_size))
        .with_n_batch(options.batch_size)
        .with_n_ubatch(options.batch_size)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let ctx = model.new_context(backend, params).map_err(|e| {
        EngineError::ResourceExhausted(format!(
            "llama.cpp could not create a context of {} tokens: {e}",
            options.context_size
        ))
    })?;
    let n_ctx = ctx.n_ctx();
    let n_batch = ctx.n_batch().min(n_ctx).max(1);
    Ok(SessionState {
        ctx,
        batch: LlamaBatch::new(n_batch as usize, 1),
        n_ctx,
        n_batch,
        n_vocab: model.n_vocab(),
        cached: Vec::new(),
        job: None,
    })
}

fn build_sampler(params: &SamplingParams, seed: u64, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if params.repeat_penalty != 1.0 {
        let window = i32::try_from(params.repeat_window).unwrap_or(i32::MAX);
        chain.push(LlamaSampler::penalties(n_vocab, window, params.repeat_penalty, 0.0, 0.0));
    }
    if params.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if params.top_k > 0 {
            chain.push(LlamaSampler::top_k(i32::try_from(params.top_k).unwrap_or(i32::MAX)));
        }
        if params.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(params.top_p, 1));
        }
        if params.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(params.min_p, 1));
        }
        chain.push(LlamaSampler::temp(params.temperature));
        chain.push(LlamaSampler::dist(fold_seed(seed)));
    }
    LlamaSampler::chain_simple(chain)
}

/// llama.cpp seeds are 32-bit and `u32::MAX` means "random": fold a 64-bit seed into the rest.
fn fold_seed(seed: u64) -> u32 {
    let folded = (seed ^ (seed >> 32)) as u32;
    if folded == u32::MAX { u32::MAX - 1 } else { folded }
}

fn start_job(
    s: &mut SessionState<'_>,
    prompt: Vec<LlamaToken>,
    params: SamplingParams,
    events: UnboundedSender<StreamEvent>,
) -> Result<(), EngineError> {
    // A job whose stream was dropped is abandoned; only a live one makes the session busy.
    if s.job.as_ref().is_some_and(|j| j.events.is_closed()) {
        s.job = None;
    }
    if s.job.is_some() {
        return Err(EngineError::invalid(
            "this session is already generating; finish or drop the previous completion first",
        ));
    }
    if prompt.is_empty() {
        return Err(EngineError::invalid("the prompt is empty"));
    }
    if prompt.len() >= s.n_ctx as usize {
        return Err(EngineError::invalid(format!(
            "the prompt has {} tokens but the session's context holds {}",
            prompt.len(),
            s.n_ctx
        )));
    }
    // Reuse the longest cached prefix; at least the last prompt token is decoded again so that
    // there are logits to sample from.
    let mut reuse = s.cached.iter().zip(&prompt).take_while(|(a, b)| a == b).count();
    reuse = reuse.min(prompt.len() - 1);
    let removed = s.ctx.clear_kv_cache_seq(Some(0), Some(reuse as u32), None).unwrap_or(false);
    if !removed {
        s.ctx.clear_kv_cache();
        reuse = 0;
    }
    s.cached.truncate(reuse);
    let mut sampler = build_sampler(&params, params.seed, s.n_vocab);
    let window = params.repeat_window as usize;
    sampler.accept_many(&prompt[prompt.len().saturating_sub(window)..]);
    let room = s.n_ctx as usize - prompt.len();
    s.job = Some(Job {
        max_new: (params.max_tokens as usize).min(room),
        pieces: params.pieces,
        deadline: params.deadline,
        out: OutputAssembler::new(&params.stop),
        prompt,
        prefilled: reuse,
        cached_tokens: reuse,
        sampler,
        generated: Vec::new(),
        events,
        logits_index: 0,
        started: Instant::now(),
        prompt_done: None,
    });
    Ok(())
}

/// Send the last text and the summary.
fn finish(mut job: Job, reason: FinishReason) {
    let rest = job.out.finish();
    if job.pieces && !rest.is_empty() {
        let _ = job.events.send(StreamEvent::Piece(rest));
    }
    let now = Instant::now();
    let prompt_done = job.prompt_done.unwrap_or(now);
    let usage = Usage {
        prompt_tokens: job.prompt.len() as u32,
        cached_tokens: job.cached_tokens as u32,
        generated_tokens: job.generated.len() as u32,
        prompt_ms: prompt_done.duration_since(job.started).as_secs_f64() * 1000.0,
        generation_ms: now.duration_since(prompt_done).as_secs_f64() * 1000.0,
    };
    let summary = GenerationSummary {
        text: job.out.text().to_string(),
        tokens: job.generated.iter().map(|t| t.0 as u32).collect(),
        finish_reason: reason,
        usage,
    };
    let _ = job.events.send(StreamEvent::Done(summary));
}

fn fail(job: Job, error: EngineError) {
    let _ = job.events.send(StreamEvent::Failed(error));
}

/// One step of a job: a batch of prompt tokens, or one generated token. Returns the job if it
/// goes on.
fn step(model: &LlamaModel, s: &mut SessionState<'_>, mut job: Job) -> Option<Job> {
    if job.events.is_closed() {
        return None;
    }
    if job.deadline.is_some_and(|d| Instant::now() >= d) {
        fail(
            job,
            EngineError::ResourceExhausted("the guest's deadline passed during generation".into()),
        );
        return None;
    }
    if job.prefilled < job.prompt.len() {
        let end = (job.prefilled + s.n_batch as usize).min(job.prompt.len());
        s.batch.clear();
        for (i, token) in job.prompt[job.prefilled..end].iter().enumerate() {
            let pos = (job.prefilled + i) as i32;
            if let Err(e) = s.batch.add(*token, pos, &[0], pos as usize == job.prompt.len() - 1) {
                fail(job, EngineError::Runtime(format!("batch: {e}")));
                return None;
            }
        }
        if let Err(e) = s.ctx.decode(&mut s.batch) {
            s.cached.clear();
            s.ctx.clear_kv_cache();
            fail(job, EngineError::Runtime(format!("llama.cpp decode failed: {e}")));
            return None;
        }
        s.cached.extend_from_slice(&job.prompt[job.prefilled..end]);
        job.logits_index = (end - job.prefilled) as i32 - 1;
        job.prefilled = end;
        if job.prefilled == job.prompt.len() {
            job.prompt_done = Some(Instant::now());
            if job.max_new == 0 {
                finish(job, FinishReason::Length);
                return None;
            }
        }
        return Some(job);
    }

    let token = job.sampler.sample(&s.ctx, job.logits_index);
    if model.vocab().is_eog(token) {
        finish(job, FinishReason::Stop);
        return None;
    }
    job.generated.push(token);
    let bytes = model.vocab().token_to_piece(token, false, None);
    let hit = job.out.push(&bytes);
    if job.pieces {
        let piece = job.out.take_ready();
        if !piece.is_empty() && job.events.send(StreamEvent::Piece(piece)).is_err() {
            return None;
        }
    }
    if hit.is_some() {
        finish(job, FinishReason::StopSequence);
        return None;
    }
    if job.generated.len() >= job.max_new {
        finish(job, FinishReason::Length);
        return None;
    }
    let pos = s.cached.len() as i32;
    s.batch.clear();
    if let Err(e) = s.batch.add(token, pos, &[0], true) {
        fail(job, EngineError::Runtime(format!("batch: {e}")));
        return None;
    }
    if let Err(e) = s.ctx.decode(&mut s.batch) {
        s.cached.clear();
        s.ctx.clear_kv_cache();
        fail(job, EngineError::Runtime(format!("llama.cpp decode failed: {e}")));
        return None;
    }
    s.cached.push(token);
    job.logits_index = 0;
    Some(job)
}

fn embed<'m>(
    model: &'m LlamaModel,
    backend: &LlamaBackend,
    embedder: &mut Option<(LlamaContext<'m>, u32)>,
    inputs: &[Vec<LlamaToken>],
) -> Result<Vec<Vec<f32>>, EngineError> {
    if embedder.is_none() {
        let n = model.n_ctx_train().clamp(64, 2048);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n))
            .with_n_batch(n)
            .with_n_ubatch(n)
            .with_embeddings(true)
            .with_pooling_type(LlamaPoolingType::Mean);
        let ctx = model.new_context(backend, params).map_err(|e| {
            EngineError::ResourceExhausted(format!(
                "llama.cpp could not create an embedding context: {e}"
            ))
        })?;
        *embedder = Some((ctx, n));
    }
    let Some((ctx, n)) = embedder.as_mut() else { unreachable!() };
    let mut out = Vec::with_capacity(inputs.len());
    for (i, tokens) in inputs.iter().enumerate() {
        if tokens.len() > *n as usize {
            return Err(EngineError::invalid(format!(
                "text {i} has {} tokens; embeddings take at most {n}",
                tokens.len()
            )));
        }
        ctx.clear_kv_cache();
        let mut batch = LlamaBatch::new(tokens.len(), 1);
        batch
            .add_sequence(tokens, 0, true)
            .map_err(|e| EngineError::Runtime(format!("batch: {e}")))?;
        ctx.decode(&mut batch)
            .map_err(|e| EngineError::Runtime(format!("llama.cpp decode failed: {e}")))?;
        let mut v = ctx
            .embeddings_seq_ith(0)
            .map_err(|e| EngineError::Unsupported(format!("the model gives no embeddings: {e}")))?
            .to_vec();
        super::normalize(&mut v);
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_type_names() {
        assert_eq!(file_type_name(3), "Q4_1");
        assert_eq!(file_type_name(15), "Q4_K_M");
        assert_eq!(file_type_name(37), "TQ2_0");
        assert_eq!(file_type_name(99), "unknown(99)");
    }

    #[test]
    fn seeds_never_fold_to_random() {
        assert_eq!(fold_seed(42), 42);
        assert_ne!(fold_seed(u64::from(u32::MAX)), u32::MAX);
        assert_ne!(fold_seed(1 << 32), fold_seed(2 << 32));
    }

    #[test]
    fn tokens_outside_vocabulary_are_refused() {
        assert!(check_tokens(&[0, 5, 9], 10).is_ok());
        let err = check_tokens(&[0, 10], 10).unwrap_err();
        assert!(matches!(err, EngineError::InvalidInput(m) if m.contains("position 1")));
    }

    #[test]
    fn missing_and_non_gguf_files_are_refused_before_llama_cpp() {
        let engine = LlamaEngine::new();
        let err = engine.load(Path::new("/nonexistent/model.gguf"), &LoadOptions::default());
        assert!(matches!(err, Err(EngineError::NotFound(_))));
        let dir = std::env::temp_dir().join(format!("tabagent-notgguf-{}", std::process::id()));
        std::fs::write(&dir, b"not a model at all").unwrap();
        let err = engine.load(&dir, &LoadOptions::default());
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(err, Err(EngineError::InvalidInput(m)) if m.contains("not a GGUF")));
    }
}
