//! The wire format of TabAgent's actions: a request is a JSON object with an `action`, an `id`
//! the answers carry back, and the action's fields; every answer is a JSON object with the
//! request's `id` and a `status` — `success` (with a `payload`), `error` (with an
//! `error: {code, message}`), or, before the final answer, `streaming` (a generation's chunk)
//! and `progress` (a pull's progress).

use serde_json::{Map, Value, json};
use tabagent_guest::Error;

/// Why a request is refused, as the `error` object says it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Machine-readable: `invalid-json`, `missing-field`, `invalid-field`, `unknown-action`, or
    /// one of the model interface's error kinds (`not-granted`, `not-found`, …).
    pub code: &'static str,
    /// For people.
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl From<tabagent_guest::bindings::tabagent::llm::types::Error> for Refusal {
    fn from(e: tabagent_guest::bindings::tabagent::llm::types::Error) -> Self {
        Error::from(e).into()
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Self { code: e.kind(), message: e.message().to_string() }
    }
}

/// Longest string id (every answer carries it back).
pub const MAX_ID: usize = 256;

/// A parsed request.
pub struct Request {
    pub id: Value,
    pub action: String,
    pub fields: Map<String, Value>,
}

/// Parse one message; a refusal carries whatever id could be read.
pub fn parse(text: &str) -> Result<Request, (Value, Refusal)> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        (Value::Null, Refusal::new("invalid-json", format!("the message is not JSON: {e}")))
    })?;
    let Value::Object(mut fields) = v else {
        return Err((
            Value::Null,
            Refusal::new("invalid-json", "the message is not a JSON object"),
        ));
    };
    let id = fields.remove("id").unwrap_or(Value::Null);
    if !(id.is_null() || id.is_string() || id.is_u64() || id.is_i64()) {
        let r = Refusal::new("invalid-field", "'id' must be a string or an integer");
        return Err((Value::Null, r));
    }
    if id.as_str().is_some_and(|s| s.len() > MAX_ID) {
        let r = Refusal::new("invalid-field", format!("'id' may be at most {MAX_ID} bytes"));
        return Err((Value::Null, r));
    }
    let action = match fields.remove("action").or_else(|| fields.remove("type")) {
        Some(Value::String(a)) => a,
        Some(_) => return Err((id, Refusal::new("invalid-field", "'action' must be a string"))),
        None => return Err((id, Refusal::new("missing-field", "'action' is missing"))),
    };
    Ok(Request { id, action, fields })
}

/// Typed access to a request's fields, naming the field when it is missing or mistyped.
pub trait Fields {
    fn map(&self) -> &Map<String, Value>;

    /// How field names are shown (`options.` for a nested object's).
    fn prefix(&self) -> String {
        String::new()
    }

    fn str(&self, key: &str) -> Result<&str, Refusal> {
        self.opt_str(key)?.ok_or_else(|| {
            Refusal::new("missing-field", format!("'{}{key}' is missing", self.prefix()))
        })
    }

    fn opt_str(&self, key: &str) -> Result<Option<&str>, Refusal> {
        match self.map().get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Refusal::new(
                "invalid-field",
                format!("'{}{key}' must be a string", self.prefix()),
            )),
        }
    }

    fn opt_u32(&self, key: &str) -> Result<Option<u32>, Refusal> {
        match self.map().get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some).ok_or_else(|| {
                Refusal::new(
                    "invalid-field",
                    format!("'{}{key}' must be a whole number ≥ 0", self.prefix()),
                )
            }),
        }
    }

    fn opt_u64(&self, key: &str) -> Result<Option<u64>, Refusal> {
        match self.map().get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                Refusal::new(
                    "invalid-field",
                    format!("'{}{key}' must be a whole number ≥ 0", self.prefix()),
                )
            }),
        }
    }

    fn opt_f32(&self, key: &str) -> Result<Option<f32>, Refusal> {
        match self.map().get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_f64().map(|f| Some(f as f32)).ok_or_else(|| {
                Refusal::new("invalid-field", format!("'{}{key}' must be a number", self.prefix()))
            }),
        }
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, Refusal> {
        match self.map().get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Refusal::new(
                "invalid-field",
                format!("'{}{key}' must be true or false", self.prefix()),
            )),
        }
    }

    /// A nested object (`settings`, `options`), empty when absent.
    fn object(&self, key: &str) -> Result<Obj, Refusal> {
        match self.map().get(key) {
            None | Some(Value::Null) => Ok(Obj(Map::new(), key.to_string())),
            Some(Value::Object(m)) => Ok(Obj(m.clone(), key.to_string())),
            Some(_) => Err(Refusal::new(
                "invalid-field",
                format!("'{}{key}' must be an object", self.prefix()),
            )),
        }
    }
}

impl Fields for Request {
    fn map(&self) -> &Map<String, Value> {
        &self.fields
    }
}

/// A nested object of a request, and its name (for messages).
pub struct Obj(pub Map<String, Value>, pub String);

impl Fields for Obj {
    fn map(&self) -> &Map<String, Value> {
        &self.0
    }

    fn prefix(&self) -> String {
        format!("{}.", self.1)
    }
}

/// `{"id", "status": "success", "payload"}`.
pub fn success(id: &Value, payload: Value) -> String {
    json!({"id": id, "status": "success", "payload": payload}).to_string()
}

/// `{"id", "status": "error", "error": {code, message}}`.
pub fn error(id: &Value, r: &Refusal) -> String {
    json!({"id": id, "status": "error", "error": {"code": r.code, "message": r.message}})
        .to_string()
}

/// A message before the final answer: `status` `streaming` or `progress`.
pub fn event(id: &Value, status: &str, payload: Value) -> String {
    json!({"id": id, "status": status, "payload": payload}).to_string()
}

/// Split text into pieces of at most `max` bytes, on character boundaries.
pub fn split_text(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut at = max;
        while !rest.is_char_boundary(at) {
            at -= 1;
        }
        out.push(&rest[..at]);
        rest = &rest[at..];
    }
    out.push(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_are_named() {
        let r = parse(
            r#"{"id": 3, "action": "LOAD_MODEL", "modelPath": "smol", "settings": {"n_ctx": "x"}}"#,
        )
        .unwrap();
        assert_eq!((r.id.clone(), r.action.as_str()), (json!(3), "LOAD_MODEL"));
        assert_eq!(r.str("modelPath").unwrap(), "smol");
        assert_eq!(r.str("modelFile").unwrap_err().code, "missing-field");
        let e = r.object("settings").unwrap().opt_u32("n_ctx").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("invalid-field", "'settings.n_ctx' must be a whole number ≥ 0")
        );
        assert_eq!(parse("{nope").err().unwrap().1.code, "invalid-json");
        assert_eq!(parse("[1]").err().unwrap().1.code, "invalid-json");
        let (id, e) = parse(r#"{"id": "a"}"#).err().unwrap();
        assert_eq!((id, e.code), (json!("a"), "missing-field"));
        assert_eq!(parse(r#"{"id": [1], "action": "X"}"#).err().unwrap().1.code, "invalid-field");
    }

    #[test]
    fn long_text_splits_on_character_boundaries() {
        let text = "é".repeat(10);
        let parts = split_text(&text, 5);
        assert!(parts.iter().all(|p| p.len() <= 5));
        assert_eq!(parts.concat(), text);
        assert_eq!(split_text("", 5), [""]);
    }
}
