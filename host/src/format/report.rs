//! What a model is and who runs it: [`inspect`] reads a file's header (bounded; never the
//! weights) or a folder's files and reports the format, for GGUF its architecture, file type,
//! tensor types, parameter count, context size and chat template, whether it is a BitNet 1.58
//! model, its task as its metadata states it, and the route: the engine that runs it on this
//! host, or why none does.

use super::ModelFormat;
use super::checks::KNOWN_ARCHITECTURES;
use super::detect::{MAX_SAFETENSORS_HEADER, sniff_file};
use crate::error::LlmError;
use crate::gguf::{GgufFile, Value};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Largest SafeTensors JSON header read to report on it.
const READ_SAFETENSORS_HEADER: u64 = 16 << 20;

/// Tensors of one type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorTypeCount {
    /// Type name (`Q4_K`, `TQ2_0`, `F16`, …).
    pub name: String,
    /// Tensors of the type.
    pub tensors: u32,
    /// Their elements.
    pub elements: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Generates text (decoder language models).
    TextGeneration,
    /// Turns text into vectors.
    Embedding,
    /// Scores how well a document answers a query.
    Reranking,
    /// Classifies text.
    Classification,
    /// An adapter (LoRA) to apply to another model.
    Adapter,
    /// The metadata does not say.
    Unknown,
}

impl Task {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::TextGeneration => "text-generation",
            Self::Embedding => "embedding",
            Self::Reranking => "reranking",
            Self::Classification => "classification",
            Self::Adapter => "adapter",
            Self::Unknown => "unknown",
        }
    }
}

/// Which engine runs a model on this host, or why none does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Route {
    /// llama.cpp runs it; `kernels` names the kind (`ternary` for BitNet's TQ1_0/TQ2_0).
    Llama {
        /// `standard` or `ternary`.
        kernels: String,
    },
    /// Nothing in this host runs it.
    Unsupported {
        /// What it would need.
        reason: String,
    },
}

impl Route {
    /// Whether an engine of this host runs it.
    pub fn supported(&self) -> bool {
        matches!(self, Self::Llama { .. })
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Llama { kernels } if kernels == "ternary" => {
                "llama.cpp, ternary CPU kernels (TQ1_0/TQ2_0)".into()
            }
            Self::Llama { .. } => "llama.cpp".into(),
            Self::Unsupported { reason } => format!("not supported by this host: {reason}"),
        }
    }
}

/// One model file (or a folder's model, for checkpoints described by a `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelReport {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: ModelFormat,
    /// Bytes.
    pub file_size: u64,
    /// `general.architecture` (GGUF) or the `config.json`'s `model_type` (SafeTensors).
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// `general.file_type` as a name (GGUF).
    pub file_type: Option<String>,
    /// Tensors by type, most bytes first.
    pub tensor_types: Vec<TensorTypeCount>,
    /// Elements of every tensor.
    pub parameter_count: Option<u64>,
    /// Training context length.
    pub context_length: Option<u64>,
    /// Layers (`block_count`).
    pub layer_count: Option<u64>,
    /// Whether the file carries a chat template.
    pub chat_template: bool,
    /// Files in the model's split set, when this file is one part of several (the counts
    /// above are this part's).
    pub split_count: Option<u64>,
    /// A BitNet 1.58 model: architecture `bitnet*`, or ternary tensors (`TQ1_0`, `TQ2_0`, `I2_S`).
    pub bitnet: bool,
    /// What it is for.
    pub task: Task,
    /// What the task was read from (so it is never a guess presented as fact).
    pub task_basis: String,
    /// Who runs it here.
    pub route: Route,
}

fn unsupported(reason: impl Into<String>) -> Route {
    Route::Unsupported { reason: reason.into() }
}

/// Report on a file, or on every model file of a folder.
pub fn inspect(path: &Path) -> Result<Vec<ModelReport>, LlmError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| LlmError::NotFound(format!("{}: {e}", path.display())))?;
    if !meta.is_dir() {
        return Ok(vec![inspect_file(path)?]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| LlmError::invalid(format!("{}: {e}", path.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for p in entries {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if matches!(ext.as_str(), "gguf" | "safetensors" | "onnx" | "tflite" | "bin") {
            let r = inspect_file(&p)?;
            if r.format != ModelFormat::Other {
                out.push(r);
            }
        }
    }
    if out.is_empty() {
        return Err(LlmError::NotFound(format!(
            "{} holds no model file (GGUF, SafeTensors, ONNX or TFLite)",
            path.display()
        )));
    }
    Ok(out)
}

/// Report on one file.
pub fn inspect_file(path: &Path) -> Result<ModelReport, LlmError> {
    let io = |e: std::io::Error| LlmError::invalid(format!("{}: {e}", path.display()));
    let file_size = std::fs::metadata(path).map_err(io)?.len();
    let format = sniff_file(path).map_err(io)?;
    let mut r = ModelReport {
        path: path.to_path_buf(),
        format,
        file_size,
        architecture: None,
        name: None,
        file_type: None,
        tensor_types: Vec::new(),
        parameter_count: None,
        context_length: None,
        layer_count: None,
        chat_template: false,
        split_count: None,
        bitnet: false,
        task: Task::Unknown,
        task_basis: "the format carries no task".into(),
        route: unsupported("not a model file this host knows"),
    };
    match format {
        ModelFormat::Gguf => gguf(path, &mut r)?,
        ModelFormat::SafeTensors => safetensors(path, &mut r)?,
        ModelFormat::Onnx => {
            r.route =
                unsupported("an ONNX model needs an ONNX runtime, which this host does not have");
        }
        ModelFormat::TfLite => {
            r.route = unsupported(
                "a TFLite/LiteRT model needs LiteRT (MediaPipe), which this host does not have",
            );
        }
        ModelFormat::Other => {}
    }
    Ok(r)
}

/// Bytes per element of a SafeTensors dtype (`None`: sub-byte or unknown).
fn safetensors_dtype_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

/// Elements of every tensor in a histogram.
fn elements(types: &[TensorTypeCount]) -> u64 {
    types.iter().fold(0u64, |n, t| n.saturating_add(t.elements))
}

fn histogram(entries: impl Iterator<Item = (String, u64, u64)>) -> Vec<TensorTypeCount> {
    let mut by: BTreeMap<String, TensorTypeCount> = BTreeMap::new();
    for (name, elements, bytes) in entries {
        let e = by.entry(name.clone()).or_insert(TensorTypeCount {
            name,
            tensors: 0,
            elements: 0,
            bytes: 0,
        });
        e.tensors = e.tensors.saturating_add(1);
        e.elements = e.elements.saturating_add(elements);
        e.bytes = e.bytes.saturating_add(bytes);
    }
    let mut v: Vec<_> = by.into_values().collect();
    v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
    v
}

/// Architectures whose models embed text rather than generate it.
const EMBEDDING_ARCHITECTURES: &[&str] = &[
    "bert",
    "modern-bert",
    "nomic-bert",
    "nomic-bert-moe",
    "neo-bert",
    "jina-bert-v2",
    "jina-bert-v3",
    "eurobert",
    "t5encoder",
    "gemma-embedding",
    "llama-embed",
    "pangu-embedded",
];

/// Architectures llama.cpp knows that this host cannot run as a text generator, and why.
const NOT_TEXT_GENERATORS: &[(&str, &str)] = &[
    ("t5", "an encoder-decoder model needs llama.cpp's encoder pass, which this host does not run"),
    ("wavtokenizer-dec", "an audio codec decoder, not a text model"),
    ("qwen3tts", "a text-to-speech model, which needs an audio pipeline this host does not have"),
    ("pockettts", "a text-to-speech model, which needs an audio pipeline this host does not have"),
    ("eagle3", "a speculative-decoding draft head, run beside its target model"),
    ("dflash", "a speculative-decoding draft model, run beside its target model"),
];

fn gguf(path: &Path, r: &mut ModelReport) -> Result<(), LlmError> {
    // One read of the header serves the report and the checks `load` makes.
    let f = match GgufFile::open(path) {
        Ok(f) => f,
        Err(e) => {
            r.route = unsupported(format!("the GGUF header is not valid: {e}"));
            return Ok(());
        }
    };
    let arch = f.architecture().map(str::to_string);
    let s = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_string);
    r.architecture = arch.clone();
    r.name = s("general.name");
    r.file_type =
        f.get("general.file_type").and_then(Value::as_u64).map(|t| super::file_type_name(t as u32));
    r.tensor_types = histogram(
        f.tensors.iter().map(|t| (t.ty.name.to_string(), t.dims.iter().product::<u64>(), t.size)),
    );
    r.parameter_count = Some(elements(&r.tensor_types));
    r.context_length = f.arch_u64("context_length");
    r.layer_count = f.arch_u64("block_count");
    r.chat_template = f.get("tokenizer.chat_template").is_some();
    r.split_count = f.get("split.count").and_then(Value::as_u64).filter(|n| *n > 1);
    let ternary = f.tensors.iter().any(|t| tabagent_bitnet::Ternary::from_ggml(t.ty.id).is_some());
    let foreign = super::foreign_layout(&f);
    r.bitnet =
        arch.as_deref().is_some_and(|a| a.starts_with("bitnet")) || ternary || foreign.is_some();
    let a = arch.as_deref().unwrap_or("");
    let pooling = f.arch_u64("pooling_type");
    (r.task, r.task_basis) = if s("general.type").as_deref() == Some("adapter") {
        (Task::Adapter, "general.type is 'adapter'".into())
    } else if pooling == Some(4) {
        (Task::Reranking, format!("{a}.pooling_type is 4 (rank)"))
    } else if f.get(&format!("{a}.classifier.output_labels")).is_some() {
        (Task::Classification, format!("{a}.classifier.output_labels is set"))
    } else if pooling.is_some_and(|p| p > 0) {
        (Task::Embedding, format!("{a}.pooling_type is {}", pooling.unwrap_or(0)))
    } else if EMBEDDING_ARCHITECTURES.contains(&a) {
        (Task::Embedding, format!("architecture '{a}' is an encoder"))
    } else if let Some((_, why)) = NOT_TEXT_GENERATORS.iter().find(|(n, _)| *n == a) {
        (Task::Unknown, format!("architecture '{a}': {why}"))
    } else if KNOWN_ARCHITECTURES.contains(&a) {
        (
            Task::TextGeneration,
            format!("architecture '{a}' is a decoder llama.cpp generates text with"),
        )
    } else {
        (Task::Unknown, format!("architecture '{a}' is not one this host knows"))
    };
    r.route = if let Some(layout) = foreign {
        unsupported(super::foreign_message(layout))
    } else if let Err(e) = super::checks::check_model(&f) {
        unsupported(format!("llama.cpp must not be given this file: {e}"))
    } else if let Some((_, why)) = NOT_TEXT_GENERATORS.iter().find(|(n, _)| *n == a) {
        unsupported(*why)
    } else if r.task == Task::Adapter {
        unsupported("an adapter is applied to a base model, not run by itself")
    } else {
        Route::Llama { kernels: if ternary { "ternary" } else { "standard" }.into() }
    };
    Ok(())
}

fn safetensors(path: &Path, r: &mut ModelReport) -> Result<(), LlmError> {
    let io = |e: std::io::Error| LlmError::invalid(format!("{}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io)?;
    let n = u64::from_le_bytes(len);
    r.route = unsupported(
        "a SafeTensors checkpoint needs converting to GGUF first (llama.cpp's convert_hf_to_gguf.py)",
    );
    if n > READ_SAFETENSORS_HEADER.min(MAX_SAFETENSORS_HEADER) {
        r.task_basis = format!("its header ({n} bytes) is larger than this host reads");
        return Ok(());
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io)?;
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(&header)
    else {
        r.route = unsupported("its SafeTensors header is not a JSON object");
        return Ok(());
    };
    // Each tensor's shape must agree with its byte range and dtype; a header where one does not
    // gets no parameter count (a number that is not in the file is not reported as fact).
    let mut consistent = true;
    let mut tensors = Vec::new();
    for (_, v) in map.iter().filter(|(k, _)| *k != "__metadata__") {
        let entry = (|| {
            let dtype = v.get("dtype")?.as_str()?.to_string();
            let mut elements = 1u64;
            for d in v.get("shape")?.as_array()? {
                elements = elements.checked_mul(d.as_u64()?)?;
            }
            let offsets = v.get("data_offsets")?.as_array()?;
            let (start, end) = (offsets.first()?.as_u64()?, offsets.get(1)?.as_u64()?);
            let bytes = end.checked_sub(start)?;
            if let Some(size) = safetensors_dtype_bytes(&dtype)
                && elements.checked_mul(size) != Some(bytes)
            {
                return None;
            }
            Some((dtype, elements, bytes))
        })();
        match entry {
            Some(t) => tensors.push(t),
            None => consistent = false,
        }
    }
    r.tensor_types = histogram(tensors.into_iter());
    r.parameter_count = consistent.then(|| elements(&r.tensor_types));
    if !consistent {
        r.route =
            unsupported("its SafeTensors header is inconsistent (shapes, byte ranges, dtypes)");
        return Ok(());
    }
    // A transformers checkpoint says what it is in the config.json beside it.
    let config = path.parent().map(|d| d.join("config.json"));
    let config = config
        .filter(|c| c.metadata().is_ok_and(|m| m.len() < (4 << 20)))
        .and_then(|c| std::fs::read(c).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    if let Some(c) = config {
        r.architecture = c.get("model_type").and_then(|v| v.as_str()).map(str::to_string);
        r.context_length = c.get("max_position_embeddings").and_then(|v| v.as_u64());
        r.layer_count = c.get("num_hidden_layers").and_then(|v| v.as_u64());
        let class = c
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(|a| a.as_str())
            .unwrap_or("")
            .to_string();
        r.task = if class.ends_with("ForCausalLM") || class.ends_with("ForConditionalGeneration") {
            Task::TextGeneration
        } else if class.ends_with("ForSequenceClassification") {
            Task::Classification
        } else if class.ends_with("Model") || class.ends_with("ForMaskedLM") {
            Task::Embedding
        } else {
            Task::Unknown
        };
        r.task_basis = if class.is_empty() {
            "config.json names no architecture".into()
        } else {
            format!("config.json's architecture is {class}")
        };
        r.bitnet = r.architecture.as_deref().is_some_and(|a| a.starts_with("bitnet"));
    } else {
        r.task_basis = "no config.json beside it says".into();
    }
    Ok(())
}
