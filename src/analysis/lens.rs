//! The logit lens: what the model would predict if it stopped after each block. Every block's
//! output (the residual stream) goes through the model's final norm and unembedding — the pass
//! (either backend) keeps the normalised outputs at the positions drawn
//! ([`ForwardOptions::lens`]); the unembedding is done here on the CPU kernels, only for those
//! positions (it is the costliest part: one vocabulary-wide product per layer and position).

use crate::analysis::report::{log_sum_exp, top_k};
use crate::backends::cpu::ops::matmul_qt;
use crate::backends::{Backend, EngineError, ForwardOptions, LogitsFor};
use crate::model::Model;

/// Candidates kept per layer and position.
pub const LENS_TOP: usize = 5;

/// Most positions one lens unembeds (a page's grid; the CLI asks for every position of a
/// short text). Each costs `n_layer × vocab × n_embd` multiply-adds: SmolLM2 0.85 G, Gemma 3 3 G.
pub const LENS_MAX_POSITIONS: usize = 64;

/// One layer of the lens.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LensLayer {
    /// Per position drawn, the [`LENS_TOP`] likeliest next tokens, likeliest first.
    pub top_ids: Vec<Vec<u32>>,
    pub top_probs: Vec<Vec<f32>>,
    /// Per position, the probability at this layer of the model's own final prediction there.
    pub p_final_top1: Vec<f32>,
}

/// `attnlab lens --json`; what the page's "Layers" tab draws.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lens {
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// The positions drawn (every position of a text of at most [`LENS_MAX_POSITIONS`] tokens,
    /// else the last ones).
    pub positions: Vec<usize>,
    /// The model's own prediction at each position drawn (the last layer's top-1).
    pub final_argmax: Vec<u32>,
    /// One per block, in order; the last equals the model's own output.
    pub layers: Vec<LensLayer>,
    /// Per position drawn, the first layer whose top-1 is the final prediction …
    pub first_top1: Vec<Option<usize>>,
    /// … and the first layer from which it stays top-1 to the end.
    pub settled_at: Vec<usize>,
}

/// The positions a lens over `n` tokens draws: all of them up to `max`, else the last `max`.
pub fn lens_positions(n: usize, max: usize) -> Vec<usize> {
    (n.saturating_sub(max)..n).collect()
}

/// The pass a lens reads: every block's output at `positions` kept, no attention capture.
pub fn lens_options(positions: &[usize]) -> ForwardOptions {
    ForwardOptions { capture_attention: false, logits_for: LogitsFor::Last, lens: Some(positions.to_vec()), ..Default::default() }
}

/// Refuses positions outside the text (or none).
pub fn check_positions(n: usize, positions: &[usize]) -> Result<(), EngineError> {
    if positions.is_empty() || positions.iter().any(|&p| p >= n) {
        return Err(EngineError::Unsupported(format!("the lens draws positions 0 to {} of this text", n.saturating_sub(1))));
    }
    Ok(())
}

/// Runs `ids` once with the lens kept and unembeds every block's output at `positions`.
pub fn logit_lens(b: &impl Backend, model: &Model, ids: &[u32], positions: &[usize]) -> Result<Lens, EngineError> {
    check_positions(ids.len(), positions)?;
    let out = b.forward(model, ids, &lens_options(positions))?;
    Ok(lens_of(model, ids, &out.lens, positions))
}

/// The lens from a pass's kept block outputs (`hidden[l]`: (positions, d), already through the
/// final norm).
pub fn lens_of(model: &Model, ids: &[u32], hidden: &[Vec<f32>], positions: &[usize]) -> Lens {
    let (d, w) = (model.config.n_embd, model.weights.output());
    let p = positions.len();
    let mut logits = vec![0.0f32; p * w.rows];
    // The last layer first: its top-1 is the final prediction every layer is read against.
    let n_layer = hidden.len();
    let mut layers: Vec<Option<LensLayer>> = vec![None; n_layer];
    let mut top1 = vec![vec![0u32; p]; n_layer];
    let mut final_argmax: Vec<u32> = Vec::new();
    for l in std::iter::once(n_layer - 1).chain(0..n_layer - 1) {
        assert_eq!(hidden[l].len(), p * d, "the pass kept the lens's positions");
        matmul_qt(&hidden[l], p, w, &mut logits);
        let mut layer = LensLayer { top_ids: Vec::with_capacity(p), top_probs: Vec::with_capacity(p), p_final_top1: Vec::with_capacity(p) };
        for (i, row) in logits.chunks_exact(w.rows).enumerate() {
            let z = log_sum_exp(row);
            let top = top_k(row, LENS_TOP);
            if l == n_layer - 1 {
                final_argmax.push(top[0].0);
            }
            top1[l][i] = top[0].0;
            layer.top_ids.push(top.iter().map(|t| t.0).collect());
            layer.top_probs.push(top.iter().map(|t| (t.1 - z).exp()).collect());
            layer.p_final_top1.push((row[final_argmax[i] as usize] - z).exp());
        }
        layers[l] = Some(layer);
    }
    let first_top1 = (0..p).map(|i| (0..n_layer).find(|&l| top1[l][i] == final_argmax[i])).collect();
    let settled_at = (0..p).map(|i| (0..n_layer).rev().take_while(|&l| top1[l][i] == final_argmax[i]).last().unwrap_or(n_layer)).collect();
    Lens {
        ids: ids.to_vec(),
        tokens: ids.iter().map(|&id| model.tokenizer.token_text(id)).collect(),
        positions: positions.to_vec(),
        final_argmax,
        layers: layers.into_iter().map(|l| l.expect("every layer read")).collect(),
        first_top1,
        settled_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_all_or_the_last() {
        assert_eq!(lens_positions(3, 64), vec![0, 1, 2]);
        assert_eq!(lens_positions(70, 64), (6..70).collect::<Vec<_>>());
    }
}
