//! The decoder written once: a [`Transformer`] of [`Layer`]s built from small parts (norms,
//! linear layers with optional biases, optional QK-norm and post-norms, gated or plain
//! feed-forward networks, rotary or learned positions), loaded by name from any architecture
//! in the registry ([`super::registry`]) and run on any backend's [`Ops`], a whole prompt or
//! one token at a time over a [`KvCache`].
//!
//! One pass, as llama2.c's `forward` reads (with candle's `index_pos` as `cache.len`):
//! `x = embed(ids)·scale (+ position_embd[pos])`; per layer
//! `x += post_norm(Wo · attention(pos(norm_h(Wq·h)), cache ← pos(norm_h(Wk·h)), cache ← Wv·h))`
//! with `h = attn_norm(x)`, then `x += post_norm(ffn(ffn_norm(x)))`; logits = `Wout · output_norm(x)`.

use super::arch::{ablate_heads, record_logits, Act, AttnChange, AttnShape, ForwardOptions, KeyRule, KvCache, LayerCapture, Norm, NormKind, Ops, Recorded, Vector};
use super::config::{Config, ModelError, Positions};
use super::load::Loader;
use super::quant::QTensor;
use super::registry::{Ffn, Qkv, Spec};

/// `y = x · wᵀ (+ b)`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub w: QTensor,         // (out, in)
    pub b: Option<Vector>, // (out)
}

impl Linear {
    pub fn forward<O: Ops>(&self, o: &mut O, x: &O::Buf, n: usize, out: &mut O::Buf) {
        o.matmul(x, n, &self.w, out);
        if let Some(b) = &self.b {
            o.add_bias(out, b);
        }
    }
}

/// One block; names mirror `blk.N.*` (a fused `attn_qkv` is split into q, k, v at load).
#[derive(Debug, Clone)]
pub struct Layer {
    pub attn_norm: Norm,
    pub attn_q: Linear,               // (n_head · head_dim, n_embd)
    pub attn_k: Linear,               // (n_kv · head_dim, n_embd)
    pub attn_v: Linear,               // (n_kv · head_dim, n_embd)
    pub attn_q_norm: Option<Norm>,    // (head_dim): RMSNorm of every query head
    pub attn_k_norm: Option<Norm>,    // (head_dim)
    pub attn_output: Linear,          // (n_embd, n_head · head_dim)
    pub post_attention_norm: Option<Norm>,
    pub ffn_norm: Norm,
    pub ffn_gate: Option<Linear>,     // (n_ff, n_embd): gated FFNs only
    pub ffn_up: Linear,               // (n_ff, n_embd)
    pub ffn_down: Linear,             // (n_embd, n_ff)
    pub post_ffw_norm: Option<Norm>,
}

#[derive(Debug, Clone)]
pub struct Transformer {
    pub token_embd: QTensor,            // (vocab, n_embd)
    pub position_embd: Option<QTensor>, // (context_length, n_embd): learned positions
    pub layers: Vec<Layer>,
    pub output_norm: Norm,
    /// `None`: tied to `token_embd`.
    pub output: Option<QTensor>, // (vocab, n_embd)
    pub act: Act,
    pub embed_scale: f32,
}

impl Transformer {
    /// Reads every tensor `spec` names, shapes checked against `c`.
    pub fn load(l: &Loader, c: &Config, spec: &Spec) -> Result<Self, ModelError> {
        let (d, q_dim, kv_dim, hd) = (c.n_embd, c.q_dim(), c.kv_dim(), c.head_dim);
        let norm = |name: String| l.norm(&name, c.norm, d, c.norm_eps);
        let head_norm = |name: String| spec.qk_norm.then(|| l.norm(&name, NormKind::Rms, hd, c.norm_eps)).transpose();
        let post_norm = |name: String| spec.post_norms.then(|| norm(name)).transpose();
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let t = |s: &str| format!("blk.{i}.{s}");
            let [attn_q, attn_k, attn_v] = match spec.qkv {
                Qkv::Separate => [l.linear(&t("attn_q"), q_dim, d)?, l.linear(&t("attn_k"), kv_dim, d)?, l.linear(&t("attn_v"), kv_dim, d)?],
                Qkv::Fused => l.fused(&t("attn_qkv"), &[q_dim, kv_dim, kv_dim], d)?.try_into().expect("three parts"),
            };
            layers.push(Layer {
                attn_norm: norm(t("attn_norm"))?,
                attn_q,
                attn_k,
                attn_v,
                attn_q_norm: head_norm(t("attn_q_norm"))?,
                attn_k_norm: head_norm(t("attn_k_norm"))?,
                attn_output: l.linear(&t("attn_output"), d, q_dim)?,
                post_attention_norm: post_norm(t("post_attention_norm"))?,
                ffn_norm: norm(t("ffn_norm"))?,
                ffn_gate: matches!(spec.ffn, Ffn::Gated(_)).then(|| l.linear(&t("ffn_gate"), c.n_ff, d)).transpose()?,
                ffn_up: l.linear(&t("ffn_up"), c.n_ff, d)?,
                ffn_down: l.linear(&t("ffn_down"), d, c.n_ff)?,
                post_ffw_norm: post_norm(t("post_ffw_norm"))?,
            });
        }
        let output = if l.has("output.weight") { Some(l.matrix("output.weight", c.vocab_size, d)?) } else { None };
        let (Ffn::Gated(act) | Ffn::Plain(act)) = spec.ffn;
        Ok(Transformer {
            token_embd: l.matrix("token_embd.weight", c.vocab_size, d)?,
            position_embd: (c.positions == Positions::Learned).then(|| l.matrix("position_embd.weight", c.context_length, d)).transpose()?,
            layers,
            output_norm: l.norm("output_norm", c.norm, d, c.norm_eps)?,
            output,
            act,
            embed_scale: if spec.scale_embeddings { (d as f32).sqrt() } else { 1.0 },
        })
    }

    /// The output projection, tied or not.
    pub fn output(&self) -> &QTensor {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }

    /// Every weight (matrices, vectors), for backends that upload them.
    pub fn tensors(&self) -> (Vec<&QTensor>, Vec<&Vector>) {
        let mut m = vec![&self.token_embd];
        m.extend(self.position_embd.as_ref());
        m.extend(self.output.as_ref());
        let mut v: Vec<&Vector> = Vec::new();
        fn norm<'a>(v: &mut Vec<&'a Vector>, n: &'a Norm) {
            v.push(&n.w);
            v.extend(n.b.as_ref());
        }
        for l in &self.layers {
            let linears = [Some(&l.attn_q), Some(&l.attn_k), Some(&l.attn_v), Some(&l.attn_output), l.ffn_gate.as_ref(), Some(&l.ffn_up), Some(&l.ffn_down)];
            for lin in linears.into_iter().flatten() {
                m.push(&lin.w);
                v.extend(lin.b.as_ref());
            }
            for n in [Some(&l.attn_norm), l.attn_q_norm.as_ref(), l.attn_k_norm.as_ref(), l.post_attention_norm.as_ref(), Some(&l.ffn_norm), l.post_ffw_norm.as_ref()].into_iter().flatten() {
                norm(&mut v, n);
            }
        }
        norm(&mut v, &self.output_norm);
        (m, v)
    }

    /// Runs `ids` as positions `cache.len ..` and appends their keys and values to `cache`
    /// (which must have room). The capture holds this pass's queries and row log-sum-exps.
    pub fn forward<O: Ops>(&self, o: &mut O, c: &Config, ids: &[u32], cache: &mut KvCache<O::Buf>, opts: &ForwardOptions) -> Recorded<O::Buf> {
        let (n, start) = (ids.len(), cache.len);
        assert!(start + n <= cache.capacity, "the KV cache holds {} tokens: {start} + {n} do not fit", cache.capacity);
        let (d, q_dim, kv_dim, hd) = (c.n_embd, c.q_dim(), c.kv_dim(), c.head_dim);
        let mut x = o.buffer("residual", n * d); // (n, d)
        o.embed(ids, &self.token_embd, self.embed_scale, &mut x);
        if let Some(table) = &self.position_embd {
            let positions: Vec<u32> = (start..start + n).map(|p| p as u32).collect();
            let mut p = o.buffer("positions", n * d); // (n, d)
            o.embed(&positions, table, 1.0, &mut p);
            o.add(&mut x, &p);
        }
        let mut xn = o.buffer("normed", n * d); // (n, d)
        let mut attn = o.buffer("attention out", n * q_dim); // (n, n_head·hd)
        let mut proj = o.buffer("projection", n * d); // (n, d)
        let (mut k_new, mut v_new) = (o.buffer("new keys", n * kv_dim), o.buffer("new values", n * kv_dim)); // (n, n_kv·hd)
        let gated = self.layers[0].ffn_gate.is_some();
        let mut gate = o.buffer("ffn gate", if gated { n * c.n_ff } else { 0 }); // (n, n_ff)
        let mut up = o.buffer("ffn up", n * c.n_ff); // (n, n_ff)
        let mut layers = Vec::new();
        let mut spare: Option<LayerCapture<O::Buf>> = None;
        let mut lens = Vec::new();
        // Each residual add is fused with the norm that follows it (`add_norm`), so `xn`
        // enters every layer as attn_norm(x) and leaves the last one as output_norm(x).
        o.norm(&self.layers[0].attn_norm, &x, &mut xn);
        let mut residual = Vec::new();
        if let Some(rows) = &opts.lens {
            let mut picked = o.buffer("embedding rows", rows.len() * d); // (rows, d): x before block 0
            o.gather_rows(&x, d, rows, &mut picked);
            residual.push(picked);
        }
        for (i, l) in self.layers.iter().enumerate() {
            let mut cap = spare.take().unwrap_or_else(|| LayerCapture { q: o.buffer("q", n * q_dim), k: o.buffer("k (the cache's)", 0), v: o.buffer("v (the cache's)", 0), lse: o.buffer("lse", n * c.n_head) });
            l.attn_q.forward(o, &xn, n, &mut cap.q);
            l.attn_k.forward(o, &xn, n, &mut k_new);
            l.attn_v.forward(o, &xn, n, &mut v_new);
            if let (Some(qn), Some(kn)) = (&l.attn_q_norm, &l.attn_k_norm) {
                o.norm_in_place(qn, &mut cap.q);
                o.norm_in_place(kn, &mut k_new);
            }
            let norope = matches!(opts.change, Some((AttnChange::Norope, a, b)) if (a..=b).contains(&i));
            if c.positions == Positions::Rope && !norope {
                let base = c.layer_rope_base[i];
                o.rope(&mut cap.q, n, c.n_head, hd, c.rope_dim, base, c.rope_style, start);
                o.rope(&mut k_new, n, c.n_head_kv, hd, c.rope_dim, base, c.rope_style, start);
            }
            let (k_cache, v_cache) = &mut cache.layers[i];
            o.copy_rows(&k_new, kv_dim, n, k_cache, start);
            o.copy_rows(&v_new, kv_dim, n, v_cache, start);
            let (keys, window) = KeyRule::of(opts, i, c.layer_window[i], d);
            let shape = AttnShape { n, past: start, n_head: c.n_head, n_kv: c.n_head_kv, head_dim: hd, window, keys };
            o.attention(shape, &cap.q, k_cache, v_cache, &mut attn, &mut cap.lse);
            ablate_heads(o, &mut attn, i, n, c.n_head, hd, opts);
            l.attn_output.forward(o, &attn, n, &mut proj);
            if let Some(pn) = &l.post_attention_norm {
                o.norm_in_place(pn, &mut proj);
            }
            o.add_norm(&mut x, &proj, &l.ffn_norm, &mut xn);

            l.ffn_up.forward(o, &xn, n, &mut up);
            let hidden = match &l.ffn_gate {
                Some(g) => {
                    g.forward(o, &xn, n, &mut gate);
                    o.gated(self.act, &mut gate, &up);
                    &gate
                }
                None => {
                    o.activate(self.act, &mut up);
                    &up
                }
            };
            l.ffn_down.forward(o, hidden, n, &mut proj);
            if let Some(pn) = &l.post_ffw_norm {
                o.norm_in_place(pn, &mut proj);
            }
            let next_norm = self.layers.get(i + 1).map_or(&self.output_norm, |next| &next.attn_norm);
            o.add_norm(&mut x, &proj, next_norm, &mut xn);
            if let Some(rows) = &opts.lens {
                let mut picked = o.buffer("lens rows", rows.len() * d); // (rows, d): x after block i
                o.gather_rows(&x, d, rows, &mut picked);
                let mut h = o.buffer("lens", rows.len() * d); // output_norm of those rows
                o.norm(&self.output_norm, &picked, &mut h);
                lens.push(h);
                residual.push(picked);
            }
            if opts.capture_attention {
                layers.push(cap);
            } else {
                spare = Some(cap);
            }
        }
        cache.len = start + n;
        let (logits, positions, argmax) = record_logits(o, &xn, n, d, self.output(), opts);
        Recorded { hidden: xn, logits, positions, argmax, layers, lens, residual }
    }
}
