//! The engine layer's own types: what crosses between the front ends and any engine.

use crate::error::LlmError;
use serde::Serialize;
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// A token id in a model's vocabulary.
pub type TokenId = u32;

/// How to load a model, with every default already resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoadOptions {
    /// Layers to offload to a GPU.
    pub gpu_layers: u32,
    /// Map the file instead of reading it.
    pub use_mmap: bool,
    /// Lock the weights in RAM.
    pub use_mlock: bool,
    /// A chat template (Jinja source) to use instead of the file's, as the user named it.
    pub chat_template: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { gpu_layers: 0, use_mmap: true, use_mlock: false, chat_template: None }
    }
}

/// Facts about a loaded model.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// `general.architecture`.
    pub architecture: String,
    /// `general.name`, if present.
    #[serde(rename = "name")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeviceKind {
    /// All on the CPU.
    #[serde(rename = "CPU")]
    Cpu,
    /// All on GPUs.
    #[serde(rename = "GPU")]
    Gpu,
    /// Some on each.
    #[serde(rename = "split")]
    Split,
}

/// Where a loaded model's layers went, counting the output head as one layer as llama.cpp does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// CPU, GPU or split.
    pub device: DeviceKind,
    /// Layers on GPUs.
    pub gpu_layers: u32,
    /// Layers on the CPU.
    pub cpu_layers: u32,
}

impl ModelInfo {
    /// Where the layers are.
    pub fn placement(&self) -> Placement {
        let total = self.layer_count + 1;
        let gpu = self.gpu_layers.min(total);
        let device = match gpu {
            0 => DeviceKind::Cpu,
            g if g == total => DeviceKind::Gpu,
            _ => DeviceKind::Split,
        };
        Placement { device, gpu_layers: gpu, cpu_layers: total - gpu }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatMessage {
    /// Role, e.g. `user`, or `tool` for a tool's result.
    pub role: String,
    /// Text.
    pub content: String,
    /// The tool calls the assistant made in this turn.
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the id of the call it answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A plain turn: a role and its text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into(), ..Self::default() }
    }

    /// Bytes of its texts, for size limits.
    pub fn byte_len(&self) -> usize {
        let calls: usize =
            self.tool_calls.iter().map(|c| c.id.len() + c.name.len() + c.arguments.len()).sum();
        self.role.len()
            + self.content.len()
            + calls
            + self.tool_call_id.as_ref().map_or(0, String::len)
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// The name calls give (letters, digits, `_` and `-`, at most 64).
    pub name: String,
    /// What it does, for the model; may be empty.
    pub description: String,
    /// A JSON schema of its arguments (an object), as JSON text.
    pub parameters: String,
}

/// Whether and which tools the model calls.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides: a reply, or tool calls.
    #[default]
    Auto,
    /// No tool calls: a reply only.
    None,
    /// At least one tool call.
    Required,
    /// A call of this tool.
    Function(String),
}

/// The tools of a generation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolUse {
    /// What may be called.
    pub tools: Vec<Tool>,
    /// Whether and which.
    pub choice: ToolChoice,
    /// More than one call in one turn.
    pub parallel: bool,
}

/// A call of a tool, as the model made it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolCall {
    /// The call's id, which the tool's result names.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, as JSON text (an object).
    pub arguments: String,
}

/// What to generate from. Engines that tokenize (llama.cpp) turn it into tokens themselves;
/// engines that take text or messages (a remote server) pass it on as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Raw text, tokenized with the model's BOS handling and special tokens parsed.
    Text(String),
    /// Tokens, used as they are.
    Tokens(Vec<TokenId>),
    /// A conversation, formatted with the model's chat template and opened for the assistant.
    Chat(Vec<ChatMessage>),
}

impl Prompt {
    /// Bytes the prompt takes (4 per token), for size limits.
    pub fn byte_len(&self) -> usize {
        match self {
            Self::Text(t) => t.len(),
            Self::Tokens(t) => t.len() * 4,
            Self::Chat(m) => m.iter().map(ChatMessage::byte_len).sum(),
        }
    }
}

/// Session parameters, with every default resolved and validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionOptions {
    /// Context size in tokens.
    pub context_size: u32,
    /// Prompt batch size in tokens.
    pub batch_size: u32,
    /// CPU threads.
    pub threads: u32,
    /// Sessions of one scope may start from each other's cached prompt prefixes (the host gives
    /// every instance of one component the same scope); `None` shares with no other session.
    pub cache_scope: Option<u64>,
    /// The chat template (Jinja source) of this session's chat prompts, instead of the
    /// model's.
    pub chat_template: Option<String>,
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
    /// Output held to a formal language, if any.
    pub constraint: Option<Constraint>,
    /// Tools the model may call (with a chat prompt only).
    pub tools: Option<ToolUse>,
    /// Write control tokens (such as a tool-call marker) into the text.
    pub render_special: bool,
}

/// A formal language the output must be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// A GBNF grammar (llama.cpp's grammar format), from its `root` rule.
    Grammar(String),
    /// A JSON schema, as JSON text: the output is one JSON value that matches it.
    JsonSchema(String),
    /// A GBNF grammar that holds from the first of the trigger texts on (the grammar's `root`
    /// starts with the trigger); the output before it is free.
    Lazy {
        /// The grammar.
        grammar: String,
        /// Texts that start it.
        triggers: Vec<String>,
    },
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
    /// The model called tools.
    ToolCalls,
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
    /// The tools the model called (the text is then the reply around the calls, often empty).
    pub tool_calls: Vec<ToolCall>,
}

/// What a running generation reports.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The next piece of text, whole UTF-8 characters.
    Piece(String),
    /// Generation ended; no events follow.
    Done(GenerationSummary),
    /// Generation failed; no events follow.
    Failed(LlmError),
}

/// The receiving end of a generation. Dropping it cancels the generation.
#[derive(Debug)]
pub struct GenerationStream {
    rx: mpsc::UnboundedReceiver<StreamEvent>,
    /// Splits the text into the reply and tool calls, for a generation with tools.
    tools: Option<crate::tools::ToolOutput>,
    ready: VecDeque<StreamEvent>,
}

impl GenerationStream {
    /// A stream and the sender an engine feeds it through.
    pub fn channel() -> (mpsc::UnboundedSender<StreamEvent>, Self) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, Self { rx, tools: None, ready: VecDeque::new() })
    }

    /// The same stream with its text split by `tools`: pieces carry only the reply, and the
    /// final event carries the calls.
    pub fn with_tools(mut self, tools: crate::tools::ToolOutput) -> Self {
        self.tools = Some(tools);
        self
    }

    fn take(&mut self, event: StreamEvent) {
        let Some(tools) = self.tools.as_mut() else {
            self.ready.push_back(event);
            return;
        };
        match event {
            StreamEvent::Piece(p) => {
                let shown = tools.push(&p);
                if !shown.is_empty() {
                    self.ready.push_back(StreamEvent::Piece(shown));
                }
            }
            StreamEvent::Done(summary) => {
                let (rest, summary) = tools.finish(summary);
                if !rest.is_empty() {
                    self.ready.push_back(StreamEvent::Piece(rest));
                }
                self.ready.push_back(StreamEvent::Done(summary));
            }
            failed => self.ready.push_back(failed),
        }
    }

    /// Wait for the next event; `None` once the engine is gone without a final event.
    pub async fn next_event(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            let e = self.rx.recv().await?;
            self.take(e);
        }
    }

    /// The next event if one is ready now.
    pub fn try_next_event(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            let e = self.rx.try_recv().ok()?;
            self.take(e);
        }
    }

    /// Blocking variant of [`Self::next_event`], for callers outside an async runtime.
    pub fn blocking_next_event(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            let e = self.rx.blocking_recv()?;
            self.take(e);
        }
    }
}

/// An accelerator the engine can use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KernelVariant {
    /// Variant name.
    pub name: String,
    /// Higher is better; 0 when this CPU lacks an instruction the variant needs.
    pub score: u32,
    /// Why the engine does not pick this variant by itself although it runs here, if it does
    /// not (a variant known to crash in this release); it can still be forced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_picked: Option<String>,
}
