//! A session over a remote model, and its streamed generations.
//!
//! A generation is one streamed request (server-sent events). Until the guest has been shown any
//! text it may move to another endpoint when its endpoint fails (so queued and non-streamed
//! requests survive a dead replica); once text was shown, a failure ends it with an error that
//! says so, rather than restarting it elsewhere and showing a different reply. Dropping the
//! stream closes the connection, which stops the server's generation. Stop sequences are sent
//! to the server (up to the four the OpenAI API takes) and applied here as well; so are the
//! guest's deadline and the idle timeout.
//!
//! What differs from a local session: the server keeps (or not) its own prompt cache; no token
//! ids come back, so a generation's `tokens` is empty and its counts are the server's; a
//! generation that the server ended on a stop sequence reports `stop` (servers do not say which
//! it was), one cut here reports `stop-sequence`; only the reply's `content` (or completion
//! `text`) is the text — a server's separate reasoning or tool-call fields are not passed on; a
//! server that streams past `max-tokens` is cut off there.
//!
//! Non-streamed generations (`generate`) show nothing until they end, so they may move to
//! another endpoint whenever theirs fails, and start over there.

use super::client::{self, CallError, EventStream};
use super::model::{Failure, Shared};
use super::wire;
use crate::engine::{
    Constraint, FinishReason, GenerationStream, GenerationSummary, OutputAssembler, Prompt,
    SamplingParams, Session, StreamEvent, Usage,
};
use crate::tools::ToolFormat;

/// A generation with tools (or a conversation with tool turns), in the generic format: the
/// tools described in the system message and the reply held to its JSON schema through the
/// server's `response_format`, which OpenAI-compatible servers enforce more widely than they
/// honour `tools` (llama.cpp's server renders them for some templates and ignores them for
/// others, `required` included). The calls are parsed here.
fn with_tools(
    prompt: Prompt,
    params: &mut SamplingParams,
) -> LlmResult<(Prompt, Option<crate::tools::ToolOutput>)> {
    let (tools, messages) = match crate::tools::take(prompt, params)? {
        Ok(t) => t,
        Err(prompt) => return Ok((prompt, None)),
    };
    let plan = crate::tools::plan_for(ToolFormat::Generic, &tools, &messages, params)?;
    if let Some(g) = plan.grammar {
        params.constraint = Some(Constraint::JsonSchema(g.schema));
    }
    Ok((Prompt::Chat(plan.messages), plan.output))
}
use crate::error::{LlmError, LlmResult};
use hyper::Method;
use serde_json::Value;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// A session over a remote model.
pub struct RemoteSession {
    shared: Arc<Shared>,
    context: u32,
    /// The generation in progress: its task's number (0: none) and the sender of its stream.
    current: Arc<Mutex<(u64, Option<UnboundedSender<StreamEvent>>)>>,
    /// Ends the session's generation when the session is dropped.
    stop: Arc<tokio::sync::Notify>,
    _ticket: Arc<()>,
}

impl RemoteSession {
    pub(super) fn new(shared: Arc<Shared>, context: u32) -> Self {
        let ticket = Arc::clone(&shared.sessions);
        Self {
            shared,
            context,
            current: Arc::new(Mutex::new((0, None))),
            stop: Arc::new(tokio::sync::Notify::new()),
            _ticket: ticket,
        }
    }
}

impl Drop for RemoteSession {
    fn drop(&mut self) {
        // As a local session's end cancels its generation.
        self.stop.notify_one();
    }
}

/// Marks the session free when its generation's task ends — unless a newer one took it.
struct Busy(Arc<Mutex<(u64, Option<UnboundedSender<StreamEvent>>)>>, u64);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if c.0 == self.1 {
            *c = (0, None);
        }
    }
}

impl Session for RemoteSession {
    fn context_size(&self) -> u32 {
        self.context
    }

    fn generate(&self, prompt: Prompt, mut params: SamplingParams) -> LlmResult<GenerationStream> {
        let (prompt, tools) = with_tools(prompt, &mut params)?;
        let empty = match &prompt {
            Prompt::Text(t) => t.is_empty(),
            Prompt::Tokens(t) => t.is_empty(),
            Prompt::Chat(m) => m.is_empty(),
        };
        if empty {
            return Err(LlmError::invalid("the prompt is empty"));
        }
        let (tx, stream) = GenerationStream::channel();
        let stream = match tools {
            Some(t) => stream.with_tools(t),
            None => stream,
        };
        let busy = {
            static NEXT: AtomicU64 = AtomicU64::new(1);
            let mut c = self.current.lock().unwrap_or_else(|e| e.into_inner());
            // A generation whose stream was dropped is abandoned; only a live one makes it busy.
            if c.0 != 0 && c.1.as_ref().is_some_and(|t| !t.is_closed()) {
                return Err(LlmError::invalid(
                    "this session is already generating; finish or drop the previous completion first",
                ));
            }
            let id = NEXT.fetch_add(1, Ordering::Relaxed);
            *c = (id, Some(tx.clone()));
            Busy(Arc::clone(&self.current), id)
        };
        let stop = Arc::clone(&self.stop);
        let (route, body) = wire::generation_request(Some(&self.shared.model_id), &prompt, &params);
        let shared = Arc::clone(&self.shared);
        super::runtime().spawn(async move {
            let events = tx.clone();
            let started = Instant::now();
            let deadline = params.deadline;
            let tries = shared.with_failover("generation", false, |permit| {
                let (shared, body, params, tx) =
                    (Arc::clone(&shared), body.clone(), params.clone(), tx.clone());
                async move {
                    attempt(&shared, &permit.url().clone(), route, &body, &params, &tx, started)
                        .await
                }
            });
            // Waiting in the queue or between tries ends too when the guest goes away or its
            // deadline passes.
            let result = tokio::select! {
                biased;
                () = events.closed() => Ok(None),
                () = stop.notified() => Ok(None),
                () = until(deadline) => Err(deadline_error()),
                r = tries => r,
            };
            // Free the session before the guest hears the end, so it may generate again at once.
            drop(busy);
            match result {
                Ok(Some(summary)) => {
                    let _ = events.send(StreamEvent::Done(summary));
                }
                Ok(None) => {} // The guest went away.
                Err(e) => {
                    tracing::warn!("{e}");
                    let _ = events.send(StreamEvent::Failed(e));
                }
            }
        });
        Ok(stream)
    }
}

fn deadline_error() -> LlmError {
    LlmError::ResourceExhausted("the guest's deadline passed during generation".into())
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// One try on one endpoint: `Ok(None)` when the guest dropped the stream.
async fn attempt(
    shared: &Arc<Shared>,
    url: &super::spec::EndpointUrl,
    route: &str,
    body: &Value,
    params: &SamplingParams,
    tx: &UnboundedSender<StreamEvent>,
    started: Instant,
) -> Result<Option<GenerationSummary>, Failure> {
    let t = shared.timeouts(params.deadline);
    let path = url.path(route);
    let response = tokio::select! {
        biased;
        () = tx.closed() => return Ok(None),
        () = until(params.deadline) => return Err(Failure::Final(deadline_error())),
        r = client::send(url, Method::POST, &path, Some(body), shared.key.as_ref(), t) => r?,
    };
    let mut events = EventStream::new(response.into_body(), t.idle);
    let mut out = OutputAssembler::new(&params.stop);
    let mut shown = 0u32;
    let mut chunks = 0u32;
    let mut first_text: Option<Instant> = None;
    let mut finish: Option<String> = None;
    let mut usage: Option<wire::WireUsage> = None;
    let mut cut_here = false;
    let mut cut_length = false;
    // After text was shown, a failure is final: the reply is not restarted elsewhere.
    let failure = |e: CallError, shown: u32| {
        if shown == 0 {
            return Failure::Call(e);
        }
        let e = e.redacted(shared.key.as_ref());
        let error = LlmError::runtime(format!(
            "remote model '{}': endpoint {} failed after {shown} pieces of output ({e}); \
             the generation was not restarted elsewhere",
            shared.model_id,
            url.label()
        ));
        Failure::Broken(error, e.to_string())
    };
    loop {
        let event = tokio::select! {
            biased;
            () = tx.closed() => return Ok(None),
            () = until(params.deadline) => return Err(Failure::Final(deadline_error())),
            e = events.next() => e,
        };
        let data = match event {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e) => return Err(failure(e, shown)),
        };
        let chunk = wire::parse_chunk(&data).map_err(|m| failure(CallError::Protocol(m), shown))?;
        if let Some(text) = &chunk.text {
            chunks += 1;
            // A server that streams past `max_tokens` (hostile or broken) is cut off there: the
            // host's memory is not its to fill.
            let over = chunks as usize > params.max_tokens as usize + 16
                || out.text().len() > (params.max_tokens as usize).saturating_mul(64) + 4096;
            if over {
                cut_length = true;
                break;
            }
            first_text.get_or_insert_with(Instant::now);
            let hit = out.push(text.as_bytes()).is_some();
            if params.pieces {
                let ready = out.take_ready();
                if !ready.is_empty() {
                    if tx.send(StreamEvent::Piece(ready)).is_err() {
                        return Ok(None);
                    }
                    shown += 1;
                }
            }
            if hit {
                // A stop the server did not apply: end here (dropping the stream stops it).
                cut_here = true;
                break;
            }
        }
        if chunk.finish_reason.is_some() {
            finish = chunk.finish_reason;
        }
        if chunk.usage.is_some() {
            usage = chunk.usage;
        }
    }
    if finish.is_none() && !cut_here && !cut_length {
        return Err(failure(
            CallError::Protocol("the stream ended before the generation did".into()),
            shown,
        ));
    }
    let rest = out.finish();
    if params.pieces && !rest.is_empty() && tx.send(StreamEvent::Piece(rest)).is_err() {
        return Ok(None);
    }
    let reason = match finish.as_deref() {
        _ if cut_here => FinishReason::StopSequence,
        _ if cut_length => FinishReason::Length,
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    };
    let now = Instant::now();
    let first = first_text.unwrap_or(now);
    let u = usage.unwrap_or_default();
    let (prompt_ms, generation_ms) = u.timings.unwrap_or((
        first.duration_since(started).as_secs_f64() * 1000.0,
        now.duration_since(first).as_secs_f64() * 1000.0,
    ));
    Ok(Some(GenerationSummary {
        tool_calls: Vec::new(),
        text: out.text().to_string(),
        tokens: Vec::new(),
        finish_reason: reason,
        usage: Usage {
            prompt_tokens: u.prompt_tokens,
            cached_tokens: u.cached_tokens,
            generated_tokens: if usage.is_some() { u.completion_tokens } else { chunks },
            prompt_ms,
            generation_ms,
        },
    }))
}
