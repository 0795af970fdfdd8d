//! The `tabagent-host` binary: `run` with grants and args, exit codes, `hw`, `inspect`, help and
//! errors. Needs the binary built (`cargo build --release -p tabagent-host`, which the test
//! script does first); `TABAGENT_HOST_BIN` overrides where it is looked for.

use std::process::{Command, Output, Stdio};
use tabagent_tests::{guest, model_path};

fn host(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(tabagent_tests::host_bin());
    cmd.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn model_grant() -> String {
    format!("smollm2={}", model_path().display())
}

#[test]
fn run_streams_a_reply_and_reports_usage() {
    let chat = guest("chat");
    let grant = model_grant();
    let out = host(
        &[
            "run",
            chat.to_str().unwrap(),
            "--model",
            &grant,
            "--",
            "--temperature",
            "0",
            "--max-tokens",
            "24",
            "What",
            "is",
            "2+2?",
        ],
        None,
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let reply = text(&out.stdout);
    assert!(reply.trim().len() > 2, "empty reply: {reply:?}");
    let err = text(&out.stderr);
    assert!(err.contains("tok/s") && err.contains("generated"), "{err}");
}

#[test]
fn run_reads_the_prompt_from_stdin() {
    let chat = guest("chat");
    let grant = model_grant();
    let out = host(
        &["run", chat.to_str().unwrap(), "--model", &grant, "--", "--max-tokens", "8"],
        Some("Say hello."),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty());
}

#[test]
fn the_guest_exit_code_is_the_host_exit_code() {
    let chat = guest("chat");
    // No model granted: the app fails with its own exit code 1 and says why.
    let out = host(&["run", chat.to_str().unwrap(), "--", "hello"], None);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not granted"), "{}", text(&out.stderr));
    // Bad app arguments: the app's exit code 2 (through wasi:cli/exit.exit-with-code).
    let grant = model_grant();
    let out = host(&["run", chat.to_str().unwrap(), "--model", &grant, "--", "--max-tokens"], None);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
}

#[test]
fn host_errors_are_one_readable_line() {
    let missing = host(&["run", "/nonexistent/app.wasm"], None);
    assert_eq!(missing.status.code(), Some(126));
    let err = text(&missing.stderr);
    assert!(err.starts_with("error: ") && err.contains("/nonexistent/app.wasm"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let chat = guest("chat");
    let bad_grant = host(&["run", chat.to_str().unwrap(), "--model", "nopath"], None);
    assert_eq!(bad_grant.status.code(), Some(126));
    assert!(text(&bad_grant.stderr).contains("NAME=PATH"));

    let missing_model =
        host(&["run", chat.to_str().unwrap(), "--model", "x=/nonexistent.gguf"], None);
    assert_eq!(missing_model.status.code(), Some(126));
    assert!(text(&missing_model.stderr).contains("not a file"));

    let not_wasm =
        std::env::temp_dir().join(format!("tabagent-not-wasm-{}.wasm", std::process::id()));
    std::fs::write(&not_wasm, b"hello").unwrap();
    let out = host(&["run", not_wasm.to_str().unwrap()], None);
    std::fs::remove_file(&not_wasm).unwrap();
    assert_eq!(out.status.code(), Some(126));
    assert!(text(&out.stderr).contains("not a valid component"), "{}", text(&out.stderr));
}

#[test]
fn help_describes_every_subcommand() {
    let out = host(&["--help"], None);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in ["run", "hw", "inspect"] {
        assert!(help.contains(word), "{help}");
    }
    let run_help = text(&host(&["run", "--help"], None).stdout);
    for word in ["--model", "--dir", "--env", "--config", "NAME=PATH", "Exit codes"] {
        assert!(run_help.contains(word), "{run_help}");
    }
    let usage = host(&["frobnicate"], None);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn hw_prints_a_table_and_json() {
    let table = host(&["hw"], None);
    assert!(table.status.success());
    assert!(text(&table.stdout).contains("CPU") && text(&table.stdout).contains("Memory"));
    let json = host(&["hw", "--json"], None);
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let cpu = tabagent_host::hardware::cpu();
    assert_eq!(v["cpu"]["vendor"], cpu.vendor);
    assert_eq!(v["cpu"]["variant"], cpu.variant);
    assert_eq!(v["cpu"]["features"], serde_json::json!(cpu.features));
    assert!(text(&table.stdout).contains(&cpu.variant));
    assert!(v["memory"]["total"].as_u64().unwrap() > 0);
    assert!(v["gpus"].is_array());
}

#[test]
fn inspect_prints_metadata() {
    let out = host(&["inspect", model_path().to_str().unwrap(), "--json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["vocabSize"], 49152);
    assert_eq!(v["layerCount"], 30);
    assert_eq!(v["loadedTo"]["device"], "CPU");
    assert_eq!(v["loadedTo"]["cpuLayers"], 31);
    let bad = host(&["inspect", "/nonexistent.gguf"], None);
    assert_eq!(bad.status.code(), Some(126));
    assert!(text(&bad.stderr).contains("not found"));
}
