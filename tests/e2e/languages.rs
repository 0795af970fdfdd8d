//! Guests in other languages, built from source with their own toolchains: the chat app in
//! Python (componentize-py), JavaScript (componentize-js) and C (Debian's clang and wasi-libc,
//! wit-bindgen's C bindings), run with `tabagent-host run`, against the Rust chat example.

use crate::guests::CHAT;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tabagent_tests::{host_bin, model_path, repo_root};

const PROMPT: &str = "What is WebAssembly? Answer in one sentence.";

/// Build an example with its `build.sh`, once per test process.
fn build(example: &str) -> PathBuf {
    let out =
        tabagent_tests::scratch().join(format!("tabagent-{example}-{}.wasm", std::process::id()));
    if !out.is_file() {
        let script = repo_root().join("examples").join(example).join("build.sh");
        let o = Command::new(&script).arg(&out).output().unwrap();
        assert!(o.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&o.stderr));
    }
    out
}

fn run(app: &Path, args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = Command::new(host_bin())
        .arg("run")
        .arg(app)
        .args(["--model", &format!("smollm2={}", model_path().display()), "--"])
        .args(args)
        .output()
        .unwrap();
    (out, t.elapsed())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The same checks for every language: the greedy reply equals the Rust example's, usage comes
/// on stderr, and the interface's errors arrive as the language's exceptions, named.
fn same_as_rust(example: &str) {
    let app = build(example);
    let greedy = ["--temperature", "0", "--max-tokens", "24", PROMPT];
    let (rust, _) = run(&CHAT.path(), &greedy);
    assert!(rust.status.success(), "{}", text(&rust.stderr));
    let (first, t1) = run(&app, &greedy);
    let (second, t2) = run(&app, &greedy);
    for out in [&first, &second] {
        assert!(out.status.success(), "{example}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), text(&rust.stdout), "{example}'s greedy reply");
        let err = text(&out.stderr);
        assert!(err.contains("[smollm2] prompt") && err.contains("finish: length"), "{err}");
    }
    eprintln!(
        "{example}: first run {t1:?}, second run {t2:?} (compiled once, then from the cache)"
    );
    // A model that was not granted, and a bad parameter: the interface's error kinds, caught.
    let (out, _) = run(&app, &["--model", "nope", "hi"]);
    assert_eq!(out.status.code(), Some(1), "{example}");
    assert!(text(&out.stderr).contains("chat: not granted: model 'nope'"), "{}", text(&out.stderr));
    let (out, _) = run(&app, &["--temperature", "-3", "hi"]);
    assert_eq!(out.status.code(), Some(1), "{example}");
    assert!(
        text(&out.stderr).contains("chat: invalid input: temperature"),
        "{}",
        text(&out.stderr)
    );
    // A usage mistake of the app's own.
    let (out, _) = run(&app, &["--max-tokens"]);
    assert_eq!(out.status.code(), Some(2), "{example}");
    assert!(text(&out.stderr).contains("--max-tokens needs a value"), "{}", text(&out.stderr));
}

#[test]
fn the_python_chat_app_answers_as_the_rust_one_does() {
    same_as_rust("chat-py");
}

#[test]
fn the_javascript_chat_app_answers_as_the_rust_one_does() {
    same_as_rust("chat-js");
}

#[test]
fn the_c_chat_app_answers_as_the_rust_one_does() {
    same_as_rust("chat-c");
}
