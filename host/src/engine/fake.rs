//! A deterministic engine for tests of the host glue: no model file is read and no llama.cpp
//! runs. Tokens are bytes (vocabulary 258: 256 bytes, BOS 256, EOS 257); a generation replies
//! `echo: ` followed by the prompt's text, then EOS. Live models and sessions are counted so that
//! tests can check that resources are freed.

use super::{
    ChatMessage, CpuKernels, Engine, FinishReason, GenerationStream, GenerationSummary, GpuDevice,
    KernelVariant, LoadOptions, Model, ModelInfo, OutputAssembler, Prompt, SamplingParams, Session,
    SessionOptions, StreamEvent, TokenId, Usage,
};
use crate::error::{LlmError, LlmResult};
use crate::source::ResolvedModel;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const BOS: TokenId = 256;
const EOS: TokenId = 257;
const VOCAB: u32 = 258;

/// Counters shared by a fake engine and everything it creates.
#[derive(Debug, Default)]
pub struct FakeCounters {
    /// Models loaded and not yet dropped.
    pub live_models: AtomicUsize,
    /// Sessions created and not yet dropped.
    pub live_sessions: AtomicUsize,
    /// Calls to [`Engine::load`] that succeeded.
    pub loads: AtomicUsize,
}

/// The fake engine. A path whose file name starts with `missing` is not found; one that starts
/// with `broken` fails to load; one that starts with `slow` takes [`FakeEngine::SLOW_LOAD`] to
/// load; any other path loads at once.
#[derive(Debug, Default, Clone)]
pub struct FakeEngine {
    /// Shared counters.
    pub counters: Arc<FakeCounters>,
}

impl FakeEngine {
    /// How long a `slow*` model takes to load.
    pub const SLOW_LOAD: Duration = Duration::from_millis(1500);

    /// A new fake engine with zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Engine for FakeEngine {
    fn name(&self) -> &str {
        "fake"
    }

    fn load(&self, model: &ResolvedModel, options: &LoadOptions) -> LlmResult<Arc<dyn Model>> {
        let path = &model.path;
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        if file.starts_with("missing") {
            return Err(LlmError::NotFound(format!("model file {}", path.display())));
        }
        if file.starts_with("broken") {
            return Err(LlmError::Runtime(format!("cannot load {}", path.display())));
        }
        if file.starts_with("slow") {
            std::thread::sleep(Self::SLOW_LOAD);
        }
        self.counters.live_models.fetch_add(1, Ordering::SeqCst);
        self.counters.loads.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(FakeModel {
            info: ModelInfo {
                architecture: "fake".into(),
                display_name: Some(file.to_string()),
                vocab_size: VOCAB,
                context_length: 1024,
                embedding_size: 8,
                layer_count: 2,
                head_count: 2,
                head_count_kv: 1,
                parameter_count: 1000,
                file_size: 0,
                file_type: "F32".into(),
                bos_token: Some(BOS),
                eos_token: Some(EOS),
                newline_token: Some(u32::from(b'\n')),
                chat_template: Some("fake".into()),
                gpu_layers: options.gpu_layers,
            },
            counters: Arc::clone(&self.counters),
        }))
    }

    fn gpus(&self) -> Vec<GpuDevice> {
        Vec::new()
    }

    fn cpu_kernels(&self) -> Result<CpuKernels, LlmError> {
        Ok(CpuKernels {
            variant: "fake".into(),
            forced: false,
            path: None,
            features: vec!["SSE3".into()],
            available: vec![KernelVariant { name: "fake".into(), score: 1, not_picked: None }],
        })
    }
}

/// Bytes as tokens, after BOS when `add_special`.
fn tokens(text: &str, add_special: bool) -> Vec<TokenId> {
    let mut out: Vec<TokenId> = Vec::with_capacity(text.len() + 1);
    if add_special {
        out.push(BOS);
    }
    out.extend(text.bytes().map(TokenId::from));
    out
}

/// `[role]content` lines, then `[assistant]` when asked.
fn template(messages: &[ChatMessage], add_assistant: bool) -> String {
    let mut s: String = messages.iter().map(|m| format!("[{}]{}\n", m.role, m.content)).collect();
    if add_assistant {
        s.push_str("[assistant]");
    }
    s
}

struct FakeModel {
    info: ModelInfo,
    counters: Arc<FakeCounters>,
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.counters.live_models.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Model for FakeModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenize(&self, text: &str, add_special: bool, _: bool) -> Result<Vec<TokenId>, LlmError> {
        Ok(tokens(text, add_special))
    }

    fn detokenize(&self, tokens: &[TokenId], render_special: bool) -> Result<String, LlmError> {
        let mut bytes = Vec::new();
        for t in tokens {
            match *t {
                t if t < 256 => bytes.push(t as u8),
                BOS if render_special => bytes.extend_from_slice(b"<s>"),
                EOS if render_special => bytes.extend_from_slice(b"</s>"),
                BOS | EOS => {}
                t => {
                    return Err(LlmError::invalid(format!("token {t} is outside the vocabulary")));
                }
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_assistant: bool,
    ) -> Result<String, LlmError> {
        Ok(template(messages, add_assistant))
    }

    fn new_session(&self, options: &SessionOptions) -> Result<Box<dyn Session>, LlmError> {
        self.counters.live_sessions.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(FakeSession {
            n_ctx: options.context_size,
            counters: Arc::clone(&self.counters),
        }))
    }

    fn sessions(&self) -> usize {
        self.counters.live_sessions.load(Ordering::SeqCst)
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0f32; 8];
                for b in t.bytes() {
                    v[usize::from(b) % 8] += 1.0;
                }
                super::normalize(&mut v);
                v
            })
            .collect())
    }
}

struct FakeSession {
    n_ctx: u32,
    counters: Arc<FakeCounters>,
}

impl Drop for FakeSession {
    fn drop(&mut self) {
        self.counters.live_sessions.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Session for FakeSession {
    fn context_size(&self) -> u32 {
        self.n_ctx
    }

    fn generate(&self, prompt: Prompt, params: SamplingParams) -> LlmResult<GenerationStream> {
        // Its tokens follow a fixed rule: it cannot hold them to a grammar, so it says so
        // rather than ignore one.
        if params.constraint.is_some() {
            return Err(LlmError::Unsupported(
                "the fake engine cannot hold output to a grammar or JSON schema".into(),
            ));
        }
        if params.tools.is_some() {
            return Err(LlmError::Unsupported("the fake engine cannot call tools".into()));
        }
        let prompt = match prompt {
            Prompt::Text(t) => tokens(&t, true),
            Prompt::Tokens(t) => {
                if let Some(bad) = t.iter().find(|t| **t >= VOCAB) {
                    return Err(LlmError::invalid(format!(
                        "token {bad} is outside the vocabulary (size {VOCAB})"
                    )));
                }
                t
            }
            Prompt::Chat(m) => tokens(&template(&m, true), true),
        };
        if prompt.is_empty() {
            return Err(LlmError::invalid("the prompt is empty"));
        }
        if prompt.len() >= self.n_ctx as usize {
            return Err(LlmError::invalid("the prompt does not fit the context"));
        }
        let text: Vec<u8> = prompt.iter().filter(|t| **t < 256).map(|t| *t as u8).collect();
        let reply: Vec<TokenId> =
            b"echo: ".iter().chain(&text).map(|b| TokenId::from(*b)).chain([EOS]).collect();
        let (tx, stream) = GenerationStream::channel();
        let mut out = OutputAssembler::new(&params.stop);
        let mut generated = Vec::new();
        let max_new = (params.max_tokens as usize).min(self.n_ctx as usize - prompt.len());
        let mut reason = FinishReason::Length;
        if params.deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            let _ = tx.send(StreamEvent::Failed(LlmError::ResourceExhausted("deadline".into())));
            return Ok(stream);
        }
        for t in reply {
            if generated.len() >= max_new {
                break;
            }
            if t == EOS {
                reason = FinishReason::Stop;
                break;
            }
            generated.push(t);
            let hit = out.push(&[t as u8]);
            let piece = out.take_ready();
            if params.pieces && !piece.is_empty() {
                let _ = tx.send(StreamEvent::Piece(piece));
            }
            if hit.is_some() {
                reason = FinishReason::StopSequence;
                break;
            }
        }
        let rest = out.finish();
        if params.pieces && !rest.is_empty() {
            let _ = tx.send(StreamEvent::Piece(rest));
        }
        let _ = tx.send(StreamEvent::Done(GenerationSummary {
            tool_calls: Vec::new(),
            text: out.text().to_string(),
            usage: Usage {
                prompt_tokens: prompt.len() as u32,
                generated_tokens: generated.len() as u32,
                ..Usage::default()
            },
            tokens: generated,
            finish_reason: reason,
        }));
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::SamplingRequest;

    #[test]
    fn a_constraint_is_refused_not_ignored() {
        let model = FakeEngine::new()
            .load(&ResolvedModel::unchecked("fake.gguf"), &LoadOptions::default())
            .unwrap();
        let options =
            SessionOptions { context_size: 256, batch_size: 64, threads: 1, ..Default::default() };
        let session = model.new_session(&options).unwrap();
        let params = SamplingRequest {
            constraint: Some(crate::engine::Constraint::Grammar("root ::= \"a\"".into())),
            ..Default::default()
        }
        .resolve(1)
        .unwrap();
        let e = session.generate(Prompt::Text("x".into()), params).err().unwrap();
        assert_eq!(e.kind(), "unsupported");
        let plain =
            SamplingRequest { max_tokens: Some(2), ..Default::default() }.resolve(1).unwrap();
        assert!(session.generate(Prompt::Text("x".into()), plain).is_ok());
    }
}
