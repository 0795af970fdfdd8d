//! Constrained output through a real guest (the `wasi:nn` one, whose options carry `grammar`
//! and `json-schema`): 100 generations at temperature 1.0 with different seeds against a schema
//! with nested objects, enums, arrays and required fields all parse and validate (Python's
//! `jsonschema`); a GBNF grammar of arithmetic holds every reply to the language; an invalid
//! grammar or schema is refused with the reason.

use crate::guests::NN;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use tabagent_host::params::LoadRequest;
use tabagent_host::runtime::GuestConfig;
use tabagent_host::source::ModelSource;
use tabagent_tests::{app, host, json_of, model_path, python, repo_root};

const PERSON: &str = r#"{
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 24},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "role": {"enum": ["admin", "editor", "viewer"]},
    "address": {
      "type": "object",
      "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 24},
        "zip": {"type": "string", "pattern": "^[0-9]{5}$"}
      },
      "required": ["city", "zip"],
      "additionalProperties": false
    },
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3}
  },
  "required": ["name", "age", "role", "address", "tags"],
  "additionalProperties": false
}"#;

/// Sums and products of up to four terms, each a number or a bracketed pair: bounded, so every
/// reply ends within the token budget.
const ARITHMETIC: &str = r#"root ::= term (op term){0,3}
term ::= number | "(" number op number ")"
op ::= "+" | "-" | "*" | "/"
number ::= [1-9] [0-9]{0,2}
"#;

fn chat(question: &str) -> String {
    format!("<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
}

/// Python's `jsonschema` on each output: `{"valid": n, "failures": [...]}`.
pub(crate) fn validate(schema: &Value, outputs: &[String]) -> Value {
    let mut child = Command::new(python())
        .arg(repo_root().join("tests/constraints/validate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let req = json!({"schema": schema, "outputs": outputs});
    child.stdin.take().unwrap().write_all(req.to_string().as_bytes()).unwrap();
    serde_json::from_slice(&child.wait_with_output().unwrap().stdout).unwrap()
}

/// One run of the `wasi:nn` guest on the model: its output text, or the error it got.
async fn generate(prompt: &str, options: &Value) -> Result<String, Value> {
    let config = GuestConfig {
        program: "nn".into(),
        args: vec!["smol".into(), prompt.into(), options.to_string()],
        nn_graphs: [("smol".to_string(), ModelSource::File(model_path()))].into(),
        ..GuestConfig::default()
    };
    let out = host().run(&app(host(), NN), config).await.expect("run the wasi:nn guest");
    let v = json_of(NN, &out);
    match (v.get("text"), v.get("error")) {
        (Some(t), _) => Ok(t.as_str().unwrap().to_string()),
        (_, Some(e)) => Err(e.clone()),
        _ => panic!("{v}"),
    }
}

#[tokio::test]
async fn a_hundred_sampled_replies_all_match_a_json_schema() {
    // Kept loaded across the runs, as a server keeps its models.
    let source = ModelSource::File(model_path());
    let _kept = host().registry().load_request(&source, LoadRequest::default()).unwrap();
    let schema: Value = serde_json::from_str(PERSON).unwrap();
    let prompt = chat("Describe a fictional employee as JSON.");
    let mut outputs = Vec::new();
    for seed in 0..100u64 {
        let options = json!({"n-predict": 200, "temp": 1.0, "seed": seed, "json-schema": schema});
        outputs
            .push(generate(&prompt, &options).await.unwrap_or_else(|e| panic!("seed {seed}: {e}")));
    }
    let distinct: std::collections::HashSet<&String> = outputs.iter().collect();
    let v = validate(&schema, &outputs);
    println!("{} of 100 valid, {} distinct; first: {}", v["valid"], distinct.len(), outputs[0]);
    assert_eq!(v["valid"], 100, "{}", v["failures"]);
    assert!(distinct.len() > 50, "sampling at temperature 1.0 with 100 seeds varies");
}

/// Whether `s` is in the language of [`ARITHMETIC`].
fn is_arithmetic(s: &str) -> bool {
    fn number(b: &[u8], i: &mut usize) -> bool {
        let start = *i;
        if *i < b.len() && (b'1'..=b'9').contains(&b[*i]) {
            *i += 1;
            while *i < b.len() && b[*i].is_ascii_digit() && *i - start < 3 {
                *i += 1;
            }
            return true;
        }
        false
    }
    fn op(b: &[u8], i: &mut usize) -> bool {
        let ok = *i < b.len() && b"+-*/".contains(&b[*i]);
        *i += usize::from(ok);
        ok
    }
    fn term(b: &[u8], i: &mut usize) -> bool {
        if *i < b.len() && b[*i] == b'(' {
            *i += 1;
            let ok = number(b, i) && op(b, i) && number(b, i) && *i < b.len() && b[*i] == b')';
            *i += usize::from(ok);
            return ok;
        }
        number(b, i)
    }
    let b = s.as_bytes();
    let mut i = 0;
    if !term(b, &mut i) {
        return false;
    }
    for _ in 0..3 {
        if i == b.len() {
            break;
        }
        if !(op(b, &mut i) && term(b, &mut i)) {
            return false;
        }
    }
    i == b.len()
}

#[tokio::test]
async fn a_grammar_holds_every_reply_to_its_language() {
    assert!(is_arithmetic("12*(3+4)-5") && is_arithmetic("7"));
    assert!(!is_arithmetic("12*(3+") && !is_arithmetic("0+1") && !is_arithmetic("1+2+3+4+5"));
    let prompt = chat("Write an arithmetic expression.");
    for seed in 0..20u64 {
        let options = json!({"n-predict": 64, "temp": 1.0, "seed": seed, "grammar": ARITHMETIC});
        let text = generate(&prompt, &options).await.unwrap();
        assert!(is_arithmetic(&text), "seed {seed}: {text:?}");
    }
}

#[test]
fn an_invalid_grammar_or_schema_is_invalid_input_with_the_reason() {
    use tabagent_host::engine::llama::LlamaEngine;
    use tabagent_host::engine::{Constraint, Engine, LoadOptions, Prompt, SessionOptions};
    use tabagent_host::params::SamplingRequest;
    use tabagent_host::source::ResolvedModel;
    let model = LlamaEngine::new()
        .load(&ResolvedModel::unchecked(model_path()), &LoadOptions::default())
        .unwrap();
    let options = SessionOptions {
        context_size: 512,
        batch_size: 512,
        threads: 2,
        cache_scope: None,
        chat_template: None,
    };
    let session = model.new_session(&options).unwrap();
    let run = |c: Constraint| {
        let params =
            SamplingRequest { max_tokens: Some(8), constraint: Some(c), ..Default::default() }
                .resolve(1)?;
        session.generate(Prompt::Text("Hi".into()), params).map(|_| ())
    };
    let cases = [
        (Constraint::Grammar("root ::= (\"a\"".into()), "the grammar does not parse"),
        (Constraint::Grammar("start ::= \"a\"".into()), "the grammar does not parse"),
        (Constraint::JsonSchema("{\"type\": ".into()), "the JSON schema is not JSON"),
        (
            Constraint::JsonSchema(
                r##"{"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}"##.into(),
            ),
            "the JSON schema cannot be turned into a grammar",
        ),
    ];
    for (c, words) in cases {
        let e = run(c.clone()).unwrap_err();
        assert_eq!(e.kind(), "invalid-input", "{c:?}: {e}");
        assert!(e.to_string().contains(words), "{c:?}: {e}");
        println!("{c:?}: {e}");
    }
}

#[tokio::test]
async fn a_guest_with_an_invalid_grammar_gets_an_error_and_the_host_goes_on() {
    let prompt = chat("Hi");
    let e = generate(&prompt, &json!({"grammar": "root ::= (\"a\""})).await.unwrap_err();
    assert_eq!(e["code"], "ErrorCode::RuntimeError", "{e}");
    // The host is fine: a plain generation still works, and a valid grammar too.
    assert!(generate(&prompt, &json!({"n-predict": 4, "temp": 0})).await.is_ok());
    let ab = generate(&prompt, &json!({"n-predict": 8, "grammar": "root ::= (\"a\" | \"b\"){3}"}))
        .await
        .unwrap();
    assert!(ab.len() == 3 && ab.chars().all(|c| c == 'a' || c == 'b'), "{ab:?}");
}

/// The `generate` guest's reply text, through `tabagent:llm` (sampling options' `grammar` and
/// `json-schema`, session options' `chat-template`).
async fn through_the_model_interface(model: &std::path::Path, req: Value) -> Value {
    use crate::guests::GENERATE;
    let grant = tabagent_tests::grant("m", model);
    let mut req = req;
    req["model"] = json!("m");
    tabagent_tests::run_json(GENERATE, grant, &[&req.to_string()]).await
}

#[tokio::test]
async fn the_model_interface_holds_output_to_a_schema_or_a_grammar() {
    let schema: Value = serde_json::from_str(PERSON).unwrap();
    let chat = json!([{"role": "user", "content": "Describe a fictional employee as JSON."}]);
    let mut outputs = Vec::new();
    for seed in 0..5u64 {
        let v = through_the_model_interface(
            &model_path(),
            json!({"prompt": {"chat": chat}, "mode": "stream",
                   "options": {"temperature": 1.0, "seed": seed, "max_tokens": 200, "json_schema": schema}}),
        )
        .await;
        let outcome = &v["runs"][0]["stream"]["outcome"];
        let pieces: String = v["runs"][0]["stream"]["pieces"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(outcome["text"].as_str().unwrap(), pieces, "streamed pieces make the text");
        outputs.push(pieces);
    }
    let v = validate(&schema, &outputs);
    assert_eq!(v["valid"], 5, "{}", v["failures"]);

    let v = through_the_model_interface(
        &model_path(),
        json!({"prompt": {"text": "Arithmetic: "}, "mode": "generate",
               "options": {"temperature": 1.0, "seed": 3, "max_tokens": 64, "grammar": ARITHMETIC}}),
    )
    .await;
    let text = v["runs"][0]["generate"]["ok"]["text"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(is_arithmetic(text), "{text:?}");

    // Both at once is refused.
    let v = through_the_model_interface(
        &model_path(),
        json!({"prompt": {"text": "x"}, "mode": "generate",
               "options": {"max_tokens": 4, "grammar": ARITHMETIC, "json_schema": schema}}),
    )
    .await;
    assert_eq!(v["runs"][0]["generate"]["error"]["kind"], "invalid-input", "{v}");
}

#[tokio::test]
async fn a_session_names_its_chat_template() {
    // Gemma 3 270M has none in its file; the session names `gemma`.
    let gemma = repo_root().join("models/gemma-3-270m-q4_k_m.gguf");
    let v = through_the_model_interface(
        &gemma,
        json!({"prompt": {"chat": [{"role": "user", "content": "What is the capital of France?"}]},
               "session": {"chat_template": "gemma"}, "mode": "generate",
               "options": {"temperature": 0.0, "max_tokens": 4}}),
    )
    .await;
    assert_eq!(v["runs"][0]["generate"]["ok"]["usage"]["prompt_tokens"], 16, "{v}");
    // A template string works the same way.
    let v = through_the_model_interface(
        &gemma,
        json!({"prompt": {"chat": [{"role": "user", "content": "Hi"}]}, "mode": "generate",
               "session": {"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"},
               "options": {"temperature": 0.0, "max_tokens": 2}}),
    )
    .await;
    // "Hi" and the BOS the model adds: 2 tokens.
    assert_eq!(v["runs"][0]["generate"]["ok"]["usage"]["prompt_tokens"], 2, "{v}");
}
