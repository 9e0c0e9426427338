//! Gemma 3 (text) as stored in GGUF (`general.architecture = "gemma3"`; Gemma 3 270M).
//!
//! What differs from Llama, all read from the file or fixed by the architecture:
//! - multi-query attention (`head_count_kv = 1`) with a head size of its own
//!   (`attention.key_length = 256` on a 640-wide stream);
//! - QK-norm: RMSNorm of every query and key head (`attn_q_norm`, `attn_k_norm`) before RoPE;
//! - RMSNorm after attention and after the FFN too (`post_attention_norm`, `post_ffw_norm`);
//! - embeddings scaled by √d_model; a GELU(tanh)-gated FFN; output tied to `token_embd`;
//! - sliding-window attention: layer `i` with `i mod 6 ≠ 5` sees the last
//!   `attention.sliding_window` (512) keys only, and uses RoPE base 10 000; every sixth layer
//!   is global with `rope.freq_base` (1 000 000). The file stores only the global base, as
//!   llama.cpp (`rope_freq_base_train_swa`) and transformers (`rope_local_base_freq`) assume;
//! - RoPE rotates the two halves of a head (ggml NEOX): llama.cpp's converter does not permute
//!   Gemma's Q/K as it does Llama's.
//!
//! Norm weights: Gemma's RMSNorm multiplies by `1 + w`; llama.cpp's converter stores `1 + w`,
//! so the stored vector is used as is, like Llama's.

use std::sync::Arc;

use super::arch::{ablate_heads, record_logits, Act, AttnShape, ForwardOptions, LayerCapture, Ops, Recorded, RopeStyle, Vector};
use super::gguf::Gguf;
use super::llama::{matrix, vector, Config, ModelError};
use super::quant::QTensor;

/// Every sixth layer is global (attends to all earlier tokens).
pub const GLOBAL_EVERY: usize = 6;
/// RoPE base of the sliding (local) layers.
pub const LOCAL_ROPE_BASE: f32 = 10_000.0;

/// One block; names mirror `blk.N.*`.
#[derive(Debug, Clone)]
pub struct Gemma3Layer {
    pub attn_norm: Vector,           // (n_embd)
    pub attn_q: QTensor,             // (n_head · head_dim, n_embd)
    pub attn_k: QTensor,             // (n_kv · head_dim, n_embd)
    pub attn_v: QTensor,             // (n_kv · head_dim, n_embd)
    pub attn_q_norm: Vector,         // (head_dim)
    pub attn_k_norm: Vector,         // (head_dim)
    pub attn_output: QTensor,        // (n_embd, n_head · head_dim)
    pub post_attention_norm: Vector, // (n_embd)
    pub ffn_norm: Vector,            // (n_embd)
    pub ffn_gate: QTensor,           // (n_ff, n_embd)
    pub ffn_up: QTensor,             // (n_ff, n_embd)
    pub ffn_down: QTensor,           // (n_embd, n_ff)
    pub post_ffw_norm: Vector,       // (n_embd)
}

#[derive(Debug, Clone)]
pub struct Gemma3Weights {
    pub token_embd: QTensor, // (vocab, n_embd), also the output projection
    pub layers: Vec<Gemma3Layer>,
    pub output_norm: Vector, // (n_embd)
}

/// Fills the per-layer window and RoPE base from `gemma3.attention.sliding_window`.
pub fn configure(g: &Gguf, c: &mut Config) -> Result<(), ModelError> {
    let key = "gemma3.attention.sliding_window";
    let w = g.get_u64(key)?;
    if w == 0 || w > c.context_length as u64 {
        return Err(ModelError::BadHyperParameter { key: key.into(), value: w.to_string(), why: "must be between 1 and the context length".into() });
    }
    c.rope_style = RopeStyle::Halves;
    for i in 0..c.n_layer {
        let global = i % GLOBAL_EVERY == GLOBAL_EVERY - 1;
        c.layer_window[i] = (!global).then_some(w as usize);
        c.layer_rope_base[i] = if global { c.rope_base } else { LOCAL_ROPE_BASE };
    }
    Ok(())
}

impl Gemma3Weights {
    pub fn load(g: &Gguf, file: &Arc<Vec<u8>>, c: &Config) -> Result<Self, ModelError> {
        let (d, q_dim, kv_dim, hd) = (c.n_embd, c.n_head * c.head_dim, c.n_head_kv * c.head_dim, c.head_dim);
        if g.tensor("output.weight").is_some() {
            return Err(ModelError::UnsupportedFeature("an untied output.weight in a Gemma 3 file".into()));
        }
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Gemma3Layer {
                attn_norm: vector(g, file, &n("attn_norm"), d)?,
                attn_q: matrix(g, file, &n("attn_q"), q_dim, d)?,
                attn_k: matrix(g, file, &n("attn_k"), kv_dim, d)?,
                attn_v: matrix(g, file, &n("attn_v"), kv_dim, d)?,
                attn_q_norm: vector(g, file, &n("attn_q_norm"), hd)?,
                attn_k_norm: vector(g, file, &n("attn_k_norm"), hd)?,
                attn_output: matrix(g, file, &n("attn_output"), d, q_dim)?,
                post_attention_norm: vector(g, file, &n("post_attention_norm"), d)?,
                ffn_norm: vector(g, file, &n("ffn_norm"), d)?,
                ffn_gate: matrix(g, file, &n("ffn_gate"), c.n_ff, d)?,
                ffn_up: matrix(g, file, &n("ffn_up"), c.n_ff, d)?,
                ffn_down: matrix(g, file, &n("ffn_down"), d, c.n_ff)?,
                post_ffw_norm: vector(g, file, &n("post_ffw_norm"), d)?,
            });
        }
        Ok(Gemma3Weights { token_embd: matrix(g, file, "token_embd.weight", c.vocab_size, d)?, layers, output_norm: vector(g, file, "output_norm.weight", d)? })
    }

    pub fn tensors(&self) -> (Vec<&QTensor>, Vec<&Vector>) {
        let mut m = vec![&self.token_embd];
        let mut v = vec![&self.output_norm];
        for l in &self.layers {
            m.extend([&l.attn_q, &l.attn_k, &l.attn_v, &l.attn_output, &l.ffn_gate, &l.ffn_up, &l.ffn_down]);
            v.extend([&l.attn_norm, &l.attn_q_norm, &l.attn_k_norm, &l.post_attention_norm, &l.ffn_norm, &l.post_ffw_norm]);
        }
        (m, v)
    }

    /// `x = √d · embed(ids)`; per layer
    /// `x += norm(Wo · attention(rope(norm_h(Wq·norm(x))), rope(norm_h(Wk·norm(x))), Wv·norm(x)))`
    /// then `x += norm(Wdown · (gelu(Wgate·norm(x)) ⊙ Wup·norm(x)))`; logits = `Wembᵀ · norm(x)`.
    pub fn forward<O: Ops>(&self, o: &mut O, c: &Config, ids: &[u32], opts: &ForwardOptions) -> Recorded<O::Buf> {
        let n = ids.len();
        let (d, q_dim, kv_dim) = (c.n_embd, c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        let mut x = o.buffer("residual", n * d); // (n, d)
        o.embed(ids, &self.token_embd, (d as f32).sqrt(), &mut x);
        let mut xn = o.buffer("normed", n * d); // (n, d)
        let mut attn = o.buffer("attention out", n * q_dim); // (n, n_head·hd)
        let mut proj = o.buffer("projection", n * d); // (n, d)
        let mut gate = o.buffer("ffn gate", n * c.n_ff); // (n, n_ff)
        let mut up = o.buffer("ffn up", n * c.n_ff); // (n, n_ff)
        let mut layers = Vec::new();
        let mut spare: Option<LayerCapture<O::Buf>> = None;
        // Each residual add is fused with the norm that follows it (`add_rms_norm`), so `xn`
        // enters every layer as attn_norm(x) and leaves the last one as output_norm(x).
        o.rms_norm(&x, &self.layers[0].attn_norm, c.rms_eps, &mut xn);
        for (i, l) in self.layers.iter().enumerate() {
            let mut cap = spare.take().unwrap_or_else(|| LayerCapture::new(o, n, q_dim, kv_dim, c.n_head));
            o.matmul(&xn, n, &l.attn_q, &mut cap.q);
            o.matmul(&xn, n, &l.attn_k, &mut cap.k);
            o.matmul(&xn, n, &l.attn_v, &mut cap.v);
            o.rms_norm_in_place(&mut cap.q, &l.attn_q_norm, c.rms_eps);
            o.rms_norm_in_place(&mut cap.k, &l.attn_k_norm, c.rms_eps);
            o.rope(&mut cap.q, n, c.n_head, c.head_dim, c.rope_dim, c.layer_rope_base[i], c.rope_style);
            o.rope(&mut cap.k, n, c.n_head_kv, c.head_dim, c.rope_dim, c.layer_rope_base[i], c.rope_style);
            let shape = AttnShape { n, n_head: c.n_head, n_kv: c.n_head_kv, head_dim: c.head_dim, window: c.layer_window[i] };
            o.attention(shape, &cap.q, &cap.k, &cap.v, &mut attn, &mut cap.lse);
            ablate_heads(o, &mut attn, i, n, c.n_head, c.head_dim, opts);
            o.matmul(&attn, n, &l.attn_output, &mut proj);
            o.rms_norm_in_place(&mut proj, &l.post_attention_norm, c.rms_eps);
            o.add_rms_norm(&mut x, &proj, &l.ffn_norm, c.rms_eps, &mut xn);

            o.matmul(&xn, n, &l.ffn_gate, &mut gate);
            o.matmul(&xn, n, &l.ffn_up, &mut up);
            o.gated(Act::GeluTanh, &mut gate, &up);
            o.matmul(&gate, n, &l.ffn_down, &mut proj);
            o.rms_norm_in_place(&mut proj, &l.post_ffw_norm, c.rms_eps);
            let next_norm = self.layers.get(i + 1).map_or(&self.output_norm, |next| &next.attn_norm);
            o.add_rms_norm(&mut x, &proj, next_norm, c.rms_eps, &mut xn);
            if opts.capture_attention {
                layers.push(cap);
            } else {
                spare = Some(cap);
            }
        }
        let (logits, positions, argmax) = record_logits(o, &xn, n, d, &self.token_embd, opts);
        Recorded { hidden: xn, logits, positions, argmax, layers }
    }
}
