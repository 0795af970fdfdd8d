//! The scheduler of one model: the one thread that owns that model's llama.cpp contexts.
//!
//! Each loaded model has one `llama-scheduler` thread. Sessions are sequences keyed by a
//! [`SeqId`] in the model's one shared context ([`Batcher`]: continuous batching, one
//! `llama_decode` per step for every running sequence); the embedding context is its own. Host
//! calls reach the thread as [`Command`]s over a channel. Between steps it handles every
//! waiting command; each step decodes one batch of generation and one chunk of an embedding
//! call, so a long `embed` does not stall generations.

use super::batch::{BatchConfig, Batcher};
use super::embed::{EmbedJob, Embedder};
use crate::engine::{SamplingParams, SessionOptions, StreamEvent};
use crate::error::LlmResult;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
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

/// The scheduler loop of one model. Runs until every handle and session is dropped.
pub(super) fn run(
    model: Arc<LlamaModel>,
    backend: &'static LlamaBackend,
    config: BatchConfig,
    rx: Receiver<Command>,
) {
    let model: &LlamaModel = &model;
    let mut batcher = Batcher::new(model, backend, config);
    let mut embedder: Option<Embedder<'_>> = None;
    let mut embeds: VecDeque<EmbedJob> = VecDeque::new();
    loop {
        let busy = !embeds.is_empty() || batcher.busy();
        let command = if busy {
            match rx.try_recv() {
                Ok(c) => Some(c),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => break,
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
                    let _ = reply.send(batcher.new_session(id, &options));
                }
                Command::DropSession { id } => batcher.drop_session(id),
                Command::Generate { id, prompt, params, events, reply } => {
                    let _ = reply.send(batcher.generate(id, prompt, params, events));
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
        batcher.step();
    }
}
