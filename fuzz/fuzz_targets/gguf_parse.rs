//! Any bytes: the GGUF reader and the model loader return, never panic.
//! `make fuzz` (cargo-fuzz; stable toolchain with RUSTC_BOOTSTRAP=1).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = attnlab::model::gguf::Gguf::parse(data) {
        for t in &g.tensors {
            assert!(t.data_range.end <= data.len());
        }
    }
    let _ = attnlab::Model::from_gguf_bytes(data);
});
