//! `tabagent-host inspect`: what a model file, folder or cached Hugging Face model is and which
//! engine runs it, from its header alone; with `--load`, also load it and say where it went.

use super::out::{emit, emit_json};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tabagent_host::engine::llama::LlamaEngine;
use tabagent_host::engine::{DeviceKind, LoadOptions, ModelInfo, Placement};
use tabagent_host::format::{self, ModelReport};
use tabagent_host::hub::{Hub, HubRef};
use tabagent_host::registry::Registry;

/// One model's report, and what loading it found (`--load`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspected<'a> {
    #[serde(flatten)]
    report: &'a ModelReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    loaded: Option<Loaded<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Loaded<'a> {
    #[serde(flatten)]
    info: &'a ModelInfo,
    loaded_to: Placement,
}

/// A path on disk, or a model in the Hugging Face cache (never the network).
fn locate(target: &str, hub: Option<&Hub>) -> anyhow::Result<PathBuf> {
    let path = Path::new(target);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let Ok(r) = HubRef::parse(target) else {
        anyhow::bail!(
            "{target}: not found (neither a file or folder nor a Hugging Face reference)"
        );
    };
    let Some(hub) = hub else {
        anyhow::bail!("{target}: not found, and the Hugging Face cache cannot be opened");
    };
    match hub.cached(&r)? {
        Some(m) => Ok(m.path),
        None => anyhow::bail!(
            "{target}: not found: not in the Hugging Face cache (`tabagent-host pull {target}` first)"
        ),
    }
}

pub fn inspect(
    target: &str,
    json: bool,
    load: bool,
    engine: LlamaEngine,
    hub: Option<&Hub>,
    kernels: Option<&str>,
) -> anyhow::Result<()> {
    let path = locate(target, hub)?;
    let reports = format::inspect(&path)?;
    let registry = Registry::new(Arc::new(engine));
    let mut models = Vec::new();
    for r in &reports {
        let model = if load && r.route.supported() {
            Some(registry.load(&r.path.as_path().into(), &LoadOptions::default())?)
        } else {
            None
        };
        models.push(model);
    }
    let items: Vec<Inspected<'_>> = reports
        .iter()
        .zip(&models)
        .map(|(report, m)| Inspected {
            report,
            loaded: m.as_ref().map(|m| Loaded { info: m.info(), loaded_to: m.info().placement() }),
        })
        .collect();
    if json {
        return match items.as_slice() {
            [one] if !path.is_dir() => emit_json(one),
            many => emit_json(&many),
        };
    }
    let mut s = String::new();
    for i in &items {
        table(&mut s, i, kernels);
    }
    emit(&s)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn table(s: &mut String, i: &Inspected<'_>, kernels: Option<&str>) {
    let r = i.report;
    let _ = writeln!(s, "{}", r.path.display());
    let _ = writeln!(s, "  format          {}", r.format.name());
    let mut line = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            let _ = writeln!(s, "  {k:<15} {v}");
        }
    };
    line("architecture", r.architecture.clone());
    line("name", r.name.clone());
    line("file type", r.file_type.clone());
    if !r.tensor_types.is_empty() {
        let types: Vec<String> = r
            .tensor_types
            .iter()
            .map(|t| format!("{} ×{} ({})", t.name, t.tensors, mib(t.bytes)))
            .collect();
        line("tensor types", Some(types.join(", ")));
    }
    line("parameters", r.parameter_count.map(|p| p.to_string()));
    line("file size", Some(format!("{} bytes", r.file_size)));
    line(
        "split",
        r.split_count.map(|n| format!("one of {n} files (the counts above are this file's)")),
    );
    line("context length", r.context_length.map(|c| c.to_string()));
    line("layers", r.layer_count.map(|c| c.to_string()));
    if r.format == format::ModelFormat::Gguf {
        line("chat template", Some(if r.chat_template { "yes" } else { "no" }.into()));
    }
    line("BitNet 1.58", Some(if r.bitnet { "yes" } else { "no" }.into()));
    line("task", Some(format!("{} ({})", r.task.name(), r.task_basis)));
    let route = match (r.route.supported(), kernels) {
        (true, Some(k)) => format!("{}, CPU kernels `{k}`", r.route.describe()),
        _ => r.route.describe(),
    };
    line("route", Some(route));
    if let Some(l) = &i.loaded {
        let where_ = match l.loaded_to.device {
            DeviceKind::Cpu => "CPU",
            DeviceKind::Gpu => "GPU",
            DeviceKind::Split => "split",
        };
        line("vocabulary", Some(l.info.vocab_size.to_string()));
        line("embedding size", Some(l.info.embedding_size.to_string()));
        line("heads (kv)", Some(format!("{} ({})", l.info.head_count, l.info.head_count_kv)));
        line(
            "loaded to",
            Some(format!(
                "{where_} ({} layers on GPU, {} on CPU)",
                l.loaded_to.gpu_layers, l.loaded_to.cpu_layers
            )),
        );
    }
}
