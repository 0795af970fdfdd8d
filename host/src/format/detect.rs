//! What a file or a folder holds, from its first bytes: GGUF, SafeTensors, ONNX, TFLite/LiteRT,
//! or something else. Each format is recognised by what its specification puts at the start of
//! the file, never by its name alone.

use super::ModelFormat;
use std::io::Read as _;
use std::path::Path;

/// Bytes read from the start of a file to name its format.
const PROBE: usize = 64;

/// Largest SafeTensors JSON header accepted (the format's own limit is 100 MB).
pub(super) const MAX_SAFETENSORS_HEADER: u64 = 100 << 20;

/// Name the format of `bytes`, the first bytes of a file of `len` bytes.
pub fn sniff(bytes: &[u8], len: u64) -> ModelFormat {
    if bytes.starts_with(b"GGUF") {
        return ModelFormat::Gguf;
    }
    // SafeTensors: a little-endian u64 header size, then a JSON object.
    if bytes.len() >= 9 {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
        let fits = (2..=MAX_SAFETENSORS_HEADER).contains(&n) && n.saturating_add(8) <= len;
        if fits && bytes[8] == b'{' {
            return ModelFormat::SafeTensors;
        }
    }
    // TFLite / LiteRT: a FlatBuffer whose file identifier (bytes 4..8) is "TFL3".
    if bytes.len() >= 8 && &bytes[4..8] == b"TFL3" {
        return ModelFormat::TfLite;
    }
    if looks_like_onnx(bytes) {
        return ModelFormat::Onnx;
    }
    ModelFormat::Other
}

/// An ONNX file is a protobuf `ModelProto`; writers put `ir_version` (field 1, a varint) first.
/// Accept it when the first fields parse as `ModelProto` fields with their wire types:
/// `ir_version` 1–20, then strings (`producer_name` 2, `producer_version` 3, `domain` 4,
/// `doc_string` 6), `model_version` (5, varint), `graph` (7) or `opset_import` (8).
fn looks_like_onnx(bytes: &[u8]) -> bool {
    let mut pos = 0;
    let varint = |pos: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *bytes.get(*pos)?;
            *pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    let Some(0x08) = bytes.first() else { return false };
    pos += 1;
    match varint(&mut pos) {
        Some(1..=20) => {}
        _ => return false,
    }
    // At least one more field, all of them ModelProto's, within the probe.
    let mut fields = 0;
    while pos < bytes.len() {
        let Some(tag) = varint(&mut pos) else { break };
        let (field, wire) = (tag >> 3, tag & 7);
        match (field, wire) {
            (5, 0) => {
                if varint(&mut pos).is_none() {
                    break;
                }
            }
            (2 | 3 | 4 | 6 | 7 | 8 | 14 | 20 | 25, 2) => {
                let Some(n) = varint(&mut pos) else { break };
                fields += 1;
                // The field runs past the probe: as far as can be seen, a ModelProto.
                let Some(end) = usize::try_from(n).ok().and_then(|n| pos.checked_add(n)) else {
                    return false;
                };
                if end >= bytes.len() {
                    return true;
                }
                pos = end;
            }
            _ => return false,
        }
        fields += 1;
    }
    fields > 0
}

/// Read the first bytes of `path` and name its format.
pub fn sniff_file(path: &Path) -> std::io::Result<ModelFormat> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut buf = Vec::with_capacity(PROBE);
    f.by_ref().take(PROBE as u64).read_to_end(&mut buf)?;
    Ok(sniff(&buf, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_is_named_from_its_first_bytes() {
        assert_eq!(sniff(b"GGUF\x03\0\0\0", 100), ModelFormat::Gguf);
        let mut st = 20u64.to_le_bytes().to_vec();
        st.extend_from_slice(br#"{"a":{"dtype":"F16"}}"#);
        assert_eq!(sniff(&st, st.len() as u64), ModelFormat::SafeTensors);
        // A header size past the end of the file is not SafeTensors.
        assert_eq!(sniff(&st, 10), ModelFormat::Other);
        let mut tfl = vec![0x1c, 0, 0, 0];
        tfl.extend_from_slice(b"TFL3");
        tfl.extend_from_slice(&[0; 8]);
        assert_eq!(sniff(&tfl, 1000), ModelFormat::TfLite);
        // ir_version 8, producer_name "pytorch", producer_version "2.1", graph (long).
        let onnx = b"\x08\x08\x12\x07pytorch\x1a\x032.1\x3a\xff\xff\x03";
        assert_eq!(sniff(onnx, 100_000), ModelFormat::Onnx);
        assert_eq!(sniff(b"\x08\x08\x12\x07pytorch", 100), ModelFormat::Onnx);
        for other in [
            &b"hello world, not a model"[..],
            b"\x08\xff\xff\xff\xff\x0f",
            b"\x08\x08\x50\x01",
            b"",
            b"PK\x03\x04",
        ] {
            assert_eq!(sniff(other, 100), ModelFormat::Other, "{other:?}");
        }
    }
}
