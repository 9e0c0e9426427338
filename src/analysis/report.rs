//! The inspect report: one JSON schema for `attnlab inspect --json` and the page's export.

use std::collections::BTreeMap;

use crate::backends::{Backend, EngineError, ForwardOptions, ForwardOutput, LogitsFor};
use crate::model::tokenizer::Token;
use crate::model::Model;
use crate::util::Clock;

use crate::model::capture::AnalysisError;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    #[error("bad head selection '{0}': use 'all', 'none' or a list like '0.0,29.8' (layer.head)")]
    BadHeads(String),
}

/// Which heads get full probability rows in the report.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadSelection {
    All,
    List(Vec<(usize, usize)>),
}

impl HeadSelection {
    /// Parses `all`, `none`, or `L.H,L.H,…`.
    pub fn parse(s: &str) -> Result<Self, ReportError> {
        let s = s.trim();
        if s == "all" {
            return Ok(HeadSelection::All);
        }
        if s == "none" || s.is_empty() {
            return Ok(HeadSelection::List(vec![]));
        }
        // "L.*" needs the model's head count: a list names single heads.
        let heads = s.split(',').map(|p| super::HeadId::parse(p).map(|h| h.pair())).collect::<Option<Vec<_>>>();
        heads.map(HeadSelection::List).ok_or_else(|| ReportError::BadHeads(s.into()))
    }

    fn heads(&self, n_layer: usize, n_head: usize) -> Vec<(usize, usize)> {
        match self {
            HeadSelection::All => (0..n_layer).flat_map(|l| (0..n_head).map(move |h| (l, h))).collect(),
            HeadSelection::List(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReportTimings {
    pub tokenize: f64,
    pub forward: f64,
    pub analysis: f64,
    pub total: f64,
}

/// Everything `inspect` reports. Field names are a stable contract (tests, exports).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InspectReport {
    pub model: String,
    pub text: String,
    pub backend: String,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub ids: Vec<u32>,
    /// Each token decoded alone.
    pub tokens: Vec<String>,
    /// `[start, end)` byte offsets of each token in `text`.
    pub token_spans: Vec<[usize; 2]>,
    /// `"L.H"` → rows; row `i` holds the probabilities of keys `0..=i`.
    pub attention: BTreeMap<String, Vec<Vec<f32>>>,
    /// `[layer][head]`: mean over query rows 1..n−1 of the probability on key 0
    /// (`null` for a one-token text).
    pub sink_mass_key0: Vec<Vec<Option<f32>>>,
    /// The 64 largest logits at the last position, `[id, logit]`, largest first.
    pub last_logits_top: Vec<(u32, f32)>,
    pub last_logsumexp: f32,
    pub argmax_per_position: Vec<u32>,
    pub final_hidden_norm_last: f32,
    pub timings_ms: ReportTimings,
}

/// Largest `k` entries as `(index, value)`, largest first (ties: lower index first).
pub fn top_k(values: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..values.len() as u32).collect();
    let k = k.min(values.len());
    if k == 0 {
        return vec![];
    }
    let cmp = |a: &u32, b: &u32| values[*b as usize].total_cmp(&values[*a as usize]).then(a.cmp(b));
    idx.select_nth_unstable_by(k - 1, cmp);
    idx.truncate(k);
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i, values[i as usize])).collect()
}

pub fn log_sum_exp(values: &[f32]) -> f32 {
    let m = values.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let s: f64 = values.iter().map(|v| ((v - m) as f64).exp()).sum();
    m + s.ln() as f32
}

/// Options of the forward pass a report needs: the last position's logits, every position's
/// argmax (never all (n, vocab) logits at once), attention captured.
pub fn report_forward_options() -> ForwardOptions {
    ForwardOptions { logits_for: LogitsFor::Last, argmax_all: true, ..Default::default() }
}

/// Tokenizes `text`, runs `backend`, and builds the report.
pub fn inspect(model: &Model, backend: &dyn Backend, text: &str, heads: &HeadSelection) -> Result<InspectReport, ReportError> {
    let clock = Clock::start();
    let toks = model.tokenizer.encode_with_spans(text);
    let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
    let tokenize = clock.ms();
    let out = backend.forward(model, &ids, &report_forward_options())?;
    let forward = clock.ms() - tokenize;
    build_report(model, text, &toks, &out, heads, tokenize, forward)
}

/// Builds the report from a finished forward pass (the browser awaits the GPU pass itself).
pub fn build_report(model: &Model, text: &str, toks: &[Token], out: &ForwardOutput, heads: &HeadSelection, tokenize_ms: f64, forward_ms: f64) -> Result<InspectReport, ReportError> {
    let clock = Clock::start();
    let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
    let c = &model.config;
    let trace = out.trace.as_ref().expect("capture was requested");
    let mut attention = BTreeMap::new();
    for (l, h) in heads.heads(c.n_layer, c.n_head) {
        attention.insert(super::HeadId::key(l, h), trace.head_rows(l, h)?);
    }
    let last = out.logits.row(out.logits.nrows() - 1);
    let last = last.as_slice().expect("contiguous row");
    let argmax_per_position = match &out.argmax {
        Some(a) => a.clone(),
        None => out.logits.rows().into_iter().map(|r| top_k(r.as_slice().expect("contiguous row"), 1)[0].0).collect(),
    };
    let sink_mass_key0 = trace.sink_mass_all(1);
    let analysis = clock.ms();
    Ok(InspectReport {
        model: model.info.name.clone(),
        text: text.to_string(),
        backend: out.backend.clone(),
        n_layers: c.n_layer,
        n_heads: c.n_head,
        n_kv_heads: c.n_head_kv,
        tokens: ids.iter().map(|&id| model.tokenizer.token_text(id)).collect(),
        token_spans: toks.iter().map(|t| [t.start, t.end]).collect(),
        ids,
        attention,
        sink_mass_key0,
        last_logits_top: top_k(last, 64),
        last_logsumexp: log_sum_exp(last),
        argmax_per_position,
        final_hidden_norm_last: out.final_hidden_norm_last,
        timings_ms: ReportTimings { tokenize: tokenize_ms, forward: forward_ms, analysis, total: tokenize_ms + forward_ms + analysis },
    })
}

/// Per layer: mean over heads of the sink mass on key 0.
pub fn sink_per_layer(sink_mass_key0: &[Vec<Option<f32>>]) -> Vec<f32> {
    sink_mass_key0
        .iter()
        .map(|hs| {
            let v: Vec<f32> = hs.iter().flatten().copied().collect();
            if v.is_empty() { 0.0 } else { v.iter().sum::<f32>() / v.len() as f32 }
        })
        .collect()
}

/// What a query spreading evenly would give key 0, averaged like the sink mass: mean over
/// rows i = 1..n−1 of 1/(i+1).
pub fn uniform_baseline(n: usize) -> f32 {
    if n > 1 { (1..n).map(|i| 1.0 / (i as f32 + 1.0)).sum::<f32>() / (n - 1) as f32 } else { 0.0 }
}
