//! The output side of tool calls: the reply streamed as it comes, and the calls parsed out of
//! the whole text at the end.

use super::ToolFormat;
use crate::engine::{FinishReason, GenerationSummary, ToolCall};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicU64, Ordering};

/// Splits a generation's text into the reply and the tool calls.
///
/// [`ToolOutput::push`] takes each piece of raw text and gives back the reply's text that is
/// safe to show (never a call's markup); [`ToolOutput::finish`] parses the whole text. What was
/// shown plus what `finish` gives is always the summary's reply, so streaming and
/// non-streaming callers agree. Text that looked like a call but does not parse as one (cut
/// short by `max-tokens`, say) is the reply, as it is.
#[derive(Debug)]
pub struct ToolOutput {
    format: ToolFormat,
    names: Vec<String>,
    raw: String,
    shown: String,
    seed: u64,
}

/// Calls made by this process, so that ids differ across generations with one seed.
static CALLS: AtomicU64 = AtomicU64::new(0);

#[derive(Deserialize)]
struct RawCall<'a> {
    name: String,
    #[serde(borrow, alias = "parameters")]
    arguments: Option<&'a RawValue>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct GenericReply<'a> {
    #[serde(borrow, default)]
    tool_calls: Option<Vec<RawCall<'a>>>,
    #[serde(default)]
    response: Option<String>,
}

impl ToolOutput {
    /// Output in `format`, where calls may name `names`; `seed` makes the ids.
    pub fn new(format: ToolFormat, names: Vec<String>, seed: u64) -> Self {
        Self { format, names, raw: String::new(), shown: String::new(), seed }
    }

    /// Take a piece of the raw text; returns the reply's text that can be shown now.
    pub fn push(&mut self, piece: &str) -> String {
        self.raw.push_str(piece);
        let ready = self.reply_so_far();
        match ready.strip_prefix(self.shown.as_str()) {
            Some(new) if !new.is_empty() => {
                let new = new.to_string();
                self.shown = ready;
                new
            }
            _ => String::new(),
        }
    }

    /// The reply that is certain so far: text before any call.
    fn reply_so_far(&self) -> String {
        let raw = self.raw.as_str();
        match self.format {
            ToolFormat::Hermes | ToolFormat::Mistral => {
                let marker = self.format.marker().unwrap_or_default();
                match raw.find(marker) {
                    Some(at) => raw[..at].to_string(),
                    None => raw[..raw.len() - partial_tail(raw, marker)].to_string(),
                }
            }
            ToolFormat::Llama3 => {
                let t = raw.trim_start();
                if t.is_empty()
                    || t.starts_with('{')
                    || "<|python_tag|>".starts_with(t)
                    || t.starts_with("<|python_tag|>")
                {
                    String::new()
                } else {
                    raw.to_string()
                }
            }
            ToolFormat::Generic => response_prefix(raw).map(|(s, _)| s).unwrap_or_default(),
        }
    }

    /// Parse the whole text (`summary.text`, the engine's raw output): the rest of the reply
    /// to show, and the summary with the reply as its text and the calls.
    pub fn finish(&mut self, mut summary: GenerationSummary) -> (String, GenerationSummary) {
        self.raw = std::mem::take(&mut summary.text);
        let (reply, calls) = self.parse().unwrap_or_else(|| (self.unparsed(), Vec::new()));
        let rest = match reply.strip_prefix(self.shown.as_str()) {
            Some(rest) => rest.to_string(),
            None => {
                tracing::warn!("a tool-call reply does not continue what was streamed");
                String::new()
            }
        };
        if !calls.is_empty() {
            summary.finish_reason = FinishReason::ToolCalls;
        }
        summary.text = reply;
        summary.tool_calls = calls;
        (rest, summary)
    }

    /// The reply when the text does not parse: the generic format's answer as far as it got,
    /// else the text as it is.
    fn unparsed(&self) -> String {
        match self.format {
            ToolFormat::Generic => match response_prefix(&self.raw) {
                Some((s, _)) => s,
                None => self.raw.clone(),
            },
            _ => self.raw.clone(),
        }
    }

    /// The reply and the calls, or `None` when the calls in the text do not parse.
    fn parse(&self) -> Option<(String, Vec<ToolCall>)> {
        let raw = self.raw.as_str();
        let (reply, calls) = match self.format {
            ToolFormat::Hermes => {
                let Some(at) = raw.find("<tool_call>") else {
                    return Some((raw.into(), Vec::new()));
                };
                let mut calls = Vec::new();
                for block in raw[at..].split("<tool_call>").skip(1) {
                    let body = block.trim_end();
                    let body = body.strip_suffix("</tool_call>").unwrap_or(body);
                    calls.push(serde_json::from_str::<RawCall>(body.trim()).ok()?);
                }
                (raw[..at].to_string(), self.checked(calls)?)
            }
            ToolFormat::Mistral => {
                let Some(at) = raw.find("[TOOL_CALLS]") else {
                    return Some((raw.into(), Vec::new()));
                };
                let list = &raw[at + "[TOOL_CALLS]".len()..];
                let mut values =
                    serde_json::Deserializer::from_str(list).into_iter::<Vec<RawCall>>();
                let calls = values.next()?.ok()?;
                if !list[values.byte_offset()..].trim().is_empty() {
                    return None;
                }
                (raw[..at].to_string(), self.checked(calls)?)
            }
            ToolFormat::Llama3 => {
                let t = raw.trim_start();
                let t = t.strip_prefix("<|python_tag|>").unwrap_or(t);
                if !t.starts_with('{') {
                    return Some((raw.into(), Vec::new()));
                }
                let mut calls = Vec::new();
                let mut rest = t;
                while !rest.trim().is_empty() {
                    let mut values =
                        serde_json::Deserializer::from_str(rest).into_iter::<RawCall>();
                    calls.push(values.next()?.ok()?);
                    rest = rest[values.byte_offset()..].trim_start();
                    rest = rest.strip_prefix(';').unwrap_or(rest);
                }
                (String::new(), self.checked(calls)?)
            }
            ToolFormat::Generic => {
                let reply: GenericReply = serde_json::from_str(raw.trim()).ok()?;
                match (reply.tool_calls, reply.response) {
                    (Some(calls), None) if !calls.is_empty() => {
                        (String::new(), self.checked(calls)?)
                    }
                    (None, Some(text)) => (text, Vec::new()),
                    _ => return None,
                }
            }
        };
        Some((reply, calls))
    }

    /// Calls of offered tools with object arguments, given their ids; `None` otherwise.
    fn checked(&self, calls: Vec<RawCall<'_>>) -> Option<Vec<ToolCall>> {
        calls
            .into_iter()
            .map(|c| {
                if !self.names.contains(&c.name) {
                    return None;
                }
                let arguments = match c.arguments.map(RawValue::get) {
                    None => "{}".to_string(),
                    Some(a) if a.starts_with('{') => compact(a),
                    // Arguments given as a JSON string holding the object.
                    Some(a) => {
                        let inner: String = serde_json::from_str(a).ok()?;
                        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&inner)
                            .ok()?;
                        inner
                    }
                };
                let id = match c.id {
                    Some(id) if self.format == ToolFormat::Mistral && valid_mistral_id(&id) => id,
                    _ => self.new_id(),
                };
                Some(ToolCall { id, name: c.name, arguments })
            })
            .collect()
    }

    /// A fresh call id: nine letters and digits for Mistral (its template checks), else
    /// `call_` and 24.
    fn new_id(&self) -> String {
        let n = CALLS.fetch_add(1, Ordering::Relaxed);
        let mut state = self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let (head, len) = if self.format == ToolFormat::Mistral { ("", 9) } else { ("call_", 24) };
        let mut id = String::from(head);
        for _ in 0..len {
            state = splitmix(state);
            id.push(alphabet[(state % alphabet.len() as u64) as usize] as char);
        }
        id
    }
}

/// JSON text without the whitespace between its tokens (keys keep their order).
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !c.is_ascii_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn valid_mistral_id(id: &str) -> bool {
    id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Length of the longest tail of `text` that is a proper prefix of `marker`.
fn partial_tail(text: &str, marker: &str) -> usize {
    (1..marker.len())
        .rev()
        .find(|&n| {
            text.len() >= n
                && text.is_char_boundary(text.len() - n)
                && marker.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

/// The generic format's `{"response": "…` so far: the string decoded up to what is complete,
/// and whether it is closed.
fn response_prefix(raw: &str) -> Option<(String, bool)> {
    let rest = raw.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"response\"")?.trim_start().strip_prefix(':')?.trim_start();
    let mut chars = rest.strip_prefix('"')?.chars().peekable();
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some((out, true)),
            '\\' => {
                let Some(e) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let Ok(hi) = u32::from_str_radix(&hex, 16) else { break };
                        if hex.len() < 4 {
                            break;
                        }
                        if (0xD800..0xDC00).contains(&hi) {
                            // A surrogate pair: the low half must follow.
                            let low: String = chars.by_ref().take(6).collect();
                            let lo = low
                                .strip_prefix("\\u")
                                .and_then(|h| u32::from_str_radix(h, 16).ok());
                            match lo {
                                Some(lo) if low.len() == 6 && (0xDC00..0xE000).contains(&lo) => {
                                    let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                    out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                                }
                                _ if low.len() < 6 => break,
                                _ => out.push('\u{FFFD}'),
                            }
                        } else {
                            out.push(char::from_u32(hi).unwrap_or('\u{FFFD}'));
                        }
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    Some((out, false))
}
