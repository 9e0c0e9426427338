//! Qwen3 (`general.architecture = "qwen3"`): a Llama block without biases, with QK-norm
//! (RMSNorm of every query and key head before RoPE: `attn_q_norm`, `attn_k_norm`), a head
//! size of its own (`qwen3.attention.key_length`, 128 on Qwen3-0.6B's 1 024-wide stream: not
//! hidden / heads) and RoPE on the two halves of each head.

use super::arch::{Act, NormKind, RopeStyle};
use super::config::Positions;
use super::registry::{no_more, Ffn, Qkv, Spec};

pub const SPEC: Spec = Spec { arch: "qwen3", examples: "Qwen3", norm: NormKind::Rms, positions: Positions::Rope, rope_style: RopeStyle::Halves, qkv: Qkv::Separate, qk_norm: true, post_norms: false, ffn: Ffn::Gated(Act::Silu), scale_embeddings: false, configure: no_more };
