//! Output held to a formal language: a JSON schema becomes a GBNF grammar (llama.cpp's own
//! converter), a grammar is checked by llama.cpp's parser before the generation is queued, and
//! during it llama.cpp's grammar sampler masks, at every step, each token the grammar does not
//! allow next. The grammar is kept apart from the rest of the sampler chain so that the prompt,
//! which the repeat penalty reads, never reaches it.

use super::log::capture_errors;
use crate::engine::Constraint;
use crate::error::{LlmError, LlmResult};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;

/// The GBNF grammar of a constraint, checked: `invalid-input` with llama.cpp's reason when the
/// schema cannot be converted or the grammar does not parse.
pub(super) fn checked(model: &LlamaModel, constraint: &Constraint) -> LlmResult<Constraint> {
    let checked = match constraint {
        Constraint::Grammar(g) => Constraint::Grammar(g.clone()),
        Constraint::JsonSchema(schema) => Constraint::Grammar(from_schema(schema)?),
        Constraint::Lazy { .. } => constraint.clone(),
    };
    sampler(model, &checked)?;
    Ok(checked)
}

/// The GBNF grammar of a JSON schema (llama.cpp's converter).
pub(super) fn from_schema(schema: &str) -> LlmResult<String> {
    let (gbnf, why) = capture_errors(|| llama_cpp_2::json_schema_to_grammar(schema));
    gbnf.map_err(|_| {
        // llama-cpp-2 returns only a code for the converter's exception.
        LlmError::invalid(format!(
            "the JSON schema cannot be turned into a grammar: {}",
            why.unwrap_or_else(|| "llama.cpp's converter refused it (a part it does not \
                support, or a $ref it cannot resolve)"
                .into())
        ))
    })
}

/// llama.cpp's grammar sampler for a grammar (a schema must have become one already).
pub(super) fn sampler(model: &LlamaModel, constraint: &Constraint) -> LlmResult<LlamaSampler> {
    let (sampler, why) = capture_errors(|| match constraint {
        Constraint::Grammar(gbnf) => LlamaSampler::grammar(model, gbnf, "root"),
        Constraint::Lazy { grammar, triggers } => {
            LlamaSampler::grammar_lazy(model, grammar, "root", triggers, &[])
        }
        Constraint::JsonSchema(_) => Err(llama_cpp_2::GrammarError::NullGrammar),
    });
    sampler.map_err(|e| {
        LlmError::invalid(format!(
            "the grammar does not parse: {}",
            why.unwrap_or_else(|| e.to_string()).trim()
        ))
    })
}

/// The next token at batch index `idx`: the grammar masks what it does not allow, then the
/// chain picks; both learn the token.
pub(super) fn sample(
    grammar: &mut LlamaSampler,
    chain: &mut LlamaSampler,
    ctx: &LlamaContext<'_>,
    idx: i32,
) -> LlamaToken {
    let mut candidates = LlamaTokenDataArray::from_iter(ctx.candidates_ith(idx), false);
    candidates.apply_sampler(grammar);
    candidates.apply_sampler(chain);
    let token = candidates.selected_token().unwrap_or_else(|| candidates.sample_token_greedy());
    grammar.accept(token);
    chain.accept(token);
    token
}
