//! The guest side of the benchmark: one timed generation, measured with the guest's own clock.
//! Argument: `{"prompt": text, "max_tokens": n, "context_size": n, "batch_size": n,
//! "threads": n, "mode": "generate"|"stream"}`. Prints the timings as JSON.

use serde_json::{Value, json};
use std::time::Instant;
use tabagent_guest::{Model, SessionOptions};

fn main() {
    let req: Value =
        serde_json::from_str(&std::env::args().nth(1).expect("request")).expect("json");
    let n = |k: &str| req[k].as_u64().map(|v| v as u32);
    let model = Model::load("smollm2").expect("load");
    let new_session = || {
        model
            .session_with(SessionOptions {
                context_size: n("context_size"),
                batch_size: n("batch_size"),
                threads: n("threads"),
                seed: Some(1),
                chat_template: None,
            })
            .expect("session")
    };
    let prompt = req["prompt"].as_str().expect("prompt");
    // Prompt-only runs, each in a fresh session so nothing is cached.
    let mut prompt_ms_all: Vec<f64> = (0..n("prompt_reps").unwrap_or(0))
        .map(|_| {
            new_session()
                .complete(prompt)
                .greedy()
                .max_tokens(1)
                .generate()
                .expect("prompt run")
                .usage
                .prompt_ms
        })
        .collect();
    let session = new_session();
    let request = session.complete(prompt).greedy().max_tokens(n("max_tokens").unwrap_or(128));
    let mut piece_ms = Vec::new();
    let start = Instant::now();
    let (generation, first_ms, last_ms) = if req["mode"] == "stream" {
        let mut stream = request.stream().expect("stream");
        for piece in stream.by_ref() {
            piece.expect("piece");
            piece_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let first = piece_ms.first().copied().unwrap_or(0.0);
        let last = piece_ms.last().copied().unwrap_or(0.0);
        (stream.outcome().expect("outcome"), first, last)
    } else {
        (request.generate().expect("generate"), 0.0, 0.0)
    };
    let wall_ms = start.elapsed().as_secs_f64() * 1000.0;
    prompt_ms_all.push(generation.usage.prompt_ms);
    println!(
        "{}",
        json!({
            "wall_ms": wall_ms,
            "first_ms": first_ms,
            "last_ms": last_ms,
            "piece_ms": piece_ms,
            "prompt_ms_all": prompt_ms_all,
            "prompt_tokens": generation.usage.prompt_tokens,
            "generated_tokens": generation.usage.generated_tokens,
            "prompt_ms": generation.usage.prompt_ms,
            "generation_ms": generation.usage.generation_ms,
            "tokens": generation.tokens,
            "file_type": model.metadata().expect("metadata").file_type,
        })
    );
}
