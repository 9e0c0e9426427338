//! The articles' claims through the whole model, not one map: which keys a query may read
//! (StreamingLLM's cache policies) and what-ifs inside attention (no ÷√d, ÷√d_model, no mask,
//! no positions, no sink), each measured on the model's own predictions — log p of every next
//! token and the next-token distribution at the end.

use std::collections::BTreeMap;

use crate::analysis::report::{log_sum_exp, top_k};
use crate::backends::{Backend, EngineError, ForwardOptions, LogitsFor};
use crate::model::arch::{AttnChange, CachePolicy};
use crate::model::Model;

/// The pass that scores every next token under `policy` (and a what-if `change`).
pub fn prediction_options(policy: CachePolicy, change: Option<(AttnChange, usize, usize)>) -> ForwardOptions {
    ForwardOptions { capture_attention: false, logits_for: LogitsFor::All, policy, change, ..Default::default() }
}

/// log p(ids[i+1] | what position i sees) for i = 0..n−2, and the last position's logits.
fn predictions(b: &impl Backend, model: &Model, ids: &[u32], policy: CachePolicy, change: Option<(AttnChange, usize, usize)>) -> Result<(Vec<f32>, Vec<f32>), EngineError> {
    let out = b.forward(model, ids, &prediction_options(policy, change))?;
    let p = crate::analysis::heads::Predictions::of(ids, &out);
    Ok((p.logprob, p.last))
}

/// exp(−mean log p): the perplexity of predictions with log-probabilities `logp`.
pub fn perplexity(logp: &[f32]) -> f64 {
    if logp.is_empty() {
        return f64::NAN;
    }
    (-logp.iter().map(|&l| l as f64).sum::<f64>() / logp.len() as f64).exp()
}

/// One policy over a text.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PolicyRun {
    /// log p(ids[i+1]) for i = 0..n−2.
    pub logp: Vec<f32>,
    /// Perplexity of the predictions from position `window` on (where the policies differ).
    pub ppl_after_window: f64,
    pub ppl_all: f64,
}

/// `attnlab streaming --json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Streaming {
    pub ids: Vec<u32>,
    pub window: usize,
    pub sinks: usize,
    /// By policy name: `dense`, `window`, `sinks+window`, `no-key0`.
    pub policies: BTreeMap<String, PolicyRun>,
}

/// The four policies compared: dense, the last `window` keys, `sinks` first keys plus that
/// window (StreamingLLM), and key 0 hidden.
pub fn policies(window: usize, sinks: usize) -> [CachePolicy; 4] {
    [CachePolicy::Dense, CachePolicy::Window { window }, CachePolicy::SinksWindow { sinks, window }, CachePolicy::NoKey0]
}

/// Every policy of [`policies`] over `ids`, one pass each.
pub fn streaming(b: &impl Backend, model: &Model, ids: &[u32], window: usize, sinks: usize, mut on_policy: impl FnMut(&str)) -> Result<Streaming, EngineError> {
    if ids.len() < 2 {
        return Err(EngineError::EmptyInput);
    }
    let mut out = BTreeMap::new();
    for p in policies(window.max(1), sinks) {
        on_policy(p.name());
        let (logp, _) = predictions(b, model, ids, p, None)?;
        out.insert(p.name().to_string(), PolicyRun::of(logp, window));
    }
    Ok(Streaming { ids: ids.to_vec(), window, sinks, policies: out })
}

impl PolicyRun {
    /// A policy's predictions, `logp` (i = 0..n−2), scored from position `window` on and whole.
    pub fn of(logp: Vec<f32>, window: usize) -> PolicyRun {
        let after = &logp[window.min(logp.len())..];
        PolicyRun { ppl_after_window: perplexity(after), ppl_all: perplexity(&logp), logp }
    }
}

/// `attnlab whatif --json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WhatIfThrough {
    pub ids: Vec<u32>,
    pub what: AttnChange,
    /// The layers changed, as given (`all`, `L` or `A-B`).
    pub layers: String,
    /// The 64 largest last-position logits with the what-if, `[id, logit]`.
    pub last_logits_top: Vec<(u32, f32)>,
    /// The plain pass's, for comparison.
    pub last_logits_top_plain: Vec<(u32, f32)>,
    /// KL(plain ‖ what-if) of the next-token distribution at the last position, nats.
    pub kl_last: f64,
    /// log p(ids[i+1]) with the what-if minus plain, i = 0..n−2.
    pub delta_logprob: Vec<f32>,
}

/// Layers `all`, `L` or `A-B` of a model with `n_layer` layers, as (first, last).
pub fn parse_layers(s: &str, n_layer: usize) -> Result<(usize, usize), String> {
    let s = s.trim();
    let num = |x: &str| x.trim().parse::<usize>().map_err(|_| format!("layers: {x:?} is not a layer number"));
    let (a, b) = match s {
        "all" | "" => (0, n_layer.saturating_sub(1)),
        _ => match s.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(s)?, num(s)?),
        },
    };
    if a > b || b >= n_layer {
        return Err(format!("layers {s}: this model has layers 0 to {} (write all, L or A-B)", n_layer - 1));
    }
    Ok((a, b))
}

/// KL(p ‖ q) of the softmaxes of two logit rows, nats.
pub fn kl(p: &[f32], q: &[f32]) -> f64 {
    let (zp, zq) = (log_sum_exp(p) as f64, log_sum_exp(q) as f64);
    p.iter().zip(q).map(|(&a, &b)| {
        let lp = a as f64 - zp;
        lp.exp() * (lp - (b as f64 - zq))
    }).sum::<f64>().max(0.0)
}

/// The plain pass and the pass with `what` inside `layers`, compared.
pub fn whatif(b: &impl Backend, model: &Model, ids: &[u32], what: AttnChange, layers: &str) -> Result<WhatIfThrough, String> {
    if ids.len() < 2 {
        return Err("the text needs at least two tokens".into());
    }
    let (first, last) = parse_layers(layers, model.config.n_layer)?;
    let (plain_lp, plain_last) = predictions(b, model, ids, CachePolicy::Dense, None).map_err(|e| e.to_string())?;
    let (lp, last_logits) = predictions(b, model, ids, CachePolicy::Dense, Some((what, first, last))).map_err(|e| e.to_string())?;
    Ok(WhatIfThrough {
        ids: ids.to_vec(),
        what,
        layers: layers.trim().to_string(),
        last_logits_top: top_k(&last_logits, 64),
        last_logits_top_plain: top_k(&plain_last, 64),
        kl_last: kl(&plain_last, &last_logits),
        delta_logprob: lp.iter().zip(&plain_lp).map(|(a, b)| a - b).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_parse_and_refuse() {
        assert_eq!(parse_layers("all", 30), Ok((0, 29)));
        assert_eq!(parse_layers("15", 30), Ok((15, 15)));
        assert_eq!(parse_layers("3-7", 30), Ok((3, 7)));
        assert!(parse_layers("7-3", 30).is_err());
        assert!(parse_layers("30", 30).unwrap_err().contains("0 to 29"));
        assert!(parse_layers("x", 30).is_err());
    }

    #[test]
    fn perplexity_and_kl_by_hand() {
        assert!((perplexity(&[(0.5f32).ln(), (0.25f32).ln()]) - 8f64.sqrt()).abs() < 1e-6);
        let p = [0.0f32, 1.0, 2.0];
        assert!(kl(&p, &p).abs() < 1e-12);
        // KL([½, ½] ‖ [¼, ¾]) = ½ ln 2 + ½ ln(2/3).
        let (a, b) = ([0.0f32, 0.0], [0.0f32, 3f32.ln()]);
        assert!((kl(&a, &b) - (0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln())).abs() < 1e-6);
    }
}
