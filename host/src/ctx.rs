//! The WIT glue: per-guest state ([`LlmCtx`]), the view that host calls borrow ([`LlmView`]), and
//! the implementations of the generated `Host*` traits. This is the one place where engine
//! errors become WIT errors, where grants are checked, and where parameters are validated before
//! any engine sees them.

use crate::bindings::{hardware as wit_hw, inference as wit_inf, models as wit_models, types};
use crate::engine::{
    ChatMessage, DeviceKind, Engine, EngineError, FinishReason, GenerationStream,
    GenerationSummary, LoadOptions, Model, SamplingParams, Session, SessionOptions, StreamEvent,
    TokenId,
};
use crate::hardware;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use wasmtime::component::{HasData, Resource, ResourceTable, ResourceTableError};

/// A failure of a host call: either a WIT `error` value for the guest, or a trap.
#[derive(Debug)]
pub enum LlmError {
    /// Returned to the guest as a value.
    Guest(types::Error),
    /// Traps the guest (host bug, bad handle).
    Trap(wasmtime::Error),
}

impl LlmError {
    /// An `invalid-input` error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Guest(types::Error::InvalidInput(msg.into()))
    }
}

impl From<EngineError> for LlmError {
    fn from(e: EngineError) -> Self {
        Self::Guest(match e {
            EngineError::InvalidInput(m) => types::Error::InvalidInput(m),
            EngineError::NotFound(m) => types::Error::NotFound(m),
            EngineError::Unsupported(m) => types::Error::Unsupported(m),
            EngineError::ResourceExhausted(m) => types::Error::ResourceExhausted(m),
            EngineError::Runtime(m) => types::Error::Runtime(m),
        })
    }
}

impl From<ResourceTableError> for LlmError {
    fn from(e: ResourceTableError) -> Self {
        Self::Trap(e.into())
    }
}

impl From<tokio::task::JoinError> for LlmError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Guest(types::Error::Runtime(format!("engine task failed: {e}")))
    }
}

impl From<wasmtime::Error> for LlmError {
    fn from(e: wasmtime::Error) -> Self {
        Self::Trap(e)
    }
}

type LlmResult<T> = Result<T, LlmError>;

/// Limits on what one guest may ask of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmLimits {
    /// Largest context a session may have (also never above the model's training context).
    pub max_context_size: u32,
    /// Most bytes of text in one argument (a prompt, a message list, a text to embed).
    pub max_input_bytes: usize,
    /// Most live sessions per guest.
    pub max_sessions: usize,
    /// Most texts in one `embed` call.
    pub max_embed_texts: usize,
    /// Most `tabagent:llm` resources (models, sessions, completions) alive at once.
    pub max_resources: usize,
}

impl Default for LlmLimits {
    fn default() -> Self {
        Self {
            max_context_size: 32_768,
            max_input_bytes: 4 << 20,
            max_sessions: 64,
            max_embed_texts: 1024,
            max_resources: 10_000,
        }
    }
}

/// State shared by every guest of one host: the engine and the loaded weights.
pub struct LlmShared {
    engine: Arc<dyn Engine>,
    /// Weights by file and load options, so guests that load the same model share them.
    cache: Mutex<HashMap<(PathBuf, LoadOptions), Weak<dyn Model>>>,
    /// Serializes loads so that parallel loads of one model load it once.
    load_lock: Mutex<()>,
    default_threads: u32,
}

impl LlmShared {
    /// Shared state over an engine.
    pub fn new(engine: Arc<dyn Engine>) -> Arc<Self> {
        Arc::new(Self {
            engine,
            cache: Mutex::new(HashMap::new()),
            load_lock: Mutex::new(()),
            default_threads: hardware::default_threads(),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// Load a model, or share the weights already loaded with the same options. Blocks.
    pub fn load(
        &self,
        path: &std::path::Path,
        options: &LoadOptions,
    ) -> Result<Arc<dyn Model>, EngineError> {
        let key = (path.to_path_buf(), options.clone());
        let _serial = self.load_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(model) = self.cached(&key) {
            return Ok(model);
        }
        let model = self.engine.load(path, options)?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, w| w.strong_count() > 0);
        cache.insert(key, Arc::downgrade(&model));
        Ok(model)
    }

    fn cached(&self, key: &(PathBuf, LoadOptions)) -> Option<Arc<dyn Model>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(key).and_then(Weak::upgrade)
    }
}

/// A model this guest loaded, by granted name.
struct LoadedEntry {
    model: Arc<dyn Model>,
    /// Bumped by every load under this name, so handles from before an unload are refused.
    epoch: u64,
    /// One clone per live session; the entry's own clone makes the count 1 when there are none.
    sessions: Arc<()>,
}

/// A model unloaded while sessions still used it.
struct Draining {
    name: String,
    file_size: u64,
    gpu_layers: u32,
    sessions: Weak<()>,
}

/// Per-guest state: grants, limits and what the guest has loaded.
pub struct LlmCtx {
    shared: Arc<LlmShared>,
    grants: BTreeMap<String, PathBuf>,
    limits: LlmLimits,
    loaded: BTreeMap<String, LoadedEntry>,
    draining: Vec<Draining>,
    epoch: u64,
    live_sessions: Arc<()>,
    resources: usize,
    deadline: Option<std::time::Instant>,
}

impl LlmCtx {
    /// A guest's state: it may load exactly the models in `grants` (name to file).
    pub fn new(
        shared: Arc<LlmShared>,
        grants: BTreeMap<String, PathBuf>,
        limits: LlmLimits,
    ) -> Self {
        Self {
            shared,
            grants,
            limits,
            loaded: BTreeMap::new(),
            draining: Vec::new(),
            epoch: 0,
            live_sessions: Arc::new(()),
            resources: 0,
            deadline: None,
        }
    }

    /// Generation stops with an error once `deadline` passes.
    pub fn set_deadline(&mut self, deadline: std::time::Instant) {
        self.deadline = Some(deadline);
    }

    fn session_count(&self) -> usize {
        Arc::strong_count(&self.live_sessions) - 1
    }
}

/// What host calls borrow: the guest's state and its resource table.
pub struct LlmView<'a> {
    /// The guest's state.
    pub ctx: &'a mut LlmCtx,
    /// The guest's resources.
    pub table: &'a mut ResourceTable,
}

/// Anything that can lend an [`LlmView`]; implement it for the store's data type.
pub trait LlmViewProvider: Send {
    /// Borrow the view.
    fn llm(&mut self) -> LlmView<'_>;
}

struct HasLlm;

impl HasData for HasLlm {
    type Data<'a> = LlmView<'a>;
}

/// Add the `tabagent:llm` imports to a linker.
pub fn add_to_linker<T: LlmViewProvider + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    fn get<T: LlmViewProvider>(t: &mut T) -> LlmView<'_> {
        t.llm()
    }
    crate::bindings::Llm::add_to_linker::<T, HasLlm>(linker, get::<T>)
}

/// The `model` resource.
pub struct ModelResource {
    name: String,
    model: Arc<dyn Model>,
    epoch: u64,
}

/// The `session` resource.
pub struct SessionResource {
    model: Arc<dyn Model>,
    session: Arc<dyn Session>,
    seed: u64,
    limits_input: usize,
    _model_use: Arc<()>,
    _guest_use: Arc<()>,
}

/// The `completion` resource.
pub struct CompletionResource {
    stream: GenerationStream,
    /// An event read ahead while joining pieces.
    pending: Option<StreamEvent>,
    outcome: Option<GenerationSummary>,
    failed: bool,
}

/// Run blocking engine work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> LlmResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(LlmError::from),
        Err(e) => Err(LlmError::Guest(types::Error::Runtime(format!("engine task failed: {e}")))),
    }
}

impl LlmView<'_> {
    fn model(&self, r: &Resource<ModelResource>) -> LlmResult<Arc<dyn Model>> {
        let m = self.table.get(r)?;
        match self.ctx.loaded.get(&m.name) {
            Some(entry) if entry.epoch == m.epoch => Ok(Arc::clone(&m.model)),
            _ => Err(LlmError::Guest(types::Error::Unloaded(format!(
                "model '{}' was unloaded; load it again",
                m.name
            )))),
        }
    }

    /// Push a new resource, within the guest's cap on live resources.
    fn push<T: Send + 'static>(&mut self, value: T) -> LlmResult<Resource<T>> {
        if self.ctx.resources >= self.ctx.limits.max_resources {
            return Err(LlmError::Guest(types::Error::ResourceExhausted(format!(
                "a guest may hold at most {} models, sessions and completions at once",
                self.ctx.limits.max_resources
            ))));
        }
        let r = self.table.push(value)?;
        self.ctx.resources += 1;
        Ok(r)
    }

    /// Delete a resource the guest dropped.
    fn delete<T: 'static>(&mut self, r: Resource<T>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        self.ctx.resources = self.ctx.resources.saturating_sub(1);
        Ok(())
    }

    fn check_text(&self, what: &str, len: usize) -> LlmResult<()> {
        if len > self.ctx.limits.max_input_bytes {
            return Err(LlmError::invalid(format!(
                "{what} is {len} bytes; the limit is {}",
                self.ctx.limits.max_input_bytes
            )));
        }
        Ok(())
    }
}

fn check_no_nul(what: &str, text: &str) -> LlmResult<()> {
    if text.contains('\0') {
        return Err(LlmError::invalid(format!("{what} contains a NUL character")));
    }
    Ok(())
}

fn to_chat(messages: Vec<wit_models::ChatMessage>) -> LlmResult<Vec<ChatMessage>> {
    messages
        .into_iter()
        .map(|m| {
            check_no_nul("a chat message", &m.content)?;
            check_no_nul("a chat role", &m.role)?;
            Ok(ChatMessage { role: m.role, content: m.content })
        })
        .collect()
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Resolve and check session options against the model and the guest's limits.
pub fn session_options(
    o: &wit_inf::SessionOptions,
    model_context: u32,
    limits: &LlmLimits,
    default_threads: u32,
) -> LlmResult<SessionOptions> {
    let max_ctx = model_context.min(limits.max_context_size).max(1);
    let context_size = o.context_size.unwrap_or(4096.min(max_ctx));
    if context_size < 16 {
        return Err(LlmError::invalid(format!(
            "context-size {context_size} is too small; use at least 16"
        )));
    }
    if context_size > max_ctx {
        return Err(LlmError::invalid(format!(
            "context-size {context_size} is above the limit of {max_ctx} (model trained for {model_context})"
        )));
    }
    let batch_size = o.batch_size.unwrap_or(512.min(context_size));
    if batch_size == 0 || batch_size > context_size {
        return Err(LlmError::invalid(format!(
            "batch-size {batch_size} must be between 1 and the context size ({context_size})"
        )));
    }
    let hw_threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let threads = o.threads.unwrap_or(default_threads);
    if threads == 0 || threads > hw_threads {
        return Err(LlmError::invalid(format!(
            "threads {threads} must be between 1 and the {hw_threads} hardware threads of this host"
        )));
    }
    Ok(SessionOptions { context_size, batch_size, threads })
}

/// Resolve and check sampling options.
pub fn sampling_params(
    o: wit_inf::SamplingOptions,
    session_seed: u64,
) -> LlmResult<SamplingParams> {
    let p = SamplingParams {
        max_tokens: o.max_tokens.unwrap_or(256),
        temperature: o.temperature.unwrap_or(0.8),
        top_k: o.top_k.unwrap_or(40),
        top_p: o.top_p.unwrap_or(0.95),
        min_p: o.min_p.unwrap_or(0.05),
        repeat_penalty: o.repeat_penalty.unwrap_or(1.0),
        repeat_window: o.repeat_window.unwrap_or(64),
        seed: o.seed.unwrap_or(session_seed),
        stop: o.stop,
        pieces: true,
        deadline: None,
    };
    if p.max_tokens == 0 {
        return Err(LlmError::invalid("max-tokens must be at least 1"));
    }
    if !p.temperature.is_finite() || p.temperature < 0.0 {
        return Err(LlmError::invalid(format!(
            "temperature must be a finite number >= 0, not {}",
            p.temperature
        )));
    }
    if !(p.top_p > 0.0 && p.top_p <= 1.0) {
        return Err(LlmError::invalid(format!("top-p must be in (0, 1], not {}", p.top_p)));
    }
    if !(0.0..=1.0).contains(&p.min_p) {
        return Err(LlmError::invalid(format!("min-p must be in [0, 1], not {}", p.min_p)));
    }
    if !p.repeat_penalty.is_finite() || p.repeat_penalty <= 0.0 {
        return Err(LlmError::invalid(format!(
            "repeat-penalty must be a finite number > 0, not {}",
            p.repeat_penalty
        )));
    }
    if p.stop.len() > 16 {
        return Err(LlmError::invalid(format!("at most 16 stop sequences, not {}", p.stop.len())));
    }
    for s in &p.stop {
        if s.is_empty() || s.len() > 256 {
            return Err(LlmError::invalid("stop sequences must be 1 to 256 bytes long"));
        }
    }
    Ok(p)
}

impl types::Host for LlmView<'_> {
    fn convert_error(&mut self, err: LlmError) -> wasmtime::Result<types::Error> {
        match err {
            LlmError::Guest(e) => Ok(e),
            LlmError::Trap(e) => Err(e),
        }
    }
}

impl wit_hw::Host for LlmView<'_> {
    async fn cpu(&mut self) -> wasmtime::Result<wit_hw::CpuInfo> {
        let c = hardware::cpu();
        Ok(wit_hw::CpuInfo {
            vendor: c.vendor,
            brand: c.brand,
            family: c.family,
            model: c.model,
            stepping: c.stepping,
            physical_cores: c.physical_cores,
            logical_threads: c.logical_threads,
            features: c.features,
            l1d_cache: c.l1d_cache,
            l2_cache: c.l2_cache,
            l3_cache: c.l3_cache,
            microarchitecture: c.microarchitecture,
            variant: c.variant,
        })
    }

    async fn gpus(&mut self) -> wasmtime::Result<Vec<wit_hw::GpuInfo>> {
        let engine = Arc::clone(self.ctx.shared.engine());
        let gpus = tokio::task::spawn_blocking(move || engine.gpus()).await?;
        Ok(gpus
            .into_iter()
            .map(|g| wit_hw::GpuInfo {
                index: g.index,
                name: g.name,
                description: g.description,
                backend: g.backend,
                memory_total: g.memory_total,
                memory_free: g.memory_free,
            })
            .collect())
    }

    async fn kernels(&mut self) -> LlmResult<wit_hw::CpuKernels> {
        let engine = Arc::clone(self.ctx.shared.engine());
        let k = blocking(move || engine.cpu_kernels()).await?;
        Ok(wit_hw::CpuKernels {
            variant: k.variant,
            forced: k.forced,
            features: k.features,
            available: k
                .available
                .into_iter()
                .map(|v| wit_hw::KernelVariant { name: v.name, score: v.score })
                .collect(),
        })
    }

    async fn memory(&mut self) -> wasmtime::Result<wit_hw::MemoryInfo> {
        let m = hardware::memory();
        Ok(wit_hw::MemoryInfo { total: m.total, available: m.available })
    }

    async fn recommend_split(
        &mut self,
        model: String,
        context_size: u32,
    ) -> LlmResult<wit_hw::SplitRecommendation> {
        let path = self.granted_path(&model)?;
        if context_size == 0 {
            return Err(LlmError::invalid("context-size must be at least 1"));
        }
        let engine = Arc::clone(self.ctx.shared.engine());
        let r = blocking(move || {
            let file = crate::gguf::GgufFile::open(&path)
                .map_err(|e| EngineError::invalid(format!("{}: {e}", path.display())))?;
            let free = engine.gpus().iter().map(|g| g.memory_free).max();
            Ok(hardware::recommend_split(&hardware::SplitInput::from_gguf(
                &file,
                context_size,
                free,
            )))
        })
        .await?;
        Ok(wit_hw::SplitRecommendation {
            gpu_layers: r.gpu_layers,
            total_layers: r.total_layers,
            bytes_per_layer: r.bytes_per_layer,
            kv_cache_bytes: r.kv_cache_bytes,
            margin_bytes: r.margin_bytes,
            free_device_memory: r.free_device_memory,
            explanation: r.explanation,
        })
    }
}

impl LlmView<'_> {
    fn granted_path(&self, name: &str) -> LlmResult<PathBuf> {
        self.ctx.grants.get(name).cloned().ok_or_else(|| {
            let granted: Vec<&str> = self.ctx.grants.keys().map(String::as_str).collect();
            LlmError::Guest(types::Error::NotGranted(format!(
                "model '{name}' was not granted to this guest (granted: {})",
                if granted.is_empty() { "none".to_string() } else { granted.join(", ") }
            )))
        })
    }
}

impl wit_models::Host for LlmView<'_> {
    async fn granted(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.ctx.grants.keys().cloned().collect())
    }

    async fn loaded(&mut self) -> wasmtime::Result<Vec<wit_models::LoadedModel>> {
        self.ctx.draining.retain(|d| d.sessions.strong_count() > 0);
        let mut out: Vec<_> = self
            .ctx
            .loaded
            .iter()
            .map(|(name, e)| wit_models::LoadedModel {
                name: name.clone(),
                state: wit_models::ModelState::Loaded,
                sessions: (Arc::strong_count(&e.sessions) - 1) as u32,
                file_size: e.model.info().file_size,
                gpu_layers: e.model.info().gpu_layers,
            })
            .collect();
        out.extend(self.ctx.draining.iter().map(|d| wit_models::LoadedModel {
            name: d.name.clone(),
            state: wit_models::ModelState::Draining,
            sessions: d.sessions.strong_count() as u32,
            file_size: d.file_size,
            gpu_layers: d.gpu_layers,
        }));
        Ok(out)
    }

    async fn unload(&mut self, name: String) -> LlmResult<()> {
        let Some(entry) = self.ctx.loaded.remove(&name) else {
            return Err(LlmError::Guest(types::Error::NotFound(format!(
                "model '{name}' is not loaded"
            ))));
        };
        let sessions = Arc::downgrade(&entry.sessions);
        let info = entry.model.info();
        let draining =
            Draining { name, file_size: info.file_size, gpu_layers: info.gpu_layers, sessions };
        drop(entry);
        if draining.sessions.strong_count() > 0 {
            self.ctx.draining.push(draining);
        }
        Ok(())
    }
}

impl wit_models::HostModel for LlmView<'_> {
    async fn load(
        &mut self,
        name: String,
        options: Option<wit_models::LoadOptions>,
    ) -> LlmResult<Resource<ModelResource>> {
        let path = self.granted_path(&name)?;
        let o = options.unwrap_or(wit_models::LoadOptions {
            gpu_layers: None,
            use_mmap: None,
            use_mlock: None,
        });
        let shared = Arc::clone(&self.ctx.shared);
        let options = LoadOptions {
            gpu_layers: match o.gpu_layers {
                Some(n) => n,
                None => {
                    let engine = Arc::clone(shared.engine());
                    let has_gpu =
                        tokio::task::spawn_blocking(move || !engine.gpus().is_empty()).await?;
                    if has_gpu { u32::MAX } else { 0 }
                }
            },
            use_mmap: o.use_mmap.unwrap_or(true),
            use_mlock: o.use_mlock.unwrap_or(false),
        };
        let model = blocking(move || shared.load(&path, &options)).await?;
        let epoch = match self.ctx.loaded.get(&name) {
            Some(e) if Arc::ptr_eq(&e.model, &model) => e.epoch,
            _ => {
                self.ctx.epoch += 1;
                let epoch = self.ctx.epoch;
                // A reload with other options replaces the entry; sessions over the old one drain.
                if let Some(old) = self.ctx.loaded.insert(
                    name.clone(),
                    LoadedEntry { model: Arc::clone(&model), epoch, sessions: Arc::new(()) },
                ) && Arc::strong_count(&old.sessions) > 1
                {
                    self.ctx.draining.push(Draining {
                        name: name.clone(),
                        file_size: old.model.info().file_size,
                        gpu_layers: old.model.info().gpu_layers,
                        sessions: Arc::downgrade(&old.sessions),
                    });
                }
                epoch
            }
        };
        self.push(ModelResource { name, model, epoch })
    }

    async fn metadata(
        &mut self,
        r: Resource<ModelResource>,
    ) -> LlmResult<wit_models::ModelMetadata> {
        let model = self.model(&r)?;
        let name = self.table.get(&r)?.name.clone();
        let i = model.info();
        Ok(wit_models::ModelMetadata {
            name,
            architecture: i.architecture.clone(),
            display_name: i.display_name.clone(),
            vocab_size: i.vocab_size,
            context_length: i.context_length,
            embedding_size: i.embedding_size,
            layer_count: i.layer_count,
            head_count: i.head_count,
            head_count_kv: i.head_count_kv,
            parameter_count: i.parameter_count,
            file_size: i.file_size,
            file_type: i.file_type.clone(),
            bos_token: i.bos_token,
            eos_token: i.eos_token,
            newline_token: i.newline_token,
            chat_template: i.chat_template.clone(),
        })
    }

    async fn placement(&mut self, r: Resource<ModelResource>) -> LlmResult<wit_models::Placement> {
        let (kind, gpu_layers, cpu_layers) = self.model(&r)?.info().placement();
        Ok(wit_models::Placement {
            loaded_to: match kind {
                DeviceKind::Cpu => wit_models::DeviceKind::Cpu,
                DeviceKind::Gpu => wit_models::DeviceKind::Gpu,
                DeviceKind::Split => wit_models::DeviceKind::Split,
            },
            gpu_layers,
            cpu_layers,
        })
    }

    async fn tokenize(
        &mut self,
        r: Resource<ModelResource>,
        text: String,
        add_special: bool,
        parse_special: bool,
    ) -> LlmResult<Vec<u32>> {
        let model = self.model(&r)?;
        self.check_text("the text", text.len())?;
        blocking(move || model.tokenize(&text, add_special, parse_special)).await
    }

    async fn detokenize(
        &mut self,
        r: Resource<ModelResource>,
        tokens: Vec<u32>,
        render_special: bool,
    ) -> LlmResult<String> {
        let model = self.model(&r)?;
        self.check_text("the token list", tokens.len() * 4)?;
        blocking(move || model.detokenize(&tokens, render_special)).await
    }

    async fn apply_chat_template(
        &mut self,
        r: Resource<ModelResource>,
        messages: Vec<wit_models::ChatMessage>,
        add_assistant: bool,
    ) -> LlmResult<String> {
        let model = self.model(&r)?;
        let bytes = messages.iter().map(|m| m.role.len() + m.content.len()).sum();
        self.check_text("the conversation", bytes)?;
        let messages = to_chat(messages)?;
        blocking(move || model.apply_chat_template(&messages, add_assistant)).await
    }

    async fn drop(&mut self, r: Resource<ModelResource>) -> wasmtime::Result<()> {
        self.delete(r)
    }
}

impl wit_inf::Host for LlmView<'_> {
    async fn embed(
        &mut self,
        r: Resource<ModelResource>,
        texts: Vec<String>,
    ) -> LlmResult<Vec<Vec<f32>>> {
        let model = self.model(&r)?;
        if texts.is_empty() {
            return Err(LlmError::invalid("embed needs at least one text"));
        }
        if texts.len() > self.ctx.limits.max_embed_texts {
            return Err(LlmError::invalid(format!(
                "embed takes at most {} texts per call, not {}",
                self.ctx.limits.max_embed_texts,
                texts.len()
            )));
        }
        self.check_text("the texts", texts.iter().map(String::len).sum())?;
        for (i, t) in texts.iter().enumerate() {
            if t.is_empty() {
                return Err(LlmError::invalid(format!("text {i} is empty")));
            }
            check_no_nul("a text", t)?;
        }
        blocking(move || model.embed(&texts)).await
    }
}

impl LlmView<'_> {
    async fn start(
        &mut self,
        r: &Resource<SessionResource>,
        prompt: wit_inf::Prompt,
        options: wit_inf::SamplingOptions,
        pieces: bool,
    ) -> LlmResult<GenerationStream> {
        let s = self.table.get(r)?;
        let mut params = sampling_params(options, s.seed)?;
        params.pieces = pieces;
        params.deadline = self.ctx.deadline;
        let (model, session, limit) =
            (Arc::clone(&s.model), Arc::clone(&s.session), s.limits_input);
        let bytes = match &prompt {
            wit_inf::Prompt::Text(t) => t.len(),
            wit_inf::Prompt::Tokens(t) => t.len() * 4,
            wit_inf::Prompt::Chat(m) => m.iter().map(|m| m.role.len() + m.content.len()).sum(),
        };
        if bytes > limit {
            return Err(LlmError::invalid(format!(
                "the prompt is {bytes} bytes; the limit is {limit}"
            )));
        }
        let prompt = match prompt {
            wit_inf::Prompt::Text(t) => {
                check_no_nul("the prompt", &t)?;
                if t.is_empty() {
                    return Err(LlmError::invalid("the prompt is empty"));
                }
                PromptInput::Text(t)
            }
            wit_inf::Prompt::Tokens(t) => PromptInput::Tokens(t),
            wit_inf::Prompt::Chat(m) => {
                if m.is_empty() {
                    return Err(LlmError::invalid("the conversation is empty"));
                }
                PromptInput::Chat(to_chat(m)?)
            }
        };
        blocking(move || {
            let tokens = prompt.into_tokens(model.as_ref())?;
            session.generate(tokens, params)
        })
        .await
    }
}

enum PromptInput {
    Text(String),
    Tokens(Vec<TokenId>),
    Chat(Vec<ChatMessage>),
}

impl PromptInput {
    fn into_tokens(self, model: &dyn Model) -> Result<Vec<TokenId>, EngineError> {
        match self {
            Self::Text(t) => model.tokenize(&t, true, true),
            Self::Tokens(t) => Ok(t),
            Self::Chat(m) => {
                let text = model.apply_chat_template(&m, true)?;
                model.tokenize(&text, true, true)
            }
        }
    }
}

fn to_wit_generation(g: GenerationSummary) -> wit_inf::Generation {
    wit_inf::Generation {
        usage: wit_inf::Usage {
            prompt_tokens: g.usage.prompt_tokens,
            cached_tokens: g.usage.cached_tokens,
            generated_tokens: g.usage.generated_tokens,
            prompt_ms: g.usage.prompt_ms,
            generation_ms: g.usage.generation_ms,
            prompt_tokens_per_second: g.usage.prompt_tokens_per_second(),
            tokens_per_second: g.usage.tokens_per_second(),
        },
        text: g.text,
        tokens: g.tokens,
        finish_reason: match g.finish_reason {
            FinishReason::Stop => wit_inf::FinishReason::Stop,
            FinishReason::Length => wit_inf::FinishReason::Length,
            FinishReason::StopSequence => wit_inf::FinishReason::StopSequence,
            FinishReason::Cancelled => wit_inf::FinishReason::Cancelled,
        },
    }
}

fn engine_gone() -> LlmError {
    LlmError::Guest(types::Error::Runtime("the engine stopped before generation finished".into()))
}

impl wit_inf::HostSession for LlmView<'_> {
    async fn create(
        &mut self,
        model: Resource<ModelResource>,
        options: wit_inf::SessionOptions,
    ) -> LlmResult<Resource<SessionResource>> {
        let m = self.model(&model)?;
        if self.ctx.session_count() >= self.ctx.limits.max_sessions {
            return Err(LlmError::Guest(types::Error::ResourceExhausted(format!(
                "a guest may have at most {} live sessions",
                self.ctx.limits.max_sessions
            ))));
        }
        let resolved = session_options(
            &options,
            m.info().context_length,
            &self.ctx.limits,
            self.ctx.shared.default_threads,
        )?;
        let name = self.table.get(&model)?.name.clone();
        let model_use = match self.ctx.loaded.get(&name) {
            Some(e) => Arc::clone(&e.sessions),
            None => return Err(LlmError::Guest(types::Error::Unloaded(name))),
        };
        let engine_model = Arc::clone(&m);
        let session = blocking(move || engine_model.new_session(&resolved)).await?;
        let resource = SessionResource {
            model: m,
            session: Arc::from(session),
            seed: options.seed.unwrap_or_else(random_seed),
            limits_input: self.ctx.limits.max_input_bytes,
            _model_use: model_use,
            _guest_use: Arc::clone(&self.ctx.live_sessions),
        };
        self.push(resource)
    }

    async fn context_size(&mut self, r: Resource<SessionResource>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&r)?.session.context_size())
    }

    async fn generate(
        &mut self,
        r: Resource<SessionResource>,
        prompt: wit_inf::Prompt,
        options: wit_inf::SamplingOptions,
    ) -> LlmResult<wit_inf::Generation> {
        let mut stream = self.start(&r, prompt, options, false).await?;
        loop {
            match stream.next_event().await {
                Some(StreamEvent::Piece(_)) => {}
                Some(StreamEvent::Done(g)) => return Ok(to_wit_generation(g)),
                Some(StreamEvent::Failed(e)) => return Err(e.into()),
                None => return Err(engine_gone()),
            }
        }
    }

    async fn stream(
        &mut self,
        r: Resource<SessionResource>,
        prompt: wit_inf::Prompt,
        options: wit_inf::SamplingOptions,
    ) -> LlmResult<Resource<CompletionResource>> {
        let stream = self.start(&r, prompt, options, true).await?;
        Ok(self.table.push(CompletionResource {
            stream,
            pending: None,
            outcome: None,
            failed: false,
        })?)
    }

    async fn drop(&mut self, r: Resource<SessionResource>) -> wasmtime::Result<()> {
        self.delete(r)
    }
}

impl wit_inf::HostCompletion for LlmView<'_> {
    async fn next(&mut self, r: Resource<CompletionResource>) -> LlmResult<Option<String>> {
        let c = self.table.get_mut(&r)?;
        if c.outcome.is_some() || c.failed {
            return Ok(None);
        }
        let event = match c.pending.take() {
            Some(e) => Some(e),
            None => c.stream.next_event().await,
        };
        match event {
            Some(StreamEvent::Piece(mut p)) => {
                // Join the pieces that are already waiting: one call instead of many when the
                // guest reads slower than the model writes.
                while let Some(e) = c.stream.try_next_event() {
                    match e {
                        StreamEvent::Piece(more) => p.push_str(&more),
                        other => {
                            c.pending = Some(other);
                            break;
                        }
                    }
                }
                Ok(Some(p))
            }
            Some(StreamEvent::Done(g)) => {
                c.outcome = Some(g);
                Ok(None)
            }
            Some(StreamEvent::Failed(e)) => {
                c.failed = true;
                Err(e.into())
            }
            None => {
                c.failed = true;
                Err(engine_gone())
            }
        }
    }

    async fn outcome(
        &mut self,
        r: Resource<CompletionResource>,
    ) -> wasmtime::Result<Option<wit_inf::Generation>> {
        Ok(self.table.get(&r)?.outcome.clone().map(to_wit_generation))
    }

    async fn drop(&mut self, r: Resource<CompletionResource>) -> wasmtime::Result<()> {
        self.delete(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;
    use std::sync::atomic::Ordering::SeqCst;
    use wit_inf::{HostCompletion as _, HostSession as _};
    use wit_models::{Host as _, HostModel as _};

    struct Guest {
        ctx: LlmCtx,
        table: ResourceTable,
    }

    impl Guest {
        fn view(&mut self) -> LlmView<'_> {
            LlmView { ctx: &mut self.ctx, table: &mut self.table }
        }
    }

    fn guest(shared: &Arc<LlmShared>, limits: LlmLimits) -> Guest {
        let grants = BTreeMap::from([
            ("m".to_string(), PathBuf::from("/models/m.gguf")),
            ("missing".to_string(), PathBuf::from("/models/missing.gguf")),
            ("broken".to_string(), PathBuf::from("/models/broken.gguf")),
        ]);
        Guest { ctx: LlmCtx::new(Arc::clone(shared), grants, limits), table: ResourceTable::new() }
    }

    fn setup() -> (FakeEngine, Arc<LlmShared>, Guest) {
        let engine = FakeEngine::new();
        let shared = LlmShared::new(Arc::new(engine.clone()));
        let g = guest(&shared, LlmLimits::default());
        (engine, shared, g)
    }

    fn no_session_options() -> wit_inf::SessionOptions {
        wit_inf::SessionOptions {
            context_size: Some(256),
            batch_size: None,
            threads: Some(1),
            seed: Some(7),
        }
    }

    fn greedy(max: u32) -> wit_inf::SamplingOptions {
        wit_inf::SamplingOptions {
            max_tokens: Some(max),
            temperature: Some(0.0),
            top_k: None,
            top_p: None,
            min_p: None,
            repeat_penalty: None,
            repeat_window: None,
            seed: None,
            stop: Vec::new(),
        }
    }

    fn kind(e: &LlmError) -> &'static str {
        match e {
            LlmError::Guest(types::Error::NotGranted(_)) => "not-granted",
            LlmError::Guest(types::Error::NotFound(_)) => "not-found",
            LlmError::Guest(types::Error::InvalidInput(_)) => "invalid-input",
            LlmError::Guest(types::Error::Unsupported(_)) => "unsupported",
            LlmError::Guest(types::Error::ResourceExhausted(_)) => "resource-exhausted",
            LlmError::Guest(types::Error::Unloaded(_)) => "unloaded",
            LlmError::Guest(types::Error::Runtime(_)) => "runtime",
            LlmError::Trap(_) => "trap",
        }
    }

    #[tokio::test]
    async fn grants_are_enforced_and_load_errors_map_to_wit_errors() {
        let (engine, _shared, mut g) = setup();
        let mut v = g.view();
        let e = v.load("other".into(), None).await.err().unwrap();
        assert_eq!(kind(&e), "not-granted");
        assert!(
            matches!(&e, LlmError::Guest(types::Error::NotGranted(m)) if m.contains("granted: broken, m, missing"))
        );
        assert_eq!(kind(&v.load("missing".into(), None).await.err().unwrap()), "not-found");
        assert_eq!(kind(&v.load("broken".into(), None).await.err().unwrap()), "runtime");
        assert_eq!(engine.counters.loads.load(SeqCst), 0);
        assert!(v.load("m".into(), None).await.is_ok());
        assert_eq!(v.granted().await.unwrap(), vec!["broken", "m", "missing"]);
    }

    #[tokio::test]
    async fn weights_are_shared_between_handles_and_guests() {
        let (engine, shared, mut a) = setup();
        let mut b = guest(&shared, LlmLimits::default());
        let m1 = a.view().load("m".into(), None).await.unwrap();
        let m2 = a.view().load("m".into(), None).await.unwrap();
        let m3 = b.view().load("m".into(), None).await.unwrap();
        assert_eq!(engine.counters.loads.load(SeqCst), 1);
        assert_eq!(engine.counters.live_models.load(SeqCst), 1);
        wit_models::HostModel::drop(&mut a.view(), m1).await.unwrap();
        wit_models::HostModel::drop(&mut a.view(), m2).await.unwrap();
        wit_models::HostModel::drop(&mut b.view(), m3).await.unwrap();
        // Each guest's loaded list still holds the weights until it unloads.
        assert_eq!(engine.counters.live_models.load(SeqCst), 1);
        a.view().unload("m".into()).await.unwrap();
        // Guest a's unload touches only a: b still has the model and can use it.
        assert!(a.view().loaded().await.unwrap().is_empty());
        assert_eq!(b.view().loaded().await.unwrap().len(), 1);
        let mb = b.view().load("m".into(), None).await.unwrap();
        let mb_rep = mb.rep();
        let s =
            wit_inf::HostSession::create(&mut b.view(), mb, no_session_options()).await.unwrap();
        assert_eq!(engine.counters.live_models.load(SeqCst), 1);
        assert_eq!(engine.counters.loads.load(SeqCst), 1);
        wit_inf::HostSession::drop(&mut b.view(), s).await.unwrap();
        wit_models::HostModel::drop(&mut b.view(), Resource::new_own(mb_rep)).await.unwrap();
        b.view().unload("m".into()).await.unwrap();
        assert_eq!(engine.counters.live_models.load(SeqCst), 0);
    }

    #[tokio::test]
    async fn generate_and_stream_agree() {
        let (_engine, _shared, mut g) = setup();
        let mut v = g.view();
        let m = v.load("m".into(), None).await.unwrap();
        let s = wit_inf::HostSession::create(&mut v, m, no_session_options()).await.unwrap();
        let prompt = || wit_inf::Prompt::Text("hello".into());
        let whole = v.generate(Resource::new_borrow(s.rep()), prompt(), greedy(100)).await.unwrap();
        assert_eq!(whole.text, "echo: hello");
        assert!(matches!(whole.finish_reason, wit_inf::FinishReason::Stop));
        let c = v.stream(Resource::new_borrow(s.rep()), prompt(), greedy(100)).await.unwrap();
        assert!(v.outcome(Resource::new_borrow(c.rep())).await.unwrap().is_none());
        let mut text = String::new();
        while let Some(piece) = v.next(Resource::new_borrow(c.rep())).await.unwrap() {
            text.push_str(&piece);
        }
        assert_eq!(text, whole.text);
        let outcome = v.outcome(Resource::new_borrow(c.rep())).await.unwrap().unwrap();
        assert_eq!(outcome.text, whole.text);
        assert_eq!(outcome.tokens, whole.tokens);
        // After the end, next keeps returning none.
        assert!(v.next(Resource::new_borrow(c.rep())).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn finish_reasons_and_stop_sequences() {
        let (_engine, _shared, mut g) = setup();
        let mut v = g.view();
        let m = v.load("m".into(), None).await.unwrap();
        let s = wit_inf::HostSession::create(&mut v, m, no_session_options()).await.unwrap();
        let prompt = || wit_inf::Prompt::Text("hello world".into());
        let short = v.generate(Resource::new_borrow(s.rep()), prompt(), greedy(3)).await.unwrap();
        assert_eq!(short.text, "ech");
        assert!(matches!(short.finish_reason, wit_inf::FinishReason::Length));
        let mut o = greedy(100);
        o.stop = vec!["wor".into()];
        let stopped = v.generate(Resource::new_borrow(s.rep()), prompt(), o).await.unwrap();
        assert_eq!(stopped.text, "echo: hello ");
        assert!(matches!(stopped.finish_reason, wit_inf::FinishReason::StopSequence));
    }

    #[tokio::test]
    async fn unload_drains_sessions_and_frees_everything_after() {
        let (engine, _shared, mut g) = setup();
        let mut v = g.view();
        let m = v.load("m".into(), None).await.unwrap();
        let m_rep = m.rep();
        let s = wit_inf::HostSession::create(&mut v, m, no_session_options()).await.unwrap();
        v.unload("m".into()).await.unwrap();
        let e = v.metadata(Resource::new_borrow(m_rep)).await.err().unwrap();
        assert_eq!(kind(&e), "unloaded");
        let e =
            wit_inf::HostSession::create(&mut v, Resource::new_borrow(m_rep), no_session_options())
                .await;
        assert_eq!(kind(&e.err().unwrap()), "unloaded");
        let loaded = v.loaded().await.unwrap();
        assert_eq!(loaded.len(), 1);
        assert!(matches!(loaded[0].state, wit_models::ModelState::Draining));
        assert_eq!(loaded[0].sessions, 1);
        // The session still works.
        let text = wit_inf::Prompt::Text("x".into());
        assert!(v.generate(Resource::new_borrow(s.rep()), text, greedy(4)).await.is_ok());
        wit_inf::HostSession::drop(&mut v, s).await.unwrap();
        assert!(v.loaded().await.unwrap().is_empty());
        assert_eq!(engine.counters.live_sessions.load(SeqCst), 0);
        wit_models::HostModel::drop(&mut v, Resource::new_own(m_rep)).await.unwrap();
        assert_eq!(engine.counters.live_models.load(SeqCst), 0);
    }

    #[tokio::test]
    async fn dropping_a_guest_frees_its_models_and_sessions() {
        let (engine, _shared, mut g) = setup();
        let mut v = g.view();
        let m = v.load("m".into(), None).await.unwrap();
        let s = wit_inf::HostSession::create(
            &mut v,
            Resource::new_borrow(m.rep()),
            no_session_options(),
        )
        .await
        .unwrap();
        let _c = v
            .stream(Resource::new_borrow(s.rep()), wit_inf::Prompt::Text("a".into()), greedy(5))
            .await
            .unwrap();
        assert_eq!(engine.counters.live_sessions.load(SeqCst), 1);
        drop(g);
        assert_eq!(engine.counters.live_sessions.load(SeqCst), 0);
        assert_eq!(engine.counters.live_models.load(SeqCst), 0);
    }

    #[tokio::test]
    async fn bad_handles_trap_instead_of_returning_errors() {
        let (_engine, _shared, mut g) = setup();
        let mut v = g.view();
        let e = v.metadata(Resource::new_borrow(12345)).await.err().unwrap();
        assert_eq!(kind(&e), "trap");
        let e = v.next(Resource::new_borrow(777)).await.err().unwrap();
        assert_eq!(kind(&e), "trap");
    }

    #[tokio::test]
    async fn limits_on_sessions_and_input_size() {
        let engine = FakeEngine::new();
        let shared = LlmShared::new(Arc::new(engine));
        let limits = LlmLimits { max_sessions: 2, max_input_bytes: 16, ..LlmLimits::default() };
        let mut g = guest(&shared, limits);
        let mut v = g.view();
        let m = v.load("m".into(), None).await.unwrap();
        let b = || Resource::new_borrow(m.rep());
        let s1 = wit_inf::HostSession::create(&mut v, b(), no_session_options()).await.unwrap();
        let _s2 = wit_inf::HostSession::create(&mut v, b(), no_session_options()).await.unwrap();
        let e =
            wit_inf::HostSession::create(&mut v, b(), no_session_options()).await.err().unwrap();
        assert_eq!(kind(&e), "resource-exhausted");
        let e = v.tokenize(b(), "x".repeat(17), false, false).await.err().unwrap();
        assert_eq!(kind(&e), "invalid-input");
        let long = wit_inf::Prompt::Text("y".repeat(17));
        let e = v.generate(Resource::new_borrow(s1.rep()), long, greedy(2)).await.err().unwrap();
        assert_eq!(kind(&e), "invalid-input");
        wit_inf::HostSession::drop(&mut v, s1).await.unwrap();
        assert!(wit_inf::HostSession::create(&mut v, b(), no_session_options()).await.is_ok());
    }

    #[test]
    fn session_options_are_resolved_and_checked() {
        let limits = LlmLimits::default();
        let opts = |c, b, t| wit_inf::SessionOptions {
            context_size: c,
            batch_size: b,
            threads: t,
            seed: None,
        };
        let d = session_options(&opts(None, None, None), 8192, &limits, 1).unwrap();
        assert_eq!((d.context_size, d.batch_size, d.threads), (4096, 512, 1));
        let small = session_options(&opts(None, None, None), 128, &limits, 1).unwrap();
        assert_eq!((small.context_size, small.batch_size), (128, 128));
        for (c, b, t) in [
            (Some(0), None, None),
            (Some(8), None, None),
            (Some(9000), None, None),
            (Some(256), Some(0), None),
            (Some(256), Some(257), None),
            (None, None, Some(0)),
            (None, None, Some(u32::MAX)),
        ] {
            let e = session_options(&opts(c, b, t), 8192, &limits, 1).err().unwrap();
            assert_eq!(kind(&e), "invalid-input", "{c:?} {b:?} {t:?}");
        }
        let capped = LlmLimits { max_context_size: 1024, ..LlmLimits::default() };
        assert!(session_options(&opts(Some(2048), None, None), 8192, &capped, 1).is_err());
    }

    #[test]
    fn sampling_options_are_resolved_and_checked() {
        let p = sampling_params(greedy(10), 5).unwrap();
        assert_eq!((p.max_tokens, p.temperature, p.seed), (10, 0.0, 5));
        let mut defaults = greedy(10);
        defaults.temperature = None;
        defaults.max_tokens = None;
        let d = sampling_params(defaults, 1).unwrap();
        assert_eq!(
            (d.max_tokens, d.temperature, d.top_k, d.top_p, d.min_p),
            (256, 0.8, 40, 0.95, 0.05)
        );
        type Mutate = Box<dyn Fn(&mut wit_inf::SamplingOptions)>;
        let bad: Vec<Mutate> = vec![
            Box::new(|o| o.temperature = Some(f32::NAN)),
            Box::new(|o| o.temperature = Some(-0.5)),
            Box::new(|o| o.temperature = Some(f32::INFINITY)),
            Box::new(|o| o.top_p = Some(0.0)),
            Box::new(|o| o.top_p = Some(1.01)),
            Box::new(|o| o.top_p = Some(f32::NAN)),
            Box::new(|o| o.min_p = Some(1.5)),
            Box::new(|o| o.repeat_penalty = Some(0.0)),
            Box::new(|o| o.max_tokens = Some(0)),
            Box::new(|o| o.stop = vec![String::new()]),
            Box::new(|o| o.stop = vec!["s".repeat(257)]),
            Box::new(|o| o.stop = vec!["a".into(); 17]),
        ];
        for (i, f) in bad.iter().enumerate() {
            let mut o = greedy(10);
            f(&mut o);
            assert_eq!(kind(&sampling_params(o, 0).err().unwrap()), "invalid-input", "case {i}");
        }
    }
}
