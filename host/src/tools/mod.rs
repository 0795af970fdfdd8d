//! Tool calls: a generation given tools ([`ToolUse`]) renders them into the prompt, holds the
//! output to a call format with a grammar, and parses the calls out of the text.
//!
//! The format is the model's own where its chat template defines one ([`ToolFormat::detect`]):
//! Hermes/Qwen `<tool_call>` blocks, Llama 3.x's bare JSON object, Mistral's `[TOOL_CALLS]`
//! list — the template renders the tools and the calls of earlier turns itself, as the model
//! was trained. A template without one gets the generic format: the tools are described in the
//! system message, earlier calls and results are written as JSON turns, and the reply is one
//! JSON object, `{"tool_calls": [...]}` or `{"response": "..."}`.
//!
//! What the model may write is held by a grammar built from the tools' JSON schemas
//! ([`CallGrammar`]): from the first token for `required` or a named tool (and for the generic
//! format, which is JSON either way); from the format's marker on for `auto` with a native
//! format, so the model may still answer in words. [`ToolOutput`] then splits the text into the
//! reply, streamed as it comes, and the calls, each with an id.

mod output;
mod prompt;

pub use output::ToolOutput;

use crate::engine::{ChatMessage, Prompt, SamplingParams, ToolChoice, ToolUse};
use crate::error::{LlmError, LlmResult};
use std::borrow::Cow;

/// How a model writes tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks (Hermes, Qwen 2.5).
    Hermes,
    /// One bare `{"name": …, "parameters": {…}}` object (Llama 3.1 to 3.3).
    Llama3,
    /// `[TOOL_CALLS][{"name": …, "arguments": {…}, "id": …}]` (Mistral Nemo and Small).
    Mistral,
    /// No format of the template's own: tools described in the system message and the reply
    /// held to `{"tool_calls": [{"name": …, "arguments": {…}}]}` or `{"response": "…"}`.
    Generic,
}

impl ToolFormat {
    /// The format a chat template (Jinja source) renders tool calls in.
    pub fn detect(template: &str) -> Self {
        if template.contains("<tool_call>") {
            Self::Hermes
        } else if template.contains("[TOOL_CALLS]") {
            Self::Mistral
        } else if template.contains("<|start_header_id|>") && template.contains("\"parameters\"") {
            Self::Llama3
        } else {
            Self::Generic
        }
    }

    /// Whether the template renders the tools and the calls itself.
    pub fn native(self) -> bool {
        self != Self::Generic
    }

    /// The key of a call's arguments.
    fn arguments_key(self) -> &'static str {
        if self == Self::Llama3 { "parameters" } else { "arguments" }
    }

    /// The text a call starts with, for formats that mark calls.
    fn marker(self) -> Option<&'static str> {
        match self {
            Self::Hermes => Some("<tool_call>"),
            Self::Mistral => Some("[TOOL_CALLS]"),
            Self::Llama3 | Self::Generic => None,
        }
    }
}

/// The grammar the output is held to: `prefix call (separator call)* suffix`, where a call is
/// what [`CallGrammar::schema`] allows (the repetition only with parallel calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallGrammar {
    /// JSON schema (as JSON text) of one call, or of the whole output in the generic format.
    pub schema: String,
    /// Literal text before the first call.
    pub prefix: String,
    /// Literal text between calls; `None` allows one call only.
    pub separator: Option<String>,
    /// Literal text after the last call.
    pub suffix: String,
    /// The grammar holds only from this text on (the output before it is free).
    pub trigger: Option<String>,
}

impl CallGrammar {
    /// The whole GBNF grammar, given the grammar of [`CallGrammar::schema`] (llama.cpp's
    /// converter output, whose start rule is `root`).
    pub fn gbnf(&self, call: &str) -> String {
        if self.prefix.is_empty() && self.suffix.is_empty() && self.separator.is_none() {
            return call.to_string();
        }
        let mut out = String::new();
        for line in call.lines() {
            match line.strip_prefix("root ::=") {
                Some(rest) => out.push_str(&format!("tool-call ::={rest}\n")),
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        let more = match &self.separator {
            Some(sep) => format!(" ({} tool-call)*", literal(sep)),
            None => String::new(),
        };
        let lit = |s: &str| if s.is_empty() { String::new() } else { format!("{} ", literal(s)) };
        out.push_str(&format!(
            "root ::= {}tool-call{more} {}\n",
            lit(&self.prefix),
            literal(&self.suffix)
        ));
        out
    }
}

/// A GBNF string literal.
fn literal(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How one generation with tools runs.
#[derive(Debug)]
pub struct ToolPlan {
    /// The conversation to render.
    pub messages: Vec<ChatMessage>,
    /// The same with the tools' description in the first user turn instead of a system
    /// message, for templates that refuse a system role (generic format only).
    pub without_system: Option<Vec<ChatMessage>>,
    /// The tools for the template (`tools`, as OpenAI's list), for native formats.
    pub tools_json: Option<String>,
    /// The grammar to hold the output to; `None` with tool choice `none`.
    pub grammar: Option<CallGrammar>,
    /// Splits the output into the reply and the calls; `None` with tool choice `none`.
    pub output: Option<ToolOutput>,
}

/// Plan a generation with `tools` over `messages`, in `format`; `seed` makes the call ids.
pub fn plan(
    format: ToolFormat,
    tools: &ToolUse,
    messages: &[ChatMessage],
    seed: u64,
) -> LlmResult<ToolPlan> {
    let offered: Vec<_> = match &tools.choice {
        ToolChoice::Function(name) => tools.tools.iter().filter(|t| &t.name == name).collect(),
        _ => tools.tools.iter().collect(),
    };
    let none = tools.choice == ToolChoice::None;
    let names = offered.iter().map(|t| t.name.clone()).collect();
    let output = (!none).then(|| ToolOutput::new(format, names, seed));
    if format.native() {
        let grammar = (!none).then(|| prompt::native_grammar(format, tools, &offered));
        return Ok(ToolPlan {
            messages: messages.to_vec(),
            without_system: None,
            // The model sees every tool, as with OpenAI's API; the grammar allows the named one.
            tools_json: (!none)
                .then(|| prompt::tools_json(&tools.tools.iter().collect::<Vec<_>>())),
            grammar,
            output,
        });
    }
    let history = prompt::generic_history(messages);
    if none {
        // After tool turns written as JSON, the reply is held to the format's answer, so that
        // it comes in words rather than in imitation of those turns.
        let after_tools = has_tool_turns(messages);
        return Ok(ToolPlan {
            messages: history,
            without_system: None,
            tools_json: None,
            grammar: after_tools.then(prompt::generic_answer),
            output: after_tools.then(|| ToolOutput::new(format, Vec::new(), seed)),
        });
    }
    let instruction = prompt::generic_instruction(tools);
    Ok(ToolPlan {
        messages: prompt::in_system(&history, &instruction),
        without_system: Some(prompt::in_first_user(&history, &instruction)),
        tools_json: None,
        grammar: Some(prompt::generic_grammar(tools, &offered)),
        output,
    })
}

/// What a generation has to do with tools, for any engine: its tools and conversation, or
/// the prompt back when there is nothing to do. A conversation with tool turns and no tools
/// goes the tools' way with choice `none`, so that a template without a tool format gets them
/// written as it can read them. Tools without a chat prompt are refused (unless there is
/// nothing to call), and so are tools with a grammar or schema unless the choice is `none`.
pub fn take(
    prompt: Prompt,
    params: &mut SamplingParams,
) -> LlmResult<Result<(ToolUse, Vec<ChatMessage>), Prompt>> {
    let tools = match (params.tools.take(), &prompt) {
        (Some(t), _) => t,
        (None, Prompt::Chat(m)) if has_tool_turns(m) => {
            ToolUse { choice: ToolChoice::None, ..ToolUse::default() }
        }
        (None, _) => return Ok(Err(prompt)),
    };
    let messages = match prompt {
        Prompt::Chat(m) => m,
        // Nothing to call, nothing to render: an ordinary prompt.
        other if tools.tools.is_empty() && tools.choice == ToolChoice::None => {
            return Ok(Err(other));
        }
        _ => return Err(LlmError::invalid("tools need a chat prompt")),
    };
    if params.constraint.is_some() && tools.choice != ToolChoice::None {
        return Err(LlmError::invalid("tools cannot be combined with a grammar or a JSON schema"));
    }
    Ok(Ok((tools, messages)))
}

/// [`plan`] for a generation with `params`: with choice `none` and a grammar or schema of the
/// caller's, that holds the reply instead of the format's (no grammar, no output split).
pub fn plan_for(
    format: ToolFormat,
    tools: &ToolUse,
    messages: &[ChatMessage],
    params: &SamplingParams,
) -> LlmResult<ToolPlan> {
    let mut plan = plan(format, tools, messages, params.seed)?;
    if params.constraint.is_some() {
        plan.grammar = None;
        plan.output = None;
    }
    Ok(plan)
}

/// A conversation as a template in `format` renders it: as it is for a native format, with
/// its tool calls and results written as JSON turns otherwise.
pub fn history_for(format: ToolFormat, messages: &[ChatMessage]) -> Cow<'_, [ChatMessage]> {
    if format.native() || !has_tool_turns(messages) {
        Cow::Borrowed(messages)
    } else {
        Cow::Owned(prompt::generic_history(messages))
    }
}

/// Whether a conversation has tool calls or results in it.
pub fn has_tool_turns(messages: &[ChatMessage]) -> bool {
    messages
        .iter()
        .any(|m| !m.tool_calls.is_empty() || m.tool_call_id.is_some() || m.role == "tool")
}

#[cfg(test)]
mod tests;
