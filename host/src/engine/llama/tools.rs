//! A generation with tools on the llama.cpp engine: the conversation rendered with the tools
//! by the session's (or the model's) template, in the template's tool format
//! ([`crate::tools::plan`]), and the format's grammar built with llama.cpp's schema converter.

use super::{Weights, grammar, to_llama};
use crate::engine::{Constraint, Prompt, SamplingParams, ToolChoice, ToolUse};
use crate::error::{LlmError, LlmResult};
use crate::template::ChatTemplate;
use crate::tools::{ToolFormat, ToolOutput, plan};
use llama_cpp_2::token::LlamaToken;

/// What a generation with tools starts from.
pub(super) struct Prepared {
    /// The rendered prompt's tokens.
    pub prompt: Vec<LlamaToken>,
    /// What splits the output into reply and calls.
    pub output: Option<ToolOutput>,
}

/// Render `prompt` (a conversation) with `tools`; `params` gets the grammar.
pub(super) fn prepare(
    weights: &Weights,
    session_template: Option<&ChatTemplate>,
    prompt: Prompt,
    tools: &ToolUse,
    params: &mut SamplingParams,
) -> LlmResult<Prepared> {
    let messages = match prompt {
        Prompt::Chat(m) => m,
        // Nothing to call, nothing to render: an ordinary prompt.
        other if tools.tools.is_empty() && tools.choice == ToolChoice::None => {
            return Ok(Prepared {
                prompt: weights.prompt_tokens(other, session_template)?,
                output: None,
            });
        }
        _ => return Err(LlmError::invalid("tools need a chat prompt")),
    };
    let constrained = params.constraint.is_some();
    if constrained && tools.choice != ToolChoice::None {
        return Err(LlmError::invalid("tools cannot be combined with a grammar or a JSON schema"));
    }
    let Some(template) = session_template.or_else(|| weights.chat.template()) else {
        // The same error as a chat without tools.
        weights.chat.apply(&weights.model, &messages, true)?;
        return Err(LlmError::Unsupported("the model has no chat template".into()));
    };
    let format = ToolFormat::detect(template.source());
    let mut plan = plan(format, tools, &messages, params.seed)?;
    if constrained {
        // With `none`, the caller's grammar or schema holds the reply instead of the format's.
        plan.grammar = None;
        plan.output = None;
    }
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
