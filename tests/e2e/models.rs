//! Model loading, metadata, tokenization, chat templates, embeddings, hardware and unloading,
//! each through a real guest component and the real SmolLM2 model.

use crate::guests::{EMBED, HARDWARE, METADATA, TOKENIZE, UNLOAD};
use tabagent_tests::{error_kind, run_json, smollm2};

#[tokio::test]
async fn metadata_matches_the_gguf_file() {
    let m = run_json(METADATA, smollm2(), &[]).await;
    assert_eq!(m["name"], "smollm2");
    assert_eq!(m["architecture"], "llama");
    assert_eq!(m["vocab_size"], 49152);
    assert_eq!(m["context_length"], 8192);
    assert_eq!(m["embedding_size"], 576);
    assert_eq!(m["layer_count"], 30);
    assert_eq!(m["head_count"], 9);
    assert_eq!(m["head_count_kv"], 3);
    assert_eq!(m["file_type"], "Q4_1");
    let params = m["parameter_count"].as_u64().unwrap();
    assert!((130_000_000..140_000_000).contains(&params), "{params}");
    let size = std::fs::metadata(tabagent_tests::model_path()).unwrap().len();
    assert_eq!(m["file_size"].as_u64().unwrap(), size);
    // SmolLM2's special tokens: <|im_start|> = 1, <|im_end|> = 2 (GGUF tokenizer.ggml.*_token_id).
    assert_eq!(m["bos"], 1);
    assert_eq!(m["eos"], 2);
    assert!(m["newline"].is_u64());
    assert!(m["chat_template"].as_str().unwrap().contains("<|im_start|>"));
    assert_eq!(m["granted"], serde_json::json!(["smollm2"]));
    // A CPU-only build loads everything to the CPU (30 blocks + the output head).
    assert_eq!(
        m["placement"],
        serde_json::json!({ "loaded_to": "cpu", "gpu_layers": 0, "cpu_layers": 31 })
    );
    assert_eq!(
        m["loaded"],
        serde_json::json!([{ "name": "smollm2", "loaded": true, "sessions": 0 }])
    );
}

#[tokio::test]
async fn tokenize_round_trips_and_the_template_is_chatml() {
    let texts = ["Hello, world!", "  leading spaces and\nnewlines\t", "Ünïcödé – 日本語 🚀", "x"];
    let v = run_json(TOKENIZE, smollm2(), &texts).await;
    for round in v["rounds"].as_array().unwrap() {
        assert_eq!(round["back"], round["text"], "round trip of {}", round["text"]);
        assert!(!round["tokens"].as_array().unwrap().is_empty());
    }
    // parse-special turns the ChatML marker into its single special token.
    assert_eq!(v["special"][0], 1, "{}", v["special"]);
    assert_eq!(
        v["template"],
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    );
    // The file's own template, as Hugging Face renders it: without a system message of the
    // conversation's, SmolLM2's adds its default one.
    assert_eq!(
        v["template_no_assistant"],
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    );
}

#[tokio::test]
async fn embeddings_have_the_model_size_and_rank_similar_texts_higher() {
    let texts = [
        "The cat sat on the mat.",
        "A cat was sitting on the mat.",
        "Quarterly revenue grew by eight percent in Europe.",
    ];
    let v = run_json(EMBED, smollm2(), &texts).await;
    assert_eq!(v["dims"], serde_json::json!([576, 576, 576]));
    for n in v["norms"].as_array().unwrap() {
        assert!((n.as_f64().unwrap() - 1.0).abs() < 1e-3, "not normalized: {n}");
    }
    let cos = |i: usize, j: usize| v["cosine"][i][j].as_f64().unwrap();
    assert!(cos(0, 1) > cos(0, 2), "similar {} <= unrelated {}", cos(0, 1), cos(0, 2));
    assert!(cos(0, 1) > cos(1, 2), "similar {} <= unrelated {}", cos(0, 1), cos(1, 2));
    assert_eq!(error_kind(&v["empty_text"]), Some("invalid-input"));
    assert_eq!(error_kind(&v["no_texts"]), Some("invalid-input"));
}

#[tokio::test]
async fn hardware_agrees_with_the_host() {
    let v = run_json(HARDWARE, smollm2(), &[]).await;
    let cpu = tabagent_host::hardware::cpu();
    assert_eq!(v["vendor"], cpu.vendor);
    assert_eq!(v["brand"], cpu.brand);
    assert_eq!(v["physical_cores"], cpu.physical_cores);
    assert_eq!(v["logical_threads"], cpu.logical_threads);
    assert_eq!(v["features"], serde_json::json!(cpu.features));
    assert_eq!(v["variant"], cpu.variant);
    assert_eq!(v["microarchitecture"], cpu.microarchitecture);
    assert_eq!(
        (v["family"].as_u64(), v["model"].as_u64()),
        (Some(cpu.family.into()), Some(cpu.model.into()))
    );
    assert_eq!(v["caches"], serde_json::json!([cpu.l1d_cache, cpu.l2_cache, cpu.l3_cache]));
    assert!(cpu.l1d_cache > 0 && cpu.l2_cache > 0, "{cpu:?}");
    assert!(v["memory_total"].as_u64().unwrap() > 0);
    assert!(v["memory_available"].as_u64().unwrap() <= v["memory_total"].as_u64().unwrap());
    // A CPU-only build sees no GPU, so nothing is offloaded.
    assert_eq!(v["gpus"], serde_json::json!([]));
    assert_eq!(v["split"]["ok"]["gpu_layers"], 0);
    assert_eq!(v["split"]["ok"]["total_layers"], 30);
    assert_eq!(error_kind(&v["split_not_granted"]), Some("not-granted"));
    // The CPU kernels the engine picked, as the host itself reports them.
    let k = tabagent_host::engine::llama::cpu_kernels().expect("backend starts");
    assert_eq!(v["kernels"]["ok"]["variant"], k.variant, "{v}");
    assert_eq!(v["kernels"]["ok"]["forced"], false);
    assert_eq!(v["kernels"]["ok"]["features"], serde_json::json!(k.features));
    let names_and_scores: Vec<_> = k
        .available
        .iter()
        .map(|a| serde_json::json!({ "name": a.name, "score": a.score }))
        .collect();
    assert_eq!(v["kernels"]["ok"]["available"], serde_json::json!(names_and_scores));
    // The best of those the engine picks by itself (variants known to crash are not).
    let best =
        k.available.iter().filter(|a| a.not_picked.is_none()).map(|a| a.score).max().unwrap();
    let score = k.available.iter().find(|a| a.name == k.variant).unwrap().score;
    assert_eq!(score, best, "the engine runs the best-scoring variant: {k:?}");
}

#[tokio::test]
async fn unloading_a_model_in_use_drains_and_streams_end_cleanly() {
    let v = run_json(UNLOAD, smollm2(), &[]).await;
    assert_eq!(v["before"]["ok"], 4, "{v}");
    assert_eq!(
        v["loaded_before"],
        serde_json::json!([{ "name": "smollm2", "draining": false, "sessions": 1 }])
    );
    assert_eq!(v["unload"]["ok"], "ok");
    assert_eq!(error_kind(&v["metadata_after"]), Some("unloaded"));
    assert_eq!(error_kind(&v["session_after"]), Some("unloaded"));
    assert_eq!(
        v["loaded_draining"],
        serde_json::json!([{ "name": "smollm2", "draining": true, "sessions": 1 }])
    );
    assert_eq!(v["old_session_generates"]["ok"], 4, "a session outlives the unload of its model");
    assert_eq!(v["loaded_after_drop"], serde_json::json!([]));
    assert_eq!(error_kind(&v["unload_again"]), Some("not-found"));
    assert_eq!(v["first_piece"], true);
    assert_eq!(v["after_dropped_stream"]["ok"], 4, "{v}");
    let orphan = &v["orphan_stream"];
    assert!(orphan["error"].is_null(), "{orphan}");
    let finish = orphan["finish"].as_str().unwrap_or_default();
    assert!(["cancelled", "length", "stop"].contains(&finish), "{orphan}");
    // Dropping handles does not unload: the model stays loaded (and instant to load again) until
    // `unload` or the end of the guest.
    assert_eq!(
        v["loaded_end"],
        serde_json::json!([{ "name": "smollm2", "draining": false, "sessions": 0 }])
    );
}

#[test]
fn the_gguf_reader_reads_smollm2_without_llama_cpp() {
    use tabagent_host::gguf::{GgufFile, Value};
    let f = GgufFile::open(&tabagent_tests::model_path()).unwrap();
    assert_eq!(f.architecture(), Some("llama"));
    assert_eq!(f.arch_u64("block_count"), Some(30));
    assert_eq!(f.arch_u64("context_length"), Some(8192));
    assert_eq!(f.arch_u64("embedding_length"), Some(576));
    match f.get("tokenizer.ggml.tokens") {
        Some(Value::StrArray(tokens)) => assert_eq!(tokens.len(), 49152),
        other => panic!("tokens: {other:?}"),
    }
    let layers = f.layer_bytes();
    assert_eq!(layers.len(), 30);
    assert!(layers.iter().all(|b| *b == layers[0]), "SmolLM2's layers are all alike");
    let data: u64 = layers.iter().sum::<u64>() + f.non_layer_bytes();
    // Tensor data fills the file after the header, up to alignment padding.
    assert!(f.data_offset + data <= f.file_size);
    assert!(f.file_size - (f.data_offset + data) < 32 * f.tensors.len() as u64);
}
