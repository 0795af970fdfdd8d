//! Helpers for the end-to-end tests: the guest components (one constant each, generated at build
//! time), the model, hosts to run guests on — one over llama.cpp, one over the fake engine —
//! and the reference greedy loop the host is compared with.

pub mod bitnet;
pub mod hub_server;
pub mod llama_server;
pub mod reference;
pub mod serve;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tabagent_host::engine::fake::FakeEngine;
use tabagent_host::registry::Registry;
use tabagent_host::runtime::{CommandApp, GuestConfig, Host, HostOptions, RunOutcome};
use tabagent_host::source::{ModelSource, UncheckedResolver};

/// A guest component built by this crate's build script for wasm32-wasip2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guest {
    /// Its name (the binary's name).
    pub name: &'static str,
    /// The component file.
    pub path: &'static str,
}

impl Guest {
    /// The component file, checked to exist.
    pub fn path(&self) -> PathBuf {
        let path = PathBuf::from(self.path);
        assert!(path.is_file(), "guest component {} is missing", path.display());
        path
    }
}

/// Every guest as a constant, for crates that use a few of them (the benchmark).
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// A folder of this test process's own for scratch files (under the system's temporary
/// folder, in `tabagent-tests/PID`); the folders of earlier runs whose process is gone are
/// removed the first time, so files a failed test left behind do not pile up.
pub fn scratch() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = std::env::temp_dir().join("tabagent-tests");
        let me = std::process::id();
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let pid = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok());
            let gone =
                pid.is_some_and(|p| p != me && !PathBuf::from(format!("/proc/{p}")).exists());
            if gone {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = root.join(me.to_string());
        std::fs::create_dir_all(&dir).expect("the tests' scratch folder");
        dir
    })
    .clone()
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
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

/// The tests' Python (the `openai` client, `gguf`, componentize-py), made or found by
/// `scripts/python-env.sh`.
pub fn python() -> PathBuf {
    let out = std::process::Command::new(repo_root().join("scripts/python-env.sh"))
        .output()
        .expect("run scripts/python-env.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// One llama.cpp host per test binary.
pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    // With `wasi:nn` linked, for the guests that use it.
    HOST.get_or_init(|| {
        let engine = Arc::new(tabagent_host::engine::llama::LlamaEngine::new());
        Host::with_options(engine, HostOptions { nn: true, ..HostOptions::default() })
            .expect("host")
    })
}

/// A host over the fake engine (no model, no llama.cpp), and the engine's counters; granted
/// names load whatever path they name.
pub fn fake_host() -> (Host, FakeEngine) {
    let engine = FakeEngine::new();
    let registry = Registry::with_resolver(Arc::new(engine.clone()), Arc::new(UncheckedResolver));
    (Host::with_registry(registry, HostOptions::default()).expect("host"), engine)
}

/// Grants of the default model as `smollm2`.
pub fn smollm2() -> BTreeMap<String, ModelSource> {
    BTreeMap::from([("smollm2".to_string(), ModelSource::File(model_path()))])
}

/// Grants of one name to one path (which need not exist).
pub fn grant(name: &str, path: impl Into<PathBuf>) -> BTreeMap<String, ModelSource> {
    BTreeMap::from([(name.to_string(), ModelSource::File(path.into()))])
}

/// A guest, prepared on `host`.
pub fn app(host: &Host, guest: Guest) -> CommandApp {
    host.load_command(&guest.path()).expect("prepare guest")
}

/// Run a guest on `host` with the given models and arguments, capturing its output.
pub async fn run_on(
    host: &Host,
    guest: Guest,
    models: BTreeMap<String, ModelSource>,
    args: &[&str],
) -> RunOutcome {
    let config = GuestConfig {
        program: guest.name.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
        models,
        ..GuestConfig::default()
    };
    host.run(&app(host, guest), config).await.expect("run guest")
}

/// Run a guest on the llama.cpp host.
pub async fn run(guest: Guest, models: BTreeMap<String, ModelSource>, args: &[&str]) -> RunOutcome {
    run_on(host(), guest, models, args).await
}

/// Parse the one JSON line a guest printed; fails the test if the guest failed.
pub fn json_of(guest: Guest, out: &RunOutcome) -> Value {
    assert_eq!(
        out.exit_code,
        0,
        "guest {} failed: stdout={} stderr={}",
        guest.name,
        out.stdout_text(),
        out.stderr_text()
    );
    let text = out.stdout_text();
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("guest {} printed no JSON ({e}): {text}", guest.name))
}

/// Run a guest that prints one JSON line on the llama.cpp host and parse it.
pub async fn run_json(guest: Guest, models: BTreeMap<String, ModelSource>, args: &[&str]) -> Value {
    json_of(guest, &run(guest, models, args).await)
}

/// The `error.kind` of a `{"error": ...}` result, or `None` for `{"ok": ...}`.
pub fn error_kind(v: &Value) -> Option<&str> {
    v.get("error").and_then(|e| e.get("kind")).and_then(Value::as_str)
}

/// The `error.message` of a result.
pub fn error_message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

/// The test model's bytes with `llama.attention.head_count` set to 0: a file that passes the
/// Rust checks and that llama.cpp itself refuses ("wrong shape").
pub fn model_without_heads() -> Vec<u8> {
    let mut bytes = std::fs::read(model_path()).expect("read the test model");
    let key = b"llama.attention.head_count";
    let mut at = 0;
    // The key itself, not llama.attention.head_count_kv: its type (u32 = 4) follows at once.
    while let Some(p) = bytes[at..].windows(key.len()).position(|w| w == key) {
        let end = at + p + key.len();
        if bytes[end..end + 4] == 4u32.to_le_bytes() {
            at = end + 4;
            break;
        }
        at = end;
    }
    bytes[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    bytes
}
