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
use crate::model::arch::{AttnChange, CachePolicy};
use crate::model::capture::{AttentionTrace, LayerTrace};
use crate::model::{KvCache, Model};
use crate::util::Clock;

/// How the next token is chosen from a step's logits.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
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

/// Most tokens one Generate writes from the page.
pub const MAX_GEN: usize = 512;
/// The highest sampling temperature offered.
pub const MAX_TEMPERATURE: f32 = 5.0;

/// What the page's Generate does, as its URL writes it (`gen`, `temperature`, `top_k`, `top_p`,
/// `seed`, `chat`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenSettings {
    pub max_tokens: usize,
    pub sampling: Sampling,
    pub chat: bool,
}

impl Default for GenSettings {
    fn default() -> Self {
        GenSettings { max_tokens: 24, sampling: Sampling::default(), chat: false }
    }
}

impl GenSettings {
    /// The writing settings of checked settings ([`crate::settings::read`]); `gen` is `Some`
    /// when they ask for a generation.
    pub fn from_settings(r: &crate::settings::Restore) -> (GenSettings, Option<usize>) {
        let mut s = GenSettings::default();
        let gen = r.number::<usize>("gen");
        if let Some(n) = gen {
            s.max_tokens = n;
        }
        if let Some(t) = r.number::<f32>("temperature") {
            s.sampling.temperature = t;
        }
        if let Some(k) = r.number::<usize>("top-k") {
            s.sampling.top_k = k;
        }
        if let Some(p) = r.number::<f32>("top-p") {
            s.sampling.top_p = p;
        }
        if let Some(n) = r.number::<u64>("seed") {
            s.sampling.seed = n;
        }
        s.chat = r.get("chat") == Some("1");
        (s, gen)
    }

    /// The URL's values for these settings (defaults left out).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let d = Sampling::default();
        let mut out = vec![("gen", self.max_tokens.to_string()), ("temperature", self.sampling.temperature.to_string())];
        if self.sampling.top_k != d.top_k {
            out.push(("top_k", self.sampling.top_k.to_string()));
        }
        if self.sampling.top_p != d.top_p {
            out.push(("top_p", self.sampling.top_p.to_string()));
        }
        out.push(("seed", self.sampling.seed.to_string()));
        if self.chat {
            out.push(("chat", "1".into()));
        }
        out
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
    fn capacity(&self) -> usize {
        match self {
            Decoder::Cpu(_, c) => c.capacity,
            Decoder::Gpu(_, c) => c.capacity,
        }
    }
    /// Forgets every cached row.
    fn clear(&mut self) {
        match self {
            Decoder::Cpu(_, c) => c.truncate(0),
            Decoder::Gpu(_, c) => c.truncate(0),
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
            Decoder::Gpu(g, c) => g.read_cache_async(c, kv, from).await,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, Default)]
pub struct GenOptions {
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// Keep going past the end-of-text token.
    pub ignore_eos: bool,
    /// Heads whose rows of the generated tokens are kept.
    pub heads: Vec<(usize, usize)>,
    /// Texts that end the generation once the output contains one (the text is kept up to
    /// and including it).
    pub stop: Vec<String>,
    /// Tokens written first instead of sampled, in order (a branch from a chosen step, or
    /// the same steps replayed); their steps still record the model's own probabilities.
    pub forced: Vec<u32>,
    /// Without the cache: every step runs the whole text so far again (each step's time
    /// then grows with the text; the tokens are the same). Keeps no attention rows.
    pub recompute: bool,
    /// How the model writes: a cache policy in every layer and a what-if in some (see
    /// [`Variant`]); attention rows are kept for the model's own attention only.
    pub variant: Variant,
}

/// The model as it writes: which cached keys each step reads ([`CachePolicy`]: the keys a
/// window leaves out are never read, as if evicted; positions stay the tokens' own) and a
/// change inside the attention of layers `first ..= last` ([`AttnChange`]). Without the causal
/// mask every earlier token's keys change when a new token arrives, so no cache can hold them:
/// such a generation runs the whole text again at every step ([`Variant::needs_recompute`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Variant {
    #[serde(default)]
    pub policy: CachePolicy,
    #[serde(default)]
    pub change: Option<(AttnChange, usize, usize)>,
}

impl Variant {
    pub fn policy(policy: CachePolicy) -> Variant {
        Variant { policy, change: None }
    }
    pub fn change(what: AttnChange, first: usize, last: usize) -> Variant {
        Variant { policy: CachePolicy::Dense, change: Some((what, first, last)) }
    }
    /// The model's own attention.
    pub fn is_plain(&self) -> bool {
        *self == Variant::default()
    }
    pub fn needs_recompute(&self) -> bool {
        matches!(self.change, Some((AttnChange::Unmasked, ..)))
    }
    /// `dense`, `window 256`, `sinks+window 4+256`, `no-key0`, `unscaled in layers 0–29`, …
    /// (`plain` for the model's own attention).
    pub fn name(&self) -> String {
        let policy = match self.policy {
            CachePolicy::Window { window } => format!("window {window}"),
            CachePolicy::SinksWindow { sinks, window } => format!("sinks+window {sinks}+{window}"),
            p => p.name().to_string(),
        };
        match self.change {
            None if self.policy == CachePolicy::Dense => "plain".into(),
            None => policy,
            Some((what, a, b)) => {
                let layers = if a == b { format!("layer {a}") } else { format!("layers {a}–{b}") };
                let change = format!("{} in {layers}", what.name());
                if self.policy == CachePolicy::Dense { change } else { format!("{policy}, {change}") }
            }
        }
    }
    /// Keys the query at position `i` reads in a layer without a window of its own.
    pub fn keys_read(&self, i: usize) -> usize {
        let n = i + 1;
        match (self.change, self.policy) {
            (Some((AttnChange::Nosink, ..)), _) | (_, CachePolicy::NoKey0) => n - (i > 0) as usize,
            (_, CachePolicy::Dense) => n,
            (_, CachePolicy::Window { window }) => n.min(window),
            (_, CachePolicy::SinksWindow { sinks, window }) => n.min(window + sinks),
        }
    }
    fn options(&self, opts: ForwardOptions) -> ForwardOptions {
        ForwardOptions { policy: self.policy, change: self.change, ..opts }
    }
}

/// One decoding step: the token chosen, its probability, and the 8 largest logits before
/// sampling (`[id, logit]`, largest first).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenStep {
    pub token: u32,
    pub prob: f32,
    pub top: Vec<(u32, f32)>,
    /// The log-sum-exp of the step's logits (probabilities of `top` are `exp(logit − lse)`).
    #[serde(skip)]
    pub lse: f32,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenTimings {
    /// The prompt's pass, ms.
    pub prefill: f64,
    /// Each decoding step, ms (the step that reads generated token t).
    pub decode: Vec<f64>,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    MaxTokens,
    /// The model wrote its end-of-text token.
    Eos,
    /// The output reached a stop text.
    Stop,
    /// Stopped from outside (the page's Stop, a newer run).
    Stopped,
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
    pub finish: Finish,
    /// Why the GPU was left mid-generation, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
/// model lacks, a prompt plus new tokens beyond the context, an empty prompt, a forced token
/// outside the vocabulary.
pub fn check(model: &Model, ids: &[u32], o: &GenOptions) -> Result<(), String> {
    o.sampling.check()?;
    let c = &model.config;
    if ids.is_empty() {
        return Err("the text is empty: there is nothing to continue".into());
    }
    if let Some((l, h)) = o.heads.iter().find(|(l, h)| *l >= c.n_layer || *h >= c.n_head) {
        return Err(format!("head {} is not in this model ({} layers × {} heads)", HeadId::key(*l, *h), c.n_layer, c.n_head));
    }
    if let Some(t) = o.forced.iter().chain(ids).find(|&&t| t as usize >= c.vocab_size) {
        return Err(format!("token {t} is not in this model's vocabulary of {} tokens", c.vocab_size));
    }
    if let Some((what, a, b)) = o.variant.change {
        if a > b || b >= c.n_layer {
            return Err(format!("{} in layers {a}–{b}: this model has layers 0–{}", what.name(), c.n_layer - 1));
        }
    }
    if matches!(o.variant.policy, CachePolicy::Window { window: 0 } | CachePolicy::SinksWindow { window: 0, .. }) {
        return Err("a window must hold at least one key".into());
    }
    if ids.len() + o.max_tokens + 1 > c.context_length {
        return Err(format!("{} prompt tokens + {} new ones do not fit this model's context of {} tokens", ids.len(), o.max_tokens, c.context_length));
    }
    Ok(())
}

/// The cache a generation of `o` after `n_prompt` tokens needs (the last token is read once
/// more for its row).
pub fn capacity(model: &Model, n_prompt: usize, o: &GenOptions) -> usize {
    (n_prompt + o.max_tokens + 1).min(model.config.context_length)
}

/// A generation under way, one [`Generator::next`] per model step: the caller decides what
/// happens between steps (print, post to the page, stop).
pub struct Generator<'a> {
    model: &'a Model,
    decoder: Decoder<'a>,
    o: GenOptions,
    rng: Rng,
    ids: Vec<u32>,
    generated: Vec<u32>,
    steps: Vec<GenStep>,
    timings: GenTimings,
    /// Every position read so far (when heads are asked for).
    trace: AttentionTrace,
    capture: bool,
    finish: Option<Finish>,
    note: Option<String>,
}

impl<'a> Generator<'a> {
    /// Checks the request; nothing runs until [`Generator::next`].
    pub fn new(decoder: Decoder<'a>, model: &'a Model, ids: &[u32], o: &GenOptions) -> Result<Self, String> {
        check(model, ids, o)?;
        let mut o = o.clone();
        o.recompute |= o.variant.needs_recompute();
        let capture = !o.heads.is_empty() && !o.recompute && o.variant.is_plain();
        Ok(Generator { model, decoder, o: o.clone(), rng: Rng::new(o.sampling.seed), ids: ids.to_vec(), generated: vec![], steps: vec![], timings: GenTimings::default(), trace: AttentionTrace::new(&model.config, 0), capture, finish: None, note: None })
    }

    /// Runs the next model step — the prompt's prefill first, then the last token written —
    /// and chooses the next token: `Some(step)`, or `None` once the generation has ended
    /// (the last token written has then been read too, so its row exists).
    pub async fn next(&mut self) -> Result<Option<GenStep>, String> {
        if self.finish.is_some() {
            return Ok(None);
        }
        let clock = Clock::start();
        let out = self.run_step().await?;
        if self.steps.is_empty() {
            self.timings.prefill = clock.ms();
        } else {
            self.timings.decode.push(clock.ms());
        }
        if let Some(f) = self.ended() {
            self.finish = Some(f);
            return Ok(None);
        }
        let logits = out.logits.row(0);
        let logits = logits.as_slice().expect("a contiguous row");
        let t = self.generated.len();
        let lse = crate::analysis::report::log_sum_exp(logits);
        let (token, prob) = match self.o.forced.get(t) {
            Some(&f) => (f, (logits[f as usize] - lse).exp()),
            None => sample(logits, &self.o.sampling, &mut self.rng),
        };
        let step = GenStep { token, prob, top: top8(logits), lse };
        self.steps.push(step.clone());
        self.generated.push(token);
        Ok(Some(step))
    }

    /// Why the generation ends now, if it does.
    fn ended(&self) -> Option<Finish> {
        let forcing = self.generated.len() <= self.o.forced.len();
        if self.generated.len() >= self.o.max_tokens {
            return Some(Finish::MaxTokens);
        }
        if !forcing && !self.o.ignore_eos && self.generated.last().is_some_and(|&t| Some(t) == self.model.tokenizer.eos_id) {
            return Some(Finish::Eos);
        }
        if !forcing && !self.o.stop.is_empty() {
            let text = self.text_out();
            if self.o.stop.iter().any(|s| !s.is_empty() && text.contains(s.as_str())) {
                return Some(Finish::Stop);
            }
        }
        None
    }

    /// One model step over what the cache lacks; on the GPU failing, the cache is rebuilt on
    /// the CPU from every token so far and the step runs there (said in [`Generator::note`]).
    async fn run_step(&mut self) -> Result<StepOutput, String> {
        let opts = self.o.variant.options(ForwardOptions { capture_attention: self.capture, logits_for: LogitsFor::Last, ..Default::default() });
        let all: Vec<u32> = self.ids.iter().chain(&self.generated).copied().collect();
        if self.o.recompute {
            self.decoder.clear();
        }
        let from = self.decoder.len();
        match self.decoder.step(self.model, &all[from..], &opts).await {
            Ok(mut out) => {
                let rows = std::mem::take(&mut out.rows);
                self.grow(from, rows).await?;
                Ok(out)
            }
            Err(EngineError::Unavailable(_, why)) if matches!(self.decoder, Decoder::Gpu(..)) => {
                self.note = Some(format!("the GPU failed ({why}); the text goes on on the CPU from token {}", all.len()));
                self.decoder = Decoder::cpu(self.model, self.decoder.capacity());
                self.trace = AttentionTrace::new(&self.model.config, 0);
                let mut out = self.decoder.step(self.model, &all, &opts).await.map_err(|e| e.to_string())?;
                let rows = std::mem::take(&mut out.rows);
                self.grow(0, rows).await?;
                Ok(out)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Adds the rows the step computed (positions `from..`) to the capture.
    async fn grow(&mut self, from: usize, rows: Vec<(Vec<f32>, Vec<f32>)>) -> Result<(), String> {
        if self.capture {
            let kv = self.decoder.new_rows(self.model, from).await.map_err(|e| e.to_string())?;
            self.trace.extend(rows.into_iter().zip(kv).map(|((q, lse), (k, v))| LayerTrace { q, k, v, lse }).collect());
        }
        Ok(())
    }

    /// Stops after the steps done so far (the last token written keeps no row).
    pub fn stop(&mut self) {
        self.finish.get_or_insert(Finish::Stopped);
    }

    pub fn generated(&self) -> &[u32] {
        &self.generated
    }
    pub fn timings(&self) -> &GenTimings {
        &self.timings
    }
    /// Every position read so far (empty unless heads were asked for).
    pub fn trace(&self) -> &AttentionTrace {
        &self.trace
    }
    /// Why the GPU was left, when it was.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }
    pub fn backend(&self) -> &'static str {
        self.decoder.name()
    }
    /// Bytes of keys and values the cache holds now (f32, every layer).
    pub fn kv_cache_bytes(&self) -> usize {
        let c = &self.model.config;
        2 * self.decoder.len() * c.kv_dim() * c.n_layer * 4
    }
    pub fn text_out(&self) -> String {
        let tok = &self.model.tokenizer;
        tok.decode(&self.generated).unwrap_or_else(|_| self.generated.iter().map(|&t| tok.token_text(t)).collect())
    }

    /// What was written, with the asked heads' rows of the generated tokens that were read.
    pub fn finish(self) -> Generation {
        let n = self.ids.len();
        let attention = self.o.heads.iter().map(|&(l, h)| (HeadId::key(l, h), (0..self.generated.len()).map_while(|t| self.trace.row(l, h, n + t).ok()).collect())).collect();
        Generation {
            text_out: self.text_out(),
            kv_cache_bytes: self.kv_cache_bytes(),
            backend: self.decoder.name().into(),
            finish: self.finish.unwrap_or(Finish::Stopped),
            ids: self.ids,
            generated: self.generated,
            steps: self.steps,
            attention,
            timings_ms: self.timings,
            note: self.note,
        }
    }
}

/// Prefills `ids` and generates up to `o.max_tokens` tokens on `d` (whose cache must hold
/// [`capacity`] tokens); `on_token` hears each token as it is chosen.
pub async fn generate(d: Decoder<'_>, model: &Model, ids: &[u32], o: &GenOptions, on_token: &mut dyn FnMut(u32)) -> Result<Generation, String> {
    let mut g = Generator::new(d, model, ids, o)?;
    while let Some(step) = g.next().await? {
        on_token(step.token);
    }
    Ok(g.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_settings_round_trip_and_refuse_nonsense() {
        let s = GenSettings { max_tokens: 30, sampling: Sampling { temperature: 0.7, top_k: 40, top_p: 0.9, seed: 7 }, chat: true };
        let params = s.params();
        let get = |k: &str| params.iter().find(|(p, _)| *p == k).map(|(_, v)| v.clone());
        let r = crate::settings::read(&get, &[]);
        let (back, gen) = GenSettings::from_settings(&r);
        assert_eq!((back, gen, r.dropped.len()), (s, Some(30), 0));
        let bad = |k: &str| match k {
            "gen" => Some("99999".to_string()),
            "temperature" => Some("NaN".into()),
            "top_p" => Some("1.5".into()),
            "seed" => Some("-1".into()),
            _ => None,
        };
        let r = crate::settings::read(&bad, &[]);
        let (s, gen) = GenSettings::from_settings(&r);
        assert_eq!((s, gen), (GenSettings::default(), None));
        assert_eq!(r.dropped.len(), 4, "{:?}", r.dropped);
    }
}
