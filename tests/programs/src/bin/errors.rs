//! Provokes every guest-side error the host must report as a value, then generates once to show
//! the host carries on. Grants expected: `smollm2` (the real model) and `ghost` (a missing file).
//! Prints `{case: {"ok": ...} | {"error": {"kind", "message"}}}`.

use serde_json::{Map, Value, json};
use tabagent_guest::bindings::tabagent::llm::{inference as inf, models};
use tabagent_guest::{Model, SessionOptions};
use tabagent_test_programs::{emit, generation_json, greedy, result_json};

fn session_opts(ctx: Option<u32>, batch: Option<u32>, threads: Option<u32>) -> SessionOptions {
    SessionOptions {
        context_size: ctx,
        batch_size: batch,
        threads,
        seed: None,
        chat_template: None,
    }
}

fn main() {
    let mut out = Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_string(), v);
    };
    put("not_granted", result_json(Model::load("llama-70b"), |_| json!("loaded")));
    put("missing_file", result_json(Model::load("ghost"), |_| json!("loaded")));
    let model = Model::load("smollm2").expect("load smollm2");
    let m = model.raw();
    put(
        "context_zero",
        result_json(inf::Session::create(m, &session_opts(Some(0), None, None)), |_| {
            json!("created")
        }),
    );
    put(
        "context_one",
        result_json(inf::Session::create(m, &session_opts(Some(1), None, None)), |_| {
            json!("created")
        }),
    );
    put(
        "context_huge",
        result_json(inf::Session::create(m, &session_opts(Some(1 << 30), None, None)), |_| {
            json!("created")
        }),
    );
    put(
        "batch_zero",
        result_json(inf::Session::create(m, &session_opts(Some(256), Some(0), None)), |_| {
            json!("created")
        }),
    );
    put(
        "batch_above_context",
        result_json(inf::Session::create(m, &session_opts(Some(256), Some(512), None)), |_| {
            json!("created")
        }),
    );
    put(
        "threads_zero",
        result_json(inf::Session::create(m, &session_opts(None, None, Some(0))), |_| {
            json!("created")
        }),
    );
    put(
        "threads_too_many",
        result_json(inf::Session::create(m, &session_opts(None, None, Some(100_000))), |_| {
            json!("created")
        }),
    );
    let session = inf::Session::create(m, &session_opts(Some(64), None, None)).expect("session");
    let text = |t: &str| inf::Prompt::Text(t.to_string());
    let run = |name: &str, prompt: inf::Prompt, o: inf::SamplingOptions| -> (String, Value) {
        (name.to_string(), result_json(session.generate(&prompt, &o), |g| generation_json(&g)))
    };
    let cases = vec![
        run(
            "temperature_nan",
            text("Hi"),
            inf::SamplingOptions { temperature: Some(f32::NAN), ..greedy(4) },
        ),
        run(
            "temperature_negative",
            text("Hi"),
            inf::SamplingOptions { temperature: Some(-1.0), ..greedy(4) },
        ),
        run("top_p_above_one", text("Hi"), inf::SamplingOptions { top_p: Some(1.5), ..greedy(4) }),
        run("top_p_zero", text("Hi"), inf::SamplingOptions { top_p: Some(0.0), ..greedy(4) }),
        run("min_p_negative", text("Hi"), inf::SamplingOptions { min_p: Some(-0.1), ..greedy(4) }),
        run(
            "repeat_penalty_zero",
            text("Hi"),
            inf::SamplingOptions { repeat_penalty: Some(0.0), ..greedy(4) },
        ),
        run(
            "max_tokens_zero",
            text("Hi"),
            inf::SamplingOptions { max_tokens: Some(0), ..greedy(4) },
        ),
        run(
            "empty_stop",
            text("Hi"),
            inf::SamplingOptions { stop: vec![String::new()], ..greedy(4) },
        ),
        run("empty_prompt", text(""), greedy(4)),
        run("nul_prompt", text("a\0b"), greedy(4)),
        run("bad_tokens", inf::Prompt::Tokens(vec![1, 999_999]), greedy(4)),
        run("no_tokens", inf::Prompt::Tokens(vec![]), greedy(4)),
        run("empty_chat", inf::Prompt::Chat(vec![]), greedy(4)),
        run("prompt_too_long", text(&"word ".repeat(600)), greedy(4)),
    ];
    for (k, v) in cases {
        put(&k, v);
    }
    put("detokenize_bad", result_json(m.detokenize(&[u32::MAX], false), |s| json!(s)));
    let nul_chat = [models::ChatMessage {
        role: "user".into(),
        content: "x\0y".into(),
        tool_calls: Vec::new(),
        tool_call_id: None,
    }];
    put("template_nul", result_json(m.apply_chat_template(&nul_chat, true), |s| json!(s)));
    put(
        "unload_unknown",
        result_json(tabagent_guest::unload("never-loaded"), |_| json!("unloaded")),
    );
    put(
        "recovered",
        result_json(session.generate(&text("Hello"), &greedy(4)), |g| generation_json(&g)),
    );
    emit(&Value::Object(out));
}
