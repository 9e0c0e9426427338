//! The operations a transformer forward pass is written in, once for every architecture
//! (`block.rs`), and executed by every backend: the CPU runs each call as it
//! comes, the GPU records it into its single command encoder. A backend implements [`Ops`];
//! an architecture never knows which one runs it.
//!
//! What a pass produces is a [`Recorded`]: the final normalised hidden states, the logits of
//! the positions asked for, and per layer the attention capture (post-RoPE Q and K, each row's
//! log-sum-exp) — still in the backend's own buffers until the backend reads them out.

use super::quant::QTensor;

/// A 1-D weight (norm scales) as f32, named like its GGUF tensor.
#[derive(Debug, Clone)]
pub struct Vector {
    pub name: String,
    pub data: Vec<f32>,
}

impl std::ops::Deref for Vector {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.data
    }
}

/// The gate's activation in a gated feed-forward network: `act(gate) * up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// SwiGLU (Llama): `silu(g) = g / (1 + e^-g)`.
    Silu,
    /// GeGLU with the tanh approximation of GELU (Gemma): `0.5 g (1 + tanh(√(2/π)(g + 0.044715 g³)))`.
    GeluTanh,
}

/// Which normalisation a block uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum NormKind {
    /// `x / √(mean(x²) + ε) · w (+ b)` (Llama, Gemma, Qwen).
    Rms,
    /// `(x − mean) / √(var + ε) · w + b` (GPT-2).
    Layer,
}

/// A norm's weights: scale, optional bias, epsilon; names as in the GGUF (`blk.N.attn_norm`).
#[derive(Debug, Clone)]
pub struct Norm {
    pub kind: NormKind,
    pub w: Vector,
    pub b: Option<Vector>,
    pub eps: f32,
}

impl Norm {
    /// Width of the rows it normalises.
    pub fn width(&self) -> usize {
        self.w.len()
    }
}

/// Which dimensions RoPE rotates together within a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RopeStyle {
    /// `(x[2i], x[2i+1])`: ggml NORM, what llama.cpp's converter permutes Llama's Q/K into.
    #[default]
    Adjacent,
    /// `(x[i], x[i + rope_dim/2])`: ggml NEOX, Hugging Face `rotate_half` (Gemma is stored so).
    Halves,
}

/// Which cached keys every query may read, beside the causal mask and each layer's own
/// window: StreamingLLM's cache policies and a hidden sink. Positions stay the tokens' own
/// (no re-indexing); a window narrows a sliding layer's window, never widens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum CachePolicy {
    /// Every earlier key.
    #[default]
    Dense,
    /// The last `window` keys (the query's own included).
    Window { window: usize },
    /// The first `sinks` keys and the last `window`.
    SinksWindow { sinks: usize, window: usize },
    /// Key 0 hidden from every query after the first.
    NoKey0,
}

impl CachePolicy {
    /// The policy named `name` ([`CachePolicy::name`]) with this window and these sinks.
    pub fn parse(name: &str, window: usize, sinks: usize) -> Option<CachePolicy> {
        Some(match name.trim() {
            "dense" => CachePolicy::Dense,
            "window" => CachePolicy::Window { window },
            "sinks+window" => CachePolicy::SinksWindow { sinks, window },
            "no-key0" => CachePolicy::NoKey0,
            _ => return None,
        })
    }
    /// The policy's name in reports (`dense`, `window`, `sinks+window`, `no-key0`).
    pub fn name(&self) -> &'static str {
        match self {
            CachePolicy::Dense => "dense",
            CachePolicy::Window { .. } => "window",
            CachePolicy::SinksWindow { .. } => "sinks+window",
            CachePolicy::NoKey0 => "no-key0",
        }
    }
}

/// A change to attention inside chosen layers — the articles' what-ifs, through the whole
/// model rather than one map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttnChange {
    /// Scores not divided by √head_dim.
    Unscaled,
    /// Divided by √d_model instead of √head_dim (a common bug).
    Dmodel,
    /// No causal mask: every key visible, future ones too.
    Unmasked,
    /// Positions (RoPE) not applied to q and k.
    Norope,
    /// Key 0 hidden from every query after the first.
    Nosink,
}

impl AttnChange {
    pub const ALL: [AttnChange; 5] = [AttnChange::Unscaled, AttnChange::Dmodel, AttnChange::Unmasked, AttnChange::Norope, AttnChange::Nosink];
    pub fn name(&self) -> &'static str {
        match self {
            AttnChange::Unscaled => "unscaled",
            AttnChange::Dmodel => "dmodel",
            AttnChange::Unmasked => "unmasked",
            AttnChange::Norope => "norope",
            AttnChange::Nosink => "nosink",
        }
    }
    pub fn parse(s: &str) -> Option<AttnChange> {
        AttnChange::ALL.into_iter().find(|c| c.name() == s.trim())
    }
}

/// One attention call's shape. Query head `h` reads KV head `h / (n_head / n_kv)`.
/// The `n` queries are the positions `past .. past + n`; the keys and values are positions
/// `0 .. past + n` (a KV cache holding `past` earlier tokens, then the new ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AttnShape {
    /// New query rows.
    pub n: usize,
    /// Cached positions before the first query (0 for a whole prompt at once).
    pub past: usize,
    pub n_head: usize,
    pub n_kv: usize,
    pub head_dim: usize,
    /// Sliding window: query `i` sees keys `i + 1 - w ..= i` only (`None`: all of `0..=i`).
    pub window: Option<usize>,
    /// Which keys a query reads besides (a cache policy, a what-if); default: the causal mask.
    pub keys: KeyRule,
}

/// Changes to which keys a query reads and how its scores are scaled (see [`CachePolicy`] and
/// [`AttnChange`]); the default changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KeyRule {
    /// Keys `0 .. sinks` stay visible whatever the window.
    pub sinks: usize,
    /// Key 0 hidden from every query after the first.
    pub hide_first: bool,
    /// No causal mask: every key `0 .. past + n`, future ones too (no window either).
    pub unmasked: bool,
    /// Scores divided by √score_dim instead of √head_dim (1: not scaled).
    pub score_dim: Option<usize>,
}

impl KeyRule {
    /// The rule of layer `layer` under `opts` (the policy in every layer, the what-if in its
    /// layers), with the layer's own window narrowed by a policy's window.
    pub fn of(opts: &ForwardOptions, layer: usize, window: Option<usize>, n_embd: usize) -> (KeyRule, Option<usize>) {
        let mut rule = KeyRule::default();
        let narrow = |w: usize| Some(window.map_or(w, |lw| lw.min(w)));
        let window = match opts.policy {
            CachePolicy::Dense => window,
            CachePolicy::Window { window: w } => narrow(w),
            CachePolicy::SinksWindow { sinks, window: w } => {
                rule.sinks = sinks;
                narrow(w)
            }
            CachePolicy::NoKey0 => {
                rule.hide_first = true;
                window
            }
        };
        match opts.change {
            Some((what, a, b)) if (a..=b).contains(&layer) => match what {
                AttnChange::Unscaled => rule.score_dim = Some(1),
                AttnChange::Dmodel => rule.score_dim = Some(n_embd),
                AttnChange::Unmasked => rule.unmasked = true,
                AttnChange::Nosink => rule.hide_first = true,
                AttnChange::Norope => {}
            },
            _ => {}
        }
        (rule, window)
    }
}

/// Causal (query, key) pairs of n tokens when each query sees at most `w` keys (all earlier
/// keys with `None`): Σᵢ min(i + 1, w), in closed form and in f64 (no overflow on wasm32).
pub fn causal_pairs(n: usize, w: Option<usize>) -> f64 {
    let n = n as f64;
    match w.map(|w| w as f64) {
        Some(w) if n > w => w * (w + 1.0) / 2.0 + (n - w) * w,
        _ => n * (n + 1.0) / 2.0,
    }
}

impl AttnShape {
    pub fn group(&self) -> usize {
        self.n_head / self.n_kv
    }
    /// Keys (and values) the call reads: `past + n`.
    pub fn kv_len(&self) -> usize {
        self.past + self.n
    }
    /// First key the query at position `i` reads (positions count from the first cached
    /// token); keys between it and [`AttnShape::last_key`] may still be hidden
    /// ([`AttnShape::visible`]).
    pub fn first_key(&self, i: usize) -> usize {
        match self.window {
            _ if self.keys.unmasked || self.keys.sinks > 0 => 0,
            Some(w) => (i + 1).saturating_sub(w),
            None => 0,
        }
    }
    /// Last key the query at position `i` reads: itself, or every key without the mask.
    pub fn last_key(&self, i: usize) -> usize {
        if self.keys.unmasked {
            self.kv_len() - 1
        } else {
            i
        }
    }
    /// Whether the query at position `i` reads key `j`.
    pub fn visible(&self, i: usize, j: usize) -> bool {
        if self.keys.unmasked {
            return j < self.kv_len();
        }
        let in_window = self.window.is_none_or(|w| i + 1 - j.min(i + 1) <= w);
        j <= i && (in_window || j < self.keys.sinks) && !(self.keys.hide_first && j == 0 && i > 0)
    }
    /// Whether some key between [`AttnShape::first_key`] and [`AttnShape::last_key`] is hidden
    /// (the kernels then mask key by key).
    pub fn masks_inside(&self) -> bool {
        self.keys.hide_first || (self.keys.sinks > 0 && self.window.is_some())
    }
    /// What scores are multiplied by: 1/√head_dim, or the what-if's scale.
    pub fn scale(&self) -> f32 {
        1.0 / (self.keys.score_dim.unwrap_or(self.head_dim) as f32).sqrt()
    }
}

/// Which positions get logits (the `vocab`-wide projection is the costliest single matmul,
/// so prefill benchmarks ask only for the last one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogitsFor {
    Last,
    All,
    Positions(Vec<usize>),
}

impl LogitsFor {
    /// The positions (in order, those `< n`).
    pub fn positions(&self, n: usize) -> Vec<usize> {
        match self {
            LogitsFor::Last => vec![n - 1],
            LogitsFor::All => (0..n).collect(),
            LogitsFor::Positions(p) => p.iter().copied().filter(|&p| p < n).collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ForwardOptions {
    /// Keep per-layer Q, K and each row's log-sum-exp for attention analysis.
    pub capture_attention: bool,
    pub logits_for: LogitsFor,
    /// Refuse inputs whose capture would exceed this many bytes.
    pub capture_budget_bytes: usize,
    /// Also the most likely next token at every position ([`Ops::matmul_argmax`]: the
    /// (n, vocab) logits never exist at once).
    pub argmax_all: bool,
    /// Heads knocked out: their slice of the attention output is set to zero at every
    /// position, before the output projection (`(layer, head)` pairs).
    pub ablate: Vec<(usize, usize)>,
    /// Which keys each query may read (every layer).
    pub policy: CachePolicy,
    /// A what-if inside layers `first ..= last`.
    pub change: Option<(AttnChange, usize, usize)>,
    /// Keep every block's output at these positions through the final norm (the logit lens's
    /// input: (positions, d) per layer), and the residual stream there as it is.
    pub lens: Option<Vec<usize>>,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions { capture_attention: true, logits_for: LogitsFor::All, capture_budget_bytes: 2 << 30, argmax_all: false, ablate: Vec::new(), policy: CachePolicy::Dense, change: None, lens: None }
    }
}

/// What a backend must provide. Buffers are flat f32 arrays; shapes are in each call. Unless
/// a call says otherwise it reads and writes whole buffers.
pub trait Ops {
    type Buf;
    /// A zeroed buffer of `len` values.
    fn buffer(&mut self, label: &'static str, len: usize) -> Self::Buf;
    /// out (n, d) = rows `ids` of `table` (vocab, d), times `scale`.
    fn embed(&mut self, ids: &[u32], table: &QTensor, scale: f32, out: &mut Self::Buf);
    /// out (n, w.rows) = x (n, w.cols) · wᵀ.
    fn matmul(&mut self, x: &Self::Buf, n: usize, w: &QTensor, out: &mut Self::Buf);
    /// x (n, b.len()) += b in every row.
    fn add_bias(&mut self, x: &mut Self::Buf, b: &Vector);
    /// x += y.
    fn add(&mut self, x: &mut Self::Buf, y: &Self::Buf);
    /// out = the norm of each `norm.width()`-wide row of x.
    fn norm(&mut self, norm: &Norm, x: &Self::Buf, out: &mut Self::Buf);
    /// The same in place (post-norms, per-head QK-norm).
    fn norm_in_place(&mut self, norm: &Norm, x: &mut Self::Buf);
    /// x += y, then out = norm(x): a residual add and the norm that follows it, in one pass
    /// where the backend can fuse them.
    fn add_norm(&mut self, x: &mut Self::Buf, y: &Self::Buf, norm: &Norm, out: &mut Self::Buf);
    /// RoPE in place on x (n, heads · head_dim), row p at position `start + p`.
    #[allow(clippy::too_many_arguments)]
    fn rope(&mut self, x: &mut Self::Buf, n: usize, heads: usize, head_dim: usize, rope_dim: usize, base: f32, style: RopeStyle, start: usize);
    /// Causal (optionally windowed) softmax(q·kᵀ/√d)·v of the `s.n` new queries q (n, n_head·hd)
    /// over the first `s.kv_len()` rows of k and v (·, n_kv·hd): out (n, n_head·hd) and each
    /// row's log-sum-exp lse (n, n_head).
    fn attention(&mut self, s: AttnShape, q: &Self::Buf, k: &Self::Buf, v: &Self::Buf, out: &mut Self::Buf, lse: &mut Self::Buf);
    /// gate = act(gate) * up.
    fn gated(&mut self, act: Act, gate: &mut Self::Buf, up: &Self::Buf);
    /// x = act(x) (a plain, ungated feed-forward network).
    fn activate(&mut self, act: Act, x: &mut Self::Buf);
    /// Zeroes heads `heads` (each `head_dim` wide) in every row of x (n, n_head · head_dim).
    fn zero_heads(&mut self, x: &mut Self::Buf, n: usize, n_head: usize, head_dim: usize, heads: &[usize]);
    /// out (rows.len(), d) = the listed rows of x (·, d).
    fn gather_rows(&mut self, x: &Self::Buf, d: usize, rows: &[usize], out: &mut Self::Buf);
    /// Rows `0 .. n` of src (n, d) into rows `at .. at + n` of dst (·, d): appending to a KV cache.
    fn copy_rows(&mut self, src: &Self::Buf, d: usize, n: usize, dst: &mut Self::Buf, at: usize);
    /// out (n) = for each row of x (n, w.cols), the index of the largest value of x · wᵀ (the
    /// lowest on ties) as f32 (exact below 2²⁴): every position's most likely next token. The
    /// (n, w.rows) logits need not exist at once (Gemma's 262k-wide vocabulary would need
    /// 1 MB per token).
    fn matmul_argmax(&mut self, x: &Self::Buf, n: usize, w: &QTensor, out: &mut Self::Buf);
}

/// One layer's attention capture, in backend buffers: the pass's own queries and row
/// log-sum-exps, and the layer's whole KV cache (every position so far).
pub struct LayerCapture<B> {
    pub q: B,   // (n, n_head · head_dim), after RoPE
    pub k: B,   // (past + n, n_kv · head_dim), after RoPE
    pub v: B,   // (past + n, n_kv · head_dim)
    pub lse: B, // (n, n_head)
}

/// Per layer, the post-position keys and values of every token so far (`len` rows of
/// `capacity`), on the backend that computed them: what a pass appends to and a decoding step
/// reads. `truncate` forgets the last tokens (a new branch of the text).
pub struct KvCache<B> {
    pub layers: Vec<(B, B)>, // (k, v), each (capacity, n_kv · head_dim)
    pub len: usize,
    pub capacity: usize,
}

impl<B> KvCache<B> {
    pub fn new<O: Ops<Buf = B>>(o: &mut O, n_layer: usize, kv_dim: usize, capacity: usize) -> Self {
        KvCache { layers: (0..n_layer).map(|_| (o.buffer("k cache", capacity * kv_dim), o.buffer("v cache", capacity * kv_dim))).collect(), len: 0, capacity }
    }
    /// Keeps the first `len` tokens.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// A recorded forward pass.
pub struct Recorded<B> {
    /// (n, d): the final hidden states after the output norm.
    pub hidden: B,
    /// (positions.len(), vocab).
    pub logits: B,
    pub positions: Vec<usize>,
    /// (n): the argmax token at every position, when `argmax_all` was asked for.
    pub argmax: Option<B>,
    /// Per layer when capture was asked for: queries and LSE of this pass (k, v empty until
    /// [`Recorded::with_cache`] moves the cache in).
    pub layers: Vec<LayerCapture<B>>,
    /// Per layer with [`ForwardOptions::lens`]: the block's output at those positions through
    /// the final norm (positions, d).
    pub lens: Vec<B>,
    /// With [`ForwardOptions::lens`]: the residual stream itself at those positions (positions,
    /// d), not normed — the embedding first, then every block's output (`n_layer + 1`).
    pub residual: Vec<B>,
}

impl<B> Recorded<B> {
    /// A one-shot pass's capture: each layer's K and V are its cache.
    pub fn with_cache(mut self, cache: KvCache<B>) -> Self {
        for (cap, (k, v)) in self.layers.iter_mut().zip(cache.layers) {
            cap.k = k;
            cap.v = v;
        }
        self
    }
}

/// Knocks out `layer`'s heads listed in `opts.ablate` in its attention output (n, n_head·hd).
pub fn ablate_heads<O: Ops>(o: &mut O, attn: &mut O::Buf, layer: usize, n: usize, n_head: usize, head_dim: usize, opts: &ForwardOptions) {
    let heads: Vec<usize> = opts.ablate.iter().filter(|(l, h)| *l == layer && *h < n_head).map(|(_, h)| *h).collect();
    if !heads.is_empty() {
        o.zero_heads(attn, n, n_head, head_dim, &heads);
    }
}

/// The logits step shared by every architecture: gather the rows asked for and project them;
/// with `argmax_all`, also every position's argmax.
/// Returns (logits (positions, vocab), positions, argmax (n)).
pub fn record_logits<O: Ops>(o: &mut O, hidden: &O::Buf, n: usize, d: usize, output: &QTensor, opts: &ForwardOptions) -> (O::Buf, Vec<usize>, Option<O::Buf>) {
    let positions = opts.logits_for.positions(n);
    let mut logits = o.buffer("logits", positions.len() * output.rows); // (positions, vocab)
    if !positions.is_empty() {
        let mut rows = o.buffer("logit rows", positions.len() * d); // (positions, d)
        o.gather_rows(hidden, d, &positions, &mut rows);
        o.matmul(&rows, positions.len(), output, &mut logits);
    }
    let argmax = opts.argmax_all.then(|| {
        let mut argmax = o.buffer("argmax", n); // (n)
        o.matmul_argmax(hidden, n, output, &mut argmax);
        argmax
    });
    (logits, positions, argmax)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each policy's mask, written out for 6 tokens: row i lists the keys query i reads.
    #[test]
    fn each_policy_reads_the_keys_it_says() {
        let opts = |policy| ForwardOptions { policy, ..Default::default() };
        let keys = |o: &ForwardOptions, layer_window: Option<usize>| -> Vec<Vec<usize>> {
            let (keys, window) = KeyRule::of(o, 0, layer_window, 64);
            let s = AttnShape { n: 6, n_head: 1, n_kv: 1, head_dim: 8, window, keys, ..Default::default() };
            (0..6).map(|i| (s.first_key(i)..=s.last_key(i)).filter(|&j| s.visible(i, j)).collect()).collect()
        };
        let v = |rows: &[&[usize]]| rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>();
        assert_eq!(keys(&opts(CachePolicy::Dense), None), v(&[&[0], &[0, 1], &[0, 1, 2], &[0, 1, 2, 3], &[0, 1, 2, 3, 4], &[0, 1, 2, 3, 4, 5]]));
        assert_eq!(keys(&opts(CachePolicy::Window { window: 2 }), None), v(&[&[0], &[0, 1], &[1, 2], &[2, 3], &[3, 4], &[4, 5]]));
        assert_eq!(keys(&opts(CachePolicy::SinksWindow { sinks: 1, window: 2 }), None), v(&[&[0], &[0, 1], &[0, 1, 2], &[0, 2, 3], &[0, 3, 4], &[0, 4, 5]]));
        assert_eq!(keys(&opts(CachePolicy::NoKey0), None), v(&[&[0], &[1], &[1, 2], &[1, 2, 3], &[1, 2, 3, 4], &[1, 2, 3, 4, 5]]));
        // A policy's window narrows a sliding layer's window, never widens it.
        assert_eq!(keys(&opts(CachePolicy::Window { window: 4 }), Some(2)), keys(&opts(CachePolicy::Dense), Some(2)));
        assert_eq!(keys(&opts(CachePolicy::Window { window: 2 }), Some(4)), keys(&opts(CachePolicy::Window { window: 2 }), None));
        // What-ifs only in their layers; no mask reads every key.
        let unmasked = ForwardOptions { change: Some((AttnChange::Unmasked, 0, 0)), ..Default::default() };
        assert!(keys(&unmasked, None).iter().all(|r| r == &vec![0, 1, 2, 3, 4, 5]));
        let elsewhere = ForwardOptions { change: Some((AttnChange::Unmasked, 1, 3)), ..Default::default() };
        assert_eq!(keys(&elsewhere, None), keys(&opts(CachePolicy::Dense), None));
        let (r, _) = KeyRule::of(&ForwardOptions { change: Some((AttnChange::Dmodel, 0, 0)), ..Default::default() }, 0, None, 576);
        assert_eq!(AttnShape { head_dim: 64, keys: r, ..Default::default() }.scale(), 1.0 / 24.0);
    }
}
