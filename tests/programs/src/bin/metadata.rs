//! Loads the model granted as `smollm2` and prints its metadata, the grants and the loaded list.

use serde_json::json;
use tabagent_guest::{Model, ModelState};

fn main() {
    let model = match Model::load("smollm2") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("load: {e}");
            tabagent_guest::exit(3);
        }
    };
    let m = model.metadata().expect("metadata");
    let p = model.raw().placement().expect("placement");
    let loaded_to = match p.loaded_to {
        tabagent_guest::bindings::tabagent::llm::models::DeviceKind::Cpu => "cpu",
        tabagent_guest::bindings::tabagent::llm::models::DeviceKind::Gpu => "gpu",
        tabagent_guest::bindings::tabagent::llm::models::DeviceKind::Split => "split",
    };
    let loaded: Vec<_> = tabagent_guest::loaded_models()
        .iter()
        .map(|l| json!({ "name": l.name, "loaded": matches!(l.state, ModelState::Loaded), "sessions": l.sessions }))
        .collect();
    tabagent_test_programs::emit(&json!({
        "name": m.name,
        "architecture": m.architecture,
        "display_name": m.display_name,
        "vocab_size": m.vocab_size,
        "context_length": m.context_length,
        "embedding_size": m.embedding_size,
        "layer_count": m.layer_count,
        "head_count": m.head_count,
        "head_count_kv": m.head_count_kv,
        "parameter_count": m.parameter_count,
        "file_size": m.file_size,
        "file_type": m.file_type,
        "bos": m.bos_token,
        "eos": m.eos_token,
        "newline": m.newline_token,
        "chat_template": m.chat_template,
        "granted": tabagent_guest::granted_models(),
        "placement": { "loaded_to": loaded_to, "gpu_layers": p.gpu_layers, "cpu_layers": p.cpu_layers },
        "loaded": loaded,
    }));
}
