//! The reference: a plain llama-cpp-2 greedy loop, shaped like llama-cpp-rs's `simple` example,
//! that the end-to-end tests compare the host's tokens with and the benchmark measures the host
//! against. One copy, used by the tests, by `tabagent-bench` and by the native peer
//! (`benches/native-peer`, which includes this file), so all of them run exactly the same code.

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use std::num::NonZeroU32;
use std::time::Instant;

/// The benchmark prompt (99 tokens with SmolLM2's tokenizer).
pub const PROMPT: &str = "The history of computing is a story of abstraction. Early machines were programmed \
by rewiring panels and flipping switches; then came stored programs, assemblers and compilers, each \
hiding the layer below. Operating systems abstracted the hardware, virtual machines abstracted the \
operating system, and the web turned the browser into a universal runtime. WebAssembly continues this \
line: a compact, sandboxed instruction format that runs at near-native speed on any host. In the \
chapters that follow we trace how";

/// Context size.
pub const CONTEXT: u32 = 2048;
/// Batch and micro-batch size.
pub const BATCH: u32 = 512;
/// Extra prompt-only runs per repetition in the benchmark: one prompt decode is a single
/// ~0.4 s call, too noisy on its own.
pub const PROMPT_REPS: usize = 4;

/// How to run the loop.
#[derive(Debug, Clone, Copy)]
pub struct LoopParams {
    /// CPU threads.
    pub threads: u32,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Extra prompt-only runs, each in a new context, before the one that generates.
    pub prompt_reps: usize,
}

/// One run's figures: prompt tokens/s, decode tokens/s, and the whole run in ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    /// Prompt tokens decoded per second (median over the prompt runs).
    pub prompt_tps: f64,
    /// Tokens generated per second, over the whole decode.
    pub decode_tps: f64,
    /// Decode rate from the median time per token (robust to bursts of noise); 0 when the
    /// run cannot see single tokens.
    pub step_tps: f64,
    /// The whole run in ms.
    pub total_ms: f64,
    /// Tokens generated.
    pub tokens: u32,
}

/// The direct loop, shaped like the engine's: decode the prompt (context [`CONTEXT`], batch
/// [`BATCH`]), then sample greedily / decode one token at a time until end-of-generation or
/// `max_tokens`; the last sampled token is not decoded. Returns the figures, the generated
/// tokens and the prompt's length in tokens.
pub fn greedy_loop(
    backend: &LlamaBackend,
    model: &LlamaModel,
    prompt: &str,
    p: LoopParams,
) -> anyhow::Result<(Figures, Vec<u32>, usize)> {
    let LoopParams { threads, max_tokens, prompt_reps } = p;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(CONTEXT))
        .with_n_batch(BATCH)
        .with_n_ubatch(BATCH)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32);
    let prompt = model.vocab().tokenize(prompt.as_bytes(), true, true);
    let mut batch = LlamaBatch::new(BATCH as usize, 1);
    let last = prompt.len() - 1;
    let mut prompt_ms = Vec::new();
    let (mut t0, mut t1) = (Instant::now(), Instant::now());
    // Each prompt run in a new context, as the guest's runs each use a new session.
    let mut ctx = model.new_context(backend, params.clone())?;
    for rep in 0..=prompt_reps {
        if rep > 0 {
            drop(ctx);
            ctx = model.new_context(backend, params.clone())?;
        }
        batch.clear();
        for (i, t) in prompt.iter().enumerate() {
            batch.add(*t, i as i32, &[0], i == last)?;
        }
        t0 = Instant::now();
        ctx.decode(&mut batch)?;
        t1 = Instant::now();
        prompt_ms.push(t1.duration_since(t0).as_secs_f64() * 1000.0);
    }
    let mut sampler = LlamaSampler::greedy();
    let mut out = Vec::new();
    let mut idx = batch.n_tokens() - 1;
    let mut pos = prompt.len() as i32;
    let mut steps = Vec::new();
    let mut step_start = t1;
    loop {
        let token = sampler.sample(&ctx, idx);
        let now = Instant::now();
        if !out.is_empty() {
            steps.push(now.duration_since(step_start).as_secs_f64() * 1000.0);
        }
        step_start = now;
        if model.vocab().is_eog(token) {
            break;
        }
        out.push(token.0 as u32);
        if out.len() as u32 >= max_tokens {
            break;
        }
        batch.clear();
        batch.add(token, pos, &[0], true)?;
        ctx.decode(&mut batch)?;
        pos += 1;
        idx = 0;
    }
    let t2 = Instant::now();
    let ms = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64() * 1000.0;
    let figures = Figures {
        prompt_tps: prompt.len() as f64 * 1000.0 / median(prompt_ms),
        decode_tps: out.len() as f64 * 1000.0 / ms(t1, t2),
        step_tps: 1000.0 / median(steps),
        total_ms: ms(t0, t2),
        tokens: out.len() as u32,
    };
    Ok((figures, out, prompt.len()))
}

/// The median (upper median for even lengths); 0 for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}
