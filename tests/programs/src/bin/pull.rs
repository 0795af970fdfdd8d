//! Pulls a model through `tabagent:llm/pulls`, then loads a granted name and generates.
//! Arguments: REFERENCE NAME. Prints
//! `{"progress": [[state, done, total], ...], "pull": {"ok"|"error"}, "load": ..., "text": ...}`.

use serde_json::{Value, json};
use tabagent_guest::{Model, Pull, allowed_pulls, pull_state_name};
use tabagent_test_programs::{emit, error_json};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (reference, name) = (&args[1], &args[2]);
    let before = Model::load(name).err().map(|e| error_json(&e));
    let pull = match Pull::start(reference) {
        Ok(p) => p,
        Err(e) => {
            emit(&json!({ "allowed": allowed_pulls(), "pull": { "error": error_json(&e) } }));
            return;
        }
    };
    let mut progress: Vec<Value> = Vec::new();
    let outcome = pull.finish(|p| {
        progress.push(json!([pull_state_name(p.state), p.bytes_done, p.bytes_total]));
    });
    let (pull_json, text) = match outcome {
        Ok(p) => {
            let text = Model::load(name)
                .and_then(|m| {
                    m.complete("The capital of France is").greedy().max_tokens(8).generate()
                })
                .map(|g| g.text);
            (
                json!({ "ok": { "files": p.files_total, "bytes": p.bytes_done } }),
                match text {
                    Ok(t) => json!({ "ok": t }),
                    Err(e) => json!({ "error": error_json(&e) }),
                },
            )
        }
        Err(e) => (json!({ "error": error_json(&e) }), Value::Null),
    };
    emit(&json!({
        "reference": pull.reference(),
        "before": before,
        "progress": progress,
        "pull": pull_json,
        "text": text,
    }));
}
