//! The routes: models, chat completions, completions, embeddings. Each answers once, whole or
//! as server-sent events; an error before the first byte is an error response, one after it is
//! an error event.

use crate::api::{ApiError, Body, Sampling, finish_reason, usage};
use crate::bindings::wasi::http::types::ResponseOutparam;
use crate::http::{Response, send_error, send_json};
use crate::tools::{self, Tools};
use base64::Engine as _;
use serde_json::{Value, json};
use tabagent_guest::{Error, Generation, Message, Model};

/// OpenAI's default for `/v1/completions` when `max_tokens` is not set.
const COMPLETIONS_DEFAULT_MAX: u32 = 16;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", crate::bindings::wasi::random::random::get_random_u64())
}

/// Load a granted model by the request's `model` name.
fn load(b: &Body) -> Result<(String, Model), ApiError> {
    let name = b.string("model")?.to_string();
    if !tabagent_guest::granted_models().contains(&name) {
        return Err(ApiError::no_model(&name));
    }
    let model = Model::load(&name).map_err(ApiError::from)?;
    Ok((name, model))
}

fn model_json(name: &str, created: u64) -> Value {
    json!({"id": name, "object": "model", "created": created, "owned_by": "tabagent"})
}

/// `GET /v1/models`: the granted models.
pub fn models(out: ResponseOutparam) {
    let created = now();
    let data: Vec<Value> =
        tabagent_guest::granted_models().iter().map(|n| model_json(n, created)).collect();
    send_json(out, 200, &json!({"object": "list", "data": data}));
}

/// `GET /v1/models/{id}`.
pub fn model(name: &str, out: ResponseOutparam) {
    if tabagent_guest::granted_models().iter().any(|n| n == name) {
        send_json(out, 200, &model_json(name, now()));
    } else {
        send_error(out, &ApiError::no_model(name));
    }
}

/// A message's text: a string, or the text parts of a list of parts.
fn content_text(i: usize, v: Option<&Value>) -> Result<String, ApiError> {
    let param = format!("messages[{i}].content");
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for p in parts {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str))
                {
                    (Some("text"), Some(t)) => text.push_str(t),
                    (Some(kind), _) if kind != "text" => {
                        return Err(ApiError::unsupported(
                            &param,
                            format!(
                                "content parts of type '{kind}' are not supported; only 'text'"
                            ),
                        ));
                    }
                    _ => {
                        return Err(ApiError::field(
                            &param,
                            "each content part needs 'type' and 'text'",
                        ));
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(ApiError::field(&param, "content must be a string or a list of parts")),
    }
}

fn messages(b: &Body) -> Result<Vec<Message>, ApiError> {
    let list = match b.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(ApiError::field("messages", "'messages' must not be empty"));
        }
        Some(_) => return Err(ApiError::field("messages", "'messages' must be a list")),
        None => return Err(ApiError::field("messages", "you must provide 'messages'")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let role = match m.get("role").and_then(Value::as_str) {
            Some(r @ ("system" | "user" | "assistant" | "tool")) => r,
            Some("developer") => "system",
            Some(other) => {
                return Err(ApiError::field(
                    &format!("messages[{i}].role"),
                    format!(
                        "unknown role '{other}'; use system, developer, user, assistant or tool"
                    ),
                ));
            }
            None => {
                return Err(ApiError::field(
                    &format!("messages[{i}].role"),
                    "each message needs a 'role' string",
                ));
            }
        };
        let mut message = Message::new(role, content_text(i, m.get("content"))?);
        message.tool_calls = tools::message_calls(i, m.get("tool_calls"))?;
        if !message.tool_calls.is_empty() && role != "assistant" {
            return Err(ApiError::field(
                &format!("messages[{i}].tool_calls"),
                "only an assistant message has 'tool_calls'",
            ));
        }
        if role == "tool" {
            match m.get("tool_call_id").and_then(Value::as_str) {
                Some(id) => message.tool_call_id = Some(id.to_string()),
                None => {
                    return Err(ApiError::field(
                        &format!("messages[{i}].tool_call_id"),
                        "a tool message needs the 'tool_call_id' of the call it answers",
                    ));
                }
            }
        }
        out.push(message);
    }
    Ok(out)
}

/// What differs between chat and completions in their answers.
struct Shape {
    id: String,
    model: String,
    created: u64,
    chat: bool,
}

impl Shape {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.chat, chunk) {
            (true, false) => "chat.completion",
            (true, true) => "chat.completion.chunk",
            (false, _) => "text_completion",
        }
    }

    fn choice(&self, text: Option<&str>, finish: Option<&str>, chunk: bool, first: bool) -> Value {
        if !self.chat {
            return json!({"index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish});
        }
        if !chunk {
            return json!({"index": 0, "message": {"role": "assistant", "content": text.unwrap_or("")}, "logprobs": null, "finish_reason": finish});
        }
        let mut delta = json!({});
        if first {
            delta["role"] = json!("assistant");
        }
        if let Some(t) = text {
            delta["content"] = json!(t);
        }
        json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
    }

    fn envelope(&self, choices: Vec<Value>, chunk: bool) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": concat!("tabagent-", env!("CARGO_PKG_VERSION")),
            "choices": choices,
        })
    }

    fn whole(&self, g: &Generation) -> Value {
        let mut choice =
            self.choice(Some(&g.text), Some(finish_reason(g.finish_reason)), false, false);
        if self.chat && !g.tool_calls.is_empty() {
            if g.text.is_empty() {
                choice["message"]["content"] = Value::Null;
            }
            choice["message"]["tool_calls"] = tools::calls_json(&g.tool_calls);
        }
        let mut v = self.envelope(vec![choice], false);
        v["usage"] = usage(&g.usage);
        v
    }
}

/// `POST /v1/chat/completions`.
pub fn chat(bytes: &[u8], out: ResponseOutparam) {
    let prepared = (|| {
        let b = Body::parse(bytes)?;
        let mut sampling = Sampling::parse(&b, None)?;
        sampling.response_format(&b)?;
        let tools = Tools::parse(&b)?;
        if tools.active() && sampling.json_schema.is_some() {
            return Err(ApiError::unsupported(
                "response_format",
                "'response_format' cannot be combined with 'tools': a reply is either calls or the format",
            ));
        }
        let messages = messages(&b)?;
        let (name, model) = load(&b)?;
        Ok::<_, ApiError>((sampling, tools, messages, name, model))
    })();
    let (sampling, tools, messages, name, model) = match prepared {
        Ok(p) => p,
        Err(e) => return send_error(out, &e),
    };
    let shape = Shape { id: new_id("chatcmpl"), model: name, created: now(), chat: true };
    let request = tools.apply(sampling.apply(model.chat(&messages)));
    generate(request, &sampling, &shape, out);
}

/// `POST /v1/completions`.
pub fn completions(bytes: &[u8], out: ResponseOutparam) {
    let prepared = (|| {
        let b = Body::parse(bytes)?;
        let sampling = Sampling::parse(&b, Some(COMPLETIONS_DEFAULT_MAX))?;
        let prompt = match b.get("prompt") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
                a[0].as_str().unwrap_or_default().to_string()
            }
            Some(Value::Array(_)) => {
                return Err(ApiError::unsupported(
                    "prompt",
                    "'prompt' must be one string (or a list of one)",
                ));
            }
            Some(_) => return Err(ApiError::field("prompt", "'prompt' must be a string")),
            None => return Err(ApiError::field("prompt", "you must provide 'prompt'")),
        };
        b.refuse_unless("echo", |v| v == &Value::Bool(false), "echo is not supported")?;
        b.refuse_unless("suffix", |v| v.as_str() == Some(""), "suffix is not supported")?;
        b.refuse_unless("best_of", |v| v.as_i64() == Some(1), "best_of must be 1")?;
        let (name, model) = load(&b)?;
        Ok::<_, ApiError>((sampling, prompt, name, model))
    })();
    let (sampling, prompt, name, model) = match prepared {
        Ok(p) => p,
        Err(e) => return send_error(out, &e),
    };
    let shape = Shape { id: new_id("cmpl"), model: name, created: now(), chat: false };
    let request = sampling.apply(model.complete(&prompt));
    generate(request, &sampling, &shape, out);
}

/// Run a generation and answer it, whole or streamed.
fn generate(
    request: tabagent_guest::Request<'_>,
    sampling: &Sampling,
    shape: &Shape,
    out: ResponseOutparam,
) {
    if !sampling.stream {
        return match request.generate() {
            Ok(g) => send_json(out, 200, &shape.whole(&g)),
            Err(e) => send_error(out, &ApiError::from(e)),
        };
    }
    // Errors found when starting (a prompt too long, say) are still a plain error response.
    let mut stream = match request.stream() {
        Ok(s) => s,
        Err(e) => return send_error(out, &ApiError::from(e)),
    };
    let mut r = Response::start(out, 200, "text/event-stream");
    let with_usage = |mut v: Value| {
        if sampling.include_usage {
            v["usage"] = Value::Null;
        }
        v.to_string()
    };
    let mut first = shape.chat;
    if first {
        let head = shape.envelope(vec![shape.choice(Some(""), None, true, true)], true);
        if r.event(&with_usage(head)).is_err() {
            return;
        }
        first = false;
    }
    for piece in stream.by_ref() {
        let event = match piece {
            Ok(text) => {
                with_usage(shape.envelope(vec![shape.choice(Some(&text), None, true, first)], true))
            }
            Err(e) => {
                let _ = r.event(&ApiError::from(e).to_json().to_string());
                let _ = r.event("[DONE]");
                return r.finish();
            }
        };
        // The client went away: dropping the stream cancels the generation.
        if r.event(&event).is_err() {
            return;
        }
    }
    let Some(g) = stream.outcome() else {
        let _ = r.event(
            &ApiError::from(Error::Runtime("the generation ended without an outcome".into()))
                .to_json()
                .to_string(),
        );
        return r.finish();
    };
    for delta in tools::call_deltas(&g.tool_calls) {
        let choice = json!({"index": 0, "delta": {"tool_calls": [delta]}, "logprobs": null, "finish_reason": null});
        if r.event(&with_usage(shape.envelope(vec![choice], true))).is_err() {
            return;
        }
    }
    let last = shape.choice(None, Some(finish_reason(g.finish_reason)), true, false);
    if r.event(&with_usage(shape.envelope(vec![last], true))).is_err() {
        return;
    }
    if sampling.include_usage {
        let mut v = shape.envelope(Vec::new(), true);
        v["usage"] = usage(&g.usage);
        if r.event(&v.to_string()).is_err() {
            return;
        }
    }
    let _ = r.event("[DONE]");
    r.finish();
}

/// `POST /v1/embeddings`.
pub fn embeddings(bytes: &[u8], out: ResponseOutparam) {
    match embed(bytes) {
        Ok(v) => send_json(out, 200, &v),
        Err(e) => send_error(out, &e),
    }
}

fn embed(bytes: &[u8]) -> Result<Value, ApiError> {
    let b = Body::parse(bytes)?;
    let texts: Vec<String> = match b.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
            a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
        }
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(ApiError::field("input", "'input' must not be empty"));
        }
        Some(Value::Array(_)) => {
            return Err(ApiError::unsupported(
                "input",
                "'input' must be a string or a list of strings (token lists are not supported)",
            ));
        }
        Some(_) => {
            return Err(ApiError::field("input", "'input' must be a string or a list of strings"));
        }
        None => return Err(ApiError::field("input", "you must provide 'input'")),
    };
    if let Some(i) = texts.iter().position(String::is_empty) {
        return Err(ApiError::field("input", format!("input {i} is empty")));
    }
    let base64 = match b.get("encoding_format").map(|v| v.as_str()) {
        None | Some(Some("float")) => false,
        Some(Some("base64")) => true,
        Some(_) => {
            return Err(ApiError::field(
                "encoding_format",
                "'encoding_format' must be 'float' or 'base64'",
            ));
        }
    };
    let (name, model) = load(&b)?;
    let dimension = model.metadata().map_err(ApiError::from)?.embedding_size as i64;
    if let Some(d) = b.int("dimensions", 1, i64::from(u32::MAX))?
        && d != dimension
    {
        return Err(ApiError::unsupported(
            "dimensions",
            format!("this model's embeddings have {dimension} dimensions"),
        ));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = model.embed(&refs).map_err(ApiError::from)?;
    let mut tokens = 0usize;
    for t in &texts {
        tokens += model.tokenize(t).map_err(ApiError::from)?.len();
    }
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}
