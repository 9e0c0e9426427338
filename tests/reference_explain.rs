//! `attnlab explain` (analysis::explain) against `tests/data/explain.json`: transformers' own
//! q, k, v re-projected from the layer input (see tests/data/REFERENCE.md), to 1e-4 — on the
//! CPU and on the GPU (lavapipe) — and the what-ifs' own invariants.

mod common;

use attnlab::analysis::explain::{explain_text, softmax, unrope};
use attnlab::backends::{cpu::CpuBackend, gpu::GpuBackend, Backend};
use attnlab::model::arch::RopeStyle;
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn close(name: &str, ours: &[f32], theirs: &[f64], tol: f64) {
    assert_eq!(ours.len(), theirs.len(), "{name}: length");
    let worst = ours.iter().zip(theirs).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
    assert!(worst <= tol, "{name}: max abs diff {worst}");
}

fn check(backend: &dyn Backend, tol: f64) {
    let model = common::real_model();
    let r: Value = serde_json::from_str(include_str!("data/explain.json")).unwrap();
    let cases = r["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for c in cases {
        let (layer, head, query) = (c["layer"].as_u64().unwrap() as usize, c["head"].as_u64().unwrap() as usize, c["query"].as_u64().unwrap() as usize);
        let e = explain_text(&model, backend, c["text"].as_str().unwrap(), layer, head, Some(query)).unwrap();
        let what = format!("{} L{layer}.H{head} q{query}", backend.name());
        assert_eq!(e.ids, c["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect::<Vec<_>>());
        assert_eq!((e.kv_head, e.head_dim), (c["kv_head"].as_u64().unwrap() as usize, 64));
        // q·k is √d = 8 times the scores: the same relative accuracy.
        close(&format!("{what} dot"), &e.dot, &floats(&c["dot"]), 8.0 * tol);
        for key in ["scores", "probs", "value_norms", "contrib_norms", "output", "probs_unscaled", "probs_unmasked", "probs_no_rope"] {
            let ours = match key {
                "scores" => &e.scores,
                "probs" => &e.probs,
                "value_norms" => &e.value_norms,
                "contrib_norms" => &e.contrib_norms,
                "output" => &e.output,
                "probs_unscaled" => &e.probs_unscaled,
                "probs_unmasked" => &e.probs_unmasked,
                _ => &e.probs_no_rope,
            };
            close(&format!("{what} {key}"), ours, &floats(&c[key]), tol);
        }
        assert!((e.entropy as f64 - c["entropy"].as_f64().unwrap()).abs() <= tol, "{what} entropy");
        // By construction: the unmasked row covers all n keys and sums to 1; the masked row
        // puts nothing past the query.
        assert_eq!(e.probs_unmasked.len(), e.ids.len());
        assert!((e.probs_unmasked.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!((e.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn explain_matches_transformers_on_the_cpu() {
    check(&CpuBackend::new(), 1e-4);
}

#[test]
fn explain_matches_transformers_on_the_gpu() {
    let gpu = GpuBackend::new().unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter (run with WGPU_BACKEND=vulkan)"));
    check(&gpu, 1e-4);
}

#[test]
fn unrope_inverts_rope_and_is_the_identity_at_position_0() {
    use attnlab::backends::cpu::ops::rope;
    let x = common::values(64, 7, 1.0);
    for style in [RopeStyle::Adjacent, RopeStyle::Halves] {
        assert_eq!(unrope(&x, 0, 64, 10_000.0, style), x);
        for pos in [1usize, 17, 500] {
            // rope() rotates row p by position p: put x at row `pos`.
            let mut rows = vec![0.0; 64 * (pos + 1)];
            rows[64 * pos..].copy_from_slice(&x);
            rope(&mut rows, 1, 64, 64, 10_000.0, 0, style);
            let back = unrope(&rows[64 * pos..], pos, 64, 10_000.0, style);
            let err = back.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err < 1e-5, "{style:?} at {pos}: {err}");
        }
    }
    // Query 0 sees only key 0: every what-if row of it is [1].
    assert_eq!(softmax(&[3.5]), vec![1.0]);
}

#[test]
fn whole_map_what_ifs_agree_with_the_explained_row_and_their_own_rules() {
    use attnlab::analysis::explain::{explain, map_rows, MapView, WhatIf};
    let model = common::real_model();
    let ids = model.tokenizer.encode("The dog chased the cat because it was hungry.");
    let out = CpuBackend::new().forward(&model, &ids, &Default::default()).unwrap();
    let t = out.trace.unwrap();
    let n = ids.len();
    let (layer, head, q) = (14, 5, n - 1);
    let e = explain(&t, layer, head, q).unwrap();
    for (w, row) in [(WhatIf::None, &e.probs), (WhatIf::Unscaled, &e.probs_unscaled), (WhatIf::Unmasked, &e.probs_unmasked), (WhatIf::NoRope, &e.probs_no_rope)] {
        let rows = map_rows(&t, layer, head, &MapView { what_if: w, hide_sink: false }).unwrap();
        assert_eq!(rows.len(), n);
        let err = rows[q].iter().zip(row).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 1e-6, "{w:?}: the map's row differs from the explained row by {err}");
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.len(), if w == WhatIf::Unmasked { n } else { i + 1 }, "{w:?} row {i}");
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{w:?} row {i} sums to {}", r.iter().sum::<f32>());
        }
    }
    // Hiding the sink: key 0 gets 0, the rest renormalised — proportions kept.
    let plain = map_rows(&t, layer, head, &MapView::default()).unwrap();
    let hidden = map_rows(&t, layer, head, &MapView { what_if: WhatIf::None, hide_sink: true }).unwrap();
    for i in 1..n {
        assert_eq!(hidden[i][0], 0.0);
        assert!((hidden[i].iter().sum::<f32>() - 1.0).abs() < 1e-5);
        for j in 1..=i {
            assert!((hidden[i][j] * (1.0 - plain[i][0]) - plain[i][j]).abs() < 1e-6);
        }
    }
}
