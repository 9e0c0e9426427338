//! Inside one head: the computation of one query's attention row, step by step, exact from
//! the capture (post-RoPE Q and K, V, LSE), plus three what-ifs that break it on purpose.
//!
//! For query `i` of head `h` (KV head `g = h / group`), keys `j = 0..=i`:
//! `dot_j = q_i · k_j` (after RoPE) → `score_j = dot_j / √d` → `p = softmax(score)` (the map's
//! row; 0 outside a sliding window) → `output = Σ_j p_j v_j` (what enters the output projection).
//! What-ifs: `probs_unscaled = softmax(dot)` (no 1/√d), `probs_unmasked` = softmax of the
//! scores over all n keys (future ones included), `probs_no_rope` = softmax of the scaled dot
//! products of q and k with RoPE undone (as if positions were not encoded). Every row, the
//! model's and the what-ifs', comes from one place, [`AttentionTrace::rows_with`], so the
//! layer's sliding window holds in all of them except "no mask".

use crate::model::capture::{AnalysisError, AttentionTrace, Scoring};

/// `attnlab explain --json` and the page's "Inside this head" panel.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Explain {
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
    pub layer: usize,
    pub head: usize,
    pub kv_head: usize,
    pub query: usize,
    pub head_dim: usize,
    /// The layer's sliding window, if any.
    pub window: Option<usize>,
    /// For keys 0..=query.
    pub dot: Vec<f32>,
    pub scores: Vec<f32>,
    pub probs: Vec<f32>,
    pub value_norms: Vec<f32>,
    pub contrib_norms: Vec<f32>,
    /// (head_dim): Σ p_j v_j.
    pub output: Vec<f32>,
    /// Nats.
    pub entropy: f32,
    pub probs_unscaled: Vec<f32>,
    /// Over all n keys.
    pub probs_unmasked: Vec<f32>,
    pub probs_no_rope: Vec<f32>,
}

/// Entropy of a distribution, in nats.
pub fn entropy(p: &[f32]) -> f32 {
    -p.iter().filter(|&&v| v > 0.0).map(|&v| v as f64 * (v as f64).ln()).sum::<f64>() as f32
}

pub use crate::model::capture::{dot, softmax, unrope};

/// Tokenizes `text`, runs `backend` with capture, and explains `layer`/`head` at `query`
/// (default: the last token). The CLI's `explain` and the page share this.
pub fn explain_text(model: &crate::model::Model, backend: &dyn crate::backends::Backend, text: &str, layer: usize, head: usize, query: Option<usize>) -> Result<Explain, crate::analysis::report::ReportError> {
    let ids = model.tokenizer.encode(text);
    let opts = crate::backends::ForwardOptions { logits_for: crate::backends::LogitsFor::Last, ..Default::default() };
    let out = backend.forward(model, &ids, &opts)?;
    let t = out.trace.as_ref().expect("capture was requested");
    let mut e = explain(t, layer, head, query.unwrap_or(ids.len() - 1))?;
    e.tokens = ids.iter().map(|&id| model.tokenizer.token_text(id)).collect();
    e.ids = ids;
    Ok(e)
}

/// The step-by-step row of `query` in `layer`/`head` (ids and tokens left empty).
pub fn explain(t: &AttentionTrace, layer: usize, head: usize, query: usize) -> Result<Explain, AnalysisError> {
    let row = t.row(layer, head, query)?; // checks layer, head and query
    let l = &t.layers[layer];
    if l.v.is_empty() {
        return Err(AnalysisError::NoValues);
    }
    let hd = t.head_dim;
    let g = head / (t.n_head / t.n_head_kv);
    let kv_row = t.n_head_kv * hd;
    let q = &l.q[query * t.n_head * hd + head * hd..][..hd];
    let k = |j: usize| &l.k[j * kv_row + g * hd..][..hd];
    let v = |j: usize| &l.v[j * kv_row + g * hd..][..hd];
    let scale = 1.0 / (hd as f32).sqrt();
    let dots: Vec<f32> = (0..=query).map(|j| dot(q, k(j))).collect();
    let scores: Vec<f32> = dots.iter().map(|d| d * scale).collect();
    let value_norms: Vec<f32> = (0..=query).map(|j| dot(v(j), v(j)).sqrt()).collect();
    let contrib_norms: Vec<f32> = row.iter().zip(&value_norms).map(|(p, vn)| p * vn).collect();
    let mut output = vec![0f64; hd];
    for (j, p) in row.iter().enumerate() {
        for (o, x) in output.iter_mut().zip(v(j)) {
            *o += *p as f64 * *x as f64;
        }
    }
    let what_if = |w: WhatIf| t.rows_with(layer, head, w.scoring()).and_then(|r| r.row(query));
    let window = t.windows.get(layer).copied().flatten();
    Ok(Explain {
        ids: vec![],
        tokens: vec![],
        layer,
        head,
        kv_head: g,
        query,
        head_dim: hd,
        window,
        probs_unscaled: what_if(WhatIf::Unscaled)?,
        probs_unmasked: what_if(WhatIf::Unmasked)?,
        probs_no_rope: what_if(WhatIf::NoRope)?,
        entropy: entropy(&row),
        dot: dots,
        scores,
        value_norms,
        contrib_norms,
        output: output.into_iter().map(|x| x as f32).collect(),
        probs: row,
    })
}

/// A what-if applied to a whole map (the page's toggles; `none` is the model as it runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhatIf {
    #[default]
    None,
    /// Skip the 1/√d scaling.
    Unscaled,
    /// Remove the causal mask: every query sees all n keys.
    Unmasked,
    /// Ignore positions: RoPE undone on q and k.
    NoRope,
}

impl WhatIf {
    /// Its name in URLs and widget attributes (`whatif=`); None for the model as it runs.
    pub fn param(self) -> Option<&'static str> {
        match self {
            WhatIf::None => None,
            WhatIf::Unscaled => Some("unscaled"),
            WhatIf::Unmasked => Some("unmasked"),
            WhatIf::NoRope => Some("norope"),
        }
    }
    /// How it forms a row's scores.
    pub fn scoring(self) -> Scoring {
        let m = Scoring::MODEL;
        match self {
            WhatIf::None => m,
            WhatIf::Unscaled => Scoring { scaled: false, ..m },
            WhatIf::Unmasked => Scoring { masked: false, ..m },
            WhatIf::NoRope => Scoring { positions: false, ..m },
        }
    }
    /// From a `whatif=` value: `unscaled`, `unmasked` or `norope`; anything else is None.
    pub fn from_param(s: &str) -> Option<WhatIf> {
        [WhatIf::Unscaled, WhatIf::Unmasked, WhatIf::NoRope].into_iter().find(|w| w.param() == Some(s))
    }
}

/// How a map is shown: a what-if, and the attention sink hidden (rows renormalised without
/// key 0, so the rest of the pattern shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct MapView {
    #[serde(default)]
    pub what_if: WhatIf,
    #[serde(default)]
    pub hide_sink: bool,
}

impl MapView {
    pub fn is_plain(&self) -> bool {
        *self == MapView::default()
    }
}

/// Every row of one head under `view`: row i has i + 1 entries (n with the mask removed).
/// O(n²·d): for the page's toggles, not the forward pass.
pub fn map_rows(t: &AttentionTrace, layer: usize, head: usize, view: &MapView) -> Result<Vec<Vec<f32>>, AnalysisError> {
    let rows = t.rows_with(layer, head, view.what_if.scoring())?;
    let mut rows = (0..t.n_tokens).map(|i| rows.row(i)).collect::<Result<Vec<_>, _>>()?;
    if view.hide_sink {
        for row in rows.iter_mut().skip(1) {
            let rest = 1.0 - row[0] as f64;
            row[0] = 0.0;
            if rest > 0.0 {
                row.iter_mut().skip(1).for_each(|p| *p = (*p as f64 / rest) as f32);
            }
        }
    }
    Ok(rows)
}

/// Mean row entropy (rows i ≥ 1), nats.
pub fn mean_entropy(rows: &[Vec<f32>]) -> f32 {
    if rows.len() < 2 {
        return 0.0;
    }
    rows[1..].iter().map(|r| entropy(r) as f64).sum::<f64>() as f32 / (rows.len() - 1) as f32
}
