//! Prints what the `hardware` interface reports.

use serde_json::json;
use tabagent_guest::hardware;

fn main() {
    let cpu = hardware::cpu();
    let mem = hardware::memory();
    let gpus: Vec<_> = hardware::gpus()
        .iter()
        .map(|g| json!({ "name": g.name, "backend": g.backend, "memory_total": g.memory_total }))
        .collect();
    let split = tabagent_test_programs::result_json(
        hardware::recommend_split("smollm2", 2048),
        |r| json!({ "gpu_layers": r.gpu_layers, "total_layers": r.total_layers, "kv": r.kv_cache_bytes, "explanation": r.explanation }),
    );
    let split_not_granted =
        tabagent_test_programs::result_json(hardware::recommend_split("other", 2048), |r| {
            json!(r.gpu_layers)
        });
    let kernels = tabagent_test_programs::result_json(hardware::kernels(), |k| {
        json!({
            "variant": k.variant,
            "forced": k.forced,
            "features": k.features,
            "available": k.available.iter().map(|v| json!({ "name": v.name, "score": v.score })).collect::<Vec<_>>(),
        })
    });
    tabagent_test_programs::emit(&json!({
        "vendor": cpu.vendor,
        "brand": cpu.brand,
        "physical_cores": cpu.physical_cores,
        "logical_threads": cpu.logical_threads,
        "features": cpu.features,
        "caches": [cpu.l1d_cache, cpu.l2_cache, cpu.l3_cache],
        "family": cpu.family,
        "model": cpu.model,
        "microarchitecture": cpu.microarchitecture,
        "variant": cpu.variant,
        "memory_total": mem.total,
        "memory_available": mem.available,
        "gpus": gpus,
        "kernels": kernels,
        "split": split,
        "split_not_granted": split_not_granted,
    }));
}
