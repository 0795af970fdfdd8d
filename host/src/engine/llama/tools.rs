//! A generation with tools on the llama.cpp engine: the conversation rendered with the tools
//! by the session's (or the model's) template, in the template's tool format
//! ([`crate::tools::plan`]), and the format's grammar built with llama.cpp's schema converter.

use super::{Weights, grammar, to_llama};
use crate::engine::{ChatMessage, Constraint, SamplingParams, ToolUse};
use crate::error::{LlmError, LlmResult};
use crate::template::ChatTemplate;
use crate::tools::{ToolFormat, ToolOutput, plan_for};
use llama_cpp_2::token::LlamaToken;

/// What a generation with tools starts from.
pub(super) struct Prepared {
    /// The rendered prompt's tokens.
    pub prompt: Vec<LlamaToken>,
    /// What splits the output into reply and calls.
    pub output: Option<ToolOutput>,
}

/// Render a conversation with `tools` (as [`crate::tools::take`] gave them); `params` gets
/// the grammar.
pub(super) fn prepare(
    weights: &Weights,
    session_template: Option<&ChatTemplate>,
    messages: &[ChatMessage],
    tools: &ToolUse,
    params: &mut SamplingParams,
) -> LlmResult<Prepared> {
    let Some(template) = session_template.or_else(|| weights.chat.template()) else {
        // The same error as a chat without tools.
        weights.chat.apply(&weights.model, messages, true)?;
        return Err(LlmError::Unsupported("the model has no chat template".into()));
    };
    let format = ToolFormat::detect(template.source());
    let plan = plan_for(format, tools, messages, params)?;
    let render = |m| weights.chat.render_with(template, m, true, plan.tools_json.as_deref());
    let text = match (render(&plan.messages), &plan.without_system) {
        (Ok(text), _) => text,
        // A template that refuses a system role gets the tools in the first user turn.
        (Err(e), Some(other)) => render(other).map_err(|_| e)?,
        (Err(e), None) => return Err(e),
    };
    let prompt = to_llama(&weights.chat_tokens(&text)?);
    if let Some(g) = &plan.grammar {
        let gbnf = g.gbnf(&grammar::from_schema(&g.schema)?);
        params.constraint = Some(match &g.trigger {
            Some(t) => Constraint::Lazy { grammar: gbnf, triggers: vec![t.clone()] },
            None => Constraint::Grammar(gbnf),
        });
        params.render_special = format.native();
    }
    tracing::debug!(?format, grammar = ?params.constraint, "a generation with tools");
    Ok(Prepared { prompt, output: plan.output })
}
