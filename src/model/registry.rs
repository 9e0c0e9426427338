//! Every architecture attnlab reads, keyed by `general.architecture`: one [`Spec`] each (in
//! its own file, with what is really its own), one line here. A file naming any other
//! architecture is refused with its name and this list.

use super::arch::{Act, NormKind, RopeStyle};
use super::config::{Config, ModelError, Positions};
use super::gguf::Gguf;
use super::{gemma3, gpt2, llama, qwen2, qwen3};

/// Query, key and value projections: three tensors, or one (`attn_qkv`) split at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qkv {
    Separate,
    Fused,
}

/// The feed-forward network: `down(act(gate(x)) ⊙ up(x))` or `down(act(up(x)))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ffn {
    Gated(Act),
    Plain(Act),
}

/// What kind of block an architecture builds. Biases are read wherever the file has them.
pub struct Spec {
    /// `general.architecture`.
    pub arch: &'static str,
    /// Models a reader knows it by (error messages, the README).
    pub examples: &'static str,
    pub norm: NormKind,
    pub positions: Positions,
    pub rope_style: RopeStyle,
    pub qkv: Qkv,
    /// RMSNorm of every query and key head before positions (`attn_q_norm`, `attn_k_norm`).
    pub qk_norm: bool,
    /// Norms after attention and after the FFN (`post_attention_norm`, `post_ffw_norm`).
    pub post_norms: bool,
    pub ffn: Ffn,
    /// Embeddings times √n_embd.
    pub scale_embeddings: bool,
    /// The architecture's own hyper-parameters and checks, after the shared ones are read.
    pub configure: fn(&Gguf, &mut Config) -> Result<(), ModelError>,
}

/// Nothing beyond the shared keys.
pub fn no_more(_: &Gguf, _: &mut Config) -> Result<(), ModelError> {
    Ok(())
}

pub const ARCHITECTURES: [&Spec; 5] = [&llama::SPEC, &gemma3::SPEC, &qwen2::SPEC, &qwen3::SPEC, &gpt2::SPEC];

pub fn find(arch: &str) -> Option<&'static Spec> {
    ARCHITECTURES.into_iter().find(|s| s.arch == arch)
}

/// The models an architecture name stands for ("Qwen2, Qwen2.5"), or the name itself.
pub fn family(arch: &str) -> &str {
    find(arch).map_or(arch, |s| s.examples)
}

/// `"llama" (SmolLM2, …), "gemma3" (…), …` for messages.
pub fn known() -> String {
    ARCHITECTURES.iter().map(|s| format!("\"{}\" ({})", s.arch, s.examples)).collect::<Vec<_>>().join(", ")
}
