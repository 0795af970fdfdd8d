//! The GGUF checks made in Rust before llama.cpp sees a file: the header (via [`crate::gguf`])
//! and what llama.cpp trusts without checking — a known architecture, a layer count under its
//! limit, a consistent tokenizer, special tokens inside the vocabulary.

use crate::gguf::{GgufError, GgufFile, Value};
use std::path::Path;

/// llama.cpp's limit on layers (`LLAMA_MAX_LAYERS`).
pub const MAX_LAYERS: u64 = 512;

/// Architectures the bundled llama.cpp (llama-cpp-sys-2 0.1.160, `src/llama-arch.cpp`) knows.
pub const KNOWN_ARCHITECTURES: &[&str] = &[
    "llama",
    "llama4",
    "deci",
    "falcon",
    "grok",
    "gpt2",
    "gptj",
    "gptneox",
    "mpt",
    "baichuan",
    "starcoder",
    "refact",
    "bert",
    "modern-bert",
    "nomic-bert",
    "nomic-bert-moe",
    "neo-bert",
    "jina-bert-v2",
    "jina-bert-v3",
    "eurobert",
    "bloom",
    "stablelm",
    "qwen",
    "qwen2",
    "qwen2moe",
    "qwen2vl",
    "qwen3",
    "qwen3moe",
    "qwen3next",
    "qwen3vl",
    "qwen3vlmoe",
    "qwen35",
    "qwen35moe",
    "clef",
    "qwen4exp",
    "phi2",
    "phi3",
    "phimoe",
    "plamo",
    "plamo2",
    "plamo3",
    "codeshell",
    "orion",
    "internlm2",
    "minicpm",
    "minicpm3",
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3n",
    "gemma4",
    "gemma4-assistant",
    "gemma-embedding",
    "starcoder2",
    "mamba",
    "mamba2",
    "maple",
    "jamba",
    "falcon-h1",
    "xverse",
    "command-r",
    "cohere2",
    "cohere2moe",
    "dbrx",
    "olmo",
    "olmo2",
    "olmoe",
    "muse-glimmer",
    "openelm",
    "arctic",
    "deepseek",
    "deepseek2",
    "deepseek2-ocr",
    "deepseek32",
    "deepseek4",
    "chatglm",
    "glm4",
    "glm4moe",
    "glm-dsa",
    "bitnet",
    "t5",
    "t5encoder",
    "jais",
    "jais2",
    "nemotron",
    "nemotron_h",
    "nemotron_h_moe",
    "exaone",
    "exaone4",
    "exaone-moe",
    "rwkv6",
    "rwkv6qwen2",
    "rwkv7",
    "arwkv7",
    "granite",
    "granitemoe",
    "granitehybrid",
    "graniteswitch",
    "granite_swa",
    "chameleon",
    "wavtokenizer-dec",
    "plm",
    "bailingmoe",
    "bailingmoe2",
    "bailingmoe3",
    "dots1",
    "dots3note",
    "arcee",
    "afmoe",
    "laguna",
    "ernie4_5",
    "ernie4_5-moe",
    "hunyuan-moe",
    "hunyuan-dense",
    "hunyuan_vl",
    "hy_v3",
    "hy_v4",
    "smollm3",
    "gpt-oss",
    "lfm2",
    "lfm2moe",
    "dream",
    "smallthinker",
    "llada",
    "llada-moe",
    "seed_oss",
    "grovemoe",
    "apertus",
    "minimax-01",
    "hrm_text",
    "minimax-m2",
    "minimax-m3",
    "cogvlm",
    "rnd1",
    "pangu-embedded",
    "mistral3",
    "eagle3",
    "dflash",
    "mistral4",
    "paddleocr",
    "mimo2",
    "step35",
    "spark2_5",
    "llama-embed",
    "maincoder",
    "kimi-linear",
    "kimi-k3",
    "glm5-next",
    "talkie",
    "mellum",
    "nanbeige",
    "qwen3tts",
    "pockettts",
];

/// Why a model file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelFileError {
    /// The header is malformed.
    #[error("bad GGUF header: {0}")]
    Header(#[from] GgufError),
    /// The header is well formed but the model is not usable.
    #[error("{0}")]
    Model(String),
}

fn bad(msg: impl Into<String>) -> ModelFileError {
    ModelFileError::Model(msg.into())
}

/// Read and check a model file; the parsed header on success.
pub fn check_model_file(path: &Path) -> Result<GgufFile, ModelFileError> {
    let f = GgufFile::open(path)?;
    check_model(&f)?;
    Ok(f)
}

/// Check a parsed header.
pub fn check_model(f: &GgufFile) -> Result<(), ModelFileError> {
    let arch = f.architecture().ok_or_else(|| bad("general.architecture is missing"))?;
    if !KNOWN_ARCHITECTURES.contains(&arch) {
        return Err(bad(format!("architecture '{arch}' is not known to this build of llama.cpp")));
    }
    let layers =
        f.arch_u64("block_count").ok_or_else(|| bad(format!("{arch}.block_count is missing")))?;
    if layers == 0 || layers > MAX_LAYERS {
        return Err(bad(format!(
            "{arch}.block_count is {layers}; llama.cpp takes 1 to {MAX_LAYERS}"
        )));
    }
    if f.tensors.is_empty() {
        return Err(bad("the file has no tensors"));
    }
    let vocab = match f.get("tokenizer.ggml.tokens") {
        Some(Value::StrArray(tokens)) => tokens.len() as u64,
        Some(_) => return Err(bad("tokenizer.ggml.tokens is not an array of strings")),
        None => return Err(bad("tokenizer.ggml.tokens is missing")),
    };
    if vocab < 2 {
        return Err(bad(format!("the vocabulary has {vocab} token(s); at least 2 are needed")));
    }
    for key in ["tokenizer.ggml.scores", "tokenizer.ggml.token_type"] {
        match f.get(key) {
            None => {}
            Some(Value::Array { len, .. }) if *len == vocab => {}
            Some(Value::Array { len, .. }) => {
                return Err(bad(format!("{key} has {len} entries but the vocabulary has {vocab}")));
            }
            Some(_) => return Err(bad(format!("{key} is not a numeric array"))),
        }
    }
    for (key, value) in &f.metadata {
        if key.starts_with("tokenizer.ggml.") && key.ends_with("_token_id") {
            match value.as_u64() {
                Some(id) if id < vocab => {}
                _ => {
                    return Err(bad(format!(
                        "{key} is {value:?}, outside the vocabulary of {vocab} tokens"
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::write::Builder;

    fn model(arch: &str, layers: u32, tokens: &[&str]) -> Builder {
        Builder::new()
            .kv_str("general.architecture", arch)
            .kv_u32(&format!("{arch}.block_count"), layers)
            .kv_str_array("tokenizer.ggml.tokens", tokens)
            .tensor_f32("blk.0.attn_q.weight", &[8, 8])
    }

    fn check(b: &Builder) -> Result<(), ModelFileError> {
        let bytes = b.build();
        check_model(&GgufFile::parse(&bytes, bytes.len() as u64)?)
    }

    #[test]
    fn a_plain_model_passes() {
        assert_eq!(
            check(&model("llama", 2, &["a", "b", "c"]).kv_u32("tokenizer.ggml.bos_token_id", 1)),
            Ok(())
        );
    }

    #[test]
    fn hostile_models_are_refused_with_the_reason() {
        let msg = |b: Builder| check(&b).unwrap_err().to_string();
        assert!(msg(model("nonsense-arch", 2, &["a", "b"])).contains("not known"));
        assert!(msg(model("llama", 513, &["a", "b"])).contains("block_count is 513"));
        assert!(msg(model("llama", 0, &["a", "b"])).contains("block_count is 0"));
        assert!(msg(model("llama", 2, &["a"])).contains("1 token"));
        assert!(
            msg(model("llama", 2, &["a", "b"]).kv_u32("tokenizer.ggml.eos_token_id", 2))
                .contains("outside the vocabulary")
        );
        let no_tokens = Builder::new()
            .kv_str("general.architecture", "llama")
            .kv_u32("llama.block_count", 1)
            .tensor_f32("blk.0.attn_q.weight", &[8]);
        assert!(msg(no_tokens).contains("tokens is missing"));
        let no_arch = Builder::new().tensor_f32("x", &[8]);
        assert!(msg(no_arch).contains("architecture is missing"));
    }

    #[test]
    fn every_known_architecture_is_a_plain_name() {
        assert!(KNOWN_ARCHITECTURES.len() > 100);
        assert!(KNOWN_ARCHITECTURES.contains(&"llama") && KNOWN_ARCHITECTURES.contains(&"gemma3"));
        assert!(KNOWN_ARCHITECTURES.contains(&"bitnet"));
        for a in KNOWN_ARCHITECTURES {
            assert!(
                a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'),
                "{a}"
            );
        }
    }
}
