//! OpenAI's request fields, read and checked, and its error shape. Every refusal names the
//! field (`param`) and says what was wrong.

use serde_json::{Map, Value, json};
use tabagent_guest::Error;

/// An error answer: status, OpenAI's `type`, `param` and `code`, and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    pub message: String,
}

impl ApiError {
    /// 400: a bad request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            param: None,
            code: None,
            message: message.into(),
        }
    }

    /// 400 naming the field.
    pub fn field(param: &str, message: impl Into<String>) -> Self {
        Self { param: Some(param.to_string()), ..Self::invalid(message) }
    }

    /// 400: a field with a feature this server does not have.
    pub fn unsupported(param: &str, message: impl Into<String>) -> Self {
        Self { code: Some("unsupported_parameter"), ..Self::field(param, message) }
    }

    /// 404: a model that was not granted.
    pub fn no_model(name: &str) -> Self {
        Self {
            status: 404,
            param: Some("model".into()),
            code: Some("model_not_found"),
            message: format!(
                "The model '{name}' does not exist or you do not have access to it (granted: {})",
                tabagent_guest::granted_models().join(", ")
            ),
            ..Self::invalid("")
        }
    }

    /// 404: an unknown route.
    pub fn route(path: &str) -> Self {
        Self {
            status: 404,
            code: Some("unknown_url"),
            message: format!("Unknown request URL: {path}"),
            ..Self::invalid("")
        }
    }

    /// 405: a route answered with another method.
    pub fn method(path: &str, allowed: &str) -> Self {
        Self {
            status: 405,
            code: Some("method_not_allowed"),
            message: format!("{path} answers {allowed} only"),
            ..Self::invalid("")
        }
    }

    /// 413: a body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self {
            status: 413,
            code: Some("request_too_large"),
            message: format!("the request body is larger than {limit} bytes"),
            ..Self::invalid("")
        }
    }

    /// The error as OpenAI's JSON.
    pub fn to_json(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl From<Error> for ApiError {
    /// The model interface's errors: bad input is the client's (400), limits are the server's
    /// at capacity (503), the rest are real failures (500).
    fn from(e: Error) -> Self {
        let (status, kind, code) = match &e {
            Error::InvalidInput(m) if m.contains("context") => {
                (400, "invalid_request_error", Some("context_length_exceeded"))
            }
            Error::InvalidInput(_) | Error::Unsupported(_) => (400, "invalid_request_error", None),
            Error::NotGranted(_) | Error::NotFound(_) => {
                (404, "invalid_request_error", Some("model_not_found"))
            }
            // The request ran past the server's time limit: not a busy server to retry later.
            Error::ResourceExhausted(m) if m.contains("deadline") => {
                (500, "server_error", Some("timeout"))
            }
            Error::ResourceExhausted(_) => (503, "server_error", Some("server_busy")),
            Error::Unloaded(_) | Error::Runtime(_) => (500, "server_error", None),
        };
        Self { status, kind, param: None, code, message: e.to_string() }
    }
}

/// A parsed JSON body.
pub struct Body(Map<String, Value>);

impl Body {
    /// Parse a request body: it must be a JSON object.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| {
            ApiError::invalid(format!("We could not parse the JSON body of your request: {e}"))
        })?;
        match v {
            Value::Object(m) => Ok(Self(m)),
            _ => Err(ApiError::invalid("The request body must be a JSON object")),
        }
    }

    /// A field, `None` when absent or null.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A required string.
    pub fn string(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(ApiError::field(name, format!("'{name}' must be a string"))),
            None => Err(ApiError::field(name, format!("you must provide '{name}'"))),
        }
    }

    /// An optional boolean.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::field(name, format!("'{name}' must be a boolean"))),
        }
    }

    /// An optional integer in `lo..=hi`.
    pub fn int(&self, name: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                Some(n) => Err(ApiError::field(
                    name,
                    format!("'{name}' is {n}; it must be between {lo} and {hi}"),
                )),
                None => Err(ApiError::field(name, format!("'{name}' must be an integer"))),
            },
        }
    }

    /// An optional number in `lo..=hi`.
    pub fn number(&self, name: &str, lo: f64, hi: f64) -> Result<Option<f64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                Some(n) => Err(ApiError::field(
                    name,
                    format!("'{name}' is {n}; it must be between {lo} and {hi}"),
                )),
                None => Err(ApiError::field(name, format!("'{name}' must be a number"))),
            },
        }
    }

    /// Refuse a field that asks for what this server cannot do (absent, null, or `ok` is fine).
    pub fn refuse_unless(
        &self,
        name: &str,
        ok: impl Fn(&Value) -> bool,
        why: &str,
    ) -> Result<(), ApiError> {
        match self.get(name) {
            Some(v) if !ok(v) => Err(ApiError::unsupported(name, format!("'{name}': {why}"))),
            _ => Ok(()),
        }
    }
}

/// Sampling as a request asks for it (chat and completions share it).
pub struct Sampling {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    /// The JSON schema `response_format` asks for (chat only).
    pub json_schema: Option<String>,
}

impl Sampling {
    /// Read the fields chat and completions share; `default_max` when neither max field is set.
    pub fn parse(b: &Body, default_max: Option<u32>) -> Result<Self, ApiError> {
        let max = u32::MAX as i64;
        let max_tokens = match b.int("max_completion_tokens", 1, max)? {
            Some(n) => Some(n),
            None => b.int("max_tokens", 1, max)?,
        }
        .map(|n| n as u32)
        .or(default_max);
        let n = b.int("n", 1, 128)?;
        if n.is_some_and(|n| n != 1) {
            return Err(ApiError::unsupported(
                "n",
                "this server returns one choice: 'n' must be 1",
            ));
        }
        let stop = match b.get("stop") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) if a.len() <= 4 && a.iter().all(Value::is_string) => {
                a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()
            }
            Some(_) => {
                return Err(ApiError::field(
                    "stop",
                    "'stop' must be a string or a list of at most 4 strings",
                ));
            }
        };
        if stop.iter().any(String::is_empty) {
            return Err(ApiError::field("stop", "stop sequences must not be empty"));
        }
        for penalty in ["presence_penalty", "frequency_penalty"] {
            b.number(penalty, -2.0, 2.0)?;
            b.refuse_unless(penalty, |v| v.as_f64() == Some(0.0), "only 0 is supported")?;
        }
        b.refuse_unless(
            "logprobs",
            |v| v == &Value::Bool(false),
            "log probabilities are not supported",
        )?;
        b.refuse_unless(
            "logit_bias",
            |v| v.as_object().is_some_and(Map::is_empty),
            "logit bias is not supported",
        )?;
        let stream = b.bool("stream")?.unwrap_or(false);
        if !stream && b.get("stream_options").is_some() {
            return Err(ApiError::field(
                "stream_options",
                "'stream_options' is only allowed with 'stream': true",
            ));
        }
        let include_usage = match b.get("stream_options") {
            None => false,
            Some(Value::Object(o)) => match o.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(v)) => *v,
                Some(_) => {
                    return Err(ApiError::field(
                        "stream_options",
                        "'stream_options.include_usage' must be a boolean",
                    ));
                }
            },
            Some(_) => {
                return Err(ApiError::field(
                    "stream_options",
                    "'stream_options' must be an object",
                ));
            }
        };
        Ok(Self {
            max_tokens,
            temperature: b.number("temperature", 0.0, 2.0)?.map(|t| t as f32),
            top_p: b.number("top_p", 0.0, 1.0)?.map(|p| p as f32),
            seed: b.int("seed", i64::MIN, i64::MAX)?.map(|s| s as u64),
            stop,
            stream,
            include_usage,
            json_schema: None,
        })
    }

    /// Read `response_format`: `text` (the default), `json_object` (any JSON object) or
    /// `json_schema` in OpenAI's `{type, json_schema: {name, schema, strict}}` wrapper, which
    /// the host enforces while sampling; anything else is refused.
    pub fn response_format(&mut self, b: &Body) -> Result<(), ApiError> {
        let Some(v) = b.get("response_format") else { return Ok(()) };
        let bad = |m: &str| ApiError::field("response_format", m.to_string());
        self.json_schema = match v.get("type").and_then(Value::as_str) {
            Some("text") => None,
            Some("json_object") => Some(r#"{"type": "object"}"#.to_string()),
            Some("json_schema") => {
                let wrapper = v.get("json_schema").and_then(Value::as_object).ok_or_else(|| {
                    bad("'response_format.json_schema' must be an object with a 'schema'")
                })?;
                match wrapper.get("schema") {
                    Some(s) if s.is_object() || s.is_boolean() => Some(s.to_string()),
                    None => Some(r#"{"type": "object"}"#.to_string()),
                    Some(_) => {
                        return Err(bad(
                            "'response_format.json_schema.schema' must be a JSON schema",
                        ));
                    }
                }
            }
            _ => {
                return Err(bad("'response_format.type' must be text, json_object or json_schema"));
            }
        };
        Ok(())
    }

    /// Apply to a generation request.
    pub fn apply<'a>(&self, mut r: tabagent_guest::Request<'a>) -> tabagent_guest::Request<'a> {
        if let Some(n) = self.max_tokens {
            r = r.max_tokens(n);
        }
        if let Some(t) = self.temperature {
            r = r.temperature(t);
        }
        match self.top_p {
            // Nothing but the most likely token is left.
            Some(p) if p <= 0.0 => r = r.greedy(),
            Some(p) => r = r.top_p(p),
            None => {}
        }
        if let Some(s) = self.seed {
            r = r.seed(s);
        }
        for s in &self.stop {
            r = r.stop(s.clone());
        }
        if let Some(s) = &self.json_schema {
            r = r.json_schema(s.clone());
        }
        r
    }
}

/// OpenAI's name of a finish reason: a stop sequence is `stop`; a generation that ended
/// otherwise than by itself (cancelled) is `length`; calls are `tool_calls`.
pub fn finish_reason(f: tabagent_guest::FinishReason) -> &'static str {
    use tabagent_guest::FinishReason as F;
    match f {
        F::Stop | F::StopSequence => "stop",
        F::Length | F::Cancelled => "length",
        F::ToolCalls => "tool_calls",
    }
}

/// OpenAI's usage object.
pub fn usage(u: &tabagent_guest::Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.generated_tokens,
        "total_tokens": u.prompt_tokens + u.generated_tokens,
        "prompt_tokens_details": { "cached_tokens": u.cached_tokens },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Body {
        Body::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn bad_json_and_non_objects_are_400() {
        assert_eq!(Body::parse(b"{oops").err().unwrap().status, 400);
        assert_eq!(Body::parse(b"[1]").err().unwrap().status, 400);
    }

    #[test]
    fn fields_are_checked_and_named() {
        let e = Sampling::parse(&body(json!({"temperature": "hot"})), None).err().unwrap();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("temperature")));
        let e = Sampling::parse(&body(json!({"max_tokens": 0})), None).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = Sampling::parse(&body(json!({"n": 2})), None).err().unwrap();
        assert_eq!(e.code, Some("unsupported_parameter"));
        let e =
            Sampling::parse(&body(json!({"stop": ["a", "b", "c", "d", "e"]})), None).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("stop"));
        let e = Sampling::parse(&body(json!({"stream_options": {"include_usage": 1}})), None)
            .err()
            .unwrap();
        assert_eq!(e.param.as_deref(), Some("stream_options"));
        assert!(Sampling::parse(&body(json!({"presence_penalty": 0.5})), None).is_err());
    }

    #[test]
    fn max_completion_tokens_wins_and_defaults_apply() {
        let s = Sampling::parse(&body(json!({"max_tokens": 5, "max_completion_tokens": 7, "stop": "x", "n": 1, "presence_penalty": 0})), None).unwrap();
        assert_eq!((s.max_tokens, s.stop.as_slice()), (Some(7), ["x".to_string()].as_slice()));
        assert_eq!(Sampling::parse(&body(json!({})), Some(16)).unwrap().max_tokens, Some(16));
        let s = Sampling::parse(
            &body(json!({"stream": true, "stream_options": {"include_usage": true}})),
            None,
        )
        .unwrap();
        assert!(s.stream && s.include_usage);
    }
}
