//! Quantities recomputed from the LSE capture agree with each other and with the rows.

mod common;

use attnlab::backends::{cpu::CpuBackend, Backend, ForwardOptions, LogitsFor};
use attnlab::Model;

fn trace(n: usize) -> attnlab::model::capture::AttentionTrace {
    let model = Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec::default())).unwrap();
    let ids: Vec<u32> = (0..n as u32).map(|i| (i * 31 + 7) % 260).collect();
    CpuBackend::new().forward(&model, &ids, &ForwardOptions::default()).unwrap().trace.unwrap()
}

#[test]
fn rows_are_distributions() {
    let t = trace(33);
    for l in 0..t.n_layer {
        for h in 0..t.n_head {
            for (i, row) in t.head_rows(l, h).unwrap().iter().enumerate() {
                assert_eq!(row.len(), i + 1);
                let s: f32 = row.iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{l}.{h} row {i} sums to {s}");
            }
        }
    }
}

#[test]
fn sink_and_span_mass_agree_with_rows() {
    let t = trace(40);
    let rows = t.head_rows(1, 3).unwrap();
    let sink: f32 = rows[1..].iter().map(|r| r[0]).sum::<f32>() / 39.0;
    assert!((t.sink_mass(1, 3, 1).unwrap().unwrap() - sink).abs() < 1e-6);
    let sink4: f32 = rows[1..].iter().map(|r| r.iter().take(4).sum::<f32>()).sum::<f32>() / 39.0;
    assert!((t.sink_mass(1, 3, 4).unwrap().unwrap() - sink4).abs() < 1e-6);
    let span: f32 = [20usize, 39].iter().map(|&i| rows[i][10..=15].iter().sum::<f32>()).sum::<f32>() / 2.0;
    assert!((t.span_mass(1, 3, [20, 39], 10..16).unwrap().unwrap() - span).abs() < 1e-6);
    // A single token has no query row that can choose: no sink mass.
    assert_eq!(trace(1).sink_mass(0, 0, 1).unwrap(), None);
    assert_eq!(t.sink_mass_all(1).len(), t.n_layer);
    assert!(t.row(0, 9, 0).is_err() && t.row(5, 0, 0).is_err() && t.row(0, 0, 40).is_err());
}

#[test]
fn pooled_maps_keep_max_and_causal_mean() {
    let t = trace(65);
    let rows = t.head_rows(0, 1).unwrap();
    let p = t.pooled(0, 1, 8).unwrap();
    assert_eq!(p.side, 9);
    for ti in 0..p.side {
        for tj in 0..p.side {
            let cells: Vec<f32> = (ti * 8..((ti + 1) * 8).min(65)).flat_map(|i| (tj * 8..((tj + 1) * 8).min(i + 1)).map(|j| rows[i][j]).collect::<Vec<_>>()).collect();
            let at = ti * p.side + tj;
            if cells.is_empty() {
                assert!(p.mean[at].is_nan());
                assert_eq!(p.max[at], 0.0);
            } else {
                let mean = cells.iter().sum::<f32>() / cells.len() as f32;
                assert!((p.mean[at] - mean).abs() < 1e-6);
                assert_eq!(p.max[at], cells.iter().cloned().fold(0.0, f32::max));
            }
        }
    }
    // 65 tokens into at most 16 tiles a side.
    assert!(t.pooled_to_fit(0, 1, 16).unwrap().side <= 16);
    assert_eq!(t.pooled(0, 1, 1).unwrap().max.len(), 65 * 65);
}

/// The one map builder through `head_map`: a zoomed region exact cell by cell, a pooled map
/// whose cells are their blocks' maxima, cells above the diagonal masked, an empty region an error.
#[test]
fn head_maps_zoom_exactly_and_pool_by_the_maximum() {
    use attnlab::worker::protocol::MASKED;
    use attnlab::worker::session::head_map;
    let t = trace(65);
    let rows = t.head_rows(1, 2).unwrap();
    // Small enough to be exact.
    let m = head_map(&t, 1, 2, 64, Some((40, 50)), Some((10, 45))).unwrap();
    let (v, sq, sk, bq, bk) = (m.values, m.side_q, m.side_k, m.block_q, m.block_k);
    assert_eq!((sq, sk, bq, bk), (10, 35, 1, 1));
    for i in 0..10 {
        for j in 0..35 {
            let (qi, kj) = (40 + i, 10 + j);
            let got = v[i * sk + j];
            if kj <= qi {
                assert_eq!(got, rows[qi][kj]);
            } else {
                assert_eq!(got, MASKED);
            }
        }
    }
    // Pooled: each cell is the max of its block.
    let m = head_map(&t, 1, 2, 16, None, None).unwrap();
    let (v, sq, sk, bq, bk) = (m.values, m.side_q, m.side_k, m.block_q, m.block_k);
    assert_eq!((bq, bk, sq, sk), (5, 5, 13, 13));
    let expect = (10..15).flat_map(|i| (5..10).filter(move |&j| j <= i).map(move |j| (i, j))).map(|(i, j)| rows[i][j]).fold(0.0, f32::max);
    assert_eq!(v[2 * sk + 1], expect);
    assert_eq!(v[1], MASKED, "block (0, 1) lies above the diagonal");
    assert!(head_map(&t, 1, 2, 8, Some((70, 80)), Some((0, 5))).is_err());
}

#[test]
fn forward_flops_split_by_hand_for_smollm2_and_gemma() {
    use attnlab::analysis::cost::{attention_dominates_at, forward_flops, Dims, KvArch};
    let m = common::real_model();
    let c = &Dims::of(&m.config);
    // SmolLM2-135M: d 576, 9 heads of 64, 3 KV heads, FFN 1536, 30 layers.
    // Per layer 576·576·2 + 576·192·2 + 3·576·1536 = 3 538 944 weights.
    let (lin, att) = forward_flops(c, 1000);
    assert_eq!(lin, 2.0 * 1000.0 * 3_538_944.0 * 30.0);
    assert_eq!(att, 4.0 * 64.0 * (1000.0 * 1001.0 / 2.0) * 9.0 * 30.0);
    // Attention overtakes when 1152 (n + 1) > 7 077 888, i.e. n ≥ 6144.
    assert_eq!(attention_dominates_at(c), Some(6144));
    // KV cache: 2 × 30 layers × 3 KV heads × 64 × 2 bytes = 23 040 bytes per token in f16.
    assert_eq!(KvArch::from_dims("SmolLM2", c).bytes_per_token(2), 23_040);
    assert_eq!(KvArch::from_dims("SmolLM2", c).kind, "GQA");
    // Gemma 3 270M: 15 of 18 layers see at most 512 keys, so attention catches up much later.
    let g = attnlab::Model::from_gguf_bytes(&std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(attnlab::GEMMA3_MODEL_PATH)).expect("make setup fetches Gemma 3 270M")).unwrap();
    let gd = Dims::of(&g.config);
    let (lin, att) = forward_flops(&gd, 4096);
    let pairs_local: f64 = (0..4096usize).map(|i| (i + 1).min(512) as f64).sum();
    let pairs_global = 4096.0 * 4097.0 / 2.0;
    let local_layers = g.config.layer_window.iter().filter(|w| w.is_some()).count() as f64;
    let want = 4.0 * 256.0 * (local_layers * pairs_local + (18.0 - local_layers) * pairs_global) * 4.0;
    assert!((att - want).abs() < 1e-6 * want, "{att} vs {want}");
    assert!(lin > 0.0 && KvArch::from_dims("Gemma", &gd).kind == "MQA");
}

/// One row function for the model and the what-ifs: the model's scoring gives the exact rows;
/// each what-if's rows are distributions; with a sliding window every masked row, what-if or
/// not, puts exactly 0 on keys older than the window, and only "no mask" sees every key.
#[test]
fn what_if_rows_come_from_one_place_and_keep_the_window() {
    use attnlab::analysis::explain::WhatIf;
    let mut t = trace(30);
    for (l, h) in [(0, 0), (1, 3)] {
        let exact = t.head_rows(l, h).unwrap();
        let model = t.rows_with(l, h, WhatIf::None.scoring()).unwrap();
        for (i, row) in exact.iter().enumerate() {
            assert_eq!(&model.row(i).unwrap(), row);
        }
    }
    // A window set on the capture afterwards (its LSE is the full rows', so only the what-ifs,
    // which renormalise, still sum to 1).
    t.windows = vec![Some(5); t.n_layer];
    for w in [WhatIf::None, WhatIf::Unscaled, WhatIf::NoRope, WhatIf::Unmasked] {
        let rows = t.rows_with(1, 2, w.scoring()).unwrap();
        for i in 0..30 {
            let row = rows.row(i).unwrap();
            assert_eq!(row.len(), if w == WhatIf::Unmasked { 30 } else { i + 1 }, "{w:?} row {i}");
            if w != WhatIf::None {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{w:?} row {i}");
            }
            if w != WhatIf::Unmasked {
                assert!(row.iter().take((i + 1).saturating_sub(5)).all(|&p| p == 0.0), "{w:?} row {i} looks past its window");
            }
        }
    }
    assert!(t.rows_with(1, 2, WhatIf::Unscaled.scoring()).unwrap().row(30).is_err());
}

/// Two texts side by side: a minimal pair's rows are compared from the word where the texts
/// part; the distance of every head is the mean JS distance of its aligned rows (recomputed
/// plainly here), symmetric, 0 for identical texts, ranked largest first; the next tokens are
/// each text's own.
#[test]
fn two_texts_compared_head_by_head() {
    use attnlab::analysis::compare::{compare_texts, first_difference};
    let model = common::real_model();
    let tok = &model.tokenizer;
    let (a, b) = (tok.encode("The trophy didn't fit in the suitcase because it was too big."), tok.encode("The trophy didn't fit in the suitcase because it was too small."));
    let cpu = CpuBackend::new();
    let ab = compare_texts(&cpu, &model, &a, &b).unwrap();
    let ba = compare_texts(&cpu, &model, &b, &a).unwrap();
    let from = first_difference(&a, &b);
    assert_eq!((ab.from, ab.to), (from, a.len().min(b.len())));
    assert_eq!(tok.token_text(a[from]), " big");
    assert_eq!(ab.heads.len(), model.config.n_layer * model.config.n_head);
    assert!(ab.heads.windows(2).all(|w| w[0].2 >= w[1].2), "ranked largest first");
    let d = |c: &attnlab::analysis::compare::TextCompare, l: usize, h: usize| c.heads.iter().find(|x| (x.0, x.1) == (l, h)).unwrap().2;
    for (l, h, v) in &ab.heads {
        assert!((v - d(&ba, *l, *h)).abs() < 1e-6, "{l}.{h}: not symmetric");
    }
    // The top head's distance, recomputed plainly from both traces.
    let (l, h, top) = ab.heads[0];
    let opts = ForwardOptions { logits_for: LogitsFor::Last, ..Default::default() };
    let (ta, tb) = (cpu.forward(&model, &a, &opts).unwrap().trace.unwrap(), cpu.forward(&model, &b, &opts).unwrap().trace.unwrap());
    let js = |p: &[f32], q: &[f32]| {
        let kl = |x: &[f32], y: &[f32]| x.iter().zip(y).filter(|(u, _)| **u > 0.0).map(|(u, v)| *u as f64 * (*u as f64 / (0.5 * (*u as f64 + *v as f64))).ln()).sum::<f64>();
        (0.5 * kl(p, q) + 0.5 * kl(q, p)).sqrt()
    };
    let plain = (from..ab.to).map(|i| js(&ta.row(l, h, i).unwrap(), &tb.row(l, h, i).unwrap())).sum::<f64>() / (ab.to - from) as f64;
    assert!((top as f64 - plain).abs() < 1e-5, "{l}.{h}: {top} vs {plain}");
    assert!(top > 0.05, "a minimal pair moves some head: {top}");
    assert_ne!(ab.next[0], ab.next[1]);
    // Identical texts: nothing to compare, every head 0.
    let same = compare_texts(&cpu, &model, &a, &a).unwrap();
    assert_eq!((same.from, same.to), (a.len(), a.len()));
    assert!(same.heads.iter().all(|x| x.2 == 0.0));
}
