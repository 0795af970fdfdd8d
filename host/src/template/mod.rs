//! Chat templates as the models' authors wrote them: Jinja with Hugging Face's conventions
//! (`messages`, `add_generation_prompt`, `bos_token`, `eos_token`, `tools`, `raise_exception`,
//! `strftime_now`, Python's string methods, `trim_blocks` and `lstrip_blocks`), rendered by
//! MiniJinja inside a WebAssembly sandbox ([`sandbox`]): a template comes from a model file, so
//! each render runs in a fresh instance with bounded memory, instructions and output, and a
//! template that loops, explodes or fails is refused with the reason.
//!
//! [`ChatTemplate::named`] gives the built-in templates ([`BUILTIN`]: `chatml`, `llama3`,
//! `gemma`, `mistral`, …) or takes a template string, for files that have none or a broken one.

mod builtin;
mod sandbox;

pub use builtin::BUILTIN;

use crate::engine::ChatMessage;
use crate::error::{LlmError, LlmResult};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// Output bytes a render may produce beyond four times its input.
const OUTPUT_ALLOWANCE: usize = 1 << 20;

/// Memory a render may use beyond eight times its input.
const MEMORY_ALLOWANCE: usize = 64 << 20;

/// What a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct TemplateInput<'a> {
    /// The conversation.
    pub messages: &'a [ChatMessage],
    /// Open a turn for the assistant at the end.
    pub add_generation_prompt: bool,
    /// The model's beginning-of-sequence token, as text.
    pub bos_token: &'a str,
    /// The model's end-of-sequence token, as text.
    pub eos_token: &'a str,
    /// Tool definitions as JSON text (a list, as in OpenAI's `tools`), for templates that
    /// render them; their keys keep their order.
    pub tools: Option<&'a str>,
}

/// What the sandbox renders.
#[derive(Serialize)]
struct Request<'a> {
    template: &'a str,
    context: Context<'a>,
    tools: Option<&'a str>,
    now: Value,
    max_output: usize,
}

/// The template's variables.
#[derive(Serialize)]
struct Context<'a> {
    messages: &'a RawValue,
    add_generation_prompt: bool,
    bos_token: &'a str,
    eos_token: &'a str,
}

/// A chat template's Jinja source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    source: String,
}

impl ChatTemplate {
    /// A template from its source (a model file's `tokenizer.chat_template`, say).
    pub fn new(source: impl Into<String>) -> Self {
        Self { source: source.into() }
    }

    /// A built-in template by name, or a template string (anything with `{{` or `{%`).
    pub fn named(name: &str) -> LlmResult<Self> {
        if let Some((_, source)) = BUILTIN.iter().find(|(n, _)| *n == name) {
            return Ok(Self::new(*source));
        }
        if name.contains("{{") || name.contains("{%") {
            return Ok(Self::new(name));
        }
        Err(LlmError::invalid(format!(
            "no chat template is named '{name}'; the built-in ones are {}, or give a Jinja \
             template string",
            names()
        )))
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Render a conversation. A template that raises (`raise_exception`), does not parse,
    /// runs too long, needs too much memory or writes too much is `invalid-input` with why.
    pub fn render(&self, input: &TemplateInput<'_>) -> LlmResult<String> {
        let messages = messages_json(input.messages);
        let messages: &RawValue = serde_json::from_str(&messages)
            .map_err(|e| LlmError::runtime(format!("the conversation as JSON: {e}")))?;
        let context = Context {
            messages,
            add_generation_prompt: input.add_generation_prompt,
            bos_token: input.bos_token,
            eos_token: input.eos_token,
        };
        let size = messages.get().len()
            + input.bos_token.len()
            + input.eos_token.len()
            + self.source.len()
            + input.tools.map_or(0, str::len);
        let request = Request {
            template: &self.source,
            context,
            tools: input.tools,
            now: now(),
            max_output: OUTPUT_ALLOWANCE.saturating_add(size.saturating_mul(4)),
        };
        let bytes = serde_json::to_vec(&request).map_err(|e| LlmError::runtime(e.to_string()))?;
        let memory = MEMORY_ALLOWANCE.saturating_add(bytes.len().saturating_mul(8));
        let reply = sandbox::run(&bytes, memory, sandbox::FUEL)?;
        let reply: Value = serde_json::from_slice(&reply)
            .map_err(|e| LlmError::runtime(format!("the template sandbox's reply: {e}")))?;
        match (reply.get("ok").and_then(Value::as_str), reply.get("error").and_then(Value::as_str))
        {
            (Some(text), _) => Ok(text.to_string()),
            (None, Some(why)) => {
                Err(LlmError::invalid(format!("the chat template cannot be rendered: {why}")))
            }
            _ => Err(LlmError::runtime("the template sandbox gave no answer")),
        }
    }
}

/// A conversation as JSON text, as Hugging Face templates read it: `role` and `content`
/// (`null` for an assistant turn of only tool calls), `tool_calls` as OpenAI writes them
/// (`{"id", "type": "function", "function": {"name", "arguments"}}`, the arguments an object
/// as templates expect, its keys in their order) and a tool result's `tool_call_id`.
pub fn messages_json(messages: &[ChatMessage]) -> String {
    let list: Vec<Message<'_>> = messages
        .iter()
        .map(|m| Message {
            role: &m.role,
            content: (!m.content.is_empty() || m.tool_calls.is_empty()).then_some(&m.content),
            tool_calls: m
                .tool_calls
                .iter()
                .map(|c| Call {
                    id: &c.id,
                    kind: "function",
                    function: Function {
                        name: &c.name,
                        arguments: match serde_json::from_str::<&RawValue>(&c.arguments) {
                            Ok(raw) => Arguments::Json(raw),
                            Err(_) => Arguments::Text(&c.arguments),
                        },
                    },
                })
                .collect(),
            tool_call_id: m.tool_call_id.as_deref(),
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: Option<&'a String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<Call<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Call<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: Arguments<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Arguments<'a> {
    Json(&'a RawValue),
    Text(&'a str),
}

/// The built-in names, for messages.
pub fn names() -> String {
    BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// The time now (UTC), broken down for `strftime_now`.
fn now() -> Value {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    json!({
        "year": year, "month": month, "day": day,
        "hour": rem / 3600, "minute": rem % 3600 / 60, "second": rem % 60,
        // 1970-01-01 was a Thursday (3 with Monday = 0).
        "weekday": (days + 3).rem_euclid(7),
    })
}

#[cfg(test)]
mod tests;
