//! How a model's one batched context is laid out: how many sequences, and how many KV cells
//! each, by default from the model and the memory available now.

use llama_cpp_2::model::LlamaModel;

/// How the shared context of a model is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// KV cells (tokens) of the whole context, split evenly between the sequences; `None`:
    /// [`default_layout`].
    pub cells: Option<u32>,
    /// Sequences (sessions generating at once, or holding a cache) at most.
    pub sequences: u32,
    /// Threads every decode uses.
    pub threads: u32,
    /// Most tokens in one decode.
    pub batch: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { cells: None, sequences: 4, threads: crate::hardware::default_threads(), batch: 512 }
    }
}

/// Bytes of KV cache per token (keys and values in F16 for every layer).
pub fn kv_bytes_per_token(model: &LlamaModel) -> u64 {
    let heads = u64::from(model.n_head().max(1));
    let per_head = u64::try_from(model.n_embd()).unwrap_or(0) / heads;
    2 * 2 * u64::from(model.n_layer()) * u64::from(model.n_head_kv()) * per_head
}

/// The default layout of the context: per sequence, the default session context (the model's
/// training context up to 4096 tokens, rounded up to llama.cpp's 256), so that a session with
/// default options always fits; as many of the `sequences` as fit in a quarter of the memory
/// available now, at least one. Returns (sequences, cells per sequence).
pub fn default_layout(model: &LlamaModel, sequences: u32) -> (u32, u32) {
    let per_token = kv_bytes_per_token(model).max(1);
    let per_seq = model.n_ctx_train().clamp(256, 4096).div_ceil(256) * 256;
    let budget = crate::hardware::memory().available / 4;
    let fit = budget / (per_token * u64::from(per_seq));
    (sequences.clamp(1, u32::try_from(fit).unwrap_or(u32::MAX).max(1)), per_seq)
}
