//! The GGUF reader and model loader never panic on bytes: truncations, random mutations and
//! hostile counts all come back as errors.

mod common;

use attnlab::model::gguf::{Gguf, GgufError};
use attnlab::Model;
use proptest::prelude::*;

fn tiny() -> Vec<u8> {
    common::tiny_model_bytes(&common::TinySpec { n_layer: 1, ..Default::default() })
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = tiny();
    assert!(Model::from_gguf_bytes(&bytes).is_ok());
    // Every prefix of the header and a stride through the data.
    let header_end = Gguf::parse(&bytes).unwrap().data_offset as usize;
    let cuts = (0..header_end).chain((header_end..bytes.len()).step_by(97));
    for cut in cuts {
        assert!(Model::from_gguf_bytes(&bytes[..cut]).is_err(), "a file cut at {cut} bytes was accepted");
    }
}

#[test]
fn hostile_counts_are_refused_before_allocating() {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(u64::MAX.to_le_bytes()); // tensors
    b.extend(1u64.to_le_bytes());
    assert!(matches!(Gguf::parse(&b), Err(GgufError::TooLarge { .. })));

    // One metadata entry claiming a 2^60-element array.
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(3u64.to_le_bytes());
    b.extend(b"arr");
    b.extend(9u32.to_le_bytes());
    b.extend(4u32.to_le_bytes());
    b.extend((1u64 << 60).to_le_bytes());
    assert!(Gguf::parse(&b).is_err());

    // A string claiming 1 TB.
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend((1u64 << 40).to_le_bytes());
    assert!(matches!(Gguf::parse(&b), Err(GgufError::TooLarge { .. })));

    assert_eq!(Gguf::parse(b"GGML").unwrap_err(), GgufError::BadMagic);
    // The page checks a dropped file's first 8 bytes before reading the rest.
    use attnlab::model::gguf::check_magic;
    assert!(check_magic(b"GGUF\x03\0\0\0").is_ok() && check_magic(b"GGUF\x02\0\0\0").is_ok());
    assert_eq!(check_magic(b"GGML\x03\0\0\0").unwrap_err(), GgufError::BadMagic);
    assert_eq!(check_magic(b"GGUF\x01\0\0\0").unwrap_err(), GgufError::UnsupportedVersion(1));
    assert!(check_magic(b"GGUF\x03").is_err() && check_magic(b"").is_err());
    assert_eq!(Gguf::parse(b"").unwrap_err(), GgufError::BadMagic);
    let mut v1 = b"GGUF".to_vec();
    v1.extend(1u32.to_le_bytes());
    assert_eq!(Gguf::parse(&v1).unwrap_err(), GgufError::UnsupportedVersion(1));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random byte flips anywhere in the header: an error or a model, never a panic.
    #[test]
    fn mutated_headers_never_panic(flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..8)) {
        let mut bytes = tiny();
        let header_end = Gguf::parse(&bytes).unwrap().data_offset as usize;
        for (at, v) in flips {
            let at = at % header_end;
            bytes[at] = v;
        }
        let _ = Model::from_gguf_bytes(&bytes);
    }

    /// Arbitrary bytes after a valid magic and version.
    #[test]
    fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend(3u32.to_le_bytes());
        bytes.extend(body);
        let _ = Model::from_gguf_bytes(&bytes);
    }
}
