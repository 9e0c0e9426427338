//! Backends run the forward pass of one [`Model`]; all of them return the same
//! [`ForwardOutput`], so analysis, the CLI and the UI never care which one ran.
//!
//! - [`cpu::CpuBackend`]: exact f32 forward on the CPU (threads natively, single-threaded
//!   on wasm32).
//! - [`gpu::GpuBackend`]: the same pass recorded into one WebGPU/wgpu command encoder.
//!
//! Neither holds a forward pass of its own: each implements [`crate::model::arch::Ops`] and
//! runs the architecture's pass (`Model::record`).

pub mod cpu;
pub mod engine;
pub mod gpu;

use crate::model::capture::AttentionTrace;
use crate::model::Model;
use ndarray::Array2;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum EngineError {
    #[error("the text is empty: there is nothing to run")]
    EmptyInput,
    #[error("the text has {n} tokens, more than this model's context of {max} tokens")]
    TooLong { n: usize, max: usize },
    #[error("capturing attention for {n} tokens needs about {needed_mib} MiB, more than the {limit_mib} MiB allowed; shorten the text")]
    OutOfMemoryBudget { n: usize, needed_mib: usize, limit_mib: usize },
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    BadTokenId { id: u32, vocab: usize },
    #[error("backend '{0}' is not available: {1}")]
    Unavailable(String, String),
    #[error("{0}")]
    Unsupported(String),
}

pub use crate::model::arch::{ForwardOptions, LogitsFor};

/// Milliseconds spent in each stage of one forward pass.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ForwardTimings {
    pub embed_ms: f64,
    pub layers_ms: f64,
    pub logits_ms: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone)]
pub struct ForwardOutput {
    pub backend: String,
    /// Positions whose logits are in `logits`, in order.
    pub logit_positions: Vec<usize>,
    pub logits: Array2<f32>, // (logit_positions.len(), vocab)
    /// L2 norm of the final hidden state (after `output_norm`) at the last position.
    pub final_hidden_norm_last: f32,
    pub trace: Option<AttentionTrace>,
    /// (n): the most likely next token at every position (`ForwardOptions::argmax_all`).
    pub argmax: Option<Vec<u32>>,
    /// Per layer with `ForwardOptions::lens`: the block's output at those positions through the
    /// final norm (positions, d).
    pub lens: Vec<Vec<f32>>,
    /// With `ForwardOptions::lens`: the residual stream at those positions, not normed — the
    /// embedding, then every block's output (`n_layer + 1` of (positions, d)).
    pub residual: Vec<Vec<f32>>,
    pub timings: ForwardTimings,
}

/// One pass over a KV cache (a prompt's prefill or one decoding step): the logits of the
/// positions asked for (relative to the pass) and, per layer when captured, this pass's rows
/// — queries (n, n_head·hd) and log-sum-exps (n, n_head) — which with the cache's keys give
/// every attention row of the new tokens.
#[derive(Debug, Clone)]
pub struct StepOutput {
    pub logit_positions: Vec<usize>,
    pub logits: Array2<f32>, // (logit_positions.len(), vocab)
    pub rows: Vec<(Vec<f32>, Vec<f32>)>,
}

/// Checks a pass of `n` new tokens onto a cache holding `past` of `capacity`.
pub fn validate_step(model: &Model, ids: &[u32], past: usize, capacity: usize) -> Result<(), EngineError> {
    if ids.is_empty() {
        return Err(EngineError::EmptyInput);
    }
    let (n, max) = (past + ids.len(), model.config.context_length.min(capacity));
    if n > max {
        return Err(EngineError::TooLong { n, max });
    }
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= model.config.vocab_size) {
        return Err(EngineError::BadTokenId { id, vocab: model.config.vocab_size });
    }
    Ok(())
}

impl ForwardOutput {
    /// Logits at `pos`, if that position was requested.
    pub fn logits_at(&self, pos: usize) -> Option<ndarray::ArrayView1<'_, f32>> {
        self.logit_positions.iter().position(|&p| p == pos).map(|i| self.logits.row(i))
    }
}

/// A way to run the model.
pub trait Backend {
    /// Short name: "cpu", "webgpu".
    fn name(&self) -> &'static str;
    /// Human description (threads, adapter name).
    fn describe(&self) -> String;
    fn forward(&self, model: &Model, ids: &[u32], opts: &ForwardOptions) -> Result<ForwardOutput, EngineError>;
}

/// Checks that do not depend on the backend.
pub fn validate_input(model: &Model, ids: &[u32], opts: &ForwardOptions) -> Result<(), EngineError> {
    let c = &model.config;
    if ids.is_empty() {
        return Err(EngineError::EmptyInput);
    }
    if ids.len() > c.context_length {
        return Err(EngineError::TooLong { n: ids.len(), max: c.context_length });
    }
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= c.vocab_size) {
        return Err(EngineError::BadTokenId { id, vocab: c.vocab_size });
    }
    if opts.capture_attention && (opts.policy != crate::model::arch::CachePolicy::Dense || opts.change.is_some()) {
        return Err(EngineError::Unsupported("attention rows are kept for the model's own attention only, not under a cache policy or a what-if: ask for logits alone".into()));
    }
    if opts.capture_attention {
        let needed = AttentionTrace::bytes_for(c, ids.len());
        if needed > opts.capture_budget_bytes {
            return Err(EngineError::OutOfMemoryBudget { n: ids.len(), needed_mib: needed >> 20, limit_mib: opts.capture_budget_bytes >> 20 });
        }
    }
    Ok(())
}
