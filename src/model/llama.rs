//! The Llama architecture as stored in GGUF (`general.architecture = "llama"`: SmolLM2,
//! TinyLlama, Llama 3.2): RMSNorm, SwiGLU, RoPE, grouped-query attention, no biases — the
//! shared block with nothing of its own, so any Llama-family file loads without code changes.
//!
//! Conventions inherited from llama.cpp's converter (`convert_hf_to_gguf.py`, `LlamaModel`):
//! - Q and K weights are permuted so that RoPE rotates *adjacent* pairs `(x[2i], x[2i+1])`
//!   (ggml `GGML_ROPE_TYPE_NORM`), not the two halves of the head as Hugging Face's
//!   `rotate_half` does; attention scores are identical either way.
//! - Without an `output.weight` tensor the output projection is tied to `token_embd.weight`.

use super::arch::{Act, NormKind, RopeStyle};
use super::config::{Config, ModelError, Positions};
use super::gguf::Gguf;
use super::registry::{Ffn, Qkv, Spec};

pub const SPEC: Spec = Spec { arch: "llama", examples: "SmolLM2, TinyLlama, Llama 3.2", norm: NormKind::Rms, positions: Positions::Rope, rope_style: RopeStyle::Adjacent, qkv: Qkv::Separate, qk_norm: false, post_norms: false, ffn: Ffn::Gated(Act::Silu), scale_embeddings: false, configure };

/// Llama 3.1-style per-frequency RoPE factors are not run.
fn configure(g: &Gguf, _: &mut Config) -> Result<(), ModelError> {
    match g.tensor("rope_freqs.weight") {
        Some(_) => Err(ModelError::UnsupportedFeature("per-frequency RoPE factors (rope_freqs.weight, Llama 3.1 style)".into())),
        None => Ok(()),
    }
}
