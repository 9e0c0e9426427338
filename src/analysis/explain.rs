//! Inside one head: the computation of one query's attention row, step by step, exact from
//! the capture (post-RoPE Q and K, V, LSE), plus three what-ifs that break it on purpose.
//!
//! For query `i` of head `h` (KV head `g = h / group`), keys `j = 0..=i`:
//! `dot_j = q_i · k_j` (after RoPE) → `score_j = dot_j / √d` → `p = softmax(score)` (the map's
//! row; 0 outside a sliding window) → `output = Σ_j p_j v_j` (what enters the output projection).
//! What-ifs: `probs_unscaled = softmax(dot)` (no 1/√d), `probs_unmasked` = softmax of the
//! scores over all n keys (future ones included), `probs_no_rope` = softmax of the scaled dot
//! products of q and k with RoPE undone (as if positions were not encoded).

use crate::model::arch::RopeStyle;
use crate::model::capture::{AnalysisError, AttentionTrace};

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

/// Softmax in f64 (exact enough to compare with any f32 engine).
pub fn softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    if !m.is_finite() {
        return vec![0.0; x.len()];
    }
    let e: Vec<f64> = x.iter().map(|&v| (v as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| (v / z) as f32).collect()
}

/// Entropy of a distribution, in nats.
pub fn entropy(p: &[f32]) -> f32 {
    -p.iter().filter(|&&v| v > 0.0).map(|&v| v as f64 * (v as f64).ln()).sum::<f64>() as f32
}

/// Undoes RoPE at position `pos` on one head's vector (the inverse rotation, same angles).
pub fn unrope(x: &[f32], pos: usize, rope_dim: usize, base: f32, style: RopeStyle) -> Vec<f32> {
    let mut out = x.to_vec();
    let half = rope_dim / 2;
    for i in 0..half {
        let f = 1.0 / base.powf((2 * i) as f32 / rope_dim as f32);
        let (sin, cos) = (pos as f32 * f).sin_cos();
        let (a, b) = match style {
            RopeStyle::Adjacent => (2 * i, 2 * i + 1),
            RopeStyle::Halves => (i, i + half),
        };
        let (xa, xb) = (x[a], x[b]);
        out[a] = xa * cos + xb * sin;
        out[b] = -xa * sin + xb * cos;
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum::<f64>() as f32
}

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
    let (hd, n) = (t.head_dim, t.n_tokens);
    let g = head / (t.n_head / t.n_head_kv);
    let kv_row = t.n_head_kv * hd;
    let q = &l.q[query * t.n_head * hd + head * hd..][..hd];
    let k = |j: usize| &l.k[j * kv_row + g * hd..][..hd];
    let v = |j: usize| &l.v[j * kv_row + g * hd..][..hd];
    let scale = 1.0 / (hd as f32).sqrt();
    let dots_all: Vec<f32> = (0..n).map(|j| dot(q, k(j))).collect();
    let dots = dots_all[..=query].to_vec();
    let scores: Vec<f32> = dots.iter().map(|d| d * scale).collect();
    let value_norms: Vec<f32> = (0..=query).map(|j| dot(v(j), v(j)).sqrt()).collect();
    let contrib_norms: Vec<f32> = row.iter().zip(&value_norms).map(|(p, vn)| p * vn).collect();
    let mut output = vec![0f64; hd];
    for (j, p) in row.iter().enumerate() {
        for (o, x) in output.iter_mut().zip(v(j)) {
            *o += *p as f64 * *x as f64;
        }
    }
    // RoPE undone on both sides: the dot products of the raw projections.
    let (base, rd, style) = (t.rope_bases.get(layer).copied().unwrap_or(10_000.0), t.rope_dim, t.rope_style);
    let q_raw = unrope(q, query, rd, base, style);
    let no_rope: Vec<f32> = (0..=query).map(|j| dot(&q_raw, &unrope(k(j), j, rd, base, style)) * scale).collect();
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
        probs_unscaled: softmax(&dots),
        probs_unmasked: softmax(&dots_all.iter().map(|d| d * scale).collect::<Vec<_>>()),
        probs_no_rope: softmax(&no_rope),
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
    let n = t.n_tokens;
    let mut rows = match view.what_if {
        WhatIf::None => t.head_rows(layer, head)?,
        _ => {
            t.row(layer, head, 0)?; // checks layer and head
            let l = &t.layers[layer];
            let hd = t.head_dim;
            let g = head / (t.n_head / t.n_head_kv);
            let kv_row = t.n_head_kv * hd;
            let scale = 1.0 / (hd as f32).sqrt();
            let (base, rd, style) = (t.rope_bases.get(layer).copied().unwrap_or(10_000.0), t.rope_dim, t.rope_style);
            let q = |i: usize| &l.q[i * t.n_head * hd + head * hd..][..hd];
            let k = |j: usize| &l.k[j * kv_row + g * hd..][..hd];
            let raw_k: Vec<Vec<f32>> = if view.what_if == WhatIf::NoRope { (0..n).map(|j| unrope(k(j), j, rd, base, style)).collect() } else { vec![] };
            (0..n)
                .map(|i| {
                    let logits: Vec<f32> = match view.what_if {
                        WhatIf::Unscaled => (0..=i).map(|j| dot(q(i), k(j))).collect(),
                        WhatIf::Unmasked => (0..n).map(|j| dot(q(i), k(j)) * scale).collect(),
                        _ => {
                            let qr = unrope(q(i), i, rd, base, style);
                            (0..=i).map(|j| dot(&qr, &raw_k[j]) * scale).collect()
                        }
                    };
                    softmax(&logits)
                })
                .collect()
        }
    };
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
