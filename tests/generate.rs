//! The model writes. Greedy generation against `tests/data/generate-{smollm2,gemma3}.json`
//! (transformers, eager, f32, 24 tokens; copied from `../shared/reference/`): generated ids
//! equal up to the first step whose top-2 gap is below 0.01 (near-ties: either token is right;
//! the test says when one is hit), each step's top logits within 1e-2, the generated tokens'
//! attention rows within 1e-4 on the CPU and 5e-4 on the GPU (lavapipe). With and without the
//! cache the rows agree (one pass over the whole text, ≤ 1e-5). Sampling: a seed reproduces a
//! text, top-k 1 and temperature 0 are greedy, top-p keeps the smallest set reaching p, and
//! meaningless values are refused with a message.

mod common;

use attnlab::backends::gpu::context::GpuContext;
use attnlab::backends::gpu::GpuBackend;
use attnlab::backends::{cpu::CpuBackend, Backend, ForwardOptions, LogitsFor};
use attnlab::generate::{generate, sample, Decoder, GenOptions, Generation, Rng, Sampling, Variant};
use attnlab::Model;
use serde_json::Value;

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)).unwrap()).unwrap()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn greedy(d: Decoder, model: &Model, ids: &[u32], n: usize, heads: Vec<(usize, usize)>) -> Generation {
    let o = GenOptions { max_tokens: n, sampling: Sampling::default(), ignore_eos: true, heads, ..Default::default() };
    pollster::block_on(generate(d, model, ids, &o, &mut |_| {})).unwrap()
}

/// Every case of a reference file on one decoder kind, to the bars.
fn check(model: &Model, file: &str, gpu: Option<&GpuBackend>, tol: f64) {
    let r = reference(file);
    let n_new = r["max_new_tokens"].as_u64().unwrap() as usize;
    for case in r["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = ids_of(&case["ids"]);
        assert_eq!(model.tokenizer.encode(text), ids, "{text:?}: prompt ids");
        let heads: Vec<(usize, usize)> = case["attention_rows"].as_object().unwrap().keys().map(|k| attnlab::analysis::HeadId::parse(k).unwrap().pair()).collect();
        let cap = ids.len() + n_new + 1;
        let d = match gpu {
            Some(g) => Decoder::gpu(g, model, cap),
            None => Decoder::cpu(model, cap),
        };
        let g = greedy(d, model, &ids, n_new, heads);
        let want = ids_of(&case["generated"]);
        let steps = case["steps"].as_array().unwrap();
        // Steps up to and including the first near-tie must agree; after it the texts may part.
        let tie = steps.iter().position(|s| s["gap"].as_f64().unwrap() < 0.01);
        let exact = tie.map_or(n_new, |t| t + 1);
        if let Some(t) = tie {
            eprintln!("{file} {text:?}: step {t} is a near-tie (gap {}): tokens compared up to it", steps[t]["gap"]);
        }
        assert_eq!(g.generated[..exact], want[..exact], "{file} {text:?} on {}", g.backend);
        let same = g.generated.iter().zip(&want).take_while(|(a, b)| a == b).count();
        for (t, s) in steps.iter().enumerate().take(same + 1).take(n_new) {
            for p in s["top"].as_array().unwrap() {
                let (id, logit) = (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap());
                if let Some((_, ours)) = g.steps[t].top.iter().find(|(i, _)| *i == id) {
                    assert!((*ours as f64 - logit).abs() <= 1e-2, "{file} {text:?} step {t}: logit of {id} {ours} vs {logit}");
                }
            }
            assert_eq!(g.steps[t].top[0].0, s["top"][0][0].as_u64().unwrap() as u32, "{file} {text:?} step {t}: top-1");
        }
        // Rows of generated positions while the texts agree (a row reads every earlier token).
        for (key, rows) in case["attention_rows"].as_object().unwrap() {
            for (t, row) in rows.as_array().unwrap().iter().enumerate().take(same) {
                let ours = &g.attention[key][t];
                let row = row.as_array().unwrap();
                assert_eq!(ours.len(), row.len(), "{key} row {t}");
                let worst = ours.iter().zip(row).map(|(a, b)| (*a as f64 - b.as_f64().unwrap()).abs()).fold(0.0, f64::max);
                assert!(worst <= tol, "{file} {text:?} on {}: head {key} row {t} differs by {worst}", g.backend);
            }
        }
        assert_eq!(g.timings_ms.decode.len(), n_new);
        assert_eq!(g.kv_cache_bytes, 2 * (ids.len() + n_new) * model.config.kv_dim() * model.config.n_layer * 4);
    }
}

#[test]
fn greedy_smollm2_matches_transformers_on_cpu_and_gpu() {
    let model = common::real_model();
    check(&model, "generate-smollm2.json", None, 1e-4);
    let gpu = GpuBackend::with_context(GpuContext::new_blocking().unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter (WGPU_BACKEND=vulkan, mesa-vulkan-drivers)")));
    check(&model, "generate-smollm2.json", Some(&gpu), 5e-4);
}

#[test]
fn greedy_gemma3_matches_transformers_on_cpu() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(attnlab::GEMMA3_MODEL_PATH);
    let model = Model::from_gguf_vec(std::fs::read(path).expect("make setup fetches Gemma 3")).unwrap();
    check(&model, "generate-gemma3.json", None, 1e-4);
}

#[test]
fn with_and_without_the_cache_the_rows_agree() {
    let model = common::real_model();
    let ids = model.tokenizer.encode("The trophy didn't fit in the suitcase because it was");
    let heads = vec![(0, 0), (5, 2), (29, 8)];
    let g = greedy(Decoder::cpu(&model, ids.len() + 13), &model, &ids, 12, heads.clone());
    // Without the cache: one pass over the prompt and everything generated.
    let all: Vec<u32> = ids.iter().chain(&g.generated).copied().collect();
    let out = CpuBackend::new().forward(&model, &all, &ForwardOptions { logits_for: LogitsFor::All, ..Default::default() }).unwrap();
    let t = out.trace.unwrap();
    for (l, h) in heads {
        for (i, row) in g.attention[&attnlab::analysis::HeadId::key(l, h)].iter().enumerate() {
            let whole = t.row(l, h, ids.len() + i).unwrap();
            let e = row.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(e <= 1e-5, "{l}.{h} row {i}: {e}");
        }
    }
    // And every generated token is the whole pass's argmax at the position before it.
    for (i, &tok) in g.generated.iter().enumerate() {
        let row = out.logits.row(ids.len() - 1 + i);
        let best = row.iter().enumerate().fold(0, |b, (j, &v)| if v > row[b] { j } else { b });
        assert_eq!(tok as usize, best, "token {i}");
    }
}

/// The model writes under a cache policy or a what-if: each step reads only the keys its rule
/// leaves (as if the others were evicted; positions stay the tokens' own), and what it writes
/// equals one pass over the whole text under the same rule on the same backend (the pass
/// `tests/through_model.rs` holds to transformers'): every token that pass's argmax, its
/// probability the pass's. Without the causal mask no cache can hold the keys: each step reads
/// the whole text again, and equals a pass over the text so far (on the CPU). The CPU and the GPU
/// (flash-decoding with sinks, key 0 hidden, layers without RoPE over a 300-token cache) write
/// the same tokens — except without ÷√d: scores 8 times larger make rows nearly one-hot over
/// 300 keys, and the backends' roundings flip which key wins (their logits at the prompt's end
/// already differ by 0.3), so there each backend is held to its own pass only.
#[test]
fn writing_under_a_cache_policy_or_a_what_if_equals_one_pass_under_it() {
    use attnlab::model::arch::{AttnChange, CachePolicy};
    let model = common::real_model();
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/Apache-2.0.txt")).unwrap();
    let ids = model.tokenizer.encode(&text)[..300].to_vec();
    let last = model.config.n_layer - 1;
    let gpu = GpuBackend::with_context(GpuContext::new_blocking().unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter (WGPU_BACKEND=vulkan, mesa-vulkan-drivers)")));
    let n_new = 6;
    let plain = greedy(Decoder::cpu(&model, 320), &model, &ids, n_new, vec![]);
    let variants = [
        Variant::policy(CachePolicy::Window { window: 64 }),
        Variant::policy(CachePolicy::SinksWindow { sinks: 4, window: 64 }),
        Variant::policy(CachePolicy::NoKey0),
        Variant::change(AttnChange::Unscaled, 0, last),
        Variant::change(AttnChange::Nosink, 10, 20),
        Variant::change(AttnChange::Norope, 0, last),
        Variant::change(AttnChange::Unmasked, 0, last),
    ];
    // Unscaled scores are √head_dim times larger, and so are their roundings.
    let tol_of = |v: Variant| if matches!(v.change, Some((AttnChange::Unscaled, ..))) { 1e-3 * (model.config.head_dim as f32).sqrt() } else { 1e-3 };
    // `g` (written on backend `b`) against passes of `b` under the same rule.
    let against_passes = |b: &dyn Fn(&[u32], &ForwardOptions) -> Vec<Vec<f32>>, v: Variant, g: &Generation| {
        let all: Vec<u32> = ids.iter().chain(&g.generated).copied().collect();
        let opts = |logits_for| ForwardOptions { capture_attention: false, logits_for, policy: v.policy, change: v.change, ..Default::default() };
        let whole = (!v.needs_recompute()).then(|| b(&all, &opts(LogitsFor::All)));
        for (t, step) in g.steps.iter().enumerate() {
            let at = ids.len() - 1 + t;
            let row = match &whole {
                Some(rows) => rows[at].clone(),
                None => b(&all[..=at], &opts(LogitsFor::Last)).pop().unwrap(),
            };
            let lse = attnlab::analysis::report::log_sum_exp(&row);
            let best = row.iter().enumerate().fold(0, |b, (j, &x)| if x > row[b] { j } else { b });
            assert_eq!(step.token as usize, best, "{} on the {}: token {t}", v.name(), g.backend);
            assert!(((row[best] - lse).exp() - step.prob).abs() <= tol_of(v), "{} on the {}: token {t} p {} vs the pass's {}", v.name(), g.backend, step.prob, (row[best] - lse).exp());
        }
    };
    let rows = |out: attnlab::backends::ForwardOutput| out.logits.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>();
    let on_cpu = |ids: &[u32], o: &ForwardOptions| rows(CpuBackend::new().forward(&model, ids, o).unwrap());
    let on_gpu = |ids: &[u32], o: &ForwardOptions| rows(gpu.forward(&model, ids, o).unwrap());
    let mut changed = 0;
    for v in variants {
        let o = GenOptions { max_tokens: n_new, ignore_eos: true, variant: v, heads: vec![(0, 0)], ..Default::default() };
        let g = pollster::block_on(generate(Decoder::cpu(&model, 320), &model, &ids, &o, &mut |_| {})).unwrap();
        assert!(g.attention[&attnlab::analysis::HeadId::key(0, 0)].is_empty(), "{}: rows are kept for the model's own attention only", v.name());
        against_passes(&on_cpu, v, &g);
        changed += (g.generated != plain.generated) as usize;
        if v.needs_recompute() {
            continue; // the same passes as the GPU's what-if test (tests/through_model.rs)
        }
        let w = pollster::block_on(generate(Decoder::gpu(&gpu, &model, 320), &model, &ids, &o, &mut |_| {})).unwrap();
        assert_eq!(w.backend, "gpu");
        if matches!(v.change, Some((AttnChange::Unscaled, ..))) {
            against_passes(&on_gpu, v, &w);
        } else {
            assert_eq!(w.generated, g.generated, "{} on the GPU", v.name());
            let worst = w.steps.iter().zip(&g.steps).map(|(a, b)| (a.prob - b.prob).abs()).fold(0.0, f32::max);
            assert!(worst <= 2e-3, "{} on the GPU: probabilities differ by {worst}", v.name());
        }
    }
    assert!(changed >= 3, "only {changed} of the variants changed what the model writes");
    // A window as long as the text writes what dense attention writes.
    let o = GenOptions { max_tokens: n_new, ignore_eos: true, variant: Variant::policy(CachePolicy::Window { window: 400 }), ..Default::default() };
    assert_eq!(pollster::block_on(generate(Decoder::cpu(&model, 320), &model, &ids, &o, &mut |_| {})).unwrap().generated, plain.generated);
}

#[test]
fn sampling_is_reproducible_and_its_cuts_mean_what_they_say() {
    // A hand-made distribution: logits ln(0.5), ln(0.3), ln(0.15), ln(0.05).
    let logits: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
    let draw = |s: Sampling, n: usize| {
        let mut rng = Rng::new(s.seed);
        (0..n).map(|_| sample(&logits, &s, &mut rng).0).collect::<Vec<_>>()
    };
    let warm = Sampling { temperature: 1.0, seed: 42, ..Default::default() };
    assert_eq!(draw(warm, 200), draw(warm, 200), "a seed reproduces the draws");
    assert_ne!(draw(warm, 200), draw(Sampling { seed: 43, ..warm }, 200));
    let counts = |v: Vec<u32>| (0..4).map(|i| v.iter().filter(|&&x| x == i).count()).collect::<Vec<_>>();
    let c = counts(draw(warm, 20_000));
    for (i, p) in [0.5, 0.3, 0.15, 0.05].iter().enumerate() {
        assert!((c[i] as f64 / 20_000.0 - p).abs() < 0.015, "token {i}: {} draws", c[i]);
    }
    assert!(draw(Sampling { top_k: 1, ..warm }, 50).iter().all(|&t| t == 0), "top-k 1 is greedy");
    assert!(draw(Sampling { temperature: 0.0, ..warm }, 50).iter().all(|&t| t == 0), "temperature 0 is greedy");
    // top-p 0.75: the smallest set reaching 0.75 is {0, 1} (0.8); 0.85 needs {0, 1, 2}.
    let c = counts(draw(Sampling { top_p: 0.75, ..warm }, 5_000));
    assert!(c[2] == 0 && c[3] == 0 && c[0] > 0 && c[1] > 0, "{c:?}");
    let c = counts(draw(Sampling { top_p: 0.85, ..warm }, 5_000));
    assert!(c[2] > 0 && c[3] == 0, "{c:?}");
    // Probabilities reported are the model's own.
    let mut rng = Rng::new(1);
    let (id, p) = sample(&logits, &Sampling::default(), &mut rng);
    assert_eq!(id, 0);
    assert!((p - 0.5).abs() < 1e-6);

    // Meaningless values are refused before any pass, with the reason.
    let model = attnlab::Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec::default())).unwrap();
    let ids = vec![5, 6, 7];
    for (s, what) in [(Sampling { temperature: -1.0, ..Default::default() }, "temperature"), (Sampling { temperature: f32::NAN, ..Default::default() }, "temperature"), (Sampling { top_p: 1.5, ..Default::default() }, "top-p"), (Sampling { top_p: 0.0, ..Default::default() }, "top-p")] {
        let o = GenOptions { max_tokens: 3, sampling: s, ignore_eos: true, heads: vec![], ..Default::default() };
        let e = pollster::block_on(generate(Decoder::cpu(&model, 8), &model, &ids, &o, &mut |_| {})).unwrap_err();
        assert!(e.contains(what), "{e}");
    }
    let o = GenOptions { max_tokens: 1000, sampling: Sampling::default(), ignore_eos: true, heads: vec![], ..Default::default() };
    let e = pollster::block_on(generate(Decoder::cpu(&model, 8), &model, &ids, &o, &mut |_| {})).unwrap_err();
    assert!(e.contains("context"), "{e}");
    let o = GenOptions { max_tokens: 2, sampling: Sampling::default(), ignore_eos: true, heads: vec![(9, 0)], ..Default::default() };
    assert!(pollster::block_on(generate(Decoder::cpu(&model, 8), &model, &ids, &o, &mut |_| {})).unwrap_err().contains("9.0"));
}

fn tiny() -> Model {
    attnlab::Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec::default())).unwrap()
}

fn run(model: &Model, ids: &[u32], o: &GenOptions) -> Generation {
    pollster::block_on(generate(Decoder::cpu(model, attnlab::generate::capacity(model, ids.len(), o)), model, ids, o, &mut |_| {})).unwrap()
}

/// The page's "without the cache" replays the same steps recomputing the whole text each
/// time; a branch forces its first tokens then samples on; a stop text ends the output.
#[test]
fn without_the_cache_branches_and_stop_texts() {
    let model = tiny();
    let ids = vec![5, 6, 7, 9];
    let o = GenOptions { max_tokens: 10, ignore_eos: true, heads: vec![(1, 2)], ..Default::default() };
    let cached = run(&model, &ids, &o);
    let plain = run(&model, &ids, &GenOptions { recompute: true, ..o.clone() });
    assert_eq!(plain.generated, cached.generated, "the same tokens without the cache");
    assert_eq!(plain.timings_ms.decode.len(), 10);
    for (a, b) in plain.steps.iter().zip(&cached.steps) {
        assert!((a.prob - b.prob).abs() < 1e-5 && a.top[0].0 == b.top[0].0);
    }
    assert!(plain.attention["1.2"].is_empty(), "no rows are kept without the cache");
    assert_eq!(cached.attention["1.2"].len(), 10);
    // A branch at step 3 with another token: the first 3 steps as before, then that token,
    // then exactly what greedy writes after the prompt + those 4 tokens.
    let other = cached.steps[3].top[1].0;
    let forced: Vec<u32> = cached.generated[..3].iter().copied().chain([other]).collect();
    let branch = run(&model, &ids, &GenOptions { forced: forced.clone(), ..o.clone() });
    assert_eq!(branch.generated[..4], forced[..]);
    assert!((branch.steps[3].prob - cached.steps[3].top[1].1.exp() / cached.steps[3].top.iter().map(|t| t.1.exp()).sum::<f32>()).abs() < 0.5, "a forced step keeps the model's probability");
    let prompt2: Vec<u32> = ids.iter().chain(&forced).copied().collect();
    let after = run(&model, &prompt2, &GenOptions { max_tokens: 6, ..o.clone() });
    assert_eq!(branch.generated[4..], after.generated[..]);
    // A stop text: the output ends at the first step whose text contains it.
    let first = model.tokenizer.decode(&cached.generated[..2]).unwrap();
    let stop = first.trim().chars().last().map(String::from).unwrap_or_default();
    if !stop.is_empty() {
        let s = run(&model, &ids, &GenOptions { stop: vec![stop.clone()], ..o.clone() });
        assert!(s.text_out.contains(&stop) && s.generated.len() <= 2, "{:?} stops at {stop:?}", s.text_out);
        assert_eq!(s.finish, attnlab::generate::Finish::Stop);
    }
    assert_eq!(cached.finish, attnlab::generate::Finish::MaxTokens);
    // Stopped from outside after two tokens: two tokens, the second without its row.
    let mut g = attnlab::generate::Generator::new(Decoder::cpu(&model, 16), &model, &ids, &o).unwrap();
    pollster::block_on(g.next()).unwrap();
    pollster::block_on(g.next()).unwrap();
    g.stop();
    assert!(pollster::block_on(g.next()).unwrap().is_none());
    let g = g.finish();
    assert_eq!((g.generated.len(), g.attention["1.2"].len(), g.finish), (2, 1, attnlab::generate::Finish::Stopped));
    // A forced token outside the vocabulary is refused.
    let bad = GenOptions { forced: vec![u32::MAX], ..o };
    assert!(pollster::block_on(generate(Decoder::cpu(&model, 16), &model, &ids, &bad, &mut |_| {})).unwrap_err().contains("vocabulary"));
}

/// The GPU lost mid-generation: the text goes on on the CPU from the same position, with
/// the tokens and rows the CPU alone gives.
#[test]
fn a_gpu_lost_mid_generation_finishes_on_the_cpu() {
    let model = tiny();
    let ids = vec![5, 6, 7, 9, 11];
    let o = GenOptions { max_tokens: 8, ignore_eos: true, heads: vec![(0, 1), (1, 3)], ..Default::default() };
    let gpu = GpuBackend::with_context(GpuContext::new_blocking().unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter (WGPU_BACKEND=vulkan, mesa-vulkan-drivers)")));
    let mut g = attnlab::generate::Generator::new(Decoder::gpu(&gpu, &model, 16), &model, &ids, &o).unwrap();
    for _ in 0..3 {
        pollster::block_on(g.next()).unwrap().unwrap();
    }
    assert_eq!(g.backend(), "gpu");
    gpu.ctx.device.destroy();
    while pollster::block_on(g.next()).unwrap().is_some() {}
    assert_eq!(g.backend(), "cpu");
    assert!(g.note().is_some_and(|n| n.contains("GPU failed") && n.contains("token")), "{:?}", g.note());
    let g = g.finish();
    let cpu = run(&model, &ids, &o);
    assert_eq!(g.generated, cpu.generated);
    for key in ["0.1", "1.3"] {
        assert_eq!(g.attention[key].len(), 8);
        for (a, b) in g.attention[key].iter().zip(&cpu.attention[key]) {
            let e = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            assert!(e <= 1e-4, "{key}: {e}");
        }
    }
}

/// `attnlab generate --stop`: the output ends at the first step whose text contains the stop
/// text ("Paris." — SmolLM2's greedy answer — ends at the full stop).
#[test]
fn cli_generate_stops_at_a_stop_text() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_attnlab"))
        .args(["generate", "--json", "--text", "The capital of France is", "--max-tokens", "20", "--stop", "."])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["finish"], "stop");
    let text = j["text_out"].as_str().unwrap();
    assert!(text.ends_with('.') && text.contains("Paris"), "{text:?}");
    assert!(j["generated"].as_array().unwrap().len() < 20);
}
