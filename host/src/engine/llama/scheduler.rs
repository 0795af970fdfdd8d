//! The scheduler of one model: the one owner of that model's llama.cpp contexts.
//!
//! Each loaded model has one `llama-scheduler` thread. Sessions are sequences keyed by a
//! [`SeqId`]; the thread owns each sequence's context (KV cache) and the embedding context, and
//! host calls reach it as [`Command`]s over a channel. Running work is stepped round-robin —
//! one prompt batch or one generated token per sequence, one chunk of an embedding call — so
//! every session over the model makes progress and a long `embed` does not stall generations.
//! The contexts of ended sessions are kept a while (cleared) for new sessions with the same
//! options.
//! Batching the steps of many sequences into one `llama_decode` changes this module only.

use super::embed::{EmbedJob, Embedder};
use super::sampling::build_sampler;
use crate::engine::{
    FinishReason, GenerationSummary, OutputAssembler, SamplingParams, SessionOptions, StreamEvent,
    Usage,
};
use crate::error::{LlmError, LlmResult};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// A session's sequence id, unique in the process.
pub(super) type SeqId = u64;

/// What the scheduler is asked to do.
pub(super) enum Command {
    NewSession {
        id: SeqId,
        options: SessionOptions,
        reply: SyncSender<LlmResult<u32>>,
    },
    DropSession {
        id: SeqId,
    },
    Generate {
        id: SeqId,
        prompt: Vec<LlamaToken>,
        params: SamplingParams,
        events: UnboundedSender<StreamEvent>,
        reply: SyncSender<LlmResult<()>>,
    },
    Embed {
        inputs: Vec<Vec<LlamaToken>>,
        reply: SyncSender<LlmResult<Vec<Vec<f32>>>>,
        /// Set when the caller gave up: the job is dropped at its next step.
        cancel: Arc<AtomicBool>,
    },
}

/// Idle contexts kept for new sessions with the same options, at most.
const IDLE_CONTEXTS: usize = 8;

/// How long an idle context is kept.
const IDLE_CONTEXT_TTL: Duration = Duration::from_secs(30);

struct SessionState<'m> {
    /// The options the context was made with (a reused context must match them).
    options: SessionOptions,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    n_ctx: u32,
    n_batch: u32,
    n_vocab: i32,
    /// Tokens whose keys and values are in the context, in order.
    cached: Vec<LlamaToken>,
    job: Option<Job>,
}

struct Job {
    prompt: Vec<LlamaToken>,
    /// Prompt tokens already in the KV cache.
    prefilled: usize,
    cached_tokens: usize,
    max_new: usize,
    sampler: LlamaSampler,
    out: OutputAssembler,
    generated: Vec<LlamaToken>,
    events: UnboundedSender<StreamEvent>,
    /// Whether to send pieces or only the final event.
    pieces: bool,
    deadline: Option<Instant>,
    /// Index in the last batch whose logits to sample from.
    logits_index: i32,
    started: Instant,
    prompt_done: Option<Instant>,
}

/// The scheduler loop of one model. Runs until every handle and session is dropped.
pub(super) fn run(model: Arc<LlamaModel>, backend: &'static LlamaBackend, rx: Receiver<Command>) {
    let model: &LlamaModel = &model;
    let mut sessions: HashMap<SeqId, SessionState<'_>> = HashMap::new();
    let mut embedder: Option<Embedder<'_>> = None;
    let mut embeds: VecDeque<EmbedJob> = VecDeque::new();
    // Contexts of ended sessions, newest last, with when they became idle: a new session with
    // the same options takes one (its cache cleared) instead of allocating a context — what a
    // server making a session per request would otherwise pay on every request.
    let mut idle: Vec<(SessionState<'_>, Instant)> = Vec::new();
    loop {
        idle.retain(|(_, since)| since.elapsed() < IDLE_CONTEXT_TTL);
        let busy = !embeds.is_empty() || sessions.values().any(|s| s.job.is_some());
        let command = if busy {
            match rx.try_recv() {
                Ok(c) => Some(c),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => break,
            }
        } else if !idle.is_empty() {
            match rx.recv_timeout(IDLE_CONTEXT_TTL) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(c) => Some(c),
                Err(_) => break,
            }
        };
        if let Some(command) = command {
            match command {
                Command::NewSession { id, options, reply } => {
                    let reused = idle.iter().rposition(|(s, _)| s.options == options);
                    let result = match reused {
                        Some(i) => Ok(idle.remove(i).0),
                        // Out of memory with idle contexts held: free them and try again.
                        None => new_session(model, backend, &options).or_else(|e| {
                            if idle.is_empty() {
                                return Err(e);
                            }
                            idle.clear();
                            new_session(model, backend, &options)
                        }),
                    };
                    let result = result.map(|s| {
                        let n = s.n_ctx;
                        sessions.insert(id, s);
                        n
                    });
                    let _ = reply.send(result);
                }
                Command::DropSession { id } => {
                    if let Some(mut s) = sessions.remove(&id) {
                        if let Some(job) = s.job.take() {
                            finish(job, FinishReason::Cancelled);
                        }
                        // Nothing of one session is visible to the next: every cell of its
                        // sequence is freed (the buffer is not rewritten; freed cells are never
                        // attended to).
                        if !s.ctx.clear_kv_cache_seq(Some(0), None, None).unwrap_or(false) {
                            s.ctx.clear_kv_cache();
                        }
                        s.cached.clear();
                        if idle.len() == IDLE_CONTEXTS {
                            idle.remove(0);
                        }
                        idle.push((s, Instant::now()));
                    }
                }
                Command::Generate { id, prompt, params, events, reply } => {
                    let result = match sessions.get_mut(&id) {
                        Some(s) => start_job(s, prompt, params, events),
                        None => Err(LlmError::runtime("unknown session")),
                    };
                    let _ = reply.send(result);
                }
                Command::Embed { inputs, reply, cancel } => {
                    let checked = match embedder.take() {
                        Some(e) => Ok(e),
                        None => Embedder::new(model, backend),
                    }
                    .and_then(|e| {
                        let ok = e.check(&inputs);
                        embedder = Some(e);
                        ok
                    });
                    match checked {
                        Ok(()) => embeds.push_back(EmbedJob::new(inputs, reply, cancel)),
                        Err(err) => {
                            let _ = reply.send(Err(err));
                        }
                    }
                }
            }
            // Handle every waiting command before the next decode step.
            continue;
        }
        if let (Some(job), Some(e)) = (embeds.pop_front(), embedder.as_mut())
            && let Some(job) = job.step(e)
        {
            embeds.push_front(job);
        }
        for state in sessions.values_mut() {
            if let Some(job) = state.job.take() {
                state.job = step(model, state, job);
            }
        }
    }
}

fn new_session<'m>(
    model: &'m LlamaModel,
    backend: &LlamaBackend,
    options: &SessionOptions,
) -> LlmResult<SessionState<'m>> {
    let threads = i32::try_from(options.threads).unwrap_or(i32::MAX);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(options.context_size))
        .with_n_batch(options.batch_size)
        .with_n_ubatch(options.batch_size)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let ctx = model.new_context(backend, params).map_err(|e| {
        LlmError::ResourceExhausted(format!(
            "llama.cpp could not create a context of {} tokens: {e}",
            options.context_size
        ))
    })?;
    let n_ctx = ctx.n_ctx();
    let n_batch = ctx.n_batch().min(n_ctx).max(1);
    Ok(SessionState {
        options: options.clone(),
        ctx,
        batch: LlamaBatch::new(n_batch as usize, 1),
        n_ctx,
        n_batch,
        n_vocab: model.n_vocab(),
        cached: Vec::new(),
        job: None,
    })
}

fn start_job(
    s: &mut SessionState<'_>,
    prompt: Vec<LlamaToken>,
    params: SamplingParams,
    events: UnboundedSender<StreamEvent>,
) -> LlmResult<()> {
    // A job whose stream was dropped is abandoned; only a live one makes the session busy.
    if s.job.as_ref().is_some_and(|j| j.events.is_closed()) {
        s.job = None;
    }
    if s.job.is_some() {
        return Err(LlmError::invalid(
            "this session is already generating; finish or drop the previous completion first",
        ));
    }
    if prompt.is_empty() {
        return Err(LlmError::invalid("the prompt is empty"));
    }
    if prompt.len() >= s.n_ctx as usize {
        return Err(LlmError::invalid(format!(
            "the prompt has {} tokens but the session's context holds {}",
            prompt.len(),
            s.n_ctx
        )));
    }
    // Reuse the longest cached prefix; at least the last prompt token is decoded again so that
    // there are logits to sample from.
    let mut reuse = s.cached.iter().zip(&prompt).take_while(|(a, b)| a == b).count();
    reuse = reuse.min(prompt.len() - 1);
    let removed = s.ctx.clear_kv_cache_seq(Some(0), Some(reuse as u32), None).unwrap_or(false);
    if !removed {
        s.ctx.clear_kv_cache();
        reuse = 0;
    }
    s.cached.truncate(reuse);
    let mut sampler = build_sampler(&params, s.n_vocab);
    let window = params.repeat_window as usize;
    sampler.accept_many(&prompt[prompt.len().saturating_sub(window)..]);
    let room = s.n_ctx as usize - prompt.len();
    s.job = Some(Job {
        max_new: (params.max_tokens as usize).min(room),
        pieces: params.pieces,
        deadline: params.deadline,
        out: OutputAssembler::new(&params.stop),
        prompt,
        prefilled: reuse,
        cached_tokens: reuse,
        sampler,
        generated: Vec::new(),
        events,
        logits_index: 0,
        started: Instant::now(),
        prompt_done: None,
    });
    Ok(())
}

/// Send the last text and the summary.
fn finish(mut job: Job, reason: FinishReason) {
    let rest = job.out.finish();
    if job.pieces && !rest.is_empty() {
        let _ = job.events.send(StreamEvent::Piece(rest));
    }
    let now = Instant::now();
    let prompt_done = job.prompt_done.unwrap_or(now);
    let usage = Usage {
        prompt_tokens: job.prompt.len() as u32,
        cached_tokens: job.cached_tokens as u32,
        generated_tokens: job.generated.len() as u32,
        prompt_ms: prompt_done.duration_since(job.started).as_secs_f64() * 1000.0,
        generation_ms: now.duration_since(prompt_done).as_secs_f64() * 1000.0,
    };
    let summary = GenerationSummary {
        text: job.out.text().to_string(),
        tokens: job.generated.iter().map(|t| t.0 as u32).collect(),
        finish_reason: reason,
        usage,
    };
    let _ = job.events.send(StreamEvent::Done(summary));
}

fn fail(job: Job, error: LlmError) {
    let _ = job.events.send(StreamEvent::Failed(error));
}

/// Decode the batch; on failure the cache is dropped (its state is unknown) and the job fails.
fn decode(s: &mut SessionState<'_>, job: Job) -> Option<Job> {
    if let Err(e) = s.ctx.decode(&mut s.batch) {
        s.cached.clear();
        s.ctx.clear_kv_cache();
        fail(job, LlmError::runtime(format!("llama.cpp decode failed: {e}")));
        return None;
    }
    Some(job)
}

/// One step of a job: a batch of prompt tokens, or one generated token. Returns the job if it
/// goes on.
fn step(model: &LlamaModel, s: &mut SessionState<'_>, mut job: Job) -> Option<Job> {
    if job.events.is_closed() {
        return None;
    }
    if job.deadline.is_some_and(|d| Instant::now() >= d) {
        fail(
            job,
            LlmError::ResourceExhausted("the guest's deadline passed during generation".into()),
        );
        return None;
    }
    if job.prefilled < job.prompt.len() {
        let end = (job.prefilled + s.n_batch as usize).min(job.prompt.len());
        s.batch.clear();
        for (i, token) in job.prompt[job.prefilled..end].iter().enumerate() {
            let pos = (job.prefilled + i) as i32;
            if let Err(e) = s.batch.add(*token, pos, &[0], pos as usize == job.prompt.len() - 1) {
                fail(job, LlmError::runtime(format!("batch: {e}")));
                return None;
            }
        }
        let mut job = decode(s, job)?;
        s.cached.extend_from_slice(&job.prompt[job.prefilled..end]);
        job.logits_index = (end - job.prefilled) as i32 - 1;
        job.prefilled = end;
        if job.prefilled == job.prompt.len() {
            job.prompt_done = Some(Instant::now());
            if job.max_new == 0 {
                finish(job, FinishReason::Length);
                return None;
            }
        }
        return Some(job);
    }

    let token = job.sampler.sample(&s.ctx, job.logits_index);
    if model.vocab().is_eog(token) {
        finish(job, FinishReason::Stop);
        return None;
    }
    job.generated.push(token);
    let bytes = model.vocab().token_to_piece(token, false, None);
    let hit = job.out.push(&bytes);
    if job.pieces {
        let piece = job.out.take_ready();
        if !piece.is_empty() && job.events.send(StreamEvent::Piece(piece)).is_err() {
            return None;
        }
    }
    if hit.is_some() {
        finish(job, FinishReason::StopSequence);
        return None;
    }
    if job.generated.len() >= job.max_new {
        finish(job, FinishReason::Length);
        return None;
    }
    let pos = s.cached.len() as i32;
    s.batch.clear();
    if let Err(e) = s.batch.add(token, pos, &[0], true) {
        fail(job, LlmError::runtime(format!("batch: {e}")));
        return None;
    }
    let mut job = decode(s, job)?;
    s.cached.push(token);
    job.logits_index = 0;
    Some(job)
}
