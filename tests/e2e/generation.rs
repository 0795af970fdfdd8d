//! Generation through a real guest and the real model: parity with a direct llama-cpp-2 loop,
//! streaming, finish reasons, stop sequences, seeds, prompt caching and concurrent guests.

use crate::guests::GENERATE;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use serde_json::{Value, json};
use tabagent_tests::reference::{LoopParams, greedy_loop};
use tabagent_tests::{model_path, run_json, smollm2};

const PROMPT: &str = "<|im_start|>user\nWhat is the capital of France? Answer in one sentence.<|im_end|>\n<|im_start|>assistant\n";

async fn generate(request: Value) -> Value {
    run_json(GENERATE, smollm2(), &[&request.to_string()]).await
}

fn greedy_request(max_tokens: u32) -> Value {
    json!({
        "prompt": { "text": PROMPT },
        "session": { "context_size": 2048, "batch_size": 512, "threads": tabagent_host::hardware::default_threads() },
        "options": { "temperature": 0.0, "max_tokens": max_tokens },
        "mode": "generate",
    })
}

/// The reference loop (shared with the benchmark) on the same prompt and settings.
fn direct_greedy(prompt: &str, max_tokens: u32) -> (Vec<u32>, usize) {
    let backend = tabagent_host::engine::llama::backend().expect("backend");
    let model =
        LlamaModel::load_from_file(backend, model_path(), &LlamaModelParams::default()).unwrap();
    let threads = tabagent_host::hardware::default_threads();
    let p = LoopParams { threads, max_tokens, prompt_reps: 0 };
    let (_, tokens, prompt_len) = greedy_loop(backend, &model, prompt, p).unwrap();
    (tokens, prompt_len)
}

fn tokens(v: &Value) -> Vec<u64> {
    v["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()).collect()
}

#[tokio::test]
async fn greedy_tokens_equal_a_direct_llama_cpp_loop() {
    let v = generate(greedy_request(40)).await;
    let g = &v["runs"][0]["generate"]["ok"];
    let (direct, prompt_len) =
        tokio::task::spawn_blocking(|| direct_greedy(PROMPT, 40)).await.unwrap();
    let direct: Vec<u64> = direct.into_iter().map(u64::from).collect();
    assert!(!direct.is_empty());
    assert_eq!(tokens(g), direct, "guest text: {}", g["text"]);
    assert_eq!(g["usage"]["prompt_tokens"], prompt_len);
    assert_eq!(g["usage"]["generated_tokens"], direct.len());
    assert!(g["text"].as_str().unwrap().contains("Paris"), "{}", g["text"]);
}

#[tokio::test]
async fn streamed_pieces_concatenate_to_the_generated_text() {
    let mut req = greedy_request(48);
    req["mode"] = json!("both");
    let v = generate(req).await;
    let run = &v["runs"][0];
    let g = &run["generate"]["ok"];
    let s = &run["stream"];
    assert!(s["error"].is_null(), "{s}");
    let pieces: Vec<&str> =
        s["pieces"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(pieces.len() > 1, "expected many pieces, got {pieces:?}");
    assert_eq!(pieces.concat(), g["text"].as_str().unwrap());
    assert_eq!(s["outcome"]["text"], g["text"]);
    assert_eq!(s["outcome"]["tokens"], g["tokens"]);
    assert_eq!(s["outcome"]["finish"], g["finish"]);
}

#[tokio::test]
async fn max_tokens_ends_with_length() {
    let v = generate(greedy_request(5)).await;
    let g = &v["runs"][0]["generate"]["ok"];
    assert_eq!(g["finish"], "length");
    assert_eq!(tokens(g).len(), 5);
    assert_eq!(g["usage"]["generated_tokens"], 5);
}

#[tokio::test]
async fn end_of_generation_token_ends_with_stop() {
    let v = generate(greedy_request(200)).await;
    let g = &v["runs"][0]["generate"]["ok"];
    assert_eq!(g["finish"], "stop", "{g}");
    assert!(tokens(g).len() < 200);
    // <|im_end|> is not part of the text.
    assert!(!g["text"].as_str().unwrap().contains("<|im_end|>"));
}

#[tokio::test]
async fn stop_sequences_end_with_stop_sequence_and_are_cut() {
    let full = generate(greedy_request(40)).await;
    let text = full["runs"][0]["generate"]["ok"]["text"].as_str().unwrap().to_string();
    // Stop at the second word of the reply.
    let stop: String =
        text.split_whitespace().nth(1).expect("a reply of two words or more").to_string();
    let at = text.find(&stop).unwrap();
    let mut req = greedy_request(40);
    req["options"]["stop"] = json!([stop]);
    req["mode"] = json!("both");
    let v = generate(req).await;
    let g = &v["runs"][0]["generate"]["ok"];
    assert_eq!(g["finish"], "stop-sequence", "{g}");
    assert_eq!(g["text"].as_str().unwrap(), &text[..at]);
    let pieces: String = v["runs"][0]["stream"]["pieces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(pieces, text[..at]);
    assert_eq!(v["runs"][0]["stream"]["outcome"]["finish"], "stop-sequence");
}

#[tokio::test]
async fn a_fixed_seed_reproduces_the_same_text() {
    let request = |seed: u64| {
        json!({
            "prompt": { "text": "Once upon a time" },
            "options": { "temperature": 0.9, "top_k": 100, "top_p": 0.95, "max_tokens": 32, "seed": seed },
            "mode": "generate",
            "repeat": 2,
        })
    };
    let a = generate(request(1234)).await;
    let b = generate(request(1234)).await;
    let c = generate(request(99)).await;
    let text =
        |v: &Value, i: usize| v["runs"][i]["generate"]["ok"]["text"].as_str().unwrap().to_string();
    assert_eq!(text(&a, 0), text(&a, 1), "same seed, same session");
    assert_eq!(text(&a, 0), text(&b, 0), "same seed, another guest");
    assert_ne!(text(&a, 0), text(&c, 0), "another seed");
}

#[tokio::test]
async fn a_repeated_prompt_reuses_the_kv_cache() {
    let mut req = greedy_request(16);
    req["repeat"] = json!(2);
    let v = generate(req).await;
    let first = &v["runs"][0]["generate"]["ok"];
    let second = &v["runs"][1]["generate"]["ok"];
    let prompt_tokens = first["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(first["usage"]["cached_tokens"], 0);
    assert_eq!(second["usage"]["cached_tokens"], prompt_tokens - 1);
    assert_eq!(first["tokens"], second["tokens"]);
}

#[tokio::test]
async fn two_guests_generating_at_once_get_the_same_tokens() {
    let (a, b) = tokio::join!(generate(greedy_request(24)), generate(greedy_request(24)));
    let (ga, gb) = (&a["runs"][0]["generate"]["ok"], &b["runs"][0]["generate"]["ok"]);
    assert!(tokens(ga).len() > 3, "{ga}");
    assert_eq!(tokens(ga), tokens(gb));
    assert_eq!(ga["finish"], gb["finish"]);
}

#[tokio::test]
async fn chat_prompts_apply_the_template() {
    let v = generate(json!({
        "prompt": { "chat": [{ "role": "user", "content": "What is the capital of France? Answer in one sentence." }] },
        "session": { "context_size": 2048, "batch_size": 512, "threads": tabagent_host::hardware::default_threads() },
        "options": { "temperature": 0.0, "max_tokens": 40 },
        "mode": "generate",
    }))
    .await;
    let chat = &v["runs"][0]["generate"]["ok"];
    let text = generate(greedy_request(40)).await;
    // The chat prompt formats to exactly PROMPT, so the reply is the same.
    assert_eq!(chat["tokens"], text["runs"][0]["generate"]["ok"]["tokens"]);
}
