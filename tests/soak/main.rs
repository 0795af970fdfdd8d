//! Process-wide measurements that other tests in the same process would disturb: resident memory
//! over a thousand load/session/unload cycles of the real model.

use std::sync::Arc;
use std::time::Instant;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::engine::{LoadOptions, SessionOptions};
use tabagent_host::registry::Registry;
use tabagent_host::source::ModelSource;
use tabagent_tests::model_path;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_thousand_load_unload_cycles_do_not_leak() {
    let cycles: usize =
        std::env::var("TABAGENT_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    // A cache sized for the sessions of this test (four sequences of 256 tokens): the test is
    // about what each cycle leaks, not about the default cache's size.
    let engine = LlamaEngine::new().with_parallel(4).with_kv_cache(4 * 256);
    let registry = Registry::new(Arc::new(engine));
    let source = ModelSource::File(model_path());
    let opts = SessionOptions {
        context_size: 256,
        batch_size: 64,
        threads: 1,
        cache_scope: None,
        chat_template: None,
    };
    // Warm up: the first cycles allocate llama.cpp's and the allocator's long-lived state.
    for _ in 0..20 {
        let m = registry.load(&source, &LoadOptions::default()).unwrap();
        drop(m.new_session(&opts).unwrap());
    }
    let before = rss_kib();
    let start = Instant::now();
    for _ in 0..cycles {
        let m = registry.load(&source, &LoadOptions::default()).unwrap();
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
    assert_eq!(registry.slots(), 0, "a load slot outlived its weights");
}
