//! Work in flight: streaming generations and pulls, each answered by its request's id. `poll`
//! advances every generation by one piece and reports pulls whose progress moved.

use crate::protocol::{Refusal, error, event, split_text, success};
use serde_json::{Value, json};
use tabagent_guest::bindings::tabagent::llm::inference as inf;
use tabagent_guest::{
    FinishReason, Pull, PullProgress, PullState, finish_reason_name, pull_state_name,
};

/// Largest text in one message: well under the browser's 1 MiB once JSON-escaped.
pub const MAX_TEXT: usize = 128 << 10;

/// A generation that streams its pieces.
pub struct StreamJob {
    pub id: Value,
    pub model_id: String,
    /// Chunks as they come (`stream: true`), or the whole text at the end.
    pub stream: bool,
    pub completion: inf::Completion,
    pub text: String,
    pub chunks: u32,
    /// Kept alive while the completion runs.
    pub _session: inf::Session,
}

/// What to do once a pull is done.
pub enum AfterPull {
    /// Report it (DOWNLOAD_MODEL).
    Report,
    /// Load the model (LOAD_MODEL of a model not cached yet).
    Load(crate::actions::LoadSpec),
}

/// A pull in flight.
pub struct PullJob {
    pub id: Value,
    pub pull: Pull,
    /// The state last reported, and when.
    pub last: Option<(PullState, std::time::Instant)>,
    pub after: AfterPull,
}

/// A pull's progress as a payload (`progress` 0–100, as the seeds' ACTIVE_DOWNLOADS).
pub fn progress_json(p: &PullProgress) -> Value {
    let pct = match p.bytes_total {
        Some(t) if t > 0 => (p.bytes_done as f64 * 100.0 / t as f64).min(100.0),
        _ => 0.0,
    };
    json!({
        "state": pull_state_name(p.state),
        "bytesDone": p.bytes_done,
        "bytesTotal": p.bytes_total,
        "progress": (pct * 10.0).round() / 10.0,
        "file": p.file,
        "filesDone": p.files_done,
        "filesTotal": p.files_total,
    })
}

impl StreamJob {
    /// One step: the next piece, or the final answer. `true` when the job has ended.
    pub fn step(&mut self, out: &mut Vec<String>) -> bool {
        match self.completion.next() {
            Ok(Some(piece)) => {
                if self.stream {
                    self.push_chunks(&piece, out);
                } else {
                    self.text.push_str(&piece);
                }
                false
            }
            Ok(None) => {
                self.finish(out, None);
                true
            }
            Err(e) => {
                out.push(error(&self.id, &Refusal::from(tabagent_guest::Error::from(e))));
                true
            }
        }
    }

    /// `text` as `streaming` messages, each within [`MAX_TEXT`].
    fn push_chunks(&mut self, text: &str, out: &mut Vec<String>) {
        for part in split_text(text, MAX_TEXT) {
            out.push(event(&self.id, "streaming", json!({"text": part, "index": self.chunks})));
            self.chunks += 1;
        }
    }

    /// The final answer: usage and finish reason (and the text, when not streamed).
    pub fn finish(&mut self, out: &mut Vec<String>, forced: Option<FinishReason>) {
        let outcome = self.completion.outcome();
        let finish =
            forced.or(outcome.as_ref().map(|g| g.finish_reason)).unwrap_or(FinishReason::Cancelled);
        let mut payload =
            json!({"modelId": self.model_id, "finishReason": finish_reason_name(finish)});
        if let Some(g) = &outcome {
            let u = &g.usage;
            payload["usage"] = json!({
                "promptTokens": u.prompt_tokens,
                "cachedTokens": u.cached_tokens,
                "completionTokens": u.generated_tokens,
                "promptMs": u.prompt_ms,
                "generationMs": u.generation_ms,
                "tokensPerSecond": u.tokens_per_second,
            });
        }
        if !self.stream {
            // Long text goes ahead in chunks, so no message passes the browser's limit.
            if self.text.len() > MAX_TEXT {
                let text = std::mem::take(&mut self.text);
                self.push_chunks(&text, out);
            } else {
                payload["text"] = Value::String(self.text.clone());
            }
        }
        payload["chunks"] = json!(self.chunks);
        out.push(success(&self.id, payload));
    }
}
