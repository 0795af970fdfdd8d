//! Chat templates: the Jinja templates of five model families (and a tool-use fine-tune), as
//! their model repositories publish them (`tests/templates/`), render byte for byte as Python's
//! `jinja2` renders them with Hugging Face's conventions — with and without a system message,
//! with and without tools, with a conversation's history and a generation prompt.

use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use tabagent_host::engine::{ChatMessage, ToolCall};
use tabagent_host::template::{ChatTemplate, TemplateInput};
use tabagent_tests::{python, repo_root};

/// (file, beginning-of-sequence text, end-of-sequence text).
const TEMPLATES: [(&str, &str, &str); 8] = [
    ("smollm2-135m-instruct.jinja", "<|im_start|>", "<|im_end|>"),
    ("llama-3.1-8b-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    ("llama-3.2-3b-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    ("gemma-2-2b-it.jinja", "<bos>", "<eos>"),
    ("qwen2.5-7b-instruct.jinja", "", "<|im_end|>"),
    ("mistral-nemo-instruct-2407.jinja", "<s>", "</s>"),
    ("phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>"),
    ("hermes-3-llama-3.1-8b-tool-use.jinja", "<|begin_of_text|>", "<|im_end|>"),
];

const TOOLS: &str = r#"[{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city, now.", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}, {"type": "function", "function": {"name": "add", "description": "Add two numbers.", "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}}]"#;

fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage::new(role, content)
}

/// A conversation where the assistant called two tools and got their results.
fn with_tool_calls() -> Vec<ChatMessage> {
    let call = |id: &str, name: &str, arguments: &str| ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
    };
    vec![
        msg("user", "What is the weather in Paris, and what is 2 + 3?"),
        ChatMessage {
            tool_calls: vec![
                call("call1abcd", "get_weather", r#"{"city": "Paris", "unit": "celsius"}"#),
                call("call2efgh", "add", r#"{"b": 3, "a": 2}"#),
            ],
            ..msg("assistant", "")
        },
        ChatMessage { tool_call_id: Some("call1abcd".into()), ..msg("tool", "18 degrees, sunny") },
        ChatMessage { tool_call_id: Some("call2efgh".into()), ..msg("tool", "5") },
    ]
}

/// Python's rendering: `Ok(text)` or `Err(message)` when the template raised.
fn reference(
    template: &str,
    messages: &[ChatMessage],
    bos: &str,
    eos: &str,
    tools: Option<&str>,
) -> Result<String, String> {
    // The conversation as the host renders it, its tool calls' keys in their order.
    let messages = tabagent_host::template::messages_json(messages);
    let req = format!(
        r#"{{"template": {}, "messages": {messages}, "add_generation_prompt": true, "bos_token": {}, "eos_token": {}, "tools": {}}}"#,
        json!(template),
        json!(bos),
        json!(eos),
        json!(tools),
    );
    let mut child = Command::new(python())
        .arg(repo_root().join("tests/templates/render.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(req.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    match (v.get("ok"), v.get("error")) {
        (Some(t), _) => Ok(t.as_str().unwrap().to_string()),
        (_, Some(e)) => Err(e.as_str().unwrap().to_string()),
        _ => panic!("{v}"),
    }
}

#[test]
fn model_templates_render_as_python_jinja2_renders_them() {
    let conversations: Vec<(&str, Vec<ChatMessage>)> = vec![
        ("one user turn", vec![msg("user", "What is the capital of France?")]),
        (
            "system and history",
            vec![
                msg("system", "You are terse."),
                msg("user", "Hi there"),
                msg("assistant", "Hello! How can I help?"),
                msg("user", "Tell me a joke about \"quotes\" & <tags>.\nTwo lines."),
            ],
        ),
        (
            "history without system",
            vec![msg("user", "2+2?"), msg("assistant", "4"), msg("user", "And 3+3?")],
        ),
        ("tool calls and their results", with_tool_calls()),
    ];
    let (mut compared, mut raised) = (0, 0);
    for (file, bos, eos) in TEMPLATES {
        let source =
            std::fs::read_to_string(repo_root().join("tests/templates").join(file)).unwrap();
        let template = ChatTemplate::new(source.clone());
        // The host gives tool calls only to templates with a tool format of their own; the
        // others get them as JSON turns.
        let native = tabagent_host::tools::ToolFormat::detect(&source).native();
        for (what, messages) in &conversations {
            if messages.iter().any(|m| !m.tool_calls.is_empty()) && !native {
                continue;
            }
            for tools in [None, Some(TOOLS)] {
                let expected = reference(&source, messages, bos, eos, tools);
                let input = TemplateInput {
                    messages,
                    add_generation_prompt: true,
                    bos_token: bos,
                    eos_token: eos,
                    tools,
                };
                let ours = template.render(&input);
                let case = format!("{file}, {what}, tools: {}", tools.is_some());
                match (&expected, &ours) {
                    (Ok(e), Ok(o)) => assert_eq!(o, e, "{case}"),
                    // A template that refuses a conversation (Gemma: no system role) refuses it
                    // here too, with its own words.
                    (Err(e), Err(o)) => {
                        assert_eq!(o.kind(), "invalid-input", "{case}");
                        assert!(o.to_string().contains(e.as_str()), "{case}: {o} vs {e}");
                        raised += 1;
                    }
                    _ => panic!("{case}: python {expected:?}, host {ours:?}"),
                }
                compared += 1;
            }
        }
    }
    println!("{compared} renders compared, {raised} refused by the template on both sides");
    assert!(raised < compared / 4, "most conversations render");
}

/// SmolLM2 with its template swapped for one of the same length that llama.cpp's built-in
/// matcher does not know.
fn model_with_template(template: &str) -> std::path::PathBuf {
    let mut bytes = std::fs::read(tabagent_tests::model_path()).unwrap();
    let original =
        std::fs::read_to_string(repo_root().join("tests/templates/smollm2-135m-instruct.jinja"))
            .unwrap();
    assert!(template.len() <= original.len());
    let padded = format!("{template}{{#{}#}}", " ".repeat(original.len() - template.len() - 4));
    assert_eq!(padded.len(), original.len());
    let at = bytes.windows(original.len()).position(|w| w == original.as_bytes()).unwrap();
    bytes[at..at + original.len()].copy_from_slice(padded.as_bytes());
    let file =
        tabagent_tests::scratch().join(format!("tabagent-template-{}.gguf", std::process::id()));
    std::fs::write(&file, bytes).unwrap();
    file
}

#[tokio::test]
async fn a_template_llama_cpp_does_not_know_is_rendered_as_jinja_through_a_guest() {
    use crate::guests::GENERATE;
    use tabagent_host::engine::llama::LlamaEngine;
    use tabagent_host::engine::{Engine, LoadOptions};
    use tabagent_host::source::ResolvedModel;
    let file = model_with_template(
        "{% for m in messages %}<<{{ m['role'] }}>> {{ m['content'] | trim }}\n{% endfor %}\
         {% if add_generation_prompt %}<<assistant>>{% endif %}",
    );
    let model =
        LlamaEngine::new().load(&ResolvedModel::unchecked(&file), &LoadOptions::default()).unwrap();
    let chat = [msg("system", "Be brief."), msg("user", "  Hi  ")];
    let text = model.apply_chat_template(&chat, true).unwrap();
    assert_eq!(text, "<<system>> Be brief.\n<<user>> Hi\n<<assistant>>");
    // A guest's chat prompt goes through the same template.
    let req = json!({
        "prompt": {"chat": [{"role": "user", "content": "Hi"}]},
        "options": {"temperature": 0.0, "max_tokens": 4},
        "mode": "generate",
    });
    let grant = tabagent_tests::grant("smollm2", &file);
    let out = tabagent_tests::run_json(GENERATE, grant, &[&req.to_string()]).await;
    let usage = &out["runs"][0]["generate"]["ok"]["usage"];
    let expected = model.tokenize("<<user>> Hi\n<<assistant>>", true, true).unwrap().len();
    assert_eq!(usage["prompt_tokens"].as_u64(), Some(expected as u64), "{out}");
    let _ = std::fs::remove_file(&file);
}

/// `tabagent-host run` of the chat example on Gemma 3 270M (a file without a chat template).
fn chat_on_gemma(extra: &[&str]) -> (bool, String, String) {
    let gemma = repo_root().join("models/gemma-3-270m-q4_k_m.gguf");
    let out = Command::new(tabagent_tests::host_bin())
        .args(["run", crate::guests::CHAT.path().to_str().unwrap()])
        .arg("--model")
        .arg(format!("gemma={}", gemma.display()))
        .args(extra)
        .args(["--", "--temperature", "0", "--max-tokens", "8", "What is the capital of France?"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn a_file_without_a_template_chats_with_one_the_user_names() {
    // None in the file, none named: a clear error that says how, with the names.
    let (ok, _, err) = chat_on_gemma(&[]);
    assert!(!ok, "{err}");
    assert!(err.contains("has no chat template") && err.contains("--chat-template"), "{err}");
    assert!(err.contains("chatml, gemma, llama2, llama3, mistral, phi3, zephyr"), "{err}");
    // A built-in name: Gemma's turns, 16 prompt tokens (BOS written by the template, once).
    let (ok, reply, err) = chat_on_gemma(&["--chat-template", "gemma=gemma"]);
    assert!(ok, "{err}");
    assert!(!reply.trim().is_empty());
    assert!(err.contains("prompt 16 tokens"), "{err}");
    // The same template from a .jinja file gives the same reply.
    let file =
        tabagent_tests::scratch().join(format!("tabagent-gemma-{}.jinja", std::process::id()));
    let source =
        tabagent_host::template::ChatTemplate::named("gemma").unwrap().source().to_string();
    std::fs::write(&file, source).unwrap();
    let (ok, again, err) =
        chat_on_gemma(&["--chat-template", &format!("gemma={}", file.display())]);
    let _ = std::fs::remove_file(&file);
    assert!(ok, "{err}");
    assert_eq!(again, reply);
    // An unknown name is refused before anything runs, with the names.
    let (ok, _, err) = chat_on_gemma(&["--chat-template", "gemma=vicuna-9000"]);
    assert!(!ok && err.contains("the built-in ones are chatml, gemma"), "{err}");
}

#[tokio::test]
async fn hostile_templates_in_a_model_file_are_refused_in_bounded_time_and_the_host_stays_up() {
    use crate::guests::GENERATE;
    use tabagent_host::engine::llama::LlamaEngine;
    use tabagent_host::engine::{Engine, LoadOptions, Prompt};
    use tabagent_host::params::SamplingRequest;
    use tabagent_host::source::ResolvedModel;
    let cases = [
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ '' }}{% endfor %}{% endfor %}",
        "{% set s = namespace(x='ab') %}{% for i in range(64) %}{% set s.x = s.x ~ s.x %}{% endfor %}",
        "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "{% for m in messages %}{{ m.content ",
    ];
    for source in cases {
        let file = model_with_template(source);
        let model = LlamaEngine::new()
            .load(&ResolvedModel::unchecked(&file), &LoadOptions::default())
            .unwrap();
        let start = std::time::Instant::now();
        let e = model.apply_chat_template(&[msg("user", "Hi")], true).unwrap_err();
        assert_eq!(e.kind(), "invalid-input", "{source}: {e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "{source}");
        // The same model still generates from text.
        let session = model
            .new_session(&tabagent_host::engine::SessionOptions {
                context_size: 256,
                batch_size: 64,
                threads: 2,
                ..Default::default()
            })
            .unwrap();
        let params =
            SamplingRequest { max_tokens: Some(4), temperature: Some(0.0), ..Default::default() };
        let mut stream =
            session.generate(Prompt::Text("Hello".into()), params.resolve(1).unwrap()).unwrap();
        let mut done = false;
        while let Some(ev) = stream.next_event().await {
            done |= matches!(ev, tabagent_host::engine::StreamEvent::Done(_));
        }
        assert!(done, "{source}");
        // A guest's chat gets the error as a value, and its next call works.
        let req = json!({
            "prompt": {"chat": [{"role": "user", "content": "Hi"}]},
            "options": {"temperature": 0.0, "max_tokens": 4},
            "mode": "generate",
            "repeat": 1,
        });
        let out = tabagent_tests::run_json(
            GENERATE,
            tabagent_tests::grant("smollm2", &file),
            &[&req.to_string()],
        )
        .await;
        assert_eq!(out["runs"][0]["generate"]["error"]["kind"], "invalid-input", "{source}: {out}");
        let _ = std::fs::remove_file(&file);
    }
}
