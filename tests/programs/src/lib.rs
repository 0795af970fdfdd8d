//! Helpers shared by the test guests: JSON forms of WIT values, printed for the host tests.

use serde_json::{Value, json};
use tabagent_guest::bindings::tabagent::llm::inference::SamplingOptions;
use tabagent_guest::{Error, FinishReason, Generation};

/// Greedy sampling of at most `max_tokens`, every other option at its default.
pub fn greedy(max_tokens: u32) -> SamplingOptions {
    SamplingOptions {
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..tabagent_guest::default_sampling()
    }
}

/// `{"kind": ..., "message": ...}` for an error.
pub fn error_json(e: &Error) -> Value {
    json!({ "kind": e.kind(), "message": e.message() })
}

/// `{"ok": value}` or `{"error": {...}}`.
pub fn result_json<T, E: Into<Error>>(r: Result<T, E>, f: impl FnOnce(T) -> Value) -> Value {
    match r {
        Ok(v) => json!({ "ok": f(v) }),
        Err(e) => json!({ "error": error_json(&e.into()) }),
    }
}

/// The WIT name of a finish reason.
pub fn finish_name(f: FinishReason) -> &'static str {
    tabagent_guest::finish_reason_name(f)
}

/// A generation as JSON.
pub fn generation_json(g: &Generation) -> Value {
    json!({
        "text": g.text,
        "tokens": g.tokens,
        "finish": finish_name(g.finish_reason),
        "tool_calls": g.tool_calls.iter().map(|c| json!({"id": c.id, "name": c.name, "arguments": c.arguments})).collect::<Vec<_>>(),
        "usage": {
            "prompt_tokens": g.usage.prompt_tokens,
            "cached_tokens": g.usage.cached_tokens,
            "generated_tokens": g.usage.generated_tokens,
            "prompt_ms": g.usage.prompt_ms,
            "generation_ms": g.usage.generation_ms,
            "tokens_per_second": g.usage.tokens_per_second,
            "prompt_tokens_per_second": g.usage.prompt_tokens_per_second,
        },
    })
}

/// Print a JSON value on stdout, one line.
pub fn emit(v: &Value) {
    println!("{v}");
}
