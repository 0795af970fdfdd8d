//! Concurrency and lifecycle: parallel loads share one copy, repeated load/unload does not leak,
//! and a generation survives the unload of its model.

use std::sync::Arc;
use std::time::Instant;
use tabagent_host::ctx::LlmShared;
use tabagent_host::engine::LoadOptions;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_tests::{model_path, run_json, smollm2};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn parallel_loads_of_one_model_load_it_once() {
    let shared = LlmShared::new(Arc::new(LlamaEngine::new()));
    let path = model_path();
    let models: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| shared.load(&path, &LoadOptions::default()).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for m in &models[1..] {
        assert!(Arc::ptr_eq(&models[0], m), "a second copy of the weights was loaded");
    }
}

#[test]
fn a_thousand_load_unload_cycles_do_not_leak() {
    let cycles: usize =
        std::env::var("TABAGENT_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let shared = LlmShared::new(Arc::new(LlamaEngine::new()));
    let path = model_path();
    let opts =
        tabagent_host::engine::SessionOptions { context_size: 256, batch_size: 64, threads: 1 };
    // Warm up: the first cycles allocate llama.cpp's and the allocator's long-lived state.
    for _ in 0..20 {
        let m = shared.load(&path, &LoadOptions::default()).unwrap();
        drop(m.new_session(&opts).unwrap());
    }
    let before = rss_kib();
    let start = Instant::now();
    for _ in 0..cycles {
        let m = shared.load(&path, &LoadOptions::default()).unwrap();
        drop(m.new_session(&opts).unwrap());
    }
    let after = rss_kib();
    println!(
        "{cycles} load/session/unload cycles in {:?}: RSS {} MiB -> {} MiB",
        start.elapsed(),
        before / 1024,
        after / 1024
    );
    assert!(after < before + 64 * 1024, "RSS grew from {before} KiB to {after} KiB");
}

#[tokio::test]
async fn two_guests_load_one_model_at_once() {
    let (a, b) =
        tokio::join!(run_json("metadata", smollm2(), &[]), run_json("metadata", smollm2(), &[]));
    assert_eq!(a["vocab_size"], 49152);
    assert_eq!(a, b);
}
