//! What every architecture shares: its hyper-parameters read from GGUF metadata, and the
//! errors a file can be refused with (each names the key or tensor at fault).

pub use super::arch::RopeStyle;
use super::arch::NormKind;
use super::gguf::{Gguf, GgufError};
use super::quant::QuantError;
use super::tokenizer::TokenizerError;

/// How token positions enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Positions {
    /// Rotary embedding of q and k in every layer (`rope.*` keys).
    Rope,
    /// A learned table `position_embd` (context_length, n_embd) added to the embeddings (GPT-2).
    Learned,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read the GGUF file: {0}")]
    Gguf(#[from] GgufError),
    #[error("cannot build the tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error("architecture '{}' is not supported: attnlab reads general.architecture = {}", .0, super::registry::known())]
    UnknownArchitecture(String),
    #[error("tensor '{0}' is missing")]
    MissingTensor(String),
    #[error("hyper-parameter '{key}' = {value} cannot be run: {why}")]
    BadHyperParameter { key: String, value: String, why: String },
    #[error("this model uses {0}, which attnlab does not run")]
    UnsupportedFeature(String),
}

/// Hyper-parameters shared by every architecture, each from the GGUF key named beside it
/// (`{arch}` = `general.architecture`), and what kind of block the architecture builds
/// (from its [`super::registry::Spec`]). Per-layer facts (window, RoPE base) are filled by the
/// architecture's `configure`.
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
    /// `{arch}.rope.dimension_count` (defaults to `head_dim`; 0 with learned positions)
    pub rope_dim: usize,
    /// `{arch}.rope.freq_base` (defaults to 10000)
    pub rope_base: f32,
    /// `{arch}.attention.layer_norm_rms_epsilon` (RMSNorm) or `{arch}.attention.layer_norm_epsilon`
    pub norm_eps: f32,
    /// RMSNorm or LayerNorm.
    pub norm: NormKind,
    /// Rotary or learned (`position_embd`) positions.
    pub positions: Positions,
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

impl Config {
    /// Reads the keys every architecture has; `head_dim` comes from
    /// `{arch}.attention.key_length` when present (Gemma: 256 with a 640-wide stream).
    pub fn from_gguf(g: &Gguf, arch: &str, norm: NormKind, positions: Positions, rope_style: RopeStyle) -> Result<Self, ModelError> {
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
            _ if positions == Positions::Learned => 0,
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
        let eps_key = key(match norm {
            NormKind::Rms => "attention.layer_norm_rms_epsilon",
            NormKind::Layer => "attention.layer_norm_epsilon",
        });
        let norm_eps = g.get_f32(&eps_key)?;
        if !(norm_eps.is_finite() && norm_eps > 0.0) {
            return Err(ModelError::BadHyperParameter { key: eps_key, value: norm_eps.to_string(), why: "must be finite and > 0".into() });
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
            norm_eps,
            norm,
            positions,
            context_length,
            vocab_size,
            layer_window: vec![None; n_layer],
            layer_rope_base: vec![rope_base; n_layer],
            rope_style,
        })
    }

    /// Width of a query row (`n_head · head_dim`) and of a key or value row (`n_head_kv · head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Query heads per KV head.
    pub fn group_size(&self) -> usize {
        self.n_head / self.n_head_kv
    }
}

