//! The fast tier: real guest components through the real runtime and WIT glue, against the
//! fake engine (no model file, no llama.cpp). `cargo test -p tabagent-tests --test e2e fast::`.

use crate::guests::{ABUSE, BENCH, CHAT, GENERATE, METADATA, SANDBOX, UNLOAD};
use serde_json::json;
use tabagent_host::runtime::{GuestConfig, RunError};
use tabagent_host::sandbox::GuestLimits;
use tabagent_tests::{app, error_kind, fake_host, grant, json_of, run_on};

fn fake_model() -> std::collections::BTreeMap<String, tabagent_host::source::ModelSource> {
    grant("smollm2", "/fake/model.gguf")
}

#[tokio::test]
async fn the_chat_example_streams_the_fake_reply() {
    let (host, engine) = fake_host();
    let args = ["--temperature", "0", "--max-tokens", "64", "Hello"];
    let out = run_on(&host, CHAT, fake_model(), &args).await;
    assert_eq!(out.exit_code, 0, "{}", out.stderr_text());
    // The fake formats a chat as `[role]content` lines and replies "echo: " and the prompt.
    assert!(out.stdout_text().starts_with("echo: "), "{}", out.stdout_text());
    assert!(out.stdout_text().contains("[user]Hello"), "{}", out.stdout_text());
    assert!(out.stderr_text().contains("tok/s"), "{}", out.stderr_text());
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(engine.counters.live_models.load(SeqCst), 0, "the guest's model outlived it");
    assert_eq!(engine.counters.live_sessions.load(SeqCst), 0);
}

#[tokio::test]
async fn streamed_and_whole_generations_agree_through_a_guest() {
    let (host, _) = fake_host();
    let request = json!({
        "prompt": { "text": "hello" },
        "options": { "temperature": 0.0, "max_tokens": 100 },
        "mode": "both",
    });
    let out = run_on(&host, GENERATE, fake_model(), &[&request.to_string()]).await;
    let v = json_of(GENERATE, &out);
    let run = &v["runs"][0];
    assert_eq!(run["generate"]["ok"]["text"], "echo: hello");
    assert_eq!(run["generate"]["ok"]["finish"], "stop");
    let pieces: String =
        run["stream"]["pieces"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(pieces, "echo: hello");
    assert_eq!(run["stream"]["outcome"]["tokens"], run["generate"]["ok"]["tokens"]);
}

#[tokio::test]
async fn metadata_and_lifecycle_through_a_guest() {
    let (host, _) = fake_host();
    let m = json_of(METADATA, &run_on(&host, METADATA, fake_model(), &[]).await);
    assert_eq!(m["architecture"], "fake");
    assert_eq!(m["vocab_size"], 258);
    assert_eq!(m["granted"], json!(["smollm2"]));
    let v = json_of(UNLOAD, &run_on(&host, UNLOAD, fake_model(), &[]).await);
    assert_eq!(v["unload"]["ok"], "ok", "{v}");
    assert_eq!(error_kind(&v["metadata_after"]), Some("unloaded"));
    assert_eq!(v["loaded_after_drop"], json!([]));
    assert_eq!(error_kind(&v["unload_again"]), Some("not-found"));
}

/// Completions count against the guest's resource cap: a thousand started and dropped leave the
/// count where it was, so the guest can still hold exactly the cap minus its model and session.
#[tokio::test]
async fn a_create_and_drop_loop_of_completions_does_not_lift_the_resource_cap() {
    let (host, _) = fake_host();
    let v = json_of(ABUSE, &run_on(&host, ABUSE, fake_model(), &["completion-churn"]).await);
    let cap = tabagent_host::params::LlmLimits::default().max_resources;
    assert_eq!(v["held"], cap - 2, "{v}");
    assert_eq!(v["error"]["kind"], "resource-exhausted");
}

#[tokio::test]
async fn a_guest_that_dies_at_its_memory_limit_is_reported_as_such() {
    let (host, _) = fake_host();
    let sandbox = GuestLimits { memory_bytes: 64 << 20, ..GuestLimits::default() };
    let config =
        GuestConfig { args: vec!["memory-abort".into()], sandbox, ..GuestConfig::default() };
    let e = host.run(&app(&host, ABUSE), config).await.unwrap_err();
    assert!(
        matches!(e, RunError::MemoryLimit { limit_bytes, .. } if limit_bytes == 64 << 20),
        "{e:?}"
    );
    assert!(e.to_string().contains("memory limit of 64 MiB"), "{e}");
}

#[tokio::test]
async fn a_deadline_is_a_typed_error() {
    let (host, _) = fake_host();
    let sandbox = GuestLimits {
        deadline: Some(std::time::Duration::from_millis(200)),
        ..GuestLimits::default()
    };
    let config = GuestConfig { args: vec!["loop".into()], sandbox, ..GuestConfig::default() };
    let e = host.run(&app(&host, ABUSE), config).await.unwrap_err();
    assert!(matches!(e, RunError::Deadline { in_host_call: false, .. }), "{e:?}");
}

#[tokio::test]
async fn the_bench_guest_reports_its_timings() {
    let (host, _) = fake_host();
    let request = json!({
        "prompt": "abc", "max_tokens": 64, "context_size": 256, "batch_size": 64,
        "threads": 1, "mode": "stream", "prompt_reps": 2,
    });
    let v = json_of(BENCH, &run_on(&host, BENCH, fake_model(), &[&request.to_string()]).await);
    assert_eq!(v["generated_tokens"], "echo: abc".len(), "{v}");
    assert_eq!(v["prompt_ms_all"].as_array().unwrap().len(), 3);
    // The fake writes all its pieces at once, and the host joins pieces already waiting.
    assert!(!v["piece_ms"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["file_type"], "F32");
}

#[tokio::test]
async fn nothing_is_granted_by_default() {
    let (host, _) = fake_host();
    let out = run_on(&host, SANDBOX, Default::default(), &[]).await;
    let v = json_of(SANDBOX, &out);
    assert_eq!(v["env"], json!([]));
    assert_eq!(v["models"], json!([]));
    assert!(v["tcp"]["error"].is_string(), "{}", v["tcp"]);
}

#[tokio::test]
async fn a_component_that_is_not_a_command_is_refused_with_its_kind() {
    let (host, _) = fake_host();
    let e = host.command_from_bytes(b"(component)").err().unwrap();
    assert!(matches!(e, RunError::Instantiate(_)), "{e:?}");
    let e = host.command_from_bytes(b"not wasm").err().unwrap();
    assert!(matches!(e, RunError::Compile { .. }), "{e:?}");
    let e = host.load_command("/nonexistent/app.wasm".as_ref()).err().unwrap();
    assert!(matches!(e, RunError::Read { .. }), "{e:?}");
}

/// Without a deadline (`--timeout 0`) a guest runs to its end instead of being stopped at once.
#[tokio::test]
async fn a_guest_without_a_deadline_runs_to_its_end() {
    let (host, _) = fake_host();
    let sandbox = GuestLimits { deadline: None, ..GuestLimits::default() };
    let config = GuestConfig { program: "sandbox".into(), sandbox, ..GuestConfig::default() };
    // Let the epoch ticker tick first: the deadline is counted from the current epoch.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let out = host.run(&app(&host, SANDBOX), config).await.unwrap();
    assert_eq!(out.exit_code, 0, "{}", out.stderr_text());
}
