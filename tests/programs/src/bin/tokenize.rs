//! Tokenizes each argument and detokenizes it back; applies the chat template to a short
//! conversation. Prints one JSON object.

use serde_json::json;
use tabagent_guest::{Message, Model};

fn main() {
    let model = Model::load("smollm2").expect("load");
    let texts: Vec<String> = std::env::args().skip(1).collect();
    let rounds: Vec<_> = texts
        .iter()
        .map(|t| {
            let tokens = model.tokenize_plain(t).expect("tokenize");
            let back = model.detokenize(&tokens).expect("detokenize");
            json!({ "text": t, "tokens": tokens, "back": back })
        })
        .collect();
    let with_special = model.tokenize("<|im_start|>user").expect("tokenize special");
    let template = model
        .apply_chat_template(&[Message::system("You are terse."), Message::user("Hi there")])
        .expect("template");
    let raw_no_assistant = model
        .raw()
        .apply_chat_template(
            &[tabagent_guest::bindings::tabagent::llm::models::ChatMessage {
                role: "user".into(),
                content: "Hi".into(),
                tool_calls: Vec::new(),
                tool_call_id: None,
            }],
            false,
        )
        .expect("template without assistant");
    tabagent_test_programs::emit(&json!({
        "rounds": rounds,
        "special": with_special,
        "template": template,
        "template_no_assistant": raw_no_assistant,
    }));
}
