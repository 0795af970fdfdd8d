//! Continuous batching for one model: one llama.cpp context with a sequence (its own KV
//! stream) per running session, and one `llama_decode` per step for all of them.
//!
//! A session is a sequence slot while it holds cached tokens. Each step gathers the next token of
//! every generating sequence, plus chunks of waiting prompts (a bounded number while others
//! stream, so a long prompt does not freeze them), decodes the batch once, and samples each
//! sequence with its own sampler chain. Each slot has `cells / sequences` cells of its own, and a
//! session's context (so its prompt plus `max_tokens`) must fit in one: a running sequence can
//! never run out of cache or touch another's. When every slot is generating, new work waits, in
//! order; past [`MAX_WAITING`] it is refused. An idle session's cache is kept for its next
//! prompt until its slot is needed (least recently used first).
//!
//! Prompt prefixes are shared within a cache scope (the host gives each component its own): a
//! dropped session's slot keeps its tokens, and a new session of the same scope takes the free
//! slot holding the longest prefix of its prompt and reads only the rest (a chat server's
//! requests share their template's head and the conversation so far). A session of another
//! scope, or of none, finds the slot cleared.
//!
//! The cache is split per sequence rather than unified. With a unified cache llama.cpp attends
//! over all sequences' cells in one kernel call, which sums in another order than a sequence's
//! solo run: greedy texts part from their solo runs where the top two logits were 0.03–0.2
//! apart (with flash attention on or off). With a stream per sequence each sequence's
//! arithmetic is that of its solo run, so its text is the same; the price is that llama.cpp
//! decodes a batch in one pass per run of neighbouring sequence ids.

pub use super::layout::{BatchConfig, default_layout, kv_bytes_per_token};
use super::sampling::build_sampler;
use super::scheduler::SeqId;
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
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// Generations that may wait for room in the cache; more are refused.
pub const MAX_WAITING: usize = 64;

/// Prompt tokens decoded in one step while other sequences are generating.
const PREFILL_WHILE_STREAMING: usize = 256;

struct Slot {
    /// The session whose tokens these are; `None` once it is dropped.
    owner: Option<SeqId>,
    /// The cache scope of the sessions that made these tokens: another session of that scope
    /// may start from them.
    scope: Option<u64>,
    /// Tokens whose keys and values are in the cache for this sequence, in order.
    cached: Vec<LlamaToken>,
    last_used: Instant,
}

struct SessionEntry {
    options: SessionOptions,
    slot: Option<usize>,
}

struct Request {
    session: SeqId,
    prompt: Vec<LlamaToken>,
    params: SamplingParams,
    events: UnboundedSender<StreamEvent>,
    /// When it was asked for: time waiting for a sequence counts as prompt time.
    queued: Instant,
}

struct Job {
    session: SeqId,
    slot: usize,
    prompt: Vec<LlamaToken>,
    prefilled: usize,
    cached_tokens: usize,
    max_new: usize,
    chunk: usize,
    sampler: LlamaSampler,
    /// The output's grammar, apart from the chain (which reads the prompt too).
    grammar: Option<LlamaSampler>,
    out: OutputAssembler,
    generated: Vec<LlamaToken>,
    events: UnboundedSender<StreamEvent>,
    pieces: bool,
    /// Write control tokens into the text.
    render_special: bool,
    deadline: Option<Instant>,
    /// The token sampled last, to decode in the next step.
    next: Option<LlamaToken>,
    started: Instant,
    prompt_done: Option<Instant>,
}

/// The batched decoder of one model.
pub struct Batcher<'m> {
    model: &'m LlamaModel,
    backend: &'m LlamaBackend,
    config: BatchConfig,
    ctx: Option<LlamaContext<'m>>,
    batch: LlamaBatch<'static>,
    /// Cells of each sequence.
    cells: u32,
    slots: Vec<Slot>,
    sessions: HashMap<SeqId, SessionEntry>,
    running: Vec<Job>,
    waiting: VecDeque<Request>,
    turn: usize,
}

impl<'m> Batcher<'m> {
    /// A batcher over `model`; its context is made with the first session.
    pub fn new(model: &'m LlamaModel, backend: &'m LlamaBackend, config: BatchConfig) -> Self {
        let (sequences, cells) = match config.cells {
            Some(total) => (config.sequences.max(1), (total / config.sequences.max(1)).max(256)),
            None => default_layout(model, config.sequences.max(1)),
        };
        let config = BatchConfig { sequences, ..config };
        let n_batch = config.batch.max(1);
        let slots = (0..sequences)
            .map(|_| Slot {
                owner: None,
                scope: None,
                cached: Vec::new(),
                last_used: Instant::now(),
            })
            .collect();
        Self {
            model,
            backend,
            config: BatchConfig { batch: n_batch, ..config },
            ctx: None,
            batch: LlamaBatch::new(n_batch as usize, 1),
            cells,
            slots,
            sessions: HashMap::new(),
            running: Vec::new(),
            waiting: VecDeque::new(),
            turn: 0,
        }
    }

    fn context(&mut self) -> LlmResult<&mut LlamaContext<'m>> {
        if self.ctx.is_none() {
            let threads = i32::try_from(self.config.threads).unwrap_or(i32::MAX);
            let params = LlamaContextParams::default()
                .with_n_ctx(NonZeroU32::new(self.cells * self.config.sequences.max(1)))
                .with_n_batch(self.config.batch)
                .with_n_ubatch(self.config.batch)
                .with_n_seq_max(self.config.sequences.max(1))
                .with_kv_unified(false)
                .with_n_threads(threads)
                .with_n_threads_batch(threads);
            let ctx = self.model.new_context(self.backend, params).map_err(|e| {
                LlmError::ResourceExhausted(format!(
                    "llama.cpp could not create the model's context of {} sequences of {} tokens: {e}",
                    self.config.sequences, self.cells
                ))
            })?;
            self.cells = self.cells.min(ctx.n_ctx() / self.config.sequences.max(1));
            self.ctx = Some(ctx);
        }
        Ok(self.ctx.as_mut().expect("made above"))
    }

    /// Whether any generation runs or waits.
    pub fn busy(&self) -> bool {
        !self.running.is_empty() || !self.waiting.is_empty()
    }

    /// Register a session; its context size is the most of the shared cache it may use.
    pub fn new_session(&mut self, id: SeqId, options: &SessionOptions) -> LlmResult<u32> {
        self.context()?;
        if options.context_size > self.cells {
            return Err(LlmError::ResourceExhausted(format!(
                "a session of {} tokens does not fit in the model's KV cache of {} tokens per \
                 sequence (the host's --kv-cache and --parallel options size it)",
                options.context_size, self.cells
            )));
        }
        self.sessions.insert(id, SessionEntry { options: options.clone(), slot: None });
        Ok(options.context_size)
    }

    /// Forget a session: its generation ends as cancelled, its cells are freed.
    pub fn drop_session(&mut self, id: SeqId) {
        if let Some(i) = self.running.iter().position(|j| j.session == id) {
            let job = self.running.swap_remove(i);
            finish(job, FinishReason::Cancelled);
        }
        // A generation still waiting ends as cancelled too, as if it had started.
        let (gone, kept): (VecDeque<Request>, VecDeque<Request>) =
            std::mem::take(&mut self.waiting).into_iter().partition(|r| r.session == id);
        self.waiting = kept;
        for r in gone {
            let summary = GenerationSummary {
                text: String::new(),
                tokens: Vec::new(),
                finish_reason: FinishReason::Cancelled,
                usage: Usage { prompt_tokens: r.prompt.len() as u32, ..Usage::default() },
                tool_calls: Vec::new(),
            };
            let _ = r.events.send(StreamEvent::Done(summary));
        }
        if let Some(entry) = self.sessions.remove(&id)
            && let Some(slot) = entry.slot
        {
            if entry.options.cache_scope.is_some() {
                // Kept for the next session of its scope; any other clears it first.
                self.slots[slot].owner = None;
            } else {
                self.clear_slot(slot);
            }
        }
    }

    fn clear_slot(&mut self, slot: usize) {
        if let Some(ctx) = self.ctx.as_mut()
            && !ctx.clear_kv_cache_seq(Some(slot as u32), None, None).unwrap_or(false)
        {
            // Never expected for a unified cache; if it happens, nothing cached can be trusted.
            ctx.clear_kv_cache();
            for s in &mut self.slots {
                s.cached.clear();
            }
        }
        self.detach(slot);
        let s = &mut self.slots[slot];
        s.cached.clear();
        s.scope = None;
    }

    /// Take a slot from its session (which then starts afresh in another slot, if it goes on).
    fn detach(&mut self, slot: usize) {
        if let Some(owner) = self.slots[slot].owner.take()
            && let Some(e) = self.sessions.get_mut(&owner)
        {
            e.slot = None;
        }
    }

    /// Queue a generation. Errors that depend only on the request come back here.
    pub fn generate(
        &mut self,
        id: SeqId,
        prompt: Vec<LlamaToken>,
        params: SamplingParams,
        events: UnboundedSender<StreamEvent>,
    ) -> LlmResult<()> {
        let entry = self.sessions.get(&id).ok_or_else(|| LlmError::runtime("unknown session"))?;
        // A generation whose stream was dropped is abandoned; only a live one makes it busy.
        let live = |e: &UnboundedSender<StreamEvent>| !e.is_closed();
        if self.running.iter().any(|j| j.session == id && live(&j.events))
            || self.waiting.iter().any(|r| r.session == id && live(&r.events))
        {
            return Err(LlmError::invalid(
                "this session is already generating; finish or drop the previous completion first",
            ));
        }
        if prompt.is_empty() {
            return Err(LlmError::invalid("the prompt is empty"));
        }
        let n_ctx = entry.options.context_size as usize;
        if prompt.len() >= n_ctx {
            return Err(LlmError::invalid(format!(
                "the prompt has {} tokens but the session's context holds {n_ctx}",
                prompt.len()
            )));
        }
        self.waiting.retain(|r| live(&r.events));
        if self.waiting.len() >= MAX_WAITING {
            return Err(LlmError::ResourceExhausted(format!(
                "the model's KV cache is full and {MAX_WAITING} generations already wait for room"
            )));
        }
        self.waiting.push_back(Request {
            session: id,
            prompt,
            params,
            events,
            queued: Instant::now(),
        });
        Ok(())
    }

    /// Start waiting generations, in order, while they fit.
    fn admit(&mut self) {
        while let Some(req) = self.waiting.pop_front() {
            if req.events.is_closed() {
                continue;
            }
            if req.params.deadline.is_some_and(|d| Instant::now() >= d) {
                let _ = req.events.send(StreamEvent::Failed(deadline_error()));
                continue;
            }
            let Some(slot) = self.slot_for(req.session, &req.prompt) else {
                self.waiting.push_front(req);
                return;
            };
            let n_ctx = self.sessions[&req.session].options.context_size as usize;
            let reuse =
                common_prefix(&self.slots[slot].cached, &req.prompt).min(req.prompt.len() - 1);
            // The prompt and `max_tokens` fit in the session's context, so in its slot.
            let max_new = (req.params.max_tokens as usize).min(n_ctx - req.prompt.len());
            self.start(req, slot, reuse, max_new);
        }
    }

    /// The slot for a session: its own; else the free one holding the longest prefix of
    /// `prompt` made by a session of the same cache scope, or the lowest free one (sequences
    /// with neighbouring ids decode in one pass); else the least recently used idle one.
    fn slot_for(&mut self, session: SeqId, prompt: &[LlamaToken]) -> Option<usize> {
        if let Some(s) = self.sessions.get(&session).and_then(|e| e.slot) {
            return Some(s);
        }
        let scope = self.sessions.get(&session)?.options.cache_scope;
        let shared = |s: &Slot| match scope {
            Some(_) if s.scope == scope => common_prefix(&s.cached, prompt),
            _ => 0,
        };
        let free = (0..self.slots.len())
            .filter(|i| self.slots[*i].owner.is_none())
            .max_by_key(|i| (shared(&self.slots[*i]), std::cmp::Reverse(*i)));
        let slot = match free {
            Some(free) => free,
            None => {
                let busy: Vec<usize> = self.running.iter().map(|j| j.slot).collect();
                (0..self.slots.len())
                    .filter(|i| !busy.contains(i))
                    .min_by_key(|i| self.slots[*i].last_used)?
            }
        };
        if scope.is_some() && self.slots[slot].scope == scope {
            self.detach(slot);
        } else {
            self.clear_slot(slot);
        }
        self.slots[slot].owner = Some(session);
        self.slots[slot].scope = scope;
        self.sessions.get_mut(&session).expect("registered").slot = Some(slot);
        Some(slot)
    }

    fn start(&mut self, req: Request, slot: usize, mut reuse: usize, max_new: usize) {
        tracing::trace!(
            "session {} starts in slot {slot}: prompt {}, {reuse} reused, up to {max_new} new",
            req.session,
            req.prompt.len()
        );
        let ctx = self.ctx.as_mut().expect("made with the first session");
        if !ctx.clear_kv_cache_seq(Some(slot as u32), Some(reuse as u32), None).unwrap_or(false) {
            let _ = ctx.clear_kv_cache_seq(Some(slot as u32), None, None);
            reuse = 0;
        }
        let s = &mut self.slots[slot];
        s.cached.truncate(reuse);
        s.last_used = Instant::now();
        let mut sampler = build_sampler(&req.params, self.model.n_vocab());
        // The engine's generate turned a schema into its grammar and checked it already.
        let grammar =
            match req.params.constraint.as_ref().map(|c| super::grammar::sampler(self.model, c)) {
                None => None,
                Some(Ok(s)) => Some(s),
                Some(Err(e)) => {
                    let _ = req.events.send(StreamEvent::Failed(e));
                    return;
                }
            };
        let window = req.params.repeat_window as usize;
        sampler.accept_many(&req.prompt[req.prompt.len().saturating_sub(window)..]);
        let chunk = self.sessions[&req.session].options.batch_size.max(1) as usize;
        self.running.push(Job {
            session: req.session,
            slot,
            prefilled: reuse,
            cached_tokens: reuse,
            max_new,
            chunk,
            sampler,
            grammar,
            out: OutputAssembler::new(&req.params.stop),
            generated: Vec::new(),
            events: req.events,
            pieces: req.params.pieces,
            render_special: req.params.render_special,
            deadline: req.params.deadline,
            next: None,
            started: req.queued,
            prompt_done: None,
            prompt: req.prompt,
        });
    }

    /// One step: end what was dropped or ran out of time, start what fits, decode one batch of
    /// every running sequence's next tokens, and sample.
    pub fn step(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.running.len() {
            let j = &self.running[i];
            if j.events.is_closed() {
                self.running.swap_remove(i);
            } else if j.deadline.is_some_and(|d| now >= d) {
                let job = self.running.swap_remove(i);
                let _ = job.events.send(StreamEvent::Failed(deadline_error()));
            } else {
                i += 1;
            }
        }
        // Waiting generations whose guest left or whose deadline passed end now, wherever
        // they are in the queue.
        let (gone, kept): (VecDeque<Request>, VecDeque<Request>) =
            std::mem::take(&mut self.waiting)
                .into_iter()
                .partition(|r| r.events.is_closed() || r.params.deadline.is_some_and(|d| now >= d));
        self.waiting = kept;
        for r in gone {
            let _ = r.events.send(StreamEvent::Failed(deadline_error()));
        }
        self.admit();
        if self.running.is_empty() {
            return;
        }
        // What goes in: (job index, prompt tokens; 0 for its next generated token).
        let mut plan: Vec<(usize, usize)> = Vec::new();
        for (k, job) in self.running.iter().enumerate() {
            if job.next.is_some() {
                plan.push((k, 0));
            }
        }
        let streaming = !plan.is_empty();
        let mut budget = (self.config.batch as usize).saturating_sub(plan.len());
        if streaming {
            budget = budget.min(PREFILL_WHILE_STREAMING);
        }
        let n = self.running.len();
        self.turn = self.turn.wrapping_add(1);
        for r in 0..n {
            let k = (self.turn + r) % n;
            let job = &self.running[k];
            if job.next.is_some() || job.prefilled >= job.prompt.len() || budget == 0 {
                continue;
            }
            let take = budget.min(job.chunk).min(job.prompt.len() - job.prefilled);
            plan.push((k, take));
            budget -= take;
        }
        // llama.cpp decodes a batch over per-sequence KV streams in passes of consecutive
        // sequence ids, in batch order: entries sorted by slot make one pass where they can.
        plan.sort_by_key(|(k, _)| self.running[*k].slot);
        // Which job gave which batch entries: (job index, tokens, index of its logits).
        let mut parts: Vec<(usize, usize, Option<i32>)> = Vec::new();
        self.batch.clear();
        let mut ok = true;
        for (k, take) in plan {
            let job = &self.running[k];
            let seq = [job.slot as i32];
            if take == 0 {
                let token = job.next.expect("planned as a generated token");
                let pos = self.slots[job.slot].cached.len() as i32;
                let idx = self.batch.n_tokens();
                ok &= self.batch.add(token, pos, &seq, true).is_ok();
                parts.push((k, 1, Some(idx)));
                continue;
            }
            let last = job.prefilled + take == job.prompt.len();
            let mut logits = None;
            for (t, token) in job.prompt[job.prefilled..job.prefilled + take].iter().enumerate() {
                let is_last = last && t == take - 1;
                if is_last {
                    logits = Some(self.batch.n_tokens());
                }
                let pos = (job.prefilled + t) as i32;
                ok &= self.batch.add(*token, pos, &seq, is_last).is_ok();
            }
            parts.push((k, take, logits));
        }
        if parts.is_empty() {
            return;
        }
        tracing::trace!("decode: {} parts, {} tokens", parts.len(), self.batch.n_tokens());
        let ctx = self.ctx.as_mut().expect("made with the first session");
        let decoded = if ok {
            ctx.decode(&mut self.batch).map_err(|e| e.to_string())
        } else {
            Err("the batch is full".to_string())
        };
        if let Err(e) = decoded {
            // The cache of every sequence in this batch is in an unknown state: drop them all.
            let mut failed: Vec<usize> = parts.iter().map(|p| p.0).collect();
            failed.sort_unstable();
            for k in failed.into_iter().rev() {
                let job = self.running.swap_remove(k);
                self.clear_slot(job.slot);
                let _ = job.events.send(StreamEvent::Failed(LlmError::runtime(format!(
                    "llama.cpp decode failed: {e}"
                ))));
            }
            return;
        }
        let mut ended = Vec::new();
        for (k, count, logits) in parts {
            let job = &mut self.running[k];
            let slot = &mut self.slots[job.slot];
            slot.last_used = Instant::now();
            if let Some(token) = job.next.take() {
                slot.cached.push(token);
            } else {
                slot.cached.extend_from_slice(&job.prompt[job.prefilled..job.prefilled + count]);
                job.prefilled += count;
                if job.prefilled == job.prompt.len() {
                    job.prompt_done = Some(Instant::now());
                    if job.max_new == 0 {
                        ended.push((k, Some(FinishReason::Length)));
                        continue;
                    }
                }
            }
            let Some(idx) = logits else { continue };
            let token = match job.grammar.as_mut() {
                Some(g) => super::grammar::sample(g, &mut job.sampler, ctx, idx),
                None => job.sampler.sample(ctx, idx),
            };
            ended.push((k, sample_step(self.model, job, token)));
        }
        let mut ended: Vec<(usize, FinishReason)> =
            ended.into_iter().filter_map(|(k, r)| r.map(|r| (k, r))).collect();
        ended.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        for (k, reason) in ended {
            let job = self.running.swap_remove(k);
            finish(job, reason);
        }
    }
}

/// Take a sampled token: the generation's end, or `None` with the token kept for the next step.
fn sample_step(model: &LlamaModel, job: &mut Job, token: LlamaToken) -> Option<FinishReason> {
    if model.vocab().is_eog(token) {
        return Some(FinishReason::Stop);
    }
    job.generated.push(token);
    let bytes = model.vocab().token_to_piece(token, job.render_special, None);
    let hit = job.out.push(&bytes);
    if job.pieces {
        let piece = job.out.take_ready();
        if !piece.is_empty() && job.events.send(StreamEvent::Piece(piece)).is_err() {
            return Some(FinishReason::Cancelled);
        }
    }
    if hit.is_some() {
        return Some(FinishReason::StopSequence);
    }
    if job.generated.len() >= job.max_new {
        return Some(FinishReason::Length);
    }
    job.next = Some(token);
    None
}

fn deadline_error() -> LlmError {
    LlmError::ResourceExhausted("the guest's deadline passed during generation".into())
}

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
        tool_calls: Vec::new(),
    };
    let _ = job.events.send(StreamEvent::Done(summary));
}

/// How many tokens two sequences share from their start.
fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
