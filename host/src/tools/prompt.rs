//! The prompt side of tool calls: the tools as a template's `tools`, the grammars of each
//! format, and — for templates without a format of their own — the tools' description and the
//! history's calls and results written as JSON turns.

use super::{CallGrammar, ToolFormat};
use crate::engine::{ChatMessage, Tool, ToolChoice, ToolUse};

/// JSON text of a string.
fn text(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The tools as OpenAI's list (`[{"type": "function", "function": {…}}]`), the shape Hugging
/// Face templates read, with each schema's keys in their order.
pub(super) fn tools_json(tools: &[&Tool]) -> String {
    let items: Vec<String> = tools
        .iter()
        .map(|t| {
            format!(
                "{{\"type\": \"function\", \"function\": {{\"name\": {}, \"description\": {}, \
                 \"parameters\": {}}}}}",
                text(&t.name),
                text(&t.description),
                t.parameters
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// The schema of one call of `tool` in `format`'s keys.
fn call_schema(format: ToolFormat, tool: &Tool) -> String {
    let args = format.arguments_key();
    let (id, id_required) = if format == ToolFormat::Mistral {
        (r#","id":{"type":"string","pattern":"^[a-zA-Z0-9]{9}$"}"#, r#","id""#)
    } else {
        ("", "")
    };
    format!(
        r#"{{"type":"object","properties":{{"name":{{"const":{}}},"{args}":{}{id}}},"required":["name","{args}"{id_required}],"additionalProperties":false}}"#,
        text(&tool.name),
        tool.parameters
    )
}

/// A schema allowing a call of any of `tools`.
fn any_call(format: ToolFormat, tools: &[&Tool]) -> String {
    let calls: Vec<String> = tools.iter().map(|t| call_schema(format, t)).collect();
    match calls.as_slice() {
        [one] => one.clone(),
        _ => format!(r#"{{"anyOf":[{}]}}"#, calls.join(",")),
    }
}

/// The grammar of a native format's calls.
pub(super) fn native_grammar(
    format: ToolFormat,
    tools: &ToolUse,
    offered: &[&Tool],
) -> CallGrammar {
    let parallel = tools.parallel;
    let (prefix, separator, suffix, trigger) = match format {
        ToolFormat::Hermes => {
            ("<tool_call>\n", "\n</tool_call>\n<tool_call>\n", "\n</tool_call>", "<tool_call>")
        }
        ToolFormat::Mistral => ("[TOOL_CALLS][", ", ", "]", "[TOOL_CALLS]"),
        ToolFormat::Llama3 | ToolFormat::Generic => ("", "; ", "", "{\"name\""),
    };
    CallGrammar {
        schema: any_call(format, offered),
        prefix: prefix.into(),
        // Llama 3's template knows one call a turn.
        separator: (parallel && format != ToolFormat::Llama3).then(|| separator.into()),
        suffix: suffix.into(),
        trigger: (tools.choice == ToolChoice::Auto).then(|| trigger.into()),
    }
}

/// The schema of the generic format's reply: calls (one unless parallel), or with `auto` a
/// reply in words.
pub(super) fn generic_grammar(tools: &ToolUse, offered: &[&Tool]) -> CallGrammar {
    let max = if tools.parallel { "" } else { r#","maxItems":1"# };
    let calls = format!(
        r#"{{"type":"object","properties":{{"tool_calls":{{"type":"array","items":{},"minItems":1{max}}}}},"required":["tool_calls"],"additionalProperties":false}}"#,
        any_call(ToolFormat::Generic, offered)
    );
    let schema = if tools.choice == ToolChoice::Auto {
        format!(r#"{{"anyOf":[{calls},{RESPONSE}]}}"#)
    } else {
        calls
    };
    CallGrammar {
        schema,
        prefix: String::new(),
        separator: None,
        suffix: String::new(),
        trigger: None,
    }
}

/// The generic format's answer in words only.
pub(super) fn generic_answer() -> CallGrammar {
    CallGrammar {
        schema: RESPONSE.into(),
        prefix: String::new(),
        separator: None,
        suffix: String::new(),
        trigger: None,
    }
}

/// The schema of the generic format's answer in words.
const RESPONSE: &str = r#"{"type":"object","properties":{"response":{"type":"string"}},"required":["response"],"additionalProperties":false}"#;

/// What the generic format tells the model.
pub(super) fn generic_instruction(tools: &ToolUse) -> String {
    let list: Vec<String> = tools
        .tools
        .iter()
        .map(|t| {
            format!(
                "{{\"name\": {}, \"description\": {}, \"parameters\": {}}}",
                text(&t.name),
                text(&t.description),
                t.parameters
            )
        })
        .collect();
    let how = if tools.parallel { "one or more calls" } else { "exactly one call" };
    let call = format!(
        "To call tools, reply {{\"tool_calls\": [{{\"name\": \"<tool name>\", \"arguments\": \
         {{<arguments>}}}}]}} with {how}."
    );
    let rule = match &tools.choice {
        ToolChoice::Auto => format!(
            "{call} To answer directly, reply {{\"response\": \"<your answer>\"}}. Once the \
             results you need are there, answer the user with them: do not call a tool again \
             for what a result already says."
        ),
        ToolChoice::Function(name) => format!("{call} Call the tool {name}."),
        ToolChoice::Required | ToolChoice::None => call,
    };
    format!(
        "You can call these tools (their arguments as JSON schemas):\n{}\n\nReply with one JSON \
         object. {rule} A tool's result comes back as {{\"tool_response\": …}}.",
        list.join("\n")
    )
}

/// The history for a template without tool calls: an assistant's calls become its JSON reply,
/// and the results that follow become one user turn, each named by its call's tool (results
/// follow their calls in order; the ids, random text to a model, stay out of the prompt).
pub(super) fn generic_history(messages: &[ChatMessage]) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(messages.len());
    let mut names = std::collections::HashMap::new();
    let mut results = false;
    for m in messages {
        if m.role == "tool" {
            let id = m.tool_call_id.as_deref().unwrap_or("");
            let name = names.get(id).copied().unwrap_or("");
            let result = format!(
                "{{\"tool_response\": {{\"name\": {}, \"content\": {}}}}}",
                text(name),
                text(&m.content)
            );
            match out.last_mut() {
                Some(last) if results => {
                    last.content.push('\n');
                    last.content.push_str(&result);
                }
                _ => out.push(ChatMessage::new("user", result)),
            }
            results = true;
            continue;
        }
        results = false;
        if m.tool_calls.is_empty() {
            out.push(ChatMessage { tool_calls: Vec::new(), tool_call_id: None, ..m.clone() });
            continue;
        }
        let calls: Vec<String> = m
            .tool_calls
            .iter()
            .map(|c| {
                names.insert(c.id.as_str(), c.name.as_str());
                format!(
                    "{{\"name\": {}, \"arguments\": {}}}",
                    text(&c.name),
                    if c.arguments.trim().is_empty() { "{}" } else { c.arguments.as_str() }
                )
            })
            .collect();
        out.push(ChatMessage::new(
            m.role.clone(),
            format!("{{\"tool_calls\": [{}]}}", calls.join(", ")),
        ));
    }
    out
}

/// `messages` with `text` in the system message (appended to the first, or a new one first).
pub(super) fn in_system(messages: &[ChatMessage], text: &str) -> Vec<ChatMessage> {
    let mut out = messages.to_vec();
    match out.first_mut() {
        Some(m) if m.role == "system" => {
            m.content = format!("{}\n\n{text}", m.content);
        }
        _ => out.insert(0, ChatMessage::new("system", text)),
    }
    out
}

/// `messages` with `text` (and any system message) at the start of the first user turn.
pub(super) fn in_first_user(messages: &[ChatMessage], text: &str) -> Vec<ChatMessage> {
    let mut out = messages.to_vec();
    let mut head = text.to_string();
    if out.first().is_some_and(|m| m.role == "system") {
        head = format!("{}\n\n{head}", out.remove(0).content);
    }
    match out.iter_mut().find(|m| m.role == "user") {
        Some(m) => m.content = format!("{head}\n\n{}", m.content),
        None => out.insert(0, ChatMessage::new("user", head)),
    }
    out
}
