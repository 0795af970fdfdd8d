//! A generation driver. Its one argument is a JSON request:
//! `{"prompt": {"text"|"chat"|"tokens": ...}, "options": {...}, "session": {...},
//!   "mode": "generate"|"stream"|"both", "repeat": n}`
//! It prints `{"runs": [{"generate": ..., "stream": {"pieces": [...], "outcome": ...}}]}`.

use serde_json::{Value, json};
use tabagent_guest::bindings::tabagent::llm::{inference as inf, models};
use tabagent_guest::{Model, SessionOptions};
use tabagent_test_programs::{emit, error_json, generation_json, result_json};

fn opt_u32(v: &Value, k: &str) -> Option<u32> {
    v.get(k).and_then(Value::as_u64).map(|n| n as u32)
}

fn opt_f32(v: &Value, k: &str) -> Option<f32> {
    // "NaN" as a string stands for a NaN, which JSON cannot spell.
    match v.get(k) {
        Some(Value::String(s)) => s.parse().ok(),
        Some(n) => n.as_f64().map(|f| f as f32),
        None => None,
    }
}

fn main() {
    let req: Value =
        serde_json::from_str(&std::env::args().nth(1).expect("request")).expect("json");
    let model =
        Model::load(req.get("model").and_then(Value::as_str).unwrap_or("smollm2")).expect("load");
    let s = req.get("session").cloned().unwrap_or(json!({}));
    let session = model
        .session_with(SessionOptions {
            context_size: opt_u32(&s, "context_size"),
            batch_size: opt_u32(&s, "batch_size"),
            threads: opt_u32(&s, "threads"),
            seed: s.get("seed").and_then(Value::as_u64),
            chat_template: s.get("chat_template").and_then(Value::as_str).map(String::from),
        })
        .expect("session");
    let p = &req["prompt"];
    let prompt = if let Some(t) = p.get("text") {
        inf::Prompt::Text(t.as_str().unwrap().to_string())
    } else if let Some(t) = p.get("tokens") {
        inf::Prompt::Tokens(
            t.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect(),
        )
    } else {
        inf::Prompt::Chat(
            p["chat"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| models::ChatMessage {
                    role: m["role"].as_str().unwrap().into(),
                    content: m["content"].as_str().unwrap_or_default().into(),
                    tool_calls: m
                        .get("tool_calls")
                        .and_then(Value::as_array)
                        .map(|calls| {
                            calls
                                .iter()
                                .map(|c| models::ToolCall {
                                    id: c["id"].as_str().unwrap().into(),
                                    name: c["name"].as_str().unwrap().into(),
                                    arguments: c["arguments"].as_str().unwrap().into(),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    tool_call_id: m.get("tool_call_id").and_then(Value::as_str).map(String::from),
                })
                .collect(),
        )
    };
    let o = req.get("options").cloned().unwrap_or(json!({}));
    let options = inf::SamplingOptions {
        max_tokens: opt_u32(&o, "max_tokens"),
        temperature: opt_f32(&o, "temperature"),
        top_k: opt_u32(&o, "top_k"),
        top_p: opt_f32(&o, "top_p"),
        min_p: opt_f32(&o, "min_p"),
        repeat_penalty: opt_f32(&o, "repeat_penalty"),
        repeat_window: opt_u32(&o, "repeat_window"),
        seed: o.get("seed").and_then(Value::as_u64),
        stop: o
            .get("stop")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default(),
        grammar: o.get("grammar").and_then(Value::as_str).map(String::from),
        json_schema: o.get("json_schema").map(Value::to_string),
        tools: o
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .map(|t| inf::Tool {
                        name: t["name"].as_str().unwrap().into(),
                        description: t["description"].as_str().unwrap_or_default().into(),
                        parameters: t["parameters"].to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        tool_choice: o.get("tool_choice").map(|c| match (c.as_str(), c.get("function")) {
            (Some("none"), _) => inf::ToolChoice::None,
            (Some("required"), _) => inf::ToolChoice::Required,
            (_, Some(name)) => inf::ToolChoice::Function(name.as_str().unwrap().into()),
            _ => inf::ToolChoice::Auto,
        }),
        parallel_tool_calls: o.get("parallel_tool_calls").and_then(Value::as_bool),
    };
    let mode = req.get("mode").and_then(Value::as_str).unwrap_or("both");
    let repeat = req.get("repeat").and_then(Value::as_u64).unwrap_or(1);
    let mut runs = Vec::new();
    for _ in 0..repeat {
        let mut run = json!({});
        if mode != "stream" {
            run["generate"] =
                result_json(session.raw().generate(&prompt, &options), |g| generation_json(&g));
        }
        if mode != "generate" {
            run["stream"] = match session.raw().stream(&prompt, &options) {
                Ok(c) => {
                    let mut pieces = Vec::new();
                    let mut error = Value::Null;
                    loop {
                        match c.next() {
                            Ok(Some(p)) => pieces.push(p),
                            Ok(None) => break,
                            Err(e) => {
                                error = error_json(&e.into());
                                break;
                            }
                        }
                    }
                    json!({ "pieces": pieces, "error": error, "outcome": c.outcome().map(|g| generation_json(&g)) })
                }
                Err(e) => json!({ "error": error_json(&e.into()) }),
            };
        }
        runs.push(run);
    }
    emit(&json!({ "context_size": session.context_size(), "runs": runs }));
}
