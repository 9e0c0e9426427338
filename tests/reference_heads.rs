//! `attnlab heads` and `attnlab ablate` against `tests/data/heads.json` and `ablate.json`
//! (transformers, same ids), plus the knock-out's own rules.

mod common;

use attnlab::analysis::heads::{ablate, heads_text, induction, parse_heads};
use attnlab::backends::{cpu::CpuBackend, gpu::GpuBackend, Backend, ForwardOptions, LogitsFor};
use attnlab::Model;
use serde_json::Value;

fn grid_diff(ours: &[Vec<f32>], theirs: &Value) -> f64 {
    theirs.as_array().unwrap().iter().zip(ours).flat_map(|(r, o)| r.as_array().unwrap().iter().zip(o).map(|(a, b)| (a.as_f64().unwrap() - *b as f64).abs())).fold(0.0, f64::max)
}

#[test]
fn head_scores_similarity_and_induction_match_transformers() {
    let model = common::real_model();
    let r: Value = serde_json::from_str(include_str!("data/heads.json")).unwrap();
    for c in r["cases"].as_array().unwrap() {
        let s = heads_text(&model, &CpuBackend::new(), c["text"].as_str().unwrap(), true).unwrap();
        assert_eq!(serde_json::to_value(&s.ids).unwrap(), c["ids"]);
        for (name, g) in [("first_token", &s.first_token), ("previous_token", &s.previous_token), ("self", &s.self_), ("entropy", &s.entropy)] {
            let d = grid_diff(g, &c[name]);
            assert!(d <= 1e-4, "{name}: {d}");
        }
        let d = grid_diff(s.js_distance.as_ref().unwrap(), &c["js_distance"]);
        assert!(d <= 1e-4, "js_distance: {d}");
    }
    let cases = r["induction"].as_array().unwrap();
    assert!(!cases.is_empty());
    for ind in cases {
        let ids: Vec<u32> = ind["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let p = ind["period"].as_u64().unwrap() as usize;
        assert_eq!(&ids[..p], &ids[p..], "the reference repeats its sequence");
        let ours = induction(&model, &CpuBackend::new(), &ids[..p]).unwrap();
        assert_eq!(ours.ids, ids);
        let d = grid_diff(&ours.induction, &ind["induction"]);
        assert!(d <= 1e-4, "induction (P = {p}): {d}");
    }
}

fn check_ablations(backend: &dyn Backend, tol: f64) {
    let model = common::real_model();
    let r: Value = serde_json::from_str(include_str!("data/ablate.json")).unwrap();
    for c in r["cases"].as_array().unwrap() {
        let heads: Vec<String> = c["heads"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        let hs = parse_heads(&heads.join(","), model.config.n_layer, model.config.n_head).unwrap();
        let a = ablate(&model, backend, c["text"].as_str().unwrap(), &hs).unwrap();
        assert_eq!(serde_json::to_value(&a.ids).unwrap(), c["ids"]);
        for (key, ours) in [("last_logits_top", &a.last_logits_top), ("last_logits_top_before", &a.last_logits_top_before)] {
            let theirs = c[key].as_array().unwrap();
            let map: std::collections::HashMap<u32, f32> = ours.iter().copied().collect();
            assert_eq!(ours[0].0 as u64, theirs[0][0].as_u64().unwrap(), "{key}: top-1");
            for t in theirs.iter().take(32) {
                let id = t[0].as_u64().unwrap() as u32;
                let ours = *map.get(&id).unwrap_or_else(|| panic!("{key}: {id} missing")) as f64;
                assert!((ours - t[1].as_f64().unwrap()).abs() <= tol, "{key} {id}: {ours} vs {}", t[1]);
            }
        }
        assert!((a.kl_last as f64 - c["kl_last"].as_f64().unwrap()).abs() <= tol, "kl_last {} vs {}", a.kl_last, c["kl_last"]);
        let d = c["delta_logprob"].as_array().unwrap().iter().zip(&a.delta_logprob).map(|(t, o)| (t.as_f64().unwrap() - *o as f64).abs()).fold(0.0, f64::max);
        assert!(d <= tol, "{}: delta_logprob {d}", backend.name());
    }
}

#[test]
fn ablations_match_transformers_on_the_cpu() {
    check_ablations(&CpuBackend::new(), 1e-3);
}

#[test]
fn ablations_match_transformers_on_the_gpu() {
    let gpu = GpuBackend::new().unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter (run with WGPU_BACKEND=vulkan)"));
    check_ablations(&gpu, 1e-3);
}

#[test]
fn knocking_out_nothing_is_the_plain_pass_and_a_whole_layer_removes_its_attention() {
    use attnlab::model::gguf::writer::{write_gguf, WriteTensor};
    use attnlab::model::gguf::Gguf;
    let bytes = common::tiny_model_bytes(&common::TinySpec::default());
    let model = Model::from_gguf_bytes(&bytes).unwrap();
    let ids = [5u32, 9, 40, 7, 100, 3, 3, 8];
    let cpu = CpuBackend::new();
    let opts = |ablate: Vec<(usize, usize)>| ForwardOptions { capture_attention: false, logits_for: LogitsFor::All, ablate, ..Default::default() };
    let plain = cpu.forward(&model, &ids, &opts(vec![])).unwrap();
    let none = cpu.forward(&model, &ids, &opts(vec![(9, 0)])).unwrap(); // layer 9 does not exist: nothing knocked out
    assert_eq!(plain.logits, none.logits);
    // Every head of layer 1 knocked out = the same model with blk.1.attn_output zeroed.
    let whole = cpu.forward(&model, &ids, &opts(parse_heads("1.*", 2, 4).unwrap())).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let meta: Vec<_> = g.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let tensors: Vec<WriteTensor> = g
        .tensors
        .iter()
        .map(|t| {
            let data = bytes[t.data_range.clone()].to_vec();
            // Q4_1 blocks of zeros (d = 0, m = 0) dequantize to 0.
            let data = if t.name == "blk.1.attn_output.weight" { vec![0u8; data.len()] } else { data };
            WriteTensor { name: t.name.clone(), dims: t.dims.clone(), ty: t.ty, data }
        })
        .collect();
    let without = Model::from_gguf_bytes(&write_gguf(&meta, &tensors)).unwrap();
    let expect = cpu.forward(&without, &ids, &opts(vec![])).unwrap();
    let err = whole.logits.iter().zip(expect.logits.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(err < 1e-5, "{err}");
    assert!(plain.logits.iter().zip(whole.logits.iter()).any(|(a, b)| (a - b).abs() > 1e-3), "the knock-out changes something");
    // CPU = GPU for a knock-out.
    let gpu = GpuBackend::new().unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter"));
    let g_out = gpu.forward(&model, &ids, &opts(vec![(0, 1), (1, 3)])).unwrap();
    let c_out = cpu.forward(&model, &ids, &opts(vec![(0, 1), (1, 3)])).unwrap();
    let err = g_out.logits.iter().zip(c_out.logits.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(err < 1e-3, "GPU vs CPU knock-out: {err}");
    assert!(parse_heads("1.9", 2, 4).is_err() && parse_heads("x", 2, 4).is_err() && parse_heads("", 2, 4).is_err());
}
