//! Conversations: messages, tools, and the calls a model makes.

use crate::bindings::tabagent::llm::inference::{self as raw_inf, Generation};
use crate::bindings::tabagent::llm::models::{self as raw_models, ToolCall};

/// One turn of a conversation.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool`, …
    pub role: String,
    /// The text (a tool's result, for `tool`).
    pub content: String,
    /// The tool calls the assistant made in this turn.
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the id of the call it answers.
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into(), ..Self::default() }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }

    /// The assistant's turn a generation was: its text and its tool calls, to add to the
    /// history before the tools' results.
    pub fn from_generation(g: &Generation) -> Self {
        Self { tool_calls: g.tool_calls.clone(), ..Self::assistant(g.text.clone()) }
    }

    /// A tool's result for the call with id `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self { tool_call_id: Some(call_id.into()), ..Self::new("tool", content) }
    }
}

pub(crate) fn raw_messages(messages: &[Message]) -> Vec<raw_models::ChatMessage> {
    messages
        .iter()
        .map(|m| raw_models::ChatMessage {
            role: m.role.clone(),
            content: m.content.clone(),
            tool_calls: m.tool_calls.clone(),
            tool_call_id: m.tool_call_id.clone(),
        })
        .collect()
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// The name its calls give: letters, digits, `_` and `-`, at most 64.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// A JSON schema of its arguments (an object), as JSON text.
    pub parameters: String,
}

impl Tool {
    /// A tool with a name, a description and a JSON schema of its arguments.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: impl Into<String>,
    ) -> Self {
        Self { name: name.into(), description: description.into(), parameters: parameters.into() }
    }

    pub(crate) fn to_raw(&self) -> raw_inf::Tool {
        raw_inf::Tool {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: self.parameters.clone(),
        }
    }
}
