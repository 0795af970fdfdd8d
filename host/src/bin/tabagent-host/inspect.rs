//! `tabagent-host inspect`: load a model file and print what it is.

use super::out::{emit, emit_json};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::engine::{DeviceKind, LoadOptions, ModelInfo, Placement};
use tabagent_host::registry::Registry;

/// `inspect --json`: the model's facts and where its layers went.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    #[serde(flatten)]
    info: &'a ModelInfo,
    loaded_to: Placement,
}

pub fn inspect(path: &Path, json: bool, engine: LlamaEngine) -> anyhow::Result<()> {
    let registry = Registry::new(Arc::new(engine));
    let model = registry.load(&path.into(), &LoadOptions::default())?;
    let i = model.info();
    let placement = i.placement();
    if json {
        return emit_json(&Report { info: i, loaded_to: placement });
    }
    let loaded_to = match placement.device {
        DeviceKind::Cpu => "CPU",
        DeviceKind::Gpu => "GPU",
        DeviceKind::Split => "split",
    };
    let mut s = String::new();
    let _ = writeln!(s, "{}", path.display());
    let _ = writeln!(s, "  architecture    {}", i.architecture);
    if let Some(name) = &i.display_name {
        let _ = writeln!(s, "  name            {name}");
    }
    let _ = writeln!(s, "  file type       {}", i.file_type);
    let _ = writeln!(s, "  parameters      {}", i.parameter_count);
    let _ = writeln!(s, "  file size       {} bytes", i.file_size);
    let _ = writeln!(s, "  vocabulary      {}", i.vocab_size);
    let _ = writeln!(s, "  context length  {}", i.context_length);
    let _ = writeln!(s, "  embedding size  {}", i.embedding_size);
    let _ = writeln!(s, "  layers          {}", i.layer_count);
    let _ = writeln!(s, "  heads (kv)      {} ({})", i.head_count, i.head_count_kv);
    let _ =
        writeln!(s, "  chat template   {}", if i.chat_template.is_some() { "yes" } else { "no" });
    let _ = writeln!(
        s,
        "  loaded to       {loaded_to} ({} layers on GPU, {} on CPU)",
        placement.gpu_layers, placement.cpu_layers
    );
    emit(&s)
}
