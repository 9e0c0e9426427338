//! GPT-2, Qwen2 and Qwen3 against `tests/data/archs/` (copied from `../shared/reference/archs/`:
//! small random-weight models written with llama.cpp's tensor names and keys, and the numbers
//! Hugging Face transformers computes reading the same files; see REFERENCE.md there): token
//! ids exact; every attention row within 1e-4 on the CPU and 5e-4 on the GPU; the last
//! position's logits within 1e-2; the argmax equal wherever the reference's top-2 gap is at
//! least 1e-3. Then, for every architecture and both shipped models, a prompt run as a prefill
//! plus single-token steps over a KV cache gives the numbers of one pass over the whole text
//! (CPU within 5e-5, GPU within 1e-4, relative to the largest value: a step's projections go
//! through the fused gemv, the whole pass's through sgemm). And the refusals: an unknown architecture by name, a
//! GPT-2 file without its position table naming the tensor.

mod common;

use attnlab::analysis::report::{inspect, HeadSelection};
use attnlab::backends::gpu::context::GpuContext;
use attnlab::backends::gpu::GpuBackend;
use attnlab::backends::{cpu::CpuBackend, Backend, ForwardOptions, LogitsFor};
use attnlab::model::gguf::{writer, Gguf, MetaValue};
use attnlab::{Model, ModelError};
use serde_json::Value;
use std::sync::OnceLock;

const ARCHS: [&str; 3] = ["gpt2", "qwen2", "qwen3"];

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/archs").join(name)
}

fn model(arch: &str) -> Model {
    Model::from_gguf_vec(std::fs::read(data(&format!("tiny-{arch}-public.gguf"))).unwrap()).unwrap_or_else(|e| panic!("{arch}: {e}"))
}

fn reference(arch: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data(&format!("tiny-{arch}-public.json"))).unwrap()).unwrap()
}

fn gpu() -> &'static GpuBackend {
    static G: OnceLock<GpuBackend> = OnceLock::new();
    G.get_or_init(|| GpuBackend::with_context(GpuContext::new_blocking().unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter (make setup installs mesa-vulkan-drivers; run with WGPU_BACKEND=vulkan)"))))
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn each_file_reads_as_its_architecture() {
    let m = model("gpt2");
    let c = &m.config;
    assert_eq!((m.info.architecture.as_str(), c.n_head, c.n_head_kv, c.head_dim, c.rope_dim), ("gpt2", 4, 4, 16, 0));
    assert!(m.weights.position_embd.is_some() && m.weights.layers[0].ffn_gate.is_none() && m.info.tied_output);
    assert!(m.weights.layers[0].attn_q.b.is_some() && m.weights.layers[0].attn_norm.b.is_some(), "GPT-2 reads its biases");
    let m = model("qwen2");
    assert!(m.weights.layers[0].attn_k.b.is_some() && m.weights.layers[0].attn_output.b.is_none());
    assert_eq!((m.config.n_head, m.config.n_head_kv), (4, 2));
    let m = model("qwen3");
    assert_eq!((m.config.head_dim, m.config.n_embd), (128, 64), "Qwen3's head size is its own key_length");
    assert!(m.weights.layers[1].attn_q_norm.is_some() && m.weights.layers[1].attn_q.b.is_none());
}

#[test]
fn byte_level_pre_tokenizers_give_transformers_ids() {
    for arch in ARCHS {
        let m = model(arch);
        let r = reference(arch);
        let cases = r["tokenizer_cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        for c in cases {
            let text = c["text"].as_str().unwrap();
            assert_eq!(m.tokenizer.encode(text), ids_of(&c["ids"]), "{arch}: {text:?}");
        }
    }
}

/// Every case of one architecture on one backend, to the bars.
fn check_against_reference(arch: &str, backend: &dyn Backend, attention_tol: f64) {
    let m = model(arch);
    let r = reference(arch);
    for case in r["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let report = inspect(&m, backend, text, &HeadSelection::All).unwrap();
        assert_eq!(report.ids, ids_of(&case["ids"]), "{arch} {text:?}: ids");
        let mut worst = 0.0f64;
        for (l, heads) in case["attention"].as_array().unwrap().iter().enumerate() {
            for (h, rows) in heads.as_array().unwrap().iter().enumerate() {
                let ours = &report.attention[&format!("{l}.{h}")];
                for (i, row) in rows.as_array().unwrap().iter().enumerate() {
                    let row = row.as_array().unwrap();
                    assert_eq!(ours[i].len(), row.len());
                    for (a, b) in ours[i].iter().zip(row) {
                        worst = worst.max((*a as f64 - b.as_f64().unwrap()).abs());
                    }
                }
            }
        }
        assert!(worst <= attention_tol, "{arch} on {} {text:?}: attention differs by {worst}", backend.name());
        let ours: std::collections::HashMap<u32, f32> = report.last_logits_top.iter().copied().collect();
        for p in case["last_logits_top64"].as_array().unwrap() {
            let (id, logit) = (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap());
            let o = *ours.get(&id).unwrap_or_else(|| panic!("{arch} {text:?}: id {id} not in our top 64")) as f64;
            assert!((o - logit).abs() <= 1e-2, "{arch} on {} {text:?}: logit of {id}: {o} vs {logit}", backend.name());
        }
        assert!((report.last_logsumexp as f64 - case["last_logsumexp"].as_f64().unwrap()).abs() <= 1e-2);
        let (argmax, gaps) = (ids_of(&case["argmax_per_position"]), case["argmax_gap"].as_array().unwrap());
        for (i, (want, got)) in argmax.iter().zip(&report.argmax_per_position).enumerate() {
            if gaps[i].as_f64().unwrap() >= 1e-3 {
                assert_eq!(got, want, "{arch} on {} {text:?}: argmax at {i}", backend.name());
            }
        }
    }
}

#[test]
fn cpu_matches_transformers_on_gpt2_qwen2_qwen3() {
    for arch in ARCHS {
        check_against_reference(arch, &CpuBackend::new(), 1e-4);
    }
}

#[test]
fn gpu_matches_transformers_on_gpt2_qwen2_qwen3() {
    for arch in ARCHS {
        check_against_reference(arch, gpu(), 5e-4);
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// [`max_diff`] over the reference's largest magnitude (at least 1): a step's projections run
/// through the fused gemv and the whole pass's through sgemm, which sum in different orders,
/// so the error grows with the values (Gemma's normalised queries reach ~30).
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    max_diff(a, b) / b.iter().fold(1.0f32, |m, v| m.max(v.abs()))
}

/// Prefill of `ids[..prefill]`, then one token at a time: on each backend every step's
/// logits, queries and log-sum-exps equal that backend's one pass's rows, and the cache equals
/// its keys and values.
fn prefill_and_steps_equal_one_pass(m: &Model, ids: &[u32], prefill: usize, tol: f32, gpu_too: bool) {
    let n = ids.len();
    let opts = ForwardOptions { logits_for: LogitsFor::All, ..Default::default() };
    let whole = CpuBackend::new().forward(m, ids, &opts).unwrap();
    let (q_dim, n_head, kv_dim) = (m.config.q_dim(), m.config.n_head, m.config.kv_dim());
    let check = |whole: &attnlab::backends::ForwardOutput, name: &str, step: &attnlab::backends::StepOutput, at: usize, len: usize, tol: f32| {
        let trace = whole.trace.as_ref().unwrap();
        for (r, pos) in (at..at + len).enumerate() {
            let e = rel_diff(step.logits.row(r).as_slice().unwrap(), whole.logits.row(pos).as_slice().unwrap());
            assert!(e <= tol * 100.0, "{} {name}: logits at {pos} differ by {e}", m.info.architecture);
        }
        for (l, (q, lse)) in step.rows.iter().enumerate() {
            let t = &trace.layers[l];
            let (eq, el) = (rel_diff(q, &t.q[at * q_dim..(at + len) * q_dim]), rel_diff(lse, &t.lse[at * n_head..(at + len) * n_head]));
            assert!(eq <= tol && el <= tol, "{} {name} layer {l} at {at}: q {eq}, lse {el}", m.info.architecture);
        }
    };
    let cpu = CpuBackend::new();
    let mut cache = cpu.new_cache(m, n + 2);
    check(&whole, "cpu prefill", &cpu.step(m, &ids[..prefill], &mut cache, &opts).unwrap(), 0, prefill, tol);
    for t in prefill..n {
        check(&whole, "cpu step", &cpu.step(m, &ids[t..t + 1], &mut cache, &opts).unwrap(), t, 1, tol);
    }
    assert_eq!(cache.len, n);
    let trace = whole.trace.as_ref().unwrap();
    // The capture grown row by row (a prefill, then one token per step) is the one pass's.
    let mut grown = attnlab::model::capture::AttentionTrace::new(&m.config, 0);
    let mut cache = cpu.new_cache(m, n);
    let mut at = 0;
    for part in std::iter::once(&ids[..prefill]).chain(ids[prefill..].chunks(1)) {
        let step = cpu.step(m, part, &mut cache, &opts).unwrap();
        let span = at * kv_dim..(at + part.len()) * kv_dim;
        grown.extend(step.rows.into_iter().zip(&cache.layers).map(|((q, lse), (k, v))| attnlab::model::capture::LayerTrace { q, k: k[span.clone()].to_vec(), v: v[span.clone()].to_vec(), lse }).collect());
        at += part.len();
    }
    assert_eq!(grown.n_tokens, n);
    for l in 0..m.config.n_layer {
        for h in [0, m.config.n_head - 1] {
            for i in [0, prefill - 1, prefill, n - 1] {
                let e = max_diff(&grown.row(l, h, i).unwrap(), &trace.row(l, h, i).unwrap());
                assert!(e <= tol, "{} grown capture {l}.{h} row {i}: {e}", m.info.architecture);
            }
        }
    }
    for (l, (k, v)) in cache.layers.iter().enumerate() {
        assert!(rel_diff(&k[..n * kv_dim], &trace.layers[l].k) <= tol && rel_diff(&v[..n * kv_dim], &trace.layers[l].v) <= tol, "cpu cache layer {l}");
    }
    if gpu_too {
        let g = gpu();
        let gtol = tol.max(1e-4);
        let whole = g.forward(m, ids, &opts).unwrap();
        let trace = whole.trace.as_ref().unwrap();
        let mut cache = g.new_cache(m, n);
        check(&whole, "gpu prefill", &pollster::block_on(g.step_async(m, &ids[..prefill], &mut cache, &opts)).unwrap(), 0, prefill, gtol);
        for t in prefill..n {
            check(&whole, "gpu step", &pollster::block_on(g.step_async(m, &ids[t..t + 1], &mut cache, &opts)).unwrap(), t, 1, gtol);
        }
        for l in 0..m.config.n_layer {
            let (k, v) = g.read_cache(&cache, l, kv_dim).unwrap();
            assert!(max_diff(&k, &trace.layers[l].k) <= gtol && max_diff(&v, &trace.layers[l].v) <= gtol, "gpu cache layer {l}");
        }
        // A full cache refuses one more token instead of writing past its end.
        assert!(pollster::block_on(g.step_async(m, &ids[..1], &mut cache, &opts)).is_err());
    }
}

#[test]
fn prefill_then_single_token_steps_equal_one_pass_on_every_architecture() {
    for arch in ARCHS {
        let m = model(arch);
        let ids = m.tokenizer.encode("In 2024, 3 of the 12 runners didn't finish: they're tired!");
        prefill_and_steps_equal_one_pass(&m, &ids, 5, 5e-5, true);
    }
    // SmolLM2 (GQA, adjacent RoPE) and Gemma 3 (MQA, QK-norm, post-norms, √d embeddings,
    // halves RoPE, a sliding window shorter than the text so that steps drop old keys).
    let smol = common::real_model();
    let ids = smol.tokenizer.encode("The trophy didn't fit in the suitcase because it was too big.");
    prefill_and_steps_equal_one_pass(&smol, &ids, 9, 5e-5, true);
    let gemma = Model::from_gguf_vec(std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(attnlab::GEMMA3_MODEL_PATH)).expect("make setup fetches Gemma 3")).unwrap();
    let mut g = gemma.config.clone();
    g.layer_window = g.layer_window.iter().map(|w| w.map(|_| 6)).collect();
    let gemma = Model { config: g, ..gemma };
    let ids = gemma.tokenizer.encode("The trophy didn't fit in the suitcase because it was too big.");
    assert!(ids.len() > 8);
    prefill_and_steps_equal_one_pass(&gemma, &ids, 4, 5e-5, true);
}

/// The tiny GPT-2 file rewritten with one change to its metadata or tensors.
fn rewritten(arch_name: &str, drop_tensor: Option<&str>) -> Vec<u8> {
    let bytes = std::fs::read(data("tiny-gpt2-public.gguf")).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let mut meta: Vec<(String, MetaValue)> = g.metadata.iter().filter(|(k, _)| k.as_str() != "general.alignment").map(|(k, v)| (k.replace("gpt2.", &format!("{arch_name}.")), v.clone())).collect();
    for (k, v) in meta.iter_mut() {
        if k == "general.architecture" {
            *v = MetaValue::String(arch_name.into());
        }
    }
    let tensors: Vec<writer::WriteTensor> = g.tensors.iter().filter(|t| Some(t.name.as_str()) != drop_tensor).map(|t| writer::WriteTensor { name: t.name.clone(), dims: t.dims.clone(), ty: t.ty, data: bytes[t.data_range.clone()].to_vec() }).collect();
    writer::write_gguf(&meta, &tensors)
}

#[test]
fn unknown_architectures_and_a_gpt2_without_positions_are_refused_by_name() {
    assert!(Model::from_gguf_vec(rewritten("gpt2", None)).is_ok(), "the rewrite alone changes nothing");
    let e = Model::from_gguf_vec(rewritten("mamba", None)).unwrap_err();
    assert!(matches!(e, ModelError::UnknownArchitecture(ref a) if a == "mamba"), "{e}");
    let msg = e.to_string();
    for known in ["llama", "gemma3", "qwen2", "qwen3", "gpt2"] {
        assert!(msg.contains(&format!("\"{known}\"")), "{msg}");
    }
    let e = Model::from_gguf_vec(rewritten("gpt2", Some("position_embd.weight"))).unwrap_err();
    assert!(e.to_string().contains("position_embd.weight"), "{e}");
    // A bias the block has no place for is refused, not ignored.
    let bytes = std::fs::read(data("tiny-qwen3-public.gguf")).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let meta: Vec<(String, MetaValue)> = g.metadata.iter().filter(|(k, _)| k.as_str() != "general.alignment").map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut tensors: Vec<writer::WriteTensor> = g.tensors.iter().map(|t| writer::WriteTensor { name: t.name.clone(), dims: t.dims.clone(), ty: t.ty, data: bytes[t.data_range.clone()].to_vec() }).collect();
    tensors.push(writer::WriteTensor { name: "blk.0.ffn_mystery.bias".into(), dims: vec![4], ty: attnlab::model::gguf::GgmlType::F32, data: vec![0; 16] });
    let e = Model::from_gguf_vec(writer::write_gguf(&meta, &tensors)).unwrap_err();
    assert!(e.to_string().contains("blk.0.ffn_mystery.bias"), "{e}");
}
