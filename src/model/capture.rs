//! What a forward pass keeps for attention analysis, and the exact quantities computed from it.
//! (Defined with the model, below the backends that fill it and the analysis that reads it.)
//!
//! Nothing n × n is stored. Per layer we keep the post-RoPE queries and keys, the values and,
//! per head, each query row's log-sum-exp (LSE) of its scaled scores. Any probability is then
//! recomputed exactly on request, and with V any head's output:
//!
//! `p[h, i, j] = exp(q[i, h] · k[j, h / group] / sqrt(head_dim) - lse[i, h])` for `j <= i`
//! (and `j > i - w` on a layer with a sliding window `w`; older keys get exactly 0).
//!
//! Memory: `n_layer × n × (q_dim + 2·kv_dim + n_head) × 4` bytes, linear in n (SmolLM2-135M:
//! 116 KB per token, so 4096 tokens fit in ~475 MB where the causal maps of all 270 heads
//! would need 9 GB; Gemma 3 270M: 111 KB per token).

use super::config::Config;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum AnalysisError {
    #[error("layer {0} does not exist (the model has {1} layers)")]
    BadLayer(usize, usize),
    #[error("head {0} does not exist (the model has {1} query heads)")]
    BadHead(usize, usize),
    #[error("query position {0} is past the last token ({1} tokens)")]
    BadQuery(usize, usize),
    #[error("block size must be at least 1")]
    BadBlock,
    #[error("this capture holds no values (V); run the forward pass with capture on")]
    NoValues,
}

/// One layer's capture.
#[derive(Debug, Clone)]
pub struct LayerTrace {
    pub q: Vec<f32>,   // (n, n_head * head_dim), after RoPE
    pub k: Vec<f32>,   // (n, n_head_kv * head_dim), after RoPE
    pub v: Vec<f32>,   // (n, n_head_kv * head_dim)
    pub lse: Vec<f32>, // (n, n_head): row i's log-sum-exp per head
}

/// The attention capture of one forward pass (identical from every backend).
#[derive(Debug, Clone)]
pub struct AttentionTrace {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_tokens: usize,
    /// Per layer: the sliding window (`None`: full causal attention).
    pub windows: Vec<Option<usize>>,
    /// Per layer: the RoPE base; with `rope_dim` and `rope_style`, enough to undo RoPE.
    pub rope_bases: Vec<f32>,
    pub rope_dim: usize,
    pub rope_style: super::arch::RopeStyle,
    pub layers: Vec<LayerTrace>,
}

/// How a row's scores are formed: as the model runs (scaled by 1/√d, causal with the layer's
/// window, RoPE applied), or with one part taken away — the articles' what-ifs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scoring {
    pub scaled: bool,
    pub masked: bool,
    pub positions: bool,
}

impl Scoring {
    pub const MODEL: Scoring = Scoring { scaled: true, masked: true, positions: true };
}

/// One head's rows under a [`Scoring`] ([`AttentionTrace::rows_with`]); keys with RoPE undone
/// are prepared once for all rows.
pub struct Rows<'t> {
    t: &'t AttentionTrace,
    layer: usize,
    head: usize,
    how: Scoring,
    /// Per key, with RoPE undone (only when `how.positions` is false).
    raw_keys: Vec<Vec<f32>>,
}

impl Rows<'_> {
    /// Row `i`: the model's probabilities (exactly, from the log-sum-exp) or the what-if's
    /// softmax. Masked rows have `i + 1` entries, exactly 0 outside the layer's window; unmasked
    /// rows have all n (every key, future and out-of-window ones too).
    pub fn row(&self, i: usize) -> Result<Vec<f32>, AnalysisError> {
        let t = self.t;
        if i >= t.n_tokens {
            return Err(AnalysisError::BadQuery(i, t.n_tokens));
        }
        let mut out = Vec::with_capacity(i + 1);
        if self.how == Scoring::MODEL {
            t.row_into(self.layer, self.head, i, &mut out);
            return Ok(out);
        }
        let hd = t.head_dim;
        let l = &t.layers[self.layer];
        let q = &l.q[i * t.n_head * hd + self.head * hd..][..hd];
        let g = self.head / (t.n_head / t.n_head_kv);
        let kv_row = t.n_head_kv * hd;
        let q = if self.how.positions { q.to_vec() } else { t.unrope(self.layer, q, i) };
        let scale = if self.how.scaled { 1.0 / (hd as f32).sqrt() } else { 1.0 };
        let (keys, first) = if self.how.masked { (0..i + 1, t.first_key(self.layer, i)) } else { (0..t.n_tokens, 0) };
        let scores: Vec<f32> = keys
            .map(|j| {
                if j < first {
                    return f32::NEG_INFINITY;
                }
                let k = if self.how.positions { &l.k[j * kv_row + g * hd..][..hd] } else { &self.raw_keys[j][..] };
                dot(&q, k) * scale
            })
            .collect();
        Ok(softmax(&scores))
    }
}

/// Softmax in f64 (exact enough to compare with any f32 engine); −∞ entries get exactly 0.
pub fn softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    if !m.is_finite() {
        return vec![0.0; x.len()];
    }
    let e: Vec<f64> = x.iter().map(|&v| (v as f64 - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| (v / z) as f32).collect()
}

/// Dot product with an f64 sum.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum::<f64>() as f32
}

/// Undoes RoPE at position `pos` on one head's vector (the inverse rotation, same angles).
pub fn unrope(x: &[f32], pos: usize, rope_dim: usize, base: f32, style: super::arch::RopeStyle) -> Vec<f32> {
    use super::arch::RopeStyle;
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

/// A head's map pooled over `block × block` tiles, for inputs too long to draw cell by cell.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PooledMap {
    pub n_tokens: usize,
    pub block: usize,
    /// Tiles per side: `ceil(n_tokens / block)`.
    pub side: usize,
    /// (side, side): largest probability in the tile.
    pub max: Vec<f32>,
    /// (side, side): mean over the tile's causal cells (`j <= i`); NaN above the diagonal.
    pub mean: Vec<f32>,
}

impl AttentionTrace {
    pub fn new(c: &Config, n_tokens: usize) -> Self {
        AttentionTrace { n_layer: c.n_layer, n_head: c.n_head, n_head_kv: c.n_head_kv, head_dim: c.head_dim, n_tokens, windows: c.layer_window.clone(), rope_bases: c.layer_rope_base.clone(), rope_dim: c.rope_dim, rope_style: c.rope_style, layers: Vec::with_capacity(c.n_layer) }
    }

    /// Appends the rows of the next tokens, one [`LayerTrace`] per layer holding only their
    /// rows (q, k, v and lse of positions `n_tokens ..`): a capture that grows as the model
    /// reads or writes token by token over its KV cache.
    pub fn extend(&mut self, rows: Vec<LayerTrace>) {
        assert_eq!(rows.len(), self.n_layer, "one set of rows per layer");
        let added = rows[0].lse.len() / self.n_head;
        if self.layers.is_empty() {
            self.layers = rows;
        } else {
            for (l, r) in self.layers.iter_mut().zip(rows) {
                l.q.extend(r.q);
                l.k.extend(r.k);
                l.v.extend(r.v);
                l.lse.extend(r.lse);
            }
        }
        self.n_tokens += added;
    }

    /// First key query `i` of `layer` sees.
    pub fn first_key(&self, layer: usize, i: usize) -> usize {
        match self.windows.get(layer).copied().flatten() {
            Some(w) => (i + 1).saturating_sub(w),
            None => 0,
        }
    }

    /// Bytes a capture of `n` tokens takes.
    pub fn bytes_for(c: &Config, n: usize) -> usize {
        let per_token = (c.n_head + 2 * c.n_head_kv) * c.head_dim + c.n_head;
        c.n_layer.saturating_mul(n).saturating_mul(per_token).saturating_mul(4)
    }

    fn check(&self, layer: usize, head: usize) -> Result<(), AnalysisError> {
        if layer >= self.layers.len() {
            return Err(AnalysisError::BadLayer(layer, self.layers.len()));
        }
        if head >= self.n_head {
            return Err(AnalysisError::BadHead(head, self.n_head));
        }
        Ok(())
    }

    /// Exact probabilities of query `i` over keys `keys` (clipped to what row `i` sees; keys
    /// outside the window get exactly 0): `exp(q·k/√d − lse)`. The one place a probability is
    /// recomputed from the capture.
    fn row_span_into(&self, layer: usize, head: usize, i: usize, keys: std::ops::Range<usize>, out: &mut Vec<f32>) {
        let hd = self.head_dim;
        let l = &self.layers[layer];
        let g = head / (self.n_head / self.n_head_kv);
        let q = &l.q[i * self.n_head * hd + head * hd..][..hd];
        let lse = l.lse[i * self.n_head + head];
        let scale = 1.0 / (hd as f32).sqrt();
        let kv_row = self.n_head_kv * hd;
        let first = self.first_key(layer, i);
        out.clear();
        out.extend((keys.start..keys.end.min(i + 1)).map(|j| {
            if j < first {
                return 0.0;
            }
            let k = &l.k[j * kv_row + g * hd..][..hd];
            let s: f32 = q.iter().zip(k).map(|(a, b)| a * b).sum();
            (s * scale - lse).exp()
        }));
    }

    /// Row `i` over keys `0..=i`.
    fn row_into(&self, layer: usize, head: usize, i: usize, out: &mut Vec<f32>) {
        self.row_span_into(layer, head, i, 0..i + 1, out)
    }

    /// One head's rows under `how` (the model's, or a what-if's).
    pub fn rows_with(&self, layer: usize, head: usize, how: Scoring) -> Result<Rows<'_>, AnalysisError> {
        self.check(layer, head)?;
        let raw_keys = if how.positions {
            Vec::new()
        } else {
            let (hd, kv_row, g) = (self.head_dim, self.n_head_kv * self.head_dim, head / (self.n_head / self.n_head_kv));
            (0..self.n_tokens).map(|j| self.unrope(layer, &self.layers[layer].k[j * kv_row + g * hd..][..hd], j)).collect()
        };
        Ok(Rows { t: self, layer, head, how, raw_keys })
    }

    /// `x` (one head's query or key at position `pos`) with the layer's RoPE undone (as is
    /// when the model has learned positions: `rope_dim` 0).
    pub fn unrope(&self, layer: usize, x: &[f32], pos: usize) -> Vec<f32> {
        unrope(x, pos, self.rope_dim, self.rope_bases.get(layer).copied().unwrap_or(10_000.0), self.rope_style)
    }

    /// Exact probabilities of query `i` over keys `0..=i`.
    pub fn row(&self, layer: usize, head: usize, i: usize) -> Result<Vec<f32>, AnalysisError> {
        self.check(layer, head)?;
        if i >= self.n_tokens {
            return Err(AnalysisError::BadQuery(i, self.n_tokens));
        }
        let mut out = Vec::with_capacity(i + 1);
        self.row_into(layer, head, i, &mut out);
        Ok(out)
    }

    /// Query `i`'s row in every head, layer-major (`n_head` rows per layer, each `i + 1` long):
    /// what "find the head" ranks and the all-heads view draws as bars.
    pub fn query_rows(&self, i: usize) -> Result<Vec<Vec<f32>>, AnalysisError> {
        (0..self.layers.len()).flat_map(|l| (0..self.n_head).map(move |h| (l, h))).map(|(l, h)| self.row(l, h, i)).collect()
    }

    /// Every row of one head (row `i` has `i + 1` entries).
    pub fn head_rows(&self, layer: usize, head: usize) -> Result<Vec<Vec<f32>>, AnalysisError> {
        (0..self.n_tokens).map(|i| self.row(layer, head, i)).collect()
    }

    /// Mean over query rows `queries` of the probability mass on keys `keys` (clipped to
    /// each row's causal range). An empty query set gives `None`.
    pub fn span_mass(&self, layer: usize, head: usize, queries: impl IntoIterator<Item = usize>, keys: std::ops::Range<usize>) -> Result<Option<f32>, AnalysisError> {
        self.check(layer, head)?;
        let (mut total, mut count) = (0f64, 0usize);
        let mut row = Vec::new();
        for i in queries {
            if i >= self.n_tokens {
                return Err(AnalysisError::BadQuery(i, self.n_tokens));
            }
            self.row_span_into(layer, head, i, keys.clone(), &mut row);
            total += row.iter().map(|&p| p as f64).sum::<f64>();
            count += 1;
        }
        Ok((count > 0).then(|| (total / count as f64) as f32))
    }

    /// Attention-sink mass: mean over query rows `1..n` of the mass on the first `first_k`
    /// keys (row 0 is excluded: it can only look at itself). `None` for a single token.
    pub fn sink_mass(&self, layer: usize, head: usize, first_k: usize) -> Result<Option<f32>, AnalysisError> {
        self.span_mass(layer, head, 1..self.n_tokens, 0..first_k)
    }

    /// `[layer][head]` sink mass on the first `first_k` keys.
    pub fn sink_mass_all(&self, first_k: usize) -> Vec<Vec<Option<f32>>> {
        (0..self.layers.len())
            .map(|l| (0..self.n_head).map(|h| self.sink_mass(l, h, first_k).ok().flatten()).collect())
            .collect()
    }

    /// The head's map pooled over `block × block` tiles (max and causal mean): the reference
    /// the GPU's pooled-map kernel is tested against.
    #[cfg(any(test, feature = "test-support"))]
    pub fn pooled(&self, layer: usize, head: usize, block: usize) -> Result<PooledMap, AnalysisError> {
        self.check(layer, head)?;
        if block == 0 {
            return Err(AnalysisError::BadBlock);
        }
        let n = self.n_tokens;
        let side = n.div_ceil(block);
        let mut max = vec![0f32; side * side];
        let mut sum = vec![0f64; side * side];
        let mut count = vec![0u32; side * side];
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            self.row_into(layer, head, i, &mut row);
            let ti = i / block;
            for (j, &p) in row.iter().enumerate() {
                let cell = ti * side + j / block;
                max[cell] = max[cell].max(p);
                sum[cell] += p as f64;
                count[cell] += 1;
            }
        }
        let mean = sum.iter().zip(&count).map(|(s, &c)| if c == 0 { f32::NAN } else { (s / c as f64) as f32 }).collect();
        Ok(PooledMap { n_tokens: n, block, side, max, mean })
    }

    /// Pooled so that the map is at most `max_side` tiles per side.
    #[cfg(any(test, feature = "test-support"))]
    pub fn pooled_to_fit(&self, layer: usize, head: usize, max_side: usize) -> Result<PooledMap, AnalysisError> {
        self.pooled(layer, head, self.n_tokens.div_ceil(max_side.max(1)).max(1))
    }
}
