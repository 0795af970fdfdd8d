//! The BitNet fixtures (`BitNet/fixtures/make_bitnet.py`): a tiny ternary model in `TQ1_0` and
//! `TQ2_0` with SmolLM2's tokenizer, a truncated one, and files the Rust GGUF writer makes that
//! a loader must refuse (bitnet.cpp's `I2_S`, ternary rows that are not whole blocks). Made once
//! per test process into a temporary folder.

use crate::{model_path, repo_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tabagent_host::gguf::write::Builder;

/// The folder holding the fixtures.
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = crate::scratch().join(format!("tabagent-bitnet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(crate::python())
            .arg(repo_root().join("BitNet/fixtures/make_bitnet.py"))
            .arg("--tokenizer-from")
            .arg(model_path())
            .arg("--out")
            .arg(&dir)
            .arg("--hostile")
            .output()
            .unwrap();
        assert!(out.status.success(), "make_bitnet.py: {}", String::from_utf8_lossy(&out.stderr));
        let tokens = ["a", "b", "c"];
        let base = || {
            Builder::new()
                .kv_str("general.architecture", "bitnet")
                .kv_u32("bitnet.block_count", 1)
                .kv_str_array("tokenizer.ggml.tokens", &tokens)
        };
        // bitnet.cpp's I2_S tensor type (36).
        let i2s = base().tensor("blk.0.attn_q.weight", &[256, 256], 36).build();
        std::fs::write(dir.join("i2s-bitnet.gguf"), i2s).unwrap();
        // Microsoft's own files say `bitnet-b1.58`, an architecture llama.cpp lacks: the layout is
        // still what the refusal names.
        let b158 = Builder::new()
            .kv_str("general.architecture", "bitnet-b1.58")
            .kv_u32("bitnet-b1.58.block_count", 1)
            .kv_str_array("tokenizer.ggml.tokens", &tokens)
            .tensor("blk.0.attn_q.weight", &[256, 256], 36)
            .build();
        std::fs::write(dir.join("i2s-bitnet-b1.58.gguf"), b158).unwrap();
        // TQ2_0 rows of 100 values: not a whole number of 256-value blocks.
        let bad = base().tensor("blk.0.attn_q.weight", &[100, 256], 35).build();
        std::fs::write(dir.join("hostile-bad-blocks-TQ2_0.gguf"), bad).unwrap();
        dir
    })
}

/// A fixture by file name.
pub fn fixture(name: &str) -> PathBuf {
    let p = fixtures().join(name);
    assert!(p.is_file(), "fixture {} is missing", p.display());
    p
}
