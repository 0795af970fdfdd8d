//! Unloading a model that sessions still use, and dropping streams and sessions mid-generation.
//! Prints one JSON object of steps.

use serde_json::{Map, Value, json};
use tabagent_guest::bindings::tabagent::llm::inference as inf;
use tabagent_guest::{Model, ModelState};
use tabagent_test_programs::{emit, error_json, finish_name, greedy, result_json};

fn loaded() -> Value {
    json!(tabagent_guest::loaded_models()
        .iter()
        .map(|l| json!({ "name": l.name, "draining": matches!(l.state, ModelState::Draining), "sessions": l.sessions }))
        .collect::<Vec<_>>())
}

fn main() {
    let mut out = Map::new();
    let prompt = inf::Prompt::Text("Once upon a time".into());
    let model = Model::load("smollm2").expect("load");
    let session = model.session().expect("session");
    let gen_len = |s: &tabagent_guest::Session, max: u32| {
        result_json(s.raw().generate(&prompt, &greedy(max)), |g| json!(g.tokens.len()))
    };
    out.insert("before".into(), gen_len(&session, 4));
    out.insert("loaded_before".into(), loaded());
    out.insert("unload".into(), result_json(tabagent_guest::unload("smollm2"), |_| json!("ok")));
    out.insert("metadata_after".into(), result_json(model.metadata(), |m| json!(m.name)));
    out.insert("session_after".into(), result_json(model.session(), |_| json!("created")));
    out.insert("loaded_draining".into(), loaded());
    out.insert("old_session_generates".into(), gen_len(&session, 4));
    drop(session);
    out.insert("loaded_after_drop".into(), loaded());
    out.insert(
        "unload_again".into(),
        result_json(tabagent_guest::unload("smollm2"), |_| json!("ok")),
    );

    // Load again and drop a stream after one piece: the session stays usable.
    let model = Model::load("smollm2").expect("reload");
    let session = model.session().expect("session");
    {
        let c = session.raw().stream(&prompt, &greedy(64)).expect("stream");
        let first = c.next();
        out.insert("first_piece".into(), json!(first.map(|p| p.is_some()).unwrap_or(false)));
    }
    out.insert("after_dropped_stream".into(), gen_len(&session, 4));

    // Start a stream, then drop the session under it: the stream ends cleanly.
    let c = session.raw().stream(&prompt, &greedy(64)).expect("stream");
    drop(session);
    let mut pieces = 0;
    let mut error = Value::Null;
    loop {
        match c.next() {
            Ok(Some(_)) => pieces += 1,
            Ok(None) => break,
            Err(e) => {
                error = error_json(&e.into());
                break;
            }
        }
        if pieces > 1000 {
            break;
        }
    }
    out.insert(
        "orphan_stream".into(),
        json!({ "pieces": pieces, "error": error, "finish": c.outcome().map(|g| finish_name(g.finish_reason)) }),
    );
    drop(c);
    drop(model);
    out.insert("loaded_end".into(), loaded());

    // Unload while a generation is running: the generation finishes.
    let model = Model::load("smollm2").expect("reload");
    let session = model.session().expect("session");
    let c = session.raw().stream(&prompt, &greedy(24)).expect("stream");
    out.insert(
        "unload_mid_generation".into(),
        result_json(tabagent_guest::unload("smollm2"), |_| json!("ok")),
    );
    let mut text = String::new();
    let mut error = Value::Null;
    loop {
        match c.next() {
            Ok(Some(p)) => text.push_str(&p),
            Ok(None) => break,
            Err(e) => {
                error = error_json(&e.into());
                break;
            }
        }
    }
    out.insert(
        "generation_across_unload".into(),
        json!({ "error": error, "chars": text.len(), "finish": c.outcome().map(|g| finish_name(g.finish_reason)) }),
    );
    emit(&Value::Object(out));
}
