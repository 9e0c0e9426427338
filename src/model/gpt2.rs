//! GPT-2 (`general.architecture = "gpt2"`), the classic teaching model and the one common
//! model with true multi-head attention (as many key heads as query heads):
//! - learned positions: row `p` of `position_embd` (context_length, n_embd) is added to the
//!   embedding of the token at position `p` (no RoPE; a decoding step reads row `cache.len`);
//! - LayerNorm with bias (`attn_norm`, `ffn_norm`, `output_norm`: `.weight` and `.bias`),
//!   epsilon from `gpt2.attention.layer_norm_epsilon`;
//! - one fused projection `attn_qkv` (3·n_embd rows: q | k | v) with a bias, split at load;
//!   biases on `attn_output`, `ffn_up` and `ffn_down` too;
//! - a plain (ungated) FFN with GELU's tanh approximation (Hugging Face `gelu_new`);
//! - output tied to `token_embd` unless the file has `output.weight` (llama.cpp's converter
//!   may write one: both are read).

use super::arch::{Act, NormKind, RopeStyle};
use super::config::{Config, ModelError, Positions};
use super::gguf::Gguf;
use super::registry::{Ffn, Qkv, Spec};

pub const SPEC: Spec = Spec { arch: "gpt2", examples: "GPT-2", norm: NormKind::Layer, positions: Positions::Learned, rope_style: RopeStyle::Adjacent, qkv: Qkv::Fused, qk_norm: false, post_norms: false, ffn: Ffn::Plain(Act::GeluTanh), scale_embeddings: false, configure };

/// The learned table must exist (it bounds the context): refused by name before the weights.
fn configure(g: &Gguf, c: &mut Config) -> Result<(), ModelError> {
    match g.tensor("position_embd.weight") {
        None => Err(ModelError::MissingTensor("position_embd.weight (GPT-2's learned positions)".into())),
        Some(_) => {
            c.layer_rope_base.fill(0.0);
            Ok(())
        }
    }
}
