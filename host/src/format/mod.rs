//! What a model file is, decided in one place before any engine opens it.
//!
//! [`detect`] names a file's format from its first bytes (GGUF, SafeTensors, ONNX,
//! TFLite/LiteRT); [`inspect`] reports what a file or folder holds and which engine runs it
//! ([`report`]); [`check`] refuses files an engine must not be handed: anything that is not GGUF,
//! GGUF files whose header is malformed or that llama.cpp would trust blindly ([`checks`]), and
//! tensors in layouts llama.cpp does not read (bitnet.cpp's `I2_S`).

pub mod checks;
pub mod detect;
pub mod report;

pub use report::{ModelReport, Route, Task, TensorTypeCount, inspect};

use crate::error::LlmError;
use crate::gguf::GgufFile;
use std::path::Path;

/// A model file's format, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// llama.cpp's GGUF (`GGUF` magic).
    Gguf,
    /// Hugging Face SafeTensors (a JSON header after its length).
    SafeTensors,
    /// ONNX (a protobuf `ModelProto`).
    Onnx,
    /// TFLite / LiteRT (a FlatBuffer with the `TFL3` identifier).
    TfLite,
    /// Anything else.
    Other,
}

impl ModelFormat {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gguf => "gguf",
            Self::SafeTensors => "safetensors",
            Self::Onnx => "onnx",
            Self::TfLite => "tflite",
            Self::Other => "other",
        }
    }
}

/// Name the format of the file at `path` from its first bytes.
pub fn detect(path: &Path) -> Result<ModelFormat, LlmError> {
    detect::sniff_file(path).map_err(|e| {
        LlmError::invalid(format!("{}: cannot read a model header: {e}", path.display()))
    })
}

/// Check that `path` is a GGUF file an engine may open: the format, then the header checks.
/// Returns the parsed header.
pub fn check(path: &Path) -> Result<GgufFile, LlmError> {
    let refused = |why: String| LlmError::invalid(format!("{} was refused: {why}", path.display()));
    match detect(path)? {
        ModelFormat::Gguf => {}
        ModelFormat::Other => {
            return Err(LlmError::invalid(format!(
                "{} is not a GGUF file (nor SafeTensors, ONNX or TFLite)",
                path.display()
            )));
        }
        other => {
            let route = report::inspect_file(path).map(|r| r.route.describe()).unwrap_or_default();
            return Err(LlmError::Unsupported(format!(
                "{} is not a GGUF file but {}: {route}",
                path.display(),
                other.name()
            )));
        }
    }
    let file =
        GgufFile::open(path).map_err(|e| refused(checks::ModelFileError::from(e).to_string()))?;
    // Before the other checks: such files often also have an architecture llama.cpp lacks, and
    // the layout is the more useful thing to say.
    if let Some(layout) = foreign_layout(&file) {
        return Err(refused(foreign_message(layout)));
    }
    checks::check_model(&file).map_err(|e| refused(e.to_string()))?;
    Ok(file)
}

/// The first tensor layout of `file` that llama.cpp does not read.
pub(crate) fn foreign_layout(file: &GgufFile) -> Option<&'static str> {
    file.tensors.iter().find_map(|t| tabagent_bitnet::foreign_layout(t.ty.id))
}

/// What to say of a file in a layout llama.cpp does not read.
pub(crate) fn foreign_message(layout: &str) -> String {
    format!(
        "its ternary tensors are in the {layout} layout, which llama.cpp does not read; a \
         checkpoint whose architecture llama.cpp's `bitnet` graph implements converts from its \
         original (unpacked) weights with llama.cpp's convert_hf_to_gguf.py --outtype tq2_0 (or \
         tq1_0); see BitNet/README.md"
    )
}

/// Name of a `general.file_type` value (llama.cpp's `llama_ftype`).
pub fn file_type_name(ftype: u32) -> String {
    let name = match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        other => return format!("unknown({other})"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_type_names() {
        assert_eq!(file_type_name(3), "Q4_1");
        assert_eq!(file_type_name(15), "Q4_K_M");
        assert_eq!(file_type_name(37), "TQ2_0");
        assert_eq!(file_type_name(99), "unknown(99)");
    }

    #[test]
    fn non_gguf_files_are_named_and_refused() {
        let dir = std::env::temp_dir().join(format!("tabagent-format-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let other = dir.join("notes.bin");
        std::fs::write(&other, b"not a model at all").unwrap();
        assert_eq!(detect(&other).unwrap(), ModelFormat::Other);
        let e = check(&other).unwrap_err();
        assert!(matches!(&e, LlmError::InvalidInput(m) if m.contains("not a GGUF")), "{e}");
        let gguf = dir.join("tiny.gguf");
        let bytes = crate::gguf::write::Builder::new()
            .kv_str("general.architecture", "llama")
            .kv_u32("llama.block_count", 1)
            .kv_str_array("tokenizer.ggml.tokens", &["a", "b"])
            .tensor_f32("blk.0.attn_q.weight", &[8])
            .build();
        std::fs::write(&gguf, bytes).unwrap();
        assert_eq!(detect(&gguf).unwrap(), ModelFormat::Gguf);
        assert!(check(&gguf).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
