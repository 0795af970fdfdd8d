//! A hostile guest: its first argument picks the abuse. Prints JSON where it survives.

use serde_json::json;
use std::hint::black_box;
use tabagent_guest::bindings::tabagent::llm::{inference as inf, models};
use tabagent_guest::{Model, SessionOptions};
use tabagent_test_programs::{emit, generation_json, greedy, result_json};

fn depth(n: u64) -> u64 {
    if black_box(n) == 0 { 0 } else { depth(n - 1) + black_box(1) }
}

/// Load model handles (at most `most`) until the host refuses; print how many were held and the
/// refusal.
fn hold_models_until_refused(most: usize) {
    let mut handles = Vec::new();
    let mut error = None;
    for _ in 0..most {
        match models::Model::load("smollm2", None) {
            Ok(m) => handles.push(m),
            Err(e) => {
                error = Some(tabagent_test_programs::error_json(&e.into()));
                break;
            }
        }
    }
    emit(&json!({ "held": handles.len(), "error": error }));
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    match what.as_str() {
        "loop" => loop {
            black_box(());
        },
        "recursion" => println!("{}", depth(u64::MAX)),
        "memory" => {
            // Grab 16 MiB blocks until the host refuses to grow memory.
            let mut kept: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut v: Vec<u8> = Vec::new();
                if v.try_reserve_exact(16 << 20).is_err() {
                    break;
                }
                v.resize(16 << 20, 1);
                kept.push(v);
            }
            emit(&json!({ "allocated_mib": kept.len() * 16 }));
        }
        "resources" => {
            hold_models_until_refused(1_000_000);
        }
        "memory-abort" => {
            // Ask for more than the limit at once, the way an unchecked allocation does: the
            // allocator fails and the guest aborts (a trap) right after the host refused.
            let v: Vec<u8> = vec![1; black_box(512 << 20)];
            emit(&json!({ "unexpected": v.len() }));
        }
        "completion-churn" => {
            // Start and drop a thousand completions, then hold model handles until refused: the
            // count must still include the model and session held throughout.
            let model = models::Model::load("smollm2", None).expect("load");
            let options = inf::SessionOptions {
                context_size: Some(256),
                batch_size: None,
                threads: None,
                seed: None,
                chat_template: None,
            };
            let s = inf::Session::create(&model, &options).expect("session");
            for _ in 0..1000 {
                let c = s.stream(&inf::Prompt::Text("a".into()), &greedy(1)).expect("stream");
                drop(c);
            }
            hold_models_until_refused(100_000);
        }
        "big-argument" => {
            let mib: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(256);
            let model = Model::load("smollm2").expect("load");
            let text = "a".repeat(mib << 20);
            emit(
                &json!({ "tokenize": result_json(model.raw().tokenize(&text, false, false), |t| json!(t.len())) }),
            );
        }
        "max-tokens" => {
            let model = Model::load("smollm2").expect("load");
            let s = model
                .session_with(SessionOptions {
                    context_size: Some(256),
                    batch_size: None,
                    threads: None,
                    seed: None,
                    chat_template: None,
                })
                .expect("session");
            let r =
                s.raw().generate(&inf::Prompt::Text("Count: 1, 2, 3,".into()), &greedy(u32::MAX));
            emit(
                &json!({ "context": s.context_size(), "generate": result_json(r, |g| generation_json(&g)) }),
            );
        }
        "generate-forever" => {
            let model = Model::load("smollm2").expect("load");
            let s = model
                .session_with(SessionOptions {
                    context_size: Some(4096),
                    batch_size: None,
                    threads: None,
                    seed: None,
                    chat_template: None,
                })
                .expect("session");
            let mut o = greedy(8000);
            o.stop = vec!["@@never@@".into()];
            // Repeat until something stops us.
            loop {
                let r = s
                    .raw()
                    .generate(&inf::Prompt::Text("List every number from one upwards:".into()), &o);
                eprintln!(
                    "generate returned: {}",
                    result_json(r, |g| json!(g.usage.generated_tokens))
                );
            }
        }
        "forged-handle" => {
            // A handle number the host never gave out.
            let forged = unsafe { models::Model::from_handle(123_456) };
            let r = forged.metadata();
            emit(&json!({ "unexpected": format!("{:?}", r.map(|m| m.name)) }));
        }
        "stale-handle" => {
            let model = models::Model::load("smollm2", None).expect("load");
            let handle = model.take_handle();
            drop(unsafe { models::Model::from_handle(handle) });
            // The handle was dropped; use it again.
            let stale = unsafe { models::Model::from_handle(handle) };
            let r = stale.metadata();
            emit(&json!({ "unexpected": format!("{:?}", r.map(|m| m.name)) }));
        }
        other => {
            eprintln!("unknown abuse '{other}'");
            tabagent_guest::exit(2);
        }
    }
}
