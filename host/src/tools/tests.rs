use super::*;
use crate::engine::{GenerationSummary, Tool, ToolCall};

fn template(name: &str) -> String {
    let path = format!("{}/../tests/templates/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

fn output(format: ToolFormat) -> ToolOutput {
    ToolOutput::new(format, vec!["get_weather".into(), "add".into()], 7)
}

fn summary(text: &str) -> GenerationSummary {
    GenerationSummary {
        text: text.into(),
        tokens: Vec::new(),
        finish_reason: FinishReason::Stop,
        usage: Default::default(),
        tool_calls: Vec::new(),
    }
}

/// Stream `text` a character at a time, then finish: (what was shown, the summary).
fn run(format: ToolFormat, text: &str) -> (String, GenerationSummary) {
    let mut out = output(format);
    let mut shown = String::new();
    for c in text.chars() {
        shown.push_str(&out.push(&c.to_string()));
    }
    let (rest, s) = out.finish(summary(text));
    shown.push_str(&rest);
    assert_eq!(shown, s.text, "what was streamed is the reply");
    (shown, s)
}

fn calls(s: &GenerationSummary) -> Vec<(&str, &str)> {
    s.tool_calls.iter().map(|c| (c.name.as_str(), c.arguments.as_str())).collect()
}

use crate::engine::FinishReason;

#[test]
fn formats_are_told_from_the_templates() {
    let cases = [
        ("qwen2.5-7b-instruct.jinja", ToolFormat::Hermes),
        ("hermes-3-llama-3.1-8b-tool-use.jinja", ToolFormat::Hermes),
        ("llama-3.1-8b-instruct.jinja", ToolFormat::Llama3),
        ("llama-3.2-3b-instruct.jinja", ToolFormat::Llama3),
        ("mistral-nemo-instruct-2407.jinja", ToolFormat::Mistral),
        ("smollm2-135m-instruct.jinja", ToolFormat::Generic),
        ("gemma-2-2b-it.jinja", ToolFormat::Generic),
        ("phi-3.5-mini-instruct.jinja", ToolFormat::Generic),
    ];
    for (file, format) in cases {
        assert_eq!(ToolFormat::detect(&template(file)), format, "{file}");
    }
}

#[test]
fn hermes_calls_are_parsed_and_their_markup_never_streamed() {
    let text = "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"b\": 2, \"a\": 1}}\n</tool_call>";
    let (shown, s) = run(ToolFormat::Hermes, text);
    assert_eq!(shown, "Let me look.\n");
    assert_eq!(
        calls(&s),
        [("get_weather", r#"{"city":"Paris","unit":"celsius"}"#), ("add", r#"{"b":2,"a":1}"#)]
    );
    assert_eq!(s.finish_reason, FinishReason::ToolCalls);
    let ids: Vec<&str> = s.tool_calls.iter().map(|c| c.id.as_str()).collect();
    assert!(ids.iter().all(|id| id.starts_with("call_") && id.len() == 29), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn a_reply_without_calls_streams_whole() {
    let (shown, s) = run(ToolFormat::Hermes, "It is sunny <tool in Paris.");
    assert_eq!(shown, "It is sunny <tool in Paris.");
    assert!(s.tool_calls.is_empty());
    assert_eq!(s.finish_reason, FinishReason::Stop);
}

#[test]
fn a_call_that_does_not_parse_is_the_reply_as_it_is() {
    let text = "<tool_call>\n{\"name\": \"get_weather\", \"argum";
    let (shown, s) = run(ToolFormat::Hermes, text);
    assert_eq!(shown, text);
    assert!(s.tool_calls.is_empty());
    // A tool that was not offered is not a call either.
    let (_, s) =
        run(ToolFormat::Hermes, "<tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call>");
    assert!(s.tool_calls.is_empty());
}

#[test]
fn mistral_calls_keep_a_valid_id_of_their_own() {
    let text = r#"[TOOL_CALLS][{"name": "add", "arguments": {"a": 1, "b": 2}, "id": "abcDEF123"}, {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}", "id": "bad"}]"#;
    let (shown, s) = run(ToolFormat::Mistral, text);
    assert_eq!(shown, "");
    assert_eq!(calls(&s), [("add", r#"{"a":1,"b":2}"#), ("get_weather", r#"{"city": "Rome"}"#)]);
    assert_eq!(s.tool_calls[0].id, "abcDEF123");
    let other = &s.tool_calls[1].id;
    assert!(other.len() == 9 && other.bytes().all(|b| b.is_ascii_alphanumeric()), "{other}");
}

#[test]
fn llama3_calls_are_bare_objects() {
    let (shown, s) = run(ToolFormat::Llama3, r#"{"name": "add", "parameters": {"a": 1, "b": 2}}"#);
    assert_eq!(shown, "");
    assert_eq!(calls(&s), [("add", r#"{"a":1,"b":2}"#)]);
    let (_, s) = run(
        ToolFormat::Llama3,
        "<|python_tag|>{\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": 2}}; {\"name\": \"add\", \"parameters\": {\"a\": 3, \"b\": 4}}",
    );
    assert_eq!(s.tool_calls.len(), 2);
    let (shown, s) = run(ToolFormat::Llama3, "  Paris is in France.");
    assert_eq!(shown, "  Paris is in France.");
    assert!(s.tool_calls.is_empty());
}

#[test]
fn the_generic_reply_is_streamed_decoded() {
    let text = "{\"response\": \"Line one\\nsaid \\\"hi\\\" \\u00e9\\ud83d\\ude00 done\"}";
    let (shown, s) = run(ToolFormat::Generic, text);
    assert_eq!(shown, "Line one\nsaid \"hi\" é😀 done");
    assert!(s.tool_calls.is_empty());
    let (shown, s) = run(
        ToolFormat::Generic,
        "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\n  \"city\": \"Oslo \\\" x\"\n}}]}",
    );
    assert_eq!(shown, "");
    // Whitespace between tokens goes; inside strings it stays.
    assert_eq!(calls(&s), [("get_weather", r#"{"city":"Oslo \" x"}"#)]);
    // Cut short: the answer as far as it got.
    let (shown, s) = run(ToolFormat::Generic, "{\"response\": \"Half an ans");
    assert_eq!(shown, "Half an ans");
    assert!(s.tool_calls.is_empty());
}

#[test]
fn grammars_wrap_the_schema_grammar() {
    let g = CallGrammar {
        schema: "{}".into(),
        prefix: "<tool_call>\n".into(),
        separator: Some("\n</tool_call>\n<tool_call>\n".into()),
        suffix: "\n</tool_call>".into(),
        trigger: Some("<tool_call>".into()),
    };
    let gbnf = g.gbnf("root ::= object\nroot-name ::= \"x\"\nobject ::= \"{}\"\n");
    assert!(gbnf.contains("tool-call ::= object\n"), "{gbnf}");
    assert!(gbnf.contains("root-name ::= \"x\""), "{gbnf}");
    assert!(gbnf.ends_with(
        "root ::= \"<tool_call>\\n\" tool-call (\"\\n</tool_call>\\n<tool_call>\\n\" tool-call)* \"\\n</tool_call>\"\n"
    ), "{gbnf}");
    let plain = CallGrammar { prefix: String::new(), separator: None, suffix: String::new(), ..g };
    assert_eq!(plain.gbnf("root ::= x\n"), "root ::= x\n");
}

fn tools(choice: ToolChoice, parallel: bool) -> ToolUse {
    let tool = |name: &str, parameters: &str| Tool {
        name: name.into(),
        description: format!("The {name} tool."),
        parameters: parameters.into(),
    };
    ToolUse {
        tools: vec![
            tool(
                "get_weather",
                r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
            ),
            tool(
                "add",
                r#"{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}}}"#,
            ),
        ],
        choice,
        parallel,
    }
}

#[test]
fn plans_follow_the_choice() {
    let messages = [ChatMessage::new("user", "Weather in Paris?")];
    let p = plan(ToolFormat::Hermes, &tools(ToolChoice::Auto, true), &messages, 1).unwrap();
    let tools_json = p.tools_json.unwrap();
    assert!(tools_json.starts_with(r#"[{"type": "function", "function": {"name": "get_weather""#));
    // The schema's keys keep their order.
    assert!(tools_json.contains(r#""parameters": {"type":"object","properties""#), "{tools_json}");
    let g = p.grammar.unwrap();
    assert_eq!(g.trigger.as_deref(), Some("<tool_call>"));
    assert!(g.separator.is_some());
    assert!(g.schema.contains("anyOf"));

    let p =
        plan(ToolFormat::Hermes, &tools(ToolChoice::Function("add".into()), false), &messages, 1)
            .unwrap();
    let g = p.grammar.unwrap();
    assert!(g.trigger.is_none() && g.separator.is_none());
    assert!(g.schema.contains(r#""const":"add""#) && !g.schema.contains("get_weather"));
    // The model still sees every tool.
    assert!(p.tools_json.unwrap().contains("get_weather"));

    let p = plan(ToolFormat::Generic, &tools(ToolChoice::None, true), &messages, 1).unwrap();
    assert!(p.grammar.is_none() && p.output.is_none() && p.tools_json.is_none());
    assert_eq!(p.messages, messages);

    let p = plan(ToolFormat::Generic, &tools(ToolChoice::Required, false), &messages, 1).unwrap();
    assert_eq!(p.messages[0].role, "system");
    assert!(p.messages[0].content.contains("get_weather"));
    let g = p.grammar.unwrap();
    assert!(g.schema.contains(r#""maxItems":1"#) && !g.schema.contains("response"));
    let first_user = p.without_system.unwrap();
    assert_eq!(first_user.len(), 1);
    assert!(first_user[0].content.ends_with("\n\nWeather in Paris?"));
}

#[test]
fn generic_history_writes_calls_and_results_as_json_turns() {
    let call = |id: &str, name: &str, args: &str| ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: args.into(),
    };
    let result = |id: &str, content: &str| ChatMessage {
        tool_call_id: Some(id.into()),
        ..ChatMessage::new("tool", content)
    };
    let messages = [
        ChatMessage::new("user", "Weather in Paris, and 1+2?"),
        ChatMessage {
            tool_calls: vec![
                call("c1", "get_weather", r#"{"city":"Paris"}"#),
                call("c2", "add", r#"{"a":1,"b":2}"#),
            ],
            ..ChatMessage::new("assistant", "")
        },
        result("c1", "18 C"),
        result("c2", "3"),
    ];
    let p = plan(ToolFormat::Generic, &tools(ToolChoice::Auto, true), &messages, 1).unwrap();
    let m = &p.messages;
    assert_eq!(m.len(), 4, "{m:?}");
    assert_eq!(
        m[2].content,
        r#"{"tool_calls": [{"name": "get_weather", "arguments": {"city":"Paris"}}, {"name": "add", "arguments": {"a":1,"b":2}}]}"#
    );
    assert_eq!(m[3].role, "user");
    assert_eq!(
        m[3].content,
        "{\"tool_response\": {\"name\": \"get_weather\", \"content\": \"18 C\"}}\n{\"tool_response\": {\"name\": \"add\", \"content\": \"3\"}}"
    );
    assert!(m.iter().all(|m| m.tool_calls.is_empty() && m.tool_call_id.is_none()));
}
