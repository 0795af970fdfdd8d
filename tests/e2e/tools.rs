//! Tool calls through a real guest (the generation driver, with the SDK's WIT types) and the
//! real model: calls of offered tools whose arguments validate against their schemas, a forced
//! function, `none`, a tool's result answered, the model's native format where its template
//! has one, the same through a remote engine on llama.cpp's own server, and refusals of what
//! cannot be honoured.

use crate::constraints::validate;
use crate::guests::GENERATE;
use serde_json::{Value, json};
use tabagent_tests::{grant, model_path, repo_root, run_json};

fn tools() -> Value {
    json!([
        {"name": "get_weather", "description": "The current weather in a city.",
         "parameters": {"type": "object", "properties": {
             "city": {"type": "string", "minLength": 1, "maxLength": 40},
             "unit": {"enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"]}},
        {"name": "add", "description": "Add two integers.",
         "parameters": {"type": "object", "properties": {
             "a": {"type": "integer"}, "b": {"type": "integer"}},
           "required": ["a", "b"]}}
    ])
}

fn schema_of(name: &str) -> Value {
    tools().as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()["parameters"].clone()
}

/// Run the driver; the runs' outcomes.
async fn generate(req: Value) -> Vec<Value> {
    let out = run_json(GENERATE, grant("smollm2", model_path()), &[&req.to_string()]).await;
    out["runs"].as_array().unwrap().clone()
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

/// Every call names an offered tool and its arguments validate against that tool's schema.
fn assert_valid_calls(g: &Value) {
    let calls = g["tool_calls"].as_array().unwrap();
    assert!(!calls.is_empty(), "{g}");
    for c in calls {
        let name = c["name"].as_str().unwrap();
        let args = c["arguments"].as_str().unwrap().to_string();
        let v = validate(&schema_of(name), &[args]);
        assert_eq!(v["valid"], 1, "{name}: {v}");
        assert!(!c["id"].as_str().unwrap().is_empty(), "{c}");
    }
}

#[tokio::test]
async fn required_calls_are_valid_whole_and_streamed_at_any_seed() {
    let mut outputs = Vec::new();
    for seed in 0..12u64 {
        let runs = generate(json!({
            "prompt": {"chat": [user("What is the weather in Paris? Also add 2 and 40.")]},
            "options": {"temperature": 1.0, "seed": seed, "max_tokens": 96,
                        "tools": tools(), "tool_choice": "required", "parallel_tool_calls": false},
            "mode": "both",
        }))
        .await;
        let whole = &runs[0]["generate"]["ok"];
        assert_eq!(whole["finish"], "tool-calls", "{whole}");
        assert_valid_calls(whole);
        let stream = &runs[0]["stream"];
        let outcome = &stream["outcome"];
        // Streamed (from the cached prompt, so not always the same tokens at temperature 1):
        // valid calls too, and no call markup among the pieces.
        assert_eq!(outcome["finish"], "tool-calls", "{outcome}");
        assert_valid_calls(outcome);
        assert_eq!(outcome["tool_calls"].as_array().unwrap().len(), 1, "one call unless parallel");
        assert!(whole["tool_calls"][0]["id"].as_str().unwrap().starts_with("call_"), "{whole}");
        let pieces: String =
            stream["pieces"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert_eq!(pieces, outcome["text"].as_str().unwrap(), "pieces are the reply");
        assert!(!pieces.contains("tool_calls"), "{pieces}");
        outputs.push(whole["tool_calls"].clone());
    }
    println!("12 required generations: {outputs:?}");
}

#[tokio::test]
async fn a_forced_function_is_called_and_none_gives_a_reply() {
    let runs = generate(json!({
        "prompt": {"chat": [user("What is 17 plus 25?")]},
        "options": {"temperature": 0.0, "max_tokens": 64, "tools": tools(),
                    "tool_choice": {"function": "add"}, "parallel_tool_calls": false},
        "mode": "generate",
    }))
    .await;
    let g = &runs[0]["generate"]["ok"];
    assert_eq!(g["finish"], "tool-calls", "{g}");
    let calls = g["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "parallel calls off: one call");
    assert_eq!(calls[0]["name"], "add");
    assert_valid_calls(g);

    let none = generate(json!({
        "prompt": {"chat": [user("What is 17 plus 25?")]},
        "options": {"temperature": 0.0, "max_tokens": 24, "tools": tools(), "tool_choice": "none"},
        "mode": "generate",
    }))
    .await;
    let n = &none[0]["generate"]["ok"];
    assert!(n["tool_calls"].as_array().unwrap().is_empty(), "{n}");
    assert_ne!(n["finish"], "tool-calls");
    assert!(!n["text"].as_str().unwrap().trim().is_empty(), "{n}");
    // `none` leaves the tools out of the prompt.
    let forced = g["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(n["usage"]["prompt_tokens"].as_u64().unwrap() + 50 < forced, "{n} vs {g}");
}

#[tokio::test]
async fn a_tool_result_is_answered_in_words() {
    // First turn: the model calls the weather tool.
    let first = generate(json!({
        "prompt": {"chat": [user("What is the weather in Paris?")]},
        "options": {"temperature": 0.0, "max_tokens": 64, "tools": tools(),
                    "tool_choice": {"function": "get_weather"}, "parallel_tool_calls": false},
        "mode": "generate",
    }))
    .await;
    let call = first[0]["generate"]["ok"]["tool_calls"][0].clone();
    assert_eq!(call["name"], "get_weather", "{first:?}");
    // Second turn: its result goes back, and the model answers in words from it (`none`:
    // the generic format holds the reply to its answer, so it does not imitate the JSON
    // turns of the history).
    let history = json!([
        user("What is the weather in Paris?"),
        {"role": "assistant", "content": "", "tool_calls": [call.clone()]},
        {"role": "tool", "tool_call_id": call["id"], "content": "{\"temperature\": 18, \"sky\": \"sunny\"}"},
    ]);
    let second = generate(json!({
        "prompt": {"chat": history},
        "options": {"temperature": 0.0, "max_tokens": 40, "tools": tools(), "tool_choice": "none"},
        "mode": "both",
    }))
    .await;
    let g = &second[0]["generate"]["ok"];
    assert!(g["tool_calls"].as_array().unwrap().is_empty(), "{g}");
    let text = g["text"].as_str().unwrap();
    assert!(text.contains("18") && !text.contains('{'), "the answer uses the result: {g}");
    let s = &second[0]["stream"];
    let pieces: String =
        s["pieces"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(pieces, s["outcome"]["text"].as_str().unwrap());
    assert!(pieces.contains("18"), "streamed as words: {pieces}");
    // The same history without tools at all renders the same way.
    let plain = generate(json!({
        "prompt": {"chat": history},
        "options": {"temperature": 0.0, "max_tokens": 40},
        "mode": "generate",
    }))
    .await;
    assert_eq!(plain[0]["generate"]["ok"]["text"], g["text"], "{plain:?}");
    // And a schema of the caller's own holds the reply to such a history.
    let shaped = generate(json!({
        "prompt": {"chat": history},
        "options": {"temperature": 0.0, "max_tokens": 60, "tools": tools(), "tool_choice": "none",
                    "json_schema": {"type": "object", "properties": {"celsius": {"type": "integer"}},
                                    "required": ["celsius"], "additionalProperties": false}},
        "mode": "generate",
    }))
    .await;
    let text = shaped[0]["generate"]["ok"]["text"].as_str().unwrap();
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {shaped:?}"));
    assert!(v["celsius"].is_i64(), "{v}");
    println!("the answer to the tool's result: {g}");
}

#[tokio::test]
async fn templates_with_their_own_format_get_calls_in_it() {
    // Each family's template on SmolLM2, as a session template: the tools rendered as the
    // template writes them, the call in its format (never streamed), parsed.
    let formats = [
        ("qwen2.5-7b-instruct.jinja", "<tool_call>"),
        ("llama-3.1-8b-instruct.jinja", "\"parameters\""),
        ("mistral-nemo-instruct-2407.jinja", "[TOOL_CALLS]"),
    ];
    for (file, marker) in formats {
        let template =
            std::fs::read_to_string(repo_root().join("tests/templates").join(file)).unwrap();
        let runs = generate(json!({
            "prompt": {"chat": [user("Add 2 and 3.")]},
            "session": {"chat_template": template},
            "options": {"temperature": 0.0, "max_tokens": 64, "tools": tools(),
                        "tool_choice": "required", "parallel_tool_calls": false},
            "mode": "both",
        }))
        .await;
        let g = &runs[0]["generate"]["ok"];
        assert_eq!(g["finish"], "tool-calls", "{file}: {g}");
        assert_valid_calls(g);
        if file.starts_with("mistral") {
            // Mistral's template checks ids: nine letters and digits.
            let id = g["tool_calls"][0]["id"].as_str().unwrap();
            assert!(id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        }
        let pieces: String = runs[0]["stream"]["pieces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert!(!pieces.contains(marker) && !pieces.contains("arguments"), "{file}: {pieces:?}");
        assert_eq!(runs[0]["stream"]["outcome"]["finish"], "tool-calls", "{file}");
        // The prompt carries the tools as the template writes them.
        let plain = generate(json!({
            "prompt": {"chat": [user("Add 2 and 3.")]},
            "session": {"chat_template": template},
            "options": {"temperature": 0.0, "max_tokens": 4},
            "mode": "generate",
        }))
        .await;
        let with = g["usage"]["prompt_tokens"].as_u64().unwrap();
        let without = plain[0]["generate"]["ok"]["usage"]["prompt_tokens"].as_u64().unwrap();
        assert!(with > without + 50, "{file}: {with} vs {without}");
    }
    // `auto` with a native format: the grammar waits for the marker, so the model may answer
    // in words; whatever it does is a valid call or words without markup.
    let qwen =
        std::fs::read_to_string(repo_root().join("tests/templates/qwen2.5-7b-instruct.jinja"))
            .unwrap();
    let runs = generate(json!({
        "prompt": {"chat": [user("Say hello.")]},
        "session": {"chat_template": qwen},
        "options": {"temperature": 0.0, "max_tokens": 32, "tools": tools()},
        "mode": "generate",
    }))
    .await;
    let g = &runs[0]["generate"]["ok"];
    if g["finish"] == "tool-calls" {
        assert_valid_calls(g);
    } else {
        let text = g["text"].as_str().unwrap();
        assert!(!text.trim().is_empty() && !text.contains("<tool_call>"), "{g}");
    }
}

#[tokio::test]
async fn what_cannot_be_honoured_is_refused() {
    let cases = [
        (json!({"text": "Hi"}), json!({"tools": tools()}), "chat prompt"),
        (
            json!({"chat": [user("Hi")]}),
            json!({"tools": tools(), "tool_choice": {"function": "nope"}}),
            "not among the tools",
        ),
        (
            json!({"chat": [user("Hi")]}),
            json!({"tools": tools(), "grammar": "root ::= \"a\""}),
            "grammar",
        ),
        (
            json!({"chat": [user("Hi")]}),
            json!({"tools": [{"name": "bad name", "parameters": {}}]}),
            "letters, digits",
        ),
        (
            json!({"chat": [user("Hi")]}),
            json!({"tools": [{"name": "t", "parameters": [1]}]}),
            "JSON schema object",
        ),
        (json!({"chat": [user("Hi")]}), json!({"tool_choice": "required"}), "at least one tool"),
    ];
    for (prompt, options, why) in cases {
        let runs =
            generate(json!({"prompt": prompt, "options": options, "mode": "generate"})).await;
        let e = &runs[0]["generate"]["error"];
        assert_eq!(e["kind"], "invalid-input", "{options}: {e}");
        assert!(e["message"].as_str().unwrap().contains(why), "{options}: {e}");
    }
}

#[tokio::test]
async fn tool_calls_work_through_a_remote_engine_on_llama_server() {
    use std::collections::BTreeMap;
    use tabagent_host::remote::RemoteSpec;
    use tabagent_host::source::ModelSource;
    let server = tabagent_tests::llama_server::LlamaServer::start(&[]);
    let spec = RemoteSpec::parse(&format!("remote:{}", server.url())).unwrap();
    let grant = BTreeMap::from([("smollm2".to_string(), ModelSource::Remote(spec))]);
    let req = json!({
        "prompt": {"chat": [user("What is the weather in Paris?")]},
        "options": {"temperature": 0.0, "max_tokens": 96, "tools": tools(),
                    "tool_choice": "required", "parallel_tool_calls": false},
        "mode": "both",
    });
    let out = run_json(GENERATE, grant.clone(), &[&req.to_string()]).await;
    let run = &out["runs"][0];
    for g in [&run["generate"]["ok"], &run["stream"]["outcome"]] {
        assert_eq!(g["finish"], "tool-calls", "{out}");
        let calls = g["tool_calls"].as_array().unwrap();
        assert!(!calls.is_empty(), "{g}");
        for c in calls {
            let v = validate(
                &schema_of(c["name"].as_str().unwrap()),
                &[c["arguments"].as_str().unwrap().into()],
            );
            assert_eq!(v["valid"], 1, "{c}: {v}");
            assert!(!c["id"].as_str().unwrap().is_empty(), "{c}");
        }
    }
    // The call and its result go back in the history, and the answer comes in words.
    let call = run["generate"]["ok"]["tool_calls"][0].clone();
    let history = json!([
        user("What is the weather in Paris?"),
        {"role": "assistant", "content": "", "tool_calls": [call.clone()]},
        {"role": "tool", "tool_call_id": call["id"], "content": "{\"temperature\": 18}"},
    ]);
    let req = json!({
        "prompt": {"chat": history},
        "options": {"temperature": 0.0, "max_tokens": 24, "tools": tools(), "tool_choice": "none"},
        "mode": "generate",
    });
    let out = run_json(GENERATE, grant, &[&req.to_string()]).await;
    let g = &out["runs"][0]["generate"]["ok"];
    assert!(g["tool_calls"].as_array().unwrap().is_empty(), "{out}");
    assert!(!g["text"].as_str().unwrap().trim().is_empty(), "{out}");
}
