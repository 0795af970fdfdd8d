//! Everything ternary in TabAgent Host: the layouts of BitNet 1.58's weight types and their
//! decoding to the ternary values {-1, 0, 1} and one scale per block.
//!
//! The host runs ternary GGUF models on llama.cpp's own kernels for `TQ1_0` and `TQ2_0` (in
//! whichever CPU variant it picked); this crate is what the host and its tests know about those
//! formats without llama.cpp: block sizes, decoding (to check that two encodings hold the same
//! weights, bit for bit), and the name of the layout llama.cpp does not read that a GGUF file
//! can say it holds (Microsoft bitnet.cpp's `I2_S`; its `TL1`/`TL2` ids collide with upstream
//! ggml's, so a file cannot name them). `README.md` beside this crate explains the formats and how
//! the host routes models.

/// Values per block of both ternary types (ggml's `QK_K`).
pub const BLOCK: usize = 256;

/// A ternary GGUF tensor type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ternary {
    /// 1.6875 bits a weight: 5 weights a byte in base 3, 4 a byte for the last 16, one f16 scale.
    Tq1_0,
    /// 2.0625 bits a weight: 4 weights a byte as 2-bit values, one f16 scale.
    Tq2_0,
}

impl Ternary {
    /// The type of a ggml type id (`34` TQ1_0, `35` TQ2_0).
    pub fn from_ggml(id: u32) -> Option<Self> {
        match id {
            34 => Some(Self::Tq1_0),
            35 => Some(Self::Tq2_0),
            _ => None,
        }
    }

    /// Bytes per block of [`BLOCK`] weights.
    pub fn block_bytes(self) -> usize {
        match self {
            Self::Tq1_0 => 54,
            Self::Tq2_0 => 66,
        }
    }

    /// Decode one block: the ternary values, in order, and the block's scale (as f16 bits).
    pub fn decode_block(self, block: &[u8]) -> Result<([i8; BLOCK], u16), TernaryError> {
        if block.len() != self.block_bytes() {
            return Err(TernaryError::BlockSize { expected: self.block_bytes(), got: block.len() });
        }
        let mut out = [0i8; BLOCK];
        let mut n = 0;
        let mut push = |v: i8| {
            out[n] = v;
            n += 1;
        };
        let scale = match self {
            Self::Tq2_0 => {
                let (qs, d) = block.split_at(64);
                for j in (0..64).step_by(32) {
                    for l in 0..4 {
                        for m in 0..32 {
                            push(((qs[j + m] >> (l * 2)) & 3) as i8 - 1);
                        }
                    }
                }
                u16::from_le_bytes([d[0], d[1]])
            }
            Self::Tq1_0 => {
                let (qs, rest) = block.split_at(48);
                let (qh, d) = rest.split_at(4);
                const POW3: [u8; 5] = [1, 3, 9, 27, 81];
                // A byte holds base-3 digits scaled to [0, 256): multiplying by 3^n brings
                // digit n to the top, and `* 3 >> 8` reads it.
                let digit =
                    |q: u8, n: usize| ((u16::from(q.wrapping_mul(POW3[n])) * 3) >> 8) as i8 - 1;
                for (start, width) in [(0, 32), (32, 16)] {
                    for n in 0..5 {
                        for m in 0..width {
                            push(digit(qs[start + m], n));
                        }
                    }
                }
                for n in 0..4 {
                    for &q in qh {
                        push(digit(q, n));
                    }
                }
                u16::from_le_bytes([d[0], d[1]])
            }
        };
        debug_assert_eq!(n, BLOCK);
        if out.iter().any(|v| !(-1..=1).contains(v)) {
            return Err(TernaryError::NotTernary);
        }
        Ok((out, scale))
    }

    /// Decode a whole tensor's data: its ternary values and one scale per block.
    pub fn decode(self, data: &[u8]) -> Result<(Vec<i8>, Vec<u16>), TernaryError> {
        let b = self.block_bytes();
        if !data.len().is_multiple_of(b) {
            return Err(TernaryError::BlockSize { expected: b, got: data.len() % b });
        }
        let mut values = Vec::with_capacity(data.len() / b * BLOCK);
        let mut scales = Vec::with_capacity(data.len() / b);
        for block in data.chunks_exact(b) {
            let (v, d) = self.decode_block(block)?;
            values.extend_from_slice(&v);
            scales.push(d);
        }
        Ok((values, scales))
    }
}

/// Layouts of ternary weights that llama.cpp does not read, by their ggml type id in the file.
pub fn foreign_layout(ggml_type: u32) -> Option<&'static str> {
    match ggml_type {
        36 => Some("I2_S (Microsoft bitnet.cpp)"),
        _ => None,
    }
}

/// Why ternary data could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TernaryError {
    /// The data is not a whole number of blocks.
    #[error("ternary data is not whole blocks of {expected} bytes (got {got})")]
    BlockSize {
        /// Bytes per block.
        expected: usize,
        /// Bytes seen.
        got: usize,
    },
    /// A TQ2_0 2-bit value of 3 (every TQ1_0 byte decodes to ternary digits).
    #[error("the data holds a value that is not ternary")]
    NotTernary,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encode values as TQ2_0, the way ggml lays them out.
    fn tq2(values: &[i8; BLOCK], d: u16) -> Vec<u8> {
        let mut qs = [0u8; 64];
        for j in (0..64).step_by(32) {
            for l in 0..4 {
                for m in 0..32 {
                    let v = (values[j * 4 + l * 32 + m] + 1) as u8;
                    qs[j + m] |= v << (l * 2);
                }
            }
        }
        let mut out = qs.to_vec();
        out.extend_from_slice(&d.to_le_bytes());
        out
    }

    /// Encode values as TQ1_0 (ggml's `quantize_row_tq1_0_ref`).
    fn tq1(values: &[i8; BLOCK], d: u16) -> Vec<u8> {
        let mut qs = [0u8; 48];
        let mut qh = [0u8; 4];
        let pack = |digits: &mut dyn Iterator<Item = u8>| -> u8 {
            let mut q: u16 = 0;
            for v in digits {
                q = q * 3 + u16::from(v);
            }
            ((q * 256).div_ceil(243)) as u8
        };
        let v = |i: usize| (values[i] + 1) as u8;
        for (m, q) in qs.iter_mut().enumerate() {
            *q = match m {
                0..32 => pack(&mut (0..5).map(|n| v(m + n * 32))),
                _ => pack(&mut (0..5).map(|n| v(160 + (m - 32) + n * 16))),
            };
        }
        for (j, q) in qh.iter_mut().enumerate() {
            // 4 digits, then a fifth of 0 so that the byte scales like the others.
            let mut x: u16 = 0;
            for n in 0..4 {
                x = x * 3 + u16::from(v(240 + j + n * 4));
            }
            x *= 3;
            *q = ((x * 256).div_ceil(243)) as u8;
        }
        let mut out = qs.to_vec();
        out.extend_from_slice(&qh);
        out.extend_from_slice(&d.to_le_bytes());
        out
    }

    fn sample(seed: u32) -> [i8; BLOCK] {
        let mut x = seed;
        std::array::from_fn(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((x >> 16) % 3) as i8 - 1
        })
    }

    #[test]
    fn both_types_decode_what_was_encoded() {
        for seed in 0..20 {
            let v = sample(seed);
            assert_eq!(Ternary::Tq2_0.decode_block(&tq2(&v, 0x2800)).unwrap(), (v, 0x2800));
            assert_eq!(Ternary::Tq1_0.decode_block(&tq1(&v, 0x2800)).unwrap(), (v, 0x2800));
        }
    }

    #[test]
    fn bad_data_is_an_error_not_a_panic() {
        assert!(matches!(Ternary::Tq2_0.decode(&[0u8; 65]), Err(TernaryError::BlockSize { .. })));
        assert!(Ternary::Tq1_0.decode_block(&[0u8; 10]).is_err());
        // A 2-bit value of 3 is not ternary.
        assert_eq!(Ternary::Tq2_0.decode_block(&[0xff; 66]).unwrap_err(), TernaryError::NotTernary);
        assert_eq!(Ternary::from_ggml(35), Some(Ternary::Tq2_0));
        assert_eq!(foreign_layout(36), Some("I2_S (Microsoft bitnet.cpp)"));
    }
}
