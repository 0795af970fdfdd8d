//! The engine layer: what the host needs from an inference backend, in this crate's own types.
//!
//! Front ends (the WIT glue, and next HTTP, native messaging and `wasi:nn`) reach engines only
//! through these traits and the [`crate::registry`], so the local llama.cpp engine ([`llama`]),
//! the test engine ([`fake`]) and remote engines plug in behind the same interface. The prompt
//! crosses into the engine as text, messages or tokens ([`Prompt`]): an engine that tokenizes
//! does so itself, one that takes text passes it on. Every method here may block; front ends
//! call them off the async runtime.

pub mod fake;
pub mod llama;
mod output;
mod types;

pub use output::{OutputAssembler, StopHit};
pub use types::*;

use crate::error::LlmResult;
use crate::source::ResolvedModel;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// An inference backend: loads models.
pub trait Engine: Send + Sync + 'static {
    /// Short name of the engine, for logs.
    fn name(&self) -> &str;
    /// Load a resolved model. Blocks.
    fn load(&self, model: &ResolvedModel, options: &LoadOptions) -> LlmResult<Arc<dyn Model>>;
    /// Accelerators this engine can use; empty for CPU-only engines.
    fn gpus(&self) -> Vec<GpuDevice>;
    /// The CPU kernels in use; starts the engine if it has not started.
    fn cpu_kernels(&self) -> LlmResult<CpuKernels>;
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
    ) -> LlmResult<Vec<TokenId>>;
    /// Tokens to text.
    fn detokenize(&self, tokens: &[TokenId], render_special: bool) -> LlmResult<String>;
    /// Format a conversation with the model's chat template.
    fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_assistant: bool,
    ) -> LlmResult<String>;
    /// Create a session with its own sequence (KV cache). Blocks.
    fn new_session(&self, options: &SessionOptions) -> LlmResult<Box<dyn Session>>;
    /// Mean-pooled, L2-normalized embeddings, one per text. Blocks, but does not hold up the
    /// generations of other sessions on the same model.
    fn embed(&self, texts: &[String]) -> LlmResult<Vec<Vec<f32>>>;
    /// [`Model::embed`], given up with an error once `cancel` is set (its caller went away).
    /// Engines that cannot stop midway finish the work.
    fn embed_cancellable(
        &self,
        texts: &[String],
        cancel: &Arc<AtomicBool>,
    ) -> LlmResult<Vec<Vec<f32>>> {
        let _ = cancel;
        self.embed(texts)
    }
    /// Sessions over the model that are alive now.
    fn sessions(&self) -> usize;
}

/// A session: one sequence (context, KV cache) over a model.
pub trait Session: Send + Sync {
    /// Context size in tokens.
    fn context_size(&self) -> u32;
    /// Start generating from `prompt`. Prompt errors (empty, too long, bad tokens, a generation
    /// already running) are returned here; the text arrives through the stream.
    fn generate(&self, prompt: Prompt, params: SamplingParams) -> LlmResult<GenerationStream>;
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
        let p = |g| {
            let p = info(g).placement();
            (p.device, p.gpu_layers, p.cpu_layers)
        };
        assert_eq!(p(0), (DeviceKind::Cpu, 0, 31));
        assert_eq!(p(10), (DeviceKind::Split, 10, 21));
        assert_eq!(p(31), (DeviceKind::Gpu, 31, 0));
        assert_eq!(p(999), (DeviceKind::Gpu, 31, 0));
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

    #[test]
    fn model_info_serializes_in_camel_case() {
        let v = serde_json::to_value(ModelInfo {
            display_name: Some("m".into()),
            vocab_size: 3,
            ..ModelInfo::default()
        })
        .unwrap();
        assert_eq!(v["name"], "m");
        assert_eq!(v["vocabSize"], 3);
        let p =
            serde_json::to_value(ModelInfo { layer_count: 2, ..ModelInfo::default() }.placement())
                .unwrap();
        assert_eq!(p, serde_json::json!({ "device": "CPU", "gpuLayers": 0, "cpuLayers": 3 }));
    }
}
