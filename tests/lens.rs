//! The logit lens against transformers (`tests/data/lens-{smollm2,gemma3}.json`, see
//! REFERENCE.md): every layer's probability of the final prediction within 1e-3, the top-1 token
//! equal wherever the reference's top-1 and top-2 probabilities differ by more than 1e-3, the
//! last layer equal to the model's own logits; the GPU (lavapipe) equal to the CPU; the CLI.

mod common;

use attnlab::analysis::lens::{lens_positions, logit_lens, Lens};
use attnlab::backends::cpu::CpuBackend;
use attnlab::backends::gpu::context::GpuContext;
use attnlab::backends::gpu::GpuBackend;
use attnlab::backends::{Backend, ForwardOptions, LogitsFor};
use attnlab::Model;
use serde_json::Value;

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()).unwrap()
}

fn gemma() -> Model {
    Model::from_gguf_vec(std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(attnlab::GEMMA3_MODEL_PATH)).expect("make setup fetches Gemma 3")).unwrap()
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn check(model: &Model, file: &str) {
    let r = reference(file);
    for case in r["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = model.tokenizer.encode(text);
        let want: Vec<u32> = nums(&case["ids"]).into_iter().map(|v| v as u32).collect();
        assert_eq!(ids, want, "{file}: ids of {text:?}");
        let lens = logit_lens(&CpuBackend::new(), model, &ids, &lens_positions(ids.len(), 64)).unwrap();
        assert_eq!(lens.positions, (0..ids.len()).collect::<Vec<_>>());
        let layers = case["layers"].as_array().unwrap();
        assert_eq!(lens.layers.len(), layers.len(), "{file}: one lens row per block");
        let (mut worst, mut compared) = (0.0f64, 0);
        for (l, (got, want)) in lens.layers.iter().zip(layers).enumerate() {
            for i in 0..ids.len() {
                let p = want["p_final_top1"][i].as_f64().unwrap();
                worst = worst.max((got.p_final_top1[i] as f64 - p).abs());
                let probs = nums(&want["top_probs"][i]);
                if probs[0] - probs[1] > 1e-3 {
                    compared += 1;
                    assert_eq!(got.top_ids[i][0] as u64, want["top_ids"][i][0].as_u64().unwrap(), "{file} {text:?}: top-1 at layer {l}, position {i}");
                    assert!((got.top_probs[i][0] as f64 - probs[0]).abs() <= 1e-3, "{file}: top-1 probability at layer {l}, position {i}: {} vs {}", got.top_probs[i][0], probs[0]);
                }
            }
        }
        assert!(worst <= 1e-3, "{file} {text:?}: p_final_top1 differs by {worst}");
        assert!(compared > layers.len() * ids.len() / 2, "{file}: only {compared} top-1s had a clear gap");
        let final_ids: Vec<u32> = nums(&case["final_argmax"]).into_iter().map(|v| v as u32).collect();
        assert_eq!(lens.final_argmax, final_ids, "{file}: the model's own predictions");
        // The last layer is the model's output: its top-5 probabilities are the softmax of the
        // logits of a plain pass.
        let out = CpuBackend::new().forward(model, &ids, &ForwardOptions { capture_attention: false, logits_for: LogitsFor::All, ..Default::default() }).unwrap();
        let last = lens.layers.last().unwrap();
        for i in 0..ids.len() {
            let row = out.logits.row(i);
            let z = attnlab::analysis::report::log_sum_exp(row.as_slice().unwrap());
            for (k, &id) in last.top_ids[i].iter().enumerate() {
                assert!(((row[id as usize] - z).exp() - last.top_probs[i][k]).abs() <= 1e-6, "{file}: last layer = logits at {i}");
            }
        }
        // Where each answer appears: the first top-1 layer is at or before the layer it settles at.
        for i in 0..ids.len() {
            assert!(lens.first_top1[i].unwrap() <= lens.settled_at[i]);
            assert_eq!(last.top_ids[i][0], lens.final_argmax[i]);
        }
    }
}

#[test]
fn smollm2_lens_matches_transformers() {
    check(&common::real_model(), "lens-smollm2.json");
}

#[test]
fn gemma3_lens_matches_transformers() {
    check(&gemma(), "lens-gemma3.json");
}

#[test]
fn gpu_lens_equals_the_cpu_lens() {
    let g = GpuBackend::with_context(GpuContext::new_blocking().unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter (make setup installs mesa-vulkan-drivers; run with WGPU_BACKEND=vulkan)")));
    let m = common::real_model();
    let ids = m.tokenizer.encode("The Eiffel Tower is located in the city of");
    let pos = lens_positions(ids.len(), 4);
    let (a, b): (Lens, Lens) = (logit_lens(&CpuBackend::new(), &m, &ids, &pos).unwrap(), logit_lens(&g, &m, &ids, &pos).unwrap());
    assert_eq!(a.positions, (ids.len() - 4..ids.len()).collect::<Vec<_>>());
    for (x, y) in a.layers.iter().zip(&b.layers) {
        for (p, q) in x.p_final_top1.iter().zip(&y.p_final_top1) {
            assert!((p - q).abs() <= 1e-4, "{p} vs {q}");
        }
    }
    assert_eq!(a.final_argmax, b.final_argmax);
    // A position past the text is refused, not read out of bounds.
    assert!(logit_lens(&CpuBackend::new(), &m, &ids, &[ids.len()]).is_err());
}

#[test]
fn cli_lens_json_and_table() {
    let bin = env!("CARGO_BIN_EXE_attnlab");
    let out = std::process::Command::new(bin).args(["lens", "--text", "One, two, three, four, five, six,", "--json"]).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 30);
    assert_eq!(v["layers"][0]["top_ids"][0].as_array().unwrap().len(), 5);
    let want = reference("lens-smollm2.json");
    assert_eq!(v["final_argmax"], want["cases"][1]["final_argmax"]);
    let out = std::process::Command::new(bin).args(["lens", "--text", "One, two, three, four, five, six,", "--positions", "2"]).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("final prediction") && table.contains("\" seven\""), "{table}");
    let bad = std::process::Command::new(bin).args(["lens", "--text", "x", "--positions", "0"]).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--positions"));
}

/// A word through the layers: the residual stream kept at one position is the pass's own
/// (the last block's output through the final norm is what the lens unembeds, and its top-1
/// the model's prediction there); the same token starts as the same vector (cosine 1 after
/// the embedding) and every layer's cosine is a plain recomputation from the two residuals;
/// the GPU's equal the CPU's. Queries and keys as points: each query's links are its row's two
/// largest weights, and the coordinates are the PCA of the head's 2n vectors.
#[test]
fn a_word_through_the_layers_and_queries_and_keys_as_points() {
    use attnlab::analysis::vectors::{cosine, find_word, qk_points, side_options, word_vectors};
    let model = common::real_model();
    let tok = &model.tokenizer;
    let (a, b) = (tok.encode("She sat on the bank of the river."), tok.encode("She deposited cash at the bank."));
    let at = |ids: &[u32]| find_word(&ids.iter().map(|&i| tok.token_text(i)).collect::<Vec<_>>(), "bank").unwrap();
    let (a_at, b_at) = (at(&a), at(&b));
    assert_eq!((tok.token_text(a[a_at]), tok.token_text(b[b_at])), (" bank".to_string(), " bank".to_string()));
    let cpu = CpuBackend::new();
    let v = word_vectors(&cpu, &model, (&a, a_at), (&b, b_at)).unwrap();
    let n_layer = model.config.n_layer;
    assert_eq!((v.cosine.len(), v.a.norms.len(), v.a.nearest.len()), (n_layer + 1, n_layer + 1, n_layer));
    assert!((v.cosine[0] - 1.0).abs() < 1e-6, "the same token starts as the same vector: {}", v.cosine[0]);
    // Plain recomputation from each pass's kept residual stream.
    let (oa, ob) = (cpu.forward(&model, &a, &side_options(a_at)).unwrap(), cpu.forward(&model, &b, &side_options(b_at)).unwrap());
    for l in 0..=n_layer {
        let (x, y) = (&oa.residual[l], &ob.residual[l]);
        let dot: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
        let plain = dot / (x.iter().map(|p| p * p).sum::<f32>().sqrt() * y.iter().map(|q| q * q).sum::<f32>().sqrt());
        assert!((v.cosine[l] - plain).abs() < 1e-5, "layer {l}: {} vs {plain}", v.cosine[l]);
        assert!((v.a.norms[l] - x.iter().map(|p| p * p).sum::<f32>().sqrt()).abs() < 1e-3);
    }
    assert!(v.cosine[n_layer] < 0.9, "context separates the two banks by the last layer: {}", v.cosine[n_layer]);
    // The last block's output is the model's own: its lens top-1 is the model's prediction.
    let full = cpu.forward(&model, &a, &ForwardOptions { capture_attention: false, logits_for: LogitsFor::All, ..Default::default() }).unwrap();
    let row = full.logits.row(a_at);
    let best = row.iter().enumerate().fold(0, |m, (j, &x)| if x > row[m] { j } else { m });
    assert_eq!(v.a.nearest[n_layer - 1][0].0 as usize, best);
    // The GPU's vectors.
    let gpu = GpuBackend::with_context(GpuContext::new_blocking().expect("an adapter (lavapipe on CI)"));
    let g = word_vectors(&gpu, &model, (&a, a_at), (&b, b_at)).unwrap();
    let worst = g.cosine.iter().zip(&v.cosine).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-3, "GPU cosines differ by {worst}");
    assert!((cosine(&oa.residual[3], &ob.residual[3]) - v.cosine[3]).abs() < 1e-6);

    // Queries and keys of head 15.0 as points.
    let ids = tok.encode("The dog chased the cat because it was hungry.");
    let out = cpu.forward(&model, &ids, &ForwardOptions::default()).unwrap();
    let t = out.trace.unwrap();
    let tokens: Vec<String> = ids.iter().map(|&i| tok.token_text(i)).collect();
    let p = qk_points(&t, &tokens, 15, 0).unwrap();
    assert_eq!((p.queries.len(), p.keys.len()), (ids.len(), ids.len()));
    assert!(p.explained[0] >= p.explained[1] && p.explained[0] + p.explained[1] <= 1.0 + 1e-6);
    for i in 0..ids.len() {
        let row = t.row(15, 0, i).unwrap();
        let top = row.iter().enumerate().fold(0, |m, (j, &x)| if x > row[m] { j } else { m });
        let first = p.links.iter().find(|l| l.0 == i).unwrap();
        assert_eq!((first.1, first.2), (top, row[top]), "query {i}");
    }
    assert!(qk_points(&t, &tokens, 15, 99).is_err() && qk_points(&t, &tokens, 99, 0).is_err());
}
