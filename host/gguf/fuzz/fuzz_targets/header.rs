//! Fuzz the GGUF header reader: any input either parses into a header whose every tensor lies
//! inside the file, or is refused; nothing panics, hangs or over-allocates.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = tabagent_gguf::GgufFile::parse(data, data.len() as u64) {
        for t in &f.tensors {
            assert!(f.data_offset + t.offset + t.size <= f.file_size, "{t:?}");
            assert!(!t.dims.is_empty() && t.dims.len() <= 4);
        }
        assert!(f.alignment.is_power_of_two());
        let _ = f.layer_bytes();
        let _ = f.non_layer_bytes();
    }
});
