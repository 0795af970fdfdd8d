//! OpenAI's tool calling: `tools`, `tool_choice` and `parallel_tool_calls` read and checked,
//! assistant `tool_calls` and `tool` messages in the history, and the calls a generation made
//! as a message's `tool_calls` or as streamed deltas.

use crate::api::{ApiError, Body};
use serde_json::{Value, json};
use tabagent_guest::{Request, Tool, ToolCall, ToolChoice};

/// The tools a chat request offers.
pub struct Tools {
    tools: Vec<Tool>,
    choice: Option<ToolChoice>,
    parallel: Option<bool>,
}

impl Tools {
    /// Read `tools`, `tool_choice` and `parallel_tool_calls`; refuse the legacy `functions`.
    pub fn parse(b: &Body) -> Result<Self, ApiError> {
        for legacy in ["functions", "function_call"] {
            if b.get(legacy).is_some() {
                return Err(ApiError::unsupported(
                    legacy,
                    format!("'{legacy}' is deprecated and not supported; use 'tools'"),
                ));
            }
        }
        let tools = match b.get("tools") {
            None => Vec::new(),
            Some(Value::Array(list)) => {
                list.iter().enumerate().map(|(i, t)| tool(i, t)).collect::<Result<_, _>>()?
            }
            Some(_) => return Err(ApiError::field("tools", "'tools' must be a list")),
        };
        let choice = match b.get("tool_choice") {
            None => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => {
                    return Err(ApiError::field(
                        "tool_choice",
                        format!(
                            "'tool_choice' is '{other}'; use none, auto, required or a function"
                        ),
                    ));
                }
            }),
            Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
                Some(name) if v.get("type").and_then(Value::as_str) == Some("function") => {
                    if !tools.iter().any(|t| t.name == name) {
                        return Err(ApiError::field(
                            "tool_choice",
                            format!("'tool_choice' names '{name}', which is not in 'tools'"),
                        ));
                    }
                    Some(ToolChoice::Function(name.to_string()))
                }
                _ => {
                    return Err(ApiError::field(
                        "tool_choice",
                        "'tool_choice' must be a string or {\"type\": \"function\", \"function\": {\"name\": …}}",
                    ));
                }
            },
        };
        if tools.is_empty()
            && matches!(choice, Some(ToolChoice::Required | ToolChoice::Function(_)))
        {
            return Err(ApiError::field("tool_choice", "'tool_choice' needs 'tools'"));
        }
        Ok(Self { tools, choice, parallel: b.bool("parallel_tool_calls")? })
    }

    /// Whether the request offers tools the model may call.
    pub fn active(&self) -> bool {
        !self.tools.is_empty() && !matches!(self.choice, Some(ToolChoice::None))
    }

    /// Apply to a generation request.
    pub fn apply<'a>(&self, mut r: Request<'a>) -> Request<'a> {
        if self.tools.is_empty() {
            return r;
        }
        r = r.tools(&self.tools);
        if let Some(c) = &self.choice {
            r = r.tool_choice(c.clone());
        }
        if let Some(p) = self.parallel {
            r = r.parallel_tool_calls(p);
        }
        r
    }
}

/// One entry of `tools`: `{"type": "function", "function": {name, description?, parameters?,
/// strict?}}` (the arguments always match the schema, strict or not).
fn tool(i: usize, t: &Value) -> Result<Tool, ApiError> {
    let param = format!("tools[{i}]");
    match t.get("type").and_then(Value::as_str) {
        Some("function") => {}
        Some(other) => {
            return Err(ApiError::unsupported(
                &param,
                format!("tools of type '{other}' are not supported; only 'function'"),
            ));
        }
        None => return Err(ApiError::field(&param, "each tool needs 'type': 'function'")),
    }
    let f = t
        .get("function")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::field(&param, "each tool needs a 'function' object"))?;
    let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
        ApiError::field(&format!("{param}.function.name"), "a function needs a 'name'")
    })?;
    let description = match f.get("description") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(ApiError::field(
                &format!("{param}.function.description"),
                "'description' must be a string",
            ));
        }
    };
    let parameters = match f.get("parameters") {
        None | Some(Value::Null) => r#"{"type": "object", "properties": {}}"#.to_string(),
        Some(p @ Value::Object(_)) => p.to_string(),
        Some(_) => {
            return Err(ApiError::field(
                &format!("{param}.function.parameters"),
                "'parameters' must be a JSON schema object",
            ));
        }
    };
    Ok(Tool::new(name, description, parameters))
}

/// An assistant message's `tool_calls`.
pub fn message_calls(i: usize, v: Option<&Value>) -> Result<Vec<ToolCall>, ApiError> {
    let param = format!("messages[{i}].tool_calls");
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ApiError::field(&param, "'tool_calls' must be a list")),
    };
    list.iter()
        .map(|c| {
            let text = |p: &str| c.pointer(p).and_then(Value::as_str).map(str::to_string);
            match (text("/id"), text("/function/name"), text("/function/arguments")) {
                (Some(id), Some(name), Some(arguments)) => Ok(ToolCall { id, name, arguments }),
                _ => Err(ApiError::field(
                    &param,
                    "each tool call needs 'id' and 'function' with 'name' and 'arguments' (a string)",
                )),
            }
        })
        .collect()
}

/// The calls as a message's `tool_calls`.
pub fn calls_json(calls: &[ToolCall]) -> Value {
    calls
        .iter()
        .map(|c| {
            json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}})
        })
        .collect()
}

/// The calls as streamed deltas: for each, its `id`, type and name with empty arguments
/// first, then the arguments; `index` on every one.
pub fn call_deltas(calls: &[ToolCall]) -> Vec<Value> {
    let mut out = Vec::new();
    for (index, c) in calls.iter().enumerate() {
        out.push(json!({"index": index, "id": c.id, "type": "function", "function": {"name": c.name, "arguments": ""}}));
        out.push(json!({"index": index, "function": {"arguments": c.arguments}}));
    }
    out
}
