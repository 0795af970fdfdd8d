//! Embeddings on the model's scheduler thread, a chunk at a time.
//!
//! An `embed` call becomes an [`EmbedJob`] that the scheduler steps between the generation
//! steps of the model's sessions: each step decodes at most [`EMBED_CHUNK`] tokens of one text,
//! so a large call never holds up running generations for longer than one chunk. The context
//! returns per-token embeddings (pooling off) and the mean is taken here; for a causal model the
//! chunks of one text share the KV cache, which gives the same vectors as one decode of the
//! whole text. Models with non-causal attention (BERT-like encoders) see each text in one
//! decode, as their attention needs.

use crate::error::{LlmError, LlmResult};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

/// Most tokens of one text decoded per scheduler step.
pub(super) const EMBED_CHUNK: usize = 64;

/// The embedding context of one model, made on the first `embed` call.
pub(super) struct Embedder<'m> {
    ctx: LlamaContext<'m>,
    /// Most tokens in one text.
    n_ctx: usize,
    /// Whether a text may be decoded in chunks (causal attention).
    chunked: bool,
}

impl<'m> Embedder<'m> {
    pub(super) fn new(model: &'m LlamaModel, backend: &LlamaBackend) -> LlmResult<Self> {
        let n = model.n_ctx_train().clamp(64, 2048);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n))
            .with_n_batch(n)
            .with_n_ubatch(n)
            .with_embeddings(true)
            .with_pooling_type(LlamaPoolingType::None);
        let ctx = model.new_context(backend, params).map_err(|e| {
            LlmError::ResourceExhausted(format!(
                "llama.cpp could not create an embedding context: {e}"
            ))
        })?;
        let arch = model.meta_val_str("general.architecture").unwrap_or_default();
        let causal = model
            .meta_val_str(&format!("{arch}.attention.causal"))
            .map_or(true, |v| v.trim() != "false");
        Ok(Self { ctx, n_ctx: n as usize, chunked: causal })
    }

    /// Check a job's texts against the context before any work is done.
    pub(super) fn check(&self, inputs: &[Vec<LlamaToken>]) -> LlmResult<()> {
        for (i, tokens) in inputs.iter().enumerate() {
            if tokens.len() > self.n_ctx {
                return Err(LlmError::invalid(format!(
                    "text {i} has {} tokens; embeddings take at most {}",
                    tokens.len(),
                    self.n_ctx
                )));
            }
        }
        Ok(())
    }
}

/// An `embed` call in progress.
pub(super) struct EmbedJob {
    inputs: Vec<Vec<LlamaToken>>,
    /// The text being embedded, and how many of its tokens are decoded.
    text: usize,
    done: usize,
    sum: Vec<f64>,
    out: Vec<Vec<f32>>,
    reply: SyncSender<LlmResult<Vec<Vec<f32>>>>,
    cancel: Arc<AtomicBool>,
}

impl EmbedJob {
    pub(super) fn new(
        inputs: Vec<Vec<LlamaToken>>,
        reply: SyncSender<LlmResult<Vec<Vec<f32>>>>,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        let n = inputs.len();
        let out = Vec::with_capacity(n);
        Self { inputs, text: 0, done: 0, sum: Vec::new(), out, reply, cancel }
    }

    /// Decode the next chunk; the job back if it has more to do, else it has replied.
    pub(super) fn step(mut self, e: &mut Embedder<'_>) -> Option<Self> {
        if self.cancel.load(Ordering::Relaxed) {
            e.ctx.clear_kv_cache();
            let _ = self.reply.send(Err(LlmError::runtime("the embedding was given up")));
            return None;
        }
        match self.advance(e) {
            Ok(()) if self.text == self.inputs.len() => {
                let _ = self.reply.send(Ok(std::mem::take(&mut self.out)));
                None
            }
            Ok(()) => Some(self),
            Err(err) => {
                e.ctx.clear_kv_cache();
                let _ = self.reply.send(Err(err));
                None
            }
        }
    }

    fn advance(&mut self, e: &mut Embedder<'_>) -> LlmResult<()> {
        let tokens = &self.inputs[self.text];
        if self.done == 0 {
            e.ctx.clear_kv_cache();
            self.sum.clear();
        }
        let chunk = if e.chunked { EMBED_CHUNK } else { tokens.len() };
        let end = (self.done + chunk).min(tokens.len());
        let mut batch = LlamaBatch::new(end - self.done, 1);
        for (i, t) in tokens[self.done..end].iter().enumerate() {
            batch
                .add(*t, (self.done + i) as i32, &[0], true)
                .map_err(|err| LlmError::runtime(format!("batch: {err}")))?;
        }
        e.ctx
            .decode(&mut batch)
            .map_err(|err| LlmError::runtime(format!("llama.cpp decode failed: {err}")))?;
        for i in 0..(end - self.done) {
            let v = e.ctx.embeddings_ith(i as i32).map_err(|err| {
                LlmError::Unsupported(format!("the model gives no embeddings: {err}"))
            })?;
            if self.sum.is_empty() {
                self.sum = vec![0.0; v.len()];
            }
            for (s, x) in self.sum.iter_mut().zip(v) {
                *s += f64::from(*x);
            }
        }
        self.done = end;
        if self.done == tokens.len() {
            let n = tokens.len() as f64;
            let mut v: Vec<f32> = self.sum.iter().map(|s| (s / n) as f32).collect();
            crate::engine::normalize(&mut v);
            self.out.push(v);
            self.text += 1;
            self.done = 0;
        }
        Ok(())
    }
}
