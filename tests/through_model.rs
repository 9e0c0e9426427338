//! The articles' claims through the whole model, against transformers (eager, f32, on the
//! same GGUF file; `tests/data/{streaming,whatif}-smollm2.json`, copied from
//! `../shared/reference/`):
//! - cache policies on 1 536 tokens of the Apache-2.0 license text, window 256, 4 sinks:
//!   every position's log p within 5e-3, perplexities within 0.5%;
//! - what-ifs inside attention (unscaled, dmodel, unmasked, norope, nosink; all layers and
//!   layer 15): KL at the last position within 2e-3 (relative above 1), every Δ log p within 5e-3;
//! - one head knocked out alone moves each next token's log p as transformers' knock-out does;
//! - the same on the GPU (lavapipe on CI): the what-ifs, and the policies over the license
//!   text's first 512 tokens (a causal model's log p at i reads tokens ..= i + 1 only);
//! - and the policies' own logic on a tiny model: a window as long as the text is dense, no
//!   sinks is the plain window, each policy's mask as written.

mod common;

use attnlab::analysis::through_model::{policies, streaming, whatif};
use attnlab::backends::cpu::CpuBackend;
use attnlab::model::arch::{AttnChange, CachePolicy};
use serde_json::Value;

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)).unwrap()).unwrap()
}

#[test]
fn cache_policies_match_transformers_on_the_license_text() {
    let r = reference("streaming-smollm2.json");
    let model = common::real_model();
    let ids: Vec<u32> = r["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    // Our tokenizer reads the license text as transformers does (spaces before numbers too).
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/Apache-2.0.txt")).unwrap();
    assert_eq!(model.tokenizer.encode(&text)[..ids.len()], ids[..], "the license text's first {} tokens", ids.len());
    let (window, sinks) = (r["window"].as_u64().unwrap() as usize, r["sinks"].as_u64().unwrap() as usize);
    let s = streaming(&CpuBackend::new(), &model, &ids, window, sinks, |_| {}).unwrap();
    for (name, want) in r["policies"].as_object().unwrap() {
        let ours = &s.policies[name];
        let logp = want["logp"].as_array().unwrap();
        assert_eq!(ours.logp.len(), logp.len());
        let worst = ours.logp.iter().zip(logp).map(|(a, b)| (*a as f64 - b.as_f64().unwrap()).abs()).fold(0.0, f64::max);
        assert!(worst <= 5e-3, "{name}: log p differs by {worst}");
        for key in ["ppl_after_window", "ppl_all"] {
            let (a, b) = (if key == "ppl_all" { ours.ppl_all } else { ours.ppl_after_window }, want[key].as_f64().unwrap());
            assert!((a / b - 1.0).abs() <= 5e-3, "{name} {key}: {a} vs {b}");
        }
    }
    // What the reference shows: evicting the first tokens hurts, hiding one does not.
    let p = |n: &str| s.policies[n].ppl_after_window;
    assert!(p("window") > 2.0 * p("dense") && p("sinks+window") < 1.3 * p("dense") && p("no-key0") < 1.05 * p("dense"));
}

#[test]
fn what_ifs_through_the_model_match_transformers() {
    what_ifs_match_on(&CpuBackend::new());
}

fn gpu() -> attnlab::backends::gpu::GpuBackend {
    use attnlab::backends::gpu::{context::GpuContext, GpuBackend};
    GpuBackend::with_context(GpuContext::new_blocking().unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter (WGPU_BACKEND=vulkan, mesa-vulkan-drivers)")))
}

#[test]
fn what_ifs_on_the_gpu_match_transformers() {
    what_ifs_match_on(&gpu());
}

/// Window 256 and 4 sinks over 512 tokens: windows, sinks and key 0 hidden in the GPU's
/// kernels (prefill tiles wholly outside a window, tiles with sinks) against transformers.
#[test]
fn cache_policies_on_the_gpu_match_transformers() {
    let r = reference("streaming-smollm2.json");
    let model = common::real_model();
    let n = 512;
    let ids: Vec<u32> = r["ids"].as_array().unwrap()[..n].iter().map(|x| x.as_u64().unwrap() as u32).collect();
    let (window, sinks) = (r["window"].as_u64().unwrap() as usize, r["sinks"].as_u64().unwrap() as usize);
    let s = streaming(&gpu(), &model, &ids, window, sinks, |_| {}).unwrap();
    for (name, want) in r["policies"].as_object().unwrap() {
        let ours = &s.policies[name].logp;
        assert_eq!(ours.len(), n - 1);
        let worst = ours.iter().zip(want["logp"].as_array().unwrap()).map(|(a, b)| (*a as f64 - b.as_f64().unwrap()).abs()).fold(0.0, f64::max);
        assert!(worst <= 5e-3, "{name} on the GPU: log p differs by {worst}");
    }
    let p = |n: &str| s.policies[n].ppl_after_window;
    assert!(p("window") > 1.5 * p("dense"), "window {} vs dense {}", p("window"), p("dense"));
}

fn what_ifs_match_on(b: &impl attnlab::backends::Backend) {
    let r = reference("whatif-smollm2.json");
    let model = common::real_model();
    for case in r["cases"].as_array().unwrap() {
        let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let what = AttnChange::parse(case["what"].as_str().unwrap()).unwrap();
        let layers = case["layers"].as_str().unwrap();
        let w = whatif(b, &model, &ids, what, layers).unwrap();
        let want = case["kl_last"].as_f64().unwrap();
        let tol = 2e-3 * want.max(1.0);
        assert!((w.kl_last - want).abs() <= tol, "{} in {layers}: KL {} vs {want}", what.name(), w.kl_last);
        let d = case["delta_logprob"].as_array().unwrap();
        let worst = w.delta_logprob.iter().zip(d).map(|(a, b)| (*a as f64 - b.as_f64().unwrap()).abs()).fold(0.0, f64::max);
        assert!(worst <= 5e-3, "{} in {layers}: Δ log p differs by {worst}", what.name());
        assert_eq!(w.last_logits_top[0].0 as u64, case["last_logits_top"][0][0].as_u64().unwrap(), "{} in {layers}: top-1", what.name());
    }
}

/// The page's path (the worker's flow on the CPU engine, compared as a knock-out is) gives
/// transformers' numbers too.
#[test]
fn the_pages_what_if_flow_matches_transformers() {
    use attnlab::analysis::heads::{compare, Predictions};
    use attnlab::analysis::through_model::parse_layers;
    use attnlab::backends::engine::Engine;
    use attnlab::flows::Silent;
    let r = reference("whatif-smollm2.json");
    let model = common::real_model();
    for case in r["cases"].as_array().unwrap() {
        let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let what = AttnChange::parse(case["what"].as_str().unwrap()).unwrap();
        let layers = case["layers"].as_str().unwrap();
        let range = parse_layers(layers, model.config.n_layer).unwrap();
        let (before, after) = pollster::block_on(attnlab::flows::whatif(&Engine::cpu(), &model, &ids, what, range, Some(1024), &Silent)).unwrap();
        let c = compare(&ids, &[], &Predictions::of(&ids, &before), &Predictions::of(&ids, &after));
        let want = case["kl_last"].as_f64().unwrap();
        assert!((c.kl_last as f64 - want).abs() <= 2e-3 * want.max(1.0), "{} in {layers}: KL {} vs {want}", what.name(), c.kl_last);
        let d = case["delta_logprob"].as_array().unwrap();
        assert_eq!(c.delta_logprob.len(), d.len());
        let worst = c.delta_logprob.iter().zip(d).map(|(a, b)| (*a as f64 - b.as_f64().unwrap()).abs()).fold(0.0, f64::max);
        assert!(worst <= 5e-3, "{} in {layers}: Δ log p differs by {worst}", what.name());
    }
}

/// Attention against effect: one head knocked out alone moves log p of the next token as
/// transformers' knock-out of that head does (`ablate.json`, head 14.5), at every query.
#[test]
fn a_heads_effect_on_one_prediction_matches_transformers_knock_out() {
    use attnlab::backends::engine::Engine;
    use attnlab::flows::{head_effects, Silent};
    let r = reference("ablate.json");
    let case = &r["cases"][0];
    assert_eq!(case["heads"][0], "14.5");
    let model = common::real_model();
    let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    let want = case["delta_logprob"].as_array().unwrap();
    for q in [0, 4, 7] {
        let swept = pollster::block_on(head_effects(&Engine::cpu(), &model, &ids, q, &[(14, 5), (0, 0)], &Silent)).unwrap();
        assert!(!swept.cancelled);
        assert_eq!((swept.rows[0].0, swept.rows[0].1), (14, 5));
        let (ours, theirs) = (swept.rows[0].2 as f64, want[q].as_f64().unwrap());
        assert!((ours - theirs).abs() <= 2e-3, "query {q}: Δ log p {ours} vs transformers {theirs}");
    }
    // The last token has no next one to predict.
    assert!(pollster::block_on(head_effects(&Engine::cpu(), &model, &ids, ids.len() - 1, &[(0, 0)], &Silent)).unwrap_err().contains("last one"));
}

#[test]
fn policies_mean_what_they_say_on_a_tiny_model() {
    use attnlab::backends::{Backend, ForwardOptions, LogitsFor};
    let model = attnlab::Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec::default())).unwrap();
    let ids: Vec<u32> = (0..40).map(|i| (i * 7 + 3) % 200).collect();
    let b = CpuBackend::new();
    let run = |policy| b.forward(&model, &ids, &ForwardOptions { capture_attention: false, logits_for: LogitsFor::All, policy, ..Default::default() }).unwrap().logits;
    let dense = run(CachePolicy::Dense);
    assert_eq!(run(CachePolicy::Window { window: 40 }), dense, "a window as long as the text is dense");
    assert_eq!(run(CachePolicy::SinksWindow { sinks: 0, window: 8 }), run(CachePolicy::Window { window: 8 }), "no sinks is the window");
    assert_eq!(run(CachePolicy::SinksWindow { sinks: 40, window: 1 }), dense, "every token a sink is dense");
    // The first 8 positions see fewer than 8 keys: a window of 8 changes nothing there.
    let w8 = run(CachePolicy::Window { window: 8 });
    assert_eq!(w8.row(7), dense.row(7));
    assert_ne!(w8.row(8), dense.row(8));
    // Key 0 hidden: the first query still reads itself, the others change.
    let nk = run(CachePolicy::NoKey0);
    assert_eq!(nk.row(0), dense.row(0));
    assert_ne!(nk.row(1), dense.row(1));
    assert_eq!(policies(8, 2).map(|p| p.name()), ["dense", "window", "sinks+window", "no-key0"]);
}
