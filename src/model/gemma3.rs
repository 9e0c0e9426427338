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

use super::arch::{Act, NormKind, RopeStyle};
use super::config::{Config, ModelError, Positions};
use super::gguf::Gguf;
use super::registry::{Ffn, Qkv, Spec};

pub const SPEC: Spec = Spec { arch: "gemma3", examples: "Gemma 3", norm: NormKind::Rms, positions: Positions::Rope, rope_style: RopeStyle::Halves, qkv: Qkv::Separate, qk_norm: true, post_norms: true, ffn: Ffn::Gated(Act::GeluTanh), scale_embeddings: true, configure };

/// Every sixth layer is global (attends to all earlier tokens).
pub const GLOBAL_EVERY: usize = 6;
/// RoPE base of the sliding (local) layers.
pub const LOCAL_ROPE_BASE: f32 = 10_000.0;

/// Fills the per-layer window and RoPE base from `gemma3.attention.sliding_window`; an untied
/// output is refused (the architecture ties it).
fn configure(g: &Gguf, c: &mut Config) -> Result<(), ModelError> {
    if g.tensor("output.weight").is_some() {
        return Err(ModelError::UnsupportedFeature("an untied output.weight in a Gemma 3 file".into()));
    }
    let key = "gemma3.attention.sliding_window";
    let w = g.get_u64(key)?;
    if w == 0 || w > c.context_length as u64 {
        return Err(ModelError::BadHyperParameter { key: key.into(), value: w.to_string(), why: "must be between 1 and the context length".into() });
    }
    for i in 0..c.n_layer {
        let global = i % GLOBAL_EVERY == GLOBAL_EVERY - 1;
        c.layer_window[i] = (!global).then_some(w as usize);
        c.layer_rope_base[i] = if global { c.rope_base } else { LOCAL_ROPE_BASE };
    }
    Ok(())
}
