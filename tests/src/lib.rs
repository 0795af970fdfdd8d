//! Helpers for the end-to-end tests: where the guest components and the model are, and a
//! shared host to run guests on.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use tabagent_host::runtime::{GuestConfig, Host, RunOutcome};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A guest component built by this crate's build script, e.g. `guest("metadata")`.
pub fn guest(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("TABAGENT_GUESTS_DIR")).join(format!("{name}.wasm"));
    assert!(path.is_file(), "guest component {} is missing", path.display());
    path
}

/// The default test model: `$TABAGENT_TEST_MODEL`, or `models/SmolLM2-135M-Instruct.Q4_1.gguf`.
pub fn model_path() -> PathBuf {
    let path = std::env::var_os("TABAGENT_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(
        path.is_file(),
        "the test model {} is missing: run scripts/fetch-models.sh",
        path.display()
    );
    path
}

/// The `tabagent-host` binary: `$TABAGENT_HOST_BIN`, or the one beside this test's profile
/// folder (test executables live in `<target>/<profile>/deps`). Build it first with
/// `cargo build --release -p tabagent-host` (the test script does).
pub fn host_bin() -> PathBuf {
    let path = std::env::var_os("TABAGENT_HOST_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().join("tabagent-host")
    });
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --release -p tabagent-host`",
        path.display()
    );
    path
}

/// One llama.cpp host per test binary.
pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::with_llama().expect("host"))
}

/// Grants of the default model as `smollm2`.
pub fn smollm2() -> BTreeMap<String, PathBuf> {
    BTreeMap::from([("smollm2".to_string(), model_path())])
}

/// Run a guest with the given models and arguments, capturing its output.
pub async fn run(name: &str, models: BTreeMap<String, PathBuf>, args: &[&str]) -> RunOutcome {
    let component = host().compile_file(&guest(name)).expect("compile guest");
    let config = GuestConfig {
        program: name.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
        models,
        ..GuestConfig::default()
    };
    host().run(&component, config).await.expect("run guest")
}

/// Run a guest that prints one JSON line and parse it; fails the test if the guest failed.
pub async fn run_json(name: &str, models: BTreeMap<String, PathBuf>, args: &[&str]) -> Value {
    let out = run(name, models, args).await;
    assert_eq!(
        out.exit_code,
        0,
        "guest {name} failed: stdout={} stderr={}",
        out.stdout_text(),
        out.stderr_text()
    );
    let text = out.stdout_text();
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("guest {name} printed no JSON ({e}): {text}"))
}

/// The `error.kind` of a `{"error": ...}` result, or `None` for `{"ok": ...}`.
pub fn error_kind(v: &Value) -> Option<&str> {
    v.get("error").and_then(|e| e.get("kind")).and_then(Value::as_str)
}

/// The `error.message` of a result.
pub fn error_message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}
