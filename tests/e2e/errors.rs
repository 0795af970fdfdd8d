//! Bad input gets a clear error value and the host carries on.

use crate::guests::{ERRORS, METADATA, SANDBOX};
use std::collections::BTreeMap;
use std::sync::Arc;
use tabagent_host::LlmError;
use tabagent_host::engine::{Engine as _, LoadOptions, llama::LlamaEngine};
use tabagent_host::registry::Registry;
use tabagent_host::source::{ModelSource, resolve_file};
use tabagent_tests::{error_kind, error_message, grant, model_path, run, run_json};

#[tokio::test]
async fn every_bad_input_is_a_clear_error_value() {
    let models = BTreeMap::from([
        ("smollm2".to_string(), ModelSource::File(model_path())),
        ("ghost".to_string(), "/nonexistent/ghost.gguf".into()),
    ]);
    let v = run_json(ERRORS, models, &[]).await;
    let expect = |case: &str, kind: &str, words: &str| {
        let r = &v[case];
        assert_eq!(error_kind(r), Some(kind), "{case}: {r}");
        assert!(
            error_message(r).contains(words),
            "{case}: message '{}' lacks '{words}'",
            error_message(r)
        );
    };
    expect("not_granted", "not-granted", "llama-70b");
    expect("missing_file", "not-found", "ghost.gguf");
    expect("context_zero", "invalid-input", "context-size 0");
    expect("context_one", "invalid-input", "context-size 1");
    expect("context_huge", "invalid-input", "above the limit");
    expect("batch_zero", "invalid-input", "batch-size 0");
    expect("batch_above_context", "invalid-input", "batch-size 512");
    expect("threads_zero", "invalid-input", "threads 0");
    expect("threads_too_many", "invalid-input", "threads 100000");
    expect("temperature_nan", "invalid-input", "temperature");
    expect("temperature_negative", "invalid-input", "temperature");
    expect("top_p_above_one", "invalid-input", "top-p");
    expect("top_p_zero", "invalid-input", "top-p");
    expect("min_p_negative", "invalid-input", "min-p");
    expect("repeat_penalty_zero", "invalid-input", "repeat-penalty");
    expect("max_tokens_zero", "invalid-input", "max-tokens");
    expect("empty_stop", "invalid-input", "stop");
    expect("empty_prompt", "invalid-input", "empty");
    expect("nul_prompt", "invalid-input", "NUL");
    expect("bad_tokens", "invalid-input", "999999");
    expect("no_tokens", "invalid-input", "empty");
    expect("empty_chat", "invalid-input", "empty");
    expect("prompt_too_long", "invalid-input", "context holds");
    expect("detokenize_bad", "invalid-input", "outside the vocabulary");
    expect("template_nul", "invalid-input", "NUL");
    expect("unload_unknown", "not-found", "never-loaded");
    // After all that, the same guest still generates.
    assert_eq!(v["recovered"]["ok"]["usage"]["generated_tokens"], 4, "{}", v["recovered"]);
}

#[tokio::test]
async fn a_model_file_that_is_not_gguf_is_refused_and_the_host_carries_on() {
    let dir = tabagent_tests::scratch().join(format!("tabagent-bad-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.gguf");
    std::fs::write(&bad, b"this is not a model").unwrap();
    let truncated = dir.join("truncated.gguf");
    let head = std::fs::read(model_path()).unwrap()[..4096].to_vec();
    std::fs::write(&truncated, head).unwrap();
    for file in [&bad, &truncated] {
        let out = run(METADATA, grant("smollm2", file.clone()), &[]).await;
        assert_eq!(out.exit_code, 3, "{}", out.stderr_text());
        let stderr = out.stderr_text();
        assert!(stderr.contains("load: ") && stderr.contains(file.to_str().unwrap()), "{stderr}");
    }
    // The same host then serves a good guest.
    let v = run_json(METADATA, tabagent_tests::smollm2(), &[]).await;
    assert_eq!(v["vocab_size"], 49152);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn guests_get_nothing_they_were_not_granted() {
    use tabagent_host::runtime::{DirGrant, GuestConfig};
    let host = tabagent_tests::host();
    let component = tabagent_tests::app(host, SANDBOX);
    let component = &component;
    let run = |config: GuestConfig| async move {
        let out = host.run(component, config).await.unwrap();
        assert_eq!(out.exit_code, 0, "{}", out.stderr_text());
        serde_json::from_str::<serde_json::Value>(out.stdout_text().trim()).unwrap()
    };
    // Nothing granted.
    let v = run(GuestConfig { program: "sandbox".into(), ..GuestConfig::default() }).await;
    assert_eq!(v["args"], serde_json::json!(["sandbox"]));
    assert_eq!(v["env"], serde_json::json!([]), "the host's environment leaked");
    assert!(v["etc_passwd"]["error"].is_string(), "{}", v["etc_passwd"]);
    assert!(v["root_listing"].is_null(), "{}", v["root_listing"]);
    assert!(v["tcp"]["error"].is_string(), "{}", v["tcp"]);
    assert!(v["dns"]["error"].is_string(), "{}", v["dns"]);
    assert_eq!(v["models"], serde_json::json!([]));

    // A read-only directory, one variable, one model.
    let dir = tabagent_tests::scratch().join(format!("tabagent-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("note.txt"), "granted text").unwrap();
    let config = GuestConfig {
        program: "sandbox".into(),
        args: vec!["/data/note.txt".into()],
        dirs: vec![DirGrant { host: dir.clone(), guest: "/data".into(), read_only: true }],
        env: vec![("GREETING".into(), "hi".into())],
        models: tabagent_tests::smollm2(),
        ..GuestConfig::default()
    };
    let v = run(config).await;
    assert_eq!(v["granted_file"]["ok"], "granted text");
    assert!(v["write_in_granted_dir"]["error"].is_string(), "{}", v["write_in_granted_dir"]);
    assert!(!dir.join("note.txt.new").exists());
    assert_eq!(v["env"], serde_json::json!(["GREETING=hi"]));
    assert!(v["etc_passwd"]["error"].is_string());
    assert_eq!(v["models"], serde_json::json!(["smollm2"]));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Hostile variants of the real model file, each refused by the Rust checks before llama.cpp
/// reads it, with a message naming the problem; then the real file still loads.
#[test]
fn hostile_model_files_are_refused_before_llama_cpp() {
    let original = std::fs::read(model_path()).unwrap();
    let header = tabagent_host::gguf::GgufFile::parse(&original, original.len() as u64).unwrap();
    let data_offset = header.data_offset as usize;
    // Where a key's value starts: after the key string and its u32 type.
    let value_at = |key: &str| {
        let k = key.as_bytes();
        let at = original.windows(k.len()).position(|w| w == k).unwrap();
        at + k.len() + 4
    };
    let patch = |at: usize, bytes: &[u8]| {
        let mut b = original.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "GGUF"),
        ("truncated magic", original[..3].to_vec(), "GGUF"),
        ("truncated counts", original[..20].to_vec(), "ends inside the header"),
        ("truncated metadata", original[..4096].to_vec(), "ends inside the header"),
        (
            "truncated tensor infos",
            original[..data_offset - 100].to_vec(),
            "ends inside the header",
        ),
        ("truncated data", original[..data_offset + 1000].to_vec(), "past the end of the file"),
        (
            "truncated last byte",
            original[..original.len() - 1].to_vec(),
            "past the end of the file",
        ),
        ("version 1", patch(4, &1u32.to_le_bytes()), "version 1"),
        ("byte-swapped version", patch(4, &3u32.to_be_bytes()), "version"),
        ("huge tensor count", patch(8, &u64::MAX.to_le_bytes()), "tensors"),
        ("huge key length", patch(24, &u64::MAX.to_le_bytes()), "string"),
        ("block_count 513", patch(value_at("llama.block_count"), &513u32.to_le_bytes()), "513"),
        (
            "eos outside vocab",
            patch(value_at("tokenizer.ggml.eos_token_id"), &60000u32.to_le_bytes()),
            "outside the vocabulary",
        ),
        (
            "unknown architecture",
            patch(value_at("general.architecture") + 8, b"xxxxx"),
            "not known",
        ),
    ];
    let dir = tabagent_tests::scratch().join(format!("tabagent-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let registry = Registry::new(Arc::new(LlamaEngine::new()));
    for (name, bytes, words) in &cases {
        let file = dir.join(format!("{}.gguf", name.replace(' ', "-")));
        std::fs::write(&file, bytes).unwrap();
        let err = match registry.load(&file.as_path().into(), &LoadOptions::default()) {
            Err(LlmError::InvalidInput(m)) => m,
            Err(other) => panic!("{name}: wrong kind of error {other:?}"),
            Ok(_) => panic!("{name}: a hostile file was loaded"),
        };
        assert!(err.contains(words), "{name}: '{err}' lacks '{words}'");
        println!("{name}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(registry.load(&model_path().as_path().into(), &LoadOptions::default()).is_ok());
}

/// Crash containment: a file that makes llama.cpp abort (`block_count` 513 trips its
/// `LLAMA_MAX_LAYERS` assertion) kills only the probe process; the host refuses the file, says
/// why, and goes on. The Rust checks refuse this file too; the probe is run alone here to show
/// what happens to a file that gets past them.
#[test]
fn a_file_that_crashes_llama_cpp_kills_only_the_probe() {
    let bin = tabagent_tests::host_bin();
    let mut bytes = std::fs::read(model_path()).unwrap();
    let key = b"llama.block_count";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
    bytes[at..at + 4].copy_from_slice(&513u32.to_le_bytes());
    let file =
        tabagent_tests::scratch().join(format!("tabagent-crash-{}.gguf", std::process::id()));
    std::fs::write(&file, &bytes).unwrap();
    let engine = LlamaEngine::with_probe(bin, vec!["probe-model".into()]);
    let start = std::time::Instant::now();
    let err = engine.probe(&file).unwrap_err().to_string();
    println!("probe verdict in {:?}: {err}", start.elapsed());
    assert!(err.contains("crashed (signal 6, SIGABRT)"), "{err}");
    // The verdict is remembered, and the host process is still here to load a good model.
    assert_eq!(engine.probe(&file).unwrap_err().to_string(), err);
    std::fs::remove_file(&file).unwrap();
    let good = resolve_file(&model_path()).unwrap();
    assert!(engine.load(&good, &LoadOptions::default()).is_ok());
}

/// Random bit flips over the real model's header and metadata: every variant is either refused
/// with a message or loads; none crashes or hangs the host (the probe takes any crash).
#[test]
fn random_bit_flips_in_the_header_never_take_the_host_down() {
    let bin = tabagent_tests::host_bin();
    let original = std::fs::read(model_path()).unwrap();
    let header = tabagent_host::gguf::GgufFile::parse(&original, original.len() as u64).unwrap();
    let header_len = header.data_offset as usize;
    let registry =
        Registry::new(Arc::new(LlamaEngine::with_probe(bin, vec!["probe-model".into()])));
    let dir = tabagent_tests::scratch().join(format!("tabagent-flips-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut state = 0x2545f4914f6cdd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut refused, mut loaded) = (0, 0);
    let start = std::time::Instant::now();
    for i in 0..40 {
        let mut bytes = original.clone();
        for _ in 0..1 + next() % 4 {
            // Half the flips in the first 4 KiB (counts, early keys), half anywhere in the header.
            let span = if next() % 2 == 0 { 4096 } else { header_len };
            let at = (next() as usize) % span;
            bytes[at] ^= 1 << (next() % 8);
        }
        let file = dir.join(format!("flip-{i}.gguf"));
        std::fs::write(&file, &bytes).unwrap();
        match registry.load(&file.as_path().into(), &LoadOptions::default()) {
            Ok(_) => loaded += 1,
            Err(e) => {
                assert!(!e.to_string().trim().is_empty());
                refused += 1;
            }
        }
        std::fs::remove_file(&file).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
    println!("40 bit-flipped headers in {:?}: {refused} refused, {loaded} loaded", start.elapsed());
    assert!(refused > 0);
}

/// A file that passes the Rust checks but that llama.cpp refuses: the error carries llama.cpp's
/// own reason (from its log), not just "null result".
#[test]
fn llama_cpp_load_errors_say_why() {
    let bytes = tabagent_tests::model_without_heads();
    let file =
        tabagent_tests::scratch().join(format!("tabagent-heads-{}.gguf", std::process::id()));
    std::fs::write(&file, &bytes).unwrap();
    // The file passes the Rust checks; llama.cpp itself refuses it.
    let resolved = resolve_file(&file).unwrap();
    let err = LlamaEngine::new().load(&resolved, &LoadOptions::default()).err().unwrap();
    std::fs::remove_file(&file).unwrap();
    match err {
        LlmError::Runtime(m) => assert!(m.contains("wrong shape"), "{m}"),
        other => panic!("{other:?}"),
    }
}
