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
    let session = model
        .session_with(SessionOptions {
            context_size: n("context_size"),
            batch_size: n("batch_size"),
            threads: n("threads"),
            seed: Some(1),
        })
        .expect("session");
    let request = session
        .complete(req["prompt"].as_str().expect("prompt"))
        .greedy()
        .max_tokens(n("max_tokens").unwrap_or(128));
    let start = Instant::now();
    let (generation, first_ms, last_ms) = if req["mode"] == "stream" {
        let mut stream = request.stream().expect("stream");
        let mut first = None;
        let mut last = 0.0;
        for piece in stream.by_ref() {
            piece.expect("piece");
            let t = start.elapsed().as_secs_f64() * 1000.0;
            first.get_or_insert(t);
            last = t;
        }
        (stream.outcome().expect("outcome"), first.unwrap_or(0.0), last)
    } else {
        (request.generate().expect("generate"), 0.0, 0.0)
    };
    let wall_ms = start.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{}",
        json!({
            "wall_ms": wall_ms,
            "first_ms": first_ms,
            "last_ms": last_ms,
            "prompt_tokens": generation.usage.prompt_tokens,
            "generated_tokens": generation.usage.generated_tokens,
            "prompt_ms": generation.usage.prompt_ms,
            "generation_ms": generation.usage.generation_ms,
            "tokens": generation.tokens,
        })
    );
}
