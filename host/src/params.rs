//! What callers may ask for, and the checks that turn a request into engine parameters.
//!
//! Every front end (the WIT glue today; HTTP, native messaging and `wasi:nn` next) fills these
//! request types from its own wire format and calls the same `resolve`, so defaults and limits
//! mean the same everywhere and bad values are refused before any engine sees them.

use crate::engine::{
    ChatMessage, Constraint, LoadOptions, Prompt, SamplingParams, SessionOptions, ToolChoice,
    ToolUse,
};
use crate::error::{LlmError, LlmResult};

/// Limits on what one caller (a guest) may ask of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmLimits {
    /// Largest context a session may have (also never above the model's training context).
    pub max_context_size: u32,
    /// Most bytes of text in one argument (a prompt, a message list, a text to embed).
    pub max_input_bytes: usize,
    /// Most live sessions per guest.
    pub max_sessions: usize,
    /// Most texts in one `embed` call.
    pub max_embed_texts: usize,
    /// Most `tabagent:llm` resources (models, sessions, completions) alive at once.
    pub max_resources: usize,
}

impl Default for LlmLimits {
    fn default() -> Self {
        Self {
            max_context_size: 32_768,
            max_input_bytes: 4 << 20,
            max_sessions: 64,
            max_embed_texts: 1024,
            max_resources: 10_000,
        }
    }
}

impl LlmLimits {
    /// Refuse a text argument over [`LlmLimits::max_input_bytes`].
    pub fn check_size(&self, what: &str, len: usize) -> LlmResult<()> {
        if len > self.max_input_bytes {
            return Err(LlmError::invalid(format!(
                "{what} is {len} bytes; the limit is {}",
                self.max_input_bytes
            )));
        }
        Ok(())
    }

    /// Check a prompt: size, emptiness and NUL characters.
    pub fn check_prompt(&self, prompt: &Prompt) -> LlmResult<()> {
        let bytes = prompt.byte_len();
        if bytes > self.max_input_bytes {
            return Err(LlmError::invalid(format!(
                "the prompt is {bytes} bytes; the limit is {}",
                self.max_input_bytes
            )));
        }
        match prompt {
            Prompt::Text(t) => {
                check_no_nul("the prompt", t)?;
                if t.is_empty() {
                    return Err(LlmError::invalid("the prompt is empty"));
                }
            }
            Prompt::Tokens(_) => {}
            Prompt::Chat(m) => {
                if m.is_empty() {
                    return Err(LlmError::invalid("the conversation is empty"));
                }
                check_chat(m)?;
            }
        }
        Ok(())
    }

    /// Check the texts of an `embed` call: count, size, none empty, no NUL characters.
    pub fn check_embed(&self, texts: &[String]) -> LlmResult<()> {
        if texts.is_empty() {
            return Err(LlmError::invalid("embed needs at least one text"));
        }
        if texts.len() > self.max_embed_texts {
            return Err(LlmError::invalid(format!(
                "embed takes at most {} texts per call, not {}",
                self.max_embed_texts,
                texts.len()
            )));
        }
        self.check_size("the texts", texts.iter().map(String::len).sum())?;
        for (i, t) in texts.iter().enumerate() {
            if t.is_empty() {
                return Err(LlmError::invalid(format!("text {i} is empty")));
            }
            check_no_nul("a text", t)?;
        }
        Ok(())
    }
}

/// Refuse text with a NUL character (llama.cpp's C API would cut it there).
pub fn check_no_nul(what: &str, text: &str) -> LlmResult<()> {
    if text.contains('\0') {
        return Err(LlmError::invalid(format!("{what} contains a NUL character")));
    }
    Ok(())
}

/// Refuse chat messages with NUL characters in a role or content.
pub fn check_chat(messages: &[ChatMessage]) -> LlmResult<()> {
    for m in messages {
        check_no_nul("a chat message", &m.content)?;
        check_no_nul("a chat role", &m.role)?;
        for c in &m.tool_calls {
            check_no_nul("a tool call", &c.id)?;
            check_no_nul("a tool call", &c.name)?;
            check_no_nul("a tool call", &c.arguments)?;
        }
        if let Some(id) = &m.tool_call_id {
            check_no_nul("a tool call id", id)?;
        }
    }
    Ok(())
}

/// Load options as asked for: every field optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadRequest {
    /// Layers to offload to GPUs (default: all when the engine has a GPU, else none).
    pub gpu_layers: Option<u32>,
    /// Map the file instead of reading it (default: true).
    pub use_mmap: Option<bool>,
    /// Lock the weights in RAM (default: false).
    pub use_mlock: Option<bool>,
}

impl LoadRequest {
    /// Resolve defaults; `has_gpu` says whether the engine has a GPU to offload to.
    pub fn resolve(self, has_gpu: bool) -> LoadOptions {
        LoadOptions {
            gpu_layers: self.gpu_layers.unwrap_or(if has_gpu { u32::MAX } else { 0 }),
            use_mmap: self.use_mmap.unwrap_or(true),
            use_mlock: self.use_mlock.unwrap_or(false),
            chat_template: None,
        }
    }
}

/// Session options as asked for: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRequest {
    /// Context size in tokens (default: min(4096, the model's training context)).
    pub context_size: Option<u32>,
    /// Prompt batch size (default: min(512, the context size)).
    pub batch_size: Option<u32>,
    /// CPU threads (default: the host's default, physical cores).
    pub threads: Option<u32>,
    /// Default sampling seed of the session (default: random).
    pub seed: Option<u64>,
    /// The chat template of the session's chat prompts: a built-in name or a Jinja string
    /// (default: the model's).
    pub chat_template: Option<String>,
}

impl SessionRequest {
    /// Resolve defaults and check against the model's training context and the limits.
    pub fn resolve(
        &self,
        model_context: u32,
        limits: &LlmLimits,
        default_threads: u32,
    ) -> LlmResult<SessionOptions> {
        let max_ctx = model_context.min(limits.max_context_size).max(1);
        let context_size = self.context_size.unwrap_or(4096.min(max_ctx));
        if context_size < 16 {
            return Err(LlmError::invalid(format!(
                "context-size {context_size} is too small; use at least 16"
            )));
        }
        if context_size > max_ctx {
            return Err(LlmError::invalid(format!(
                "context-size {context_size} is above the limit of {max_ctx} (model trained for {model_context})"
            )));
        }
        let batch_size = self.batch_size.unwrap_or(512.min(context_size));
        if batch_size == 0 || batch_size > context_size {
            return Err(LlmError::invalid(format!(
                "batch-size {batch_size} must be between 1 and the context size ({context_size})"
            )));
        }
        let hw_threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let threads = self.threads.unwrap_or(default_threads);
        if threads == 0 || threads > hw_threads {
            return Err(LlmError::invalid(format!(
                "threads {threads} must be between 1 and the {hw_threads} hardware threads of this host"
            )));
        }
        let chat_template = match &self.chat_template {
            Some(t) => Some(crate::template::ChatTemplate::named(t)?.source().to_string()),
            None => None,
        };
        Ok(SessionOptions { context_size, batch_size, threads, cache_scope: None, chat_template })
    }

    /// The session's seed: the one asked for, or a fresh random one.
    pub fn seed_or_random(&self) -> u64 {
        self.seed.unwrap_or_else(random_seed)
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Sampling options as asked for: every field optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplingRequest {
    /// Most tokens to generate (default 256).
    pub max_tokens: Option<u32>,
    /// Temperature, >= 0 (default 0.8; 0 is greedy).
    pub temperature: Option<f32>,
    /// Top-k, 0 disables (default 40).
    pub top_k: Option<u32>,
    /// Top-p in (0, 1] (default 0.95).
    pub top_p: Option<f32>,
    /// Min-p in [0, 1] (default 0.05).
    pub min_p: Option<f32>,
    /// Repeat penalty > 0, 1 disables (default 1.0).
    pub repeat_penalty: Option<f32>,
    /// Tokens the repeat penalty looks back over (default 64).
    pub repeat_window: Option<u32>,
    /// Seed (default: the session's).
    pub seed: Option<u64>,
    /// Stop sequences: at most 16, each 1 to 256 bytes.
    pub stop: Vec<String>,
    /// A grammar or JSON schema the output must match (at most 1 MiB).
    pub constraint: Option<Constraint>,
    /// Tools the model may call (a chat prompt only; not with a constraint unless the choice
    /// is `none`).
    pub tools: Option<ToolUse>,
}

/// Most tools one generation may be given.
pub const MAX_TOOLS: usize = 128;

/// Largest grammar or JSON schema, in bytes.
pub const MAX_CONSTRAINT_BYTES: usize = 1 << 20;

impl SamplingRequest {
    /// Resolve defaults (the seed from the session's) and check every value.
    pub fn resolve(self, session_seed: u64) -> LlmResult<SamplingParams> {
        let p = SamplingParams {
            max_tokens: self.max_tokens.unwrap_or(256),
            temperature: self.temperature.unwrap_or(0.8),
            top_k: self.top_k.unwrap_or(40),
            top_p: self.top_p.unwrap_or(0.95),
            min_p: self.min_p.unwrap_or(0.05),
            repeat_penalty: self.repeat_penalty.unwrap_or(1.0),
            repeat_window: self.repeat_window.unwrap_or(64),
            seed: self.seed.unwrap_or(session_seed),
            stop: self.stop,
            pieces: true,
            deadline: None,
            constraint: self.constraint,
            tools: self.tools.filter(|t| !t.tools.is_empty() || t.choice != ToolChoice::Auto),
            render_special: false,
        };
        if p.max_tokens == 0 {
            return Err(LlmError::invalid("max-tokens must be at least 1"));
        }
        if !p.temperature.is_finite() || p.temperature < 0.0 {
            return Err(LlmError::invalid(format!(
                "temperature must be a finite number >= 0, not {}",
                p.temperature
            )));
        }
        if !(p.top_p > 0.0 && p.top_p <= 1.0) {
            return Err(LlmError::invalid(format!("top-p must be in (0, 1], not {}", p.top_p)));
        }
        if !(0.0..=1.0).contains(&p.min_p) {
            return Err(LlmError::invalid(format!("min-p must be in [0, 1], not {}", p.min_p)));
        }
        if !p.repeat_penalty.is_finite() || p.repeat_penalty <= 0.0 {
            return Err(LlmError::invalid(format!(
                "repeat-penalty must be a finite number > 0, not {}",
                p.repeat_penalty
            )));
        }
        if p.stop.len() > 16 {
            return Err(LlmError::invalid(format!(
                "at most 16 stop sequences, not {}",
                p.stop.len()
            )));
        }
        for s in &p.stop {
            if s.is_empty() || s.len() > 256 {
                return Err(LlmError::invalid("stop sequences must be 1 to 256 bytes long"));
            }
        }
        match &p.constraint {
            Some(Constraint::Grammar(g) | Constraint::JsonSchema(g))
                if g.len() > MAX_CONSTRAINT_BYTES =>
            {
                return Err(LlmError::invalid(format!(
                    "a grammar or JSON schema may have at most {MAX_CONSTRAINT_BYTES} bytes"
                )));
            }
            Some(Constraint::JsonSchema(s)) => {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(s) {
                    return Err(LlmError::invalid(format!("the JSON schema is not JSON: {e}")));
                }
            }
            _ => {}
        }
        if let Some(t) = &p.tools {
            check_tools(t)?;
            if p.constraint.is_some() && t.choice != ToolChoice::None {
                return Err(LlmError::invalid(
                    "tools cannot be combined with a grammar or a JSON schema",
                ));
            }
        }
        Ok(p)
    }
}

/// Check tool definitions and the choice: names as OpenAI allows them (letters, digits, `_`,
/// `-`; 1 to 64) and each once, parameters a JSON schema object, a named choice among them.
pub fn check_tools(t: &ToolUse) -> LlmResult<()> {
    if t.tools.len() > MAX_TOOLS {
        return Err(LlmError::invalid(format!("at most {MAX_TOOLS} tools, not {}", t.tools.len())));
    }
    let size: usize =
        t.tools.iter().map(|t| t.name.len() + t.description.len() + t.parameters.len()).sum();
    if size > MAX_CONSTRAINT_BYTES {
        return Err(LlmError::invalid(format!(
            "the tools take {size} bytes; the limit is {MAX_CONSTRAINT_BYTES}"
        )));
    }
    for (i, tool) in t.tools.iter().enumerate() {
        let ok = (1..=64).contains(&tool.name.len())
            && tool.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(LlmError::invalid(format!(
                "tool name {:?} must be 1 to 64 letters, digits, '_' or '-'",
                tool.name
            )));
        }
        if t.tools[..i].iter().any(|o| o.name == tool.name) {
            return Err(LlmError::invalid(format!("two tools are named {}", tool.name)));
        }
        check_no_nul("a tool description", &tool.description)?;
        match serde_json::from_str::<serde_json::Value>(&tool.parameters) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => {
                return Err(LlmError::invalid(format!(
                    "the parameters of tool {} must be a JSON schema object",
                    tool.name
                )));
            }
            Err(e) => {
                return Err(LlmError::invalid(format!(
                    "the parameters of tool {} are not JSON: {e}",
                    tool.name
                )));
            }
        }
    }
    match &t.choice {
        ToolChoice::Required if t.tools.is_empty() => {
            Err(LlmError::invalid("tool choice 'required' needs at least one tool"))
        }
        ToolChoice::Function(name) if !t.tools.iter().any(|x| &x.name == name) => Err(
            LlmError::invalid(format!("tool choice names {name}, which is not among the tools")),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greedy(max: u32) -> SamplingRequest {
        SamplingRequest { max_tokens: Some(max), temperature: Some(0.0), ..Default::default() }
    }

    #[test]
    fn a_session_template_is_a_built_in_name_or_a_jinja_string() {
        let limits = LlmLimits::default();
        let named =
            |t: &str| SessionRequest { chat_template: Some(t.into()), ..Default::default() };
        let o = named("chatml").resolve(4096, &limits, 1).unwrap();
        assert!(o.chat_template.unwrap().contains("<|im_start|>"));
        let o = named("{{ messages[0].content }}").resolve(4096, &limits, 1).unwrap();
        assert_eq!(o.chat_template.as_deref(), Some("{{ messages[0].content }}"));
        let e = named("alpaca").resolve(4096, &limits, 1).unwrap_err();
        assert_eq!(e.kind(), "invalid-input");
        assert!(e.to_string().contains("chatml, gemma"), "{e}");
    }

    #[test]
    fn session_options_are_resolved_and_checked() {
        let limits = LlmLimits::default();
        let opts = |c, b, t| SessionRequest {
            context_size: c,
            batch_size: b,
            threads: t,
            ..Default::default()
        };
        let d = opts(None, None, None).resolve(8192, &limits, 1).unwrap();
        assert_eq!((d.context_size, d.batch_size, d.threads), (4096, 512, 1));
        let small = opts(None, None, None).resolve(128, &limits, 1).unwrap();
        assert_eq!((small.context_size, small.batch_size), (128, 128));
        for (c, b, t) in [
            (Some(0), None, None),
            (Some(8), None, None),
            (Some(9000), None, None),
            (Some(256), Some(0), None),
            (Some(256), Some(257), None),
            (None, None, Some(0)),
            (None, None, Some(u32::MAX)),
        ] {
            let e = opts(c, b, t).resolve(8192, &limits, 1).unwrap_err();
            assert_eq!(e.kind(), "invalid-input", "{c:?} {b:?} {t:?}");
        }
        let capped = LlmLimits { max_context_size: 1024, ..LlmLimits::default() };
        assert!(opts(Some(2048), None, None).resolve(8192, &capped, 1).is_err());
    }

    #[test]
    fn tools_are_checked() {
        use crate::engine::Tool;
        let tool = |name: &str, parameters: &str| Tool {
            name: name.into(),
            description: String::new(),
            parameters: parameters.into(),
        };
        let with = |tools: Vec<Tool>, choice: ToolChoice, constraint: Option<Constraint>| {
            SamplingRequest {
                tools: Some(ToolUse { tools, choice, parallel: true }),
                constraint,
                ..Default::default()
            }
            .resolve(1)
        };
        let ok = || vec![tool("get_weather", r#"{"type":"object"}"#)];
        assert!(with(ok(), ToolChoice::Auto, None).is_ok());
        let err = |r: LlmResult<SamplingParams>| r.unwrap_err().to_string();
        assert!(err(with(vec![tool("a b", "{}")], ToolChoice::Auto, None)).contains("letters"));
        assert!(
            err(with(vec![tool("a", "{}"), tool("a", "{}")], ToolChoice::Auto, None))
                .contains("two tools")
        );
        assert!(err(with(vec![tool("a", "[]")], ToolChoice::Auto, None)).contains("schema object"));
        assert!(err(with(vec![tool("a", "{")], ToolChoice::Auto, None)).contains("not JSON"));
        assert!(err(with(ok(), ToolChoice::Function("x".into()), None)).contains("not among"));
        assert!(err(with(Vec::new(), ToolChoice::Required, None)).contains("at least one"));
        let many = (0..=MAX_TOOLS).map(|i| tool(&format!("t{i}"), "{}")).collect();
        assert!(err(with(many, ToolChoice::Auto, None)).contains("at most"));
        // A grammar and tools do not mix, unless no tool may be called.
        let g = || Some(Constraint::Grammar("root ::= \"a\"".into()));
        assert!(err(with(ok(), ToolChoice::Auto, g())).contains("combined"));
        assert!(with(ok(), ToolChoice::None, g()).is_ok());
        // No tools and the default choice: no tools at all.
        assert!(with(Vec::new(), ToolChoice::Auto, None).unwrap().tools.is_none());
    }

    #[test]
    fn sampling_options_are_resolved_and_checked() {
        let p = greedy(10).resolve(5).unwrap();
        assert_eq!((p.max_tokens, p.temperature, p.seed), (10, 0.0, 5));
        let d = SamplingRequest::default().resolve(1).unwrap();
        assert_eq!(
            (d.max_tokens, d.temperature, d.top_k, d.top_p, d.min_p),
            (256, 0.8, 40, 0.95, 0.05)
        );
        type Mutate = Box<dyn Fn(&mut SamplingRequest)>;
        let bad: Vec<Mutate> = vec![
            Box::new(|o| o.temperature = Some(f32::NAN)),
            Box::new(|o| o.temperature = Some(-0.5)),
            Box::new(|o| o.temperature = Some(f32::INFINITY)),
            Box::new(|o| o.top_p = Some(0.0)),
            Box::new(|o| o.top_p = Some(1.01)),
            Box::new(|o| o.top_p = Some(f32::NAN)),
            Box::new(|o| o.min_p = Some(1.5)),
            Box::new(|o| o.repeat_penalty = Some(0.0)),
            Box::new(|o| o.max_tokens = Some(0)),
            Box::new(|o| o.stop = vec![String::new()]),
            Box::new(|o| o.stop = vec!["s".repeat(257)]),
            Box::new(|o| o.stop = vec!["a".into(); 17]),
        ];
        for (i, f) in bad.iter().enumerate() {
            let mut o = greedy(10);
            f(&mut o);
            assert_eq!(o.resolve(0).unwrap_err().kind(), "invalid-input", "case {i}");
        }
    }

    #[test]
    fn prompts_and_embed_inputs_are_checked() {
        let limits = LlmLimits { max_input_bytes: 16, ..LlmLimits::default() };
        let kind = |p: Prompt| limits.check_prompt(&p).map_err(|e| e.kind());
        assert_eq!(kind(Prompt::Text("hi".into())), Ok(()));
        assert_eq!(kind(Prompt::Text(String::new())), Err("invalid-input"));
        assert_eq!(kind(Prompt::Text("a\0b".into())), Err("invalid-input"));
        assert_eq!(kind(Prompt::Text("y".repeat(17))), Err("invalid-input"));
        assert_eq!(kind(Prompt::Chat(Vec::new())), Err("invalid-input"));
        assert_eq!(kind(Prompt::Tokens(vec![1, 2, 3, 4, 5])), Err("invalid-input"));
        assert!(limits.check_embed(&[]).is_err());
        assert!(limits.check_embed(&["".into()]).is_err());
        assert!(limits.check_embed(&["ok".into()]).is_ok());
    }
}
