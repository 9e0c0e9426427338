//! Tiny random-weight Llama files written by the test: the forward pass against a plain
//! f64 triple-loop implementation on edge sizes, and every refusal path.

mod common;

use attnlab::backends::{cpu::CpuBackend, Backend, EngineError, ForwardOptions, LogitsFor};
use attnlab::model::gguf::GgmlType;
use attnlab::{Model, ModelError};
use common::{tiny_model_bytes, TinySpec};

/// Straightforward f64 Llama forward over dequantized weights: (attention[layer][head][i][j], logits[i][v]).
fn naive_forward(m: &Model, ids: &[u32]) -> (Vec<Vec<Vec<Vec<f64>>>>, Vec<Vec<f64>>) {
    let c = &m.config;
    assert_eq!(m.info.architecture, "llama");
    let w = &m.weights;
    let (d, hd, n) = (c.n_embd, c.head_dim, ids.len());
    let deq = |t: &attnlab::model::quant::QTensor| -> Vec<Vec<f64>> {
        let f = t.to_f32();
        f.chunks(t.cols).map(|r| r.iter().map(|&v| v as f64).collect()).collect()
    };
    let matvec = |wm: &Vec<Vec<f64>>, x: &[f64]| -> Vec<f64> { wm.iter().map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum()).collect() };
    let norm = |x: &[f64], g: &[f32]| -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let inv = 1.0 / (ms + c.norm_eps as f64).sqrt();
        x.iter().zip(g).map(|(v, g)| v * inv * *g as f64).collect()
    };
    let rope = |x: &mut [f64], pos: usize| {
        for head in x.chunks_mut(hd) {
            for i in 0..c.rope_dim / 2 {
                let theta = pos as f64 * (c.rope_base as f64).powf(-((2 * i) as f64) / c.rope_dim as f64);
                let (a, b) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = a * theta.cos() - b * theta.sin();
                head[2 * i + 1] = a * theta.sin() + b * theta.cos();
            }
        }
    };
    let embd = deq(&w.token_embd);
    let mut x: Vec<Vec<f64>> = ids.iter().map(|&id| embd[id as usize].clone()).collect();
    let mut attn_all = vec![];
    for layer in &w.layers {
        let (wq, wk, wv, wo) = (deq(&layer.attn_q.w), deq(&layer.attn_k.w), deq(&layer.attn_v.w), deq(&layer.attn_output.w));
        let xn: Vec<Vec<f64>> = x.iter().map(|r| norm(r, &layer.attn_norm.w)).collect();
        let mut q: Vec<Vec<f64>> = xn.iter().map(|r| matvec(&wq, r)).collect();
        let mut k: Vec<Vec<f64>> = xn.iter().map(|r| matvec(&wk, r)).collect();
        let v: Vec<Vec<f64>> = xn.iter().map(|r| matvec(&wv, r)).collect();
        for p in 0..n {
            rope(&mut q[p], p);
            rope(&mut k[p], p);
        }
        let mut heads = vec![];
        let mut o = vec![vec![0.0; c.n_head * hd]; n];
        for h in 0..c.n_head {
            let g = h / (c.n_head / c.n_head_kv);
            let mut rows = vec![];
            for i in 0..n {
                let s: Vec<f64> = (0..=i).map(|j| (0..hd).map(|t| q[i][h * hd + t] * k[j][g * hd + t]).sum::<f64>() / (hd as f64).sqrt()).collect();
                let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|v| (v - mx).exp()).sum();
                let p: Vec<f64> = s.iter().map(|v| (v - mx).exp() / z).collect();
                for t in 0..hd {
                    o[i][h * hd + t] = (0..=i).map(|j| p[j] * v[j][g * hd + t]).sum();
                }
                rows.push(p);
            }
            heads.push(rows);
        }
        attn_all.push(heads);
        for i in 0..n {
            let a = matvec(&wo, &o[i]);
            x[i].iter_mut().zip(a).for_each(|(x, a)| *x += a);
        }
        let (wg, wu, wd) = (deq(&layer.ffn_gate.as_ref().unwrap().w), deq(&layer.ffn_up.w), deq(&layer.ffn_down.w));
        for i in 0..n {
            let xn = norm(&x[i], &layer.ffn_norm.w);
            let gt = matvec(&wg, &xn);
            let up = matvec(&wu, &xn);
            let hmid: Vec<f64> = gt.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            let dn = matvec(&wd, &hmid);
            x[i].iter_mut().zip(dn).for_each(|(x, a)| *x += a);
        }
    }
    let out = deq(w.output());
    let logits = x.iter().map(|r| matvec(&out, &norm(r, &w.output_norm.w))).collect();
    let _ = d;
    (attn_all, logits)
}

fn check_against_naive(spec: &TinySpec, sizes: &[usize]) {
    let model = Model::from_gguf_bytes(&tiny_model_bytes(spec)).unwrap();
    let vocab = model.config.vocab_size as u32;
    for &n in sizes {
        let ids: Vec<u32> = (0..n as u32).map(|i| (i * 7919 + 13) % vocab).collect();
        let out = CpuBackend::new().forward(&model, &ids, &ForwardOptions::default()).unwrap();
        let (attn, logits) = naive_forward(&model, &ids);
        let trace = out.trace.as_ref().unwrap();
        for l in 0..model.config.n_layer {
            for h in 0..model.config.n_head {
                let rows = trace.head_rows(l, h).unwrap();
                for i in 0..n {
                    for j in 0..=i {
                        let diff = (rows[i][j] as f64 - attn[l][h][i][j]).abs();
                        assert!(diff < 1e-5, "n={n} {l}.{h}[{i}][{j}]: {} vs {}", rows[i][j], attn[l][h][i][j]);
                    }
                }
            }
        }
        for i in 0..n {
            let ours = out.logits_at(i).unwrap();
            for (v, (a, b)) in ours.iter().zip(&logits[i]).enumerate() {
                assert!((*a as f64 - b).abs() < 1e-3, "n={n} logit[{i}][{v}]: {a} vs {b}");
            }
        }
    }
}

#[test]
fn forward_matches_naive_on_edge_sizes_q4_1_gqa() {
    check_against_naive(&TinySpec::default(), &[1, 2, 31, 32, 33, 64, 65]);
}

#[test]
fn forward_matches_naive_with_q8_0_q4_0_f16_and_untied_output() {
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::F16] {
        let spec = TinySpec { matrix_type: ty, tied: false, n_head: 2, n_head_kv: 2, ..TinySpec::default() };
        check_against_naive(&spec, &[1, 33]);
    }
}

#[test]
fn logits_for_selected_positions_only() {
    let model = Model::from_gguf_bytes(&tiny_model_bytes(&TinySpec::default())).unwrap();
    let ids = [5u32, 6, 7, 8, 9];
    let all = CpuBackend::new().forward(&model, &ids, &ForwardOptions::default()).unwrap();
    let last = CpuBackend::new().forward(&model, &ids, &ForwardOptions { logits_for: LogitsFor::Last, capture_attention: false, ..Default::default() }).unwrap();
    assert_eq!(last.logit_positions, vec![4]);
    assert!(last.trace.is_none());
    // One row goes through the fused gemv, five through sgemm: equal up to summation order.
    close(all.logits_at(4).unwrap().as_slice().unwrap(), last.logits_at(4).unwrap().as_slice().unwrap());
}

/// Equal within 1e-5 of the largest magnitude (different summation orders).
fn close(a: &[f32], b: &[f32]) {
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let e = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(a.len() == b.len() && e <= 1e-5 * scale, "differ by {e} (scale {scale})");
}

#[test]
fn refusals_are_clear() {
    let err = |spec: TinySpec| Model::from_gguf_bytes(&tiny_model_bytes(&spec)).unwrap_err().to_string();
    let e = err(TinySpec { arch: "mamba".into(), ..TinySpec::default() });
    assert!(e.contains("'mamba'") && e.contains("not supported"), "{e}");
    let e = err(TinySpec { matrix_type: GgmlType::Q3K, n_embd: 256, n_ff: 256, n_head: 4, n_head_kv: 4, ..TinySpec::default() });
    assert!(e.contains("Q3_K") && e.contains("blk.0.attn_q.weight"), "{e}");

    let model = Model::from_gguf_bytes(&tiny_model_bytes(&TinySpec { context: 16, ..TinySpec::default() })).unwrap();
    let cpu = CpuBackend::new();
    let opts = ForwardOptions::default();
    assert_eq!(cpu.forward(&model, &[], &opts).unwrap_err(), EngineError::EmptyInput);
    assert_eq!(cpu.forward(&model, &[1; 17], &opts).unwrap_err(), EngineError::TooLong { n: 17, max: 16 });
    assert!(matches!(cpu.forward(&model, &[1, 99_999], &opts).unwrap_err(), EngineError::BadTokenId { id: 99_999, .. }));
    let tight = ForwardOptions { capture_budget_bytes: 1000, ..Default::default() };
    assert!(matches!(cpu.forward(&model, &[1; 16], &tight).unwrap_err(), EngineError::OutOfMemoryBudget { .. }));
}

#[test]
fn missing_tensor_and_bad_hyper_parameters_name_the_key() {
    use attnlab::model::gguf::{Gguf, MetaValue};
    let bytes = tiny_model_bytes(&TinySpec::default());
    let g = Gguf::parse(&bytes).unwrap();
    // Drop a required key by rewriting the file without it.
    let meta: Vec<(String, MetaValue)> = g.metadata.iter().filter(|(k, _)| k.as_str() != "llama.block_count").map(|(k, v)| (k.clone(), v.clone())).collect();
    let tensors: Vec<_> = g
        .tensors
        .iter()
        .map(|t| attnlab::model::gguf::writer::WriteTensor { name: t.name.clone(), dims: t.dims.clone(), ty: t.ty, data: bytes[t.data_range.clone()].to_vec() })
        .collect();
    let e = Model::from_gguf_bytes(&attnlab::model::gguf::writer::write_gguf(&meta, &tensors)).unwrap_err();
    assert!(matches!(&e, ModelError::Gguf(_)) && e.to_string().contains("llama.block_count"), "{e}");
    let short: Vec<_> = tensors.iter().filter(|t| t.name != "blk.1.ffn_up.weight").map(|t| attnlab::model::gguf::writer::WriteTensor { name: t.name.clone(), dims: t.dims.clone(), ty: t.ty, data: t.data.clone() }).collect();
    let meta_all: Vec<(String, MetaValue)> = g.metadata.clone().into_iter().collect();
    let e = Model::from_gguf_bytes(&attnlab::model::gguf::writer::write_gguf(&meta_all, &short)).unwrap_err();
    assert!(e.to_string().contains("blk.1.ffn_up.weight"), "{e}");
}

#[test]
fn pre_tokenizer_is_chosen_by_metadata() {
    let tok = |pre: &str| Model::from_gguf_bytes(&tiny_model_bytes(&TinySpec { pre: pre.into(), ..TinySpec::default() })).map(|m| m.tokenizer);
    let id = |t: &attnlab::model::tokenizer::Tokenizer, s: &str| t.id_of(s).unwrap();
    // smollm isolates every digit, so "123" never merges; gpt2 keeps digit runs together.
    let smollm = tok("smollm").unwrap();
    assert_eq!(smollm.encode("123"), vec![id(&smollm, "1"), id(&smollm, "2"), id(&smollm, "3")]);
    let gpt2 = tok("gpt2").unwrap();
    assert_eq!(gpt2.encode("123"), vec![id(&gpt2, "123")]);
    // llama-bpe groups digits by three: "1234" is "123" + "4".
    let llama = tok("llama-bpe").unwrap();
    assert_eq!(llama.encode("1234"), vec![id(&llama, "123"), id(&llama, "4")]);
    assert_eq!(gpt2.encode(" the"), vec![id(&gpt2, "Ġthe")]);
    // qwen2 isolates every digit like smollm, and keeps a space before letters.
    let qwen = tok("qwen2").unwrap();
    assert_eq!(qwen.encode("1234"), vec![id(&qwen, "1"), id(&qwen, "2"), id(&qwen, "3"), id(&qwen, "4")]);
    let e = tok("deepseek-coder").unwrap_err().to_string();
    assert!(e.contains("pre-tokenizer 'deepseek-coder' is not supported"), "{e}");
}

#[test]
fn argmax_of_every_position_matches_full_logits_in_chunks() {
    use attnlab::backends::cpu::ops::MATMUL_ROW_CHUNK;
    let model = Model::from_gguf_bytes(&tiny_model_bytes(&TinySpec { context: 256, ..TinySpec::default() })).unwrap();
    // The vocabulary spans several blocks of rows (the CPU's running best is merged across
    // them), the last one partial; 133 positions are more than one GPU chunk of 64.
    assert!(model.config.vocab_size > 2 * MATMUL_ROW_CHUNK && model.config.vocab_size % MATMUL_ROW_CHUNK != 0);
    let ids: Vec<u32> = (0..133u32).map(|i| 3 + (i * 7) % 250).collect();
    let full = CpuBackend::new().forward(&model, &ids, &ForwardOptions { capture_attention: false, ..Default::default() }).unwrap();
    let lean = CpuBackend::new().forward(&model, &ids, &ForwardOptions { capture_attention: false, logits_for: LogitsFor::Last, argmax_all: true, ..Default::default() }).unwrap();
    let expect: Vec<u32> = full.logits.rows().into_iter().map(|r| r.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as u32).collect();
    assert_eq!(lean.argmax.as_ref().unwrap(), &expect);
    assert_eq!(lean.logits.nrows(), 1);
    close(lean.logits_at(ids.len() - 1).unwrap().as_slice().unwrap(), full.logits_at(ids.len() - 1).unwrap().as_slice().unwrap());
}

/// A TinyLlama-style file: Llama weights with a SentencePiece vocabulary (scores, byte
/// fallback, BOS added, space prefix). The tiny model's metadata is rewritten around its tensors.
#[test]
fn llama_with_a_sentencepiece_vocabulary_loads_tokenizes_and_runs() {
    use attnlab::model::gguf::writer::{write_gguf, WriteTensor};
    use attnlab::model::gguf::{Gguf, MetaValue};
    let bytes = tiny_model_bytes(&TinySpec::default());
    let g = Gguf::parse(&bytes).unwrap();
    // 263 rows of token_embd: 3 specials, 256 byte pieces, 4 normal pieces.
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    for b in 0..256 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    for t in ["▁", "a", "▁a", "b"] {
        tokens.push(t.into());
        types.push(1);
    }
    let scores: Vec<MetaValue> = (0..tokens.len()).map(|i| MetaValue::F32(-(i as f32))).collect();
    let s = |v: &str| MetaValue::String(v.into());
    let mut meta: Vec<(String, MetaValue)> = g.metadata.iter().filter(|(k, _)| !k.starts_with("tokenizer.")).map(|(k, v)| (k.clone(), v.clone())).collect();
    meta.extend([
        ("tokenizer.ggml.model".to_string(), s("llama")),
        ("tokenizer.ggml.tokens".to_string(), MetaValue::Array(tokens.iter().map(|t| s(t)).collect())),
        ("tokenizer.ggml.scores".to_string(), MetaValue::Array(scores)),
        ("tokenizer.ggml.token_type".to_string(), MetaValue::Array(types.iter().map(|&t| MetaValue::I32(t)).collect())),
        ("tokenizer.ggml.bos_token_id".to_string(), MetaValue::U32(1)),
        ("tokenizer.ggml.unknown_token_id".to_string(), MetaValue::U32(0)),
        ("tokenizer.ggml.add_bos_token".to_string(), MetaValue::Bool(true)),
    ]);
    let tensors: Vec<WriteTensor> = g.tensors.iter().map(|t| WriteTensor { name: t.name.clone(), dims: t.dims.clone(), ty: t.ty, data: bytes[t.data_range.clone()].to_vec() }).collect();
    let model = Model::from_gguf_bytes(&write_gguf(&meta, &tensors)).unwrap();
    let id = |t: &str| model.tokenizer.id_of(t).unwrap();
    // " a ab" → space prefix, spaces as ▁: ▁ ▁ a ▁ a b; "▁a" merges leftmost first.
    assert_eq!(model.tokenizer.encode(" a ab"), vec![1, id("▁"), id("▁a"), id("▁a"), id("b")]);
    // What the vocabulary lacks falls back to bytes: é = C3 A9.
    assert_eq!(model.tokenizer.encode("é"), vec![1, id("▁"), id("<0xC3>"), id("<0xA9>")]);
    assert_eq!(model.tokenizer.decode(&model.tokenizer.encode("é a")[1..]).unwrap(), " é a");
    let out = CpuBackend::new().forward(&model, &model.tokenizer.encode("a b a b"), &ForwardOptions::default()).unwrap();
    assert!(out.logits.iter().all(|v| v.is_finite()));
}
