//! # tabagent-gguf
//!
//! A bounded, safe reader of GGUF headers: metadata key-values and tensor infos, with every count,
//! length and offset checked against the file before it is trusted. The host reads a model's
//! layout with it (per-layer sizes for the GPU/CPU split) without handing the file to llama.cpp.
//!
//! Format (versions 2 and 3, little-endian): magic `GGUF`, version `u32`, tensor count `u64`,
//! key-value count `u64`, the key-values, the tensor infos, padding to `general.alignment`
//! (default 32), then tensor data.

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Most tensors a file may declare.
pub const MAX_TENSORS: u64 = 1 << 16;
/// Most key-values a file may declare.
pub const MAX_KVS: u64 = 1 << 16;
/// Longest string (key, value or tensor name) in bytes.
pub const MAX_STRING: u64 = 1 << 20;
/// Most elements of one array value (a vocabulary of a few hundred thousand tokens fits).
pub const MAX_ARRAY: u64 = 1 << 24;
/// Most bytes of header (key-values and tensor infos) read into memory.
pub const MAX_HEADER: u64 = 1 << 30;

/// Why a GGUF file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GgufError {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(String),
    /// Not a GGUF file.
    #[error("not a GGUF file (magic {0:02x?})")]
    Magic([u8; 4]),
    /// A version this reader does not take.
    #[error("unsupported GGUF version {0} (expected 2 or 3)")]
    Version(u32),
    /// The file ends inside the header.
    #[error("the file ends inside the header (at byte {0})")]
    Truncated(u64),
    /// A count, length or value is out of bounds.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> GgufError {
    GgufError::Invalid(msg.into())
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any unsigned integer type.
    U64(u64),
    /// Any signed integer type.
    I64(i64),
    /// `float32` or `float64`.
    F64(f64),
    /// `bool`.
    Bool(bool),
    /// `string`.
    Str(String),
    /// An array of strings (kept, since vocabularies are string arrays).
    StrArray(Vec<String>),
    /// An array of numbers or bools, as its element type and length (contents are not kept).
    Array {
        /// GGUF element type id.
        elem_type: u32,
        /// Number of elements.
        len: u64,
    },
}

impl Value {
    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Self::U64(v) => Some(*v),
            Self::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A ggml tensor type: its name, elements per block and bytes per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorType {
    /// ggml type id.
    pub id: u32,
    /// Name, e.g. `Q4_K`.
    pub name: &'static str,
    /// Elements per block.
    pub block: u64,
    /// Bytes per block.
    pub bytes: u64,
}

/// ggml's tensor types (ids missing here were removed from ggml and are refused).
pub fn tensor_type(id: u32) -> Option<TensorType> {
    let (name, block, bytes) = match id {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 18),
        3 => ("Q4_1", 32, 20),
        6 => ("Q5_0", 32, 22),
        7 => ("Q5_1", 32, 24),
        8 => ("Q8_0", 32, 34),
        9 => ("Q8_1", 32, 36),
        10 => ("Q2_K", 256, 84),
        11 => ("Q3_K", 256, 110),
        12 => ("Q4_K", 256, 144),
        13 => ("Q5_K", 256, 176),
        14 => ("Q6_K", 256, 210),
        15 => ("Q8_K", 256, 292),
        16 => ("IQ2_XXS", 256, 66),
        17 => ("IQ2_XS", 256, 74),
        18 => ("IQ3_XXS", 256, 98),
        19 => ("IQ1_S", 256, 50),
        20 => ("IQ4_NL", 32, 18),
        21 => ("IQ3_S", 256, 110),
        22 => ("IQ2_S", 256, 82),
        23 => ("IQ4_XS", 256, 136),
        24 => ("I8", 1, 1),
        25 => ("I16", 1, 2),
        26 => ("I32", 1, 4),
        27 => ("I64", 1, 8),
        28 => ("F64", 1, 8),
        29 => ("IQ1_M", 256, 56),
        30 => ("BF16", 1, 2),
        34 => ("TQ1_0", 256, 54),
        35 => ("TQ2_0", 256, 66),
        // Microsoft bitnet.cpp's ternary layout (2 bits a weight, and one scale per tensor that
        // this size leaves out); not upstream ggml's. Read so it can be named and refused.
        36 => ("I2_S", 4, 1),
        39 => ("MXFP4", 32, 17),
        _ => return None,
    };
    Some(TensorType { id, name, block, bytes })
}

/// One tensor's header entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions (1 to 4).
    pub dims: Vec<u64>,
    /// Type.
    pub ty: TensorType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Bytes of data.
    pub size: u64,
}

impl TensorInfo {
    /// The block (layer) index of a `blk.N.*` tensor.
    pub fn layer(&self) -> Option<u32> {
        self.name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
    }
}

/// A parsed GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata by key.
    pub metadata: BTreeMap<String, Value>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Data alignment.
    pub alignment: u64,
    /// Offset of the data section in the file.
    pub data_offset: u64,
    /// Size of the file.
    pub file_size: u64,
}

impl GgufFile {
    /// Read and check a file's header. Reads only as far as the header goes (a few MiB for a
    /// large vocabulary), never the tensor data, and never more than [`MAX_HEADER`].
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let io = |e: std::io::Error| GgufError::Io(e.to_string());
        let mut file = std::fs::File::open(path).map_err(io)?;
        let file_size = file.metadata().map_err(io)?.len();
        let limit = file_size.min(MAX_HEADER);
        let mut bytes = Vec::new();
        let mut want = limit.min(4 << 20);
        loop {
            let have = bytes.len() as u64;
            (&mut file).take(want - have).read_to_end(&mut bytes).map_err(io)?;
            match Self::parse(&bytes, file_size) {
                // The header goes on past what was read: read more.
                Err(GgufError::Truncated(_)) if want < limit && bytes.len() as u64 == want => {
                    want = want.saturating_mul(4).min(limit);
                }
                other => return other,
            }
        }
    }

    /// Parse a header from the first bytes of a file of `file_size` bytes.
    pub fn parse(bytes: &[u8], file_size: u64) -> Result<Self, GgufError> {
        let mut r = Reader { bytes, pos: 0 };
        let magic: [u8; 4] = r.take(4)?.try_into().unwrap_or_default();
        if &magic != b"GGUF" {
            return Err(GgufError::Magic(magic));
        }
        let version = r.u32()?;
        if version != 2 && version != 3 {
            return Err(GgufError::Version(version));
        }
        let n_tensors = r.u64()?;
        let n_kv = r.u64()?;
        if n_tensors > MAX_TENSORS {
            return Err(invalid(format!(
                "{n_tensors} tensors is more than the limit of {MAX_TENSORS}"
            )));
        }
        if n_kv > MAX_KVS {
            return Err(invalid(format!(
                "{n_kv} metadata entries is more than the limit of {MAX_KVS}"
            )));
        }
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let value = r.value(ty)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(invalid(format!("metadata key '{key}' appears twice")));
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 20 => a,
                _ => return Err(invalid(format!("general.alignment {v:?} is not a power of two"))),
            },
        };
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut names = std::collections::HashSet::new();
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims == 0 || n_dims > 4 {
                return Err(invalid(format!(
                    "tensor '{name}' has {n_dims} dimensions (1 to 4 allowed)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64()?);
            }
            let type_id = r.u32()?;
            let ty = tensor_type(type_id)
                .ok_or_else(|| invalid(format!("tensor '{name}' has unknown type {type_id}")))?;
            let offset = r.u64()?;
            let elements = dims
                .iter()
                .try_fold(1u64, |acc, d| acc.checked_mul(*d))
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(format!("tensor '{name}' has bad dimensions {dims:?}")))?;
            if dims[0] % ty.block != 0 {
                return Err(invalid(format!(
                    "tensor '{name}': first dimension {} is not a multiple of {}'s block of {}",
                    dims[0], ty.name, ty.block
                )));
            }
            let size = (elements / ty.block)
                .checked_mul(ty.bytes)
                .ok_or_else(|| invalid(format!("tensor '{name}' is too large")))?;
            if offset % alignment != 0 {
                return Err(invalid(format!(
                    "tensor '{name}' offset {offset} is not aligned to {alignment}"
                )));
            }
            if !names.insert(name.clone()) {
                return Err(invalid(format!("tensor '{name}' appears twice")));
            }
            tensors.push(TensorInfo { name, dims, ty, offset, size });
        }
        let data_offset = (r.pos as u64).div_ceil(alignment) * alignment;
        for t in &tensors {
            let end = data_offset.checked_add(t.offset).and_then(|o| o.checked_add(t.size));
            if end.is_none_or(|e| e > file_size) {
                return Err(invalid(format!(
                    "tensor '{}' data ({} bytes at {}) runs past the end of the file ({file_size} bytes)",
                    t.name,
                    t.size,
                    data_offset.saturating_add(t.offset)
                )));
            }
        }
        Ok(Self { version, metadata, tensors, alignment, data_offset, file_size })
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    /// An architecture-scoped integer, e.g. `arch_u64("block_count")` reads `llama.block_count`.
    pub fn arch_u64(&self, key: &str) -> Option<u64> {
        self.get(&format!("{}.{key}", self.architecture()?)).and_then(Value::as_u64)
    }

    /// The layer of a tensor (`blk.N.*`), where `N` is plausible: a file of T tensors has
    /// fewer than T layers, so a hostile `blk.4000000000.x` cannot size anything.
    fn layer_of(&self, t: &TensorInfo) -> Option<usize> {
        t.layer().map(|l| l as usize).filter(|l| *l < self.tensors.len())
    }

    /// Bytes of tensor data per layer (`blk.N.*`), indexed by layer.
    pub fn layer_bytes(&self) -> Vec<u64> {
        let n = self.tensors.iter().filter_map(|t| self.layer_of(t)).max().map_or(0, |m| m + 1);
        let mut out = vec![0u64; n];
        for t in &self.tensors {
            if let Some(l) = self.layer_of(t) {
                out[l] = out[l].saturating_add(t.size);
            }
        }
        out
    }

    /// Bytes of tensor data outside the layers (embeddings, output head, norms, and tensors
    /// named for a layer that cannot exist).
    pub fn non_layer_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .filter(|t| self.layer_of(t).is_none())
            .fold(0, |a, t| a.saturating_add(t.size))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], GgufError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|e| *e <= self.bytes.len())
            .ok_or(GgufError::Truncated(self.bytes.len() as u64))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap_or_default()))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default()))
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(invalid(format!(
                "a string of {len} bytes is longer than the limit of {MAX_STRING}"
            )));
        }
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| invalid("a string is not valid UTF-8"))
    }

    fn scalar(&mut self, ty: u32) -> Result<Value, GgufError> {
        let b = |r: &mut Self, n| r.take(n);
        Ok(match ty {
            0 => Value::U64(u64::from(b(self, 1)?[0])),
            1 => Value::I64(i64::from(b(self, 1)?[0] as i8)),
            2 => Value::U64(u64::from(u16::from_le_bytes(
                b(self, 2)?.try_into().unwrap_or_default(),
            ))),
            3 => Value::I64(i64::from(i16::from_le_bytes(
                b(self, 2)?.try_into().unwrap_or_default(),
            ))),
            4 => Value::U64(u64::from(self.u32()?)),
            5 => Value::I64(i64::from(self.u32()? as i32)),
            6 => Value::F64(f64::from(f32::from_bits(self.u32()?))),
            7 => match b(self, 1)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                v => return Err(invalid(format!("a bool has the value {v}"))),
            },
            8 => Value::Str(self.string()?),
            10 => Value::U64(self.u64()?),
            11 => Value::I64(self.u64()? as i64),
            12 => Value::F64(f64::from_bits(self.u64()?)),
            other => return Err(invalid(format!("unknown metadata value type {other}"))),
        })
    }

    fn value(&mut self, ty: u32) -> Result<Value, GgufError> {
        if ty != 9 {
            return self.scalar(ty);
        }
        let elem_type = self.u32()?;
        let len = self.u64()?;
        if len > MAX_ARRAY {
            return Err(invalid(format!(
                "an array of {len} elements is longer than the limit of {MAX_ARRAY}"
            )));
        }
        match elem_type {
            8 => {
                let mut out = Vec::with_capacity(len.min(1 << 16) as usize);
                for _ in 0..len {
                    out.push(self.string()?);
                }
                Ok(Value::StrArray(out))
            }
            9 => Err(invalid("nested arrays are not supported")),
            t => {
                let width = match t {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    10..=12 => 8,
                    other => return Err(invalid(format!("unknown array element type {other}"))),
                };
                self.take(len * width)?;
                Ok(Value::Array { elem_type: t, len })
            }
        }
    }
}

pub mod write;

#[cfg(test)]
mod tests;
