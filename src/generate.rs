//! The model writes: a prompt prefilled into the KV cache, then one token per step — each
//! step computes one new q, k and v per head and reuses every cached key and value — sampled
//! from the step's logits (greedy, temperature, top-k, top-p, a seeded PRNG), until EOS or
//! `max_tokens`. The same loop runs on the CPU and the GPU ([`Decoder`]). The attention rows
//! of the generated tokens come from the capture grown step by step.
//!
//! Layering: a flow (below the worker and the CLI, above the backends and the model).

use std::collections::BTreeMap;

use crate::analysis::HeadId;
use crate::backends::cpu::CpuBackend;
use crate::backends::gpu::{GpuBackend, GpuBuf};
use crate::backends::{EngineError, ForwardOptions, LogitsFor, StepOutput};
use crate::model::capture::{AttentionTrace, LayerTrace};
use crate::model::{KvCache, Model};
use crate::util::Clock;

/// How the next token is chosen from a step's logits.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sampling {
    /// 0: greedy (the most likely token, the lowest id on ties); else logits / temperature.
    pub temperature: f32,
    /// Keep the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose mass reaches p (1: all).
    pub top_p: f32,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling { temperature: 0.0, top_k: 0, top_p: 1.0, seed: 0 }
    }
}

impl Sampling {
    /// Refuses values that mean nothing, with the reason.
    pub fn check(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(format!("temperature must be a number ≥ 0 (got {})", self.temperature));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top-p must be in (0, 1] (got {})", self.top_p));
        }
        Ok(())
    }
}

/// The seeded generator sampling draws from (SplitMix64, shared with the experiments).
pub use crate::analysis::position::Rng;

/// The token chosen from `logits` under `s`, and its probability under the model's own
/// softmax (temperature 1, nothing cut).
pub fn sample(logits: &[f32], s: &Sampling, rng: &mut Rng) -> (u32, f32) {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let prob = |id: usize| ((logits[id] as f64 - max).exp() / z) as f32;
    let greedy = || logits.iter().enumerate().fold(0, |b, (i, &l)| if l > logits[b] { i } else { b });
    if s.temperature == 0.0 || s.top_k == 1 {
        let id = greedy();
        return (id as u32, prob(id));
    }
    // Candidates most likely first (ids ascending on ties), cut by top-k, then by top-p.
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if s.top_k > 0 {
        order.truncate(s.top_k);
    }
    let t = s.temperature as f64;
    let top = logits[order[0]] as f64;
    let weights: Vec<f64> = order.iter().map(|&i| ((logits[i] as f64 - top) / t).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut keep = weights.len();
    if s.top_p < 1.0 {
        let mut mass = 0.0;
        for (k, w) in weights.iter().enumerate() {
            mass += w / total;
            if mass >= s.top_p as f64 {
                keep = k + 1;
                break;
            }
        }
    }
    let kept: f64 = weights[..keep].iter().sum();
    let mut u = rng.uniform() * kept;
    for (k, w) in weights[..keep].iter().enumerate() {
        if u < *w {
            return (order[k] as u32, prob(order[k]));
        }
        u -= w;
    }
    (order[keep - 1] as u32, prob(order[keep - 1]))
}

/// A backend that decodes over its own KV cache.
pub enum Decoder<'b> {
    Cpu(CpuBackend, KvCache<Vec<f32>>),
    Gpu(&'b GpuBackend, KvCache<GpuBuf>),
}

impl Decoder<'_> {
    pub fn cpu(model: &Model, capacity: usize) -> Decoder<'static> {
        let b = CpuBackend::new();
        let cache = b.new_cache(model, capacity);
        Decoder::Cpu(b, cache)
    }
    pub fn gpu<'b>(gpu: &'b GpuBackend, model: &Model, capacity: usize) -> Decoder<'b> {
        Decoder::Gpu(gpu, gpu.new_cache(model, capacity))
    }
    pub fn name(&self) -> &'static str {
        match self {
            Decoder::Cpu(..) => "cpu",
            Decoder::Gpu(..) => "gpu",
        }
    }
    fn len(&self) -> usize {
        match self {
            Decoder::Cpu(_, c) => c.len,
            Decoder::Gpu(_, c) => c.len,
        }
    }
    async fn step(&mut self, model: &Model, ids: &[u32], opts: &ForwardOptions) -> Result<StepOutput, EngineError> {
        match self {
            Decoder::Cpu(b, c) => b.step(model, ids, c, opts),
            Decoder::Gpu(g, c) => g.step_async(model, ids, c, opts).await,
        }
    }
    /// Keys and values of rows `from .. len` of every layer.
    async fn new_rows(&self, model: &Model, from: usize) -> Result<Vec<(Vec<f32>, Vec<f32>)>, EngineError> {
        let kv = model.config.kv_dim();
        match self {
            Decoder::Cpu(_, c) => Ok(c.layers.iter().map(|(k, v)| (k[from * kv..c.len * kv].to_vec(), v[from * kv..c.len * kv].to_vec())).collect()),
            Decoder::Gpu(g, c) => {
                let mut out = Vec::with_capacity(c.layers.len());
                for l in 0..c.layers.len() {
                    out.push(g.read_cache_async(c, l, kv, from).await?);
                }
                Ok(out)
            }
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// Keep going past the end-of-text token.
    pub ignore_eos: bool,
    /// Heads whose rows of the generated tokens are kept.
    pub heads: Vec<(usize, usize)>,
}

/// One decoding step: the token chosen, its probability, and the 8 largest logits before
/// sampling (`[id, logit]`, largest first).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GenStep {
    pub token: u32,
    pub prob: f32,
    pub top: Vec<(u32, f32)>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenTimings {
    /// The prompt's pass, ms.
    pub prefill: f64,
    /// Each decoding step, ms.
    pub decode: Vec<f64>,
}

/// A prompt and what the model wrote after it (`attnlab generate --json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generation {
    pub ids: Vec<u32>,
    pub generated: Vec<u32>,
    pub text_out: String,
    pub steps: Vec<GenStep>,
    /// `"L.H"` → one row per generated token t: position `ids.len() + t` over keys `0..=` it.
    pub attention: BTreeMap<String, Vec<Vec<f32>>>,
    pub timings_ms: GenTimings,
    /// Bytes of keys and values held after the last step (f32, every layer).
    pub kv_cache_bytes: usize,
    pub backend: String,
}

fn top8(logits: &[f32]) -> Vec<(u32, f32)> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let k = 8.min(order.len());
    order.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order.truncate(k);
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order.into_iter().map(|i| (i as u32, logits[i])).collect()
}

/// Refuses what cannot be generated, with the reason: meaningless sampling values, a head the
/// model lacks, a prompt plus new tokens beyond the context, an empty prompt.
pub fn check(model: &Model, ids: &[u32], o: &GenOptions) -> Result<(), String> {
    o.sampling.check()?;
    let c = &model.config;
    if ids.is_empty() {
        return Err("the text is empty: there is nothing to continue".into());
    }
    if let Some((l, h)) = o.heads.iter().find(|(l, h)| *l >= c.n_layer || *h >= c.n_head) {
        return Err(format!("head {} is not in this model ({} layers × {} heads)", HeadId::key(*l, *h), c.n_layer, c.n_head));
    }
    if ids.len() + o.max_tokens + 1 > c.context_length {
        return Err(format!("{} prompt tokens + {} new ones do not fit this model's context of {} tokens", ids.len(), o.max_tokens, c.context_length));
    }
    Ok(())
}

/// Prefills `ids` and generates up to `o.max_tokens` tokens on `d` (whose cache must hold
/// `ids.len() + max_tokens + 1` tokens: the last token is read once more for its row);
/// `on_token` hears each token as it is chosen.
pub async fn generate(d: &mut Decoder<'_>, model: &Model, ids: &[u32], o: &GenOptions, on_token: &mut dyn FnMut(u32)) -> Result<Generation, String> {
    check(model, ids, o)?;
    let c = &model.config;
    let capture = !o.heads.is_empty();
    let opts = ForwardOptions { capture_attention: capture, logits_for: LogitsFor::Last, ..Default::default() };
    let mut rng = Rng::new(o.sampling.seed);
    let mut trace = AttentionTrace::new(c, 0);
    let (mut generated, mut steps, mut timings) = (vec![], vec![], GenTimings::default());
    let mut feed: Vec<u32> = ids.to_vec();
    let mut clock = Clock::start();
    loop {
        let from = d.len();
        let out = d.step(model, &feed, &opts).await.map_err(|e| e.to_string())?;
        if capture {
            let kv = d.new_rows(model, from).await.map_err(|e| e.to_string())?;
            trace.extend(out.rows.into_iter().zip(kv).map(|((q, lse), (k, v))| LayerTrace { q, k, v, lse }).collect());
        }
        if generated.is_empty() && steps.is_empty() {
            timings.prefill = clock.ms();
        } else {
            timings.decode.push(clock.ms());
        }
        clock = Clock::start();
        let done = generated.len() == o.max_tokens || (!o.ignore_eos && generated.last().is_some_and(|&t| Some(t) == model.tokenizer.eos_id));
        if done {
            break;
        }
        let logits = out.logits.row(0);
        let logits = logits.as_slice().expect("a contiguous row");
        let (token, prob) = sample(logits, &o.sampling, &mut rng);
        steps.push(GenStep { token, prob, top: top8(logits) });
        generated.push(token);
        on_token(token);
        feed = vec![token];
    }
    let n = ids.len();
    let attention = o.heads.iter().map(|&(l, h)| (HeadId::key(l, h), (0..generated.len()).map(|t| trace.row(l, h, n + t).unwrap_or_default()).collect())).collect();
    Ok(Generation {
        ids: ids.to_vec(),
        text_out: model.tokenizer.decode(&generated).unwrap_or_else(|_| generated.iter().map(|&t| model.tokenizer.token_text(t)).collect()),
        generated,
        steps,
        attention,
        timings_ms: timings,
        kv_cache_bytes: 2 * d.len() * c.kv_dim() * c.n_layer * 4,
        backend: d.name().into(),
    })
}
