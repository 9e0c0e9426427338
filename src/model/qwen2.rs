//! Qwen2 and Qwen2.5 (`general.architecture = "qwen2"`): a Llama block with biases on the
//! query, key and value projections (`attn_q/k/v.bias`, read by the shared loader wherever a
//! file has them), and RoPE on the two halves of each head (ggml NEOX: llama.cpp's converter
//! does not permute Qwen's Q/K as it does Llama's). Tokenizer pre-tokenizer `qwen2`.

use super::arch::{Act, NormKind, RopeStyle};
use super::config::Positions;
use super::registry::{no_more, Ffn, Qkv, Spec};

pub const SPEC: Spec = Spec { arch: "qwen2", examples: "Qwen2, Qwen2.5", norm: NormKind::Rms, positions: Positions::Rope, rope_style: RopeStyle::Halves, qkv: Qkv::Separate, qk_norm: false, post_norms: false, ffn: Ffn::Gated(Act::Silu), scale_embeddings: false, configure: no_more };
