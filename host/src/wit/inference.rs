//! `tabagent:llm/inference`: sessions, generation (whole or streamed) and embeddings.

use super::bindings::inference as wit;
use super::error::{HostError, HostResult};
use super::models::to_chat;
use super::resources::{CompletionResource, ModelResource, SessionResource};
use super::view::{LlmView, blocking};
use crate::engine::{
    Constraint, FinishReason, GenerationStream, GenerationSummary, Prompt, StreamEvent, Tool,
    ToolChoice, ToolUse,
};
use crate::error::LlmError;
use crate::params::{SamplingRequest, SessionRequest};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::component::Resource;

/// The sampling request of WIT options: the grammar or the schema as the constraint.
fn sampling_request(o: wit::SamplingOptions) -> HostResult<SamplingRequest> {
    let constraint = match (o.grammar, o.json_schema) {
        (Some(_), Some(_)) => {
            return Err(LlmError::invalid("give a grammar or a JSON schema, not both").into());
        }
        (Some(g), None) => Some(Constraint::Grammar(g)),
        (None, Some(s)) => Some(Constraint::JsonSchema(s)),
        (None, None) => None,
    };
    Ok(SamplingRequest {
        max_tokens: o.max_tokens,
        temperature: o.temperature,
        top_k: o.top_k,
        top_p: o.top_p,
        min_p: o.min_p,
        repeat_penalty: o.repeat_penalty,
        repeat_window: o.repeat_window,
        seed: o.seed,
        stop: o.stop,
        constraint,
        tools: (!o.tools.is_empty() || o.tool_choice.is_some()).then(|| ToolUse {
            tools: o
                .tools
                .into_iter()
                .map(|t| Tool {
                    name: t.name,
                    description: t.description,
                    parameters: t.parameters,
                })
                .collect(),
            choice: match o.tool_choice {
                None | Some(wit::ToolChoice::Auto) => ToolChoice::Auto,
                Some(wit::ToolChoice::None) => ToolChoice::None,
                Some(wit::ToolChoice::Required) => ToolChoice::Required,
                Some(wit::ToolChoice::Function(n)) => ToolChoice::Function(n),
            },
            parallel: o.parallel_tool_calls.unwrap_or(true),
        }),
    })
}

fn to_prompt(p: wit::Prompt) -> HostResult<Prompt> {
    Ok(match p {
        wit::Prompt::Text(t) => Prompt::Text(t),
        wit::Prompt::Tokens(t) => Prompt::Tokens(t),
        wit::Prompt::Chat(m) => Prompt::Chat(to_chat(m)?),
    })
}

fn to_wit_generation(g: GenerationSummary) -> wit::Generation {
    wit::Generation {
        usage: wit::Usage {
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
            FinishReason::Stop => wit::FinishReason::Stop,
            FinishReason::Length => wit::FinishReason::Length,
            FinishReason::StopSequence => wit::FinishReason::StopSequence,
            FinishReason::Cancelled => wit::FinishReason::Cancelled,
            FinishReason::ToolCalls => wit::FinishReason::ToolCalls,
        },
        tool_calls: g
            .tool_calls
            .into_iter()
            .map(|c| wit::ToolCall { id: c.id, name: c.name, arguments: c.arguments })
            .collect(),
    }
}

/// Sets its flag when dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn engine_gone() -> HostError {
    LlmError::runtime("the engine stopped before generation finished").into()
}

impl wit::Host for LlmView<'_> {
    async fn embed(
        &mut self,
        r: Resource<ModelResource>,
        texts: Vec<String>,
    ) -> HostResult<Vec<Vec<f32>>> {
        let model = self.model(&r)?;
        self.ctx.limits.check_embed(&texts)?;
        // If this call is dropped (its guest stopped, its deadline passed), the engine gives the
        // work up at its next step.
        let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let flag = Arc::clone(&cancel.0);
        blocking(move || model.embed_cancellable(&texts, &flag)).await
    }
}

impl LlmView<'_> {
    /// Check the request and start a generation on the engine.
    async fn start(
        &mut self,
        r: &Resource<SessionResource>,
        prompt: wit::Prompt,
        options: wit::SamplingOptions,
        pieces: bool,
    ) -> HostResult<GenerationStream> {
        let s = self.table.get(r)?;
        let mut params = sampling_request(options)?.resolve(s.seed)?;
        params.pieces = pieces;
        params.deadline = self.ctx.deadline;
        let session = Arc::clone(&s.session);
        let prompt = to_prompt(prompt)?;
        self.ctx.limits.check_prompt(&prompt)?;
        blocking(move || session.generate(prompt, params)).await
    }
}

impl wit::HostSession for LlmView<'_> {
    async fn create(
        &mut self,
        model: Resource<ModelResource>,
        options: wit::SessionOptions,
    ) -> HostResult<Resource<SessionResource>> {
        let m = self.model(&model)?;
        if self.ctx.models.session_count() >= self.ctx.limits.max_sessions {
            return Err(LlmError::ResourceExhausted(format!(
                "a guest may have at most {} live sessions",
                self.ctx.limits.max_sessions
            ))
            .into());
        }
        let request = SessionRequest {
            context_size: options.context_size,
            batch_size: options.batch_size,
            threads: options.threads,
            seed: options.seed,
            chat_template: options.chat_template,
        };
        let mut resolved = request.resolve(
            m.info().context_length,
            &self.ctx.limits,
            self.ctx.models.registry().default_threads(),
        )?;
        resolved.cache_scope = self.ctx.cache_scope;
        let ticket = self.ctx.models.session_ticket(&self.table.get(&model)?.0)?;
        let engine_model = Arc::clone(&m);
        let session = blocking(move || engine_model.new_session(&resolved)).await?;
        self.push(SessionResource {
            session: Arc::from(session),
            seed: request.seed_or_random(),
            _model: m,
            _ticket: ticket,
        })
    }

    async fn context_size(&mut self, r: Resource<SessionResource>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&r)?.session.context_size())
    }

    async fn generate(
        &mut self,
        r: Resource<SessionResource>,
        prompt: wit::Prompt,
        options: wit::SamplingOptions,
    ) -> HostResult<wit::Generation> {
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
        prompt: wit::Prompt,
        options: wit::SamplingOptions,
    ) -> HostResult<Resource<CompletionResource>> {
        let stream = self.start(&r, prompt, options, true).await?;
        // Through `push`: a completion counts against the guest's cap like any resource.
        self.push(CompletionResource { stream, pending: None, outcome: None, failed: false })
    }

    async fn drop(&mut self, r: Resource<SessionResource>) -> wasmtime::Result<()> {
        self.delete(r)
    }
}

impl wit::HostCompletion for LlmView<'_> {
    async fn next(&mut self, r: Resource<CompletionResource>) -> HostResult<Option<String>> {
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
    ) -> wasmtime::Result<Option<wit::Generation>> {
        Ok(self.table.get(&r)?.outcome.clone().map(to_wit_generation))
    }

    async fn drop(&mut self, r: Resource<CompletionResource>) -> wasmtime::Result<()> {
        self.delete(r)
    }
}
