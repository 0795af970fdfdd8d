//! The OpenAI-compatible wire format: request bodies from the engine's types, and what comes
//! back (streamed chunks, model lists, llama-server's extras) into them.

use crate::engine::{ChatMessage, ModelInfo, Prompt, SamplingParams};
use serde_json::{Value, json};

/// Stop sequences sent to the server (the OpenAI API takes at most 4); every one is also
/// applied on this side, so more still work.
const UPSTREAM_STOPS: usize = 4;

/// Where a prompt goes, and the request body: streamed, with usage in the last chunk.
pub fn generation_request(
    model: Option<&str>,
    prompt: &Prompt,
    p: &SamplingParams,
) -> (&'static str, Value) {
    let (route, mut body) = match prompt {
        Prompt::Chat(messages) => {
            let m: Vec<Value> = messages.iter().map(message).collect();
            ("/chat/completions", json!({ "messages": m }))
        }
        Prompt::Text(text) => ("/completions", json!({ "prompt": text })),
        Prompt::Tokens(tokens) => ("/completions", json!({ "prompt": tokens })),
    };
    let o = body.as_object_mut().expect("an object");
    if let Some(m) = model {
        o.insert("model".into(), json!(m));
    }
    o.insert("stream".into(), json!(true));
    o.insert("stream_options".into(), json!({ "include_usage": true }));
    o.insert("max_tokens".into(), json!(p.max_tokens));
    o.insert("temperature".into(), json!(p.temperature));
    o.insert("top_p".into(), json!(p.top_p));
    // The same 32-bit seed the local engine uses (llama.cpp's servers take 32 bits, OpenAI's
    // API signed 64).
    o.insert("seed".into(), json!(crate::engine::llama::fold_seed(p.seed)));
    // Not in OpenAI's API (its own service refuses them), but read by llama.cpp's server and
    // vLLM and ignored by most others: without them a server applies defaults of its own.
    o.insert("top_k".into(), json!(p.top_k));
    o.insert("min_p".into(), json!(p.min_p));
    o.insert("repeat_penalty".into(), json!(p.repeat_penalty));
    o.insert("repetition_penalty".into(), json!(p.repeat_penalty));
    o.insert("repeat_last_n".into(), json!(p.repeat_window));
    let stops: Vec<&String> =
        p.stop.iter().filter(|s| !s.is_empty()).take(UPSTREAM_STOPS).collect();
    if !stops.is_empty() {
        o.insert("stop".into(), json!(stops));
    }
    // A schema in OpenAI's own form; a grammar in llama.cpp's server's (`grammar`, GBNF).
    match &p.constraint {
        Some(crate::engine::Constraint::JsonSchema(schema)) => {
            let schema: serde_json::Value = serde_json::from_str(schema).unwrap_or_default();
            o.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}}),
            );
        }
        Some(crate::engine::Constraint::Grammar(g)) => {
            o.insert("grammar".into(), json!(g));
        }
        // Set only by the local engine's tool calls.
        Some(crate::engine::Constraint::Lazy { .. }) | None => {}
    }
    (route, body)
}

/// A chat message in OpenAI's shape: an assistant's `tool_calls` (arguments as JSON text),
/// a tool result's `tool_call_id`.
fn message(m: &ChatMessage) -> Value {
    let mut v = json!({"role": m.role, "content": m.content});
    if !m.tool_calls.is_empty() {
        if m.content.is_empty() {
            v["content"] = Value::Null;
        }
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    v
}

/// Token counts a server reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WireUsage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Prompt tokens served from the server's cache.
    pub cached_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// llama-server's own prompt and generation times, in ms.
    pub timings: Option<(f64, f64)>,
}

/// One streamed chunk, as much of it as matters here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunk {
    /// New text.
    pub text: Option<String>,
    /// Why the server stopped, in the last chunk with a choice.
    pub finish_reason: Option<String>,
    /// Counts, in the last chunk.
    pub usage: Option<WireUsage>,
}

/// Read one chunk's JSON (`chat.completion.chunk` or `text_completion`); an `error` object in
/// the stream is an error.
pub fn parse_chunk(data: &str) -> Result<Chunk, String> {
    let v: Value =
        serde_json::from_str(data).map_err(|e| format!("a streamed chunk is not JSON: {e}"))?;
    if let Some(e) = v.get("error") {
        let m = e.get("message").and_then(Value::as_str).or(e.as_str()).unwrap_or("unknown error");
        return Err(format!("the server reported an error mid-stream: {m}"));
    }
    let mut chunk = Chunk::default();
    if let Some(choice) = v.get("choices").and_then(Value::as_array).and_then(|c| c.first()) {
        let text = choice
            .get("delta")
            .and_then(|d| d.get("content"))
            .or_else(|| choice.get("text"))
            .and_then(Value::as_str);
        chunk.text = text.filter(|t| !t.is_empty()).map(str::to_string);
        chunk.finish_reason =
            choice.get("finish_reason").and_then(Value::as_str).map(str::to_string);
    }
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        let n = |v: Option<&Value>| {
            v.and_then(Value::as_u64).unwrap_or(0).min(u64::from(u32::MAX)) as u32
        };
        let timings = v
            .get("timings")
            .and_then(|t| Some((t.get("prompt_ms")?.as_f64()?, t.get("predicted_ms")?.as_f64()?)));
        chunk.usage = Some(WireUsage {
            prompt_tokens: n(u.get("prompt_tokens")),
            cached_tokens: n(u.get("prompt_tokens_details").and_then(|d| d.get("cached_tokens"))),
            completion_tokens: n(u.get("completion_tokens")),
            timings,
        });
    }
    Ok(chunk)
}

/// The ids a `/models` answer lists, in order.
pub fn model_ids(list: &Value) -> Vec<String> {
    list.get("data")
        .and_then(Value::as_array)
        .map(|d| d.iter().filter_map(|m| m.get("id")?.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// What a `/models` answer (llama-server adds a `meta` object to each model) and llama-server's
/// `/props` say about `id`.
pub fn model_info(id: &str, list: &Value, props: Option<&Value>) -> ModelInfo {
    let entry = list
        .get("data")
        .and_then(Value::as_array)
        .and_then(|d| d.iter().find(|m| m.get("id").and_then(Value::as_str) == Some(id)));
    let meta = entry.and_then(|e| e.get("meta"));
    let num = |key: &str| meta.and_then(|m| m.get(key)).and_then(Value::as_u64).unwrap_or(0);
    let small = |key: &str| num(key).min(u64::from(u32::MAX)) as u32;
    let text =
        |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    ModelInfo {
        architecture: "remote".into(),
        display_name: Some(id.to_string()),
        vocab_size: small("n_vocab"),
        context_length: small("n_ctx_train"),
        embedding_size: small("n_embd"),
        parameter_count: num("n_params"),
        file_size: num("size"),
        file_type: text(meta.and_then(|m| m.get("ftype"))).unwrap_or_default(),
        chat_template: text(props.and_then(|p| p.get("chat_template"))),
        ..ModelInfo::default()
    }
}

/// The context a llama-server slot has (`/props`), which bounds one request there.
pub fn server_context(props: &Value) -> Option<u32> {
    let n = props.get("default_generation_settings")?.get("n_ctx")?.as_u64()?;
    u32::try_from(n).ok()
}

/// The vectors of an `/embeddings` answer, in input order: one per text, each index once, all
/// of one length (`dims` when known, 0 for unknown).
pub fn embeddings(v: &Value, count: usize, dims: usize) -> Result<Vec<Vec<f32>>, String> {
    let data = v.get("data").and_then(Value::as_array).ok_or("no 'data' list in the answer")?;
    if data.len() != count {
        return Err(format!("{} vectors for {count} texts", data.len()));
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; count];
    for (k, item) in data.iter().enumerate() {
        let index = item.get("index").and_then(Value::as_u64).map_or(k, |i| i as usize);
        let vector = item
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or("an item has no 'embedding' list")?
            .iter()
            .map(|x| x.as_f64().map(|x| x as f32).ok_or("a value is not a number"))
            .collect::<Result<Vec<f32>, _>>()?;
        let slot = out.get_mut(index).ok_or("an index is out of range")?;
        if slot.is_some() {
            return Err("an index appears twice".into());
        }
        *slot = Some(vector);
    }
    let out: Vec<Vec<f32>> = out.into_iter().map(|v| v.expect("each index once")).collect();
    let len = if dims > 0 { dims } else { out[0].len() };
    if len == 0 || out.iter().any(|v| v.len() != len) {
        return Err(format!("the vectors do not all have the model's {len} dimensions"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ChatMessage;

    fn params() -> SamplingParams {
        SamplingParams {
            max_tokens: 16,
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_window: 64,
            seed: 7,
            stop: (0..6).map(|i| format!("s{i}")).collect(),
            pieces: true,
            deadline: None,
            constraint: None,
            tools: None,
            render_special: false,
        }
    }

    #[test]
    fn constraints_go_as_response_format_or_grammar() {
        let mut p = params();
        p.constraint = Some(crate::engine::Constraint::JsonSchema(r#"{"type":"object"}"#.into()));
        let (_, body) = generation_request(None, &Prompt::Text("x".into()), &p);
        assert_eq!(body["response_format"]["json_schema"]["schema"], json!({"type": "object"}));
        assert_eq!(body["response_format"]["type"], "json_schema");
        p.constraint = Some(crate::engine::Constraint::Grammar("root ::= \"a\"".into()));
        let (_, body) = generation_request(None, &Prompt::Text("x".into()), &p);
        assert_eq!(body["grammar"], "root ::= \"a\"");
        assert!(body.get("response_format").is_none());
    }

    #[test]
    fn tool_turns_go_in_openai_shape() {
        use crate::engine::ToolCall;
        let p = params();
        let call = ToolCall { id: "c1".into(), name: "add".into(), arguments: r#"{"a":1}"#.into() };
        let chat = Prompt::Chat(vec![
            ChatMessage::new("user", "1+1?"),
            ChatMessage { tool_calls: vec![call], ..ChatMessage::new("assistant", "") },
            ChatMessage { tool_call_id: Some("c1".into()), ..ChatMessage::new("tool", "2") },
        ]);
        let (_, body) = generation_request(None, &chat, &p);
        let m = &body["messages"];
        assert!(m[1]["content"].is_null());
        assert_eq!(m[1]["tool_calls"][0]["function"]["arguments"], r#"{"a":1}"#);
        assert_eq!(m[2]["tool_call_id"], "c1");
    }

    #[test]
    fn requests_carry_the_sampling_options() {
        let chat = Prompt::Chat(vec![ChatMessage::new("user", "Hi")]);
        let (route, body) = generation_request(Some("m"), &chat, &params());
        assert_eq!(route, "/chat/completions");
        assert_eq!(body["messages"], json!([{"role": "user", "content": "Hi"}]));
        assert_eq!(body["model"], "m");
        assert_eq!((body["stream"].clone(), body["max_tokens"].clone()), (json!(true), json!(16)));
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["stop"].as_array().unwrap().len(), 4, "OpenAI takes at most 4");
        assert_eq!(body["seed"], 7);
        let (route, body) = generation_request(None, &Prompt::Tokens(vec![1, 2]), &params());
        assert_eq!((route, body["prompt"].clone()), ("/completions", json!([1, 2])));
        assert!(body.get("model").is_none());
    }

    #[test]
    fn chunks_of_both_routes() {
        let c = parse_chunk(r#"{"choices":[{"delta":{"content":"Hel"},"finish_reason":null}]}"#);
        assert_eq!(c.unwrap().text.as_deref(), Some("Hel"));
        let c = parse_chunk(r#"{"choices":[{"text":"lo","finish_reason":"length"}]}"#).unwrap();
        assert_eq!((c.text.as_deref(), c.finish_reason.as_deref()), (Some("lo"), Some("length")));
        let c = parse_chunk(r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2}},"timings":{"prompt_ms":1.5,"predicted_ms":9.0}}"#).unwrap();
        let u = c.usage.unwrap();
        assert_eq!((u.prompt_tokens, u.cached_tokens, u.completion_tokens), (5, 2, 3));
        assert_eq!(u.timings, Some((1.5, 9.0)));
        let e = parse_chunk(r#"{"error":{"message":"slot crashed"}}"#).unwrap_err();
        assert!(e.contains("slot crashed"), "{e}");
        assert!(parse_chunk("not json").is_err());
    }

    #[test]
    fn model_lists_and_props() {
        let list = json!({"data": [{"id": "a"}, {"id": "b", "meta": {"n_vocab": 49152, "n_ctx_train": 8192, "n_embd": 576, "n_params": 134515008u64, "size": 96576768u64, "ftype": "Q4_1"}}]});
        assert_eq!(model_ids(&list), vec!["a", "b"]);
        let props =
            json!({"chat_template": "{{x}}", "default_generation_settings": {"n_ctx": 2048}});
        let info = model_info("b", &list, Some(&props));
        assert_eq!((info.vocab_size, info.context_length, info.embedding_size), (49152, 8192, 576));
        assert_eq!(info.file_type, "Q4_1");
        assert_eq!(info.chat_template.as_deref(), Some("{{x}}"));
        assert_eq!(server_context(&props), Some(2048));
        assert_eq!(model_info("a", &list, None).vocab_size, 0);
    }

    #[test]
    fn embedding_answers_in_input_order() {
        let v = json!({"data": [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}]});
        assert_eq!(embeddings(&v, 2, 2).unwrap(), vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!(embeddings(&v, 3, 2).is_err());
        assert!(embeddings(&v, 2, 3).is_err(), "the model's size");
        let dup =
            json!({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]});
        assert!(embeddings(&dup, 2, 0).is_err());
        let ragged =
            json!({"data": [{"index": 0, "embedding": []}, {"index": 1, "embedding": [1.0]}]});
        assert!(embeddings(&ragged, 2, 0).is_err());
    }
}
