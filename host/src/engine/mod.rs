//! The engine layer: what the host needs from an inference backend, in this crate's own types.
//!
//! The WIT glue ([`crate::ctx`]) only talks to these traits, so local engines (llama.cpp in
//! [`llama`]), test engines ([`fake`]) and, later, remote engines plug in behind the same
//! interface. Every method here may block; the glue calls them off the async runtime.

pub mod cpu_variants;
pub mod fake;
pub mod llama;
mod output;

pub use output::{OutputAssembler, StopHit};

use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A token id in a model's vocabulary.
pub type TokenId = u32;

/// Why an engine call failed. Each kind maps to one case of the WIT `error` variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// A parameter or input is out of range or malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A file or other named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The engine or model cannot do this.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A limit was reached.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The engine failed.
    #[error("engine error: {0}")]
    Runtime(String),
}

impl EngineError {
    /// Shorthand for [`EngineError::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidInput(msg.into())
    }
}

/// How to load a model, with every default already resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoadOptions {
    /// Layers to offload to a GPU.
    pub gpu_layers: u32,
    /// Map the file instead of reading it.
    pub use_mmap: bool,
    /// Lock the weights in RAM.
    pub use_mlock: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { gpu_layers: 0, use_mmap: true, use_mlock: false }
    }
}

/// Facts about a loaded model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelInfo {
    /// `general.architecture`.
    pub architecture: String,
    /// `general.name`, if present.
    pub display_name: Option<String>,
    /// Tokens in the vocabulary.
    pub vocab_size: u32,
    /// Training context length.
    pub context_length: u32,
    /// Embedding size.
    pub embedding_size: u32,
    /// Transformer blocks.
    pub layer_count: u32,
    /// Attention heads.
    pub head_count: u32,
    /// KV heads.
    pub head_count_kv: u32,
    /// Parameters.
    pub parameter_count: u64,
    /// Bytes of the model file.
    pub file_size: u64,
    /// Quantization name, e.g. `Q4_1`.
    pub file_type: String,
    /// BOS token.
    pub bos_token: Option<TokenId>,
    /// EOS token.
    pub eos_token: Option<TokenId>,
    /// Newline token.
    pub newline_token: Option<TokenId>,
    /// Chat template text from the file.
    pub chat_template: Option<String>,
    /// Layers actually offloaded to a GPU (the output head counts as one; 0 without a GPU).
    pub gpu_layers: u32,
}

/// Where a model's layers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// All on the CPU.
    Cpu,
    /// All on GPUs.
    Gpu,
    /// Some on each.
    Split,
}

impl ModelInfo {
    /// Where the layers are: the kind, layers on GPUs and layers on the CPU, counting the output
    /// head as one layer as llama.cpp does.
    pub fn placement(&self) -> (DeviceKind, u32, u32) {
        let total = self.layer_count + 1;
        let gpu = self.gpu_layers.min(total);
        let kind = match gpu {
            0 => DeviceKind::Cpu,
            g if g == total => DeviceKind::Gpu,
            _ => DeviceKind::Split,
        };
        (kind, gpu, total - gpu)
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Role, e.g. `user`.
    pub role: String,
    /// Text.
    pub content: String,
}

/// Session parameters, with every default resolved and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    /// Context size in tokens.
    pub context_size: u32,
    /// Prompt batch size in tokens.
    pub batch_size: u32,
    /// CPU threads.
    pub threads: u32,
}

/// Sampling parameters, with every default resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Temperature; 0 is greedy.
    pub temperature: f32,
    /// Top-k; 0 disables.
    pub top_k: u32,
    /// Top-p in (0, 1].
    pub top_p: f32,
    /// Min-p in [0, 1].
    pub min_p: f32,
    /// Repeat penalty; 1 disables.
    pub repeat_penalty: f32,
    /// Tokens the repeat penalty looks back over.
    pub repeat_window: u32,
    /// Seed.
    pub seed: u64,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Send each piece as it is ready (streaming); when false only the final event is sent.
    pub pieces: bool,
    /// Stop with an error once this instant passes (the guest's deadline).
    pub deadline: Option<std::time::Instant>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-generation token.
    Stop,
    /// Token budget or context exhausted.
    Length,
    /// A stop sequence appeared.
    StopSequence,
    /// Cancelled by the caller.
    Cancelled,
}

/// Counts and timings of one generation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Prompt tokens reused from the session's KV cache.
    pub cached_tokens: u32,
    /// Generated tokens.
    pub generated_tokens: u32,
    /// Prompt time in ms.
    pub prompt_ms: f64,
    /// Generation time in ms.
    pub generation_ms: f64,
}

impl Usage {
    /// Prompt tokens decoded per second (cached tokens excluded).
    pub fn prompt_tokens_per_second(&self) -> f64 {
        rate(self.prompt_tokens.saturating_sub(self.cached_tokens), self.prompt_ms)
    }

    /// Generated tokens per second.
    pub fn tokens_per_second(&self) -> f64 {
        rate(self.generated_tokens, self.generation_ms)
    }
}

fn rate(tokens: u32, ms: f64) -> f64 {
    if ms > 0.0 { f64::from(tokens) * 1000.0 / ms } else { 0.0 }
}

/// The outcome of a finished generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationSummary {
    /// Whole text, without any stop sequence.
    pub text: String,
    /// Generated tokens.
    pub tokens: Vec<TokenId>,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Counts and timings.
    pub usage: Usage,
}

/// What a running generation reports.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The next piece of text, whole UTF-8 characters.
    Piece(String),
    /// Generation ended; no events follow.
    Done(GenerationSummary),
    /// Generation failed; no events follow.
    Failed(EngineError),
}

/// The receiving end of a generation. Dropping it cancels the generation.
#[derive(Debug)]
pub struct GenerationStream {
    rx: mpsc::UnboundedReceiver<StreamEvent>,
}

impl GenerationStream {
    /// A stream and the sender an engine feeds it through.
    pub fn channel() -> (mpsc::UnboundedSender<StreamEvent>, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Self { rx })
    }

    /// Wait for the next event; `None` once the engine is gone without a final event.
    pub async fn next_event(&mut self) -> Option<StreamEvent> {
        self.rx.recv().await
    }

    /// The next event if one is ready now.
    pub fn try_next_event(&mut self) -> Option<StreamEvent> {
        self.rx.try_recv().ok()
    }

    /// Blocking variant of [`Self::next_event`], for callers outside an async runtime.
    pub fn blocking_next_event(&mut self) -> Option<StreamEvent> {
        self.rx.blocking_recv()
    }
}

/// An accelerator the engine can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuDevice {
    /// Index in the engine's device list.
    pub index: u32,
    /// Short name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Backend name.
    pub backend: String,
    /// Total memory in bytes.
    pub memory_total: u64,
    /// Free memory in bytes.
    pub memory_free: u64,
}

/// The CPU kernels an engine computes with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuKernels {
    /// Variant in use, for example `zen4` or `haswell`; `built-in` for an engine built with one
    /// fixed CPU backend.
    pub variant: String,
    /// Whether the operator named the variant rather than the engine picking the best.
    pub forced: bool,
    /// The module it came from, where it was loaded from a file.
    pub path: Option<std::path::PathBuf>,
    /// Instruction-set features the kernels were built for (`AVX2`, `AVX512_VNNI`, …).
    pub features: Vec<String>,
    /// Every variant the engine ships, with its score on this CPU (0: cannot run here).
    pub available: Vec<KernelVariant>,
}

/// A CPU kernel variant and how well it suits this CPU.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KernelVariant {
    /// Variant name.
    pub name: String,
    /// Higher is better; 0 when this CPU lacks an instruction the variant needs.
    pub score: u32,
}

/// An inference backend: loads models.
pub trait Engine: Send + Sync + 'static {
    /// Short name of the engine, for logs.
    fn name(&self) -> &str;
    /// Load a model file. Blocks.
    fn load(&self, path: &Path, options: &LoadOptions) -> Result<Arc<dyn Model>, EngineError>;
    /// Accelerators this engine can use; empty for CPU-only engines.
    fn gpus(&self) -> Vec<GpuDevice>;
    /// The CPU kernels in use; starts the engine if it has not started.
    fn cpu_kernels(&self) -> Result<CpuKernels, EngineError>;
}

/// A loaded model. Shared by every session over it.
pub trait Model: Send + Sync {
    /// Metadata.
    fn info(&self) -> &ModelInfo;
    /// Text to tokens.
    fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<TokenId>, EngineError>;
    /// Tokens to text.
    fn detokenize(&self, tokens: &[TokenId], render_special: bool) -> Result<String, EngineError>;
    /// Format a conversation with the model's chat template.
    fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_assistant: bool,
    ) -> Result<String, EngineError>;
    /// Create a session with its own context. Blocks.
    fn new_session(&self, options: &SessionOptions) -> Result<Box<dyn Session>, EngineError>;
    /// Mean-pooled, L2-normalized embeddings, one per text. Blocks.
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EngineError>;
}

/// A session: one context (KV cache) over a model.
pub trait Session: Send + Sync {
    /// Context size in tokens.
    fn context_size(&self) -> u32;
    /// Start generating from `prompt`. Prompt errors (empty, too long, bad tokens, a generation
    /// already running) are returned here; the text arrives through the stream.
    fn generate(
        &self,
        prompt: Vec<TokenId>,
        params: SamplingParams,
    ) -> Result<GenerationStream, EngineError>;
}

/// L2-normalize a vector in place (left as is when its norm is zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_rates() {
        let u = Usage {
            prompt_tokens: 10,
            cached_tokens: 4,
            generated_tokens: 50,
            prompt_ms: 100.0,
            generation_ms: 500.0,
        };
        assert_eq!(u.prompt_tokens_per_second(), 60.0);
        assert_eq!(u.tokens_per_second(), 100.0);
        assert_eq!(Usage::default().tokens_per_second(), 0.0);
    }

    #[test]
    fn placement_counts_the_output_head() {
        let info = |gpu_layers| ModelInfo { layer_count: 30, gpu_layers, ..ModelInfo::default() };
        assert_eq!(info(0).placement(), (DeviceKind::Cpu, 0, 31));
        assert_eq!(info(10).placement(), (DeviceKind::Split, 10, 21));
        assert_eq!(info(31).placement(), (DeviceKind::Gpu, 31, 0));
        assert_eq!(info(999).placement(), (DeviceKind::Gpu, 31, 0));
    }

    #[test]
    fn normalize_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = vec![0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }
}
