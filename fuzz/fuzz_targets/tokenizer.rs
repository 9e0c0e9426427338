//! Any text through both tokenizers (SmolLM2's byte-level BPE, Gemma 3's SentencePiece):
//! encoding never panics, every id is in the vocabulary, spans cover the text in order, and
//! decoding gives the text back (BPE exactly unless a byte has no token and became `unk`;
//! SentencePiece up to its leading space, <bos> and ▁ read as a space).
//! Needs `make setup` (the models). `make fuzz`.
#![no_main]

use std::sync::OnceLock;

use attnlab::model::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fn load(path: &str) -> Tokenizer {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e} (run make setup)"));
    let g = attnlab::model::gguf::Gguf::parse(&bytes).expect("the model parses");
    Tokenizer::from_gguf(&g).expect("its tokenizer loads")
}

fn tokenizers() -> &'static [Tokenizer; 2] {
    static T: OnceLock<[Tokenizer; 2]> = OnceLock::new();
    T.get_or_init(|| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        [load(&format!("{root}/{}", attnlab::DEFAULT_MODEL_PATH)), load(&format!("{root}/{}", attnlab::GEMMA3_MODEL_PATH))]
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for (k, t) in tokenizers().iter().enumerate() {
        let toks = t.encode_with_spans(&text);
        let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
        assert!(ids.iter().all(|&id| (id as usize) < t.vocab_size()));
        // Spans in order, inside the text; byte-level BPE covers it exactly.
        assert!(toks.iter().all(|t| t.start <= t.end && t.end <= text.len()));
        assert!(toks.windows(2).all(|w| w[0].start <= w[1].start));
        if k == 0 && !toks.is_empty() {
            assert!(toks[0].start == 0 && toks.last().unwrap().end == text.len() && toks.windows(2).all(|w| w[0].end == w[1].start));
        }
        let decoded = t.decode(&ids).expect("our own ids decode");
        // Bytes the vocabulary has no token for (SmolLM2: most control bytes) become `unk`,
        // as in transformers: only texts without them must come back exactly.
        let lossless = t.unk_id.map_or(true, |u| !ids.contains(&u));
        if k == 0 {
            if lossless {
                assert_eq!(decoded, text, "byte-level BPE round-trips");
            }
        } else {
            // Gemma's encoding starts with <bos>; SentencePiece writes spaces as ▁, so a ▁ in
            // the text comes back as a space (as in transformers).
            let decoded = decoded.strip_prefix("<bos>").unwrap_or(&decoded);
            let text = text.replace('\u{2581}', " ");
            assert!(decoded == text || decoded.trim_start_matches(' ') == text.trim_start_matches(' ') || decoded.contains('\u{FFFD}'), "SentencePiece round-trips: {text:?} → {decoded:?}");
        }
    }
});
