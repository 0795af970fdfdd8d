//! The standard `wasi:nn` interface: a guest that knows nothing of `tabagent:llm` loads a
//! granted graph by name and gets the same greedy text as through our own interface.

use crate::guests::{INSPECT, NN};
use serde_json::Value;
use std::process::Command;
use tabagent_host::runtime::GuestConfig;
use tabagent_host::source::ModelSource;
use tabagent_tests::{app, grant, host, host_bin, json_of, model_path, run_json};

const PROMPT: &str = "Once upon a time";
const GREEDY_16: &str = r#"{"n-predict": 16, "temp": 0}"#;

async fn nn(args: &[&str], graphs: &[(&str, ModelSource)]) -> Value {
    let config = GuestConfig {
        program: "nn".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        nn_graphs: graphs.iter().map(|(n, s)| (n.to_string(), s.clone())).collect(),
        ..GuestConfig::default()
    };
    let out = host().run(&app(host(), NN), config).await.expect("run the wasi:nn guest");
    json_of(NN, &out)
}

#[tokio::test]
async fn a_wasi_nn_guest_gets_the_same_greedy_text_as_the_model_interface() {
    let smol = [("smol", ModelSource::File(model_path()))];
    let via_nn = nn(&["smol", PROMPT, GREEDY_16], &smol).await;
    let ours = run_json(INSPECT, grant("smol", model_path()), &[PROMPT]).await;
    let text = via_nn["text"].as_str().unwrap_or_else(|| panic!("{via_nn}"));
    assert!(!text.is_empty());
    assert_eq!(text, ours[0]["generated"]["text"].as_str().unwrap());
    // Options are the ggml backend's names; without them the defaults apply (and sample).
    let other = nn(&["smol", PROMPT, r#"{"n-predict": 4, "temp": 0}"#], &smol).await;
    assert!(text.starts_with(other["text"].as_str().unwrap()), "{other}");
    assert!(nn(&["smol", PROMPT], &smol).await["text"].is_string());

    // Only granted graphs exist; bad options are errors, not traps.
    let missing = nn(&["other", PROMPT], &smol).await;
    assert_eq!(missing["error"]["code"], "ErrorCode::NotFound", "{missing}");
    for bad in
        [r#"{"temp": -1}"#, "not json", r#"{"n-predict": "many"}"#, r#"{"ctx-size": 999999999}"#]
    {
        let v = nn(&["smol", PROMPT, bad], &smol).await;
        assert_eq!(v["error"]["code"], "ErrorCode::RuntimeError", "{bad}: {v}");
    }
    let none = nn(&["smol", PROMPT], &[]).await;
    assert_eq!(none["error"]["code"], "ErrorCode::NotFound");

    // WasmEdge's stop option ends the text before the stop sequence.
    let word = text.split_whitespace().nth(3).unwrap();
    let opts = format!(r#"{{"n-predict": 16, "temp": 0, "reverse-prompt": "{word}"}}"#);
    let stopped = nn(&["smol", PROMPT, &opts], &smol).await;
    let s = stopped["text"].as_str().unwrap_or_else(|| panic!("{stopped}"));
    assert!(text.starts_with(s) && !s.contains(word), "{s:?} / {text:?}");
    // Unknown keys are refused, not ignored; a prompt longer than the context is an error.
    let unknown = nn(&["smol", PROMPT, r#"{"n_predict": 4}"#], &smol).await;
    assert_eq!(unknown["error"]["code"], "ErrorCode::RuntimeError", "{unknown}");
    let long = "word ".repeat(600);
    let short_ctx = nn(&["smol", &long, r#"{"ctx-size": 64, "n-predict": 4}"#], &smol).await;
    assert_eq!(short_ctx["error"]["code"], "ErrorCode::RuntimeError", "{short_ctx}");
}

#[test]
fn without_a_granted_graph_wasi_nn_is_not_there_at_all() {
    let out = Command::new(host_bin())
        .arg("run")
        .arg(NN.path())
        .args(["--", "smol", PROMPT])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wasi:nn"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn graphs_are_granted_on_the_command_line() {
    let graph = format!("smol={}", model_path().display());
    let out = Command::new(host_bin())
        .arg("run")
        .arg(NN.path())
        .args(["--nn-graph", &graph, "--", "smol", PROMPT, GREEDY_16])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["text"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    let bad = Command::new(host_bin())
        .arg("run")
        .arg(NN.path())
        .args(["--nn-graph", "smol=/nonexistent.gguf", "--", "smol", PROMPT])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(126));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a file"));
}
