//! Unit tests of the GGUF header reader.

use super::write::Builder;
use super::*;

#[test]
fn a_header_larger_than_the_first_read_is_read_whole() {
    let tokens: Vec<String> = (0..400_000).map(|i| format!("token-number-{i:08}")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let bytes = write::Builder::new()
        .kv_str("general.architecture", "llama")
        .kv_str_array("tokenizer.ggml.tokens", &refs)
        .tensor_f32("t", &[4])
        .build();
    assert!(bytes.len() > 4 << 20);
    let path = std::env::temp_dir().join(format!("gguf-big-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let f = GgufFile::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!((f.tensors.len(), f.tensors[0].name.as_str()), (1, "t"));
}

fn model() -> Builder {
    Builder::new()
        .kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 2)
        .kv_str_array("tokenizer.ggml.tokens", &["a", "b", "c"])
        .tensor_f32("token_embd.weight", &[8, 3])
        .tensor_f32("blk.0.attn_q.weight", &[8, 8])
        .tensor_f32("blk.0.ffn_up.weight", &[8, 16])
        .tensor_f32("blk.1.attn_q.weight", &[8, 8])
        .tensor_f32("output_norm.weight", &[8])
}

fn parse(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    GgufFile::parse(bytes, bytes.len() as u64)
}

#[test]
fn reads_metadata_tensors_and_layer_sizes() {
    let f = parse(&model().build()).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.architecture(), Some("llama"));
    assert_eq!(f.arch_u64("block_count"), Some(2));
    assert_eq!(
        f.get("tokenizer.ggml.tokens"),
        Some(&Value::StrArray(vec!["a".into(), "b".into(), "c".into()]))
    );
    assert_eq!(f.tensors.len(), 5);
    assert_eq!(f.tensors[1].layer(), Some(0));
    assert_eq!(f.tensors[0].layer(), None);
    assert_eq!(f.layer_bytes(), vec![(64 + 128) * 4, 64 * 4]);
    assert_eq!(f.non_layer_bytes(), (24 + 8) * 4);
}

#[test]
fn a_layer_number_that_cannot_exist_sizes_nothing() {
    // Found by the fuzzer: `blk.1194857853.x` made `layer_bytes` allocate 9 GB.
    let f = parse(&model().tensor_f32("blk.1194857853.x", &[8]).build()).unwrap();
    assert_eq!(f.layer_bytes(), vec![(64 + 128) * 4, 64 * 4]);
    assert_eq!(f.non_layer_bytes(), (24 + 8 + 8) * 4);
}

#[test]
fn refuses_bad_magic_and_versions() {
    assert_eq!(parse(b"GGML\x03\0\0\0"), Err(GgufError::Magic(*b"GGML")));
    let mut b = model();
    b.version = 1;
    assert_eq!(parse(&b.build()), Err(GgufError::Version(1)));
    b.version = 3u32.swap_bytes();
    assert_eq!(parse(&b.build()), Err(GgufError::Version(3u32.swap_bytes())));
}

#[test]
fn every_truncation_is_refused() {
    let bytes = model().build();
    let header_end = {
        let f = parse(&bytes).unwrap();
        f.data_offset as usize
    };
    for cut in 0..bytes.len() {
        let r = GgufFile::parse(&bytes[..cut.min(header_end)], cut as u64);
        assert!(r.is_err(), "truncated at {cut} was accepted");
    }
}

#[test]
fn huge_counts_and_lengths_are_refused() {
    let mut bytes = model().build();
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(parse(&bytes), Err(GgufError::Invalid(m)) if m.contains("tensors")));
    let mut bytes = model().build();
    bytes[16..24].copy_from_slice(&(MAX_KVS + 1).to_le_bytes());
    assert!(matches!(parse(&bytes), Err(GgufError::Invalid(m)) if m.contains("metadata")));
    // The first key's length.
    let mut bytes = model().build();
    bytes[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(parse(&bytes), Err(GgufError::Invalid(m)) if m.contains("string")));
}

#[test]
fn duplicates_and_bad_alignment_are_refused() {
    let dup = Builder::new().kv_u32("a", 1).kv_u32("a", 2).build();
    assert!(matches!(parse(&dup), Err(GgufError::Invalid(m)) if m.contains("twice")));
    let dup_t = Builder::new().tensor_f32("t", &[8]).tensor_f32("t", &[8]).build();
    assert!(matches!(parse(&dup_t), Err(GgufError::Invalid(m)) if m.contains("twice")));
    let align = Builder::new().kv_u32("general.alignment", 3).build();
    assert!(matches!(parse(&align), Err(GgufError::Invalid(m)) if m.contains("power of two")));
}

#[test]
fn wrong_array_element_types_are_refused() {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.push(b'k');
    bytes.extend_from_slice(&9u32.to_le_bytes()); // array
    bytes.extend_from_slice(&99u32.to_le_bytes()); // of an unknown type
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(&[0; 8]);
    assert!(
        matches!(parse(&bytes), Err(GgufError::Invalid(m)) if m.contains("array element type 99"))
    );
    // An array of arrays.
    let at = bytes.len() - 16 - 4;
    bytes[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
    assert!(matches!(parse(&bytes), Err(GgufError::Invalid(m)) if m.contains("nested")));
}

#[test]
fn tensor_data_past_the_end_is_refused() {
    let bytes = model().build();
    let short = &bytes[..bytes.len() - 4];
    assert!(matches!(parse(short), Err(GgufError::Invalid(m)) if m.contains("past the end")));
}

#[test]
fn random_bit_flips_never_panic() {
    let bytes = model().build();
    let mut state = 0x9e3779b97f4a7c15u64;
    for _ in 0..20_000 {
        let mut b = bytes.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state as usize) % b.len().min(400);
            b[i] ^= 1 << (state % 8);
        }
        let _ = parse(&b);
    }
}

#[test]
fn type_sizes() {
    assert_eq!(tensor_type(12).map(|t| (t.block, t.bytes)), Some((256, 144)));
    assert_eq!(tensor_type(3).map(|t| t.name), Some("Q4_1"));
    assert_eq!(tensor_type(35).map(|t| t.name), Some("TQ2_0"));
    assert!(tensor_type(4).is_none());
}
