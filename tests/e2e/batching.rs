//! Continuous batching: concurrent guests on one model share one context and one decode per
//! step, and each greedy stream still gives its solo text (or differs only where the solo run's
//! top two logits were within rounding of each other); with every sequence busy, new work waits
//! without touching running sequences; a session larger than a sequence's share is refused.

use crate::guests::GENERATE;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use serde_json::{Value, json};
use std::num::NonZeroU32;
use std::sync::Arc;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::engine::{Engine, LoadOptions, SessionOptions};
use tabagent_host::params::LoadRequest;
use tabagent_host::runtime::{Host, HostOptions};
use tabagent_host::source::ResolvedModel;
use tabagent_tests::{json_of, model_path, run_json, run_on, smollm2};

const PROMPTS: [&str; 4] = [
    "The history of the printing press begins",
    "Here is a recipe for a simple tomato soup:",
    "The three laws of thermodynamics are",
    "Once upon a time, in a village by the sea,",
];

fn tokens_of(text: &str) -> Vec<u32> {
    let backend = tabagent_host::engine::llama::backend().unwrap();
    let model =
        LlamaModel::load_from_file(backend, model_path(), &LlamaModelParams::default()).unwrap();
    model.vocab().tokenize(text.as_bytes(), true, false).into_iter().map(|t| t.0 as u32).collect()
}

fn request(prompt: &[u32], max_tokens: u32) -> Value {
    json!({
        "prompt": { "tokens": prompt },
        "session": { "context_size": 512 },
        "options": { "temperature": 0.0, "max_tokens": max_tokens },
        "mode": "stream",
    })
}

fn generated(v: &Value) -> Vec<u32> {
    let outcome = &v["runs"][0]["stream"]["outcome"];
    outcome["tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

/// The gap between the two largest logits after `context`, from a plain llama.cpp context.
fn top_two_gap(context: &[u32]) -> f32 {
    let backend = tabagent_host::engine::llama::backend().unwrap();
    let model =
        LlamaModel::load_from_file(backend, model_path(), &LlamaModelParams::default()).unwrap();
    let params = LlamaContextParams::default().with_n_ctx(NonZeroU32::new(1024)).with_n_batch(1024);
    let mut ctx = model.new_context(backend, params).unwrap();
    let mut batch = LlamaBatch::new(1024, 1);
    for (i, t) in context.iter().enumerate() {
        batch.add(LlamaToken(*t as i32), i as i32, &[0], i == context.len() - 1).unwrap();
    }
    ctx.decode(&mut batch).unwrap();
    let mut logits = ctx.get_logits_ith(context.len() as i32 - 1).to_vec();
    logits.sort_by(|a, b| b.total_cmp(a));
    logits[0] - logits[1]
}

/// Each batched stream against its solo run: equal, or parting where the solo run's top two
/// logits were within 1e-3 (rounding of batched kernels, not a bug). Returns how many parted.
fn check_against_solo(prompts: &[Vec<u32>], solo: &[Vec<u32>], batched: &[Value]) -> usize {
    let mut numerical = 0;
    for (i, v) in batched.iter().enumerate() {
        let tokens = generated(v);
        if tokens == solo[i] {
            continue;
        }
        let at = tokens.iter().zip(&solo[i]).take_while(|(a, b)| a == b).count();
        assert!(at < solo[i].len(), "stream {i} ran longer than its solo run");
        let context: Vec<u32> = prompts[i].iter().chain(&solo[i][..at]).copied().collect();
        let gap = top_two_gap(&context);
        assert!(
            gap < 1e-3,
            "stream {i} differs from its solo run at token {at}, top-two gap {gap}"
        );
        numerical += 1;
    }
    numerical
}

/// Poll every future together (each a guest of its own on one host) and collect their outputs.
async fn join_all<F: std::future::Future<Output = Value>>(fs: Vec<F>) -> Vec<Value> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = fs.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<Value>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, r) in pinned.iter_mut().zip(results.iter_mut()) {
            if r.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *r = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn concurrent_greedy_guests_get_their_solo_text() {
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| tokens_of(p)).collect();
    let mut solo = Vec::new();
    for p in &prompts {
        solo.push(generated(&run_json(GENERATE, smollm2(), &[&request(p, 48).to_string()]).await));
    }
    let reqs: Vec<String> = prompts.iter().map(|p| request(p, 48).to_string()).collect();
    let together = join_all(
        reqs.iter()
            .map(|r| async move { run_json(GENERATE, smollm2(), &[r.as_str()]).await })
            .collect(),
    )
    .await;
    let numerical = check_against_solo(&prompts, &solo, &together);
    eprintln!(
        "batched streams that part from their solo run by rounding: {numerical} of {}",
        PROMPTS.len()
    );
}

#[tokio::test]
async fn with_every_sequence_busy_new_work_waits_and_running_sequences_stay_intact() {
    // Two sequences of 512 cells: two generations of ~10 + 400 tokens run, a third must wait
    // for one to end.
    let engine = Arc::new(LlamaEngine::new().with_parallel(2).with_kv_cache(1024));
    let host = Host::with_options(engine, HostOptions::default()).unwrap();
    let prompts: Vec<Vec<u32>> = PROMPTS[..3].iter().map(|p| tokens_of(p)).collect();
    let mut solo = Vec::new();
    for p in &prompts {
        let out = run_on(&host, GENERATE, smollm2(), &[&request(p, 400).to_string()]).await;
        solo.push(generated(&json_of(GENERATE, &out)));
    }
    let reqs: Vec<String> = prompts.iter().map(|p| request(p, 400).to_string()).collect();
    let host = &host;
    let outs = join_all(
        reqs.iter()
            .map(|r| async move {
                json_of(GENERATE, &run_on(host, GENERATE, smollm2(), &[r.as_str()]).await)
            })
            .collect(),
    )
    .await;
    let numerical = check_against_solo(&prompts, &solo, &outs);
    eprintln!("with every sequence busy, streams that part by rounding: {numerical} of 3");
}

#[test]
fn a_session_larger_than_a_sequences_share_of_the_cache_is_refused() {
    let engine = LlamaEngine::new().with_parallel(2).with_kv_cache(1024);
    let model =
        engine.load(&ResolvedModel::unchecked(model_path()), &LoadOptions::default()).unwrap();
    let options = |context_size| SessionOptions {
        context_size,
        batch_size: 512,
        threads: 2,
        cache_scope: None,
        chat_template: None,
    };
    let e = model.new_session(&options(1024)).err().unwrap();
    assert_eq!(e.kind(), "resource-exhausted");
    assert!(e.message().contains("KV cache of 512 tokens per sequence"), "{e}");
    assert!(model.new_session(&options(512)).is_ok());
}

/// The usage of a stream run.
fn cached_tokens(v: &Value) -> u64 {
    v["runs"][0]["stream"]["outcome"]["usage"]["cached_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("{v}"))
}

/// The same component with a custom section added: other bytes, so another app to the host.
fn other_component(path: &std::path::Path, dir: &std::path::Path) -> std::path::PathBuf {
    let mut bytes = std::fs::read(path).unwrap();
    let name = b"tabagent-test";
    let payload = b"another component";
    bytes.push(0); // custom section
    bytes.push((1 + name.len() + payload.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    let out = dir.join("other.wasm");
    std::fs::write(&out, bytes).unwrap();
    out
}

#[tokio::test]
async fn instances_of_one_component_share_prompt_prefixes_and_other_components_do_not() {
    let head = tokens_of(PROMPTS[0]);
    let mut longer = head.clone();
    longer.extend(&tokens_of(" in the fifteenth century")[1..]);
    // The solo text of the longer prompt, on a host that has cached nothing.
    let fresh = Host::with_options(Arc::new(LlamaEngine::new()), HostOptions::default()).unwrap();
    let solo = run_on(&fresh, GENERATE, smollm2(), &[&request(&longer, 24).to_string()]).await;
    let solo = json_of(GENERATE, &solo);
    assert_eq!(cached_tokens(&solo), 0);

    let engine = Arc::new(LlamaEngine::new().with_parallel(2).with_kv_cache(1024));
    let host = Host::with_options(engine, HostOptions::default()).unwrap();
    // Kept loaded between the runs, as `serve` keeps its models.
    let source = smollm2().remove("smollm2").unwrap();
    let _kept = host.registry().load_request(&source, LoadRequest::default()).unwrap();
    let first = run_on(&host, GENERATE, smollm2(), &[&request(&head, 8).to_string()]).await;
    assert_eq!(cached_tokens(&json_of(GENERATE, &first)), 0);
    // Another instance of the same component: its prompt's head is read from the first's cache,
    // and what it generates is what it generates alone.
    let second = run_on(&host, GENERATE, smollm2(), &[&request(&longer, 24).to_string()]).await;
    let second = json_of(GENERATE, &second);
    assert!(cached_tokens(&second) >= head.len() as u64, "{second}");
    assert_eq!(generated(&second), generated(&solo));
    // Another component with the same prompt starts from nothing.
    let dir = tabagent_tests::scratch().join(format!("tabagent-scope-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other = host.load_command(&other_component(&GENERATE.path(), &dir)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let config = tabagent_host::runtime::GuestConfig {
        program: "generate".into(),
        args: vec![request(&longer, 24).to_string()],
        models: smollm2(),
        ..Default::default()
    };
    let third = json_of(GENERATE, &host.run(&other, config).await.unwrap());
    assert_eq!(cached_tokens(&third), 0, "{third}");
    assert_eq!(generated(&third), generated(&solo));
}
