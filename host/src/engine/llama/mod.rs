//! The local engine: llama.cpp through `llama-cpp-2`.
//!
//! - [`backend`]: the one process-wide backend;
//! - [`log`]: llama.cpp's log, and the capture of the errors it logs during a call;
//! - [`cpu_variants`]: ggml's CPU kernels, picked for this CPU when the backend starts;
//! - [`probe`]: new model files loaded first in a child process, its verdicts kept across
//!   runs by `verdicts`;
//! - `scheduler`: per model, the thread that owns every llama.cpp context of that model;
//! - [`batch`]: the model's one shared context, every session a sequence of it, decoded in
//!   one batch per step (`layout`: its sequences and cells);
//! - `sampling` and `embed`: the sampler chain and chunked embeddings, run by the scheduler;
//! - `chat`, `grammar` and `tools`: chat templates, constrained output and tool calls (the
//!   prompt and grammar of a generation with tools, from [`crate::tools`]).
//!
//! Tokenization and chat templates need no context and run on the caller's thread against the
//! shared (`Arc`) weights; everything that decodes goes through the model's scheduler.

pub mod backend;
pub mod batch;
mod chat;
pub mod cpu_variants;
mod embed;
mod grammar;
mod layout;
pub mod log;
pub mod probe;
mod sampling;
mod scheduler;
mod tools;
mod verdicts;

pub use backend::{backend, configure, cpu_kernels};
pub use probe::{ProbeConfig, ProbeMode, probe_model_file};
pub use sampling::fold_seed;
pub use verdicts::host_cache_dir;

use self::probe::LoadProbe;
use self::scheduler::{Command, SeqId};
use crate::engine::{
    ChatMessage, CpuKernels, Engine, GenerationStream, GpuDevice, LoadOptions, Model, ModelInfo,
    Prompt, SamplingParams, Session, SessionOptions, TokenId,
};
use crate::error::{LlmError, LlmResult};
use crate::format::file_type_name;
use crate::source::ResolvedModel;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender, SyncSender};

/// Told of a model load's progress, on the loading thread: the file and the fraction read
/// (0.0 to 1.0). It should return at once; the load waits for it.
pub type LoadProgressFn = dyn Fn(&Path, f32) + Send + Sync;

/// A [`LoadProgressFn`] held by the engine.
#[derive(Clone)]
struct LoadProgress(Arc<LoadProgressFn>);

impl std::fmt::Debug for LoadProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoadProgress")
    }
}

/// The llama.cpp engine.
#[derive(Debug, Default, Clone)]
pub struct LlamaEngine {
    probe: Option<Arc<LoadProbe>>,
    batch: batch::BatchConfig,
    progress: Option<LoadProgress>,
}

impl LlamaEngine {
    /// A handle to the engine; the backend starts on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine that first loads each new model file in a child process (`program args… PATH`,
    /// which must run [`probe_model_file`] and exit 0), so that a file that crashes llama.cpp
    /// takes down only the child. Verdicts are kept in memory and under the host's cache
    /// folder, per file and its content ([`ProbeConfig::new`]).
    pub fn with_probe(program: PathBuf, args: Vec<String>) -> Self {
        Self::with_probe_config(ProbeConfig::new(program, args))
    }

    /// An engine that probes new model files as `config` says.
    pub fn with_probe_config(config: ProbeConfig) -> Self {
        Self { probe: Some(Arc::new(LoadProbe::new(config))), ..Self::default() }
    }

    /// This engine, telling `progress` how each model load goes (llama.cpp's load progress).
    pub fn with_load_progress(mut self, progress: Arc<LoadProgressFn>) -> Self {
        self.progress = Some(LoadProgress(progress));
        self
    }

    /// Probe processes this engine has started.
    pub fn probes_started(&self) -> usize {
        self.probe.as_ref().map_or(0, |p| p.started())
    }

    /// This engine with each model's KV cache sized to `cells` tokens, split evenly between its
    /// sequences (by default the model's training context up to 4096 per sequence, at most a
    /// quarter of the available memory, see
    /// [`batch::default_layout`]). A session's context must fit in one sequence's share.
    pub fn with_kv_cache(mut self, cells: u32) -> Self {
        self.batch.cells = Some(cells);
        self
    }

    /// This engine with `n` sequences per model: that many generations are decoded together,
    /// more wait (default 4).
    pub fn with_parallel(mut self, n: u32) -> Self {
        self.batch.sequences = n.max(1);
        self
    }

    /// Run only the child-process probe on a file (no Rust checks first); `Ok` without a probe.
    pub fn probe(&self, path: &Path) -> LlmResult<()> {
        let meta = std::fs::metadata(path)
            .map_err(|e| LlmError::NotFound(format!("model file {}: {e}", path.display())))?;
        backend()?;
        match &self.probe {
            Some(probe) => probe.check(path, meta.len(), meta.modified().ok()),
            None => Ok(()),
        }
    }
}

impl Engine for LlamaEngine {
    fn name(&self) -> &str {
        "llama.cpp"
    }

    fn load(&self, resolved: &ResolvedModel, options: &LoadOptions) -> LlmResult<Arc<dyn Model>> {
        let path = &resolved.path;
        // The backend first: a failure to start it is the host's, not the file's (and must not
        // be cached as the probe's verdict on the file).
        let backend = backend()?;
        if let Some(probe) = &self.probe {
            probe.check(path, resolved.file_size, resolved.modified)?;
        }
        let mut params = LlamaModelParams::default()
            .with_n_gpu_layers(options.gpu_layers)
            .with_use_mmap(options.use_mmap)
            .with_use_mlock(options.use_mlock);
        if let Some(LoadProgress(progress)) = &self.progress {
            let (progress, file) = (Arc::clone(progress), path.clone());
            params = params.with_progress_callback(move |done| {
                progress(&file, done);
                true
            });
        }
        let (model, why) =
            log::capture_errors(|| LlamaModel::load_from_file(backend, path, &params));
        let model = model.map_err(|e| {
            let why = why.unwrap_or_else(|| e.to_string());
            LlmError::runtime(format!("llama.cpp could not load {}: {why}", path.display()))
        })?;
        let offload = if self.gpus().is_empty() { 0 } else { options.gpu_layers };
        let file_size = std::fs::metadata(path).map_or(resolved.file_size, |m| m.len());
        let info = read_info(&model, file_size, offload);
        let chat = chat::ChatFormat::new(&model, options.chat_template.as_deref());
        let model = Arc::new(model);
        let (tx, rx) = mpsc::channel();
        let worker_model = Arc::clone(&model);
        let config = self.batch;
        std::thread::Builder::new()
            .name("llama-scheduler".into())
            .spawn(move || scheduler::run(worker_model, backend, config, rx))
            .map_err(|e| LlmError::runtime(format!("cannot start scheduler thread: {e}")))?;
        Ok(Arc::new(LlamaModelHandle {
            weights: Arc::new(Weights { model, info, chat, sessions: AtomicUsize::new(0) }),
            tx,
        }))
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

    fn cpu_kernels(&self) -> LlmResult<CpuKernels> {
        cpu_kernels().cloned()
    }
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

/// The weights and their facts, shared by the model handle and its sessions.
struct Weights {
    model: Arc<LlamaModel>,
    info: ModelInfo,
    chat: chat::ChatFormat,
    /// Sessions alive over these weights.
    sessions: AtomicUsize,
}

impl Weights {
    fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> LlmResult<Vec<TokenId>> {
        if text.len() >= i32::MAX as usize / 2 {
            return Err(LlmError::invalid("text is too long to tokenize"));
        }
        let tokens = self.model.vocab().tokenize(text.as_bytes(), add_special, parse_special);
        Ok(tokens.into_iter().map(|t| t.0 as u32).collect())
    }

    fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_assistant: bool,
    ) -> LlmResult<String> {
        self.chat.apply(&self.model, messages, add_assistant)
    }

    /// A prompt as tokens: text is tokenized with BOS and special tokens, a conversation goes
    /// through the chat template first.
    fn prompt_tokens(
        &self,
        prompt: Prompt,
        template: Option<&crate::template::ChatTemplate>,
    ) -> LlmResult<Vec<LlamaToken>> {
        let tokens = match prompt {
            Prompt::Text(t) => self.tokenize(&t, true, true)?,
            Prompt::Tokens(t) => {
                check_tokens(&t, self.info.vocab_size)?;
                t
            }
            Prompt::Chat(m) => {
                let text = match template {
                    Some(t) => self.chat.render_with(t, &m, true, None)?,
                    None => self.apply_chat_template(&m, true)?,
                };
                self.chat_tokens(&text)?
            }
        };
        Ok(to_llama(&tokens))
    }

    /// A rendered conversation's tokens: a template that writes the BOS token itself (Llama
    /// 3's does) gets no second.
    fn chat_tokens(&self, text: &str) -> LlmResult<Vec<TokenId>> {
        let bos = self.chat.bos();
        let add_bos = bos.is_empty() || !text.starts_with(bos);
        self.tokenize(text, add_bos, true)
    }
}

/// A loaded model: shared weights plus the channel to its scheduler.
struct LlamaModelHandle {
    weights: Arc<Weights>,
    tx: Sender<Command>,
}

fn check_tokens(tokens: &[TokenId], n_vocab: u32) -> LlmResult<()> {
    match tokens.iter().position(|t| *t >= n_vocab) {
        Some(i) => Err(LlmError::invalid(format!(
            "token {} at position {i} is outside the vocabulary (size {n_vocab})",
            tokens[i]
        ))),
        None => Ok(()),
    }
}

/// Send a command and wait for its reply.
fn request<T>(tx: &Sender<Command>, make: impl FnOnce(SyncSender<T>) -> Command) -> LlmResult<T> {
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    let gone = || LlmError::runtime("the model's scheduler thread has stopped");
    tx.send(make(reply_tx)).map_err(|_| gone())?;
    reply_rx.recv().map_err(|_| gone())
}

fn to_llama(tokens: &[TokenId]) -> Vec<LlamaToken> {
    tokens.iter().map(|t| LlamaToken(*t as i32)).collect()
}

impl Model for LlamaModelHandle {
    fn info(&self) -> &ModelInfo {
        &self.weights.info
    }

    fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> LlmResult<Vec<TokenId>> {
        self.weights.tokenize(text, add_special, parse_special)
    }

    fn detokenize(&self, tokens: &[TokenId], render_special: bool) -> LlmResult<String> {
        check_tokens(tokens, self.weights.info.vocab_size)?;
        let bytes = self.weights.model.vocab().detokenize(&to_llama(tokens), false, render_special);
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_assistant: bool,
    ) -> LlmResult<String> {
        self.weights.apply_chat_template(messages, add_assistant)
    }

    fn new_session(&self, options: &SessionOptions) -> LlmResult<Box<dyn Session>> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let n_ctx = request(&self.tx, |reply| Command::NewSession {
            id,
            options: options.clone(),
            reply,
        })??;
        self.weights.sessions.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(LlamaSession {
            id,
            n_ctx,
            template: options.chat_template.clone().map(crate::template::ChatTemplate::new),
            weights: Arc::clone(&self.weights),
            tx: self.tx.clone(),
        }))
    }

    fn embed(&self, texts: &[String]) -> LlmResult<Vec<Vec<f32>>> {
        self.embed_cancellable(texts, &Arc::new(AtomicBool::new(false)))
    }

    fn embed_cancellable(
        &self,
        texts: &[String],
        cancel: &Arc<AtomicBool>,
    ) -> LlmResult<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut inputs = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let tokens = self.weights.model.vocab().tokenize(text.as_bytes(), true, false);
            if tokens.is_empty() {
                return Err(LlmError::invalid(format!("text {i} is empty")));
            }
            inputs.push(tokens);
        }
        let cancel = Arc::clone(cancel);
        request(&self.tx, |reply| Command::Embed { inputs, reply, cancel })?
    }

    fn sessions(&self) -> usize {
        self.weights.sessions.load(Ordering::Relaxed)
    }
}

struct LlamaSession {
    id: SeqId,
    n_ctx: u32,
    /// The session's own chat template, if it named one.
    template: Option<crate::template::ChatTemplate>,
    weights: Arc<Weights>,
    tx: Sender<Command>,
}

impl Session for LlamaSession {
    fn context_size(&self) -> u32 {
        self.n_ctx
    }

    fn generate(&self, prompt: Prompt, mut params: SamplingParams) -> LlmResult<GenerationStream> {
        let (prompt, output) = match crate::tools::take(prompt, &mut params)? {
            Ok((tools, messages)) => {
                let t = tools::prepare(
                    &self.weights,
                    self.template.as_ref(),
                    &messages,
                    &tools,
                    &mut params,
                )?;
                (t.prompt, t.output)
            }
            Err(prompt) => (self.weights.prompt_tokens(prompt, self.template.as_ref())?, None),
        };
        // A grammar or schema is checked here, where the error can go back at once; the
        // scheduler gets the grammar.
        if let Some(c) = &params.constraint {
            params.constraint = Some(grammar::checked(&self.weights.model, c)?);
        }
        let (events, stream) = GenerationStream::channel();
        let stream = match output {
            Some(o) => stream.with_tools(o),
            None => stream,
        };
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
        self.weights.sessions.fetch_sub(1, Ordering::Relaxed);
        let _ = self.tx.send(Command::DropSession { id: self.id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_outside_vocabulary_are_refused() {
        assert!(check_tokens(&[0, 5, 9], 10).is_ok());
        let err = check_tokens(&[0, 10], 10).unwrap_err();
        assert!(matches!(err, LlmError::InvalidInput(m) if m.contains("position 1")));
    }
}
