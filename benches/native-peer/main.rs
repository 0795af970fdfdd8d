//! `tabagent-native-peer --model M --threads N --tokens T`: run the benchmark's direct loop once
//! with llama.cpp built for this CPU and print the figures as JSON (the `--direct-child` format).
//! The loop is the one the tests and `tabagent-bench` use (`tests/src/reference.rs`).

#[path = "../../tests/src/reference.rs"]
mod reference;

use anyhow::Context as _;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut threads, mut tokens) = (None, 2, 128);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--model" => model = Some(value()?),
            "--threads" => threads = value()?.parse()?,
            "--tokens" => tokens = value()?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let model = model.context("--model is required")?;
    let mut backend = LlamaBackend::init()?;
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, model, &LlamaModelParams::default())?;
    let p = reference::LoopParams { threads, max_tokens: tokens, prompt_reps: reference::PROMPT_REPS };
    let (f, ids, _) = reference::greedy_loop(&backend, &model, reference::PROMPT, p)?;
    let v = serde_json::json!({
        "prompt_tps": f.prompt_tps, "decode_tps": f.decode_tps, "step_tps": f.step_tps,
        "total_ms": f.total_ms, "tokens": f.tokens, "ids": ids, "variant": "native",
    });
    println!("{v}");
    Ok(())
}
