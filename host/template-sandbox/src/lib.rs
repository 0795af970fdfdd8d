//! Chat templates as their authors wrote them: Jinja, rendered by MiniJinja with the
//! conventions of Hugging Face's `apply_chat_template` (`trim_blocks`, `lstrip_blocks`, loop
//! controls, Python's string and dict methods, `raise_exception`, `strftime_now`, and a `tojson`
//! that writes what Python's `json.dumps` writes).
//!
//! Built for `wasm32-unknown-unknown`, this crate is the module the host runs each render in,
//! with a memory limit and fuel: a template is code from a model file, and one that loops or
//! expands without end must end in a refusal, not take the host's memory or time. The module
//! exports `alloc(len) -> ptr` and `render(ptr, len) -> ptr << 32 | len`, both over JSON:
//! a [`Request`] in, a [`Reply`] out.

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

/// What to render.
#[derive(Debug, Deserialize)]
pub struct Request {
    /// The template's source.
    pub template: String,
    /// The variables (`messages`, `add_generation_prompt`, `bos_token`, `tools`, …).
    pub context: serde_json::Map<String, serde_json::Value>,
    /// The local time `strftime_now` formats.
    #[serde(default)]
    pub now: Now,
    /// Most bytes of output; more is an error.
    pub max_output: usize,
    /// `tools` as JSON text, parsed here so that its keys keep their order.
    #[serde(default)]
    pub tools: Option<String>,
}

/// A broken-down local time.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct Now {
    /// Year, such as 2026.
    pub year: i32,
    /// Month, 1 to 12.
    pub month: u32,
    /// Day of the month, 1 to 31.
    pub day: u32,
    /// Hour, 0 to 23.
    pub hour: u32,
    /// Minute, 0 to 59.
    pub minute: u32,
    /// Second, 0 to 60.
    pub second: u32,
    /// Day of the week, 0 = Monday.
    pub weekday: u32,
}

/// What came of it.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    /// The rendered text.
    Ok(String),
    /// Why the template could not be rendered.
    Error(String),
}

/// Render a request.
pub fn render(req: &Request) -> Reply {
    match render_inner(req) {
        Ok(text) if text.len() > req.max_output => Reply::Error(format!(
            "the template's output of {} bytes is over the limit of {} bytes",
            text.len(),
            req.max_output
        )),
        Ok(text) => Reply::Ok(text),
        Err(e) => Reply::Error(describe(&e)),
    }
}

fn render_inner(req: &Request) -> Result<String, Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("tojson", tojson);
    env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, msg))
    });
    let now = req.now;
    env.add_function("strftime_now", move |format: String| strftime(&format, &now));
    env.add_template("chat", &req.template)?;
    let template = env.get_template("chat")?;
    let mut context = req.context.clone();
    if let Some(tools) = &req.tools {
        let tools: serde_json::Value = serde_json::from_str(tools).map_err(|e| {
            Error::new(ErrorKind::InvalidOperation, format!("tools are not JSON: {e}"))
        })?;
        context.insert("tools".into(), tools);
    }
    template.render(Value::from_serialize(&context))
}

/// An error and its causes, on one line.
fn describe(e: &Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=indent, separators=separators,
/// sort_keys=sort_keys)`, as Hugging Face's templates get it.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let (item, key) = match separators.as_deref() {
        Some([item, key]) => (item.clone(), key.clone()),
        Some(_) => {
            return Err(Error::new(ErrorKind::InvalidOperation, "separators must be two strings"));
        }
        None if indent.is_some() => (",".into(), ": ".into()),
        None => (", ".into(), ": ".into()),
    };
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let style = Style {
        indent,
        item,
        key,
        sort_keys: sort_keys.unwrap_or(false),
        ascii: ensure_ascii.unwrap_or(false),
    };
    let mut out = String::new();
    style.write(&json, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

struct Style {
    indent: Option<usize>,
    item: String,
    key: String,
    sort_keys: bool,
    ascii: bool,
}

impl Style {
    fn newline(&self, depth: usize, out: &mut String) {
        if let Some(n) = self.indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * depth));
        }
    }

    /// The item separator as Python writes it with an indent (trailing spaces dropped).
    fn between(&self, depth: usize, out: &mut String) {
        if self.indent.is_some() {
            out.push_str(self.item.trim_end());
        } else {
            out.push_str(&self.item);
        }
        self.newline(depth, out);
    }

    fn write(&self, v: &serde_json::Value, depth: usize, out: &mut String) {
        use serde_json::Value as J;
        match v {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Number(n) => out.push_str(&python_number(n)),
            J::String(s) => self.string(s, out),
            J::Array(items) if items.is_empty() => out.push_str("[]"),
            J::Array(items) => {
                out.push('[');
                self.newline(depth + 1, out);
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.between(depth + 1, out);
                    }
                    self.write(item, depth + 1, out);
                }
                self.newline(depth, out);
                out.push(']');
            }
            J::Object(map) if map.is_empty() => out.push_str("{}"),
            J::Object(map) => {
                let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                self.newline(depth + 1, out);
                for (i, (k, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        self.between(depth + 1, out);
                    }
                    self.string(k, out);
                    out.push_str(&self.key);
                    self.write(item, depth + 1, out);
                }
                self.newline(depth, out);
                out.push('}');
            }
        }
    }

    fn string(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if self.ascii && !c.is_ascii() => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{:04x}", u));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// A number as Python's `json.dumps` writes it: integers as they are, floats with a decimal
/// point (`1.0`) or Python's exponent form (`1e-07`).
fn python_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.is_finite() && f == f.trunc() && f.abs() < 1e16 {
        return format!("{f:.1}");
    }
    let s = format!("{f:?}");
    // Rust writes 1e-7 where Python writes 1e-07.
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] =
    ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Python's `datetime.now().strftime(format)` for the usual directives.
fn strftime(format: &str, now: &Now) -> Result<String, Error> {
    let month = MONTHS.get(now.month.wrapping_sub(1) as usize).copied().unwrap_or("January");
    let day = DAYS.get(now.weekday as usize).copied().unwrap_or("Monday");
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let d = chars.next().unwrap_or('%');
        match d {
            'Y' => out.push_str(&now.year.to_string()),
            'y' => out.push_str(&format!("{:02}", now.year.rem_euclid(100))),
            'm' => out.push_str(&format!("{:02}", now.month)),
            'd' => out.push_str(&format!("{:02}", now.day)),
            'e' => out.push_str(&format!("{:>2}", now.day)),
            'H' => out.push_str(&format!("{:02}", now.hour)),
            'I' => out.push_str(&format!("{:02}", (now.hour + 11) % 12 + 1)),
            'p' => out.push_str(if now.hour < 12 { "AM" } else { "PM" }),
            'M' => out.push_str(&format!("{:02}", now.minute)),
            'S' => out.push_str(&format!("{:02}", now.second)),
            'B' => out.push_str(month),
            'b' | 'h' => out.push_str(&month[..3]),
            'A' => out.push_str(day),
            'a' => out.push_str(&day[..3]),
            '%' => out.push('%'),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: %{other} is not supported"),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(target_arch = "wasm32")]
mod exports {
    /// Memory for the host to write a request into.
    #[unsafe(no_mangle)]
    pub extern "C" fn alloc(len: u32) -> *mut u8 {
        let mut buf = Vec::<u8>::with_capacity(len as usize);
        let ptr = buf.as_mut_ptr();
        std::mem::forget(buf);
        ptr
    }

    /// Render the JSON request of `len` bytes at `ptr` (from [`alloc`]); returns where the
    /// JSON reply is, as `ptr << 32 | len`.
    ///
    /// # Safety
    /// `ptr` must come from `alloc(len)`, written with `len` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn render(ptr: *mut u8, len: u32) -> u64 {
        // SAFETY: the host wrote `len` bytes at `ptr`, which `alloc(len)` gave it.
        let bytes = unsafe { Vec::from_raw_parts(ptr, len as usize, len as usize) };
        let reply = match serde_json::from_slice::<super::Request>(&bytes) {
            Ok(req) => super::render(&req),
            Err(e) => super::Reply::Error(format!("a bad render request: {e}")),
        };
        drop(bytes);
        let out = serde_json::to_vec(&reply).unwrap_or_default().into_boxed_slice();
        let n = out.len() as u64;
        let at = Box::into_raw(out) as *mut u8 as u64;
        (at << 32) | n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(template: &str, context: serde_json::Value) -> Reply {
        let req = Request {
            template: template.into(),
            context: context.as_object().unwrap().clone(),
            now: Now { year: 2026, month: 12, day: 1, hour: 9, minute: 5, second: 0, weekday: 1 },
            max_output: 1 << 20,
            tools: None,
        };
        render(&req)
    }

    #[test]
    fn hugging_face_conventions() {
        let t = "{% for m in messages %}{{ m['role'] | upper }}: {{ m.content.strip() }}\n{% endfor %}\
                 {% if add_generation_prompt %}A:{% endif %}";
        let ctx = json!({"messages": [{"role": "user", "content": "  hi  "}], "add_generation_prompt": true});
        assert_eq!(run(t, ctx), Reply::Ok("USER: hi\nA:".into()));
        assert_eq!(
            run("{{ raise_exception('no system role') }}", json!({})),
            Reply::Error("invalid operation: no system role (in chat:1)".into())
        );
        assert_eq!(
            run("{{ strftime_now('%d %b %Y') }}", json!({})),
            Reply::Ok("01 Dec 2026".into())
        );
        assert_eq!(
            run(
                "{% for x in [1,2,3] %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
                json!({})
            ),
            Reply::Ok("1".into())
        );
    }

    #[test]
    fn tojson_writes_what_python_writes() {
        let ctx = json!({"t": {"name": "get", "n": 1.0, "x": [1, "é<"], "e": {}, "f": 1e-7}});
        assert_eq!(
            run("{{ t | tojson }}", ctx.clone()),
            Reply::Ok(r#"{"name": "get", "n": 1.0, "x": [1, "é<"], "e": {}, "f": 1e-07}"#.into())
        );
        assert_eq!(
            run("{{ t.x | tojson(indent=2) }}", ctx.clone()),
            Reply::Ok("[\n  1,\n  \"é<\"\n]".into())
        );
        assert_eq!(
            run("{{ t.x | tojson(ensure_ascii=true) }}", ctx),
            Reply::Ok(r#"[1, "\u00e9<"]"#.into())
        );
    }

    #[test]
    fn output_over_the_limit_and_bad_syntax_are_errors() {
        let big = run("{% for i in range(1000) %}{{ 'x' * 2000 }}{% endfor %}", json!({}));
        assert!(matches!(big, Reply::Error(ref e) if e.contains("over the limit")), "{big:?}");
        let bad = run("{% for m in messages %}", json!({}));
        assert!(matches!(bad, Reply::Error(ref e) if e.contains("syntax error")), "{bad:?}");
    }
}
