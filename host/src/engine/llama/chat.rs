//! Chat prompts of the llama.cpp engine: the model's chat template — the one the user named
//! for it, else the file's `tokenizer.chat_template` — rendered as Jinja, as its authors wrote
//! it ([`crate::template`]). llama.cpp's built-in template matcher is only the fallback for a
//! file template the Jinja renderer cannot render (a template's own refusal, such as Gemma's
//! "no system role", is not overridden when the user named it).

use crate::engine::ChatMessage;
use crate::error::{LlmError, LlmResult};
use crate::template::{ChatTemplate, TemplateInput, names};
use crate::tools::ToolFormat;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;

/// How a model's conversations become prompt text.
pub(super) struct ChatFormat {
    /// The template and whether the user named it.
    template: Option<(ChatTemplate, bool)>,
    /// The file's template, for llama.cpp's matcher.
    file: Option<LlamaChatTemplate>,
    bos: String,
    eos: String,
}

impl ChatFormat {
    /// The format of `model`, with the template the user named (Jinja source), if any.
    pub(super) fn new(model: &LlamaModel, named: Option<&str>) -> Self {
        let file = model.chat_template(None).ok();
        let from_file =
            file.as_ref().and_then(|t| t.to_string().ok()).map(|s| (ChatTemplate::new(s), false));
        let template = named.map(|s| (ChatTemplate::new(s), true)).or(from_file);
        let text = |t: LlamaToken| {
            if t.0 < 0 || t.0 >= model.n_vocab() {
                return String::new();
            }
            String::from_utf8_lossy(&model.vocab().detokenize(&[t], false, true)).into_owned()
        };
        let vocab = model.vocab();
        Self { template, file, bos: text(vocab.bos()), eos: text(vocab.eos()) }
    }

    /// The beginning-of-sequence token's text (empty when the model has none).
    pub(super) fn bos(&self) -> &str {
        &self.bos
    }

    /// Render a conversation, opened for the assistant when `add_assistant`.
    pub(super) fn apply(
        &self,
        model: &LlamaModel,
        messages: &[ChatMessage],
        add_assistant: bool,
    ) -> LlmResult<String> {
        let Some((template, named)) = &self.template else {
            return Err(LlmError::Unsupported(format!(
                "the model file has no chat template; name one for it with --chat-template \
                 NAME=TEMPLATE (built in: {}; or a .jinja file, or a Jinja string)",
                names()
            )));
        };
        match self.render_with(template, messages, add_assistant, None) {
            Ok(text) => Ok(text),
            Err(e) if *named => Err(e),
            Err(e) => match self.matcher(model, messages, add_assistant) {
                Some(text) => {
                    tracing::debug!("chat template: {e}; llama.cpp's matcher rendered it instead");
                    Ok(text)
                }
                None => Err(e),
            },
        }
    }

    /// The model's template (the user's, else the file's), if it has one.
    pub(super) fn template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref().map(|(t, _)| t)
    }

    /// Render a conversation with `template` (a session's own, or the model's) and this
    /// model's tokens, with `tools` (JSON text) for templates that render them.
    pub(super) fn render_with(
        &self,
        template: &ChatTemplate,
        messages: &[ChatMessage],
        add_assistant: bool,
        tools: Option<&str>,
    ) -> LlmResult<String> {
        let messages = crate::tools::history_for(ToolFormat::detect(template.source()), messages);
        template.render(&TemplateInput {
            messages: &messages,
            add_generation_prompt: add_assistant,
            bos_token: &self.bos,
            eos_token: &self.eos,
            tools,
        })
    }

    /// llama.cpp's built-in matcher on the file's template.
    fn matcher(
        &self,
        model: &LlamaModel,
        messages: &[ChatMessage],
        add_assistant: bool,
    ) -> Option<String> {
        let file = self.file.as_ref()?;
        let messages = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()).ok())
            .collect::<Option<Vec<_>>>()?;
        model.apply_chat_template(file, &messages, add_assistant).ok()
    }
}
