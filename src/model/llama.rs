//! The Llama architecture as stored in GGUF: hyper-parameters and weights.
//!
//! Field names mirror the GGUF tensor names (`blk.N.attn_q.weight` → `layers[N].attn_q`) and
//! every hyper-parameter is read from `{arch}.*` metadata, failing with the key's name, so any
//! Llama-family file (SmolLM2-135M/360M, TinyLlama-style BPE models) loads without code
//! changes, and what we cannot run is refused with the reason.
//!
//! Conventions inherited from llama.cpp's converter (`convert_hf_to_gguf.py`, `LlamaModel`):
//! - Q and K weights are permuted so that RoPE rotates *adjacent* pairs `(x[2i], x[2i+1])`
//!   (ggml `GGML_ROPE_TYPE_NORM`), not the two halves of the head as Hugging Face's
//!   `rotate_half` does; attention scores are identical either way.
//! - Without an `output.weight` tensor the output projection is tied to `token_embd.weight`.

use std::sync::Arc;

pub use super::arch::RopeStyle;
use super::arch::{ablate_heads, record_logits, Act, AttnShape, ForwardOptions, LayerCapture, Ops, Recorded, Vector};
use super::gguf::{GgmlType, Gguf, GgufError, TensorInfo};
use super::quant::{dequantize, QTensor, QuantError};
use super::tokenizer::TokenizerError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read the GGUF file: {0}")]
    Gguf(#[from] GgufError),
    #[error("cannot build the tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error("architecture '{0}' is not supported: attnlab runs general.architecture = \"llama\" (SmolLM2, TinyLlama) and \"gemma3\"")]
    UnknownArchitecture(String),
    #[error("tensor '{0}' is missing")]
    MissingTensor(String),
    #[error("hyper-parameter '{key}' = {value} cannot be run: {why}")]
    BadHyperParameter { key: String, value: String, why: String },
    #[error("this model uses {0}, which attnlab does not run")]
    UnsupportedFeature(String),
}

/// Hyper-parameters shared by every architecture, each from the GGUF key named beside it
/// (`{arch}` = `general.architecture`). Per-layer facts (window, RoPE base) are filled by the
/// architecture's loader.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    /// `general.architecture`
    pub arch: String,
    /// `{arch}.block_count`
    pub n_layer: usize,
    /// `{arch}.embedding_length`
    pub n_embd: usize,
    /// `{arch}.feed_forward_length`
    pub n_ff: usize,
    /// `{arch}.attention.head_count`
    pub n_head: usize,
    /// `{arch}.attention.head_count_kv` (GQA; defaults to `n_head`)
    pub n_head_kv: usize,
    /// `n_embd / n_head`
    pub head_dim: usize,
    /// `{arch}.rope.dimension_count` (defaults to `head_dim`)
    pub rope_dim: usize,
    /// `{arch}.rope.freq_base` (defaults to 10000)
    pub rope_base: f32,
    /// `{arch}.attention.layer_norm_rms_epsilon`
    pub rms_eps: f32,
    /// `{arch}.context_length`
    pub context_length: usize,
    /// rows of `token_embd.weight`
    pub vocab_size: usize,
    /// Per layer: the sliding window (`None`: the layer sees every earlier token).
    pub layer_window: Vec<Option<usize>>,
    /// Per layer: the RoPE base.
    pub layer_rope_base: Vec<f32>,
    /// Which dimensions RoPE pairs (Llama as converted: adjacent; Gemma: halves).
    #[serde(skip)]
    pub rope_style: RopeStyle,
}

/// The Llama name kept for the code that predates other architectures.
pub type LlamaConfig = Config;

impl Config {
    /// Reads the keys every architecture has; `head_dim` comes from
    /// `{arch}.attention.key_length` when present (Gemma: 256 with a 640-wide stream).
    pub fn from_gguf(g: &Gguf, arch: &str) -> Result<Self, ModelError> {
        let key = |k: &str| format!("{arch}.{k}");
        let usize_of = |k: &str| -> Result<usize, ModelError> {
            let v = g.get_u64(&key(k))?;
            if v == 0 || v > (1 << 24) {
                return Err(ModelError::BadHyperParameter { key: key(k), value: v.to_string(), why: "out of range".into() });
            }
            Ok(v as usize)
        };
        let n_layer = usize_of("block_count")?;
        let n_embd = usize_of("embedding_length")?;
        let n_ff = usize_of("feed_forward_length")?;
        let n_head = usize_of("attention.head_count")?;
        let n_head_kv = match g.get(&key("attention.head_count_kv")) {
            Ok(_) => usize_of("attention.head_count_kv")?,
            Err(_) => n_head,
        };
        if n_head % n_head_kv != 0 {
            return Err(ModelError::BadHyperParameter { key: key("attention.head_count_kv"), value: n_head_kv.to_string(), why: format!("does not divide head_count {n_head}") });
        }
        let head_dim = match g.get(&key("attention.key_length")) {
            Ok(_) => {
                let k = usize_of("attention.key_length")?;
                if let Ok(v) = g.get_u64(&key("attention.value_length")) {
                    if v as usize != k {
                        return Err(ModelError::UnsupportedFeature(format!("values of length {v} with keys of length {k} ({})", key("attention.value_length"))));
                    }
                }
                k
            }
            Err(_) if n_embd % n_head == 0 => n_embd / n_head,
            Err(_) => return Err(ModelError::BadHyperParameter { key: key("attention.head_count"), value: n_head.to_string(), why: format!("does not divide embedding_length {n_embd}") }),
        };
        let rope_dim = match g.get(&key("rope.dimension_count")) {
            Ok(_) => usize_of("rope.dimension_count")?,
            Err(_) => head_dim,
        };
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(ModelError::BadHyperParameter { key: key("rope.dimension_count"), value: rope_dim.to_string(), why: format!("must be even and at most the head size {head_dim}") });
        }
        let rope_base = g.get_f32(&key("rope.freq_base")).unwrap_or(10000.0);
        if !(rope_base.is_finite() && rope_base > 1.0) {
            return Err(ModelError::BadHyperParameter { key: key("rope.freq_base"), value: rope_base.to_string(), why: "must be finite and > 1".into() });
        }
        let rms_eps = g.get_f32(&key("attention.layer_norm_rms_epsilon"))?;
        if !(rms_eps.is_finite() && rms_eps > 0.0) {
            return Err(ModelError::BadHyperParameter { key: key("attention.layer_norm_rms_epsilon"), value: rms_eps.to_string(), why: "must be finite and > 0".into() });
        }
        let context_length = usize_of("context_length")?;
        if let Ok(kind) = g.get_str(&key("rope.scaling.type")) {
            if kind != "none" {
                return Err(ModelError::UnsupportedFeature(format!("RoPE scaling '{kind}' ({})", key("rope.scaling.type"))));
            }
        }
        let embd = g.tensor("token_embd.weight").ok_or_else(|| ModelError::MissingTensor("token_embd.weight".into()))?;
        let vocab_size = embd.dims.get(1).copied().unwrap_or(0) as usize;
        Ok(Config {
            arch: arch.to_string(),
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            rope_dim,
            rope_base,
            rms_eps,
            context_length,
            vocab_size,
            layer_window: vec![None; n_layer],
            layer_rope_base: vec![rope_base; n_layer],
            rope_style: RopeStyle::Adjacent,
        })
    }

    /// Query heads per KV head.
    pub fn group_size(&self) -> usize {
        self.n_head / self.n_head_kv
    }
}

/// One transformer block; names mirror `blk.N.*`.
#[derive(Debug, Clone)]
pub struct LlamaLayer {
    pub attn_norm: Vector,     // (n_embd)
    pub attn_q: QTensor,       // (n_head * head_dim, n_embd)
    pub attn_k: QTensor,       // (n_head_kv * head_dim, n_embd)
    pub attn_v: QTensor,       // (n_head_kv * head_dim, n_embd)
    pub attn_output: QTensor,  // (n_embd, n_head * head_dim)
    pub ffn_norm: Vector,      // (n_embd)
    pub ffn_gate: QTensor,     // (n_ff, n_embd)
    pub ffn_up: QTensor,       // (n_ff, n_embd)
    pub ffn_down: QTensor,     // (n_embd, n_ff)
}

#[derive(Debug, Clone)]
pub struct LlamaWeights {
    pub token_embd: QTensor,     // (vocab, n_embd)
    pub layers: Vec<LlamaLayer>,
    pub output_norm: Vector,     // (n_embd)
    /// `None`: tied to `token_embd` (SmolLM2).
    pub output: Option<QTensor>, // (vocab, n_embd)
}

impl LlamaWeights {
    /// The output projection, tied or not.
    pub fn output(&self) -> &QTensor {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }

    /// Reads `blk.N.*` with shapes checked against `c`.
    pub fn load(g: &Gguf, file: &Arc<Vec<u8>>, c: &Config) -> Result<Self, ModelError> {
        let (d, q_dim, kv_dim) = (c.n_embd, c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(LlamaLayer {
                attn_norm: vector(g, file, &n("attn_norm"), d)?,
                attn_q: matrix(g, file, &n("attn_q"), q_dim, d)?,
                attn_k: matrix(g, file, &n("attn_k"), kv_dim, d)?,
                attn_v: matrix(g, file, &n("attn_v"), kv_dim, d)?,
                attn_output: matrix(g, file, &n("attn_output"), d, q_dim)?,
                ffn_norm: vector(g, file, &n("ffn_norm"), d)?,
                ffn_gate: matrix(g, file, &n("ffn_gate"), c.n_ff, d)?,
                ffn_up: matrix(g, file, &n("ffn_up"), c.n_ff, d)?,
                ffn_down: matrix(g, file, &n("ffn_down"), d, c.n_ff)?,
            });
        }
        Ok(LlamaWeights {
            token_embd: matrix(g, file, "token_embd.weight", c.vocab_size, d)?,
            layers,
            output_norm: vector(g, file, "output_norm.weight", d)?,
            output: match g.tensor("output.weight") {
                Some(_) => Some(matrix(g, file, "output.weight", c.vocab_size, d)?),
                None => None,
            },
        })
    }

    /// Every weight, for backends that upload them.
    pub fn tensors(&self) -> (Vec<&QTensor>, Vec<&Vector>) {
        let mut m = vec![&self.token_embd];
        let mut v = vec![&self.output_norm];
        m.extend(self.output.as_ref());
        for l in &self.layers {
            m.extend([&l.attn_q, &l.attn_k, &l.attn_v, &l.attn_output, &l.ffn_gate, &l.ffn_up, &l.ffn_down]);
            v.extend([&l.attn_norm, &l.ffn_norm]);
        }
        (m, v)
    }

    /// The Llama forward pass (llama2.c's `forward`, for a whole prompt at once):
    /// `x = embed(ids)`; per layer `x += Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))`
    /// then `x += Wdown · (silu(Wgate·norm(x)) ⊙ Wup·norm(x))`; logits = `Wout · norm(x)`.
    pub fn forward<O: Ops>(&self, o: &mut O, c: &Config, ids: &[u32], opts: &ForwardOptions) -> Recorded<O::Buf> {
        let n = ids.len();
        let (d, q_dim, kv_dim) = (c.n_embd, c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        let mut x = o.buffer("residual", n * d); // (n, d)
        o.embed(ids, &self.token_embd, 1.0, &mut x);
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
            o.rope(&mut cap.q, n, c.n_head, c.head_dim, c.rope_dim, c.layer_rope_base[i], c.rope_style);
            o.rope(&mut cap.k, n, c.n_head_kv, c.head_dim, c.rope_dim, c.layer_rope_base[i], c.rope_style);
            let shape = AttnShape { n, n_head: c.n_head, n_kv: c.n_head_kv, head_dim: c.head_dim, window: c.layer_window[i] };
            o.attention(shape, &cap.q, &cap.k, &cap.v, &mut attn, &mut cap.lse);
            ablate_heads(o, &mut attn, i, n, c.n_head, c.head_dim, opts);
            o.matmul(&attn, n, &l.attn_output, &mut proj);
            o.add_rms_norm(&mut x, &proj, &l.ffn_norm, c.rms_eps, &mut xn);

            o.matmul(&xn, n, &l.ffn_gate, &mut gate);
            o.matmul(&xn, n, &l.ffn_up, &mut up);
            o.gated(Act::Silu, &mut gate, &up);
            o.matmul(&gate, n, &l.ffn_down, &mut proj);
            let next_norm = self.layers.get(i + 1).map_or(&self.output_norm, |next| &next.attn_norm);
            o.add_rms_norm(&mut x, &proj, next_norm, c.rms_eps, &mut xn);
            if opts.capture_attention {
                layers.push(cap);
            } else {
                spare = Some(cap);
            }
        }
        let (logits, positions, argmax) = record_logits(o, &xn, n, d, self.output(), opts);
        Recorded { hidden: xn, logits, positions, argmax, layers }
    }
}

/// Descriptive facts for the UI and the CLI.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// `general.name` as written in the file (exports keep it).
    pub name: String,
    /// The name a reader knows the model by ("SmolLM2-135M-Instruct", "Gemma 3 270M"):
    /// [`crate::model::display_name`].
    pub display_name: String,
    pub architecture: String,
    pub file_bytes: usize,
    pub weight_bytes: usize,
    pub tensor_types: Vec<(String, usize)>,
    pub tied_output: bool,
    /// A 64-bit hash of the whole file ([`crate::model::content_hash`]): two files with the
    /// same name and size but other weights differ here.
    pub content_hash: u64,
}

pub(crate) fn find<'g>(g: &'g Gguf, name: &str) -> Result<&'g TensorInfo, ModelError> {
    g.tensor(name).ok_or_else(|| ModelError::MissingTensor(name.to_string()))
}

pub(crate) fn check_dims(t: &TensorInfo, expected: &[usize]) -> Result<(), ModelError> {
    let exp: Vec<u64> = expected.iter().map(|&d| d as u64).collect();
    if t.dims != exp {
        return Err(QuantError::WrongShape { name: t.name.clone(), expected: exp, found: t.dims.clone() }.into());
    }
    Ok(())
}

/// A 2-D weight `(rows, cols)`; GGUF stores it as dims `[cols, rows]`.
pub(crate) fn matrix(g: &Gguf, file: &Arc<Vec<u8>>, name: &str, rows: usize, cols: usize) -> Result<QTensor, ModelError> {
    let t = find(g, name)?;
    check_dims(t, &[cols, rows])?;
    Ok(QTensor::from_shared(name, t.ty, rows, cols, file.clone(), t.data_range.clone())?)
}

/// A 1-D vector (norm weights) as f32.
pub(crate) fn vector(g: &Gguf, bytes: &[u8], name: &str, len: usize) -> Result<Vector, ModelError> {
    let t = find(g, name)?;
    check_dims(t, &[len])?;
    if !matches!(t.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        return Err(QuantError::UnsupportedType { name: name.into(), ty: t.ty.name() }.into());
    }
    let mut out = vec![0.0; len];
    dequantize(t.ty, &bytes[t.data_range.clone()], &mut out);
    Ok(Vector { name: name.to_string(), data: out })
}

