//! Token ids equal Hugging Face's on every case of `tests/data/tokenizer.json`
//! (copied from `shared/reference/`, made by transformers from the same GGUF).

mod common;

use serde_json::Value;

fn cases() -> Vec<Value> {
    let raw = include_str!("data/tokenizer.json");
    let v: Value = serde_json::from_str(raw).unwrap();
    v["cases"].as_array().unwrap().clone()
}

#[test]
fn ids_match_the_reference_exactly() {
    let model = common::real_model();
    let tok = &model.tokenizer;
    assert_eq!(tok.pre_tokenizer(), "smollm");
    let cases = cases();
    assert!(cases.len() >= 20, "the reference has {} cases", cases.len());
    for case in &cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(tok.encode(text), expected, "ids of {text:?}");
    }
}

#[test]
fn each_token_decodes_like_the_reference() {
    let model = common::real_model();
    let tok = &model.tokenizer;
    for case in cases() {
        for (id, expected) in case["ids"].as_array().unwrap().iter().zip(case["tokens"].as_array().unwrap()) {
            let id = id.as_u64().unwrap() as u32;
            let expected = expected.as_str().unwrap();
            let ours = tok.token_text(id);
            // Hugging Face drops control tokens when decoding; we show them literally.
            if expected.is_empty() {
                assert!(ours.starts_with("<|"), "id {id}: {ours:?}");
            } else {
                assert_eq!(ours, expected, "id {id}");
            }
        }
    }
}

#[test]
fn decode_round_trips_and_spans_cover_the_text() {
    let model = common::real_model();
    let tok = &model.tokenizer;
    for case in cases() {
        let text = case["text"].as_str().unwrap();
        let toks = tok.encode_with_spans(text);
        let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
        assert_eq!(tok.decode(&ids).unwrap(), text, "round trip of {text:?}");
        // Spans tile the input: contiguous, in order, from 0 to the end.
        let mut at = 0;
        for t in &toks {
            assert_eq!(t.start, at, "{text:?}");
            assert!(t.end > t.start);
            at = t.end;
        }
        assert_eq!(at, text.len(), "{text:?}");
    }
}

#[test]
fn control_tokens_are_matched_whole_and_long_runs_stay_fast() {
    let model = common::real_model();
    let tok = &model.tokenizer;
    let ids = tok.encode("<|im_start|>user\nhi<|im_end|>");
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
    // 200 kB without a space: the heap-based BPE stays near-linear (a quadratic loop would
    // take minutes here).
    let long = "ab".repeat(100_000);
    let ids = tok.encode(&long);
    assert_eq!(tok.decode(&ids).unwrap(), long);
}

/// Found by the tokenizer fuzz target: SmolLM2's vocabulary has no token for most control
/// bytes, so they become `unk` (id 0, `<|endoftext|>`), which decodes as that token's text;
/// the rest of the text still round-trips and the spans still cover every byte.
#[test]
fn control_bytes_without_a_token_become_unk_and_the_rest_round_trips() {
    let model = common::real_model();
    let t = &model.tokenizer;
    let toks = t.encode_with_spans("\u{4}&bb");
    let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
    assert_eq!(ids[0], t.unk_id.expect("SmolLM2 has an unknown-token id"));
    assert_eq!((toks[0].start, toks[0].end), (0, 1));
    assert_eq!(toks.last().unwrap().end, 4);
    assert_eq!(t.decode(&ids[1..]).unwrap(), "&bb");
}
