//! Writing small GGUF files.

/// Builds GGUF bytes: small synthetic model files for tests and fixtures.
#[derive(Default)]
pub struct Builder {
    kvs: Vec<u8>,
    n_kv: u64,
    tensors: Vec<u8>,
    n_tensors: u64,
    data_len: u64,
    /// Format version written (3 unless changed).
    pub version: u32,
}

fn s(out: &mut Vec<u8>, v: &str) {
    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
    out.extend_from_slice(v.as_bytes());
}

impl Builder {
    /// An empty version-3 file.
    pub fn new() -> Self {
        Self { version: 3, ..Self::default() }
    }

    /// Add a string key-value.
    pub fn kv_str(mut self, k: &str, v: &str) -> Self {
        s(&mut self.kvs, k);
        self.kvs.extend_from_slice(&8u32.to_le_bytes());
        s(&mut self.kvs, v);
        self.n_kv += 1;
        self
    }

    /// Add a `u32` key-value.
    pub fn kv_u32(mut self, k: &str, v: u32) -> Self {
        s(&mut self.kvs, k);
        self.kvs.extend_from_slice(&4u32.to_le_bytes());
        self.kvs.extend_from_slice(&v.to_le_bytes());
        self.n_kv += 1;
        self
    }

    /// Add a string-array key-value.
    pub fn kv_str_array(mut self, k: &str, v: &[&str]) -> Self {
        s(&mut self.kvs, k);
        self.kvs.extend_from_slice(&9u32.to_le_bytes());
        self.kvs.extend_from_slice(&8u32.to_le_bytes());
        self.kvs.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for x in v {
            s(&mut self.kvs, x);
        }
        self.n_kv += 1;
        self
    }

    /// A tensor of F32 elements placed after the previous one.
    pub fn tensor_f32(self, name: &str, dims: &[u64]) -> Self {
        self.tensor(name, dims, 0)
    }

    /// A tensor of ggml type `type_id` placed after the previous one; its data size follows
    /// from the type (a type this crate does not know, or dimensions that are not whole blocks,
    /// are written as given, for files that must be refused).
    pub fn tensor(mut self, name: &str, dims: &[u64], type_id: u32) -> Self {
        s(&mut self.tensors, name);
        self.tensors.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend_from_slice(&d.to_le_bytes());
        }
        self.tensors.extend_from_slice(&type_id.to_le_bytes());
        self.tensors.extend_from_slice(&self.data_len.to_le_bytes());
        let elements = dims.iter().product::<u64>();
        let size = match crate::tensor_type(type_id) {
            Some(t) => elements.div_ceil(t.block) * t.bytes,
            None => elements,
        };
        self.data_len += size.div_ceil(32) * 32;
        self.n_tensors += 1;
        self
    }

    /// The file's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.n_tensors.to_le_bytes());
        out.extend_from_slice(&self.n_kv.to_le_bytes());
        out.extend_from_slice(&self.kvs);
        out.extend_from_slice(&self.tensors);
        out.resize(out.len().div_ceil(32) * 32, 0);
        out.resize(out.len() + self.data_len as usize, 0);
        out
    }
}
